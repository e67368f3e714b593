"""authenticate -> decode -> validate -> normalize -> store -> answer, written once for every vendor.

"Accepted" is only said after the event is durably stored (or found already stored). Every other
path says why, in the vendor's shape: 403 for a bad token, 4xx with the bad fields (payload kept
in quarantine), 503 when storage is down so the sender keeps the record and retries.

A push of several records is judged record by record: the valid ones are stored, each refused
one is quarantined alone (as a push of its own, replayable), and the answer says which were
refused (Outcome.PARTIAL, answered as delivered: a retry would store nothing twice and could not
fix what was refused). Only when every record is refused is the push answered as invalid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from devicegate.core import personal
from devicegate.core.adapter import Answer, Outcome, VendorAdapter
from devicegate.core.envelope import Heartbeat, NormalizedEvent, RawPush, RefusedRecord
from devicegate.core.errors import FieldProblem, InvalidPayload, PayloadTooLarge, StorageUnavailable
from devicegate.core.timeutil import now_utc
from devicegate.infra.observability import emit_counts, innermost_frame, logger
from devicegate.ingest.auth import TokenVerifier
from devicegate.store.configs import DeviceConfigs
from devicegate.store.events import EventStore, QuarantineRecord


@dataclass
class IngestResult:
    outcome: Outcome
    answer: Answer
    events: list[NormalizedEvent] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    quarantined: bool = False
    reason: str = ""  # why it was refused (INVALID, TOO_LARGE, PARTIAL) or failed (UNAVAILABLE)
    problems: list[FieldProblem] = field(default_factory=list)  # the fields at fault, for a refusal
    refused: int = 0  # records of the push kept in quarantine (PARTIAL, or INVALID record by record)


class Pipeline:
    def __init__(self, adapter: VendorAdapter, store: EventStore, verifier: TokenVerifier | None,
                 clock: Callable[[], datetime] = now_utc, configs: DeviceConfigs | None = None,
                 quarantine: bool = True):
        self.adapter = adapter
        self.store = store
        self.verifier = verifier  # None: the transport already authenticated (IoT Core), or a replay
        self.clock = clock
        self.configs = configs  # devices' configuration items, for answers that carry them
        # False for a replay of what is in quarantine already: a payload still refused is not a
        # new sighting of it.
        self.quarantine = quarantine

    def ingest(self, push: RawPush) -> IngestResult:
        vendor = self.adapter.vendor
        try:
            return self._ingest(push)
        except StorageUnavailable as exc:
            logger.warning("storage unavailable, asking sender to retry", extra={"vendor": vendor, "error": str(exc)})
            emit_counts(vendor, self.adapter.quarantine_kind(push), {"failed": 1})
            return IngestResult(Outcome.UNAVAILABLE, self.adapter.answer(Outcome.UNAVAILABLE),
                                reason=f"storage unavailable ({exc})")
        except Exception as exc:
            # Last resort: whatever broke (a bug on the storage path, an unexpected answer), the
            # sender gets its retryable failure and keeps the record, never a crash that the
            # transport turns into a 500 (or that an MQTT retry cannot tell from an outage).
            logger.error("ingest raised, asking sender to retry", extra={"vendor": vendor,
                                                                         "error_type": type(exc).__name__,
                                                                         "where": innermost_frame(exc)})
            emit_counts(vendor, "unknown", {"failed": 1})
            return IngestResult(Outcome.UNAVAILABLE, self.adapter.answer(Outcome.UNAVAILABLE),
                                reason=f"{type(exc).__name__} at {innermost_frame(exc)}")

    def _ingest(self, push: RawPush) -> IngestResult:
        adapter, vendor = self.adapter, self.adapter.vendor
        if self.verifier is not None and not self.verifier.verify(push):
            logger.info("rejected push with a wrong or missing token", extra={"vendor": vendor})
            emit_counts(vendor, "forbidden", {"rejected": 1})
            return IngestResult(Outcome.FORBIDDEN, adapter.answer(Outcome.FORBIDDEN))

        received_at = self.clock()
        try:
            if len(push.body) > adapter.max_body_bytes:
                raise PayloadTooLarge(len(push.body), adapter.max_body_bytes)
            records = self._normalize(push, received_at)
        except PayloadTooLarge as exc:
            problems = [FieldProblem("body", str(exc))]
            return self._reject(push, Outcome.TOO_LARGE, "payload too large", problems, received_at)
        except InvalidPayload as exc:
            return self._reject(push, Outcome.INVALID, exc.reason, exc.problems, received_at)

        beats: list[Heartbeat] = []
        events: list[NormalizedEvent] = []
        refused: list[RefusedRecord] = []
        for record in records:
            if isinstance(record, Heartbeat):
                beats.append(record)
            elif isinstance(record, RefusedRecord):
                refused.append(record)
            else:
                events.append(record)
        for beat in beats:
            self.store.heartbeat(beat)
        if beats and not events and not refused:
            return IngestResult(Outcome.ACCEPTED, adapter.answer(Outcome.ACCEPTED))
        try:
            stored, duplicates = self._store(push, events, refused, received_at)
        except InvalidPayload as exc:  # the table refused the push's one record itself (key too large)
            return self._reject(push, Outcome.INVALID, exc.reason, exc.problems, received_at)
        if refused:
            return self._refused_records(push, refused, events, stored, duplicates, received_at)
        outcome = Outcome.ACCEPTED if stored or not duplicates else Outcome.DUPLICATE
        return IngestResult(outcome, self._accepted_answer(outcome, events), events, stored, duplicates)

    def _store(self, push: RawPush, events: list[NormalizedEvent], refused: list[RefusedRecord],
               received_at: datetime) -> tuple[int, int]:
        """(stored, duplicates) of the push's events, each stored once. A record the table refuses
        as an item raises InvalidPayload when it is the push's only one, else joins `refused`."""
        stored = duplicates = 0
        for event in events:
            # "accepted" is counted by the outbox from the stream (one metric line per batch and
            # kind instead of one per request): a stored event is exactly one stream INSERT.
            try:
                if event.part is not None:
                    complete = self._put_part(event, received_at)
                    if complete is None:
                        stored += 1  # kept on its assembly item; the event waits for the rest
                        continue
                    event = complete
                new = self.store.put_event(event)
            except InvalidPayload as exc:
                if len(events) + len(refused) == 1:
                    raise
                # Which record of the push it came from is the adapter's knowledge, not the
                # store's: the push is kept whole (a replay stores the others once, again).
                refused.append(RefusedRecord(exc.reason, exc.problems, push.raw_bytes()))
                continue
            if new:
                stored += 1
            else:
                duplicates += 1
                emit_counts(self.adapter.vendor, event.kind, {"duplicate": 1})
                logger.info("retransmission recognised", extra={"vendor": self.adapter.vendor, "kind": event.kind,
                                                                "event_id": event.eventId})
        return stored, duplicates

    def _refused_records(self, push: RawPush, refused: list[RefusedRecord], events: list[NormalizedEvent],
                         stored: int, duplicates: int, received_at: datetime) -> IngestResult:
        """Each refused record of a multi-record push quarantined alone; the answer names them."""
        problems = [problem for record in refused for problem in record.problems]
        total = len(refused) + stored + duplicates
        reason = f"{len(refused)} of {total} records refused, each kept in quarantine"
        for record in refused:
            alone = RawPush(vendor=push.vendor, transport=push.transport, body=record.body, route=dict(push.route),
                            headers={"content-type": "application/json"}, request_id=push.request_id)
            self._keep(alone, record.reason, record.problems, received_at)
        outcome = Outcome.PARTIAL if stored or duplicates else Outcome.INVALID
        answer = self.adapter.answer(outcome, problems, reason)
        return IngestResult(outcome, answer, events, stored, duplicates, quarantined=self.quarantine, reason=reason,
                            problems=problems, refused=len(refused))

    def _put_part(self, event: NormalizedEvent, received_at: datetime) -> NormalizedEvent | None:
        """Store one part; the assembled event once every part is there (a retransmitted last
        part assembles the same event again, which put_event then finds stored)."""
        part = event.part
        assert part is not None
        state = self.store.put_part(event)
        if not set(part.needs) <= state.parts.keys():
            return None
        try:
            assembled = self.adapter.assemble(event.deviceId, part.group, state.parts, received_at, event.transport)
            if state.published_incomplete:
                # The sweep gave up waiting and published the record incomplete; the part that
                # completes it is published too, as its own event (`-complete`), not dropped.
                assembled = replace(assembled, eventId=f"{assembled.eventId}-complete")
            return assembled
        except InvalidPayload:
            raise
        except Exception as exc:  # the part is stored; the sweep assembles it again later
            logger.error("adapter failed to assemble parts", extra={"vendor": self.adapter.vendor,
                                                                    "error_type": type(exc).__name__,
                                                                    "where": innermost_frame(exc)})
            return None

    def _accepted_answer(self, outcome: Outcome, events: list[NormalizedEvent]) -> Answer:
        adapter = self.adapter
        config = None
        if self.configs is not None:
            # At most one (cached) read, and only for vendors whose answer carries configuration.
            device = adapter.config_device(events)
            if device is not None:
                config = self.configs.get(adapter.vendor, device)
        return adapter.accepted_answer(outcome, events, config)

    def _normalize(self, push: RawPush, received_at: datetime) -> Sequence[NormalizedEvent | Heartbeat | RefusedRecord]:
        try:
            events = self.adapter.normalize(push, received_at)
        except InvalidPayload:
            raise
        except Exception as exc:
            # An adapter bug must not lose the record nor make the sender retry it forever: it
            # is kept in quarantine (replayable once fixed) and answered as not processable.
            # Logged without the exception's message or locals: those may quote the payload
            # (names, card numbers); the type and the failing line are enough to find the bug.
            logger.error("adapter failed on a payload", extra={"vendor": self.adapter.vendor,
                                                               "error_type": type(exc).__name__,
                                                               "where": innermost_frame(exc)})
            raise InvalidPayload("payload could not be processed",
                                 [FieldProblem("body", "internal decoding error; kept for replay")]) from None
        if not events:
            raise InvalidPayload("payload holds no record", [FieldProblem("body", "no record found")])
        return events

    def _reject(self, push: RawPush, outcome: Outcome, reason: str, problems: list[FieldProblem],
                received_at: datetime) -> IngestResult:
        quarantined = self._keep(push, reason, problems, received_at)
        return IngestResult(outcome, self.adapter.answer(outcome, problems, reason), quarantined=quarantined,
                            reason=reason, problems=problems)

    def _keep(self, push: RawPush, reason: str, problems: list[FieldProblem], received_at: datetime) -> bool:
        """Quarantine a refused payload (scrubbed by its vendor); False when this pipeline does not
        quarantine (a replay of what is in quarantine already)."""
        vendor, kind = self.adapter.vendor, self.adapter.quarantine_kind(push)
        try:
            body = self.adapter.quarantine_body(push)
        except Exception as exc:  # a scrubbing bug must not turn bad input into a 500
            # Nor keep a PIN: what could not be scrubbed is kept as a summary only (its digest,
            # size and shape), which says that it came and how it was broken.
            logger.error("quarantine scrubbing failed; keeping a summary of the payload",
                         extra={"vendor": vendor, "error_type": type(exc).__name__, "where": innermost_frame(exc)})
            body = json.dumps(personal.redacted(push.raw_bytes())).encode()
        record = QuarantineRecord(
            vendor=vendor, kind=kind, transport=push.transport, reason=reason, problems=problems,
            body=body, received_at=received_at,
            content_type=push.headers.get("content-type", ""), route=dict(push.route),
        )
        if not self.quarantine:
            return False
        first = self.store.quarantine(record)  # StorageUnavailable propagates: answer 503, retry
        emit_counts(vendor, kind, {"rejected": 1, "quarantined": 1})
        logger.info("payload quarantined", extra={
            "vendor": vendor, "kind": kind, "reason": reason, "first_seen": first,
            "fields": [p.field for p in problems], "quarantine_id": record.digest,
        })
        return True
