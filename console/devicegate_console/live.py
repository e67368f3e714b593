"""The Live page's feed: ONE reader of the table's stream per console, shared by every open tab.

DynamoDB serves two readers per stream shard at a time and the outbox is one of them, so the
console must never be two more: the first subscriber starts a worker thread that runs
`tail(stop)` (reads.Reads.tail: TableReads.tail over the whole fleet), every event it yields is
handed to each subscriber (each filters by vendor and kind itself), and when the last subscriber
leaves the thread's `stop` callable says so and the thread ends after its current poll. A tab
opened later starts a new one. Each subscriber gets the events stored from the moment the tail
placed its iterators (`ready`), not the ones before."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("devicegate_console")

#: A subscriber that does not take its events (a stalled tab) is dropped past this many waiting.
QUEUE_LIMIT = 1000

Tail = Callable[[Callable[[], bool]], Iterator[dict[str, Any]]]


@dataclass(eq=False)
class Subscriber:
    """One open Live page: its loop and queue (events are put there from the tail's thread),
    and its filters."""

    loop: asyncio.AbstractEventLoop
    vendor: str | None = None
    kind: str | None = None
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    #: Set once the shared tail reads from "now" (what is stored from then on reaches this page).
    ready: threading.Event = field(default_factory=threading.Event)

    def wants(self, event: dict[str, Any]) -> bool:
        return (self.vendor in (None, event.get("vendor"))) and (self.kind in (None, event.get("kind")))

    def give(self, event: dict[str, Any] | None) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            pass  # a tab that does not read its events misses some; the page says it keeps the newest


class Fanout:
    """One tail, any number of subscribers. `tail(stop)` yields events until `stop()` is true;
    the first call of `stop` tells that the tail is placed (the stream tail calls it right after
    placing its iterators, before its first read)."""

    def __init__(self, tail: Tail):
        self._tail = tail
        self._lock = threading.Lock()
        self._subscribers: set[Subscriber] = set()
        #: The running tail's thread; None once its `stop` said stop (under the lock: a subscriber
        #: arriving after that starts a new one, never finds one on its way out).
        self._thread: threading.Thread | None = None
        self._ready = False
        #: How many tail threads this fan-out started (tests: one for two tabs).
        self.started = 0
        #: The last failure of the tail (shown on the page), or None.
        self.failure: str | None = None

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        with self._lock:
            self._subscribers.add(subscriber)
            if self._thread is None:
                self._ready = False
                self._thread = threading.Thread(target=self._run, name="devicegate-console-tail", daemon=True)
                self.started += 1
                self._thread.start()
            elif self._ready:
                subscriber.ready.set()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """The page left (its connection closed): the tail stops at its next check if it was the last."""
        with self._lock:
            self._subscribers.discard(subscriber)

    def _stop(self) -> bool:
        """The tail's `stop`: true once no page is subscribed (the thread then ends). Its first
        call also tells every subscriber the tail is placed."""
        with self._lock:
            if not self._ready:
                self._ready = True
                for each in self._subscribers:
                    each.ready.set()
            if self._subscribers:
                return False
            self._thread = None
            return True

    def _run(self) -> None:
        try:
            self.failure = None
            for event in self._tail(self._stop):
                with self._lock:
                    takers = [s for s in self._subscribers if s.wants(event)]
                for each in takers:
                    each.loop.call_soon_threadsafe(each.give, event)
        except Exception as exc:  # the stream unreachable, no stream, no permission: the pages say so
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            self.failure = f"the stream could not be read ({code})"
            log.warning("console live tail stopped: %s", code)
        finally:
            everyone: list[Subscriber] = []
            with self._lock:
                if self._thread is threading.current_thread():  # ended without being told to: a failure
                    self._thread = None
                    everyone = list(self._subscribers)
                    self._subscribers.clear()
            for each in everyone:  # each page is told, and may open the feed again
                each.loop.call_soon_threadsafe(each.give, None)

    def join(self, thread: threading.Thread | None, timeout: float | None = None) -> bool:
        """Wait for a tail's thread to end; whether it did (tests)."""
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        with self._lock:
            return self._thread
