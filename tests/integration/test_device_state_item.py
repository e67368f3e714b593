"""One item per device: every state group, contact and liveness, written once per outbox batch;
and a sweep that reads the devices that are due, not the fleet."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from devicegate.core.errors import StorageUnavailable
from devicegate.core.offline import OfflinePolicy
from devicegate.core.timeutil import iso_utc
from devicegate.outbox.stream import StreamRecord
from devicegate.store.devices import DeviceNews, DeviceStore, GroupNews
from devicegate.sweep import Sweep
from devicegate.vendors import get_adapter, vendor_names

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return iso_utc(T0 + timedelta(seconds=seconds))


def news(device: str, heard: str, **groups: tuple[str, dict]) -> DeviceNews:
    return DeviceNews("jointech", device, heard_at=heard,
                      groups={name: GroupNews(when, f"e-{name}-{when}", value) for name, (when, value) in groups.items()})


class Calls:
    """Counts the DynamoDB requests a client makes (and the keys its BatchGetItems ask for)."""

    def __init__(self, ddb):
        self._ddb, self.counts, self.keys_read = ddb, Counter(), 0

    def __getattr__(self, name):
        method = getattr(self._ddb, name)

        def counted(**kwargs):
            self.counts[name] += 1
            if name == "batch_get_item":
                self.keys_read += sum(len(r["Keys"]) for r in kwargs["RequestItems"].values())
            return method(**kwargs)
        return counted


def test_a_batch_of_many_events_of_a_device_is_one_read_and_one_write(stack):
    # Given an outbox batch of 30 locations of one device (and one of another)
    from devicegate.outbox.batch import process_batch

    events = [{"vendor": "jointech", "deviceId": "d1", "kind": "location", "eventId": f"e{i}",
               "occurredAt": at(i), "receivedAt": at(i + 1), "transport": "http", "data": {}} for i in range(30)]
    events.append(dict(events[0], deviceId="d2", eventId="x"))
    calls = Calls(stack.ddb)
    from devicegate.store.state import DynamoStateStore

    class Queue:
        max_message_bytes = max_batch_bytes = 1_000_000

        def publish(self, messages):
            return []

    state = DynamoStateStore(calls, stack.table)
    failed = process_batch([StreamRecord(str(i), e) for i, e in enumerate(events)], Queue(), state,
                           lambda e: {"position": {"n": e["eventId"]}})
    # Then the state is one BatchGetItem and one PutItem per device, holding the newest position
    assert failed == [] and calls.counts == {"batch_get_item": 1, "put_item": 2}
    assert stack.state("jointech", "d1")["position"]["value"] == {"n": "e29"}
    assert stack.device_item("jointech", "d1")["heardAt"] == at(30)

    # When the same batch is retried (Lambda redelivers it)
    calls.counts.clear()
    process_batch([StreamRecord(str(i), e) for i, e in enumerate(events)], Queue(), state,
                  lambda e: {"position": {"n": e["eventId"]}})
    # Then it reads, and writes nothing
    assert calls.counts == {"batch_get_item": 1}


def test_an_older_record_after_a_newer_one_leaves_its_group_but_moves_the_others(stack):
    store = DeviceStore(stack.ddb, stack.table)
    store.apply_many([news("d1", at(10), position=(at(9), {"lat": 2}), battery=(at(5), {"pct": 50}))], T0)
    # When a backfilled record from before arrives, with a newer battery reading
    store.apply_many([news("d1", at(20), position=(at(1), {"lat": 1}), battery=(at(8), {"pct": 40}))], T0)
    # Then position keeps the newer fix, battery moves, contact moves
    state = stack.state("jointech", "d1")
    assert state["position"]["value"] == {"lat": 2} and state["position"]["at"] == at(9)
    assert state["battery"]["value"] == {"pct": 40}
    assert stack.device_item("jointech", "d1")["heardAt"] == at(20)


def test_two_batches_racing_on_a_device_lose_no_group(stack):
    # Given a device, and another outbox batch that writes its lock state between this batch's
    # read and its write
    store = DeviceStore(stack.ddb, stack.table)
    store.apply_many([news("d1", at(1), summary=(at(1), {"lastKind": "location"}))], T0)

    class Racing:
        def __init__(self, ddb):
            self._ddb, self.raced = ddb, False

        def __getattr__(self, name):
            return getattr(self._ddb, name)

        def put_item(self, **kwargs):
            if not self.raced:
                self.raced = True
                DeviceStore(self._ddb, stack.table).apply_many(
                    [news("d1", at(6), lock=(at(5), {"locked": True}))], T0)
            return self._ddb.put_item(**kwargs)

    # When this batch writes its position
    DeviceStore(Racing(stack.ddb), stack.table).apply_many([news("d1", at(4), position=(at(3), {"lat": 1}))], T0)
    # Then both groups are there, and contact is the newest of the two
    state = stack.state("jointech", "d1")
    assert state["lock"]["value"] == {"locked": True} and state["position"]["value"] == {"lat": 1}
    assert stack.device_item("jointech", "d1")["heardAt"] == at(6)


def test_a_write_whose_answer_was_lost_is_not_applied_twice(stack):
    # Given a put that lands but whose answer is lost, so it is retried by the store's re-read
    from botocore.exceptions import ReadTimeoutError

    class LostAnswer:
        def __init__(self, ddb):
            self._ddb, self.lost = ddb, False

        def __getattr__(self, name):
            return getattr(self._ddb, name)

        def put_item(self, **kwargs):
            self._ddb.put_item(**kwargs)
            if not self.lost:
                self.lost = True
                raise ReadTimeoutError(endpoint_url="https://dynamodb")
            return {}

    store = DeviceStore(LostAnswer(stack.ddb), stack.table)
    with pytest.raises(StorageUnavailable):
        store.apply_many([news("d1", at(1), position=(at(1), {"lat": 1}))], T0)
    # When the batch is retried, the item is as one write left it
    DeviceStore(stack.ddb, stack.table).apply_many([news("d1", at(1), position=(at(1), {"lat": 1}))], T0)
    item = stack.device_item("jointech", "d1")
    assert item["version"] == 1 and item["state"]["position"]["value"] == {"lat": 1}


def _fleet(stack, count: int, start: int, heard: str) -> None:
    """`count` trackers last heard at `heard`: the items the store writes for them (its own merge
    of their first contact), loaded 25 at a time so that a 20,000-device fleet takes seconds."""
    from devicegate.store.codec import to_attr

    store = DeviceStore(stack.ddb, stack.table)
    items = []
    for n in range(start, start + count):
        one = DeviceNews("jointech", f"t{n:06d}", heard_at=heard, offline_after_s=3600)
        item, _ = store._merged(one, None)
        items.append({k: to_attr(v) for k, v in dict(item, version=1).items()})
    for first in range(0, len(items), 25):
        stack.ddb.batch_write_item(RequestItems={stack.table: [{"PutRequest": {"Item": i}}
                                                               for i in items[first:first + 25]]})


def test_a_device_s_first_contact_lists_it_and_files_it_under_its_due_bucket(stack):
    # Given a tracker's first contact, through the store's public path
    DeviceStore(stack.ddb, stack.table).apply_many([DeviceNews("jointech", "t1", heard_at=at(0))], T0,
                                                    OfflinePolicy({}, get_adapter))
    # Then it is in its shard of the device list and due (3600 s + grace) in a 900 s bucket
    from devicegate.store import keys
    from devicegate.store.devices import due_bucket

    item = stack.device_item("jointech", "t1")
    assert item["gsi2pk"] == keys.vendor_devices_pk("jointech", keys.shard("jointech", "t1"))
    assert item["gsi5pk"] == keys.due_pk("jointech", "t1")
    assert item["gsi5sk"] == keys.due_sk(due_bucket(at(0), 3600), "jointech", "t1") == f"{at(3600)}#jointech#t1"


def _sweep(stack, now: datetime) -> tuple[int, Calls]:
    calls = Calls(stack.ddb)
    report = Sweep(calls, stack.table, None, {}, vendor_names(), get_adapter).run(now)
    assert report.errors == []
    return report.marked_offline, calls


def test_the_sweep_reads_the_silent_devices_not_the_fleet(stack, monkeypatch):
    # (One shard: moto answers a Query by copying the whole table, so each shard's Query costs
    # seconds here; the shard count only changes the constant per run, asserted below.)
    monkeypatch.setenv("SHARDS", "1")
    # Given 10,000 Jointech trackers (offline after 3600 s) heard from 10 minutes ago, and 3 silent
    # for two hours
    _fleet(stack, 9_997, 0, at(-600))
    _fleet(stack, 3, 9_997, at(-7200))
    # When the sweep runs
    marked, calls = _sweep(stack, T0)
    # Then it read the 3 due devices' items and marked them offline; its Queries are one per
    # shard of each work list (due devices, pending parts, pending commands, waiting commands past
    # their expiry, waiting commands' unanswered attempts)
    from devicegate.store import keys

    assert marked == 3 and calls.keys_read == 3
    assert calls.counts["query"] == 5 * keys.shard_count()
    assert {d["deviceId"] for d in __import__("devicegate.store.queries", fromlist=["x"]).offline_devices(
        stack.ddb, stack.table)} == {"t009997", "t009998", "t009999"}
    reads_at_10k = (calls.keys_read, calls.counts["query"])

    # When the fleet doubles (10,000 more, reporting) and 3 more go silent, and the sweep runs again
    _fleet(stack, 9_997, 10_000, at(-300))
    _fleet(stack, 3, 19_997, at(-7200))
    marked, calls = _sweep(stack, T0 + timedelta(seconds=60))
    # Then it reads just as much: the 3 new silent ones (the offline ones are off the due list)
    assert marked == 3 and (calls.keys_read, calls.counts["query"]) == reads_at_10k
