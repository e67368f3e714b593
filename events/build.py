"""Build the invocation events in events/ from the raw vendor records in events/*/records/.

    uv run python events/build.py          # rewrite the generated files
    uv run python events/build.py --check  # exit 1 if any generated file is stale (tests run this)

The records are the vendor's documented examples (export damage repaired) and our variations;
the generated files are what `sam local invoke -e` and the tests feed the handlers.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN = "dev-token"
RECEIVED = datetime(2025, 2, 7, 7, 30, 5, tzinfo=UTC)
KIND_OF = {"location": "location", "alarm": "alarm", "event": "event", "cmd": "cmd", "sublock": "sublock"}
VARIATION_KIND = {
    "variation-strings-for-numbers": "location",
    "variation-minimal": "location",
    "variation-extra-fields-chinese": "alarm",
}


def kind_of(name: str) -> str:
    if name in VARIATION_KIND:
        return VARIATION_KIND[name]
    return KIND_OF[name.split("-")[1]]


def http_event(route_key: str, path: str, params: dict, body: str, content_type: str = "application/json",
               user_agent: str = "Jointech-Push/1.0", query: dict | None = None, headers: dict | None = None,
               method: str = "POST", authorizer: dict | None = None) -> dict:
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {"content-type": content_type, "host": "abc123.execute-api.us-east-1.amazonaws.com",
                    "user-agent": user_agent, "content-length": str(len(body.encode())), **(headers or {})},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10",
                     "userAgent": user_agent},
            "requestId": "JKJaXmPLvHcESHA=", "routeKey": route_key, "stage": "$default",
            "time": "07/Feb/2025:07:30:05 +0000", "timeEpoch": 1738913405000,
        },
        "pathParameters": params,
        "body": body,
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if authorizer:
        event["requestContext"]["authorizer"] = authorizer
    return event


# What API Gateway puts in requestContext for a route with the AWS_IAM authorizer: who signed.
IAM_CALLER = {"iam": {"accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": "123456789012",
                      "callerId": "AIDACKCEVSQ6C2EXAMPLE", "cognitoIdentity": None,
                      "principalOrgId": "o-example1234", "userArn": "arn:aws:iam::123456789012:user/dispatch-app",
                      "userId": "AIDACKCEVSQ6C2EXAMPLE"}}
COMMANDS_ROUTE = "/devices/jointech/{deviceNum}/commands"
COMMAND_DEVICE = {"raw-base-info": "794308010642", "typed-query-base-info": "794308010642",
                  "typed-query-time-with-token": "742207000010"}


def jointech_command_http(device: str, record: dict | None, query: dict | None = None) -> dict:
    """An app's signed request to the command API: POST a command (record = the body) or GET the
    device's commands (record None). SigV4 headers are abbreviated; API Gateway checked them."""
    path = COMMANDS_ROUTE.replace("{deviceNum}", device)
    method = "POST" if record is not None else "GET"
    body = json.dumps(record, ensure_ascii=False) if record is not None else ""
    signed_headers = "content-type;host;x-amz-date" if record is not None else "host;x-amz-date"
    signed = {"authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250207/us-east-1/execute-api/"
                               f"aws4_request, SignedHeaders={signed_headers}, Signature=<redacted>",
              "x-amz-date": "20250207T073005Z"}
    event = http_event(f"{method} {COMMANDS_ROUTE}", path, {"deviceNum": device}, body,
                       user_agent="Boto3/1.35.0 md/Botocore#1.35.0", query=query, headers=signed, method=method,
                       authorizer=IAM_CALLER)
    if record is None:
        del event["headers"]["content-type"]
        event.pop("body")
        event["body"] = None
    return event


def face_terminal_http(record: dict, query: dict | None = None) -> dict:
    return http_event("POST /hooks/face-terminal/{token}", f"/hooks/face-terminal/{TOKEN}", {"token": TOKEN},
                      json.dumps(record, ensure_ascii=False), user_agent="Apache-HttpClient/4.5.6 (Java/1.8.0)",
                      query=query)


def senselink_http(name: str, record: dict) -> dict:
    # Frames (ws-*) come from `devicegate senselink-bridge`, which names itself; subscription
    # bodies (sub-*) come from the SenseLink server.
    bridged = name.startswith("ws-")
    return http_event("POST /hooks/senselink/{token}", f"/hooks/senselink/{TOKEN}", {"token": TOKEN},
                      json.dumps(record, ensure_ascii=False),
                      user_agent="devicegate-senselink-bridge/0.1" if bridged else "Java/1.8.0_292",
                      headers={"x-devicegate-source": "lobby-server"} if bridged else None)


