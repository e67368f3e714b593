"""How long the console takes to answer its two heaviest pages, against moto in process: the
fleet page with 1,000 devices of one vendor, and the device page of a device with 10,000
events (its timeline's first page) with the track its map then reads (its newest 5,000 events). Prints figures;
not a test: nothing passes or fails on timing.

    uv run --extra local python bench/console.py [--devices 1000] [--events 10000] [--rounds 5]
                                                 [--reads moto local memory]

Served by uvicorn in a thread and read over HTTP on 127.0.0.1, as a browser would, after the
link's token became a cookie. Each page is timed with its reads answered (--reads, all three by
default, in this order):

- moto: moto as it comes (its Query walks and sorts every item of the table; its answers go
  through a serializer that walks the output shape value by value);
- local: the moto the local stack runs (devicegate_local.moto.patch_as_the_local_stack, whose
  moto_reads has a Query walk its partition and answers written as JSON), what `devicegate
  console` reads against the local stack (there over HTTP, here in process);
- memory: the same reads answered from memory, which leaves the console's own work (shaping,
  templates, HTTP).

Each line says how many DynamoDB requests the page made (Query, BatchGetItem, GetItem), and the
CPU time the process spent on it (less swayed than the elapsed time by other work on the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import socket
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devicegate_console.reads import Reads

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: tests.support is the project's


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reads", nargs="+", choices=("moto", "local", "memory"), default=["moto", "local", "memory"])
    args = parser.parse_args(argv)
    for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}.items():
        os.environ[key] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    logging.getLogger("devicegate_console").setLevel(logging.WARNING)

    import boto3
    import uvicorn
    from moto import mock_aws

    from devicegate_console.app import Settings, create_app
    from devicegate_local import moto_reads
    from devicegate_local.cfn_template import load_template
    from devicegate_local.moto import patch_as_the_local_stack
    from devicegate_local.resources import Resolver, create_resources
    from tests.support import seed_fleet

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        created = create_resources(Resolver(load_template(ROOT / "template.yaml")), session, token="bench")
        table, ddb = created.tables["EventsTable"], session.client("dynamodb")
        started = time.monotonic()
        seed_fleet(ddb, table, "jointech", args.devices, 1)
        [busy] = seed_fleet(ddb, table, "mettax", 1, args.events)
        print(f"seeded {args.devices} jointech devices and a mettax device with {args.events} events "
              f"in {time.monotonic() - started:.1f} s")

        pages = {f"fleet, {args.devices} devices": "/",
                 f"device, {args.events} events (page)": f"/device/mettax/{busy}",
                 "its track (newest 5,000 events, JSON)": f"/track/mettax/{busy}"}
        requests = Requests(ddb)
        labels = {"moto": "reads from moto as it comes", "local": "reads from the local stack's moto (patch_as_the_local_stack)",
                  "memory": "reads from memory (the console's own work)"}
        for chosen in args.reads:
            if chosen == "local":
                patch_as_the_local_stack()
            else:
                moto_reads.uninstall()
            print(labels[chosen])
            reads = (Remembered if chosen == "memory" else Reads)(ddb, session.client("s3"), table)
            with serving(create_app, Settings, reads, uvicorn) as base:
                for name, path in pages.items():
                    _time_page(name, base, path, args.rounds, requests)
    return 0


class Requests:
    """DynamoDB requests made through `ddb`, by operation, since the last `taken()`."""

    def __init__(self, ddb: Any) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        ddb.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self._counts[model.name] = self._counts.get(model.name, 0) + 1

    def taken(self) -> dict[str, int]:
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts


class Remembered(Reads):
    """A Reads whose answers, once read, come from memory: what is left is the console's own work."""

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if name.startswith("_") or not callable(found):
            return found
        memory = self.__dict__.setdefault("_memory", {})

        def remembered(*args: Any, **kwargs: Any) -> Any:
            key = repr((name, args, sorted(kwargs.items())))
            if key not in memory:
                memory[key] = found(*args, **kwargs)
            return copy.deepcopy(memory[key])  # the pages annotate what they are given

        return remembered


@contextlib.contextmanager
def serving(create_app: Any, settings: Any, reads: Any, uvicorn: Any) -> Iterator[str]:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings(reads, "bench", port, None)), log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _time_page(name: str, base: str, path: str, rounds: int, requests: Requests) -> None:
    port = base.rsplit(":", 1)[1]
    times, cpu, size, counts = [], [], 0, {}
    for _ in range(rounds + 1):  # the first round warms imports and caches up (and fills the memory)
        requests.taken()
        request = urllib.request.Request(base + path, headers={"Cookie": f"devicegate_console_{port}=bench"})
        begun, used = time.perf_counter(), time.process_time()
        with urllib.request.urlopen(request, timeout=600) as answer:
            size = len(answer.read())
            assert answer.status == 200
        times.append(time.perf_counter() - begun)
        cpu.append(time.process_time() - used)
        counts = requests.taken()
    warm = times[1:]
    made = ", ".join(f"{n} {op}" for op, n in sorted(counts.items())) or "none"
    # CPU: this process's (server, console and moto alike), which other work on a shared machine
    # does not inflate as it does the elapsed time.
    print(f"  {name:<44} median {statistics.median(warm) * 1000:7.0f} ms   min {min(warm) * 1000:7.0f} ms   "
          f"CPU {statistics.median(cpu[1:]) * 1000:6.0f} ms   {size / 1024:6.0f} KB   DynamoDB requests: {made}")


if __name__ == "__main__":
    sys.exit(main())
