"""Face-recognition terminal end to end in one process: handler -> S3 + DynamoDB (moto) -> stream
-> outbox -> SQS, alarm lifecycle items, personal data handling."""

from __future__ import annotations

import base64
import copy
import json
import random

import pytest

from devicegate.store.queries import alarms_in_status, device_alarms
from functions.face_terminal_webhook import app as webhook_app
from functions.outbox import app as outbox_app
from tests.support import context, load_event, load_record, new_environment, with_body

# Every sample stored once and published once, a repeat storing nothing: test_vendor_contract.py.
SUCCESS = {"code": 200, "msg": "success", "message": "success", "data": {}}
SERIAL = "PSC700C0MC22F02542"
# The photo both photo samples carry: a real 24x24 JPEG (a browser shows it: the console's test).
JPEG = base64.b64decode(load_record("face-terminal", "variation-record-with-photo-and-pin")["data"]["rgb_image"])


def post(event: dict) -> tuple[int, dict]:
    response = webhook_app.lambda_handler(event, context("FaceTerminalWebhookFunction"))
    return response["statusCode"], json.loads(response["body"])


def push(record: dict, query: dict | None = None) -> tuple[int, dict]:
    event = with_body(load_event("face-terminal/http-doc-record.json"), json.dumps(record, ensure_ascii=False))
    if query:
        event["queryStringParameters"] = query
    return post(event)


def run_outbox(stack) -> dict:
    return outbox_app.lambda_handler({"Records": stack.new_stream_records()}, context("OutboxFunction"))


def objects(stack) -> dict[str, dict]:
    s3 = stack.session.client("s3")
    found = s3.list_objects_v2(Bucket=stack.bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=stack.bucket, Key=o["Key"]) for o in found}


def record_with(uuid: str, **fields) -> dict:
    record = copy.deepcopy(load_record("face-terminal", "doc-record"))
    record["data"].update(uuid=uuid, **fields)
    return record


def test_codes_are_resolved_to_names(stack):
    # Given the vendor's documented recognition record
    post(load_event("face-terminal/http-doc-record.json"))
    # Then every coded field is stored with its name next to it
    [item] = stack.event_items("face-terminal")
    data = item["data"]
    assert data["recognitionTypeName"] == "employee"
    assert data["maskName"] == "detection off"
    assert data["modeName"] == "face or card or QR code or PIN"
    assert data["entry_mode_name"] == "face" and data["abnormal_type_name"] == "none"
    assert data["user"]["typeName"] == "employee"
    assert data["pass"] is True and item["occurredAt"] == "2023-05-29T07:01:55.000Z"
    # " " means "no picture" and 0.0 "not measured": neither is stored as a value
    assert "rgb_image" not in data and "bodyTemperature" not in data


def test_photo_goes_to_s3_and_the_event_references_it(stack):
    # Given a record carrying a base64 JPEG face capture
    event = load_event("face-terminal/http-variation-record-with-photo-and-pin.json")

    # When it is ingested
    status, answer = post(event)

    # Then the bytes are an image/jpeg object keyed by vendor/device/date/event id...
    assert (status, answer) == (200, SUCCESS)
    [item] = stack.event_items("face-terminal")
    key = f"media/face-terminal/{SERIAL}/2023/05/29/{item['eventId']}/rgb_image.jpg"
    stored = objects(stack)
    assert list(stored) == [key]
    assert stored[key]["ContentType"] == "image/jpeg" and stored[key]["Body"].read() == JPEG
    # ...and the event holds a reference, not the bytes
    assert item["data"]["rgb_image"] == {"key": key, "contentType": "image/jpeg", "bytes": len(JPEG)}
    assert base64.b64encode(JPEG).decode() not in json.dumps(item)


