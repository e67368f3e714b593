"""The fleet's events on the running local stack, as an operator sees them: `devicegate tail`
prints an event pushed over HTTP within a few seconds and ends cleanly on Ctrl-C, and
`devicegate events` without --device lists every vendor's devices newest first, by vendor and
kind and time window."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: The tail must show an event this soon after it was pushed.
TAIL_WITHIN_S = 5.0


def _env(stack: LocalStack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICEGATE_"))}
    env["DEVICEGATE_STATE_DIR"] = str(stack.state_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _devicegate(stack: LocalStack, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devicegate_cli.main", *argv], cwd=ROOT, env=_env(stack),
                          capture_output=True, text=True, timeout=60, check=False)


def _start_tail(stack: LocalStack, *argv: str) -> subprocess.Popen[str]:
    tail = subprocess.Popen([sys.executable, "-m", "devicegate_cli.main", "tail", *argv], cwd=ROOT,
                            env=_env(stack), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Following once it says so on stderr: from then on, what is stored is its.
    line = _read_line(tail.stderr, 30)
    assert "following new events" in line, line + (tail.stderr.read() if tail.poll() is not None else "")
    return tail


def _read_line(stream, timeout_s: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        return stream.readline() if selector.select(timeout_s) else ""
    finally:
        selector.close()


def _location(device: str, at: str) -> str:
    return json.dumps({"assetId": device, "longitude": 113.9, "latitude": 22.5, "speed": 0, "direction": 0,
                       "mileage": 16, "gpsTime": at, "ksInfo": "", "recvTime": at, "locType": 1, "cellSignal": 19,
                       "gnssSignal": 0, "cells": "", "battery": 77})


def test_an_event_pushed_appears_in_the_tail_within_seconds(local_stack):
    # Given `devicegate tail` following the Jointech devices, as JSON lines, until one event came
    device = f"80{uuid.uuid4().int % 10**8:08d}"
    tail = _start_tail(local_stack, "--vendor", "jointech", "--json", "--count", "1")
    try:
        # When a device pushes a location over HTTP
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert local_stack.post("/hooks/jointech/dev-token/location", _location(device, now)).status == 200
        pushed = time.monotonic()  # answered: stored (the first push also starts the function)
        # Then the tail prints it within a few seconds, and stops after it (its --count) with 0
        line = _read_line(tail.stdout, TAIL_WITHIN_S + 5)
        took = time.monotonic() - pushed
        assert line, f"nothing in the tail after {took:.1f}s; stderr: {tail.stderr.read() if tail.poll() else ''}"
        event = json.loads(line)
        assert (event["vendor"], event["deviceId"], event["kind"]) == ("jointech", device, "location")
        assert took < TAIL_WITHIN_S, f"the tail took {took:.1f}s"
        assert tail.wait(timeout=10) == 0
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    local_stack.receive_messages(2)


def test_the_tail_ends_on_ctrl_c_with_no_traceback(local_stack):
    # Given a tail following the whole fleet, with its human-readable header
    tail = _start_tail(local_stack)
    # When the operator presses Ctrl-C
    tail.send_signal(signal.SIGINT)
    out, err = tail.communicate(timeout=15)
    # Then it exits 0, quietly
    assert tail.returncode == 0, err
    assert "Traceback" not in err
    assert out.splitlines()[0].split() == ["OCCURREDAT", "VENDOR", "DEVICEID", "KIND", "EVENTID", "SUMMARY"]


def test_the_fleet_list_orders_and_filters_across_vendors(local_stack):
    # Given three vendors' devices reporting in one window of a day no other test uses
    tag = uuid.uuid4().int % 10**6
    jointech_a, jointech_b = f"81{tag:06d}01", f"81{tag:06d}02"
    mettax, terminal = f"1050{tag:08d}", f"PSCFLEET{tag:06d}"
    pushes = [
        ("/hooks/jointech/dev-token/location", _location(jointech_a, "2019-03-03T10:00:00Z")),
        ("/hooks/jointech/dev-token/location", _location(jointech_b, "2019-03-03T12:00:00Z")),
        ("/hooks/mettax/dev-token/gps", json.dumps({"data": json.dumps({
            "actual": True, "num": 9, "lon": 113.9, "lat": 22.5, "deviceId": mettax, "speed": 0, "course": 1,
            "reportCt": 1551614400, "deviceCt": 1551614400, "id": f"{mettax}_1"})})),  # 2019-03-03T12:00:00Z
        ("/hooks/face-terminal/dev-token", json.dumps({"type": 0, "data": {
            "deviceSN": terminal, "recognitionType": 1, "entry_mode": 1, "abnormal_type": 0,
            "uuid": str(uuid.uuid4()), "recognizeScore": 0.93, "mask": 0, "mode": 3, "rgb_image": " ",
            "bodyTemperature": 0.0, "pass": True, "timestamp": 1551610800}})),  # 2019-03-03T11:00:00Z
    ]
    for path, body in pushes:
        reply = local_stack.post(path, body)
        assert reply.status == 200, (path, reply.body)
    window = ["--since", "2019-03-03T00:00:00Z", "--until", "2019-03-04T00:00:00Z"]
    # When the fleet's events of that window are listed (a device is on its vendor's list once the
    # outbox has written its state, a moment after its first push)
    deadline = time.monotonic() + 20
    while True:
        done = _devicegate(local_stack, "events", *window, "--json")
        assert done.returncode == 0, done.stderr
        listed = json.loads(done.stdout)
        if len(listed) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Then every vendor's event is there once, newest first
    order = [(e["occurredAt"], e["eventId"]) for e in listed]
    assert order == sorted(order, reverse=True)
    assert [(e["vendor"], e["occurredAt"]) for e in listed[2:]] == [
        ("face-terminal", "2019-03-03T11:00:00.000Z"), ("jointech", "2019-03-03T10:00:00.000Z")]
    assert {(e["vendor"], e["deviceId"]) for e in listed} == {
        ("jointech", jointech_a), ("jointech", jointech_b), ("mettax", mettax), ("face-terminal", terminal)}
    # And by vendor, kind and a narrower window
    one_vendor = json.loads(_devicegate(local_stack, "events", *window, "--vendor", "jointech", "--json").stdout)
    assert [e["deviceId"] for e in one_vendor] == [jointech_b, jointech_a]
    records = json.loads(_devicegate(local_stack, "events", *window, "--kind", "record", "--json").stdout)
    assert [(e["vendor"], e["deviceId"]) for e in records] == [("face-terminal", terminal)]
    morning = _devicegate(local_stack, "events", "--since", "2019-03-03T09:00:00Z", "--until",
                          "2019-03-03T11:00:00Z", "--json")
    assert [e["deviceId"] for e in json.loads(morning.stdout)] == [jointech_a]
    # And a page stops at its limit, saying so
    page = _devicegate(local_stack, "events", *window, "--limit", "2")
    assert page.returncode == 0 and len(page.stdout.splitlines()) == 3
    assert "the newest 2 events; older ones are not shown" in page.stderr
    local_stack.receive_messages(2)


@pytest.mark.parametrize(("argv", "says"), [
    (["tail", "--until", "2025-01-01"], "--until cannot end a --follow"),
    (["events", "--kind", "teleport"], "no vendor has a kind 'teleport'"),
    (["tail", "--vendor", "acme"], "unknown vendor 'acme'"),
])
def test_a_fleet_mistake_is_one_line_and_exit_2(local_stack, argv, says):
    done = _devicegate(local_stack, *argv)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, done.stderr
