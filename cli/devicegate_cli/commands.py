"""Query, quarantine and replay commands. With no target options they read the running local
stack; with --stack (and --profile/--region) they read a deployment. Every command that talks to
AWS (these, `strategy`, and `command --stack`) finds its endpoints with `endpoint_url`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from devicegate_cli.edge import OneLineParser, UsageError, at_the_edge, check_deployment_options, deployment_options
from devicegate_local.names import (
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    default_moto_endpoint,
    local_endpoint,
    local_physical_name,
    local_queue_url,
)

#: The local emulation's endpoint for every service when nothing else names one.
ENDPOINT_VARIABLE = "DEVICEGATE_ENDPOINT"


def endpoint_url(session: Any, service: str, explicit: str | None = None, fallback: str | None = None) -> str | None:
    """The endpoint a CLI client for `service` talks to, decided here for every command:

    1. `explicit`: --endpoint-url (or, for the local stack, $DEVICEGATE_ENDPOINT);
    2. what botocore itself would take: AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, or the
       shared config file's `services` section (unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS);
    3. `fallback`: the local stack's moto (http://127.0.0.1:5000); None for a deployment (AWS).
    """
    if explicit:
        return explicit
    return _configured_endpoint(session, service) or fallback


def _configured_endpoint(session: Any, service: str) -> str | None:
    # botocore's own lookup, so service names map to variables exactly as botocore maps them
    # (dynamodbstreams -> AWS_ENDPOINT_URL_DYNAMODB_STREAMS) and the config file counts too. The
    # class is private to botocore: tests/integration/test_cli_queries.py notices if it moves.
    from botocore.configprovider import ConfiguredEndpointProvider

    core = session._session
    if core.get_config_variable("ignore_configured_endpoint_urls"):
        return None
    return ConfiguredEndpointProvider(core.full_config, core.get_scoped_config(), service).provide()


@dataclass
class Target:
    """Where the commands read and write: a deployed stack, or the local emulation."""

    session: Any
    endpoint: str | None  # an explicit endpoint for every service (--endpoint-url), or None
    table: str
    bucket: str
    stack: str | None = None
    fallback: str | None = None  # the local stack's endpoint, for services nothing else configures

    def endpoint_for(self, service: str) -> str | None:
        return endpoint_url(self.session, service, self.endpoint, self.fallback)

    def client(self, service: str, **options: Any) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_for(service), **options)

    def physical(self, logical_id: str) -> str:
        """A template resource's physical id (a queue's is its URL)."""
        if self.stack:
            detail = self.client("cloudformation").describe_stack_resource(
                StackName=self.stack, LogicalResourceId=logical_id)["StackResourceDetail"]
            return detail["PhysicalResourceId"]
        if logical_id.endswith("Queue"):
            return local_queue_url(self.client("sqs"), logical_id)
        return local_physical_name(logical_id)

    def events_topic(self) -> str:
        """The fan-out topic's ARN (template EventsTopic, there when ConsumerApps is set), or ""."""
        if self.stack:
            stack = self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"][0]
            return next((o["OutputValue"] for o in stack.get("Outputs", []) if o["OutputKey"] == "EventsTopicArn"), "")
        name = local_physical_name("EventsTopic") + ".fifo"
        topics = self.client("sns").list_topics().get("Topics", [])
        return next((t["TopicArn"] for t in topics if t["TopicArn"].endswith(":" + name)), "")

    def reads(self) -> Any:
        """The typed client's plain reads (devicegate.client.TableReads) of this target's table:
        the listings below read through it, as apps and the console do."""
        from devicegate.client import TableReads

        return TableReads(self.table, self.client("dynamodb"), shards=self.shards())

    def shards(self) -> int:
        """How many shards each sharded list has: the deployed stack's output Shards; for the local
        stack, SHARDS or the default, as its functions have it."""
        if self.stack:
            stack = self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"][0]
            found = next((o["OutputValue"] for o in stack.get("Outputs", []) if o["OutputKey"] == "Shards"), None)
            if found:
                return int(found)
        from devicegate.store.keys import shard_count

        return shard_count()

    def parameter(self, name: str) -> str:
        """A template parameter as deployed (the template's default for the local stack)."""
        if self.stack:
            stack = self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"][0]
            for entry in stack.get("Parameters", []):
                if entry["ParameterKey"] == name:
                    return entry.get("ResolvedValue") or entry["ParameterValue"]
        from devicegate_local.cfn_template import load_template
        from devicegate_local.resources import find_template

        template = find_template()
        if template is None:
            raise SystemExit(f"devicegate: cannot find template.yaml for the default of {name}")
        return str(load_template(template)["Parameters"][name]["Default"])


