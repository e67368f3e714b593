"""Newly stored events as they are stored, read from the table's stream beside the outbox: the
fleet's live tail, without a write more per event and without a Scan.

DynamoDB lets two readers take a shard's records at the same time; the outbox's stream mapping is
one, so one tail is the second. A third (a second tail at the same moment, or the outbox's
redrive while it re-reads a failed batch) may be throttled: the reader then waits, doubling the
wait up to MAX_BACKOFF_S, tells `on_busy`, and carries on where it was, so nothing is skipped
while the records stay in the stream (24 hours). Every GetRecords call is a stream read request,
billed whether it returns records or not: POLL_S sets the bill (docs/consuming.md, "The fleet's
events").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from devicegate.infra.aws import error_code, failures
from devicegate.store.items import envelope_from_image

#: One GetRecords per open shard per this many seconds, while nothing comes.
POLL_S = 1.0
#: Shards close and split (about every four hours, and as the table grows): looked for this often.
SHARD_REFRESH_S = 60.0
MAX_BACKOFF_S = 16.0
#: A reader beyond the two a shard serves, or a call rate over the shard's limit.
THROTTLED = frozenset({"LimitExceededException", "ThrottlingException", "ProvisionedThroughputExceededException"})
#: An iterator expires 15 minutes after it was handed out; records older than 24 hours are gone.
_REOPEN = frozenset({"ExpiredIteratorException", "TrimmedDataAccessException"})


def wait(seconds: float) -> None:
    """Between two polls of an idle stream (a module function: tests stand in for it)."""
    time.sleep(seconds)


class NoStream(Exception):
    """The table has no stream (the template always enables one: a table made by hand)."""


def stream_arn(ddb: Any, table: str) -> str:
    """The table's stream (DescribeTable's LatestStreamArn)."""
    arn = ddb.describe_table(TableName=table)["Table"].get("LatestStreamArn")
    if not arn:
        raise NoStream(f"table {table} has no stream")
    return str(arn)


def is_event_record(record: dict[str, Any]) -> bool:
    """A new event item (INSERT of pk E#...): not a device's state, a quarantined payload, an id
    marker, an update or a TTL deletion."""
    change = record.get("dynamodb") or {}
    pk = ((change.get("Keys") or {}).get("pk") or {}).get("S", "")
    return (record.get("eventName") == "INSERT" and pk.startswith("E#")
            and "eventId" in (change.get("NewImage") or {}))


@dataclass
class _Shard:
    iterator: str | None
    last: str | None = None  # the sequence number of the last record read


@dataclass
class StreamTail:
    """Where a tail is in each shard of the stream. `events()` yields envelopes (as
    queries.device_events returns them) of the events stored since the tail started, oldest
    first, until `stop()` says so."""

    streams: Any
    arn: str
    vendor: str | None = None
    kind: str | None = None
    poll_s: float = POLL_S
    on_busy: Callable[[str, float], None] | None = None  # (error code, seconds it waits)
    sleep: Callable[[float], None] | None = None  # default: wait()
    clock: Callable[[], float] = time.monotonic
    _shards: dict[str, _Shard] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)
    _next_refresh: float = 0.0
    _started: bool = False
    backoff_s: float = 0.0

    def start(self) -> None:
        """Place an iterator at the end (LATEST) of every open shard: what is stored from now on
        is the tail's. Closed shards are history."""
        self._refresh(at_start=True)

    def events(self, stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
        if not self._started:
            self.start()
        while not stop():
            if self.clock() >= self._next_refresh:
                self._refresh(at_start=False)
            got = self.poll()
            yield from got
            if not got:
                (self.sleep or wait)(self.backoff_s or self.poll_s)

    def poll(self) -> list[dict[str, Any]]:
        """One GetRecords per shard being read; the new events among the records, in shard order
        and then by creation time across shards."""
        found: list[tuple[float, int, dict[str, Any]]] = []
        for shard_id in list(self._shards):
            for record in self._read(shard_id):
                if is_event_record(record):
                    event = envelope_from_image(record["dynamodb"]["NewImage"])
                    if self._wanted(event):
                        found.append((_created(record), len(found), event))
        return [event for _, _, event in sorted(found, key=lambda f: f[:2])]

    def _wanted(self, event: dict[str, Any]) -> bool:
        return (self.vendor is None or event.get("vendor") == self.vendor) and (
            self.kind is None or event.get("kind") == self.kind)

    def _read(self, shard_id: str) -> list[dict[str, Any]]:
        shard = self._shards[shard_id]
        if shard.iterator is None:
            shard.iterator = self._iterator(shard_id, shard.last, "LATEST")
        try:
            page = self.streams.get_records(ShardIterator=shard.iterator, Limit=1000)
        except failures() as exc:
            code = error_code(exc)
            if code in THROTTLED:
                self._busy(code)
                return []
            if code in _REOPEN:
                shard.iterator = None  # from the last record read (or the start, if trimmed)
                if code == "TrimmedDataAccessException":
                    shard.last = None
                    shard.iterator = self._iterator(shard_id, None, "TRIM_HORIZON")
                return []
            raise
        self.backoff_s = 0.0
        records = page.get("Records") or []
        if records:
            shard.last = records[-1]["dynamodb"]["SequenceNumber"]
        shard.iterator = page.get("NextShardIterator")
        if shard.iterator is None:  # closed and read to its end: its children carry on
            del self._shards[shard_id]
            self._done.add(shard_id)
        return records

    def _busy(self, code: str) -> None:
        self.backoff_s = min(MAX_BACKOFF_S, (self.backoff_s * 2) or self.poll_s * 2)
        if self.on_busy:
            self.on_busy(code, self.backoff_s)

    def _iterator(self, shard_id: str, after: str | None, otherwise: str) -> str:
        where: dict[str, Any] = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
                                 if after else {"ShardIteratorType": otherwise})
        return str(self.streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard_id, **where)["ShardIterator"])

    def _refresh(self, at_start: bool) -> None:
        for shard in _describe_shards(self.streams, self.arn):
            shard_id = shard["ShardId"]
            if shard_id in self._shards or shard_id in self._done:
                continue
            closed = bool((shard.get("SequenceNumberRange") or {}).get("EndingSequenceNumber"))
            if at_start:
                if not closed:
                    self._shards[shard_id] = _Shard(self._iterator(shard_id, None, "LATEST"))
                else:
                    self._done.add(shard_id)
            else:
                # Born while the tail ran (a split, or the roll-over of a closed parent): all of
                # it is new. A shard closed before we saw it opened and closed meanwhile.
                self._shards[shard_id] = _Shard(self._iterator(shard_id, None, "TRIM_HORIZON"))
        self._started = True
        self._next_refresh = self.clock() + SHARD_REFRESH_S

    @property
    def shards(self) -> int:
        """Shards being read: GetRecords calls per poll."""
        return len(self._shards)


def _describe_shards(streams: Any, arn: str) -> list[dict[str, Any]]:
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamArn": arn}
    while True:
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        shards += description.get("Shards") or []
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shards
        kwargs["ExclusiveStartShardId"] = last


def _created(record: dict[str, Any]) -> float:
    created = (record.get("dynamodb") or {}).get("ApproximateCreationDateTime") or 0
    return created.timestamp() if hasattr(created, "timestamp") else float(created)


def tail_events(streams: Any, arn: str, vendor: str | None = None, kind: str | None = None,
                stop: Callable[[], bool] = lambda: False, poll_s: float = POLL_S,
                on_busy: Callable[[str, float], None] | None = None) -> Iterator[dict[str, Any]]:
    """The events stored from now on (oldest first, as the stream has them), of `vendor` and
    `kind` if given, until `stop()`: a plain generator over StreamTail."""
    tail = StreamTail(streams, arn, vendor=vendor, kind=kind, poll_s=poll_s, on_busy=on_busy)
    tail.start()
    yield from tail.events(stop)
