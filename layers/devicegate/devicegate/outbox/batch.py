"""The outbox: each newly stored event (a stream INSERT) becomes one CloudEvents message on the
queue, and moves its device's latest state forward (devicegate.store.devices). Runs off the hot
path.

State is folded per device over the whole batch: whatever a batch says about a device (every
group's newest value, the newest contact) is one read of all the batch's devices (BatchGetItem)
and one conditional write per device whose item changes; a retried batch changes nothing and so
writes nothing. Alarm lifecycles and command answers follow, per event.

A write that fails the same way on every retry (DynamoDB refusing the item as such, an adapter's
hook or a merge raising) is given up for its device or event alone and recorded where operators
look (store.state_failures, metric `stateWriteFailed`): the batch's other devices and every one of
its messages go on. Only transient failures (StorageUnavailable) fail the batch, to be retried.
An event whose record was offloaded to S3 (its item holds `dataRef`) is projected from the record
read back, so its state is the record's, not an empty one.

Order matters for retries: state first (idempotent), then the queue. On the first publish failure
the batch stops and that record and every later one are reported as failed, so Lambda resumes
from there and nothing earlier is published twice. The queue is FIFO with one message group per
device and the event's own deduplication id (devicegate.outbox.messages), so a send whose answer
was lost, or a chunk re-sent after a partial failure, is dropped by SQS instead of reaching apps
twice. Batches Lambda gave up on are published again by devicegate.outbox.stream.redrive_failed_batches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from devicegate.core.adapter import AlarmTransition, CommandReply
from devicegate.core.errors import ItemRefused, StorageUnavailable
from devicegate.core.timeutil import iso_utc, parse_time, state_time
from devicegate.infra.observability import emit_counts, innermost_frame, logger
from devicegate.outbox.messages import (
    SQS_BATCH,
    Outgoing,
    Publisher,
    attributes_size,
    deduplication_id,
    message_attributes,
    message_body,
    message_group,
)
from devicegate.outbox.stream import StreamRecord
from devicegate.store.devices import DeviceNews, GroupNews
from devicegate.store.events import PayloadMissing
from devicegate.store.liveness import GATEWAY_KINDS
from devicegate.store.state_failures import StateFailure


def outgoing(record: StreamRecord, table: str, max_message_bytes: int) -> Outgoing:
    event = record.event
    attributes = message_attributes(event)
    body = message_body(event, table, max_message_bytes - attributes_size(attributes))
    return Outgoing(record.sequence, body, message_group(event["vendor"], event["deviceId"]),
                    deduplication_id(event["vendor"], event["deviceId"], event["eventId"]), attributes)


class StateStore(Protocol):
    def apply_many(self, news: list[DeviceNews], now: datetime) -> Any:
        """Merge each device's news into its state item: one read for all, one write per device
        whose item changes (each group only forward, contact only forward)."""

    def advance_alarm(self, vendor: str, device_id: str, step: AlarmTransition, event_id: str) -> bool:
        """Record one step of an alarm's lifecycle; its status moves only to a newer step."""

    def resolve_command(self, vendor: str, reply: CommandReply) -> str | None:
        """Mark the command a device's answer is for succeeded or failed (once); its id or None."""

    def record_failure(self, failure: StateFailure, now: datetime) -> None:
        """Keep a state write given up for good where operators list them."""


PatchFor = Callable[[dict[str, Any]], dict[str, dict[str, Any]]]
#: The record of an offloaded event (its item's dataRef), read back for the projection.
LoadData = Callable[[str], dict[str, Any]]


def state_at(event: dict[str, Any]) -> str:
    """The time a stored event orders its device's state by (core/timeutil.py state_time): its
    occurredAt, but at most CLOCK_TOLERANCE (5 minutes) after its receipt, so a record stamped
    ahead (a clock that drifted, a zone mis-set by hours) cannot hold a group against the
    correct-clock records that follow it. Both texts are fixed-width ISO: only a record stamped
    ahead is parsed."""
    occurred, received = event["occurredAt"], event["receivedAt"]
    if occurred <= received:
        return occurred
    return iso_utc(state_time(parse_time(occurred), parse_time(received)))