METTAX_SERVICES = ("gps", "alarm-file", "alarm", "device-info", "passthrough", "sensor", "capture-file",
                   "face-check", "rfid")


def mettax_service(name: str) -> str:
    """doc-alarm-file -> alarm-file, variation-gps-backfill -> gps (longest service name first)."""
    rest = name.split("-", 1)[1]
    return next(s for s in sorted(METTAX_SERVICES, key=len, reverse=True) if rest.startswith(s))


def mettax_http(name: str, record: dict, *, by_service: bool = True, form: bool = False) -> dict:
    """Mettax pushes the record as a JSON *string* in a parameter named `data`."""
    from urllib.parse import urlencode

    data = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    if form:
        body, content_type = urlencode({"data": data}), "application/x-www-form-urlencoded"
    else:
        body, content_type = json.dumps({"data": data}, ensure_ascii=False), "application/json"
    if by_service:
        service = mettax_service(name)
        return http_event("POST /hooks/mettax/{token}/{service}", f"/hooks/mettax/{TOKEN}/{service}",
                          {"token": TOKEN, "service": service}, body, content_type, user_agent="okhttp/4.9.3")
    return http_event("POST /hooks/mettax/{token}", f"/hooks/mettax/{TOKEN}", {"token": TOKEN}, body, content_type,
                      user_agent="okhttp/4.9.3")


def webhook_http(vendor: str, record: dict) -> dict:
    """Any vendor's record on its plain route, POST /hooks/{vendor}/{token} with a JSON body: a
    new vendor's fixtures need no code here."""
    return http_event(f"POST /hooks/{vendor}/{{token}}", f"/hooks/{vendor}/{TOKEN}", {"token": TOKEN},
                      json.dumps(record, ensure_ascii=False), user_agent="")


def scheduled_event(rule: str = "devicegate-DeviceSweepFunctionSweep-1A2B3C",
                    ident: str = "5d2f3c1e-8a4b-4b7e-9f61-2c7f0e9d1a11") -> dict:
    """What a Schedule rule (DeviceSweepSchedule, OutboxRedriveSchedule) hands its function."""
    return {"version": "0", "id": ident, "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2025-02-07T07:35:00Z",
            "region": "us-east-1",
            "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{rule}"],
            "detail": {}}


def jointech_http(name: str, record: dict, *, by_kind: bool = True, content_type: str = "application/json") -> dict:
    body = json.dumps(record, ensure_ascii=False)
    if by_kind:
        kind = kind_of(name)
        return http_event("POST /hooks/jointech/{token}/{kind}", f"/hooks/jointech/{TOKEN}/{kind}",
                          {"token": TOKEN, "kind": kind}, body, content_type)
    return http_event("POST /hooks/jointech/{token}", f"/hooks/jointech/{TOKEN}", {"token": TOKEN}, body, content_type)


def jointech_iot(name: str, record: dict) -> dict:
    kind = kind_of(name)
    # What the topic rules' SELECT produces: the record plus fields taken from the topic.
    event = dict(record, accessKey="ak-demo", deviceNum=str(record["assetId"]), kind=kind)
    if kind == "sublock":
        event["subLockNum"] = record["subAssetID"]
    return event


def stream_event(records: dict[str, dict]) -> dict:
    from devicegate.core.envelope import RawPush
    from devicegate.core.timeutil import days_after
    from devicegate.store.events import event_item
    from devicegate.vendors import get_adapter

    adapter = get_adapter("jointech")
    out = []
    for seq, name in enumerate(("webhook-location", "webhook-alarm"), start=1):
        push = RawPush("jointech", "http", json.dumps(records[name]).encode(), route={"kind": kind_of(name)})
        event = adapter.normalize(push, RECEIVED)[0]
        item = event_item(event, days_after(RECEIVED, 90))
        out.append({
            "eventID": f"c4ca4238a0b923820dcc509a6f75849{seq}", "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1738913405, "Keys": {"pk": item["pk"], "sk": item["sk"]},
                         "NewImage": item, "SequenceNumber": f"11100000000000000000000{seq}",
                         "SizeBytes": 900, "StreamViewType": "NEW_IMAGE"},
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/devicegate-EventsTable/stream/2025-02-07T00:00:00.000",
        })
    return {"Records": out}


