"""Mettax end to end in one process: webhook (both URL styles, every body encoding) -> DynamoDB
(moto) -> stream -> outbox -> SQS, plus the two-part face check, backfill and links."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from devicegate.store.queries import device_assemblies, device_state, linked_events
from functions.device_sweep import app as sweep_app
from functions.mettax_webhook import app as webhook_app
from functions.outbox import app as outbox_app
from tests.support import context, load_event, load_record, with_body

SUCCESS = {"code": 200, "message": "success"}
# Every sample stored once and published once, a repeat storing nothing: test_vendor_contract.py.


def post(event: dict) -> tuple[int, dict]:
    response = webhook_app.lambda_handler(event, context("MettaxWebhookFunction"))
    return response["statusCode"], json.loads(response["body"])


def push_record(record: dict, service: str | None = None, encoding: str = "json-string") -> tuple[int, dict]:
    """POST one record as Mettax would: `data` as a JSON string in a JSON body, as an object,
    as a form field, or as a multipart field; on the service URL or the single URL."""
    event = copy.deepcopy(load_event("mettax/http-doc-gps.json"))
    if service is None:
        event["routeKey"] = event["requestContext"]["routeKey"] = "POST /hooks/mettax/{token}"
        event["pathParameters"] = {"token": "dev-token"}
    else:
        event["pathParameters"] = {"token": "dev-token", "service": service}
    text = json.dumps(record, ensure_ascii=False)
    if encoding == "json-string":
        return post(with_body(event, json.dumps({"data": text}), **{"content-type": "application/json"}))
    if encoding == "json-object":
        return post(with_body(event, json.dumps({"data": record}), **{"content-type": "application/json"}))
    if encoding == "form":
        return post(with_body(event, urlencode({"data": text}),
                              **{"content-type": "application/x-www-form-urlencoded"}))
    boundary = "----mettaxboundary7MA4YWxk"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n{text}\r\n"
            f"--{boundary}--\r\n").encode()
    return post(with_body(event, body, **{"content-type": f"multipart/form-data; boundary={boundary}"}))


def run_outbox(stack) -> list[dict]:
    assert outbox_app.lambda_handler({"Records": stack.new_stream_records()},
                                     context("OutboxFunction")) == {"batchItemFailures": []}
    return stack.queue_messages()


@pytest.mark.parametrize("encoding", ["json-string", "json-object", "form", "multipart"])
@pytest.mark.parametrize("by_service", [True, False])
def test_each_kind_through_both_url_styles_and_every_body_encoding(stack, encoding, by_service):
    # Given one record of every kind except the two-part face check
    names = ["doc-gps", "doc-alarm", "doc-device-info", "doc-passthrough", "doc-alarm-file", "doc-sensor",
             "doc-capture-file", "doc-rfid"]
    for name in names:
        record = load_record("mettax", name)
        service = name[4:]
        # When it is pushed in this encoding, on its service URL or on the single URL
        status, answer = push_record(record, service if by_service else None, encoding)
        # Then it is accepted
        assert (status, answer) == (200, SUCCESS), name
    # And each is stored once, as its own kind, with the documented values decoded
    items = {i["kind"]: i for i in stack.event_items("mettax")}
    assert sorted(items) == sorted(n[4:] for n in names)
    assert items["gps"]["eventId"] == "gps-105045133913_1234567893043003392-1724793630"  # kind, id, deviceCt
    assert items["gps"]["occurredAt"] == "2024-08-27T21:20:30.000Z"  # deviceCt, UTC
    assert items["gps"]["data"]["reportedLocal"] == "2024-08-28T05:20:45"  # reportCt: the device's wall clock
    assert items["gps"]["data"]["deviceUtcOffset"] == "+08:00"
    assert items["alarm"]["data"]["alarmTypes"] == ["laneShift"]
    assert items["passthrough"]["data"]["messageDecoded"]["com1"].startswith("f5fffff5")
    assert items["alarm-file"]["data"]["fileTypeName"].lower().startswith("picture")
    assert len(run_outbox(stack)) == len(names)


def test_numbers_sent_as_strings_and_alarm_type_lists(stack):
    # Given an alarm whose numbers are strings and which carries two alarm types
    record = load_record("mettax", "variation-alarm-multiple-types")
    # When it is pushed
    assert push_record(record, "alarm") == (200, SUCCESS)
    # Then the numbers are numbers and the list is split
    [item] = stack.event_items("mettax")
    assert isinstance(item["data"]["lat"], float) and isinstance(item["data"]["reportCt"], int)
    assert item["data"]["alarmTypes"] == [t.strip() for t in record["alarmType"].split(",") if t.strip()]


def face_check(part: str) -> dict:
    return load_record("mettax", f"doc-face-check-{part}")


@pytest.mark.parametrize("order", [("result", "picture"), ("picture", "result")])
def test_a_face_check_is_one_event_and_one_message_whichever_part_comes_first(stack, order):
    first, second = order
    # Given the first part of a face check, pushed twice (retransmitted)
    assert push_record(face_check(first), "face-check") == (200, SUCCESS)
    assert push_record(face_check(first), "face-check") == (200, SUCCESS)
    # Then it is kept on the check's assembly item, and nothing reaches the queue yet
    assert run_outbox(stack) == []
    [check] = device_assemblies(stack.ddb, stack.table, "mettax", "333777444585")
    assert sorted(check["parts"]) == [first] and check["group"] == "333777444585_198669678696111100"

    # When the second part arrives, also twice, on the single URL this time
    assert push_record(face_check(second)) == (200, SUCCESS)
    assert push_record(face_check(second)) == (200, SUCCESS)
    messages = run_outbox(stack)

    # Then apps see one face check with both parts filled in, and the queue gets it once
    [check] = device_assemblies(stack.ddb, stack.table, "mettax", "333777444585")
    assert sorted(check["parts"]) == ["picture", "result"]
    [item] = stack.event_items("mettax")
    assert item["kind"] == "face-check" and item["eventId"] == "face-check-333777444585_198669678696111100"
    data = item["data"]
    assert data["complete"] is True and data["missing"] == []
    assert data["similarityPercent"] == 75.77 and data["compaResult"] == 0
    assert data["imageUrl"] == face_check("picture")["imageUrl"] and data["pictureStatus"] == 1
    assert item["occurredAt"] == "2025-11-07T07:26:39.000Z"  # the result's deviceCt
    [message] = messages
    assert message["type"] == "devicegate.mettax.face-check" and message["data"]["data"] == data
    # and the device's driver state shows the check
    driver = device_state(stack.ddb, stack.table, "mettax", "333777444585")["state"]["driver"]
    assert driver["similarityPercent"] == 75.77


def test_a_face_check_whose_picture_never_comes_is_published_incomplete_by_the_sweep(stack, monkeypatch):
    # Given only the comparison result of a face check
    assert push_record(face_check("result"), "face-check") == (200, SUCCESS)
    assert run_outbox(stack) == []

    def sweep(at: datetime) -> dict:
        monkeypatch.setattr(sweep_app, "now_utc", lambda: at)
        return sweep_app.lambda_handler({}, context("DeviceSweepFunction"))

    now = datetime.now(UTC)
    # When the sweep runs before the parts timeout (10 minutes), then after it, twice
    assert sweep(now + timedelta(minutes=5))["partsPublished"] == 0
    assert sweep(now + timedelta(minutes=11))["partsPublished"] == 1
    assert sweep(now + timedelta(minutes=22))["partsPublished"] == 0

    # Then one face check marked incomplete reaches the queue once
    [message] = run_outbox(stack)
    data = message["data"]["data"]
    assert message["type"] == "devicegate.mettax.face-check"
    assert data["complete"] is False and data["missing"] == ["picture"] and data["similarityPercent"] == 75.77
    # received when its part was, not when the sweep ran (it must not look like fresh contact)
    assert message["data"]["receivedAt"] < (now + timedelta(minutes=1)).isoformat()
    [check] = device_assemblies(stack.ddb, stack.table, "mettax", "333777444585")
    assert check["assembledEventId"] == message["id"]


def test_a_picture_arriving_after_the_sweep_published_the_check_incomplete_is_published_too(stack, monkeypatch):
    # Given a face check the sweep published incomplete (its picture did not come in time)
    assert push_record(face_check("result"), "face-check") == (200, SUCCESS)
    monkeypatch.setattr(sweep_app, "now_utc", lambda: datetime.now(UTC) + timedelta(minutes=11))
    assert sweep_app.lambda_handler({}, context("DeviceSweepFunction"))["partsPublished"] == 1
    [incomplete] = run_outbox(stack)
    # When the picture arrives after all, twice
    assert push_record(face_check("picture"), "face-check") == (200, SUCCESS)
    assert push_record(face_check("picture"), "face-check") == (200, SUCCESS)
    # Then the completed check reaches the queue once more, under its own id, complete
    [completed] = run_outbox(stack)
    assert incomplete["data"]["data"]["complete"] is False
    assert completed["id"] == f"{incomplete['id']}-complete"
    assert completed["data"]["data"]["complete"] is True and completed["data"]["data"]["imageUrl"]
    # and a later sweep adds nothing
    monkeypatch.setattr(sweep_app, "now_utc", lambda: datetime.now(UTC) + timedelta(minutes=30))
    sweep_app.lambda_handler({}, context("DeviceSweepFunction"))
    assert run_outbox(stack) == []


def test_a_part_too_large_to_share_the_check_item_is_kept_in_s3_and_assembled(stack):
    # Given a driver picture message of 300 KB (too large to share the check's item with its result)
    picture = dict(face_check("picture"), imageUrl="https://files.example/" + "x" * 300_000)
    # When it comes, then its result
    assert push_record(picture, "face-check") == (200, SUCCESS)
    assert push_record(face_check("result"), "face-check") == (200, SUCCESS)
    # Then nothing is refused: the part waited in S3, and the one assembled check holds both
    assert stack.quarantine_items("mettax") == []
    [event] = stack.event_items("mettax")
    assert event["data"]["complete"] is True and event["data"]["imageUrl"] == picture["imageUrl"]
    [message] = run_outbox(stack)
    assert message["data"]["data"]["imageUrl"] == picture["imageUrl"]


def test_a_large_part_whose_partner_never_comes_is_published_incomplete_by_the_sweep(stack, monkeypatch):
    picture = dict(face_check("picture"), imageUrl="https://files.example/" + "x" * 300_000)
    assert push_record(picture, "face-check") == (200, SUCCESS)
    later = datetime.now(UTC) + timedelta(minutes=11)  # past the parts timeout
    monkeypatch.setattr(sweep_app, "now_utc", lambda: later)
    assert sweep_app.lambda_handler({}, context("DeviceSweepFunction"))["partsPublished"] == 1
    [event] = stack.event_items("mettax")
    assert event["data"]["complete"] is False and event["data"]["imageUrl"] == picture["imageUrl"]


def test_backfilled_data_is_stored_marked_and_never_moves_state_backwards(stack):
    # Given a real-time GPS fix that set the vehicle's position
    assert push_record(load_record("mettax", "doc-gps"), "gps") == (200, SUCCESS)
    run_outbox(stack)
    before = device_state(stack.ddb, stack.table, "mettax", "105045133913")["state"]["position"]
    # When an older fix arrives as supplementary (actual: false) data after a dead zone
    backfill = load_record("mettax", "variation-gps-backfill")
    assert push_record(backfill, "gps") == (200, SUCCESS)
    [message] = run_outbox(stack)
    # Then it is stored and published marked as backfill...
    assert message["data"]["data"]["backfill"] is True
    stored = {i["eventId"]: i for i in stack.event_items("mettax")}
    assert stored[f"gps-{backfill['id']}-{backfill['deviceCt']}"]["data"]["backfill"] is True
    # ...and the position is still the newer one
    after = device_state(stack.ddb, stack.table, "mettax", "105045133913")["state"]["position"]
    assert after == before and after["latitude"] == 22.577894


def test_backfill_uploaded_after_a_live_fix_with_a_later_gateway_time_does_not_take_over(stack):
    # Given a live fix, then an hour-old fix uploaded after a dead zone: Mettax's gateway stamps
    # deviceCt when it receives the upload, so the old fix carries the *later* deviceCt
    live = load_record("mettax", "doc-gps")
    assert push_record(live, "gps") == (200, SUCCESS)
    run_outbox(stack)
    old = dict(live, id="105045133913_1234567899999999999", actual=False, lat=20.0, lon=110.0,
               reportCt=live["reportCt"] - 3600, deviceCt=live["deviceCt"] + 5)
    # When it is pushed
    assert push_record(old, "gps") == (200, SUCCESS)
    [message] = run_outbox(stack)
    # Then it is stored and published as backfill, and the position stays the live one
    assert message["data"]["data"]["backfill"] is True
    position = device_state(stack.ddb, stack.table, "mettax", "105045133913")["state"]["position"]
    assert position["latitude"] == live["lat"]


def test_links_tie_a_gps_fix_to_its_alarm_and_an_alarm_to_its_files(stack):
    # Given an alarm, the GPS fix with the same id, and a file of that alarm
    alarm = load_record("mettax", "doc-alarm")
    gps = dict(load_record("mettax", "doc-gps"), id=alarm["id"])
    alarm_file = dict(load_record("mettax", "doc-alarm-file"), id=alarm["alarmId"])
    for record, service in ((alarm, "alarm"), (gps, "gps"), (alarm_file, "alarm-file")):
        assert push_record(record, service) == (200, SUCCESS)
    # When apps query the links
    package = linked_events(stack.ddb, stack.table, "mettax", alarm["id"])
    stored_alarm = next(e for e in package if e["kind"] == "alarm")
    files = linked_events(stack.ddb, stack.table, "mettax", stored_alarm["data"]["alarmFilesLink"])
    # Then one Query finds the fix and the alarm, another the alarm's file
    assert sorted(e["kind"] for e in package) == ["alarm", "gps"]
    assert [e["kind"] for e in files] == ["alarm-file"] and files[0]["data"]["fileUrl"] == alarm_file["fileUrl"]


def push_batch(records: list[dict]) -> tuple[int, dict]:
    event = with_body(load_event("mettax/http-doc-gps.json"), json.dumps({"data": json.dumps(records)}))
    return post(event)


def test_a_batch_is_judged_record_by_record_and_a_retry_stores_nothing_twice(stack):
    # Given a push of three GPS records whose second has a latitude that is not a number
    base = load_record("mettax", "doc-gps")
    records = [dict(base, id=f"105045133913_{n}") for n in (1, 2, 3)]
    records[1]["lat"] = "north"
    # When Mettax pushes it
    status, answer = push_batch(records)
    # Then it is answered as delivered, naming the refused record's field
    assert status == 200 and answer["code"] == 200 and answer["message"].startswith("partially accepted")
    assert [e["field"] for e in answer["errors"]] == ["data.1.lat"]
    # And records 0 and 2 are stored and published once, record 1 is kept in quarantine alone
    assert sorted(i["data"]["id"] for i in stack.event_items("mettax")) == [records[0]["id"], records[2]["id"]]
    assert sorted(m["data"]["data"]["id"] for m in run_outbox(stack)) == [records[0]["id"], records[2]["id"]]
    [kept] = stack.quarantine_items("mettax")
    assert json.loads(kept["body"]) == {"data": records[1]} and kept["kind"] == "gps"

    # When Mettax sends the same push again
    assert push_batch(records)[0] == 200
    # Then nothing is stored or published twice; the refused record is seen again
    assert len(stack.event_items("mettax")) == 2 and run_outbox(stack) == []
    [kept] = stack.quarantine_items("mettax")
    assert kept["seenCount"] == 2


def test_a_batch_whose_every_record_is_refused_is_a_400_each_kept_alone(stack):
    base = load_record("mettax", "doc-gps")
    records = [dict(base, id=f"105045133913_{n}", lat="north") for n in (1, 2)]
    status, answer = push_batch(records)
    assert status == 400 and [e["field"] for e in answer["errors"]] == ["data.0.lat", "data.1.lat"]
    assert stack.event_items("mettax") == []
    assert sorted(json.loads(q["body"])["data"]["id"] for q in stack.quarantine_items("mettax")) == [
        records[0]["id"], records[1]["id"]]


def test_a_record_too_big_for_an_item_in_a_batch_is_offloaded_and_the_rest_stored(stack):
    # Given three records, the middle one 400 KB (too big for an item, under the 1 MB route cap)
    base = load_record("mettax", "doc-gps")
    records = [dict(base, id=f"105045133913_{n}") for n in (1, 2, 3)]
    records[1]["padding"] = "p" * 400_000
    # When they are pushed
    status, answer = push_batch(records)
    # Then every record is stored (the big one in S3, its item pointing there) and published
    assert (status, answer) == (200, SUCCESS)
    items = {i["data"].get("id") or i["dataRef"]: i for i in stack.event_items("mettax")}
    assert len(items) == 3 and sum("dataRef" in i for i in items.values()) == 1
    assert len(run_outbox(stack)) == 3


@pytest.mark.parametrize("body, field", [
    (json.dumps({"data": "{not json"}), "data"),
    (json.dumps({"nothing": 1}), "data"),
    (json.dumps({"data": json.dumps({"deviceId": "105045133913", "num": 9, "id": "x_1", "actual": True,
                                     "reportCt": 1, "deviceCt": "yesterday"})}), "data.deviceCt"),
])
def test_bad_input_gets_a_clear_400_and_is_kept_in_quarantine(stack, body, field):
    # Given a push that cannot be a Mettax GPS record
    event = with_body(load_event("mettax/http-doc-gps.json"), body)
    # When it is pushed
    status, answer = post(event)
    # Then it is refused with the field at fault, nothing is stored, and the payload is kept
    assert status == 400 and answer["code"] == 400
    assert field in [e["field"] for e in answer["errors"]]
    assert stack.event_items("mettax") == []
    [kept] = stack.quarantine_items("mettax")
    assert kept["body"] == body and kept["kind"] == "gps"


def test_an_unknown_service_and_a_wrong_token_are_refused(stack):
    event = load_event("mettax/http-doc-gps.json")
    unknown = copy.deepcopy(event)
    unknown["pathParameters"]["service"] = "teleport"
    assert post(unknown)[0] == 400
    forged = copy.deepcopy(event)
    forged["pathParameters"]["token"] = "not-the-token"
    status, answer = post(forged)
    assert (status, answer["code"]) == (403, 403)
    assert stack.event_items("mettax") == []