def resolve_target(args: argparse.Namespace) -> Target:
    import boto3

    if args.stack:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        target = Target(session, args.endpoint_url, args.table or "", "", stack=args.stack)
        target.table = target.table or target.physical("EventsTable")
        target.bucket = target.physical("PayloadBucket")
        return target
    session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
    return Target(session, args.endpoint_url or os.environ.get(ENDPOINT_VARIABLE),
                  args.table or local_physical_name("EventsTable"),
                  local_physical_name("PayloadBucket", "AWS::S3::Bucket"), fallback=default_moto_endpoint())


def store_over(t: Target) -> Any:
    """How a replay builds the store the functions use, configured with the deployment's retention,
    over the clients of its run (a dry run's withhold their writes)."""
    from devicegate.infra.settings import Settings
    from devicegate.store.events import DynamoEventStore

    settings = Settings.model_validate({"TABLE_NAME": t.table, "PAYLOAD_BUCKET": t.bucket,
                                        "RETENTION_DAYS": t.parameter("RetentionDays"),
                                        "QUARANTINE_RETENTION_DAYS": t.parameter("QuarantineRetentionDays")})

    def build(dynamodb: Any, s3: Any) -> DynamoEventStore:
        return DynamoEventStore(dynamodb, s3, t.table, t.bucket, settings.retention_for,
                                settings.quarantine_retention_days)

    return build


# --- arguments: every mistake is one line --------------------------------------------------------

def vendor_arg(value: str) -> str:
    from devicegate.vendors import vendor_names

    if value not in vendor_names():
        raise argparse.ArgumentTypeError(f"unknown vendor {value!r}; one of: {', '.join(vendor_names())}")
    return value