def device_news(records: Iterable[StreamRecord], patch_for: PatchFor,
                failed: list[StateFailure] | None = None) -> list[DeviceNews]:
    """What a batch says about each device: per state group the newest value (by state_at: the
    occurredAt, bounded), the summary (last kind and receipt), and the newest contact (by
    receivedAt). An event whose state hook raises is left out of state and, with `failed`,
    recorded there."""
    news: dict[tuple[str, str], DeviceNews] = {}
    for record in records:
        event = record.event
        if event["kind"] in GATEWAY_KINDS:
            continue  # the gateway's own device.offline/online events say nothing new about the device
        device = news.setdefault((event["vendor"], event["deviceId"]), DeviceNews(event["vendor"], event["deviceId"]))
        device.heard_at = max(device.heard_at or "", event["receivedAt"])
        at = state_at(event)
        if at != event["occurredAt"]:
            logger.info("event stamped ahead of its receipt, state ordered by receipt",
                        extra={"vendor": event["vendor"], "event_id": event["eventId"]})
        try:
            patch = patch_for(event)
        except Exception as exc:
            # A bug in one adapter's state hook must not hold back the batch's messages (it would
            # fail again on every retry): this event's groups are left alone, loudly.
            logger.error("state patch raised", extra={"error_type": type(exc).__name__, "where": innermost_frame(exc),
                                                      "vendor": event["vendor"], "event_id": event["eventId"]})
            if failed is not None:
                failed.append(StateFailure(event["vendor"], event["deviceId"], "state-patch", type(exc).__name__,
                                           (event["eventId"],)))
            patch = {}
        summary = {"lastKind": event["kind"], "lastReceivedAt": event["receivedAt"]}
        for group, value in {"summary": summary, **patch}.items():
            held = device.groups.get(group)
            if held is None or at > held.at:
                device.groups[group] = GroupNews(at, event["eventId"], value)
    return list(news.values())


def _chunks(messages: list[Outgoing], max_batch_bytes: int) -> Iterable[tuple[int, int]]:
    """[start, end) ranges of at most SQS_BATCH messages and max_batch_bytes bytes each (bodies
    and attributes: both count, for SQS and SNS alike)."""
    start = 0
    while start < len(messages):
        end, size = start, 0
        while end < len(messages) and end - start < SQS_BATCH and (
                end == start or size + messages[end].size <= max_batch_bytes):
            size += messages[end].size
            end += 1
        yield start, end
        start = end


def _count_accepted(records: list[StreamRecord]) -> None:
    counts = Counter((r.event["vendor"], r.event["kind"]) for r in records)
    for (vendor, kind), count in sorted(counts.items()):
        emit_counts(vendor, kind, {"accepted": count})


TransitionFor = Callable[[dict[str, Any]], "AlarmTransition | None"]


ReplyFor = Callable[[dict[str, Any]], "CommandReply | None"]


class Dispatcher(Protocol):
    def dispatch(self, vendor: str, device_id: str, now: datetime) -> int:
        """Send the commands waiting for a device that made contact; never raises
        (devicegate.outbox.waiting)."""


def process_batch(records: Iterable[StreamRecord], publisher: Publisher, state: StateStore,
                  patch_for: PatchFor, table: str = "", transition_for: TransitionFor | None = None,
                  reply_for: ReplyFor | None = None, now: datetime | None = None,
                  load_data: LoadData | None = None, dispatcher: Dispatcher | None = None) -> list[str]:
    """Returns the sequence numbers to report as failed (the first failure and all after it)."""
    pending = list(records)
    failed = _publish_all(pending, publisher, state, patch_for, table, transition_for, reply_for,
                          now or datetime.now(UTC), load_data, dispatcher)
    # Counted once a record is done (Lambda will not hand it over again): a stored event is
    # exactly one stream INSERT, so this is the gateway's "accepted" metric.
    _count_accepted(pending[:len(pending) - len(failed)])
    return failed


def _publish_all(pending: list[StreamRecord], publisher: Publisher, state: StateStore, patch_for: PatchFor,
                 table: str, transition_for: TransitionFor | None, reply_for: ReplyFor | None,
                 now: datetime, load_data: LoadData | None, dispatcher: Dispatcher | None = None) -> list[str]:
    if not pending:
        return []
    try:
        failures, unprojected = _load_offloaded(pending, load_data)
        contacted = _project(pending, state, patch_for, transition_for, reply_for, now, failures, unprojected)
    except StorageUnavailable as exc:
        logger.warning("state projection failed", extra={"error": str(exc)})
        return [r.sequence for r in pending]
    except Exception as exc:
        # A bug (an unexpected answer, an adapter's hook) must not fail the invocation: reported
        # as failed instead; bisection and the failure queue isolate a poison record.
        logger.error("state projection raised", extra={"error_type": type(exc).__name__,
                                                        "where": innermost_frame(exc)})
        return [r.sequence for r in pending]
    if dispatcher is not None:
        # Devices heard from in this batch with commands waiting for them (the count on the state
        # item the projection read anyway): nothing is looked up for any other device.
        for vendor, device_id in contacted:
            dispatcher.dispatch(vendor, device_id, now)
    messages = [outgoing(r, table, publisher.max_message_bytes) for r in pending]
    for start, end in _chunks(messages, publisher.max_batch_bytes):
        chunk = pending[start:end]
        failed = set(publisher.publish(messages[start:end]))
        if failed:
            first = next(i for i, r in enumerate(chunk) if r.sequence in failed)
            logger.warning("publish failed", extra={"failed": len(failed)})
            # Those after the first failure that did go out are sent again on the retry; their
            # deduplication ids make SQS drop the repeats.
            return [r.sequence for r in pending[start + first:]]
    return []


