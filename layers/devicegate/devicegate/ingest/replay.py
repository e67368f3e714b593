"""Re-ingest what was kept instead of stored (docs/deploy.md "Quarantine and replay"):
quarantined payloads after a fix, events Lambda parked in the MQTT failure queue, and messages the
IoT rules could not deliver.

Everything goes through the live Pipeline (authentication skipped: the payload was received
before), so a replay assembles parts, answers heartbeats and stores exactly as a live push would,
and replaying twice, or replaying something that meanwhile arrived again, stores it once.

A dry run is the same run: the same Pipeline over the same clients, with the clients' writes
withheld (`WritesWithheld`). So it applies every check the real run applies (the size cap, parsing,
validation, normalization, assembling parts, the answer) and its prediction is the real run's
outcome; only what the table itself would refuse on a write (an item over DynamoDB's limits) is
left unknown.

One bad item never stops a run: whatever one item raises becomes its outcome (`failed`, with the
exception's type and where it was raised, never its message, which may quote the payload), and
the run goes on with the next.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from devicegate.core.adapter import Outcome
from devicegate.core.envelope import RawPush
from devicegate.core.timeutil import now_utc
from devicegate.infra.aws import error_code
from devicegate.infra.observability import innermost_frame, logger
from devicegate.ingest.iot import event_from_topic, iot_push
from devicegate.ingest.pipeline import IngestResult, Pipeline
from devicegate.store import quarantine
from devicegate.store.configs import DeviceConfigs
from devicegate.store.events import EventStore
from devicegate.vendors import get_adapter

#: The event store over a DynamoDB and an S3 client. A run builds its store over its own clients,
#: so that a dry run's store has their writes withheld too.
StoreOver = Callable[[Any, Any], EventStore]

#: What each outcome is called in a dry run (the others are the same in both).
_PREDICTED = {"stored": "would-replay", "duplicate": "would-replay", "quarantined": "would-quarantine"}


@dataclass
class ReplayOutcome:
    id: str
    status: str  # stored, duplicate, quarantined, partial, still-invalid, failed, not-found, would-replay, would-quarantine
    detail: str = ""  # the event ids stored, or why not
    answer: Any = None  # what the sender would have been answered (a camera's strategy...)
    fields: list[str] = field(default_factory=list)  # the fields at fault, for a refusal


# Operation name prefixes that only read. Anything else a dry run does not send.
_READS = ("Get", "BatchGet", "Query", "Scan", "List", "Describe", "Head")
# A client's attributes that are no API call and send nothing themselves (paginators and waiters
# call the client's read operations).
_HARMLESS = frozenset({"meta", "exceptions", "get_paginator", "can_paginate", "get_waiter"})


class WritesWithheld:
    """A botocore (or boto3) client whose writes are not sent, for a dry run.

    Read operations go through, so a dry run sees what the table and bucket hold now. Every other
    operation answers as if it had succeeded and changed nothing; an update or delete asking for
    ALL_OLD gets the item as it is now, which is what the write would have answered (so a record's
    parts assemble in a dry run as they would for real). Anything else a client offers (boto3's
    upload_file, presigned URLs...) is refused: what is not known to be harmless is not done.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self.withheld: list[str] = []  # operations not sent, in order

    def __getattr__(self, name: str) -> Any:
        operation = self._client.meta.method_to_api_mapping.get(name)
        if operation is None:
            if name in _HARMLESS:
                return getattr(self._client, name)
            raise AttributeError(f"{name} is not available in a dry run")
        if operation.startswith(_READS):
            return getattr(self._client, name)
        return partial(self._withhold, operation)

    def _withhold(self, operation: str, **params: Any) -> dict[str, Any]:
        self.withheld.append(operation)
        if params.get("ReturnValues") == "ALL_OLD" and "Key" in params:
            now = self._client.get_item(TableName=params["TableName"], Key=params["Key"], ConsistentRead=True)
            return {"Attributes": now.get("Item", {})}
        return {}


