"""Commands kept for the device's next contact, on the local stack (`devicegate local`): a paho
device that is not connected when the operator sends a command with `--when-online` gets it on
its download topic once it comes back and publishes a record, answers it, and `devicegate command
status` shows it answered; a second command, given a minute, expires unsent by the sweep (the
local schedule runs it every 3 s). Each step reaches the queue as a `command.*` event.

The local stack keeps moto's state in memory, so a restart of it starts empty: durability across
a cold start is shown on moto in tests/integration/test_waiting_commands.py (the waiting command
read back by wiring made anew from the settings), as the deployed table keeps it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEVICE, ACCESS_KEY = "794308019911", "ak-demo"  # a device of its own; the local stack's JointechAccessKey
DOWNLOAD = f"download/{ACCESS_KEY}/{DEVICE}/cmd"


def cli(stack, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devicegate_cli.main", "command", *argv, "--device", DEVICE,
                           "--api-url", stack.base_url], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)


def status_of(stack, command_id: str) -> dict[str, Any]:
    done = cli(stack, "status", "--id", command_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for(stack, command_id: str, wanted: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    current = status_of(stack, command_id)
    while time.monotonic() < deadline and current["status"] != wanted:
        time.sleep(0.5)
        current = status_of(stack, command_id)
    assert current["status"] == wanted, current
    return current


def publish_location(client) -> None:
    location = json.loads((ROOT / "events/jointech/records/mqtt-location.json").read_text())
    location["assetId"] = DEVICE
    location["gpsTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # new, not a retransmission
    client.publish(f"upload/{ACCESS_KEY}/{DEVICE}/location", json.dumps(location).encode())


def test_a_command_waits_for_the_device_to_come_online_and_another_expires_unsent(local_stack):
    from tests.e2e.test_mqtt_local import Client

    # Given a device the gateway knows (it reported once), now disconnected; a watcher on its
    # download topic sees whatever is sent to it
    device = Client(local_stack.mqtt_port)
    publish_location(device)
    device.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not local_stack.client("dynamodb").get_item(
            TableName=local_stack.table_name, Key={"pk": {"S": f"D#jointech#{DEVICE}"}, "sk": {"S": "S"}}).get("Item"):
        time.sleep(0.3)
    watcher = Client(local_stack.mqtt_port)
    watcher.subscribe(DOWNLOAD)
    try:
        # When the operator sends a query to be delivered when it is next online
        sent = cli(local_stack, "send", "--command", "query_base_info", "--when-online", "--json")
        assert sent.returncode == 0, sent.stderr
        first = json.loads(sent.stdout)
        # Then it is queued, and nothing goes to the device while it is silent
        assert first["status"] == "queued" and first["whenOnline"] is True
        time.sleep(4)  # more than a sweep period and an outbox batch
        assert watcher.received.empty()
        assert status_of(local_stack, first["commandId"])["status"] == "queued"

        # When the device comes back: connects, listens on its download topic, publishes a record
        device = Client(local_stack.mqtt_port)
        device.subscribe(DOWNLOAD)
        publish_location(device)
        # Then it receives the command
        message = device.received.get(timeout=20)
        assert (message.topic, message.payload.decode()) == (DOWNLOAD, f"({DEVICE},1,001,BASE,1)")
        assert wait_for(local_stack, first["commandId"], "pending", 10)["attempts"] == 1

        # When it answers with the documented success
        answer = json.loads((ROOT / "events/jointech/records/mqtt-cmd-success.json").read_text())
        answer["assetId"] = DEVICE
        content = json.loads(answer["content"])
        content[0] = DEVICE
        answer["content"] = json.dumps(content)
        answer["dateTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        device.publish(f"upload/{ACCESS_KEY}/{DEVICE}/cmd", json.dumps(answer).encode())
        device.close()
        # Then `devicegate command status` shows it answered
        wait_for(local_stack, first["commandId"], "succeeded", 30)
        table = cli(local_stack, "status")
        assert table.returncode == 0 and "answered" in table.stdout, table.stdout

        # When a second command is sent to wait a minute, and the device stays silent
        sent = cli(local_stack, "send", "--command", "query_time", "--param", "serial=002", "--when-online",
                   "--expires-in", "1m", "--json")
        assert sent.returncode == 0, sent.stderr
        second = json.loads(sent.stdout)
        # Then the sweep expires it once the minute is over, unsent
        expired = wait_for(local_stack, second["commandId"], "expired", 90)
        assert expired["expiredAt"] >= expired["waitUntil"]
        watcher_got = [watcher.received.get_nowait() for _ in range(watcher.received.qsize())]
        assert [m.payload.decode() for m in watcher_got] == [f"({DEVICE},1,001,BASE,1)"]
        # And cancelling it now is one clear line and exit 2
        cancelled = cli(local_stack, "cancel", second["commandId"])
        assert cancelled.returncode == 2 and cancelled.stderr.strip().count("\n") == 0, cancelled.stderr
        assert "expired, not waiting" in cancelled.stderr
    finally:
        watcher.close()

    # And the queue heard each step of both, once
    def kinds() -> list[str]:
        return sorted(m["type"].removeprefix("devicegate.jointech.") for m in local_stack.received
                      if m.get("subject") == DEVICE and ".command." in m["type"])

    wanted = sorted(["command.queued", "command.sent", "command.answered", "command.queued", "command.expired"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and kinds() != wanted:
        local_stack.receive_messages(1)
    assert kinds() == wanted
