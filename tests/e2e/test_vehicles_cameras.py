"""Vehicles and cameras over real HTTP against `devicegate local`: a Mettax face check whose two
messages come in separate requests (one of them form-encoded), an AI camera heartbeat answered
with the strategy an operator set with `devicegate strategy set`, and the scheduled sweep."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.e2e.test_face_access import event_item, wait_for
from tests.e2e.test_local_stack import receive_messages

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def record(vendor: str, name: str) -> dict:
    return json.loads((EVENTS / vendor / "records" / f"{name}.json").read_text())


def test_a_mettax_face_check_in_two_requests_reaches_the_queue_once(local_stack):
    # Given the two messages of a face check, the picture first, each sent twice
    result, picture = record("mettax", "doc-face-check-result"), record("mettax", "doc-face-check-picture")
    group = "333777444585_e2e00000000000001"
    result["id"] = picture["id"] = group
    for _ in range(2):
        reply = local_stack.post("/hooks/mettax/dev-token/face-check", json.dumps({"data": json.dumps(picture)}))
        assert reply.status == 200 and reply.json() == {"code": 200, "message": "success"}
    # When the result arrives as a form field on the single URL
    for _ in range(2):
        reply = local_stack.post("/hooks/mettax/dev-token", urlencode({"data": json.dumps(result)}),
                                 content_type="application/x-www-form-urlencoded")
        assert reply.status == 200, reply.body
    # Then one complete face check is stored and published once
    item = event_item(local_stack, "mettax", result["deviceId"], f"face-check-{group}")
    data = item["data"]
    assert data["complete"] is True and data["similarityPercent"] == 75.77
    messages = wait_for(lambda: [m for m in receive_messages(local_stack, 2) if m["id"] == f"face-check-{group}"],
                        what="the face check on the queue")
    # Keep draining a little: a second copy published later must fail the test too
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        messages += [m for m in receive_messages(local_stack, 1) if m["id"] == f"face-check-{group}"]
    assert len(messages) == 1 and messages[0]["type"] == "devicegate.mettax.face-check"


def test_the_sweep_runs_on_its_schedule_in_the_local_stack(local_stack):
    # Given the stack started with --schedule-every 3
    # Then the device sweep has been invoked by the schedule, and succeeded
    wait_for(lambda: "DeviceSweepFunction ran on schedule" in local_stack.log(), timeout=30,
             what="a scheduled sweep run")
    assert "DeviceSweepFunction failed on schedule" not in local_stack.log()


def _cli(local_stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devicegate_cli.main", *args,
                           "--endpoint-url", local_stack.moto_endpoint],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_camera_heartbeat_is_answered_with_the_strategy_set_from_the_shell(local_stack, tmp_path):
    # Given an operator who sets a camera's configuration with the CLI
    serial = "I320013590DEA0BEE2E0001"
    config = json.loads((EVENTS / "ai-camera" / "config-example.json").read_text())
    path = tmp_path / "strategy.json"
    path.write_text(json.dumps(config))
    done = _cli(local_stack, "strategy", "set", "--device", serial, "--file", str(path))
    assert done.returncode == 0, done.stderr
    shown = _cli(local_stack, "strategy", "get", "--device", serial, "--json")
    assert shown.returncode == 0, shown.stderr
    # When the camera sends its heartbeat to the running gateway
    heartbeat = record("ai-camera", "doc-heartbeat")
    heartbeat["deviceInfo"]["serialNumber"] = serial
    reply = local_stack.post("/hooks/ai-camera/dev-token", json.dumps(heartbeat))
    # Then it is told that strategy, and its device info reaches its state
    assert reply.status == 200, reply.body
    answer = reply.json()
    assert answer["operator"] == "heartbeat-Ack" and answer["result"]["errorNo"] == 0
    assert answer["info"]["strategy"] == config["strategy"]
    assert answer["info"]["heartbeatInterval"] == config["heartbeatInterval"]

    def device_info():
        state = _cli(local_stack, "state", "--vendor", "ai-camera", "--device", serial, "--json")
        return state.returncode == 0 and json.loads(state.stdout)["state"].get("deviceInfo")

    assert wait_for(device_info, what="the camera's device info")["IP"] == "192.168.1.233"