class _Run:
    """One replay or redrive of one vendor: the live Pipeline over the deployment's clients or,
    in a dry run, over the same clients with their writes withheld. Nothing else differs."""

    def __init__(self, ddb: Any, s3: Any, table: str, store_over: StoreOver, vendor: str, dry_run: bool,
                 quarantine_invalid: bool):
        if dry_run:
            ddb, s3 = WritesWithheld(ddb), WritesWithheld(s3)
        self.ddb, self.s3, self.table, self.dry_run = ddb, s3, table, dry_run
        self.pipeline = Pipeline(get_adapter(vendor), store_over(ddb, s3), verifier=None,
                                 configs=DeviceConfigs(ddb, table), quarantine=quarantine_invalid)

    def each(self, item_id: str, work: Callable[[], ReplayOutcome]) -> ReplayOutcome:
        """`work`'s outcome, or `failed` with what it raised; then the run goes on."""
        try:
            outcome = work()
        except Exception as exc:
            # The type, an AWS error code and the place: enough to act on, and never the message,
            # which may quote the payload. (boto3 names a modeled error's class after its code.)
            what = " ".join(dict.fromkeys(filter(None, (type(exc).__name__, error_code(exc)))))
            where = innermost_frame(exc)
            logger.error("replay of one item failed", extra={"item": item_id, "error": what, "where": where})
            outcome = ReplayOutcome(item_id, "failed", f"{what} at {where}")
        if self.dry_run:
            outcome.status = _PREDICTED.get(outcome.status, outcome.status)
        return outcome

    def reingest(self, item_id: str, push: RawPush) -> ReplayOutcome:
        return _outcome(item_id, self.pipeline.ingest(push))


def _outcome(item_id: str, result: IngestResult) -> ReplayOutcome:
    answer = result.answer.body
    if result.outcome in (Outcome.INVALID, Outcome.TOO_LARGE):
        status = "quarantined" if result.quarantined else "still-invalid"
        return ReplayOutcome(item_id, status, result.reason, answer, [p.field for p in result.problems])
    if result.outcome is Outcome.UNAVAILABLE:
        return ReplayOutcome(item_id, "failed", f"{result.reason}; replay it again later", answer)
    if result.outcome is Outcome.PARTIAL and not result.quarantined:
        # Some of its records are stored now, others still refused: it stays in quarantine (a
        # later replay finds the stored ones stored, and tries the others again).
        return ReplayOutcome(item_id, "partial", result.reason, answer, [p.field for p in result.problems])
    ids = ",".join(e.eventId for e in result.events)
    return ReplayOutcome(item_id, "duplicate" if result.outcome is Outcome.DUPLICATE else "stored", ids, answer)


def _body(item: dict[str, Any], s3: Any) -> bytes:
    if "body" in item:
        return item["body"].encode("utf-8")
    if "bodyBase64" in item:
        return base64.b64decode(item["bodyBase64"])
    bucket, key = item["bodyRef"].removeprefix("s3://").split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def push_from_quarantine(item: dict[str, Any], body: bytes) -> RawPush:
    route = {k: str(v) for k, v in (item.get("route") or {}).items()}
    if item.get("transport") == "mqtt":
        return RawPush(item["vendor"], "mqtt", b"", route=route, document=json.loads(body))
    return RawPush(item["vendor"], "http", body, route=route, headers={"content-type": item.get("contentType", "")})


def replay(ddb: Any, s3: Any, table: str, store_over: StoreOver, vendor: str,
           ids: list[str] | None = None, dry_run: bool = False, reason: str | None = None,
           since: str | None = None, until: str | None = None) -> Iterator[ReplayOutcome]:
    """Each quarantined payload of `vendor` through the live pipeline, one outcome per item as it
    is done: every one, or those the filter names (`ids`; a `reason` it was refused for, as a
    case-insensitive part of its text; first received in [since, until)); then `not-found` for
    each of `ids` not in quarantine. Safe to interrupt and run again: a replayed item leaves the
    list, and one replayed twice is stored once."""
    run = _Run(ddb, s3, table, store_over, vendor, dry_run, quarantine_invalid=False)
    done = set()
    wanted_reason = reason.casefold() if reason else None
    for item in quarantine.quarantined(run.ddb, table, vendor, limit=None, since=since, until=until):
        if ids and item["id"] not in ids:
            continue
        if wanted_reason and wanted_reason not in str(item.get("reason", "")).casefold():
            continue
        done.add(item["id"])
        yield run.each(item["id"], partial(_replay_one, run, item))
    for missing in sorted(set(ids or ()) - done):
        yield ReplayOutcome(missing, "not-found")


def replay_edited(ddb: Any, s3: Any, table: str, store_over: StoreOver, item: dict[str, Any], body: bytes,
                  dry_run: bool = False) -> ReplayOutcome:
    """One quarantined payload (`item`, as `quarantine.read` gives it, with its `id`) through the
    live pipeline with `body` in place of what was kept: an operator's fix (the console's edit and
    replay). Marked replayed when stored, like any replay; what was kept is left as it was."""
    run = _Run(ddb, s3, table, store_over, item["vendor"], dry_run, quarantine_invalid=False)
    return run.each(item["id"], partial(_replay_one, run, item, body))


