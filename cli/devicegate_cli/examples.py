"""`devicegate examples load`: the vendors' sample pushes of events/ into the running local stack,
which is what the docs' examples assume (a device that has reported, an open alarm, a quarantined
payload...). Every vendor of the registry: each events/<vendor>/http-*.json to its webhook route
over HTTP, as the vendor would POST it; then the Jointech MQTT records to the broker on their
topics; then it waits until the outbox has published every stored event. Running it again stores
nothing new (every push is a retransmission then)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from devicegate_cli.edge import OneLineParser, UsageError, at_the_edge

#: The topic level the local stack's JointechAccessKey has (devicegate_local.stack.LOCAL_PARAMETERS).
ACCESS_KEY = "ak-demo"
#: How long to wait for the outbox to publish what the pushes stored.
SETTLE_S = 60.0


def events_dir() -> Path:
    from devicegate_local.resources import find_template

    template = find_template()
    if template is None or not (template.parent / "events").is_dir():
        raise UsageError("no events/ beside template.yaml here or above (run it inside the project)")
    return template.parent / "events"


def vendor_pushes(events: Path, vendor: str) -> list[Path]:
    """The vendor's sample HTTP pushes (invocation events of its webhook routes)."""
    return [p for p in sorted((events / vendor).glob("http-*.json"))
            if str(json.loads(p.read_text()).get("rawPath", "")).startswith(f"/hooks/{vendor}/")]


def mqtt_messages(events: Path, vendor: str) -> list[tuple[str, bytes]]:
    """(topic, payload) of the vendor's sample MQTT messages (Jointech's records/mqtt-*.json), on
    the topics its devices publish them to."""
    messages = []
    for path in sorted((events / vendor / "records").glob("mqtt-*.json")):
        record = json.loads(path.read_text())
        kind = path.stem.split("-")[1]
        topic = (f"upload/{ACCESS_KEY}/{record['assetId']}/{record['subAssetID']}/sublock" if kind == "sublock"
                 else f"upload/{ACCESS_KEY}/{record['assetId']}/{kind}")
        messages.append((topic, path.read_bytes()))
    return messages


