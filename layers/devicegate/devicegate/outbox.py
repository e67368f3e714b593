"""The outbox: each newly stored event (a stream INSERT) becomes one CloudEvents message on the
queue, and moves its device's latest state forward. Runs off the hot path.

Order matters for retries: state first (its conditional updates are idempotent), then the queue.
On the first failure the batch stops and that record and every later one are reported as failed,
so Lambda resumes from there and nothing earlier is published twice. The queue is FIFO with one
message group per device and the event's own deduplication id, so a send whose answer was lost,
or a chunk re-sent after a partial failure, is dropped by SQS instead of reaching apps twice.

Batches Lambda gave up on (OutboxFailureQueue) are published again by `redrive_failed_batches`,
which the same function runs on a schedule: an outage longer than the stream retry budget heals
by itself once the dependency is back.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from devicegate import keys
from devicegate.adapter import AlarmTransition, CommandReply
from devicegate.aws import CONDITION_FAILED, error_code, failures, unavailable
from devicegate.ddb_codec import from_item, to_attr
from devicegate.envelope import ENVELOPE_FIELDS
from devicegate.errors import StorageUnavailable
from devicegate.liveness import GATEWAY_KINDS, Liveness
from devicegate.observability import emit_counts, innermost_frame, logger
from devicegate.timeutil import parse_time

SQS_BATCH = 10
# SQS: 1 MiB per message and per SendMessageBatch call; keep a margin for attributes and framing.
MAX_BATCH_BYTES = 1_000_000
MAX_MESSAGE_BYTES = 1_000_000
# An event stamped more than a day after it was received has a broken device clock; letting it
# into state would freeze that state until the clock catches up.
MAX_CLOCK_SKEW = timedelta(days=1)


def cloud_event(event: dict[str, Any], data_ref: str | None = None) -> dict[str, Any]:
    """CloudEvents 1.0 structured JSON; `data` is the normalized event."""
    message = {
        "specversion": "1.0",
        "id": event["eventId"],
        "source": f"devicegate/{event['vendor']}",
        "type": f"devicegate.{event['vendor']}.{event['kind']}",
        "subject": event["deviceId"],
        "time": event["occurredAt"],
        "datacontenttype": "application/json",
        "data": event,
    }
    if data_ref:
        # Claim check (CloudEvents "dataref" extension): the payload was too big for an item.
        message["dataref"] = data_ref
    return message


def envelope_of(item: dict[str, Any]) -> dict[str, Any]:
    """A stored event item (plain values) back to the normalized envelope."""
    out = {name: item[name] for name in ENVELOPE_FIELDS if name in item}
    if isinstance(out.get("data"), str):
        out["data"] = json.loads(out["data"])
    if "dataRef" in item:
        out["dataRef"] = item["dataRef"]
    return out


def envelope_from_image(image: dict[str, Any]) -> dict[str, Any]:
    return envelope_of(from_item(image))


@dataclass(frozen=True)
class Outgoing:
    """One queue message: the stream record it comes from, its body, and its FIFO identity."""

    sequence: str
    body: str
    group: str  # MessageGroupId: one per device, so each device's events stay in publish order
    dedup: str  # MessageDeduplicationId: the same event always has the same one


def outgoing(record: StreamRecord, body: str) -> Outgoing:
    event = record.event
    return Outgoing(record.sequence, body, message_group(event["vendor"], event["deviceId"]),
                    deduplication_id(event["vendor"], event["eventId"]))


def message_group(vendor: str, device_id: str) -> str:
    # SQS takes up to 128 printable ASCII characters; percent-encoding keeps a device's group
    # unique and printable, and an id too long for that is hashed.
    group = f"{vendor}:{keys.device_key(device_id)}"
    if len(group) <= 128:
        return group
    return f"{vendor}:~" + hashlib.sha256(device_id.encode("utf-8", "surrogatepass")).hexdigest()


def deduplication_id(vendor: str, event_id: str) -> str:
    # A digest rather than the id itself: vendor ids may be longer than SQS's 128 characters
    # or hold characters it refuses there.
    return hashlib.sha256(f"{vendor}\n{event_id}".encode("utf-8", "surrogatepass")).hexdigest()


class Publisher(Protocol):
    def publish(self, messages: list[Outgoing]) -> list[str]:
        """Send the messages; return the sequence numbers of those that failed."""


class StateStore(Protocol):
    def advance(self, vendor: str, device_id: str, group: str, at: str, event_id: str, value: dict[str, Any]) -> bool:
        """Set a state group if `at` is newer than what is stored. True when it moved."""

    def advance_alarm(self, vendor: str, device_id: str, step: AlarmTransition, event_id: str) -> bool:
        """Record one step of an alarm's lifecycle; its status moves only to a newer step."""

    def heard(self, vendor: str, device_id: str, at: str) -> bool:
        """The device was heard from at `at` (a receive time): online again if it was offline."""

    def resolve_command(self, vendor: str, reply: CommandReply) -> str | None:
        """Mark the command a device's answer is for succeeded or failed (once); its id or None."""


