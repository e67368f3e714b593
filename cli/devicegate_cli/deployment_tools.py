"""`devicegate urls` and `devicegate smoke`: what to paste into each vendor's console, and a check
that every vendor's route stores and publishes, for a deployment (--stack) or the running local
stack.

`urls` reads the stack's outputs (the webhook URLs, with {token} in them) and the token secrets
they name; locally, the template's routes on the running stack's HTTP address and its secrets.

`smoke` builds one new record per vendor from its samples in events/ (the times made now, the
record's own id made unique: see `freshen`), learns its device and event id from the vendor's own
adapter (what the function will file it under), POSTs it to the vendor's route and then finds
the event in the table. The queue is never read: a receive counts toward EventsQueue's
maxReceiveCount (the redrive policy) whatever the visibility timeout, so a peek would move
consumers' messages toward the dead-letter queue, and a consumer may take the message first
anyway. Locally the queue's content is looked at through moto's own inventory (no receive); in a
deployment the line says the queue was not checked.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from devicegate_cli.commands import endpoint_help
from devicegate_cli.edge import OneLineParser, UsageError, at_the_edge, check_deployment_options, deployment_options

#: How long smoke waits for a record in the table (and locally on the queue).
SMOKE_WAIT_S = 30.0


@dataclass
class VendorUrls:
    vendor: str
    urls: list[str]
    token: str
    headers: list[str] = field(default_factory=list)  # header names that carry the token too


def mask(token: str) -> str:
    return token[:3] + "*" * max(4, len(token) - 3) if len(token) > 6 else "*" * 8


# --- where: a deployment's outputs, or the running local stack ----------------------------------

def deployed_urls(session: Any, stack: str, endpoint: str | None = None) -> tuple[str, list[VendorUrls]]:
    """(the HTTP API's base URL, each vendor's webhook URLs and current token) from the stack's
    outputs: a vendor is every output URL under /hooks/<vendor>/, and the output ending in
    TokenSecretArn with the same name before it holds its token."""
    from devicegate.vendors import vendor_names

    cfn = session.client("cloudformation", endpoint_url=endpoint)
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ResolvedValue") or p.get("ParameterValue", "")
                  for p in described.get("Parameters", [])}
    secrets = session.client("secretsmanager", endpoint_url=endpoint)
    found = []
    for vendor in vendor_names():
        keys = [k for k, v in outputs.items() if f"/hooks/{vendor}/" in v]
        if not keys:
            continue
        prefix = min(keys, key=len).removesuffix("WebhookUrl")
        arn = outputs.get(f"{prefix}TokenSecretArn")
        if arn is None:
            raise UsageError(f"stack {stack} has no output {prefix}TokenSecretArn for {vendor}'s token")
        token = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])["current"]
        header = parameters.get(f"{prefix}AuthHeaderName") or ""
        found.append(VendorUrls(vendor, [outputs[k] for k in sorted(keys, key=len)], token,
                                [header] if header else []))
    if "HttpApiUrl" not in outputs:
        raise UsageError(f"stack {stack} has no output HttpApiUrl: is it a devicegate stack?")
    return outputs["HttpApiUrl"], found


def local_urls() -> tuple[str, list[VendorUrls]]:
    """The same for the running local stack: the template's /hooks/<vendor>/ routes on its HTTP
    address, each vendor's token from the secret its function reads."""
    from devicegate.vendors import vendor_names
    from devicegate_cli.invoke import _token, emulation
    from devicegate_local.names import running_stack

    running = running_stack()
    if running is None or not running.get("http"):
        raise UsageError("no local stack is running here (start one with ./run local), and no --stack given")
    base = str(running["http"])
    found = []
    with emulation(fresh=False) as em:
        for vendor in vendor_names():
            routes = sorted((r for r in em.routes if r.path.startswith(f"/hooks/{vendor}/")), key=lambda r: r.path)
            if not routes:
                continue
            function = routes[0].target
            headers = [v for k, v in em.specs[function].environment.items() if k.endswith("_AUTH_HEADER") and v]
            found.append(VendorUrls(vendor, [base + r.path for r in routes], _token(function, em), headers))
    return base, found


def _session(args: argparse.Namespace) -> Any:
    import boto3

    return boto3.Session(profile_name=args.profile, region_name=args.region)


def _where(args: argparse.Namespace) -> tuple[str, list[VendorUrls]]:
    if args.stack:
        return deployed_urls(_session(args), args.stack, args.endpoint_url)
    return local_urls()


