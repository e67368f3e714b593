"""Jointech end to end inside one process: handler -> DynamoDB (moto) -> stream -> outbox -> SQS."""

from __future__ import annotations

import json

from functions.jointech_mqtt import app as mqtt_app
from functions.jointech_webhook import app as webhook_app
from functions.outbox import app as outbox_app
from tests.support import context, load_event, load_record, with_body

# Every sample stored once and published once, a repeat storing nothing: test_vendor_contract.py.


def post(event: dict) -> tuple[int, dict]:
    response = webhook_app.lambda_handler(event, context("JointechWebhookFunction"))
    return response["statusCode"], json.loads(response["body"])


def run_outbox(stack) -> dict:
    return outbox_app.lambda_handler({"Records": stack.new_stream_records()}, context("OutboxFunction"))


def mqtt(event: dict) -> dict:
    return mqtt_app.lambda_handler(event, context("JointechMqttFunction"))


def test_auto_kind_route_tells_the_kind_from_the_fields(stack):
    # Given the single-URL rule posting an alarm and a slave-lock record
    for fixture, kind in (("http-auto-alarm.json", "alarm"), ("http-auto-sublock.json", "sublock")):
        event = load_event(f"jointech/{fixture}")
        assert "kind" not in event["pathParameters"]
        status, _ = post(event)
        # Then each is stored under the kind its fields name
        assert status == 200
        [item] = [i for i in stack.event_items() if i["deviceId"] == json.loads(event["body"])["assetId"]]
        assert item["kind"] == kind


def test_five_retransmissions_store_one_event_and_queue_one_message(stack):
    # Given the same location record sent five times (a device that missed our answers)
    event = load_event("jointech/http-webhook-location.json")

    # When all five arrive
    answers = [post(event) for _ in range(5)]
    run_outbox(stack)

    # Then all five are answered as accepted, but one event exists and one message was queued
    assert all(status == 200 and body["result"] == 200 for status, body in answers)
    assert len(stack.event_items()) == 1
    assert len(stack.queue_messages()) == 1


def test_same_record_by_https_and_by_mqtt_is_one_event(stack):
    # Given one record delivered by the webhook rule and again by the MQTT push
    record = load_record("jointech", "mqtt-alarm")
    http_event = with_body(load_event("jointech/http-webhook-alarm.json"), json.dumps(record))
    iot_event = load_event("jointech/iot-mqtt-alarm.json")

    # When both transports deliver it
    status, _ = post(http_event)
    result = mqtt(iot_event)
    run_outbox(stack)

    # Then the second is recognised as a retransmission
    assert status == 200 and result["outcome"] == "duplicate"
    assert len(stack.event_items()) == 1
    assert len(stack.queue_messages()) == 1


def _location(gps_time: str, lat: float, lon: float, battery: int) -> str:
    record = load_record("jointech", "mqtt-location")
    record.update(gpsTime=gps_time, latitude=lat, longitude=lon, battery=battery, locType=1)
    return json.dumps(record)


def test_an_older_record_after_a_newer_one_leaves_state_unchanged(stack):
    base = load_event("jointech/http-webhook-location.json")
    # Given a device whose newest known position is from 10:00
    post(with_body(base, _location("2025-02-07T10:00:00Z", 22.7, 113.9, 80)))
    run_outbox(stack)
    before = stack.state("jointech", "8052400203")

    # When a record from 09:00 arrives late (backlog after an outage)
    status, _ = post(with_body(base, _location("2025-02-07T09:00:00Z", 22.1, 113.1, 95)))
    run_outbox(stack)

    # Then the late event is stored and published, but position and battery stay at 10:00
    assert status == 200
    assert len(stack.event_items()) == 2
    assert len(stack.queue_messages()) == 2
    after = stack.state("jointech", "8052400203")
    assert after["position"]["value"]["latitude"] == 22.7
    assert after["power"]["value"]["batteryPct"] == 80
    assert after["summary"]["value"]["lastSeen"] == "2025-02-07T10:00:00.000Z"
    # ...only the time the device was last heard from moves: the late record is contact now
    assert after["summary"].pop("heardAt") > before["summary"].pop("heardAt")
    assert after == before


def test_a_newer_record_moves_state_forward(stack):
    base = load_event("jointech/http-webhook-location.json")
    # Given state from 09:00
    post(with_body(base, _location("2025-02-07T09:00:00Z", 22.1, 113.1, 95)))
    run_outbox(stack)
    # When a 10:00 record arrives
    post(with_body(base, _location("2025-02-07T10:00:00Z", 22.7, 113.9, 80)))
    run_outbox(stack)
    # Then position, battery and last seen follow it
    state = stack.state("jointech", "8052400203")
    assert state["position"]["value"]["latitude"] == 22.7
    assert state["power"]["value"] == {"batteryPct": 80, "external": False}
    assert state["summary"]["value"]["lastSeen"] == "2025-02-07T10:00:00.000Z"