def test_a_photo_of_several_megabytes_is_accepted(stack):
    # Given a record whose picture makes a ~4.5 MB body (API Gateway delivers up to Lambda's 6 MB)
    big = JPEG[:-2] + random.Random(7).randbytes(3_400_000) + JPEG[-2:]
    record = record_with("c0ffee00-0000-4000-8000-00000000b16b", rgb_image=base64.b64encode(big).decode())
    # When it is pushed
    status, answer = push(record)
    # Then it is stored: the photo in S3, the event small
    assert (status, answer) == (200, SUCCESS)
    [item] = stack.event_items("face-terminal")
    assert item["data"]["rgb_image"]["bytes"] == len(big)
    assert objects(stack)[item["data"]["rgb_image"]["key"]]["Body"].read() == big


def test_bad_base64_is_quarantined_with_a_clear_reason(stack):
    # Given a record whose picture is not base64
    record = record_with("c0ffee00-0000-4000-8000-0000000000bad", rgb_image="this is ### not base64")

    # When it is pushed
    status, answer = push(record)

    # Then the terminal is told which field is wrong, nothing is stored, the payload is kept
    assert status == 400 and answer["code"] == 400 and answer["msg"] == answer["message"]
    assert "rgb_image" in answer["msg"]
    assert answer["data"]["errors"] == [{"field": "data.rgb_image",
                                         "problem": "not valid base64 (expected a base64 JPEG)"}]
    assert stack.event_items("face-terminal") == [] and objects(stack) == {}
    [kept] = stack.quarantine_items("face-terminal")
    assert kept["reason"] == "data.rgb_image is not valid base64"
    assert json.loads(kept["body"])["data"]["uuid"] == record["data"]["uuid"]


@pytest.mark.parametrize("body, field", [
    ('{"type": 7, "data": {}}', "type"),
    ('{"type": 0, "data": {"uuid": "x"}}', "data.deviceSN"),
    ('{"type": 0, "data": {"deviceSN": "S1", "uuid": "a b c", "timestamp": 1685343715}}', "data.uuid"),
    ('{"type": 1, "data": {"trace_id": "T1", "status": 1}}', "data.event_time"),
    ('{"type": 0}', "data"),
    ('[1, 2]', "body"),
    ('{"type": 0, "data": "x"', "body"),
])
def test_invalid_pushes_are_400_naming_the_field_and_kept(stack, body, field):
    status, answer = post(with_body(load_event("face-terminal/http-doc-record.json"), body))
    assert status == 400 and answer["code"] == 400
    assert field in [e["field"] for e in answer["data"]["errors"]]
    assert stack.event_items("face-terminal") == []
    assert len(stack.quarantine_items("face-terminal")) == 1


def test_retransmitted_record_is_one_event_and_one_message(stack):
    # Given a terminal that uploads the same cached record three times (missed answers)
    event = load_event("face-terminal/http-variation-record-with-photo-and-pin.json")
    # When each upload is answered
    answers = [post(event) for _ in range(3)]
    run_outbox(stack)
    # Then every upload is told success, and there is one event, one photo and one message
    assert answers == [(200, SUCCESS)] * 3
    assert len(stack.event_items("face-terminal")) == 1
    assert len(objects(stack)) == 1
    assert len(stack.queue_messages()) == 1


def _alarm(status: int, event_time: int, trace_id: str = "SPX-1684381418208-004-3Adb4v") -> dict:
    data = {"trace_id": trace_id, "description": " ", "event_time": event_time, "status": status, "alarm_photo": " "}
    if status == 1:
        data["code"] = 10001
    return {"type": 1, "data": data}