class SqsPublisher:
    def __init__(self, sqs: Any, queue_url: str):
        self._sqs = sqs
        self._url = queue_url

    def publish(self, messages: list[Outgoing]) -> list[str]:
        entries = [{"Id": str(i), "MessageBody": m.body, "MessageGroupId": m.group,
                    "MessageDeduplicationId": m.dedup} for i, m in enumerate(messages)]
        try:
            result = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
        except failures() as exc:
            logger.warning("sqs send_message_batch failed", extra={"error": error_code(exc) or type(exc).__name__})
            return [m.sequence for m in messages]
        failed = result.get("Failed", [])
        if failed:
            logger.warning("sqs rejected messages", extra={"codes": sorted({f.get("Code", "") for f in failed})})
        return [messages[int(f["Id"])].sequence for f in failed]


class DynamoStateStore:
    def __init__(self, dynamodb: Any, table: str, retention_days=None):
        self._ddb = dynamodb
        self._table = table
        self._liveness = Liveness(dynamodb, table, retention_days)

    def heard(self, vendor: str, device_id: str, at: str) -> bool:
        return self._liveness.heard(vendor, device_id, at)

    def resolve_command(self, vendor: str, reply: CommandReply) -> str | None:
        from devicegate.command_store import DynamoCommandStore
        from devicegate.commands import resolve_reply

        return resolve_reply(DynamoCommandStore(self._ddb, self._table), vendor, reply)

    def advance(self, vendor: str, device_id: str, group: str, at: str, event_id: str, value: dict[str, Any]) -> bool:
        values = {":v": to_attr(value), ":at": {"S": at}, ":e": {"S": event_id}, ":vendor": {"S": vendor},
                  ":dev": {"S": device_id}, ":g": {"S": group}}
        sets = "#val = :v, #at = :at, eventId = :e, vendor = :vendor, deviceId = :dev, #grp = :g"
        if group == "summary":
            # The summary item is what "all devices of a vendor" lists (gsi5 V#vendor).
            values[":g5"] = {"S": keys.vendor_devices_pk(vendor)}
            values[":g5s"] = {"S": keys.device_key(device_id)}
            sets += ", gsi5pk = :g5, gsi5sk = :g5s"
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": keys.device_pk(vendor, device_id)}, "sk": {"S": keys.state_sk(group)}},
                UpdateExpression=f"SET {sets}",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#val": "value", "#at": "at", "#grp": "group"},
                ExpressionAttributeValues=values,
            )
        except failures() as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise unavailable("state update", exc) from None
        return True

    def advance_alarm(self, vendor: str, device_id: str, step: AlarmTransition, event_id: str) -> bool:
        """One item per alarm (pk A#{vendor}#{device}, sk A#{alarm id}), listed by status in gsi1
        (AL#{vendor}#{status}). Steps may arrive in any order (a terminal's backlog, retries): each
        step's own time is kept once (`steps.{status}`), while `status` only moves to a step that
        happened later (same time: the later step in the lifecycle)."""
        key = {"pk": {"S": keys.alarms_pk(vendor, device_id)}, "sk": {"S": keys.alarm_item_sk(step.alarm_id)}}
        values: dict[str, Any] = {":at": {"S": step.at}, ":e": {"SS": [event_id]}, ":empty": {"M": {}}}
        # steps.{status} needs the map to exist first: created by the first update of the item.
        record_step = "#steps = if_not_exists(#steps, :empty)"
        try:
            try:
                values.update({":st": {"S": step.status}, ":rank": {"N": str(step.rank)},
                               ":d": to_attr(step.details), ":vendor": {"S": vendor}, ":dev": {"S": device_id},
                               ":id": {"S": step.alarm_id},
                               ":g1": {"S": keys.alarm_status_pk(vendor, step.status)},
                               ":g1s": {"S": f"{step.at}#{keys.device_key(device_id)}#{step.alarm_id}"}})
                self._ddb.update_item(
                    TableName=self._table, Key=key,
                    UpdateExpression=(f"SET {record_step}, #st = :st, statusAt = :at, statusRank = :rank, "
                                      "details = :d, vendor = :vendor, deviceId = :dev, alarmId = :id, "
                                      "gsi1pk = :g1, gsi1sk = :g1s ADD eventIds :e"),
                    ConditionExpression=("attribute_not_exists(statusAt) OR statusAt < :at OR "
                                         "(statusAt = :at AND statusRank < :rank)"),
                    ExpressionAttributeNames={"#steps": "steps", "#st": "status"},
                    ExpressionAttributeValues=values,
                )
                moved = True
            except failures() as exc:
                if error_code(exc) != CONDITION_FAILED:
                    raise
                moved = False
            # The step's own time, whether or not it is the newest (an "open" arriving after
            # "released" still tells when the alarm was raised).
            self._ddb.update_item(
                TableName=self._table, Key=key,
                UpdateExpression="SET #steps.#step = if_not_exists(#steps.#step, :at) ADD eventIds :e",
                ExpressionAttributeNames={"#steps": "steps", "#step": step.status},
                ExpressionAttributeValues={":at": {"S": step.at}, ":e": {"SS": [event_id]}},
            )
        except failures() as exc:
            raise unavailable("alarm update", exc) from None
        return moved