# --- urls --------------------------------------------------------------------------------------

def cmd_urls(args: argparse.Namespace) -> int:
    _, vendors = _where(args)
    rows = []
    for v in vendors:
        shown = v.token if args.reveal else mask(v.token)
        rows += [{"vendor": v.vendor, "url": url.replace("{token}", shown)} for url in v.urls]
        rows += [{"vendor": v.vendor, "url": f"header {name}: {shown}"} for name in v.headers]
    if args.json:
        json.dump([{"vendor": v.vendor, "urls": [u.replace("{token}", v.token if args.reveal else mask(v.token))
                                                 for u in v.urls],
                    "headers": {name: v.token if args.reveal else mask(v.token) for name in v.headers}}
                   for v in vendors], sys.stdout, indent=2)
        print()
        return 0
    width = max((len(r["vendor"]) for r in rows), default=0)
    for row in rows:
        print(f"{row['vendor'].ljust(width)}  {row['url']}")
    if not args.reveal:
        print("(tokens masked; --reveal prints them)", file=sys.stderr)
    return 0


# --- smoke -------------------------------------------------------------------------------------

_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})([T ])(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}(?::?\d{2})?)?$")
_COMPACT_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})?$")
#: Keys of a record's own id (a face terminal's uuid, a SenseLink record id, Mettax's id):
#: never a device's.
_ID_KEYS = {"id", "uuid", "eventid", "recordid", "messageid", "alarmid"}


def _iso_now(match: re.Match[str], now: datetime) -> str:
    date, sep, clock, fraction, zone = match.groups()
    if zone and zone != "Z":
        sign, hours, minutes = _COMPACT_OFFSET.match(zone).groups()  # type: ignore[union-attr]
        offset = timedelta(hours=int(hours), minutes=int(minutes or 0)) * (1 if sign == "+" else -1)
        local = now.astimezone(timezone(offset))
    else:
        # Naive times are read in a zone of the deployment's (SenseLinkTimeZone, the vendor's
        # documented zone): UTC's clock reads as now or earlier in any zone east of it.
        local = now
    text = local.strftime("%Y-%m-%d") + sep + local.strftime("%H:%M:%S")
    if fraction:
        text += "." + f"{local.microsecond:06d}"[: len(fraction) - 1].ljust(len(fraction) - 1, "0")
    return text + (zone or "")


def _fresh_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        digits = len(str(abs(value))) or 1
        return random.randrange(10 ** (digits - 1), 10 ** digits)
    if isinstance(value, str) and value.isdigit():
        return "".join(random.choice("0123456789") for _ in value)
    if isinstance(value, str):
        try:
            uuid.UUID(value)
            return str(uuid.uuid4())
        except ValueError:
            pass
        # An id with a device prefix (Mettax "105045133913_1234567893043003392"): a new tail.
        head, sep, tail = value.rpartition("_")
        if sep and tail.isdigit():
            return head + sep + _fresh_id(tail)
        return f"{value}-{uuid.uuid4().hex[:12]}"
    return value


