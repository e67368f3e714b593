"""The Live page's fan-out (devicegate_console.live.Fanout): one stream reader for every open tab,
each tab given what passes its filters, and the reader's thread ended when the last tab leaves."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devicegate_console import shaping
from devicegate_console.live import Fanout, Subscriber


class FakeTail:
    """What Reads.tail does, with events handed in by the test: calls stop() once placed, then
    between reads, and ends when it says so."""

    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any] | Exception] = queue.Queue()
        self.calls = 0
        self.ended = threading.Event()

    def __call__(self, stop: Callable[[], bool]) -> Iterator[dict[str, Any]]:
        self.calls += 1
        self.ended.clear()
        try:
            while not stop():
                try:
                    got = self.events.get(timeout=0.02)
                except queue.Empty:
                    continue
                if isinstance(got, Exception):
                    raise got
                yield got
        finally:
            self.ended.set()


def _event(vendor: str, kind: str, n: int) -> dict[str, Any]:
    return {"vendor": vendor, "deviceId": f"d{n}", "kind": kind, "eventId": f"e{n}",
            "occurredAt": "2025-02-07T08:00:00.000Z", "receivedAt": "2025-02-07T08:00:01.000Z", "transport": "http"}


def _take(loop: asyncio.AbstractEventLoop, subscriber: Subscriber, count: int) -> list[Any]:
    async def take() -> list[Any]:
        return [await asyncio.wait_for(subscriber.queue.get(), 5) for _ in range(count)]

    return loop.run_until_complete(take())


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_two_tabs_share_one_tail_and_each_gets_what_its_filters_pass(loop):
    # Given two Live pages open, one on every vendor, one on Jointech's locations
    tail = FakeTail()
    fanout = Fanout(tail)
    everything = fanout.subscribe(Subscriber(loop))
    locations = fanout.subscribe(Subscriber(loop, vendor="jointech", kind="location"))
    _wait(lambda: everything.ready.is_set() and locations.ready.is_set(), "the tail placed")
    # When three events are stored
    for event in (_event("jointech", "location", 1), _event("mettax", "gps", 2), _event("jointech", "alarm", 3)):
        tail.events.put(event)
    # Then the first page gets the three, the second the one location
    assert [e["eventId"] for e in _take(loop, everything, 3)] == ["e1", "e2", "e3"]
    assert [e["eventId"] for e in _take(loop, locations, 1)] == ["e1"]
    assert locations.queue.empty()
    # And one tail read the stream for both
    assert tail.calls == 1 and fanout.started == 1 and fanout.subscribers == 2


def test_the_tails_thread_ends_when_the_last_tab_leaves_and_a_new_tab_starts_another(loop):
    # Given two pages on one tail
    tail = FakeTail()
    fanout = Fanout(tail)
    first, second = fanout.subscribe(Subscriber(loop)), fanout.subscribe(Subscriber(loop))
    _wait(lambda: first.ready.is_set(), "the tail placed")
    thread = fanout.thread
    # When one leaves, the tail keeps reading for the other
    fanout.unsubscribe(first)
    time.sleep(0.2)
    assert thread is not None and thread.is_alive() and fanout.running
    # When the last leaves, the thread ends (its stop() said so) and no reader is left
    fanout.unsubscribe(second)
    assert fanout.join(thread, timeout=5), "the tail's thread did not end"
    assert tail.ended.is_set() and not fanout.running
    # And a page opened afterwards starts a new tail, which ends in turn
    third = fanout.subscribe(Subscriber(loop))
    _wait(lambda: third.ready.is_set(), "the new tail placed")
    assert fanout.started == 2 and tail.calls == 2
    again = fanout.thread
    fanout.unsubscribe(third)
    assert fanout.join(again, timeout=5)


def test_a_tail_that_fails_tells_every_tab_and_says_why(loop):
    # Given a page on a tail
    tail = FakeTail()
    fanout = Fanout(tail)
    page = fanout.subscribe(Subscriber(loop))
    _wait(lambda: page.ready.is_set(), "the tail placed")
    thread = fanout.thread
    # When reading the stream fails
    tail.events.put(RuntimeError("no stream"))
    # Then the page is told (None: the feed ended), the failure is named, and the thread is gone
    assert _take(loop, page, 1) == [None]
    assert fanout.failure == "the stream could not be read (RuntimeError)"
    assert fanout.join(thread, timeout=5) and not fanout.running and fanout.subscribers == 0


def test_a_live_row_has_the_vocabulary_summary_and_the_device_link():
    event = dict(_event("jointech", "alarm", 7), deviceId="80 52/x",
                 facts={"position": {"latitude": 22.670071, "longitude": 113.923, "speedKmh": 12},
                        "alarm": {"code": "1", "name": "SOS", "status": "open"}})
    row = shaping.live_row(event)
    assert row["summary"] == "22.67007, 113.92300 · 12 km/h · alarm SOS (open)"
    assert row["href"] == "/device/jointech/80%2052%2Fx"
    assert row["transport"] == "http" and row["time"] == shaping.local_time("2025-02-07T08:00:01.000Z")
    assert shaping.summary({"facts": {"passage": {"granted": True, "method": "face"}}}) == "passage granted · face"
    assert shaping.summary({"kind": "heartbeat"}) == ""