def test_alarm_lifecycle_in_any_order_with_retransmissions(stack):
    # Given one alarm's three steps, each sent twice, arriving out of order (a backlog upload)
    steps = [_alarm(3, 1684381500123), _alarm(1, 1684381433398), _alarm(3, 1684381500123),
             _alarm(2, 1684381470000), _alarm(1, 1684381433398), _alarm(2, 1684381470000)]

    # When they are pushed (terminal attributed by ?device=) and the outbox runs after each
    for step in steps:
        assert push(step, {"device": SERIAL}) == (200, SUCCESS)
        run_outbox(stack)

    # Then raised, release-failed and released are three events, with three messages
    items = stack.event_items("face-terminal")
    assert sorted(i["data"]["status"] for i in items) == [1, 2, 3]
    assert {i["deviceId"] for i in items} == {SERIAL}
    assert len(stack.queue_messages()) == 3
    # And one lifecycle item says released, with each step's time, and is not listed as open
    [alarm] = device_alarms(stack.ddb, stack.table, "face-terminal", SERIAL)
    assert alarm["alarmId"] == "SPX-1684381418208-004-3Adb4v" and alarm["status"] == "released"
    assert alarm["steps"] == {"open": "2023-05-18T03:43:53.398Z", "release_failed": "2023-05-18T03:44:30.000Z",
                              "released": "2023-05-18T03:45:00.123Z"}
    assert sorted(alarm["eventIds"]) == sorted(i["eventId"] for i in items)
    # And it still says what it is after its release: the raise step's code and name, although
    # the release steps name neither and one of them came first
    assert (alarm["code"], alarm["codeName"]) == (10001, "tamper (device removed)")
    assert alarm["details"].get("statusName") == "released" and "code" not in alarm["details"]
    assert alarms_in_status(stack.ddb, stack.table, "face-terminal", "open") == []
    assert [a["alarmId"] for a in alarms_in_status(stack.ddb, stack.table, "face-terminal", "released")] == [
        alarm["alarmId"]]


def test_an_alarm_still_raised_is_listed_open_across_the_fleet(stack):
    # Given two terminals, one alarm raised on each, one of them then released
    push(_alarm(1, 1684381433398, "T-A"), {"device": "TERM-A"})
    push(_alarm(1, 1684381433999, "T-B"), {"device": "TERM-B"})
    push(_alarm(3, 1684381500000, "T-B"), {"device": "TERM-B"})
    run_outbox(stack)
    # Then one Query lists the alarm still open, with its code
    [open_alarm] = alarms_in_status(stack.ddb, stack.table, "face-terminal", "open")
    assert (open_alarm["deviceId"], open_alarm["alarmId"]) == ("TERM-A", "T-A")
    assert open_alarm["details"]["codeName"] == "tamper (device removed)"
    # And the fleet alarm timeline (gsi3) holds all three alarm events
    from devicegate.store.queries import fleet_alarms

    assert len(fleet_alarms(stack.ddb, stack.table)) == 3


def test_alarm_without_serial_or_device_parameter_is_kept_as_unattributed(stack):
    assert post(load_event("face-terminal/http-doc-alarm-raised.json")) == (200, SUCCESS)
    [item] = stack.event_items("face-terminal")
    assert item["deviceId"] == "unattributed"


def test_alarm_photo_is_offloaded_too(stack):
    post(load_event("face-terminal/http-variation-alarm-with-photo-and-serial.json"))
    [item] = stack.event_items("face-terminal")
    ref = item["data"]["alarm_photo"]
    assert ref["key"].startswith(f"media/face-terminal/{SERIAL}/2023/05/18/{item['eventId']}/alarm_photo")
    assert objects(stack)[ref["key"]]["Body"].read() == JPEG


# --- personal data -------------------------------------------------------------------------------

PERSONAL_VALUES = ("王五", "110101199003077777", "0012345678", "4321", base64.b64encode(JPEG).decode())


def test_pin_is_never_stored_and_card_numbers_are_masked_by_default(stack):
    # Given a record with a PIN, an ID card number and an IC card number
    post(load_event("face-terminal/http-variation-record-with-photo-and-pin.json"))
    run_outbox(stack)
    # Then the stored and published user has no PIN and masked numbers, and keeps the name
    [item] = stack.event_items("face-terminal")
    user = item["data"]["user"]
    assert "pin" not in user
    assert user["id_number"] == "**************7777" and user["ic_number"] == "******5678"
    assert user["name"] == "王五" and user["job_number"] == "23385"
    [message] = stack.queue_messages()
    assert "4321" not in json.dumps(message) and "110101199003077777" not in json.dumps(message)