def time_arg(value: str) -> str:
    """An ISO 8601 time (`2025-02-07T08:00:00Z`, `2025-02-07 08:00`; naive = UTC), as the table
    writes times."""
    from devicegate.core.timeutil import iso_utc, parse_time

    try:
        return iso_utc(parse_time(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time, e.g. 2025-02-07T08:00:00Z") from None


def limit_arg(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of items (1 or more; --all for every one)")
    return number


#: The statuses of an alarm lifecycle (store.state).
ALARM_STATUSES = ("open", "releasing", "release_failed", "released", "unknown")


def _kinds_of(vendor: str) -> tuple[str, ...]:
    from devicegate.store.liveness import GATEWAY_KINDS
    from devicegate.vendors import get_adapter

    return (*get_adapter(vendor).kinds, *sorted(GATEWAY_KINDS))


def _check_window(args: argparse.Namespace) -> None:
    if args.since and args.until and args.since >= args.until:
        raise UsageError(f"--since {args.since} is not before --until {args.until}: nothing could be in between")


def _check_kind(args: argparse.Namespace) -> None:
    kinds = _kinds_of(args.vendor)
    if args.kind and args.kind not in kinds:
        raise UsageError(f"{args.vendor} has no kind {args.kind!r}; its kinds: {', '.join(kinds)}")


def _limit(args: argparse.Namespace) -> int | None:
    return None if getattr(args, "all", False) else args.limit


def _say_if_more(page: Any, args: argparse.Namespace, what: str) -> None:
    """Say on stderr (stdout stays the listing) that a page of the client stopped at its limit
    with more behind it."""
    if page.more:
        print(f"(the newest {_limit(args)} {what}; older ones are not shown: --limit N or --all)", file=sys.stderr)


def _say_if_unlisted(page: Any, what: str) -> None:
    """A listing without --limit/--all that stopped at the client's default with more behind it."""
    if page.more:
        print(f"(the first {len(page.items)} {what}; there are more)", file=sys.stderr)


# --- output ------------------------------------------------------------------------------------

#: Cells are cut to this width unless --wide (set by run_command).
CELL_WIDTH: int | None = 70
#: Times shown in the machine's zone with its offset (--local-time; set by run_command), else as stored (UTC).
LOCAL_TIME = False


def shown_time(value: Any) -> Any:
    from devicegate_cli.presentation import local_time

    return local_time(value) if LOCAL_TIME and isinstance(value, str) else value


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(shown_time(value))
    if CELL_WIDTH is None or len(text) <= CELL_WIDTH:
        return text
    return text[:CELL_WIDTH - 1] + "…"


#: The gateway's own device.offline / device.online events.
_GATEWAY_SUMMARY = ("offlineSince", "onlineAt", "lastHeardAt")


def summarize(event: dict[str, Any]) -> str:
    """A few fields that say what the event is: the ones its vendor's adapter names."""
    from devicegate.vendors import get_adapter, vendor_names

    vendor, data = event.get("vendor"), event.get("data") or {}
    fields = get_adapter(vendor).summary_fields if vendor in vendor_names() else ()
    parts = [f"{k}={data[k]}" for k in (*fields, *_GATEWAY_SUMMARY) if data.get(k) not in (None, "")]
    return " ".join(parts[:4])


def print_events(events: list[dict[str, Any]], as_json: bool, columns: list[str]) -> int:
    if as_json:
        emit_json(events)
    else:
        print_table([dict(e, summary=summarize(e)) for e in events], columns)
    return 0


def emit_json(value: Any) -> None:
    if LOCAL_TIME:
        from devicegate_cli.presentation import times_in_local_zone

        value = times_in_local_zone(value)
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    print()


# --- commands ----------------------------------------------------------------------------------

def cmd_events(args: argparse.Namespace) -> int:
    if args.follow or not args.device:
        from devicegate_cli.fleet import fleet_command

        return fleet_command(args)
    if not args.vendor:
        raise UsageError("--device needs its --vendor")
    if args.count:
        raise UsageError("--count goes with --follow (a list stops at --limit)")
    _check_kind(args)
    _check_window(args)
    t = resolve_target(args)
    page = t.reads().timeline(args.vendor, args.device, kind=args.kind, since=args.since, until=args.until,
                              limit=_limit(args))
    if not page.items and not args.since and not args.until and not args.kind:
        _require_device(t, args.vendor, args.device)
    _say_if_more(page, args, "events")
    return print_events(page.items, args.json, ["occurredAt", "kind", "eventId", "summary"])


def _require_device(t: Target, vendor: str, device: str) -> None:
    """A device the gateway never heard from is a mistake (a typo), not an empty timeline."""
    from devicegate.store.queries import device_state

    if device_state(t.client("dynamodb"), t.table, vendor, device) is None:
        raise UsageError(f"no {vendor} device {device!r} has ever been heard from (devicegate devices "
                         f"--vendor {vendor} lists them)")


def cmd_state(args: argparse.Namespace) -> int:
    t = resolve_target(args)
    state = t.reads().state(args.vendor, args.device)
    if state is None:
        print(f"no state for {args.vendor} device {args.device}", file=sys.stderr)
        return 1
    if args.json:
        emit_json(state)
        return 0
    print(f"{state['vendor']} device {state['deviceId']}: last seen {shown_time(state['lastSeen'])} "
          f"({state['lastKind']})")
    if state.get("heardAt"):
        status = ("online" if state.get("online") is not False
                  else f"offline since {shown_time(state.get('offlineSince'))}")
        print(f"{status}; last heard from {shown_time(state['heardAt'])}")
    rows = [{"group": name, "at": g.pop("at"), "values": g} for name, g in state["state"].items()]
    print_table(rows, ["group", "at", "values"])
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    t = resolve_target(args)
    if args.offline:
        devices = t.reads().offline(args.vendor).items
        columns = ["vendor", "deviceId", "offlineSince", "heardAt", "lastKind"]
    elif args.vendor:
        devices = t.reads().devices(args.vendor).items
        columns = ["deviceId", "online", "heardAt", "lastSeen", "lastKind"]
    else:
        print("devicegate: devices needs --vendor, or --offline", file=sys.stderr)
        return 2
    emit_json(devices) if args.json else print_table(devices, columns)
    return 0


def cmd_links(args: argparse.Namespace) -> int:
    t = resolve_target(args)
    reads = t.reads()
    # An id may be a record id (GPS fix + alarm...), an alarm id (its files) or a capture id.
    links = [args.id] if ":" in args.id else [args.id, f"alarm:{args.id}", f"capture:{args.id}"]
    events = []
    for link in links:
        page = reads.linked(args.vendor, link)
        _say_if_unlisted(page, f"records linked by {link}")
        events += page.items
    return print_events(events, args.json, ["occurredAt", "kind", "deviceId", "eventId", "summary"])


def cmd_parts(args: argparse.Namespace) -> int:
    t = resolve_target(args)
    page = t.reads().assemblies(args.vendor, args.device, kind=args.kind)
    _say_if_unlisted(page, "records sent in parts")
    rows = page.items
    if args.json:
        emit_json(rows)
        return 0
    print_table([dict(r, parts=", ".join(sorted(r["parts"])), assembled=r["assembledEventId"] or "-") for r in rows],
                ["firstReceivedAt", "kind", "group", "parts", "assembled"])
    return 0


def cmd_alarms(args: argparse.Namespace) -> int:
    _check_window(args)
    t = resolve_target(args)
    reads = t.reads()
    if args.status or args.device:
        # Lifecycle items (face terminal, SenseLink): one per alarm, with its current status.
        if not args.vendor:
            print("devicegate: --status and --device need --vendor", file=sys.stderr)
            return 2
        if args.device:
            rows = reads.device_alarms(args.vendor, args.device).items
            rows = [r for r in rows if not args.status or r["status"] == args.status]
        else:
            page = reads.alarms_in_status(args.vendor, args.status, limit=_limit(args))
            _say_if_more(page, args, "alarms")
            rows = page.items
        if args.json:
            emit_json(rows)
        else:
            print_table([dict(r, what=" ".join(str(r[k]) for k in ("code", "codeName") if r.get(k) is not None))
                         for r in rows],
                        ["statusAt", "deviceId", "alarmId", "status", "what", "steps"])
        return 0
    page = reads.alarms(since=args.since, until=args.until, limit=_limit(args), vendor=args.vendor)
    _say_if_more(page, args, "alarms")
    return print_events(page.items, args.json, ["occurredAt", "vendor", "deviceId", "eventId", "summary"])


def cmd_event(args: argparse.Namespace) -> int:
    t = resolve_target(args)
    event = t.reads().event(args.vendor, args.device, args.id, args.at)
    if event is None:
        print(f"no {args.vendor} event {args.id}", file=sys.stderr)
        return 1
    emit_json(event)
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    t = resolve_target(args)
    if args.show:
        item = t.reads().quarantined_payload(args.vendor, args.show)
        if item is None:
            print(f"no quarantined {args.vendor} payload {args.show}", file=sys.stderr)
            return 1
        if args.json:
            emit_json(item)
            return 0
        from devicegate_cli.presentation import quarantine_lines

        print("\n".join(quarantine_lines(dict(item, id=args.show), _quarantined_body(t, item), LOCAL_TIME)))
        return 0
    page = t.reads().quarantined(args.vendor, limit=_limit(args))
    _say_if_more(page, args, "quarantined payloads")
    items = page.items
    if args.json:
        emit_json(items)
    else:
        print_table([dict(i, fields=",".join(p["field"] for p in i.get("problems", []))) for i in items],
                    ["id", "lastSeenAt", "kind", "transport", "seenCount", "reason", "fields"])
    return 0


def _quarantined_body(t: Target, item: dict[str, Any]) -> bytes | None:
    import base64

    if "body" in item:
        return str(item["body"]).encode("utf-8")
    if "bodyBase64" in item:
        return base64.b64decode(item["bodyBase64"])
    if not item.get("bodyRef"):
        return None
    bucket, _, key = str(item["bodyRef"]).removeprefix("s3://").partition("/")
    return bytes(t.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def cmd_state_failures(args: argparse.Namespace) -> int:
    from devicegate.store.state_failures import StateFailures

    t = resolve_target(args)
    items = StateFailures(t.client("dynamodb"), t.table).for_vendor(args.vendor)
    if args.json:
        emit_json(items)
        return 0
    rows = [dict(item, eventIds=" ".join(item.get("eventIds") or [])) for item in items]
    print_table(rows, ["lastAt", "deviceId", "what", "error", "count", "firstAt", "eventIds"])
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from devicegate.ingest.replay import replay

    t = resolve_target(args)
    _check_window(args)
    outcomes = replay(t.client("dynamodb"), t.client("s3"), t.table, store_over(t), args.vendor,
                      ids=args.id or None, dry_run=args.dry_run, reason=args.reason, since=args.since,
                      until=args.until)
    return print_outcomes(outcomes, ok=("stored", "duplicate", "would-replay"), as_json=args.json)


def cmd_redrive(args: argparse.Namespace) -> int:
    from devicegate.ingest.replay import redrive_iot_errors, redrive_queue, takes_mqtt
    from devicegate.vendors import vendor_names

    if args.vendor not in vendor_names():
        print(f"devicegate: unknown vendor {args.vendor!r}; known: {', '.join(vendor_names())}", file=sys.stderr)
        return 2
    if args.source != "outbox-failures" and not takes_mqtt(args.vendor):
        # Only MQTT vendors have messages there; taking another vendor's would file them wrong.
        mqtt = ", ".join(v for v in vendor_names() if takes_mqtt(v))
        print(f"devicegate: {args.vendor} sends nothing through AWS IoT Core, so --source {args.source} holds "
              f"nothing of it (vendors with MQTT: {mqtt})", file=sys.stderr)
        return 2
    t = resolve_target(args)
    if args.source == "outbox-failures":
        return _redrive_outbox(t, args.dry_run, args.json)
    ddb, s3 = t.client("dynamodb"), t.client("s3")
    if args.source == "ingest-queue":
        outcomes = redrive_queue(t.client("sqs"), t.physical("IngestFailureQueue"), ddb, s3, t.table, store_over(t),
                                 args.vendor, dry_run=args.dry_run)
    else:
        outcomes = redrive_iot_errors(s3, t.bucket, ddb, t.table, store_over(t), args.vendor, dry_run=args.dry_run)
    return print_outcomes(outcomes, ok=("stored", "duplicate", "would-replay", "would-quarantine", "quarantined"),
                          as_json=args.json, what="redrive")


def print_outcomes(outcomes: Iterable[Any], ok: tuple[str, ...], as_json: bool = False,
                   what: str = "replay") -> int:
    """One line per item as it is done (what was done before an interruption is on record), then
    the count of each outcome; with `as_json`, one JSON array at the end. A running count goes to
    stderr as it goes (presentation.Progress). Exit status 2 when any outcome is not in `ok`."""
    from devicegate_cli.presentation import Progress, outcome_record

    report = sys.stdout
    progress = Progress(what, per_item_on_terminal=not as_json)
    records: list[dict[str, Any]] = []
    with _layer_output_on_stderr():
        for outcome in outcomes:
            progress.add(outcome.status)
            if as_json:
                records.append(outcome_record(outcome))
                continue
            fields = f"  fields: {','.join(outcome.fields)}" if outcome.fields else ""
            print(f"{outcome.id}  {outcome.status}  {outcome.detail or '-'}{fields}".rstrip(), file=report,
                  flush=True)
    progress.done()
    counts = progress.counts
    if as_json:
        emit_json(records)
    elif not counts:
        print("(none)")
    else:
        print(", ".join(f"{count} {status}" for status, count in sorted(counts.items())))
    return 0 if set(counts) <= set(ok) else 2


@contextlib.contextmanager
def _layer_output_on_stderr() -> Iterator[None]:
    """The layer writes its JSON logs and metric lines (EMF) to stdout, where Lambda collects them;
    run from the CLI, stdout is the report, so for the while they go to stderr."""
    from devicegate.infra.observability import logger

    handler = logger.registered_handler
    previous = handler.setStream(sys.stderr) if isinstance(handler, logging.StreamHandler) else None
    try:
        with contextlib.redirect_stdout(sys.stderr):  # metric lines are print()ed
            yield
    finally:
        if previous is not None and isinstance(handler, logging.StreamHandler):
            handler.setStream(previous)


def _redrive_outbox(t: Target, dry_run: bool, as_json: bool = False) -> int:
    """Publish again the stream batches the outbox gave up on, as the outbox's own schedule does
    (devicegate.outbox.redrive_failed_batches: records re-read from the stream, which keeps them
    24 hours; a failure record is deleted once all its events are done)."""
    from devicegate.outbox.batch import process_batch
    from devicegate.outbox.messages import events_publisher
    from devicegate.outbox.stream import redrive_failed_batches
    from devicegate.store.events import load_offloaded
    from devicegate.store.state import DynamoStateStore
    from devicegate.vendors import alarm_transition_for, command_reply_for, state_patch_for

    # As the outbox publishes: to the fan-out topic when the stack has one.
    topic = t.events_topic()
    publisher = events_publisher(t.client("sqs"), t.client("sns") if topic else None, t.physical("EventsQueue"), topic)
    state = DynamoStateStore(t.client("dynamodb"), t.table)
    s3 = t.client("s3")

    def publish(records: list[Any]) -> list[str]:
        return process_batch(records, publisher, state, state_patch_for, table=t.table,
                             transition_for=alarm_transition_for, reply_for=command_reply_for,
                             load_data=lambda ref: load_offloaded(s3, ref))

    outcomes = redrive_failed_batches(t.client("sqs"), t.physical("OutboxFailureQueue"), t.client("dynamodbstreams"),
                                      publish, dry_run=dry_run)
    rows = [{"id": o.message_id, "status": o.status, "detail": f"{o.published} of {o.events} events"}
            for o in outcomes]
    emit_json(rows) if as_json else print_table(rows, ["id", "status", "detail"])
    return 0 if all(o.status in ("published", "would-publish") for o in outcomes) else 2


def _iso(value: str | None) -> str | None:
    if value is None:
        return None
    from devicegate.core.timeutil import iso_utc, parse_time

    return iso_utc(parse_time(value))


def endpoint_help() -> str:
    return (f"endpoint for every AWS call (default: ${ENDPOINT_VARIABLE}, else botocore's AWS_ENDPOINT_URL_<SERVICE> "
            f"/ AWS_ENDPOINT_URL, else the running local stack's (.devicegate/local.json), else {local_endpoint()}; "
            f"with --stack: botocore's, else AWS)")


def target_options() -> OneLineParser:
    """The options resolve_target reads (a parent parser): the running local stack by default,
    a deployment with --stack. Shared by every command that reads or writes the table."""
    target = OneLineParser(add_help=False)
    deployment_options(target)
    target.add_argument("--endpoint-url", help=endpoint_help())
    target.add_argument("--table", help="table name, overriding discovery")
    target.add_argument("--wide", action="store_true", help="never cut a table cell")
    target.add_argument("--local-time", action="store_true",
                        help="times in this machine's time zone, with its offset (default: UTC, as stored)")
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="devicegate",
                           description="The devicegate operator's tool: what the gateway stored, its quarantine and "
                                       "replays, devices' commands and set-up, and the local stack. With no target "
                                       "options a command reads the running local stack; with --stack (and "
                                       "--profile/--region) a deployment.",
                           epilog="Each command has its own --help. Times are ISO 8601 (UTC unless an offset is "
                                  "given); listings say on stderr when they stopped at their --limit.")
    target = target_options()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    # Commands with option parsers of their own (main.py hands them their arguments before this
    # parser runs): listed here so that `devicegate --help` names every command.
    for name, help_ in OWN_PARSER_HELP.items():
        sub.add_parser(name, help=help_, add_help=False)

    def device_cmd(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[target], help=help_)
        p.add_argument("--vendor", required=True, type=vendor_arg)
        p.add_argument("--device", required=True)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    for name, help_ in (("events", "events of a device, or of the whole fleet (without --device), newest first; "
                                   "--follow: new ones as they are stored"),
                        ("tail", "new events of the whole fleet as they are stored, until Ctrl-C "
                                 "(devicegate events --follow)")):
        p = sub.add_parser(name, parents=[target], help=help_)
        p.add_argument("--vendor", type=vendor_arg, help="only this vendor's devices (needed with --device)")
        p.add_argument("--device", help="one device's events (with --vendor); without it, every device's")
        p.add_argument("--kind", help="only this kind (e.g. alarm; the vendor's kinds are checked)")
        p.add_argument("--since", type=time_arg, help="ISO 8601 time, inclusive (with --follow: the events "
                                                      "stored since then first, oldest first)")
        p.add_argument("--until", type=time_arg, help="ISO 8601 time, exclusive (not with --follow)")
        if name == "events":
            p.add_argument("--follow", action="store_true", help="then print new events as they are stored, "
                                                                 "until Ctrl-C (devicegate tail)")
        p.add_argument("--count", type=limit_arg, help="with --follow: stop after printing this many events")
        _limit_options(p, 50)
        p.add_argument("--json", action="store_true",
                       help="machine-readable output (with --follow: one JSON object per line)")
        p.set_defaults(func=cmd_events, follow=name == "tail")
    device_cmd("state", "a device's latest state").set_defaults(func=cmd_state)

    p = sub.add_parser("devices", parents=[target], help="all devices of a vendor with last seen, or those offline now")
    p.add_argument("--vendor", type=vendor_arg, help="this vendor's devices (with --offline: only this vendor's)")
    p.add_argument("--offline", action="store_true", help="only the devices offline now (every vendor by default)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("links", parents=[target],
                       help="records a vendor ties together (Mettax: by record id, alarm id or capture id)")
    p.add_argument("--vendor", required=True, type=vendor_arg)
    p.add_argument("--id", required=True, help="record id, alarm id or capture id (or a link such as alarm:ID)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_links)

    p = sub.add_parser("parts", parents=[target],
                       help="a device's records sent in parts (Mettax face checks) and the parts that came")
    p.add_argument("--vendor", required=True, type=vendor_arg)
    p.add_argument("--device", required=True)
    p.add_argument("--kind", help="only this kind (e.g. face-check)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_parts)

    p = sub.add_parser("alarms", parents=[target],
                       help="alarms across the fleet, newest first; with --status/--device, alarm lifecycles")
    p.add_argument("--since", type=time_arg, help="ISO 8601 time, inclusive")
    p.add_argument("--until", type=time_arg, help="ISO 8601 time, exclusive")
    p.add_argument("--vendor", type=vendor_arg, help="only this vendor's alarms (needed with --status or --device)")
    p.add_argument("--status", choices=ALARM_STATUSES, help="alarm lifecycles now in this status")
    p.add_argument("--device", help="every alarm lifecycle of this device (with --vendor)")
    _limit_options(p, 100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_alarms)

    p = sub.add_parser("event", parents=[target], help="one event by id (events are filed by device)")
    p.add_argument("--vendor", required=True, type=vendor_arg)
    p.add_argument("--device", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--at", type=time_arg, help="its occurredAt (a queue message's `time`): one read instead of a search")
    p.add_argument("--json", action="store_true", help="the event as JSON (what it prints anyway: the whole event)")
    p.set_defaults(func=cmd_event)

    p = sub.add_parser("quarantine", parents=[target], help="payloads kept after a rejection")
    p.add_argument("--vendor", required=True, type=vendor_arg)
    p.add_argument("--show", metavar="ID", help="one payload for a person: the reason and the fields at fault, then "
                                                "the payload pretty-printed (with --json: the stored item)")
    _limit_options(p, 100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quarantine)

    p = sub.add_parser("state-failures", parents=[target],
                       help="state writes the outbox gave up on (their events were published), newest first")
    p.add_argument("--vendor", required=True, type=vendor_arg)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_state_failures)

    p = sub.add_parser("replay", parents=[target], help="re-ingest quarantined payloads after a fix")
    p.add_argument("--vendor", required=True, type=vendor_arg)
    p.add_argument("--id", action="append", help="only this quarantine id (repeatable); default all")
    p.add_argument("--reason", help="only payloads refused for this (a part of the reason, any case)")
    p.add_argument("--since", type=time_arg, help="only payloads first received at or after this ISO 8601 time")
    p.add_argument("--until", type=time_arg, help="only payloads first received before this ISO 8601 time")
    p.add_argument("--dry-run", action="store_true", help="say what each would become, write nothing")
    p.add_argument("--json", action="store_true", help="the outcomes as one JSON array (at the end)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("redrive", parents=[target],
                       help="re-ingest failed MQTT deliveries, or re-publish failed outbox batches")
    p.add_argument("--vendor", required=True, type=vendor_arg)
    p.add_argument("--source", choices=["ingest-queue", "iot-errors", "outbox-failures"], required=True,
                   help="IngestFailureQueue (MQTT function failures), s3://<bucket>/quarantine/iot-errors/, "
                        "or OutboxFailureQueue (stream batches not published; within 24 hours)")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--json", action="store_true", help="the outcomes as one JSON array (at the end)")
    p.set_defaults(func=cmd_redrive)
    return parser


#: `devicegate --help`'s line for each command main.py dispatches to a parser of its own.
OWN_PARSER_HELP = {
    "local": "start the local gateway: AWS emulation, HTTP routes, MQTT (devicegate local --help)",
    "command": "send a command to a Jointech device, or read its status (devicegate command --help)",
    "strategy": "read or set an AI camera's configuration (devicegate strategy --help)",
    "face-terminal": "read or set a face terminal's push subscription on the LAN (devicegate face-terminal --help)",
    "senselink-bridge": "forward a SenseLink server's WebSocket push to the gateway (runs on the LAN)",
    "mqtt-bridge": "the Mosquitto bridge's configuration to AWS IoT Core (devicegate mqtt-bridge --help)",
    "invoke": "invoke one template function with an event, without Docker (devicegate invoke --help)",
    "examples": "load every vendor's sample pushes into the local stack, as the docs' examples assume",
    "urls": "each vendor's webhook URL and token to paste into its console (tokens masked unless --reveal)",
    "smoke": "push one new record per vendor and find it stored (and, locally, published)",
    "console": "a web view of the fleet on 127.0.0.1, with its access token (devicegate console --help)",
}


def _limit_options(p: argparse.ArgumentParser, default: int) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--limit", type=limit_arg, default=default,
                       help=f"at most this many, newest first (default {default}; stderr says when it stopped there)")
    group.add_argument("--all", action="store_true", help="every one, however many")


def run_command(argv: list[str]) -> int:
    global CELL_WIDTH, LOCAL_TIME
    args = build_parser().parse_args(argv)
    if getattr(args, "wide", False):
        CELL_WIDTH = None
    LOCAL_TIME = bool(getattr(args, "local_time", False))

    def call() -> int:
        check_deployment_options(args)
        return int(args.func(args))

    return at_the_edge(args.command, call, local_hint=not args.stack)