@dataclass
class StreamRecord:
    sequence: str
    event: dict[str, Any]


def state_updates(event: dict[str, Any], patch: dict[str, dict[str, Any]]) -> dict[tuple[str, str, str], tuple[str, str, dict[str, Any]]]:
    """(vendor, device, group) -> (at, event id, value) for one event: its patch plus the summary."""
    if event["kind"] in GATEWAY_KINDS:
        return {}  # the gateway's own device.offline/online events say nothing new about state
    occurred, received = parse_time(event["occurredAt"]), parse_time(event["receivedAt"])
    if occurred - received > MAX_CLOCK_SKEW:
        logger.warning("event time far in the future, state left alone",
                       extra={"vendor": event["vendor"], "event_id": event["eventId"]})
        return {}
    summary = {"lastSeen": event["occurredAt"], "lastKind": event["kind"], "lastEventId": event["eventId"],
               "lastReceivedAt": event["receivedAt"]}
    at, event_id = event["occurredAt"], event["eventId"]
    return {(event["vendor"], event["deviceId"], group): (at, event_id, value)
            for group, value in {"summary": summary, **patch}.items()}


def message_body(event: dict[str, Any], table: str = "") -> str:
    """The queue message for a stored event. ASCII escapes keep every character SQS accepts; a
    record too big for one message travels as a claim check pointing at its table item."""
    envelope = {k: v for k, v in event.items() if k != "dataRef"}
    body = json.dumps(cloud_event(envelope, event.get("dataRef")), ensure_ascii=True, separators=(",", ":"))
    if len(body) > MAX_MESSAGE_BYTES:
        envelope.pop("data", None)
        ref = event.get("dataRef") or f"dynamodb://{table}/E#{event['vendor']}#{event['eventId']}"
        body = json.dumps(cloud_event(envelope, ref), ensure_ascii=True, separators=(",", ":"))
    return body


def _chunks(records: list[StreamRecord], bodies: list[str]) -> Iterable[tuple[int, int]]:
    """[start, end) ranges of at most SQS_BATCH messages and MAX_BATCH_BYTES bytes each."""
    start = 0
    while start < len(records):
        end, size = start, 0
        while end < len(records) and end - start < SQS_BATCH and (end == start or size + len(bodies[end]) <= MAX_BATCH_BYTES):
            size += len(bodies[end])
            end += 1
        yield start, end
        start = end


def _count_accepted(records: list[StreamRecord]) -> None:
    counts = Counter((r.event["vendor"], r.event["kind"]) for r in records)
    for (vendor, kind), count in sorted(counts.items()):
        emit_counts(vendor, kind, {"accepted": count})


TransitionFor = Callable[[dict[str, Any]], "AlarmTransition | None"]
ReplyFor = Callable[[dict[str, Any]], "CommandReply | None"]