def post(base: str, event: dict[str, Any], token: str) -> tuple[int, bytes]:
    """The request an HTTP API event records, sent to `base` (its token made the stack's)."""
    body = event.get("body") or ""
    data = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    path = str(event["rawPath"]).replace("/dev-token", f"/{token}", 1)
    query = event.get("rawQueryString")
    headers = {k: v for k, v in event["headers"].items() if k not in ("host", "content-length")}
    request = urllib.request.Request(base + path + (f"?{query}" if query else ""), data=data,
                                     method=event["requestContext"]["http"]["method"], headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def answered(vendor: str, status: int, body: bytes, outcome: Any) -> bool:
    """Whether an HTTP answer is the vendor's answer for `outcome`: its status, and the numbers of
    its body (the codes, not the texts, which may name a reason)."""
    from devicegate.vendors import get_adapter

    expected = get_adapter(vendor).answer(outcome)

    def codes(value: Any) -> Any:
        return {k: codes(v) for k, v in value.items() if not isinstance(v, str)} if isinstance(value, dict) else value

    def contains(whole: Any, part: Any) -> bool:
        if isinstance(part, dict):
            return isinstance(whole, dict) and all(k in whole and contains(whole[k], v) for k, v in part.items())
        return bool(whole == part)

    try:
        return status == expected.status and contains(json.loads(body), codes(expected.body))
    except ValueError:
        return False


def _publish(messages: list[tuple[str, bytes]], port: int) -> None:
    """Each message at QoS 1 to the stack's broker, waiting for the broker's PUBACK."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"devicegate-examples-{time.time_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()


def _running() -> dict[str, Any]:
    from devicegate_local.names import running_stack

    running = running_stack()
    if running is None or not running.get("http"):
        raise UsageError("no local stack is running here: start one with ./run local (in another terminal), "
                         "then run this again")
    return running


class _Counts:
    """Events in the table and messages on the queue of the running stack (counts only: nothing
    is read off the queue)."""

    def __init__(self, running: dict[str, Any]) -> None:
        import boto3

        from devicegate_local.names import LOCAL_CREDENTIALS, LOCAL_REGION, local_physical_name, local_queue_url

        session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
        self._ddb = session.client("dynamodb", endpoint_url=running["moto"])
        self._sqs = session.client("sqs", endpoint_url=running["moto"])
        self._queue = local_queue_url(self._sqs, "EventsQueue")
        self._table = local_physical_name("EventsTable")

    def now(self) -> tuple[int, int]:
        events, kwargs = 0, {"TableName": self._table, "ProjectionExpression": "pk"}
        while True:
            page = self._ddb.scan(**kwargs)
            events += sum(item["pk"]["S"].startswith("E#") for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue, AttributeNames=["ApproximateNumberOfMessages",
                                                  "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return events, sum(int(v) for v in attributes.values())


def _wait_published(counts: _Counts, before: tuple[int, int], settle_s: float) -> tuple[bool, int, int]:
    """Wait until the queue gained a message for every event the table gained since `before`,
    twice in a row: (done, events stored, messages published) by this run. Measured as gains, so
    messages consumers took before the run do not count against it."""
    deadline, last = time.monotonic() + settle_s, None
    while True:
        events, messages = counts.now()
        stored, published = events - before[0], messages - before[1]
        if published >= stored and last == (stored, published):
            return True, stored, published
        if time.monotonic() > deadline:
            return False, stored, published
        last = (stored, published)
        time.sleep(0.5)


def load(args: argparse.Namespace) -> int:
    from devicegate.core.adapter import Outcome
    from devicegate.vendors import vendor_names

    running = _running()
    events = events_dir()
    counts = _Counts(running)
    before = counts.now()
    token = str(running.get("token") or "dev-token")
    failed = False
    for vendor in vendor_names():
        answers: Counter[str] = Counter()
        for path in vendor_pushes(events, vendor):
            status, body = post(str(running["http"]), json.loads(path.read_text()), token)
            # Refused: the samples the vendors' docs show being refused (SenseLink's connection
            # frames), kept in quarantine for the docs' quarantine examples.
            answers["accepted" if answered(vendor, status, body, Outcome.ACCEPTED)
                    else "refused (quarantined)" if answered(vendor, status, body, Outcome.INVALID)
                    else f"unexpected answers (HTTP {status})"] += 1
        mqtt = mqtt_messages(events, vendor)
        if mqtt and running.get("mqttPort"):
            _publish(mqtt, int(running["mqttPort"]))
            answers["MQTT messages"] += len(mqtt)
        elif mqtt:
            answers["MQTT messages skipped (the stack runs --no-mqtt)"] += len(mqtt)
        failed |= any(what.startswith("unexpected") for what in answers)
        print(f"{vendor}: " + ", ".join(f"{count} {what}" for what, count in sorted(answers.items())), flush=True)
    done, stored, published = _wait_published(counts, before, args.settle)
    if not done:
        print(f"devicegate examples: the outbox published {published} of the {stored} new events within "
              f"{args.settle:g} s; queries of state and alarms may lag", file=sys.stderr)
        return 1
    print(f"loaded: {stored} new events stored and published" if stored
          else "loaded: nothing new (every sample was there already)")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="devicegate examples",
                           description="The vendors' sample pushes (events/) for the local stack: what the docs' "
                                       "examples assume is there.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=OneLineParser)
    p = sub.add_parser("load", help="push every vendor's samples into the running local stack and wait for the outbox")
    p.add_argument("--settle", type=float, default=SETTLE_S, metavar="SECONDS",
                   help=f"how long to wait for the outbox to publish them (default {SETTLE_S:g})")
    args = parser.parse_args(argv)
    # OSError: the local stack's routes did not answer.
    return at_the_edge("examples", lambda: int(load(args)), local_hint=True, target_errors=(OSError,))
