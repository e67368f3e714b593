"""The command routes of `devicegate local`: IAM routes refuse unsigned requests as API Gateway
does, and `devicegate command` signs its requests (docs/commands.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ROUTE = "/devices/jointech/794308010642/commands"


def test_an_unsigned_command_request_is_403_like_api_gateway(local_stack):
    # Given a client that does not sign its request (curl without --aws-sigv4)
    # When it posts a command and lists commands
    posted = local_stack.post(ROUTE, '{"command": "query_time"}')
    listed = local_stack.request("GET", ROUTE)
    # Then both are refused before the function runs
    assert (posted.status, posted.json()) == (403, {"message": "Forbidden"})
    assert listed.status == 403


def test_the_cli_signs_its_requests_and_lists_a_devices_commands(local_stack):
    # Given a device with no command yet
    # When the operator lists its commands with the CLI (SigV4-signed with the local credentials)
    done = subprocess.run([sys.executable, "-m", "devicegate_cli.main", "command", "status",
                           "--device", "794308010642", "--api-url", local_stack.base_url, "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    # Then the local route accepted the signature and the function answered
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_command_reaches_the_device_over_mqtt_and_its_answer_marks_it_succeeded(local_stack):
    """The whole loop on the local stack: the CLI sends a typed command; the function publishes it
    through IoT's Publish API (the stack's shim) into Mosquitto on download/{accessKey}/{device}/cmd;
    a device subscribed there answers on upload/.../cmd as the documented success; the IoT rule,
    the MQTT function and the outbox mark the command succeeded."""
    import json
    import time

    from tests.e2e.test_mqtt_local import Client

    # A device of its own: the e2e stack is shared, and other tests count this vendor's records
    device, access_key = "794308019901", "ak-demo"  # the local stack's JointechAccessKey
    # Given a device the gateway knows (it reported a location over MQTT) and listens for commands
    client = Client(local_stack.mqtt_port)
    try:
        client.subscribe(f"download/{access_key}/{device}/cmd")
        location = json.loads((ROOT / "events/jointech/records/mqtt-location.json").read_text())
        location["assetId"] = device
        location["gpsTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # new, not a retransmission
        client.publish(f"upload/{access_key}/{device}/location", json.dumps(location).encode())
        known = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and known is None:
            got = local_stack.client("dynamodb").get_item(
                TableName=local_stack.table_name, Key={"pk": {"S": f"D#jointech#{device}"}, "sk": {"S": "S"}})
            known = got.get("Item")
            time.sleep(0.3)
        assert known, "the device never appeared in the table"

        # When the operator sends a query with the CLI
        sent = subprocess.run([sys.executable, "-m", "devicegate_cli.main", "command", "send", "--device", device,
                               "--command", "query_base_info", "--api-url", local_stack.base_url, "--json"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert sent.returncode == 0, sent.stderr
        command = json.loads(sent.stdout)
        # Then the device receives the documented text on its download topic
        message = client.received.get(timeout=20)
        assert message.topic == f"download/{access_key}/{device}/cmd"
        assert message.payload.decode() == f"({device},1,001,BASE,1)"

        # When it answers with the documented success response
        answer = json.loads((ROOT / "events/jointech/records/mqtt-cmd-success.json").read_text())
        answer["assetId"] = device
        content = json.loads(answer["content"])
        content[0] = device  # the answer echoes the command's fields, the device number first
        answer["content"] = json.dumps(content)
        answer["dateTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())  # this answer, not an old one
        client.publish(f"upload/{access_key}/{device}/cmd", json.dumps(answer).encode())
    finally:
        client.close()

    # Then the command is marked succeeded, with the device's answer
    def status():
        done = subprocess.run([sys.executable, "-m", "devicegate_cli.main", "command", "status", "--device", device,
                               "--id", command["commandId"], "--api-url", local_stack.base_url, "--json"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    deadline = time.monotonic() + 30
    current = status()
    while time.monotonic() < deadline and current["status"] == "pending":
        time.sleep(0.5)
        current = status()
    assert current["status"] == "succeeded", current


def test_a_refused_command_leaves_the_outbox_publishing_new_events(local_stack):
    """A command's checks run in one DynamoDB transaction; a refusal cancels it. The outbox must
    go on reading the table's stream afterwards (moto swaps the table for a copy on a cancelled
    transaction, which once left the local outbox reading a stream nobody wrote to any more)."""
    import json
    import time

    from tests.e2e.test_local_stack import LOCATION, LOCATION_PATH, receive_messages

    # Given a command the gateway refuses in its transaction: the device never reported
    refused = subprocess.run([sys.executable, "-m", "devicegate_cli.main", "command", "send", "--device",
                              "794308019902", "--command", "query_time", "--api-url", local_stack.base_url],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "404" in refused.stderr, refused.stderr
    # When a device pushes a new location to its webhook
    device = "8022300077"
    reply = local_stack.post(LOCATION_PATH, json.dumps(dict(LOCATION, assetId=device)))
    assert reply.status == 200, reply.body
    # Then the outbox still publishes it and sets the device's state
    published, state = [], None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (published and state):
        published += [m for m in receive_messages(local_stack, 1) if m.get("subject") == device]
        state = local_stack.client("dynamodb").get_item(
            TableName=local_stack.table_name, Key={"pk": {"S": f"D#jointech#{device}"}, "sk": {"S": "S"}},
        ).get("Item")
    assert [m["type"] for m in published] == ["devicegate.jointech.location"]
    assert state is not None, "the outbox never set the device's state"