def _replay_one(run: _Run, item: dict[str, Any], body: bytes | None = None) -> ReplayOutcome:
    try:
        push = push_from_quarantine(item, body if body is not None else _body(item, run.s3))
    except ValueError as exc:  # an MQTT document that is no longer JSON (or text that never was)
        return ReplayOutcome(item["id"], "still-invalid", f"not JSON ({type(exc).__name__})", fields=["body"])
    outcome = run.reingest(item["id"], push)
    if outcome.status in ("stored", "duplicate"):
        quarantine.mark_replayed(run.ddb, run.table, item, [e for e in outcome.detail.split(",") if e], now_utc())
    return outcome


def redrive_queue(sqs: Any, queue_url: str, ddb: Any, s3: Any, table: str, store_over: StoreOver, vendor: str,
                  dry_run: bool = False) -> Iterator[ReplayOutcome]:
    """Re-ingest the events Lambda parked in a failure queue after its async retries (the
    destination record carries the original event as `requestPayload`). A message is deleted
    once its event is stored, found stored, or quarantined; a failure leaves it. A dry run
    receives the messages too, deletes none, and makes them visible again when it is done, so
    that the real run can follow at once."""
    run = _Run(ddb, s3, table, store_over, vendor, dry_run, quarantine_invalid=True)
    seen: set[str] = set()
    received: list[str] = []
    try:
        while True:
            # Each message stays invisible for the rest of the run, so that every receive brings
            # new ones until the queue has none left.
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                      VisibilityTimeout=30)
            messages = [m for m in got.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                return
            for message in messages:
                seen.add(message["MessageId"])
                outcome = run.each(message["MessageId"], partial(_redrive_message, run, message, vendor))
                if dry_run:
                    received.append(message["ReceiptHandle"])
                elif outcome.status not in ("failed", "not-an-invocation-record"):
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                yield outcome
    finally:
        if dry_run:
            for handle in received:
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0)


def _redrive_message(run: _Run, message: dict[str, Any], vendor: str) -> ReplayOutcome:
    try:
        payload = json.loads(message["Body"])["requestPayload"]
    except (ValueError, KeyError, TypeError):
        return ReplayOutcome(message["MessageId"], "not-an-invocation-record")
    return run.reingest(message["MessageId"], iot_push(vendor, payload))


def iot_errors_prefix(vendor: str) -> str:
    """Where `vendor`'s IoT rules' error action writes (template.yaml: every rule's ErrorAction Key)."""
    return f"quarantine/iot-errors/{vendor}/"


def takes_mqtt(vendor: str) -> bool:
    """Whether `vendor`'s records come through IoT Core (its adapter reads the rules' topic
    fields): only those have IoT errors or MQTT invocations to redrive."""
    return bool(get_adapter(vendor).topic_fields)


def redrive_iot_errors(s3: Any, bucket: str, ddb: Any, table: str, store_over: StoreOver, vendor: str,
                       dry_run: bool = False) -> Iterator[ReplayOutcome]:
    """Re-ingest messages `vendor`'s IoT rules could not deliver (their errorAction wrote them
    under quarantine/iot-errors/{vendor}/ with the topic and the payload base64-encoded); each is
    deleted once stored, found stored or quarantined. Another vendor's objects are never read."""
    run = _Run(ddb, s3, table, store_over, vendor, dry_run, quarantine_invalid=True)
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=iot_errors_prefix(vendor)):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            outcome = run.each(key, partial(_redrive_object, run, s3, bucket, key, vendor))
            if not dry_run and outcome.status not in ("failed", "not-an-iot-error-record"):
                s3.delete_object(Bucket=bucket, Key=key)
            yield outcome


def _redrive_object(run: _Run, s3: Any, bucket: str, key: str, vendor: str) -> ReplayOutcome:
    try:
        record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        topic = record["topic"]
        raw = base64.b64decode(record["base64OriginalPayload"])
    except (ValueError, KeyError, TypeError):
        return ReplayOutcome(key, "not-an-iot-error-record")
    try:
        push = iot_push(vendor, event_from_topic(topic, json.loads(raw)))
    except ValueError:
        push = RawPush(vendor, "mqtt", raw, route={"topic": topic})
    return run.reingest(key, push)