def _load_offloaded(records: list[StreamRecord], load_data: LoadData | None) -> tuple[list[StateFailure], set[str]]:
    """The records of offloaded events, read back into their envelopes (the item holds `{}` and
    a dataRef), so the projection and the message see what was stored. A payload gone from the
    bucket is a failure of its own (the event is published as it is, its state left alone: its
    sequence number is in the set returned); StorageUnavailable fails the batch."""
    failures: list[StateFailure] = []
    unprojected: set[str] = set()
    if load_data is None:
        return failures, unprojected
    for record in records:
        event = record.event
        ref = event.get("dataRef")
        if not ref or event.get("data"):
            continue
        try:
            event["data"] = load_data(ref)
        except PayloadMissing as exc:
            logger.error("offloaded record not found", extra={"vendor": event["vendor"], "event_id": event["eventId"]})
            failures.append(StateFailure(event["vendor"], event["deviceId"], "payload", exc.code, (event["eventId"],)))
            unprojected.add(record.sequence)
    return failures, unprojected


def _project(records: list[StreamRecord], state: StateStore, patch_for: PatchFor,
             transition_for: TransitionFor | None, reply_for: ReplyFor | None, now: datetime,
             failures: list[StateFailure], unprojected: set[str]) -> list[tuple[str, str]]:
    """The batch's state writes, before any of its messages go out; a write that fails for good
    fails alone (recorded), a transient failure fails the batch. Returns the devices heard from
    that have commands waiting for them."""
    projected = [r for r in records if r.sequence not in unprojected]
    news = device_news(projected, patch_for, failures)
    contacted: list[tuple[str, str]] = []
    if news:
        events_of: dict[tuple[str, str], list[str]] = {}
        for record in projected:
            events_of.setdefault((record.event["vendor"], record.event["deviceId"]), []).append(record.event["eventId"])
        heard = {(r.event["vendor"], r.event["deviceId"]) for r in projected if _device_spoke(r.event, reply_for)}
        for one, applied in zip(news, state.apply_many(news, now), strict=True):
            if applied.waiting > 0 and (one.vendor, one.device_id) in heard:
                contacted.append((one.vendor, one.device_id))
            if applied.failure is not None:
                failures.append(StateFailure(one.vendor, one.device_id, "device", applied.failure,
                                             tuple(events_of.get((one.vendor, one.device_id), ()))))
    for record in projected:
        event = record.event
        if transition_for is not None and event["kind"] == "alarm":
            _alone(failures, event, "alarm", partial(_advance, state, transition_for, event))
        # Answers to commands: the command each answers, in stream order (a device answers in the
        # order it was asked); conditional, and a retried batch finds its match done.
        if reply_for is not None:
            _alone(failures, event, "command", partial(_resolve, state, reply_for, event))
    for failure in failures:
        state.record_failure(failure, now)
        emit_counts(failure.vendor, failure.what, {"stateWriteFailed": 1})
        logger.warning("state write given up for one device", extra={"vendor": failure.vendor, "what": failure.what,
                                                                      "error": failure.error})
    return contacted


def _device_spoke(event: dict[str, Any], reply_for: ReplyFor | None) -> bool:
    """Whether the event is the device talking, so that what waits for it may be sent: not the
    vendor cloud's own failure about it (Jointech's `Device not online！`, an answer naming no
    command), which says the opposite."""
    if reply_for is None:
        return True
    try:
        reply = reply_for(event)
    except Exception:  # a hook's bug is reported where the answer is resolved; here: it spoke
        return True
    return reply is None or reply.ok or reply.match_key is not None


def _advance(state: StateStore, transition_for: TransitionFor, event: dict[str, Any]) -> None:
    if (step := transition_for(event)) is not None:
        state.advance_alarm(event["vendor"], event["deviceId"], step, event["eventId"])


def _resolve(state: StateStore, reply_for: ReplyFor, event: dict[str, Any]) -> None:
    if (reply := reply_for(event)) is not None:
        state.resolve_command(event["vendor"], reply)


def _alone(failures: list[StateFailure], event: dict[str, Any], what: str, write: Callable[[], None]) -> None:
    """Run one event's write; a failure that would recur on every retry is recorded instead of
    failing the batch (StorageUnavailable still does)."""
    try:
        write()
    except StorageUnavailable:
        raise
    except ItemRefused as exc:
        failures.append(StateFailure(event["vendor"], event["deviceId"], what, exc.code, (event["eventId"],)))
    except Exception as exc:  # an adapter hook's bug: this event's write only, loudly
        logger.error(f"{what} projection raised", extra={"vendor": event["vendor"], "event_id": event["eventId"],
                                                         "error_type": type(exc).__name__, "where": innermost_frame(exc)})
        failures.append(StateFailure(event["vendor"], event["deviceId"], what, type(exc).__name__,
                                     (event["eventId"],)))
