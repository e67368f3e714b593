"""The table's stream as the outbox reads it: records as Lambda hands them over, the records of a
batch Lambda gave up on (re-read from the stream, which keeps them 24 hours), and the redrive that
publishes those batches again once the queue or the table answers (the outbox's schedule).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from devicegate.infra.aws import error_code, failures
from devicegate.infra.observability import logger
from devicegate.store.items import envelope_from_image


@dataclass
class StreamRecord:
    sequence: str
    event: dict[str, Any]


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