def test_decoded_fields_reach_the_stored_event(stack):
    # Given the documented MQTT location (battery 255, "null" strings, temperature -1000)
    mqtt(load_event("jointech/iot-mqtt-location.json"))
    # and the documented event with a waybill in `describe`, and both command responses
    post(load_event("jointech/http-webhook-event.json"))
    mqtt(load_event("jointech/iot-mqtt-cmd-success.json"))
    mqtt(load_event("jointech/iot-mqtt-cmd-not-online.json"))
    mqtt(load_event("jointech/iot-mqtt-sublock.json"))

    by_kind = {}
    for item in stack.event_items():
        by_kind.setdefault(item["kind"], []).append(item["data"])

    [location] = by_kind["location"]
    assert location["charging"] is True and "battery" not in location
    assert "temperature" not in location["expand"] and "lux" not in location["expand"]
    assert location["status"] == {"lockStatus": 0, "lockRope": 0}
    assert location["locTypeName"] == "Base station positioning"

    [event] = by_kind["event"]
    assert event["eventName"] == "Unlock" and event["unLockTypeName"] == "Swipe card to unlock"
    assert event["details"] == {"waybillGUID": "190db1a2-3df1-4857-b94e-ee5937334409", "waybillNo": "45435345"}

    ok, failed = sorted(by_kind["cmd"], key=lambda d: d["ok"], reverse=True)
    assert ok["ok"] is True and ok["response"][3] == "BASE"
    assert failed["ok"] is False and failed["error"] == "Device not online！"

    [sub] = by_kind["sublock"]
    assert sub["sensorTypeName"] == "JT709" and "temperature" not in sub
    assert sub["eventTypeName"] == "Lora unlock event"


def test_sublock_state_is_kept_per_slave(stack):
    mqtt(load_event("jointech/iot-mqtt-sublock.json"))
    run_outbox(stack)
    state = stack.state("jointech", "8052400203")
    assert state["sublock:E0171E0366"]["value"]["battery"] == 41
    assert state["sublock:E0171E0366"]["value"]["locStatus"] == 0


def test_webhook_only_fields_do_not_split_one_record_into_two_events(stack):
    # Given the documented event pushed by webhook (with fileIndex) and by MQTT (the vendor's MQTT
    # event table has no fileIndex)
    record = load_record("jointech", "webhook-event")
    mqtt_record = {k: v for k, v in record.items() if k != "fileIndex"}
    iot_event = dict(mqtt_record, accessKey="ak", deviceNum=record["assetId"], kind="event")
    # When both arrive
    status, _ = post(load_event("jointech/http-webhook-event.json"))
    result = mqtt(iot_event)
    # Then the second is a retransmission of the first, and the stored copy keeps fileIndex
    assert status == 200 and result["outcome"] == "duplicate"
    [item] = stack.event_items()
    assert item["data"]["fileIndex"] == "1767002445"


def test_fuel_minus_one_everywhere_means_no_fuel_sensor(stack):
    post(load_event("jointech/http-webhook-location.json"))
    [item] = stack.event_items()
    assert "fuels" not in item["data"]["expand"]


def test_large_records_all_reach_the_queue(stack):
    # Given twelve 200 KB alarms (more than one SQS batch can carry)
    base = load_event("jointech/http-webhook-alarm.json")
    for i in range(12):
        record = load_record("jointech", "webhook-alarm")
        record.update(describe="x" * 200_000, dateTime=f"2025-02-07T10:00:{i:02d}Z")
        assert post(with_body(base, json.dumps(record)))[0] == 200
    # When the outbox runs over the stream
    result = run_outbox(stack)
    # Then every event is published, none reported failed
    assert result == {"batchItemFailures": []}
    assert len(stack.queue_messages()) == 12


def _emf(text: str) -> list[dict]:
    return [doc for doc in (json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"'))]


def test_metrics_carry_the_dimensions_the_alarms_query(stack, logs):
    # Given one accepted (counted by the outbox), one duplicate and one quarantined push
    event = load_event("jointech/http-webhook-location.json")
    post(event)
    post(event)
    post(with_body(event, "{broken"))
    run_outbox(stack)
    # Then each is counted in namespace Devicegate with exactly {service, vendor, kind}
    # (QuarantineAlarm's SCHEMA(Devicegate, kind, service, vendor) matches only that set)
    counted = {}
    for doc in _emf(logs()):
        [directive] = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Devicegate"
        assert [set(d) for d in directive["Dimensions"]] == [{"service", "vendor", "kind"}]
        for metric in directive["Metrics"]:
            counted[(metric["Name"], doc["vendor"], doc["kind"])] = doc[metric["Name"]]
    assert counted == {("accepted", "jointech", "location"): [1.0], ("duplicate", "jointech", "location"): [1.0],
                       ("rejected", "jointech", "location"): [1.0], ("quarantined", "jointech", "location"): [1.0]}
