"""Face access over real HTTP against `devicegate local`: a terminal's push with a photo, SenseLink's
Event Subscription, and the SenseLink bridge carrying WebSocket frames from a (fake) SenseLink
server into the running gateway, through to DynamoDB, S3 and the queue."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bridge.test_senselink_bridge import Bridge, FakeSenseLink
from tests.e2e.test_local_stack import receive_messages

pytestmark = pytest.mark.e2e

EVENTS = Path(__file__).resolve().parents[1].parent / "events"
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")


def event_item(stack, vendor: str, device: str, event_id: str) -> dict | None:
    """The stored event, found as apps find one by id: in its device's timeline."""
    from devicegate.store.queries import event_by_id

    return event_by_id(stack.client("dynamodb"), stack.table_name, vendor, device, event_id)


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_terminal_push_with_photo_lands_in_table_bucket_and_queue(local_stack):
    # Given a terminal record with a face capture, posted as the terminal does
    record = json.loads((EVENTS / "face-terminal/records/doc-record.json").read_text())
    record["data"].update(uuid="e2e0face-0000-4000-8000-000000000001", rgb_image=base64.b64encode(JPEG).decode())
    reply = local_stack.post("/hooks/face-terminal/dev-token", json.dumps(record, ensure_ascii=False))

    # Then the terminal hears its success shape
    assert reply.status == 200, reply.body
    assert reply.json() == {"code": 200, "msg": "success", "message": "success", "data": {}}
    # And the event references the photo, which is in the bucket as image/jpeg
    item = event_item(local_stack, "face-terminal", record["data"]["deviceSN"], record["data"]["uuid"])
    ref = item["data"]["rgb_image"]
    s3 = local_stack.client("s3")
    obj = s3.get_object(Bucket=local_stack.bucket_name, Key=ref["key"])
    assert obj["ContentType"] == "image/jpeg" and obj["Body"].read() == JPEG
    # And the queue gets it once
    messages = wait_for(lambda: [m for m in receive_messages(local_stack, 2) if m["id"] == record["data"]["uuid"]],
                        what="the terminal record on the queue")
    assert len(messages) == 1


def test_senselink_subscription_push_is_answered_200(local_stack):
    body = (EVENTS / "senselink/records/sub-alarm-raised.json").read_text()
    reply = local_stack.post("/hooks/senselink/dev-token", body)
    assert reply.status == 200 and reply.json() == {"code": 200, "message": "success"}


@dataclass
class _Gateway:
    url: str


def test_bridge_carries_websocket_frames_into_the_gateway(local_stack, tmp_path):
    # Given a SenseLink server pushing over WebSocket and the bridge forwarding to the gateway
    server = FakeSenseLink()
    bridge = Bridge(tmp_path, server, _Gateway(f"{local_stack.base_url}/hooks/senselink/dev-token"))
    try:
        server.wait_accepted(1, timeout=20)
        record = json.loads((EVENTS / "senselink/records/ws-doc-record.json").read_text())
        record["data"]["id"] = 99000001
        alarm = json.loads((EVENTS / "senselink/records/ws-alarm-releasing.json").read_text())
        heartbeat = (EVENTS / "senselink/records/ws-doc-heartbeat.json").read_text()

        # When the server pushes a record, an alarm and a heartbeat, the record twice
        server.send(json.dumps(record), json.dumps(alarm), heartbeat, json.dumps(record))

        # Then the record is stored once under its SenseLink id, and the alarm too
        event_id = "rec-" + hashlib.sha256(f"{record['data']['sn']}\n99000001".encode()).hexdigest()[:32]
        wait_for(lambda: event_item(local_stack, "senselink", record["data"]["sn"], event_id), what="the bridged record")
        ddb = local_stack.client("dynamodb")
        from devicegate.store.queries import device_events

        alarms = wait_for(lambda: [e for e in device_events(
            ddb, local_stack.table_name, "senselink", "SPSP-f26131cf5301be29b3a6f7be150ed330", kind="alarm")
            if e["data"].get("status") == 2], what="the bridged alarm")
        assert len(alarms) == 1
        # And the bridge's spool drains, its heartbeat marks it alive in the gateway
        wait_for(lambda: not bridge.pending(), what="an empty spool")
        from devicegate.store.queries import device_state

        state = wait_for(lambda: device_state(ddb, local_stack.table_name, "senselink", "bridge:lobby-bridge"),
                         what="the bridge's liveness item")
        assert state["lastKind"] == "heartbeat" and state["online"] is True
        # And the queue carries the record exactly once
        messages = wait_for(lambda: [m for m in receive_messages(local_stack, 2) if m["id"] == event_id],
                            what="the bridged record on the queue")
        assert len(messages) == 1
    finally:
        assert bridge.stop() == 0
        server.close()
