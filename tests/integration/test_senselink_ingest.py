"""SenseLink end to end in one process: Event Subscription bodies and bridged WebSocket frames ->
DynamoDB (moto) -> stream -> outbox -> SQS; heartbeats as liveness; answers that never make
SenseLink give up on the subscription."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from devicegate.store.queries import device_alarms, device_state, vendor_devices
from functions.outbox import app as outbox_app
from functions.senselink_webhook import app as webhook_app
from tests.support import context, load_event, load_record, new_environment, with_body

# Every sample stored once and published once, a repeat storing nothing: test_vendor_contract.py.
CONTROL_FRAMES = {"http-ws-doc-connected.json", "http-ws-doc-denied.json"}
SUCCESS = {"code": 200, "message": "success"}
LDID = "SPSP-f26131cf5301be29b3a6f7be150ed330"


def record_event_id(device: str, record_id: int) -> str:
    """A record's event id: its device and SenseLink record id (ids count per server)."""
    return "rec-" + hashlib.sha256(f"{device}\n{record_id}".encode()).hexdigest()[:32]


def post(event: dict) -> tuple[int, dict]:
    response = webhook_app.lambda_handler(event, context("SenseLinkWebhookFunction"))
    return response["statusCode"], json.loads(response["body"])


def send(document: dict, source: str | None = None) -> tuple[int, dict]:
    event = with_body(load_event("senselink/http-sub-record-employee.json"), json.dumps(document, ensure_ascii=False))
    if source:
        event["headers"]["x-devicegate-source"] = source
    return post(event)


def run_outbox(stack) -> dict:
    return outbox_app.lambda_handler({"Records": stack.new_stream_records()}, context("OutboxFunction"))


def test_record_fields_and_codes(stack):
    post(load_event("senselink/http-ws-doc-record.json"))
    [item] = stack.event_items("senselink")
    # The record id is the event id; the device is the LDID; signTime (seconds) is the time
    assert item["eventId"] == record_event_id(LDID, 1364591) and item["deviceId"] == LDID
    assert item["occurredAt"] == "2019-09-29T02:46:14.000Z"
    data = item["data"]
    assert data["entryModeName"] == "face" and data["abnormalTypeName"] == "none"
    assert data["groups"] == [{"id": "1", "name": "Default group", "type": 1, "typeName": "employee group"}]
    assert data["signAvatar"] == "5d901af663cdaf0001252bb9"


def test_alarm_times_are_read_in_the_servers_time_zone(stack, monkeypatch):
    # Given a SenseLink server running on Japan time
    monkeypatch.setenv("SENSELINK_TIMEZONE", "+09:00")
    new_environment()
    # When its alarm "2023-11-14 22:15:00" arrives
    post(load_event("senselink/http-sub-alarm-raised.json"))
    # Then it happened at 13:15 UTC
    [item] = stack.event_items("senselink")
    assert item["occurredAt"] == "2023-11-14T13:15:00.000Z"
    assert item["data"]["codeName"] == "door forced open" and item["data"]["statusName"] == "active"


def test_retried_push_with_the_same_message_id_is_one_event(stack):
    # Given SenseLink retrying one push three times (its answer got lost)
    event = load_event("senselink/http-sub-record-employee.json")
    answers = [post(event) for _ in range(3)]
    run_outbox(stack)
    # Then each try is answered 200, and there is one event and one message
    assert answers == [(200, SUCCESS)] * 3
    assert len(stack.event_items("senselink")) == 1 and len(stack.queue_messages()) == 1


def test_message_id_alone_identifies_a_record_without_an_id(stack):
    body = load_record("senselink", "sub-record-employee")
    body["data"].pop("id")
    assert send(body) == (200, SUCCESS)
    assert send(body) == (200, SUCCESS)
    body["messageId"] = "another-message"
    assert send(body) == (200, SUCCESS)
    assert len(stack.event_items("senselink")) == 2


def test_the_same_record_by_subscription_and_by_bridge_is_one_event(stack):
    # Given one record (id 1364620) arriving as a subscription push and as a bridged frame
    body = load_record("senselink", "sub-record-employee")
    frame = {"code": 30000, "message": "push record", "data": copy.deepcopy(body["data"])}
    assert send(body) == (200, SUCCESS)
    assert send(frame, source="lobby-server") == (200, SUCCESS)
    # Then it is stored once
    [item] = stack.event_items("senselink")
    assert item["eventId"] == record_event_id(LDID, 1364620)


def test_two_servers_records_with_the_same_id_are_two_events(stack):
    # Given two SenseLink servers whose record counters both reached 1364620, on their own devices
    first = load_record("senselink", "sub-record-employee")
    second = copy.deepcopy(first)
    second["messageId"], second["data"]["sn"] = "other-server-message", "SPSP-0000000000000000000000000000beef"
    # When both push
    assert send(first) == (200, SUCCESS) and send(second) == (200, SUCCESS)
    # Then both records are stored
    assert sorted(i["deviceId"] for i in stack.event_items("senselink")) == sorted([LDID, second["data"]["sn"]])


@pytest.mark.parametrize("field, value", [("id", "9" * 3000), ("traceId", "T" * 1500), ("sn", "設備" * 60)])
def test_ids_too_long_for_keys_are_kept_in_quarantine_not_retried(stack, field, value):
    body = load_record("senselink", "sub-alarm-raised" if field == "traceId" else "sub-record-employee")
    body["data"][field] = value
    status, answer = send(body)
    assert status == 200 and answer["code"] == 400
    assert stack.event_items("senselink") == [] and len(stack.quarantine_items("senselink")) == 1