def freshen(value: Any, now: datetime, key: str = "") -> Any:
    """`value` (a vendor body, JSON inside strings included) with every time made `now` in the
    same notation and every record id made new; device ids are left as they are."""
    if isinstance(value, dict):
        return {k: freshen(v, now, k) for k, v in value.items()}
    if isinstance(value, list):
        return [freshen(v, now, key) for v in value]
    if key.lower() in _ID_KEYS and value not in (None, "", 0):
        return _fresh_id(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and 1_000_000_000 <= value < 4_000_000_000:
        return int(now.timestamp())
    if isinstance(value, int) and 1_000_000_000_000 <= value < 4_000_000_000_000:
        return int(now.timestamp() * 1000)
    if isinstance(value, str):
        match = _ISO.match(value)
        if match:
            return _iso_now(match, now)
        if re.fullmatch(r"\d{8}T\d{6}([+-]\d{2}(:?\d{2})?)?", value):  # the AI camera's compact time
            zone = value[15:]
            sign, hours, minutes = (_COMPACT_OFFSET.match(zone).groups() if zone  # type: ignore[union-attr]
                                    else ("+", "00", "00"))
            local = now.astimezone(timezone(timedelta(hours=int(hours), minutes=int(minutes or 0))
                                            * (1 if sign == "+" else -1)))
            return local.strftime("%Y%m%dT%H%M%S") + zone
        if value[:1] in "{[":
            try:
                inner = json.loads(value)
            except ValueError:
                return value
            return json.dumps(freshen(inner, now), ensure_ascii=False, separators=(",", ":"))
    return value


@dataclass
class SmokeRecord:
    vendor: str
    sample: str  # the events/ file it was made from
    event: dict[str, Any]  # the HTTP API event (its body and path tell the request)
    device_id: str
    event_id: str
    occurred_at: str | None  # None: the record has no time of its own


def _with_body(event: dict[str, Any], body: bytes) -> dict[str, Any]:
    import base64

    clone = copy.deepcopy(event)
    try:
        clone["body"], clone["isBase64Encoded"] = body.decode("utf-8"), False
    except UnicodeDecodeError:
        clone["body"], clone["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return clone


def _fresh_body(event: dict[str, Any], now: datetime) -> bytes | None:
    """The sample's body made new: JSON, or a form whose fields hold JSON (Mettax); None if
    neither (a multipart or binary body is not freshened)."""
    from urllib.parse import parse_qsl, urlencode

    from devicegate.infra.http import body_bytes

    raw = body_bytes(event, base64_fallback=True, keep_unpaired=True)
    content_type = str((event.get("headers") or {}).get("content-type", ""))
    if "x-www-form-urlencoded" in content_type:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        return urlencode([(k, freshen(v, now, k)) for k, v in pairs]).encode()
    try:
        return json.dumps(freshen(json.loads(raw), now), ensure_ascii=False).encode()
    except ValueError:
        return None


def _normalized(vendor: str, event: dict[str, Any], now: datetime) -> list[Any]:
    from devicegate.core.envelope import NormalizedEvent
    from devicegate.ingest.http import http_push
    from devicegate.vendors import get_adapter

    adapter = get_adapter(vendor)
    params = event.get("pathParameters") or {}
    query = event.get("queryStringParameters") or {}
    route = {n: params[n] for n in adapter.route_path_params if params.get(n) is not None}
    route.update({n: query[n] for n in adapter.route_query_params if query.get(n)})
    try:
        out = adapter.normalize(http_push(vendor, event, params.get("token"), route), now)
    except Exception:  # noqa: BLE001 - a sample the adapter refuses is simply not a smoke candidate
        return []
    return [e for e in out if isinstance(e, NormalizedEvent)]


def smoke_record(vendor: str, events: Path, now: datetime | None = None) -> SmokeRecord | None:
    """A new record for `vendor` from its first sample in events/ that stays one whole event of
    the same device with a new event id once freshened; None when no sample does."""
    now = now or datetime.now(UTC) - timedelta(seconds=2)
    for path in sorted((events / vendor).glob("http-*.json")):
        sample = json.loads(path.read_text())
        if not str(sample.get("rawPath", "")).startswith(f"/hooks/{vendor}/"):
            continue
        before = _normalized(vendor, sample, now)
        body = _fresh_body(sample, now)
        if len(before) != 1 or body is None:
            continue
        event = _with_body(sample, body)
        after = _normalized(vendor, event, now)
        if (len(after) == 1 and after[0].part is None
                and after[0].deviceId == before[0].deviceId and after[0].eventId != before[0].eventId):
            # A record without a time of its own is filed at its receipt, known only to the
            # function: it is then looked up by id alone.
            return SmokeRecord(vendor, str(path.relative_to(events.parent)), event, after[0].deviceId,
                               after[0].eventId, after[0].occurredAt if after[0].device_time else None)
    return None


def _post(base: str, record: SmokeRecord, token: str, headers: list[str]) -> tuple[int, bytes]:
    from devicegate.infra.http import body_bytes

    event = record.event
    path = str(event["rawPath"]).replace("/dev-token", f"/{token}", 1)
    query = event.get("rawQueryString")
    sent = {k: v for k, v in event["headers"].items() if k not in ("host", "content-length")}
    sent.update({name: token for name in headers})
    request = urllib.request.Request(base.rstrip("/") + path + (f"?{query}" if query else ""),
                                     data=body_bytes(event, base64_fallback=True, keep_unpaired=True),
                                     method="POST", headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _local_queue_has(moto: str, vendor: str, device_id: str, event_id: str) -> bool:
    """Whether the local EventsQueue holds the event's message, from moto's inventory (no receive)."""
    from devicegate.outbox.messages import deduplication_id

    wanted = deduplication_id(vendor, device_id, event_id)
    with urllib.request.urlopen(moto.rstrip("/") + "/moto-api/data.json", timeout=30) as response:
        inventory = json.loads(response.read())
    return any(m.get("deduplication_id") == wanted for m in (inventory.get("sqs") or {}).get("Message", []))


def cmd_smoke(args: argparse.Namespace) -> int:
    import boto3

    from devicegate.core.adapter import Outcome
    from devicegate.store.queries import event_by_id
    from devicegate.vendors import vendor_names
    from devicegate_cli.examples import answered, events_dir
    from devicegate_local.names import LOCAL_CREDENTIALS, LOCAL_REGION, local_physical_name, running_stack

    base, vendors = _where(args)
    if args.stack:
        session = _session(args)
        ddb = session.client("dynamodb", endpoint_url=args.endpoint_url)
        outputs = session.client("cloudformation", endpoint_url=args.endpoint_url).describe_stacks(
            StackName=args.stack)["Stacks"][0].get("Outputs", [])
        table = next((o["OutputValue"] for o in outputs if o["OutputKey"] == "EventsTableName"), None)
        if table is None:
            raise UsageError(f"stack {args.stack} has no output EventsTableName: is it a devicegate stack?")
        moto = None
    else:
        moto = str((running_stack() or {}).get("moto"))
        ddb = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS).client("dynamodb", endpoint_url=moto)
        table = local_physical_name("EventsTable")
    events = events_dir()
    by_vendor = {v.vendor: v for v in vendors}
    failed = False
    for vendor in vendor_names():
        where = by_vendor.get(vendor)
        record = smoke_record(vendor, events)
        if where is None or record is None:
            failed = True
            why = "no webhook URL in the stack" if where is None else f"no sample in events/{vendor}/ can be made new"
            print(f"{vendor}  FAILED  {why}", flush=True)
            continue
        status, body = _post(base, record, where.token, where.headers)
        if not answered(vendor, status, body, Outcome.ACCEPTED):
            failed = True
            print(f"{vendor}  FAILED  HTTP {status}: {body[:200].decode('utf-8', 'replace')} "
                  f"(sent {record.sample}, made new)", flush=True)
            continue
        deadline = time.monotonic() + args.wait
        stored = queued = False
        while True:
            stored = stored or event_by_id(ddb, table, vendor, record.device_id, record.event_id,
                                           record.occurred_at) is not None
            if moto is not None and stored and not queued:
                queued = _local_queue_has(moto, vendor, record.device_id, record.event_id)
            if (stored and (queued or moto is None)) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        queue = ("queue: not read (a deployment's messages are its consumers')" if moto is None
                 else "published" if queued else f"NOT on the queue within {args.wait:g} s")
        ok = stored and (queued or moto is None)
        failed |= not ok
        print(f"{vendor}  {'ok' if ok else 'FAILED'}  device {record.device_id} event {record.event_id}: "
              f"{'stored' if stored else f'NOT stored within {args.wait:g} s'}, {queue}", flush=True)
    return 1 if failed else 0


# --- the commands ------------------------------------------------------------------------------

def _options(parser: argparse.ArgumentParser) -> None:
    deployment_options(parser)
    parser.add_argument("--endpoint-url", help=endpoint_help())


def parse_urls(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="devicegate urls",
                           description="Each vendor's webhook URL(s), paste-ready, and the header carrying the token "
                                       "where the deployment asks for one; tokens masked unless --reveal.")
    _options(parser)
    parser.add_argument("--reveal", action="store_true", help="print the tokens themselves")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser.parse_args(argv)


def parse_smoke(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="devicegate smoke",
                           description="Push one new record per vendor (made from its samples in events/) to the "
                                       "webhook routes and find each stored (and, locally, on the queue); one line "
                                       "per vendor, exit 1 if any failed.")
    _options(parser)
    parser.add_argument("--wait", type=float, default=SMOKE_WAIT_S, metavar="SECONDS",
                        help=f"how long to look for each record (default {SMOKE_WAIT_S:g})")
    return parser.parse_args(argv)


def _run(name: str, command: Any, args: argparse.Namespace) -> int:
    def call() -> int:
        check_deployment_options(args)
        return int(command(args))

    from devicegate_local.resources import TemplateError

    return at_the_edge(name, call, target_errors=(OSError, TemplateError))


def main_urls(argv: list[str]) -> int:
    return _run("urls", cmd_urls, parse_urls(argv))


def main_smoke(argv: list[str]) -> int:
    return _run("smoke", cmd_smoke, parse_smoke(argv))
