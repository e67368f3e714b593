"""The outbox's retry contract, with in-memory fakes for the queue and the state table."""

from __future__ import annotations

from devicegate.errors import StorageUnavailable
from devicegate.outbox import StreamRecord, cloud_event, process_batch


def _event(n: int, occurred: str = "2025-02-07T10:00:00.000Z") -> dict:
    return {"vendor": "jointech", "deviceId": f"dev{n % 2}", "kind": "location", "eventId": f"e{n}",
            "occurredAt": occurred, "receivedAt": "2025-02-07T10:00:01.000Z", "transport": "http", "data": {}}


class FakeQueue:
    def __init__(self, fail_ids=()):
        self.sent: list[str] = []
        self.fail_ids = set(fail_ids)

    def publish(self, messages):
        failed = [ident for ident, m in messages if m["id"] in self.fail_ids]
        self.sent += [m["id"] for ident, m in messages if m["id"] not in self.fail_ids]
        return failed


class FakeState:
    def __init__(self, fail_on=None):
        self.groups: dict[tuple, str] = {}
        self.fail_on = fail_on

    def advance(self, vendor, device, group, at, event_id, value):
        if event_id == self.fail_on:
            raise StorageUnavailable("boom")
        key = (vendor, device, group)
        if key in self.groups and self.groups[key] >= at:
            return False
        self.groups[key] = at
        return True


def _records(n: int) -> list[StreamRecord]:
    return [StreamRecord(f"seq{i:03d}", _event(i)) for i in range(n)]


def test_a_clean_batch_publishes_every_record_once_in_order():
    queue, state = FakeQueue(), FakeState()
    failed = process_batch(_records(23), queue, state, lambda e: {"position": {"lat": 1}})
    assert failed == []
    assert queue.sent == [f"e{i}" for i in range(23)]


def test_a_publish_failure_reports_it_and_everything_after_it():
    # Given the queue refuses event e12 (second chunk of ten)
    queue, state = FakeQueue(fail_ids={"e12"}), FakeState()
    # When the batch is processed
    failed = process_batch(_records(23), queue, state, lambda e: {})
    # Then Lambda is told to resume at seq012; nothing after the failing chunk was sent
    assert failed == [f"seq{i:03d}" for i in range(12, 23)]
    assert queue.sent == [f"e{i}" for i in range(20) if i != 12]


def test_a_state_failure_stops_before_publishing_that_record():
    queue, state = FakeQueue(), FakeState(fail_on="e3")
    failed = process_batch(_records(5), queue, state, lambda e: {})
    assert failed == ["seq003", "seq004"]
    assert queue.sent == []  # the chunk holding e3 was not published; the retry will


def test_events_far_in_the_future_do_not_touch_state():
    state = FakeState()
    future = StreamRecord("s1", _event(1, occurred="2031-01-01T00:00:00.000Z"))
    process_batch([future], FakeQueue(), state, lambda e: {"position": {}})
    assert state.groups == {}


def test_cloud_event_shape():
    event = _event(7)
    message = cloud_event(event)
    assert message == {
        "specversion": "1.0", "id": "e7", "source": "devicegate/jointech", "type": "devicegate.jointech.location",
        "subject": "dev1", "time": "2025-02-07T10:00:00.000Z", "datacontenttype": "application/json", "data": event,
    }
    assert cloud_event(event, "s3://b/k")["dataref"] == "s3://b/k"