def test_alarm_lifecycle_active_releasing_released(stack):
    # Given an alarm's three steps, released first, the active step sent twice
    for name in ("http-sub-alarm-released.json", "http-sub-alarm-raised.json", "http-ws-alarm-releasing.json",
                 "http-sub-alarm-raised.json"):
        assert post(load_event(f"senselink/{name}")) == (200, SUCCESS)
        run_outbox(stack)
    # Then there are three alarm events and one lifecycle item, released
    assert len(stack.event_items("senselink")) == 3
    [alarm] = device_alarms(stack.ddb, stack.table, "senselink", LDID)
    assert alarm["alarmId"] == "SPSP-1700000100000-001-Qa7" and alarm["status"] == "released"
    assert alarm["steps"] == {"open": "2023-11-14T22:15:00.000Z", "releasing": "2023-11-14T22:18:00.000Z",
                              "released": "2023-11-14T22:20:30.000Z"}
    assert alarm["details"]["codeName"] == "door forced open"
    assert alarm["codeName"] == "door forced open" and alarm["code"] == alarm["details"]["code"]


def test_heartbeat_updates_bridge_liveness_and_stores_no_event(stack):
    # Given the bridge "lobby-server" forwarding SenseLink's heartbeat frame
    status, answer = post(load_event("senselink/http-ws-doc-heartbeat.json"))
    run_outbox(stack)
    # Then it is answered 200, nothing is stored as an event or queued...
    assert (status, answer) == (200, SUCCESS)
    assert stack.event_items("senselink") == [] and stack.queue_messages() == []
    # ...and the bridge shows as a device of the vendor, last seen now
    [bridge] = vendor_devices(stack.ddb, stack.table, "senselink")
    assert bridge["deviceId"] == "bridge:lobby-server" and bridge["lastKind"] == "heartbeat"
    state = device_state(stack.ddb, stack.table, "senselink", "bridge:lobby-server")
    assert state["lastSeen"] is not None


@pytest.mark.parametrize("fixture", sorted(CONTROL_FRAMES))
def test_control_frames_are_answered_200_and_kept_not_stored(stack, fixture):
    status, answer = post(load_event(f"senselink/{fixture}"))
    assert status == 200 and answer["code"] == 400
    assert stack.event_items("senselink") == []
    assert len(stack.quarantine_items("senselink")) == 1


@pytest.mark.parametrize("body, field", [
    ("{not json", "body"),
    ('{"eventType": "40000", "messageId": "m", "data": {}}', "eventType"),
    ('{"eventType": "30000", "messageId": "m", "data": {"signTime": "soon"}}', "data.signTime"),
    ('{"eventType": "30100", "messageId": "m", "data": {"alarmTime": "tomorrow"}}', "data.alarmTime"),
    ('{"hello": 1}', "body"),
    ('"just text"', "body"),
])
def test_bad_input_is_kept_and_answered_200_so_senselink_keeps_pushing(stack, body, field):
    # Given a push that will never become valid however often it is retried
    status, answer = post(with_body(load_event("senselink/http-sub-record-employee.json"), body))
    # Then SenseLink still gets HTTP 200 (a failure would end the subscription), the body says
    # what is wrong, and the payload waits in quarantine
    assert status == 200 and answer["code"] == 400
    assert field in [e["field"] for e in answer["errors"]]
    assert stack.event_items("senselink") == []
    assert len(stack.quarantine_items("senselink")) == 1


def test_storage_down_is_503_so_senselink_retries_and_nothing_is_lost(stack):
    stack.ddb.delete_table(TableName=stack.table)
    status, answer = post(load_event("senselink/http-sub-record-employee.json"))
    assert status == 503 and answer["code"] == 503


def test_wrong_token_is_403(stack):
    event = load_event("senselink/http-sub-record-employee.json")
    event["pathParameters"]["token"] = "not-the-token"
    assert post(event)[0] == 403
    assert stack.event_items("senselink") == []


def test_personal_fields_masked_and_never_logged(stack, logs):
    # Given a record of a named employee with card, ID and phone numbers
    post(load_event("senselink/http-sub-record-employee.json"))
    bad = load_record("senselink", "sub-record-employee")
    bad["data"]["signTime"] = "山田 太郎"
    send(bad)
    run_outbox(stack)
    # Then the numbers are masked in the stored event (the name is kept for apps)
    [item] = stack.event_items("senselink")
    assert item["data"]["icNumber"] == "******7890" and item["data"]["idNumber"] == "*****4567"
    assert item["data"]["name"] == "山田 太郎"
    # And no log line holds the name or any of the numbers
    written = logs()
    assert written
    for value in ("山田 太郎", "09012345678", "0004567890", "AB1234567"):
        assert value not in written


def test_aws_calls_get_timeouts_that_fit_senselinks_deadline(stack):
    # Given the SenseLink pipeline's clients (the token secret, the table)
    from devicegate.ingest.wiring import http_pipeline

    pipeline = http_pipeline("senselink")
    config = pipeline.store._ddb.meta.config
    # Then three failing calls in a row still answer inside 5 s
    per_call = config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout)
    assert 3 * per_call < 5.0


def test_a_long_non_ascii_trace_id_still_gets_its_lifecycle_item(stack):
    # Given an alarm whose (allowed, 128-character) trace id is all non-ASCII
    body = load_record("senselink", "sub-alarm-raised")
    body["data"]["traceId"] = "警" * 128
    # When it is stored and the outbox runs
    assert send(body) == (200, SUCCESS)
    assert run_outbox(stack) == {"batchItemFailures": []}
    # Then its lifecycle item exists under a sort key that fits DynamoDB's limit
    [alarm] = device_alarms(stack.ddb, stack.table, "senselink", LDID)
    assert alarm["alarmId"] == "警" * 128 and alarm["status"] == "open"
    from devicegate.store.keys import alarm_item_sk

    assert len(alarm_item_sk(alarm["alarmId"]).encode()) <= 1024