def test_deployment_can_drop_names_and_photos(stack, monkeypatch):
    # Given a deployment that stores neither names nor photos
    monkeypatch.setenv("PERSONAL_DATA", "name=drop,photo=drop,id_number=drop")
    new_environment()
    # When a record with both arrives
    assert post(load_event("face-terminal/http-variation-record-with-photo-and-pin.json")) == (200, SUCCESS)
    # Then neither is stored anywhere
    [item] = stack.event_items("face-terminal")
    assert "name" not in item["data"]["user"] and "id_number" not in item["data"]["user"]
    assert "rgb_image" not in item["data"] and objects(stack) == {}


def test_quarantined_payload_keeps_no_pin(stack):
    # Given an invalid record (bad timestamp) that carries a PIN and an ID number
    record = load_record("face-terminal", "variation-record-with-photo-and-pin")
    record["data"]["timestamp"] = "yesterday"
    status, _ = push(record)
    # Then it is kept for replay without the PIN, with the ID number masked
    assert status == 400
    [kept] = stack.quarantine_items("face-terminal")
    assert "4321" not in kept["body"] and "110101199003077777" not in kept["body"]
    assert json.loads(kept["body"])["data"]["user"]["id_number"] == "**************7777"


def test_logs_hold_no_personal_data_or_images_on_any_path(stack, logs):
    # Given records with personal data, taken through success, retransmission, quarantine,
    # an adapter failure and a storage failure
    good = load_event("face-terminal/http-variation-record-with-photo-and-pin.json")
    post(good)
    post(good)
    bad = load_record("face-terminal", "variation-record-with-photo-and-pin")
    bad["data"]["uuid"] = "not a valid id!"
    push(bad)
    broken = load_record("face-terminal", "variation-record-with-photo-and-pin")
    broken["data"]["user"]["guest_time_start"] = "王五 110101199003077777"
    push(broken)
    run_outbox(stack)
    stack.ddb.delete_table(TableName=stack.table)
    post(good)

    # Then nothing any function wrote names the person, their numbers, PIN or face
    written = logs()
    assert written, "the functions logged nothing at all: the capture is broken"
    for value in PERSONAL_VALUES:
        assert value not in written


def test_storage_down_answers_a_failure_so_the_terminal_keeps_the_record(stack):
    stack.ddb.delete_table(TableName=stack.table)
    status, answer = post(load_event("face-terminal/http-doc-record.json"))
    assert status == 503 and answer["code"] == 503 and answer["msg"] != "success"


def test_photo_storage_down_answers_failure_and_stores_no_event(stack):
    # Given the bucket is gone (S3 down): the photo cannot be kept
    s3 = stack.session.client("s3")
    s3.delete_bucket_policy(Bucket=stack.bucket)
    s3.delete_bucket(Bucket=stack.bucket)
    # When a record with a photo arrives
    status, answer = post(load_event("face-terminal/http-variation-record-with-photo-and-pin.json"))
    # Then it is not accepted, and no event points at a missing object
    assert status == 503 and answer["code"] == 503
    assert stack.event_items("face-terminal") == []


def test_wrong_token_is_403_in_the_terminal_shape(stack):
    event = load_event("face-terminal/http-doc-record.json")
    event["pathParameters"]["token"] = "wrong-token-value"
    status, answer = post(event)
    assert status == 403 and answer["code"] == 403
    assert stack.event_items("face-terminal") == []