def process_batch(records: Iterable[StreamRecord], publisher: Publisher, state: StateStore,
                  patch_for: Callable[[dict[str, Any]], dict[str, dict[str, Any]]], table: str = "",
                  transition_for: TransitionFor | None = None, reply_for: ReplyFor | None = None) -> list[str]:
    """Returns the sequence numbers to report as failed (the first failure and all after it)."""
    pending = list(records)
    failed = _publish_all(pending, publisher, state, patch_for, table, transition_for, reply_for)
    # Counted once a record is done (Lambda will not hand it over again): a stored event is
    # exactly one stream INSERT, so this is the gateway's "accepted" metric.
    _count_accepted(pending[:len(pending) - len(failed)])
    return failed


def _publish_all(pending: list[StreamRecord], publisher: Publisher, state: StateStore,
                 patch_for: Callable[[dict[str, Any]], dict[str, dict[str, Any]]], table: str,
                 transition_for: TransitionFor | None, reply_for: ReplyFor | None = None) -> list[str]:
    bodies = [message_body(r.event, table) for r in pending]
    for start, end in _chunks(pending, bodies):
        chunk = pending[start:end]
        # One write per device and state group per chunk: the newest value wins, older ones in the
        # same chunk would be refused by the condition anyway.
        newest: dict[tuple[str, str, str], tuple[str, str, dict[str, Any]]] = {}
        for record in chunk:
            for key, update in state_updates(record.event, patch_for(record.event)).items():
                if key not in newest or update[0] > newest[key][0]:
                    newest[key] = update
        # Contact, by receive time: the newest per device in this chunk (one write per device).
        heard: dict[tuple[str, str], str] = {}
        for record in chunk:
            event = record.event
            if event["kind"] not in GATEWAY_KINDS:
                device_key = (event["vendor"], event["deviceId"])
                heard[device_key] = max(heard.get(device_key, ""), event["receivedAt"])
        try:
            for (vendor, device, group), (at, event_id, value) in newest.items():
                state.advance(vendor, device, group, at, event_id, value)
            for (vendor, device), at in heard.items():
                state.heard(vendor, device, at)
            for record in chunk if transition_for else ():
                if record.event["kind"] == "alarm" and (step := transition_for(record.event)) is not None:
                    state.advance_alarm(record.event["vendor"], record.event["deviceId"], step,
                                        record.event["eventId"])
            # Answers to commands: the command each answers, in stream order (a device answers in
            # the order it was asked); conditional, and a retried chunk finds its match done.
            for record in chunk if reply_for else ():
                if (reply := reply_for(record.event)) is not None:
                    state.resolve_command(record.event["vendor"], reply)
        except StorageUnavailable as exc:
            logger.warning("state projection failed", extra={"error": str(exc)})
            return [r.sequence for r in pending[start:]]
        except Exception as exc:
            # A bug (an adapter's state hook, an unexpected answer) must not fail the invocation:
            # Lambda would then retry the whole batch and publish the chunks before this one again.
            # Reported from here on instead; bisection and the failure queue isolate a poison record.
            logger.error("state projection raised", extra={"error_type": type(exc).__name__,
                                                            "where": innermost_frame(exc)})
            return [r.sequence for r in pending[start:]]
        failed = set(publisher.publish([outgoing(r, bodies[start + i]) for i, r in enumerate(chunk)]))
        if failed:
            first = next(i for i, r in enumerate(chunk) if r.sequence in failed)
            logger.warning("publish failed", extra={"failed": len(failed)})
            # Those after the first failure that did go out are sent again on the retry; their
            # deduplication ids make SQS drop the repeats.
            return [r.sequence for r in pending[start + first:]]
    return []


def stream_records(change_records: Iterable[dict[str, Any]]) -> list[StreamRecord]:
    """Stream records (as Lambda or GetRecords hands them over) -> new event items only. The event
    source filter already keeps only INSERTs of event items; checked again so a misconfigured
    filter cannot publish state or quarantine items."""
    out = []
    for raw in change_records:
        change = raw.get("dynamodb", {})
        if raw.get("eventName") != "INSERT" or not change.get("Keys", {}).get("pk", {}).get("S", "").startswith("E#"):
            continue
        out.append(StreamRecord(change["SequenceNumber"], envelope_from_image(change["NewImage"])))
    return out


