"""AI camera box: the documented heartbeat and our variations through the adapter, and the answer
that configures the camera (device configuration over the deployment default)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from devicegate.core.adapter import Outcome
from devicegate.core.envelope import RawPush
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.timeutil import now_utc
from devicegate.vendors.ai_camera.adapter import AiCameraAdapter
from devicegate.vendors.ai_camera.models import (
    DEFAULT_CONFIG_ENV,
    STRATEGY_FIELDS,
    ConfigInvalid,
    deployment_default,
    effective_config,
    heartbeat_interval,
)
from tests.support import EVENTS, load_record, new_environment

RECEIVED = datetime(2025, 2, 7, 7, 30, 5, tzinfo=UTC)
FULL_CONFIG = json.loads((EVENTS / "ai-camera" / "config-example.json").read_text())


@pytest.fixture(autouse=True)
def no_default(monkeypatch):
    """Each test starts from the built-in default, as a fresh Lambda environment would."""
    monkeypatch.delenv(DEFAULT_CONFIG_ENV, raising=False)
    new_environment()
    yield
    new_environment()


def set_default(monkeypatch, config: dict) -> None:
    monkeypatch.setenv(DEFAULT_CONFIG_ENV, json.dumps(config))
    new_environment()


def normalize(record, adapter: AiCameraAdapter | None = None):
    body = record if isinstance(record, bytes) else json.dumps(record).encode()
    [event] = (adapter or AiCameraAdapter()).normalize(RawPush("ai-camera", "http", body), RECEIVED)
    return event


def heartbeat_answer(record: dict, config: dict | None, outcome: Outcome = Outcome.ACCEPTED) -> dict:
    adapter = AiCameraAdapter()
    answer = adapter.accepted_answer(outcome, [normalize(record, adapter)], config)
    assert answer.status == 200
    return answer.body


def rejected(record) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as info:
        normalize(record)
    return info.value


# --- the heartbeat as stored --------------------------------------------------------------------

def test_documented_heartbeat_is_a_heartbeat_of_its_serial_at_utc_time():
    # Given the vendor's documented heartbeat
    record = load_record("ai-camera", "doc-heartbeat")
    # When it is normalized
    event = normalize(record)
    # Then it is the serial's heartbeat, at 10:10:01+08 = 02:10:01Z, with the device facts and offset
    assert (event.vendor, event.kind, event.deviceId) == ("ai-camera", "heartbeat", "I320013590DEA0BE21F6958")
    assert event.occurredAt == "2020-03-31T02:10:01.000Z"
    assert event.data["eventId"] == 1 and event.data["timeOffset"] == "+08:00"
    assert event.data["deviceVersion"] == "V1.0.0" and event.data["strategyVersion"] == "v1.0.0"


def test_event_id_is_serial_and_event_id_so_a_retransmission_is_one_event():
    # Given the documented heartbeat, the same again (retransmitted), another eventId, another box
    record = load_record("ai-camera", "doc-heartbeat")
    again = copy.deepcopy(record)
    other_event = copy.deepcopy(record)
    other_event["info"]["eventId"] = 2
    other_box = copy.deepcopy(record)
    other_box["deviceInfo"]["serialNumber"] = "I320013590DEA0BE21F0000"
    # When each is normalized
    ids = [normalize(r).eventId for r in (record, again, other_event, other_box)]
    # Then the retransmission shares the id and the others do not
    assert ids[0] == ids[1] and ids[0].startswith("heartbeat-")
    assert len(set(ids)) == 3


def test_a_restarted_event_counter_is_not_taken_for_a_retransmission():
    # Given a box that rebooted: its counter starts again at the same eventId, later
    record = load_record("ai-camera", "doc-heartbeat")
    after_reboot = copy.deepcopy(record)
    after_reboot["info"]["time"] = "2020-04-02T08:00:00+08"
    # When both are normalized
    # Then they are two events (a retransmission repeats the event's time as well as its id)
    assert normalize(record).eventId != normalize(after_reboot).eventId


@pytest.mark.parametrize("time, utc", [
    ("2020-03-31T10:10:01+0800", "2020-03-31T02:10:01.000Z"),
    ("2020-03-31T10:10:01+08:00", "2020-03-31T02:10:01.000Z"),
    ("2020-03-31T02:10:01Z", "2020-03-31T02:10:01.000Z"),
    ("20200331T101002+08", "2020-03-31T02:10:02.000Z"),
    ("2020-03-31T10:10:01-03:30", "2020-03-31T13:40:01.000Z"),
])
def test_time_forms_the_box_may_send(time, utc):
    record = load_record("ai-camera", "doc-heartbeat")
    record["info"]["time"] = time
    assert normalize(record).occurredAt == utc


def test_minimal_heartbeat_without_descriptive_fields_is_accepted():
    # Given a firmware that sends only the serial, eventId and time (IP, MAC... are "required")
    event = normalize(load_record("ai-camera", "variation-heartbeat-minimal"))
    # Then it is still a heartbeat: refusing it would make the box look offline
    assert event.kind == "heartbeat" and set(event.data) == {"serialNumber", "eventId", "time", "timeOffset"}


@pytest.mark.parametrize("change, field", [
    (lambda r: r["deviceInfo"].pop("serialNumber"), "deviceInfo.serialNumber"),
    (lambda r: r["deviceInfo"].update(serialNumber="has space"), "deviceInfo.serialNumber"),
    (lambda r: r.pop("deviceInfo"), "deviceInfo"),
    (lambda r: r["info"].update(time="31/03/2020 10:10"), "info.time"),
    (lambda r: r["info"].update(time="2020-03-31T10:10:01"), "info.time"),  # no offset
    (lambda r: r["info"].pop("time"), "info.time"),
    (lambda r: r["info"].pop("eventId"), "info.eventId"),
    (lambda r: r["info"].update(eventId=True), "info.eventId"),
    (lambda r: r["info"].update(eventId=1.5), "info.eventId"),
    (lambda r: r.update(operator="heart beat!"), "operator"),
    (lambda r: r.pop("operator"), "operator"),
])
def test_invalid_heartbeat_names_the_field(change, field):
    # Given the documented heartbeat with one field broken
    record = load_record("ai-camera", "doc-heartbeat")
    change(record)
    # When normalized, Then the rejection names that field
    assert field in [p.field for p in rejected(record).problems]


@pytest.mark.parametrize("body", [b"[1, 2]", b'"heartbeat"', b"{broken"])
def test_a_body_that_is_not_a_json_object_is_refused(body):
    assert [p.field for p in rejected(body).problems] == ["body"]


# --- other operators ----------------------------------------------------------------------------

def test_unknown_operator_is_kept_whole_as_its_own_kind_and_acknowledged():
    # Given a detection event the document does not describe
    record = load_record("ai-camera", "variation-unknown-operator")
    adapter = AiCameraAdapter()
    # When it is normalized and answered
    event = normalize(record, adapter)
    answer = adapter.accepted_answer(Outcome.ACCEPTED, [event], None)
    # Then it is stored under the operator's name with everything it carried, and acknowledged
    assert event.kind == "personDetect" and event.deviceId == "I320013590DEA0BE21F6958"
    assert event.data == record and event.occurredAt == "2020-03-31T02:12:45.000Z"
    assert event.eventId == normalize(copy.deepcopy(record)).eventId
    assert answer.status == 200 and answer.body == {
        "operator": "personDetect-Ack", "info": {"eventId": 1024}, "result": {"errorNo": 0, "description": "ok"}}
    assert adapter.config_device([event]) is None and adapter.state_patch(
        {"kind": event.kind, "data": event.data}) == {}


def test_unknown_operator_without_event_id_or_time_is_still_stored():
    # Given an undocumented operator carrying no eventId and no time
    record = {"operator": "startupReport", "deviceInfo": {"serialNumber": "BOX-1"}, "payload": {"reason": 3}}
    adapter = AiCameraAdapter()
    event = normalize(record, adapter)
    # Then receipt time stands in, and the ack echoes nothing it was not given
    assert event.kind == "startupReport" and event.occurredAt == "2025-02-07T07:30:05.000Z"
    assert adapter.accepted_answer(Outcome.ACCEPTED, [event], None).body["info"] == {}


def test_unknown_operator_still_needs_a_serial():
    assert "deviceInfo.serialNumber" in [p.field for p in rejected(
        {"operator": "personDetect", "deviceInfo": {}, "info": {"eventId": 1}}).problems]


# --- the heartbeat answer -----------------------------------------------------------------------

def test_answer_without_device_configuration_is_the_default_without_strategy():
    # Given no device configuration and no deployment default
    body = heartbeat_answer(load_record("ai-camera", "doc-heartbeat"), None)
    # Then the camera is told the built-in interval and mode, and no strategy (it keeps its own)
    assert body["operator"] == "heartbeat-Ack" and body["result"] == {"errorNo": 0, "description": "ok"}
    assert body["info"]["heartbeatInterval"] == 60 and body["info"]["eventSendMode"] == "realTime"
    assert "strategy" not in body["info"]


def test_answer_with_device_configuration_carries_its_strategy_and_interval():
    # Given a device configuration with a whole strategy
    body = heartbeat_answer(load_record("ai-camera", "doc-heartbeat"), FULL_CONFIG)
    # Then the answer carries it, every field, in the document's order
    assert body["info"]["heartbeatInterval"] == 30
    assert body["info"]["strategy"] == FULL_CONFIG["strategy"]
    assert tuple(body["info"]["strategy"]) == STRATEGY_FIELDS


def test_partial_device_strategy_is_merged_over_the_deployment_default(monkeypatch):
    # Given a deployment default with a whole strategy, and a device turning two switches off
    set_default(monkeypatch, {"heartbeatInterval": 120, "eventSendMode": "retransmission",
                              "strategy": FULL_CONFIG["strategy"]})
    device = {"strategy": {"isPetDetectEnable": False, "isFallDetectEnable": False}}
    # When the device's heartbeat is answered
    info = heartbeat_answer(load_record("ai-camera", "doc-heartbeat"), device)["info"]
    # Then the device's keys win, every other key is the default's
    assert info["heartbeatInterval"] == 120 and info["eventSendMode"] == "retransmission"
    assert info["strategy"]["isPetDetectEnable"] is False and info["strategy"]["isFallDetectEnable"] is False
    assert info["strategy"]["isFireDetectEventEnable"] is True
    assert info["strategy"]["heartBeatInterval"] == 30


def test_a_device_interval_also_sets_the_strategy_copy_unless_given():
    # Given a default strategy (heartBeatInterval 30) and a device asking for 300 s
    strategy = {k: v for k, v in FULL_CONFIG["strategy"].items() if k != "heartBeatInterval"}
    told = effective_config({"heartbeatInterval": 300},
                            default={"heartbeatInterval": 30, "eventSendMode": "realTime",
                                     "strategy": dict(strategy, heartBeatInterval=30)})
    # Then both intervals say 300, and the sweep expects a heartbeat every 300 s
    assert told["heartbeatInterval"] == told["strategy"]["heartBeatInterval"] == 300
    assert heartbeat_interval({"heartbeatInterval": 300}) == 300


@pytest.mark.parametrize("event_id, text", [(1, '"eventId":1,'), ("abc", '"eventId":"abc",'),
                                            (9007199254740993, '"eventId":9007199254740993,')])
def test_event_id_is_echoed_with_its_json_type(event_id, text):
    record = load_record("ai-camera", "doc-heartbeat")
    record["info"]["eventId"] = event_id
    body = heartbeat_answer(record, None)
    assert body["info"]["eventId"] == event_id and type(body["info"]["eventId"]) is type(event_id)
    assert text in json.dumps(body, separators=(",", ":"))


def test_answer_time_is_now_in_the_device_offset_in_basic_format():
    # Given a box at +08 (the documented heartbeat)
    before = now_utc()
    time = heartbeat_answer(load_record("ai-camera", "doc-heartbeat"), None)["info"]["time"]
    # Then the time is 20200331T101002+08-shaped, and it is now
    assert len(time) == len("20200331T101002+08") and time[8] == "T" and time.endswith("+08")
    told = datetime.fromisoformat(time)
    assert told.utcoffset().total_seconds() == 8 * 3600
    assert abs((told - before).total_seconds()) < 5


def test_half_hour_offset_is_answered_with_minutes():
    # Given a box at +05:30
    time = heartbeat_answer(load_record("ai-camera", "variation-heartbeat-offset-colon"), None)["info"]["time"]
    # Then its answer says +0530
    assert time.endswith("+0530") and abs((datetime.fromisoformat(time) - now_utc()).total_seconds()) < 5


def test_duplicate_is_answered_like_accepted():
    # Given a retransmitted heartbeat (already stored)
    record = load_record("ai-camera", "variation-heartbeat-string-event-id")
    first = heartbeat_answer(record, FULL_CONFIG, Outcome.ACCEPTED)
    again = heartbeat_answer(record, FULL_CONFIG, Outcome.DUPLICATE)
    # Then it gets the same acknowledgement (apart from the clock)
    first["info"].pop("time"), again["info"].pop("time")
    assert first == again and again["info"]["eventId"] == "hb-20200331-101001-0001"


def test_invalid_device_configuration_falls_back_to_the_default(logs):
    # Given a device configuration with a misspelt switch, a text boolean and an interval too long
    bad = {"heartbeatInterval": 100000, "strategy": dict(FULL_CONFIG["strategy"], isPetDetectEnabled=True,
                                                         isFallDetectEnable="yes-secret")}
    # When the heartbeat is answered
    info = heartbeat_answer(load_record("ai-camera", "doc-heartbeat"), bad)["info"]
    # Then the default is told, and the warning names fields, never values
    assert info["heartbeatInterval"] == 60 and "strategy" not in info
    written = logs()
    assert "ai-camera device configuration invalid" in written and "isPetDetectEnabled" in written
    assert "yes-secret" not in written


def test_partial_strategy_without_a_default_strategy_falls_back():
    # A partial strategy alone is not a strategy the camera can take as a whole
    assert effective_config({"strategy": {"isPetDetectEnable": False}}) == deployment_default()


def test_configuration_numbers_may_come_as_decimal_or_float():
    config = {"heartbeatInterval": Decimal("45"), "strategy": dict(FULL_CONFIG["strategy"],
                                                                   passengerStaticsInterval=Decimal("3"),
                                                                   heartBeatInterval=45.0)}
    told = effective_config(config)
    assert told["heartbeatInterval"] == 45 and told["strategy"]["passengerStaticsInterval"] == 3
    assert type(told["strategy"]["heartBeatInterval"]) is int


def test_broken_deployment_default_raises_naming_the_variable(monkeypatch):
    monkeypatch.setenv(DEFAULT_CONFIG_ENV, '{"heartbeatInterval": 60,')
    new_environment()
    with pytest.raises(ConfigInvalid, match=DEFAULT_CONFIG_ENV):
        deployment_default()
    set_default(monkeypatch, {"eventSendMode": "sometimes"})
    with pytest.raises(ConfigInvalid, match="eventSendMode"):
        deployment_default()


# --- failures, state ----------------------------------------------------------------------------

def test_failures_are_non_zero_error_numbers_with_real_statuses():
    adapter = AiCameraAdapter()
    invalid = adapter.answer(Outcome.INVALID, [FieldProblem("info.time", "has no UTC offset")], "invalid heartbeat")
    assert invalid.status == 400 and invalid.body["result"]["errorNo"] == 400
    assert invalid.body["errors"] == [{"field": "info.time", "problem": "has no UTC offset"}]
    for outcome, status in ((Outcome.TOO_LARGE, 413), (Outcome.FORBIDDEN, 403), (Outcome.UNAVAILABLE, 503)):
        answer = adapter.answer(outcome)
        assert answer.status == status and answer.body["result"]["errorNo"] == status
    assert adapter.answer(Outcome.DUPLICATE).body == {"result": {"errorNo": 0, "description": "ok"}}
    assert adapter.accepted_answer(Outcome.UNAVAILABLE, [], None).status == 503


def test_heartbeat_updates_device_facts_and_names_its_configuration():
    adapter = AiCameraAdapter()
    event = normalize(load_record("ai-camera", "doc-heartbeat"), adapter)
    patch = adapter.state_patch({"kind": event.kind, "data": event.data})
    assert patch == {"deviceInfo": {"IP": "192.168.1.233", "MAC": "5a:58:12:7f:23:a2", "deviceType": "0x0002",
                                    "deviceVersion": "V1.0.0", "SN": "I320315D7248CAA258793D9",
                                    "DID": "IOTBEE-274996-YPHPK", "platformID": "64010000001110000001",
                                    "strategyVersion": "v1.0.0"}}
    assert adapter.config_device([event]) == "I320013590DEA0BE21F6958"


def test_a_box_cannot_send_the_gateways_own_device_events():
    # Given a message whose operator names a gateway event
    record = load_record("ai-camera", "variation-unknown-operator")
    record["operator"] = "device.offline"
    # When it is normalized, then it is refused naming the operator
    with pytest.raises(InvalidPayload) as refused:
        normalize(record)
    assert [p.field for p in refused.value.problems] == ["operator"]


def test_other_operators_with_an_unreadable_time_are_still_told_apart_by_it():
    # Given two detection events with the same restarted eventId and local times without offset
    first = load_record("ai-camera", "variation-unknown-operator")
    second = copy.deepcopy(first)
    first["info"].update(eventId=1, time="2024-05-01 10:00:00")
    second["info"].update(eventId=1, time="2024-05-02 18:30:00")
    # Then they are two events, and the same one again is one
    assert normalize(first).eventId != normalize(second).eventId
    assert normalize(first).eventId == normalize(copy.deepcopy(first)).eventId


def test_a_configuration_is_resolved_once_per_read_not_once_per_heartbeat(monkeypatch):
    # Given an adapter, and the resolution of configurations counted
    from devicegate.vendors.ai_camera import adapter as module

    calls = []
    real = module.effective_config
    monkeypatch.setattr(module, "effective_config", lambda config, **kw: calls.append(config) or real(config, **kw))
    adapter = AiCameraAdapter()
    config = json.loads((EVENTS / "ai-camera" / "config-example.json").read_text())
    event = normalize(load_record("ai-camera", "doc-heartbeat"), adapter)
    # When three heartbeats are answered from the same cached configuration, then one from a
    # re-read (a new map with other content)
    answers = [adapter.accepted_answer(Outcome.ACCEPTED, [event], config) for _ in range(3)]
    changed = dict(config, heartbeatInterval=45, strategy=dict(config["strategy"], heartBeatInterval=45))
    last = adapter.accepted_answer(Outcome.ACCEPTED, [event], changed)
    # Then it was resolved twice, and each answer tells its own configuration
    assert len(calls) == 2
    assert {a.body["info"]["heartbeatInterval"] for a in answers} == {config["heartbeatInterval"]}
    assert last.body["info"]["heartbeatInterval"] == 45
