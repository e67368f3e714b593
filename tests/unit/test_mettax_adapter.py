"""Mettax adapter: the documented records through every URL style and body encoding, the derived
fields, face-check parts and their assembly, and the errors a sender can act on. No AWS."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from devicegate.core.adapter import Outcome
from devicegate.core.envelope import NormalizedEvent, Part, RawPush
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.vendors.mettax.adapter import MettaxAdapter, detect_kind, state_patch
from tests.support import load_record

ADAPTER = MettaxAdapter()
RECEIVED = datetime(2026, 2, 7, 7, 30, 5, tzinfo=UTC)  # after every documented record (the latest: November 2025)
RECEIVED_ISO = "2026-02-07T07:30:05.000Z"
FACE_ID = "333777444585_198669678696111100"
BOUNDARY = "----MettaxBoundary7MA4YWxkTrZu0gW"


def _url_hash(name: str) -> str:
    return hashlib.sha256(load_record("mettax", name)["fileUrl"].encode()).hexdigest()[:16]


# fixture -> (kind, event id (None: content-derived), occurredAt, link)
EXPECTED = {
    "doc-gps": ("gps", "gps-105045133913_1234567893043003392-1724793630", "2024-08-27T21:20:30.000Z",
                "105045133913_1234567893043003392"),
    "doc-alarm": ("alarm", "alarm-1843895343409950720-1735296575", "2024-12-27T10:49:35.000Z",
                  "105045133913_1843895343409950720"),
    "doc-device-info": ("device-info", "device-info-105045133913_1234567895482220544-1724808355",
                        "2024-08-28T01:25:55.000Z", "105045133913_1234567895482220544"),
    "doc-passthrough": ("passthrough", "passthrough-105045133913_1878721045339443200-1736756976",
                        "2025-01-13T08:29:36.000Z", "105045133913_1878721045339443200"),
    "doc-alarm-file": ("alarm-file", f"alarm-file-1924683352005763072-{_url_hash('doc-alarm-file')}", RECEIVED_ISO,
                       "alarm:1924683352005763072"),
    "doc-sensor": ("sensor", None, "2025-01-13T08:29:36.000Z", "1924683352005763072"),
    "doc-capture-file": ("capture-file", f"capture-file-1009759838-1-{_url_hash('doc-capture-file')}", RECEIVED_ISO,
                         "capture:1009759838"),
    "doc-face-check-result": ("face-check", f"face-check-{FACE_ID}", "2025-11-07T07:26:39.000Z", FACE_ID),
    "doc-face-check-picture": ("face-check", f"face-check-{FACE_ID}", RECEIVED_ISO, FACE_ID),
    "doc-rfid": ("rfid", "rfid-333845765947_1988448015257571328-1762917925", "2025-11-12T03:25:25.000Z",
                 "333845765947_1988448015257571328"),
    "variation-gps-backfill": ("gps", "gps-105045133913_1234567880000000000-1724782200", "2024-08-27T18:10:00.000Z",
                               "105045133913_1234567880000000000"),
    "variation-alarm-multiple-types": ("alarm", "alarm-1843895343409950721-1735296575", "2024-12-27T10:49:35.000Z",
                                       "105045133913_1843895343409950721"),
    "variation-device-info-minimal": ("device-info", "device-info-105045133913_1234567895733878784-1724808415",
                                      "2024-08-28T01:26:55.000Z", "105045133913_1234567895733878784"),
}


# --- how Mettax may send `data` ----------------------------------------------------------------

def json_string(record):
    return json.dumps({"data": json.dumps(record, ensure_ascii=False)}, ensure_ascii=False).encode(), "application/json"


def json_object(record):
    return json.dumps({"data": record}, ensure_ascii=False).encode(), "application/json;charset=UTF-8"


def form(record):
    return urlencode({"data": json.dumps(record, ensure_ascii=False)}).encode(), "application/x-www-form-urlencoded"


def multipart(record, charset=""):
    part = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="data"\r\n'
            + (f"Content-Type: text/plain; charset={charset}\r\n" if charset else "") + "\r\n").encode()
    text = json.dumps(record, ensure_ascii=False).encode(charset or "utf-8")
    return part + text + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


ENCODINGS = {"json-string": json_string, "json-object": json_object, "form": form, "multipart": multipart}


def push(body: bytes, content_type: str | None = "application/json", service: str | None = None) -> RawPush:
    return RawPush("mettax", "http", body, route={"service": service} if service else {},
                   headers={"content-type": content_type} if content_type else {})


def normalize(record, encoding="json-string", service=None) -> list[NormalizedEvent]:
    body, content_type = ENCODINGS[encoding](record)
    return ADAPTER.normalize(push(body, content_type, service), RECEIVED)


def one(record, encoding="json-string", service=None) -> NormalizedEvent:
    events = normalize(record, encoding, service)
    assert len(events) == 1
    return events[0]


def invalid(body: bytes, content_type: str | None = "application/json", service: str | None = None) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as info:
        ADAPTER.normalize(push(body, content_type, service), RECEIVED)
    return info.value


def fields_of(error: InvalidPayload) -> list[str]:
    return [p.field for p in error.problems]


# --- every documented record, every way it may come ---------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("by_service", [False, True], ids=["one-url", "service-url"])
@pytest.mark.parametrize("name", EXPECTED)
def test_every_record_through_every_url_and_encoding(name, by_service, encoding):
    # Given a documented record (repaired) and how it is sent
    kind, event_id, occurred_at, link = EXPECTED[name]
    record = load_record("mettax", name)
    # When it is pushed to the service URL or the single URL
    event = one(record, encoding, kind if by_service else None)
    # Then it is the right kind, with the vendor's id, time and link
    assert (event.vendor, event.kind, event.occurredAt, event.link) == ("mettax", kind, occurred_at, link)
    assert event.deviceId == record["deviceId"] and event.receivedAt == RECEIVED_ISO
    if event_id is None:
        assert re.fullmatch(r"[0-9a-f]{32}", event.eventId)  # content-derived (sensor data)
    else:
        assert event.eventId == event_id
    # And the encoding and URL style change nothing in the event
    assert event == one(record, "json-string", kind)


@pytest.mark.parametrize("name", EXPECTED)
def test_kind_is_detected_from_the_fields_of_each_record(name):
    assert detect_kind(load_record("mettax", name)) == EXPECTED[name][0]


def test_detection_order_ties():
    # A face check picture has `status` but no position; an rfid read has both
    assert detect_kind({"deviceId": "d", "id": "x", "status": "1", "messageType": "2"}) == "face-check"
    assert detect_kind({"deviceId": "d", "id": "x", "status": 1, "lat": 1.0}) == "rfid"
    # An alarm file names its alarm in `id`, with fileUrl; only common fields are device info
    assert detect_kind({"deviceId": "d", "id": "1", "fileUrl": "https://x", "fileType": "00"}) == "alarm-file"
    assert detect_kind({"deviceId": "d", "id": "x", "reportCt": 1, "deviceCt": 1}) == "device-info"
    assert detect_kind({"deviceId": "d", "temperature": 3}) is None


# --- derived fields -----------------------------------------------------------------------------

def test_numbers_and_booleans_sent_as_strings_are_typed():
    # Given the documented face check result ("lat": "35.926264", "compaResult": "0")
    data = one(load_record("mettax", "doc-face-check-result")).data
    assert data["lat"] == 35.926264 and data["lon"] == 113.882785 and data["compaResult"] == 0
    # And an alarm whose every number and `actual` are text
    data = one(load_record("mettax", "variation-alarm-multiple-types")).data
    assert data["actual"] is True and data["backfill"] is False
    assert data["reportCt"] == 1735325375 and data["speed"] == 62.5 and data["lat"] == 24.067906
    # And "false" is false
    record = dict(load_record("mettax", "doc-gps"), actual="false", num="9")
    assert one(record).data["backfill"] is True and one(record).data["num"] == 9


def test_alarm_types_are_split_and_named():
    # Given an alarm with two types
    data = one(load_record("mettax", "variation-alarm-multiple-types")).data
    # Then each type is listed, with a name
    assert data["alarmType"] == "laneShift,fatigueDriving"
    assert data["alarmTypes"] == ["laneShift", "fatigueDriving"]
    assert data["alarmTypeNames"] == ["lane departure", "fatigue driving"]
    assert data["alarmFilesLink"] == "alarm:1843895343409950721"
    # And blanks are dropped, an unknown type is kept as sent
    record = dict(load_record("mettax", "doc-alarm"), alarmType=" laneShift, ,cameraLoss,")
    data = one(record).data
    assert data["alarmTypes"] == ["laneShift", "cameraLoss"] and data["alarmTypeNames"] == ["lane departure",
                                                                                             "cameraLoss"]


def test_face_check_similarity_percent_and_code_names():
    result = one(load_record("mettax", "doc-face-check-result")).data
    assert result["similarityPercent"] == 75.77 and result["compaResultName"] == "matching successful"
    picture = one(load_record("mettax", "doc-face-check-picture")).data
    assert picture["status"] == 1 and picture["statusName"] == "success"
    record = dict(load_record("mettax", "doc-face-check-result"), compaResult="6")
    assert one(record).data["compaResultName"] == "terminal face library empty"


def test_rfid_and_alarm_file_code_names():
    assert one(load_record("mettax", "doc-rfid")).data["statusName"] == "enter"
    assert one(load_record("mettax", "doc-alarm-file")).data["fileTypeName"] == "picture"
    record = dict(load_record("mettax", "doc-alarm-file"), fileType="02")
    assert one(record).data["fileTypeName"] == "audio and video"


def test_passthrough_message_is_decoded_and_kept():
    # Given the documented passthrough: `message` is JSON inside the JSON inside `data`
    record = load_record("mettax", "doc-passthrough")
    data = one(record).data
    # Then both serial ports are decoded, and the message is kept as sent
    assert set(data["messageDecoded"]) == {"com1", "com2"} and data["messageDecoded"]["com1"].startswith("f5ff")
    assert data["message"] == record["message"] and "messageNote" not in data


def test_passthrough_message_that_is_not_json_is_kept_with_a_note():
    # Given serial data that is not JSON at all
    record = dict(load_record("mettax", "doc-passthrough"), message='{"com1":"f5ff')
    data = one(record).data
    # Then nothing is dropped: the message as received, no decoded copy, a note why
    assert data["message"] == '{"com1":"f5ff' and "messageDecoded" not in data
    assert data["messageNote"] == "message is not JSON; kept as received"


def test_backfilled_data_is_marked_and_sets_no_state():
    # Given a GPS fix sent late (actual false) and a real-time one
    late = one(load_record("mettax", "variation-gps-backfill"))
    live = one(load_record("mettax", "doc-gps"))
    # Then the late one is marked backfill, stamped with its own time, and owns no state (its
    # deviceCt may be the upload time, so it could otherwise pass for the newest position)
    assert late.data["backfill"] is True and live.data["backfill"] is False
    assert late.occurredAt < live.occurredAt
    assert ADAPTER.state_patch({"kind": "gps", "data": late.data}) == {}
    assert ADAPTER.vocabulary_patch(envelope(late)) == {}
    # ...while it still says where the vehicle was, on its event
    assert json.loads(late.factsJson)["position"]["latitude"] == late.data["lat"]
    assert ADAPTER.vocabulary_patch(envelope(live))["position"]["latitude"] == live.data["lat"]


def test_device_local_time_and_utc_offset():
    # Given reportCt 8 hours ahead of deviceCt (plus 15 s of transit)
    data = one(load_record("mettax", "doc-gps")).data
    # Then the device's wall clock and its zone are spelled out
    assert data["reportedLocal"] == "2024-08-28T05:20:45" and data["deviceUtcOffset"] == "+08:00"
    # And a device west of UTC, or clocks further apart than any zone, are handled
    base = load_record("mettax", "doc-gps")
    assert one(dict(base, reportCt=base["deviceCt"] - 5 * 3600 + 20)).data["deviceUtcOffset"] == "-05:00"
    assert one(dict(base, reportCt=base["deviceCt"] + 5 * 3600 + 45 * 60)).data["deviceUtcOffset"] == "+05:45"
    far = one(dict(base, reportCt=base["deviceCt"] + 15 * 3600)).data
    assert "deviceUtcOffset" not in far and far["reportedLocal"]


def test_unknown_vendor_fields_are_kept():
    data = one(dict(load_record("mettax", "doc-gps"), hdop="0.9", altitude=12)).data
    assert data["hdop"] == "0.9" and data["altitude"] == 12


def test_retransmission_gets_the_same_id_and_each_file_its_own():
    record = load_record("mettax", "doc-alarm-file")
    assert one(record).eventId == one(record, "form").eventId
    other = dict(record, fileUrl=record["fileUrl"].replace(".jpg", ".mp4"), fileType="02")
    assert one(other).eventId != one(record).eventId and one(other).link == one(record).link
    sensor = load_record("mettax", "doc-sensor")
    assert one(sensor).eventId == one(sensor, "multipart").eventId != one(dict(sensor, adc="01")).eventId


# --- face check: two messages, one event ---------------------------------------------------------

def test_each_face_check_message_is_a_part():
    result = one(load_record("mettax", "doc-face-check-result"))
    picture = one(load_record("mettax", "doc-face-check-picture"), "form", "face-check")
    needs = ("result", "picture")
    assert result.part == Part(group=FACE_ID, name="result", needs=needs)
    assert picture.part == Part(group=FACE_ID, name="picture", needs=needs)
    assert result.eventId == picture.eventId == f"face-check-{FACE_ID}"


def _parts(*names: str) -> dict[str, str]:
    events = {"result": one(load_record("mettax", "doc-face-check-result")),
              "picture": one(load_record("mettax", "doc-face-check-picture"))}
    return {name: events[name].dataJson for name in names}


def test_assembly_is_the_same_in_either_order():
    # Given both parts, arrived in either order (and assembled at different times)
    first = ADAPTER.assemble("333777444585", FACE_ID, _parts("result", "picture"), RECEIVED, "http")
    second = ADAPTER.assemble("333777444585", FACE_ID, _parts("picture", "result"),
                              datetime(2026, 2, 7, 7, 31, tzinfo=UTC), "http")
    # Then one event: same id, same data, the result's time
    assert first.eventId == second.eventId == f"face-check-{FACE_ID}"
    assert first.dataJson == second.dataJson and first.occurredAt == second.occurredAt == "2025-11-07T07:26:39.000Z"
    assert first.kind == "face-check" and first.link == FACE_ID and first.part is None
    data = first.data
    assert data["complete"] is True and data["missing"] == []
    assert data["similarityPercent"] == 75.77 and data["driverName"] == "zoeya11"
    assert data["imageUrl"].startswith("https://") and data["pictureStatus"] == 1
    assert data["pictureStatusName"] == "success" and "messageType" not in data
    assert (data["id"], data["deviceId"]) == (FACE_ID, "333777444585")


def test_assembly_with_a_part_missing_says_so():
    # Given the sweep with only the result (the picture is overdue)
    event = ADAPTER.assemble("333777444585", FACE_ID, _parts("result"), RECEIVED, "http")
    assert event.data["complete"] is False and event.data["missing"] == ["picture"]
    assert event.occurredAt == "2025-11-07T07:26:39.000Z" and "imageUrl" not in event.data
    # And with only the picture: no device time, so the time it is assembled
    event = ADAPTER.assemble("333777444585", FACE_ID, _parts("picture"), RECEIVED, "http")
    assert event.data["complete"] is False and event.data["missing"] == ["result"]
    assert event.occurredAt == RECEIVED_ISO and event.eventId == f"face-check-{FACE_ID}"


# --- batches and other body shapes --------------------------------------------------------------

def test_data_array_gives_one_event_per_record():
    records = [load_record("mettax", "doc-gps"), load_record("mettax", "doc-alarm")]
    body = json.dumps({"data": json.dumps(records)}).encode()
    events = ADAPTER.normalize(push(body), RECEIVED)
    assert [e.kind for e in events] == ["gps", "alarm"]


def test_a_bad_record_in_a_batch_is_refused_alone_and_named():
    # Given a batch whose second record has a latitude that is not a number
    bad = dict(load_record("mettax", "doc-gps"), lat="north")
    records = [load_record("mettax", "doc-gps"), bad, load_record("mettax", "doc-alarm")]
    judged = ADAPTER.normalize(push(json.dumps({"data": records}).encode()), RECEIVED)
    # Then the others are events, and the bad one is refused naming its field, as a push of its own
    assert [type(j).__name__ for j in judged] == ["NormalizedEvent", "RefusedRecord", "NormalizedEvent"]
    refused = judged[1]
    assert [p.field for p in refused.problems] == ["data.1.lat"]
    assert json.loads(refused.body) == {"data": bad}
    # Which, pushed on its own, is refused again (a replay finds it still invalid)
    assert fields_of(invalid(refused.body)) == ["data.lat"]


def test_bare_record_body_and_sniffed_bodies():
    record = load_record("mettax", "doc-gps")
    reference = one(record)
    # A record without the `data` wrapper
    assert ADAPTER.normalize(push(json.dumps(record).encode()), RECEIVED) == [reference]
    # No content type: JSON told from a form by its first character
    assert ADAPTER.normalize(push(json_string(record)[0], None), RECEIVED) == [reference]
    assert ADAPTER.normalize(push(form(record)[0], "text/plain"), RECEIVED) == [reference]


def test_form_and_multipart_in_gbk():
    # Given a driver name in Chinese, sent in GBK (a charset Chinese senders declare)
    record = dict(load_record("mettax", "doc-rfid"), driverName="张三")
    body = urlencode({"data": json.dumps(record, ensure_ascii=False)}, encoding="gbk").encode()
    event = ADAPTER.normalize(push(body, "application/x-www-form-urlencoded; charset=GBK"), RECEIVED)[0]
    assert event.data["driverName"] == "张三"
    body, content_type = multipart(record, charset="gbk")
    assert ADAPTER.normalize(push(body, content_type), RECEIVED)[0].data["driverName"] == "张三"


# --- errors a sender can act on -----------------------------------------------------------------

def test_unknown_service_is_refused_without_echoing_it():
    error = invalid(json_string(load_record("mettax", "doc-gps"))[0], service="location" + "x" * 500)
    assert error.problems[0] == FieldProblem("service", "expected one of gps, alarm, device-info, passthrough, "
                                                        "alarm-file, sensor, capture-file, face-check, rfid")
    assert len(error.reason) < 60


@pytest.mark.parametrize("body, content_type", [
    (b'{"deviceData": "{}"}', "application/json"),
    (b"payload=%7B%7D", "application/x-www-form-urlencoded"),
    (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="other"\r\n\r\n{{}}\r\n--{BOUNDARY}--\r\n'.encode(),
     f"multipart/form-data; boundary={BOUNDARY}"),
], ids=["json", "form", "multipart"])
def test_missing_data_is_named(body, content_type):
    assert invalid(body, content_type).problems == [FieldProblem("data", "missing")]


def test_bad_json_in_data_is_named():
    error = invalid(json.dumps({"data": '{"deviceId": "1", "num": '}).encode())
    assert error.reason == "malformed JSON" and fields_of(error) == ["data"]
    assert fields_of(invalid(b"data=%7Bnot+json", "application/x-www-form-urlencoded")) == ["data"]


@pytest.mark.parametrize("name, drop, field", [
    ("doc-gps", "num", "data.num"), ("doc-alarm", "lat", "data.lat"), ("doc-alarm", "alarmId", "data.alarmId"),
    ("doc-device-info", "deviceCt", "data.deviceCt"), ("doc-alarm-file", "fileType", "data.fileType"),
    ("doc-capture-file", "channelId", "data.channelId"), ("doc-face-check-result", "similarity", "data.similarity"),
    ("doc-face-check-picture", "status", "data.status"), ("doc-rfid", "lon", "data.lon"),
    ("doc-passthrough", "message", "data.message"), ("doc-sensor", "adc", "data.adc"),
])
def test_missing_required_field_is_named(name, drop, field):
    # Given a record without a field its service requires, sent to that service's URL
    kind = EXPECTED[name][0]
    record = {k: v for k, v in load_record("mettax", name).items() if k != drop}
    with pytest.raises(InvalidPayload) as info:
        one(record, service=kind)
    # Then the answer names it
    assert field in fields_of(info.value)


def test_service_url_decides_the_model_not_the_fields():
    # Given a GPS fix pushed to the alarm URL: validated as an alarm, so alarm fields are missing
    error = invalid(json_string(load_record("mettax", "doc-gps"))[0], service="alarm")
    assert {"data.alarmType", "data.alarmId"} <= set(fields_of(error))


def test_identifiers_are_bounded():
    record = load_record("mettax", "doc-gps")
    assert fields_of(invalid(json_string(dict(record, deviceId="1" * 65))[0])) == ["data.deviceId"]
    assert fields_of(invalid(json_string(dict(record, deviceId="10 50"))[0])) == ["data.deviceId"]
    assert fields_of(invalid(json_string(dict(record, id="x" * 129))[0])) == ["data.id"]


def test_unknown_face_check_message_type_and_undetectable_record():
    record = dict(load_record("mettax", "doc-face-check-picture"), messageType="3")
    assert fields_of(invalid(json_string(record)[0])) == ["data.messageType"]
    error = invalid(json.dumps({"data": {"deviceId": "1", "temperature": 3}}).encode())
    assert fields_of(error) == ["data"] and "/hooks/mettax/{token}/{service}" in error.problems[0].problem


def test_data_that_is_not_a_record():
    assert invalid(json.dumps({"data": "[]"}).encode()).problems == [FieldProblem("data", "empty array")]
    assert invalid(json.dumps({"data": "42"}).encode()).problems == [
        FieldProblem("data", "expected a JSON object or array")]
    assert fields_of(invalid(b"[1, 2]")) == ["body"]


# --- answers, state and quarantine --------------------------------------------------------------

def test_answers():
    accepted = ADAPTER.answer(Outcome.ACCEPTED)
    assert (accepted.status, accepted.body, accepted.constant) == (200, {"code": 200, "message": "success"}, True)
    assert ADAPTER.answer(Outcome.DUPLICATE).body == accepted.body
    bad = ADAPTER.answer(Outcome.INVALID, [FieldProblem("data.num", "Field required")], "invalid gps record")
    assert bad.status == 400 and bad.body == {"code": 400, "message": "invalid payload: invalid gps record",
                                              "errors": [{"field": "data.num", "problem": "Field required"}]}
    assert ADAPTER.answer(Outcome.UNAVAILABLE).status == 503 and ADAPTER.answer(Outcome.FORBIDDEN).status == 403
    assert ADAPTER.answer(Outcome.TOO_LARGE, [FieldProblem("body", "big")], "payload too large").body["message"] == \
        "payload too large"


def envelope(event: NormalizedEvent) -> dict:
    return {"kind": event.kind, "data": event.data, "facts": json.loads(event.factsJson or "{}")}


def test_vocabulary_blocks():
    # The documented GPS fix: degrees and km/h as sent, satellites counted, timed by deviceCt
    gps = one(load_record("mettax", "doc-gps"))
    assert json.loads(gps.factsJson or "") == {"position": {
        "latitude": 22.577894, "longitude": 113.938709, "speedKmh": 0.0, "headingDeg": 154, "satellites": 9,
        "valid": True, "fixTime": gps.occurredAt}}
    # No fix (0/0) is no position
    assert one(dict(load_record("mettax", "doc-gps"), lat=0.0, lon=0.0)).factsJson is None
    # An alarm: its types as code, their names, a severity, the alarm id
    alarm = json.loads(one(load_record("mettax", "doc-alarm")).factsJson or "")
    assert alarm["alarm"] == {"code": "laneShift", "name": "lane departure", "severity": "warning",
                              "id": "1843895343409950720"}
    assert alarm["position"]["latitude"] == 24.067906
    # A complete face check is a passage by face; the similarity (0.01 % units) a score 0-1
    complete = ADAPTER.assemble("333777444585", FACE_ID, _parts("result", "picture"), RECEIVED, "http")
    passage = json.loads(complete.factsJson or "")["passage"]
    assert passage["method"] == "face" and passage["score"] == 0.7577
    partial = ADAPTER.assemble("333777444585", FACE_ID, _parts("picture"), RECEIVED, "http")
    assert partial.factsJson is None


def test_state_groups():
    gps = one(load_record("mettax", "doc-gps")).data
    assert state_patch("gps", gps) == {}
    info = state_patch("device-info", one(load_record("mettax", "doc-device-info")).data)
    assert info == {"deviceInfo": {"acc": 1, "blockedStatus": 1, "odometer": 7.3, "elec": 0, "ioStatus": 0,
                                   "signal": 27}}
    assert state_patch("alarm", one(load_record("mettax", "doc-alarm")).data) == {}
    rfid = state_patch("rfid", one(load_record("mettax", "doc-rfid")).data)
    assert rfid["driver"] == {"source": "rfid", "rfidNo": "7C3F88A9", "driverName": "zoeya11",
                              "licensePlate": "845765947", "status": 1, "statusName": "enter"}
    # A complete face check says who drives; an incomplete one only where the vehicle was
    complete = ADAPTER.assemble("333777444585", FACE_ID, _parts("result", "picture"), RECEIVED, "http").data
    assert state_patch("face-check", complete)["driver"]["similarityPercent"] == 75.77
    partial = ADAPTER.assemble("333777444585", FACE_ID, _parts("result"), RECEIVED, "http").data
    assert state_patch("face-check", partial) == {}


def test_quarantine_kind():
    assert ADAPTER.quarantine_kind(push(b"", service="gps")) == "gps"
    assert ADAPTER.quarantine_kind(push(b"")) == "unknown"
    assert ADAPTER.quarantine_kind(push(b"", service="../etc")) == "invalid-service"


@pytest.mark.parametrize("change, field", [
    ({"deviceCt": True}, "data.deviceCt"),
    ({"reportCt": False}, "data.reportCt"),
])
def test_a_boolean_time_is_refused_not_read_as_1970(change, field):
    record = dict(load_record("mettax", "doc-gps"), **change)
    with pytest.raises(InvalidPayload) as refused:
        one(record)
    assert field in [p.field for p in refused.value.problems]


def test_an_absurd_file_type_is_a_clear_error():
    record = dict(load_record("mettax", "doc-alarm-file"), fileType="0" * 5000)
    with pytest.raises(InvalidPayload) as refused:
        one(record)
    assert "data.fileType" in [p.field for p in refused.value.problems]


def test_passthrough_text_that_is_not_valid_unicode_is_kept_as_received():
    record = dict(load_record("mettax", "doc-passthrough"), message='{"com1":"\\ud800"}')
    data = one(record).data
    assert data["message"] == record["message"] and "messageDecoded" not in data
    assert "not valid Unicode" in data["messageNote"]
