"""The pipeline keeps liveness beats and events apart: a beat only moves its source's last-seen
time, an event is stored. (No vendor sends both in one push today; SenseLink's heartbeat frame is
a beat alone. The pipeline allows it, so these pin what it does then.)"""

from __future__ import annotations

from datetime import UTC, datetime

from devicegate.core.adapter import Answer, Outcome, VendorAdapter
from devicegate.core.envelope import Heartbeat, NormalizedEvent, RawPush, make_event
from devicegate.ingest.pipeline import Pipeline

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BEAT = Heartbeat("test", "bridge-1", "2026-01-02T03:04:05Z")
EVENT = make_event(vendor="test", device_id="dev-1", kind="record", occurred_at=AT, received_at=AT,
                   transport="http", data_json='{"n":1}')


class _Adapter(VendorAdapter):
    vendor = "test"

    def __init__(self, records: list[NormalizedEvent | Heartbeat]):
        self.records = records

    def normalize(self, push: RawPush, received_at: datetime) -> list[NormalizedEvent | Heartbeat]:
        return self.records

    def answer(self, outcome, problems=None, reason=""):
        return Answer(200, {"outcome": outcome.value})


class _Store:
    def __init__(self):
        self.beats: list[Heartbeat] = []
        self.events: list[NormalizedEvent] = []

    def heartbeat(self, beat):
        self.beats.append(beat)

    def put_event(self, event):
        self.events.append(event)
        return True


def _ingest(*records):
    store = _Store()
    push = RawPush(vendor="test", transport="http", body=b"{}")
    result = Pipeline(_Adapter(list(records)), store, verifier=None, clock=lambda: AT).ingest(push)
    return result, store


def test_a_beat_beside_an_event_is_not_stored_as_one():
    # When a push holds a beat and an event
    result, store = _ingest(BEAT, EVENT)

    # Then the beat moves its source's last-seen time, the event alone is stored and answered
    assert store.beats == [BEAT]
    assert store.events == [EVENT]
    assert result.outcome is Outcome.ACCEPTED and result.events == [EVENT] and result.stored == 1


def test_beats_alone_are_accepted_with_nothing_stored():
    # When a push holds only beats
    result, store = _ingest(BEAT, BEAT)

    # Then each is heard, nothing is stored, and the sender is told it was accepted
    assert store.beats == [BEAT, BEAT]
    assert store.events == []
    assert result.outcome is Outcome.ACCEPTED and result.events == [] and result.stored == 0
    assert result.answer == Answer(200, {"outcome": "accepted"})
