"""Online/offline for every vendor: the outbox records when a device was last heard from, the
scheduled sweep marks silent ones offline, and the next message brings them back; each
transition is one stored event that reaches the queue once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devicegate.core.timeutil import iso_utc
from devicegate.store.queries import device_state, offline_devices, vendor_devices
from functions.device_sweep import app as sweep_app
from functions.jointech_webhook import app as jointech_app
from functions.outbox import app as outbox_app
from tests.support import context, load_event, new_environment, with_body

DEVICE = "8022300001"



def push_location(gps_time: str = "2022-09-01T08:59:56Z") -> None:
    event = load_event("jointech/http-webhook-location.json")
    body = json.loads(event["body"])
    body["gpsTime"] = gps_time
    response = jointech_app.lambda_handler(with_body(event, json.dumps(body)), context("JointechWebhookFunction"))
    assert response["statusCode"] == 200


def run_outbox(stack) -> list[dict]:
    assert outbox_app.lambda_handler({"Records": stack.new_stream_records()},
                                     context("OutboxFunction")) == {"batchItemFailures": []}
    return stack.queue_messages()


def run_sweep(monkeypatch, at: datetime) -> dict:
    monkeypatch.setattr(sweep_app, "now_utc", lambda: at)
    return sweep_app.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"},
                                    context("DeviceSweepFunction"))


def summary(stack) -> dict:
    return stack.state("jointech", DEVICE)["summary"]


def heard(ddb, table: str, at: str, vendor: str = "jointech", device: str = DEVICE) -> bool:
    """Contact as the outbox records it (one device's news); True when it came back online."""
    from devicegate.store.devices import DeviceNews, DeviceStore, GroupNews

    news = DeviceNews(vendor, device, heard_at=at, groups={"summary": GroupNews(at, "", {"lastKind": "location"})})
    [applied] = DeviceStore(ddb, table).apply_many([news], datetime.fromisoformat(at), None)
    return applied.came_online


def test_a_silent_device_goes_offline_once_and_comes_back_online_once(stack, monkeypatch):
    # Given a Jointech device heard from once, its event published by the outbox
    push_location()
    [location] = run_outbox(stack)
    heard_at = summary(stack)["heardAt"]
    assert location["type"] == "devicegate.jointech.location"
    assert summary(stack)["online"] is True and heard_at == location["data"]["receivedAt"]

    # When the sweep runs within the deployment's interval for Jointech (default 3600 s)
    heard = datetime.fromisoformat(heard_at)
    assert run_sweep(monkeypatch, heard + timedelta(seconds=3500))["markedOffline"] == 0
    # Then nothing changes
    assert offline_devices(stack.ddb, stack.table) == []

    # When it runs after the interval, twice (a retried or overlapping run)
    assert run_sweep(monkeypatch, heard + timedelta(seconds=3700))["markedOffline"] == 1
    assert run_sweep(monkeypatch, heard + timedelta(seconds=3900))["markedOffline"] == 0

    # Then the device is offline since heardAt + 3600 s, listed by the one OFFLINE query,
    # and exactly one device.offline event reaches the queue
    state = summary(stack)
    assert state["online"] is False and state["offlineSince"] == iso_utc(heard + timedelta(seconds=3600))
    shown = device_state(stack.ddb, stack.table, "jointech", DEVICE)
    assert (shown["online"], shown["heardAt"], shown["offlineSince"]) == (False, heard_at, state["offlineSince"])
    [row] = offline_devices(stack.ddb, stack.table)
    assert (row["vendor"], row["deviceId"], row["offlineSince"]) == ("jointech", DEVICE, state["offlineSince"])
    assert offline_devices(stack.ddb, stack.table, vendor="mettax") == []
    [offline] = run_outbox(stack)
    assert offline["type"] == "devicegate.jointech.device.offline"
    assert offline["subject"] == DEVICE and offline["time"] == state["offlineSince"]
    assert offline["data"]["data"] == {"lastHeardAt": heard_at, "offlineSince": state["offlineSince"],
                                       "offlineAfterSeconds": 3600, "detectedAt": iso_utc(heard + timedelta(seconds=3700))}
    # and the gateway's own event does not count as hearing from the device
    assert summary(stack)["heardAt"] == heard_at and "offlineSince" in summary(stack)

    # When the device pushes again: a new record, even one that happened before it went silent
    # (backfill: contact is when the gateway receives, not when the record happened)
    push_location("2022-09-01T08:00:00Z")
    [backfilled] = run_outbox(stack)

    # Then it is online, off the offline list, and one device.online event is stored...
    state = summary(stack)
    assert state["online"] is True and "offlineSince" not in state and state["heardAt"] > heard_at
    assert offline_devices(stack.ddb, stack.table) == []
    assert backfilled["type"] == "devicegate.jointech.location"
    online_items = [i for i in stack.event_items("jointech") if i["kind"] == "device.online"]
    assert len(online_items) == 1
    assert online_items[0]["data"]["offlineSince"] == offline["time"]
    # ...and published once by the next outbox batch
    [online] = run_outbox(stack)
    assert online["type"] == "devicegate.jointech.device.online"
    assert online["data"]["data"]["onlineAt"] == state["heardAt"]
    [listed] = vendor_devices(stack.ddb, stack.table, "jointech")
    assert listed["online"] is True and listed["heardAt"] == state["heardAt"]


def test_a_device_heard_from_while_the_sweep_decides_stays_online(stack, monkeypatch):
    # Given a device whose last contact the sweep has read as overdue
    push_location()
    run_outbox(stack)
    from devicegate.store.devices import DeviceStore

    seen_by_sweep = stack.device_item("jointech", DEVICE)
    later = iso_utc(datetime.fromisoformat(seen_by_sweep["heardAt"]) + timedelta(seconds=10))
    # When contact is recorded before the sweep writes its decision
    heard(stack.ddb, stack.table, later)
    marked = DeviceStore(stack.ddb, stack.table).mark_offline(seen_by_sweep, 3600, datetime.now(UTC) + timedelta(hours=2))
    # Then the decision is refused: no offline state, no device.offline event
    assert marked is False
    assert "offlineSince" not in summary(stack)
    assert [i for i in stack.event_items("jointech") if i["kind"].startswith("device.")] == []


def test_vendors_switched_off_are_never_marked_offline(stack, monkeypatch):
    # Given a deployment that does not track Jointech devices' liveness
    monkeypatch.setenv("OFFLINE_AFTER", "default=3600,jointech=off")
    push_location()
    run_outbox(stack)
    # When the sweep runs long after the last contact
    report = run_sweep(monkeypatch, datetime.now(UTC) + timedelta(days=2))
    # Then the device stays as it was
    assert report["markedOffline"] == 0 and "offlineSince" not in summary(stack)


def test_older_news_does_not_move_contact_backwards(stack):
    # Given a device last heard from at 10:00
    heard(stack.ddb, stack.table, "2026-01-01T10:00:00.000Z")
    # When an outbox batch that was delayed reports contact at 09:00
    heard(stack.ddb, stack.table, "2026-01-01T09:00:00.000Z")
    # Then heardAt stays at 10:00
    assert summary(stack)["heardAt"] == "2026-01-01T10:00:00.000Z"


def test_a_bad_offline_setting_fails_loudly(stack, monkeypatch):
    monkeypatch.setenv("OFFLINE_AFTER", "jointech=5")
    with pytest.raises(ValueError, match="OFFLINE_AFTER"):
        run_sweep(monkeypatch, datetime.now(UTC))


def test_two_batches_bringing_a_device_back_at_once_leave_the_newest_contact(stack):
    # Given an offline device
    from devicegate.store.devices import DeviceStore

    heard(stack.ddb, stack.table, "2026-01-01T10:00:00.000Z")
    assert DeviceStore(stack.ddb, stack.table).mark_offline(stack.device_item("jointech", DEVICE), 3600,
                                                            datetime(2026, 1, 1, 12, tzinfo=UTC))

    class Interleaved:
        """The table, except that another outbox batch's comeback (older contact) lands just
        before this batch's own transaction."""

        def __init__(self, ddb):
            self._ddb, self.raced = ddb, False

        def __getattr__(self, name):
            return getattr(self._ddb, name)

        def transact_write_items(self, **kwargs):
            if not self.raced:
                self.raced = True
                assert heard(self._ddb, stack.table, "2026-01-01T12:10:00.000Z")
            return self._ddb.transact_write_items(**kwargs)

    # When this batch records newer contact while the other one brings the device back
    came_back = heard(Interleaved(stack.ddb), stack.table, "2026-01-01T12:11:00.000Z")
    # Then the device is online once (one device.online event) and holds the newest contact
    assert came_back is False
    assert summary(stack)["heardAt"] == "2026-01-01T12:11:00.000Z" and summary(stack)["online"] is True
    assert len([i for i in stack.event_items("jointech") if i["kind"] == "device.online"]) == 1


def test_a_broken_camera_default_does_not_stop_the_sweep_for_other_vendors(stack, monkeypatch):
    # Given a Jointech device silent for hours, a camera, and a broken AiCameraDefaultConfig
    push_location()
    run_outbox(stack)
    from devicegate.core.offline import OfflinePolicy
    from devicegate.store.devices import DeviceNews, DeviceStore
    from devicegate.vendors import get_adapter

    camera = DeviceNews("ai-camera", "I320013590DEA0BE21F6958", heard_at=summary(stack)["heardAt"])
    DeviceStore(stack.ddb, stack.table).apply_many([camera], datetime.now(UTC), OfflinePolicy({}, get_adapter))
    monkeypatch.setenv("AI_CAMERA_DEFAULT_CONFIG", "{broken")
    new_environment()
    # When the sweep runs
    monkeypatch.setattr(sweep_app, "now_utc", lambda: datetime.now(UTC) + timedelta(hours=5))
    with pytest.raises(RuntimeError, match="incomplete"):
        sweep_app.lambda_handler({}, context("DeviceSweepFunction"))
    new_environment()
    # Then the run is reported failed (SweepErrorAlarm), yet the Jointech device went offline
    assert "offlineSince" in summary(stack)
