"""The outbox: each newly stored event (a stream INSERT) becomes one CloudEvents message on the
queue, and moves its device's latest state forward (devicegate.store.state). Runs off the hot path.

Order matters for retries: state first (its conditional updates are idempotent), then the queue.
On the first failure the batch stops and that record and every later one are reported as failed,
so Lambda resumes from there and nothing earlier is published twice. The queue is FIFO with one
message group per device and the event's own deduplication id (devicegate.outbox.messages), so a
send whose answer was lost, or a chunk re-sent after a partial failure, is dropped by SQS instead
of reaching apps twice. Batches Lambda gave up on are published again by
devicegate.outbox.stream.redrive_failed_batches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Protocol

from devicegate.core.adapter import AlarmTransition, CommandReply
from devicegate.core.errors import StorageUnavailable
from devicegate.core.timeutil import parse_time
from devicegate.infra.observability import emit_counts, innermost_frame, logger
from devicegate.outbox.messages import (
    MAX_BATCH_BYTES,
    SQS_BATCH,
    Outgoing,
    Publisher,
    deduplication_id,
    message_body,
    message_group,
)
from devicegate.outbox.stream import StreamRecord
from devicegate.store.liveness import GATEWAY_KINDS

# An event stamped more than a day after it was received has a broken device clock; letting it
# into state would freeze that state until the clock catches up.
MAX_CLOCK_SKEW = timedelta(days=1)


def outgoing(record: StreamRecord, body: str) -> Outgoing:
    event = record.event
    return Outgoing(record.sequence, body, message_group(event["vendor"], event["deviceId"]),
                    deduplication_id(event["vendor"], event["eventId"]))


class StateStore(Protocol):
    def advance(self, vendor: str, device_id: str, group: str, at: str, event_id: str, value: dict[str, Any]) -> bool:
        """Set a state group if `at` is newer than what is stored. True when it moved."""

    def advance_alarm(self, vendor: str, device_id: str, step: AlarmTransition, event_id: str) -> bool:
        """Record one step of an alarm's lifecycle; its status moves only to a newer step."""

    def heard(self, vendor: str, device_id: str, at: str) -> bool:
        """The device was heard from at `at` (a receive time): online again if it was offline."""

    def resolve_command(self, vendor: str, reply: CommandReply) -> str | None:
        """Mark the command a device's answer is for succeeded or failed (once); its id or None."""


#: (vendor, device, group) -> (at, event id, value): the state writes of some events.
StateUpdates = dict[tuple[str, str, str], tuple[str, str, dict[str, Any]]]


def state_updates(event: dict[str, Any], patch: dict[str, dict[str, Any]]) -> StateUpdates:
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
        newest, heard = _newest_states(chunk, patch_for), _last_heard(chunk)
        try:
            _project(chunk, state, newest, heard, transition_for, reply_for)
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



def _newest_states(chunk: list[StreamRecord],
                   patch_for: Callable[[dict[str, Any]], dict[str, dict[str, Any]]]) -> StateUpdates:
    """One write per device and state group per chunk: the newest value wins, older ones in the
    same chunk would be refused by the condition anyway."""
    newest: StateUpdates = {}
    for record in chunk:
        for key, update in state_updates(record.event, patch_for(record.event)).items():
            if key not in newest or update[0] > newest[key][0]:
                newest[key] = update
    return newest


def _last_heard(chunk: list[StreamRecord]) -> dict[tuple[str, str], str]:
    """Contact, by receive time: the newest per device in this chunk (one write per device)."""
    heard: dict[tuple[str, str], str] = {}
    for record in chunk:
        event = record.event
        if event["kind"] not in GATEWAY_KINDS:
            device_key = (event["vendor"], event["deviceId"])
            heard[device_key] = max(heard.get(device_key, ""), event["receivedAt"])
    return heard


def _project(chunk: list[StreamRecord], state: StateStore, newest: StateUpdates, heard: dict[tuple[str, str], str],
             transition_for: TransitionFor | None, reply_for: ReplyFor | None) -> None:
    """One chunk's state writes, before its messages go out."""
    for (vendor, device, group), (at, event_id, value) in newest.items():
        state.advance(vendor, device, group, at, event_id, value)
    for (vendor, device), at in heard.items():
        state.heard(vendor, device, at)
    if transition_for is not None:
        for record in chunk:
            if record.event["kind"] == "alarm" and (step := transition_for(record.event)) is not None:
                state.advance_alarm(record.event["vendor"], record.event["deviceId"], step, record.event["eventId"])
    # Answers to commands: the command each answers, in stream order (a device answers in the
    # order it was asked); conditional, and a retried chunk finds its match done.
    if reply_for is not None:
        for record in chunk:
            if (reply := reply_for(record.event)) is not None:
                state.resolve_command(record.event["vendor"], reply)


