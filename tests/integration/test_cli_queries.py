"""The query CLI and the access patterns behind it, against the moto stack."""

from __future__ import annotations

import json

import pytest

from devicegate_cli import commands
from devicegate_cli.main import main
from devicegate.vendors.jointech.adapter import JointechAdapter
from tests.integration.test_jointech_ingest import mqtt, post, run_outbox
from tests.support import load_event, load_record, with_body


@pytest.fixture
def cli(stack, monkeypatch, capsys):
    monkeypatch.setattr(commands, "resolve_target",
                        lambda args: commands.Target(stack.session, None, stack.table, stack.bucket))

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()  # drop the handlers' metric lines printed before
        code = main(list(argv))
        return code, capsys.readouterr().out

    return run


def _push_history():
    base = load_event("jointech/http-webhook-location.json")
    for hour, battery in ((8, 90), (9, 85), (10, 80)):
        record = load_record("jointech", "mqtt-location")
        record.update(gpsTime=f"2025-02-07T{hour:02d}:00:00Z", battery=battery, locType=1)
        post(with_body(base, json.dumps(record)))
    alarm = load_record("jointech", "mqtt-alarm")
    alarm.update(assetId="8052400203", dateTime="2025-02-07T09:30:00Z")
    post(with_body(load_event("jointech/http-webhook-alarm.json"), json.dumps(alarm)))


def test_events_newest_first_with_kind_and_since(stack, cli):
    # Given three locations and an alarm for one device
    _push_history()
    # When listing all, only alarms, and since 09:00
    _, everything = cli("events", "--vendor", "jointech", "--device", "8052400203", "--json")
    _, alarms = cli("events", "--vendor", "jointech", "--device", "8052400203", "--kind", "alarm", "--json")
    _, recent = cli("events", "--vendor", "jointech", "--device", "8052400203", "--since", "2025-02-07T09:00:00Z",
                    "--limit", "2", "--json")
    # Then order, filter and limit follow the options
    times = [e["occurredAt"] for e in json.loads(everything)]
    assert times == ["2025-02-07T10:00:00.000Z", "2025-02-07T09:30:00.000Z",
                     "2025-02-07T09:00:00.000Z", "2025-02-07T08:00:00.000Z"]
    assert [e["kind"] for e in json.loads(alarms)] == ["alarm"]
    assert [e["occurredAt"] for e in json.loads(recent)] == times[:2]
    assert set(json.loads(everything)[0]) >= {"vendor", "deviceId", "kind", "eventId", "occurredAt",
                                              "receivedAt", "data"}


def test_events_human_output_is_a_table(stack, cli):
    _push_history()
    code, out = cli("events", "--vendor", "jointech", "--device", "8052400203")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["OCCURREDAT", "KIND", "EVENTID", "SUMMARY"]
    assert len(lines) == 5 and "alarmName=Swiping illegal RFID card" in out


def test_state_json_has_vendor_device_last_seen_and_values(stack, cli):
    _push_history()
    run_outbox(stack)
    code, out = cli("state", "--vendor", "jointech", "--device", "8052400203", "--json")
    state = json.loads(out)
    assert code == 0
    assert state["vendor"] == "jointech" and state["deviceId"] == "8052400203"
    assert state["lastSeen"] == "2025-02-07T10:00:00.000Z"
    assert state["state"]["battery"]["battery"] == 80
    assert state["state"]["lastAlarm"]["alarmType"] == 44
    code, human = cli("state", "--vendor", "jointech", "--device", "8052400203")
    assert "last seen 2025-02-07T10:00:00.000Z" in human


def test_state_of_an_unknown_device_is_a_clear_error(stack, cli):
    code, _ = cli("state", "--vendor", "jointech", "--device", "nope")
    assert code == 1


def test_devices_and_fleet_alarms_and_event_by_id(stack, cli):
    _push_history()
    mqtt(load_event("jointech/iot-mqtt-alarm.json"))
    run_outbox(stack)
    _, devices = cli("devices", "--vendor", "jointech", "--json")
    assert {d["deviceId"]: d["lastSeen"] for d in json.loads(devices)} == {
        "8052400203": "2025-02-07T10:00:00.000Z", "8454601010": "2020-04-01T00:00:25.000Z"}
    _, alarms = cli("alarms", "--since", "2025-01-01T00:00:00Z", "--json")
    [alarm] = json.loads(alarms)
    assert alarm["deviceId"] == "8052400203"
    _, one = cli("event", "--vendor", "jointech", "--id", alarm["eventId"])
    assert json.loads(one)["eventId"] == alarm["eventId"]


def test_replay_reingests_quarantined_payloads_after_a_fix(stack, cli, monkeypatch):
    # Given a bug in the adapter that quarantined a valid record
    original = JointechAdapter.normalize

    def broken(self, push, received_at):
        raise RuntimeError("bug")

    monkeypatch.setattr(JointechAdapter, "normalize", broken)
    status, _ = post(load_event("jointech/http-webhook-alarm.json"))
    assert status == 400 and stack.event_items() == []
    _, listed = cli("quarantine", "--vendor", "jointech", "--json")
    [entry] = json.loads(listed)

    # When the fix is deployed and the operator replays
    monkeypatch.setattr(JointechAdapter, "normalize", original)
    code, out = cli("replay", "--vendor", "jointech")
    run_outbox(stack)

    # Then the record is stored once and published once, and leaves the quarantine list
    assert code == 0 and entry["id"] in out and "stored" in out
    assert len(stack.event_items()) == 1 and len(stack.queue_messages()) == 1
    _, listed_after = cli("quarantine", "--vendor", "jointech", "--json")
    assert json.loads(listed_after) == []
    [kept] = stack.quarantine_items()
    assert kept["replayedEventIds"] == [stack.event_items()[0]["eventId"]]


def test_replay_leaves_still_invalid_payloads_and_says_so(stack, cli):
    post(with_body(load_event("jointech/http-webhook-location.json"), "{broken"))
    code, out = cli("replay", "--vendor", "jointech")
    assert code == 2 and "still-invalid" in out
    assert len(json.loads(cli("quarantine", "--vendor", "jointech", "--json")[1])) == 1


def test_replay_of_an_mqtt_payload_keeps_its_topic_route(stack, cli, monkeypatch):
    original = JointechAdapter.normalize
    monkeypatch.setattr(JointechAdapter, "normalize", lambda self, push, at: 1 / 0)
    mqtt(load_event("jointech/iot-mqtt-sublock.json"))
    monkeypatch.setattr(JointechAdapter, "normalize", original)
    code, _ = cli("replay", "--vendor", "jointech")
    [item] = stack.event_items()
    assert code == 0 and item["kind"] == "sublock" and item["transport"] == "mqtt"