def read_failed_batch(streams: Any, batch_info: dict[str, Any]) -> list[StreamRecord]:
    """The records of a batch Lambda gave up on, re-read from the stream (kept there 24 hours)
    using the OutboxFailureQueue record's DDBStreamBatchInfo."""
    end = int(batch_info["endSequenceNumber"])
    iterator = streams.get_shard_iterator(
        StreamArn=batch_info["streamArn"], ShardId=batch_info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=batch_info["startSequenceNumber"],
    )["ShardIterator"]
    collected: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        records = page.get("Records", [])
        collected += [r for r in records if int(r["dynamodb"]["SequenceNumber"]) <= end]
        if not records or int(records[-1]["dynamodb"]["SequenceNumber"]) >= end:
            break
        iterator = page.get("NextShardIterator")
    return stream_records(collected)


#: Stream errors that mean the failed batch's records are no longer in the stream (older than its
#: 24 hours, or the stream was replaced): no retry can bring them back.
_GONE = frozenset({"TrimmedDataAccessException", "ExpiredIteratorException", "ResourceNotFoundException"})
#: While a redrive holds a failure record, no other run sees it. Longer than one run (the handler
#: stops taking records well before 40 s) and shorter than the schedule's minute, so a record
#: whose dependency is still down is there again for the next run.
REDRIVE_VISIBILITY_S = 50


@dataclass
class RedriveOutcome:
    message_id: str
    status: str  # published | failed | gone | not-a-stream-failure | would-publish
    events: int = 0
    published: int = 0


def redrive_failed_batches(sqs: Any, failures_url: str, streams: Any,
                           publish: Callable[[list[StreamRecord]], list[str]], dry_run: bool = False,
                           time_left_s: Callable[[], float] | None = None) -> list[RedriveOutcome]:
    """Publish again the stream batches the outbox gave up on (OutboxFailureQueue records, which
    describe a batch by shard and sequence numbers). `publish` is process_batch with its wiring:
    state first, then the queue, so a batch redriven twice changes and sends nothing twice. A
    record is deleted once every event of its batch is done; one whose dependency is still down
    stays for the next run, one whose events left the stream stays for a person (the alarm)."""
    outcomes: list[RedriveOutcome] = []
    seen: set[str] = set()
    while time_left_s is None or time_left_s() > 0:
        try:
            messages = sqs.receive_message(QueueUrl=failures_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                           VisibilityTimeout=REDRIVE_VISIBILITY_S).get("Messages", [])
        except failures() as exc:
            logger.warning("outbox failure queue unreadable", extra={"error": error_code(exc) or type(exc).__name__})
            break
        messages = [m for m in messages if m["MessageId"] not in seen]
        if not messages:
            break
        for message in messages:
            seen.add(message["MessageId"])
            outcomes.append(outcome := _redrive_one(message, streams, publish, dry_run))
            if outcome.status == "published":
                try:
                    sqs.delete_message(QueueUrl=failures_url, ReceiptHandle=message["ReceiptHandle"])
                except failures() as exc:  # redriven again next run: nothing happens twice
                    logger.warning("outbox failure record not deleted",
                                   extra={"error": error_code(exc) or type(exc).__name__})
        if dry_run:
            break
    if outcomes:
        logger.info("outbox redrive", extra={status: sum(o.status == status for o in outcomes)
                                              for status in {o.status for o in outcomes}})
    return outcomes


def _redrive_one(message: dict[str, Any], streams: Any, publish: Callable[[list[StreamRecord]], list[str]],
                 dry_run: bool) -> RedriveOutcome:
    ident = message["MessageId"]
    try:
        info = json.loads(message["Body"]).get("DDBStreamBatchInfo")
    except (ValueError, AttributeError):
        info = None
    if not isinstance(info, dict):
        return RedriveOutcome(ident, "not-a-stream-failure")
    try:
        records = read_failed_batch(streams, info)
    except (KeyError, TypeError, ValueError):
        return RedriveOutcome(ident, "not-a-stream-failure")
    except failures() as exc:
        if error_code(exc) in _GONE:
            logger.error("failed outbox batch is no longer in the stream", extra={"error": error_code(exc)})
            return RedriveOutcome(ident, "gone")
        logger.warning("stream unreadable for a redrive", extra={"error": error_code(exc) or type(exc).__name__})
        return RedriveOutcome(ident, "failed")
    if dry_run:
        return RedriveOutcome(ident, "would-publish", len(records))
    failed = publish(records)
    return RedriveOutcome(ident, "failed" if failed else "published", len(records), len(records) - len(failed))