def build() -> dict[Path, str]:
    records_dir = HERE / "jointech" / "records"
    records = {p.stem: json.loads(p.read_text()) for p in sorted(records_dir.glob("*.json"))}
    files: dict[Path, dict] = {}
    # Every record in both shapes: the vendor pushes the same JSON by webhook and by MQTT.
    for name, record in records.items():
        files[HERE / "jointech" / f"http-{name}.json"] = jointech_http(name, record)
        files[HERE / "jointech" / f"iot-{name}.json"] = jointech_iot(name, record)
    # The single-URL route (kind told apart by fields) and a sender that mislabels its JSON.
    files[HERE / "jointech" / "http-auto-alarm.json"] = jointech_http("webhook-alarm", records["webhook-alarm"], by_kind=False)
    files[HERE / "jointech" / "http-auto-sublock.json"] = jointech_http("webhook-sublock", records["webhook-sublock"], by_kind=False)
    files[HERE / "jointech" / "http-variation-text-plain.json"] = jointech_http(
        "webhook-event", records["webhook-event"], content_type="text/plain; charset=ISO-8859-1")
    files[HERE / "outbox" / "stream-insert.json"] = stream_event(records)
    files[HERE / "outbox" / "scheduled-redrive.json"] = scheduled_event(
        "devicegate-OutboxFunctionRedrive-4D5E6F", "0b7e1f2a-3c4d-4e5f-8a9b-1c2d3e4f5a6b")
    for vendor, wrap in (("face-terminal", lambda name, record: face_terminal_http(record)),
                         ("senselink", senselink_http)):
        for path in sorted((HERE / vendor / "records").glob("*.json")):
            files[HERE / vendor / f"http-{path.stem}.json"] = wrap(path.stem, json.loads(path.read_text()))
    # Mettax: every record on its service URL as a JSON body; the single URL (kind told apart by
    # its fields) and the form encoding once each.
    mettax = {p.stem: json.loads(p.read_text()) for p in sorted((HERE / "mettax" / "records").glob("*.json"))}
    for name, record in mettax.items():
        files[HERE / "mettax" / f"http-{name}.json"] = mettax_http(name, record)
    if mettax:
        files[HERE / "mettax" / "http-auto-doc-alarm.json"] = mettax_http("doc-alarm", mettax["doc-alarm"], by_service=False)
        files[HERE / "mettax" / "http-form-doc-gps.json"] = mettax_http("doc-gps", mettax["doc-gps"], form=True)
    # Every other vendor (the AI camera, and any added since): its plain route.
    special = {"jointech", "jointech-commands", "face-terminal", "senselink", "mettax"}
    for records_dir in sorted(HERE.glob("*/records")):
        vendor = records_dir.parent.name
        if vendor not in special:
            for path in sorted(records_dir.glob("*.json")):
                files[HERE / vendor / f"http-{path.stem}.json"] = webhook_http(vendor, json.loads(path.read_text()))
    files[HERE / "device-sweep" / "scheduled.json"] = scheduled_event()
    # The command API (apps, IAM-signed): each documented command body, and a device's list.
    for path in sorted((HERE / "jointech-commands" / "records").glob("*.json")):
        files[HERE / "jointech-commands" / f"http-post-{path.stem}.json"] = jointech_command_http(
            COMMAND_DEVICE[path.stem], json.loads(path.read_text()))
    files[HERE / "jointech-commands" / "http-get-list.json"] = jointech_command_http("794308010642", None,
                                                                                    query={"limit": "20"})
    # The documented alarm carries no serial: the URL's ?device= (set by `face-terminal subscribe
    # --serial`) attributes it.
    files[HERE / "face-terminal" / "http-doc-alarm-raised-with-device.json"] = face_terminal_http(
        json.loads((HERE / "face-terminal" / "records" / "doc-alarm-raised.json").read_text()),
        query={"device": "PSC700C0MC22F02542"})
    return {path: json.dumps(doc, ensure_ascii=False, indent=2) + "\n" for path, doc in files.items()}


def main(argv: list[str]) -> int:
    wanted = build()
    if "--check" in argv:
        stale = [str(p.relative_to(HERE)) for p, text in wanted.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("stale generated events (run events/build.py):", ", ".join(stale))
            return 1
        return 0
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(wanted)} event files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