def test_an_overflowing_number_is_quarantined_not_a_crash(stack):
    # 1e999 parses as infinity: it must be answered and kept like any bad input, never a 500
    body = '{"type": 0, "data": {"deviceSN": "S1", "uuid": "u-1", "timestamp": 1685343715, "recognizeScore": 1e999}}'
    status, answer = post(with_body(load_event("face-terminal/http-doc-record.json"), body))
    assert status == 400 and answer["code"] == 400
    assert len(stack.quarantine_items("face-terminal")) == 1


@pytest.mark.parametrize("body", [
    '{"type": 0, "data": {"user": {"pin": 4321, "id_number": "110101199003077777"}, "uuid": ',
    '{"type": 0, "data": {"user": {"pin": "4321", "id_number": "110101199003077777"}, "n": 1e999}}',
])
def test_unparseable_payloads_are_kept_without_pin_and_with_masked_numbers(stack, body):
    # Given a body that does not parse (cut short) or that holds a number JSON has not (1e999)
    status, _ = post(with_body(load_event("face-terminal/http-doc-record.json"), body))
    assert status == 400
    # Then neither the PIN nor the whole ID number is kept
    [kept] = stack.quarantine_items("face-terminal")
    assert "4321" not in kept["body"] and "110101199003077777" not in kept["body"]
    document = json.loads(kept["body"])
    if "redacted" in document:
        # Text that does not parse keeps only what cannot be personal data, and its digest
        import hashlib

        assert document["sha256"] == hashlib.sha256(body.encode()).hexdigest()
    else:
        # A document that parses keeps its fields, the number masked
        assert document["data"]["user"]["id_number"] == "**************7777"


def test_dropped_photos_are_not_kept_in_quarantine_either(stack, monkeypatch):
    monkeypatch.setenv("PERSONAL_DATA", "photo=drop")
    new_environment()
    record = load_record("face-terminal", "variation-record-with-photo-and-pin")
    record["data"]["timestamp"] = "never"
    assert push(record)[0] == 400
    [kept] = stack.quarantine_items("face-terminal")
    assert base64.b64encode(JPEG).decode() not in kept["body"]


def test_a_large_record_retransmitted_days_later_leaves_one_object(stack, monkeypatch):
    # Given a record too large for an item (a long remark), sent today and again two days later
    from datetime import timedelta

    from devicegate.core.timeutil import now_utc
    from devicegate.ingest.wiring import http_pipeline

    record = record_with("c0ffee00-0000-4000-8000-00000000000d", remark="r" * 400_000)
    pipeline = http_pipeline("face-terminal")
    assert push(record) == (200, SUCCESS)
    monkeypatch.setattr(pipeline, "clock", lambda: now_utc() + timedelta(days=2))
    assert push(record) == (200, SUCCESS)
    # Then there is one event and one offloaded object
    assert len(stack.event_items("face-terminal")) == 1
    assert len([k for k in objects(stack) if k.startswith("payloads/")]) == 1


def test_a_scrubbing_failure_keeps_a_summary_never_the_payload(stack, monkeypatch):
    # Given a refused record holding a PIN, and the quarantine's scrubbing failing (a bug)
    from devicegate.vendors.face_terminal.adapter import FaceTerminalAdapter

    def broken(self, push):
        raise RuntimeError("scrubbing bug")

    monkeypatch.setattr(FaceTerminalAdapter, "quarantine_body", broken)
    body = json.loads(load_event("face-terminal/http-variation-record-with-photo-and-pin.json")["body"])
    body["data"]["timestamp"] = "not a time"
    pin = body["data"]["user"]["pin"]
    event = with_body(load_event("face-terminal/http-variation-record-with-photo-and-pin.json"), json.dumps(body))
    # When the terminal pushes it
    response = webhook_app.lambda_handler(event, context("FaceTerminalWebhookFunction"))
    # Then it is refused and kept, as a summary that holds no PIN
    assert response["statusCode"] == 400
    [kept] = stack.quarantine_items("face-terminal")
    assert str(pin) not in json.dumps(kept) and json.loads(kept["body"])["redacted"]
