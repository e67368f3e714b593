"""Time sanity (core/timeutil.py): every vendor time read in its documented unit, times beyond the
horizon refused naming the field, and a record stamped ahead stored (its state ordering is in
test_outbox_batches.py and tests/integration/test_time_ahead_of_receipt.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devicegate.core.envelope import RawPush
from devicegate.core.errors import InvalidPayload
from devicegate.core.timeutil import (
    CLOCK_TOLERANCE,
    FUTURE_HORIZON,
    check_horizon,
    from_epoch,
    from_epoch_digits,
    iso_utc,
    state_time,
)
from devicegate.vendors.ai_camera.adapter import AiCameraAdapter
from devicegate.vendors.face_terminal.adapter import FaceTerminalAdapter
from devicegate.vendors.jointech.adapter import JointechAdapter
from devicegate.vendors.mettax.adapter import MettaxAdapter
from devicegate.vendors.senselink.adapter import SenseLinkAdapter
from tests.support import load_record

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADAPTERS = {"jointech": JointechAdapter(), "face-terminal": FaceTerminalAdapter(), "mettax": MettaxAdapter(),
            "senselink": SenseLinkAdapter(), "ai-camera": AiCameraAdapter()}


def _set(document: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    target = document
    for name in parents:
        target = target[name]
    if value is None:
        target.pop(last, None)
    else:
        target[last] = value
    return document


def _push(vendor: str, document: dict) -> RawPush:
    if vendor == "mettax":  # the record travels as a JSON string in `data`
        return RawPush(vendor, "http", json.dumps({"data": json.dumps(document)}).encode(), route={"service": "gps"},
                       headers={"content-type": "application/json"})
    route = {"kind": "location"} if vendor == "jointech" else {}
    return RawPush(vendor, "http", json.dumps(document).encode(), route=route)


def normalize(vendor: str, document: dict):
    [event] = ADAPTERS[vendor].normalize(_push(vendor, document), RECEIVED)
    return event


def refused_fields(vendor: str, document: dict) -> list[str]:
    with pytest.raises(InvalidPayload) as refused:
        normalize(vendor, document)
    return [p.field for p in refused.value.problems]


# Each vendor's record and the field its event time comes from, with how that field is written.
def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _offset_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00")


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _millis(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


TIME_FIELDS = {
    # vendor, record: (the record, where its time is, how it is written, how the refusal names it)
    "jointech location": ("jointech", lambda: load_record("jointech", "webhook-location"), "gpsTime", _iso,
                          "gpsTime"),
    "face-terminal record": ("face-terminal", lambda: load_record("face-terminal", "doc-record"), "data.timestamp",
                             _seconds, "data.timestamp"),
    "face-terminal alarm": ("face-terminal", lambda: load_record("face-terminal", "doc-alarm-raised"),
                            "data.event_time", _millis, "data.event_time"),
    "mettax gps": ("mettax", lambda: load_record("mettax", "doc-gps"), "deviceCt", _seconds, "data.deviceCt"),
    "senselink record": ("senselink", lambda: load_record("senselink", "sub-record-employee"), "data.signTime",
                         _seconds, "data.signTime"),
    "senselink alarm": ("senselink", lambda: load_record("senselink", "sub-alarm-raised"), "data.alarmTime",
                        lambda m: m.strftime("%Y-%m-%d %H:%M:%S"), "data.alarmTime"),
    "ai-camera heartbeat": ("ai-camera", lambda: load_record("ai-camera", "doc-heartbeat"), "info.time",
                            _offset_iso, "info.time"),
}


@pytest.mark.parametrize("name", sorted(TIME_FIELDS))
@pytest.mark.parametrize("year", [2100, 5138, 9999])
def test_a_time_beyond_the_horizon_is_refused_naming_its_field(name, year):
    # Given a record stamped in the year 2100, 5138 or 9999
    vendor, record, path, written, field = TIME_FIELDS[name]
    document = _set(record(), path, written(datetime(year, 11, 16, 9, 46, 39, tzinfo=UTC)))
    # When it is normalized, Then it is refused naming the vendor's own field
    assert refused_fields(vendor, document) == [field]


@pytest.mark.parametrize("name", sorted(TIME_FIELDS))
def test_a_time_23_hours_ahead_is_stored_with_its_own_time(name):
    # Given a record stamped 23 hours after it is received (a zone mis-set on the device)
    vendor, record, path, written, _ = TIME_FIELDS[name]
    ahead = RECEIVED + timedelta(hours=23)
    # When it is normalized, Then it is an event with that time (state bounds it, not ingest)
    event = normalize(vendor, _set(record(), path, written(ahead)))
    assert event.occurredAt == iso_utc(ahead) and event.receivedAt == iso_utc(RECEIVED)


def test_the_horizon_is_a_week_after_receipt():
    check_horizon(RECEIVED + FUTURE_HORIZON, RECEIVED)
    with pytest.raises(ValueError):
        check_horizon(RECEIVED + FUTURE_HORIZON + timedelta(seconds=1), RECEIVED)


@pytest.mark.parametrize("name", ["face-terminal record", "mettax gps", "senselink record"])
def test_253402300800_seconds_is_refused_not_read_as_1978(name):
    # Given the first second of the year 10000 in a field documented in seconds
    vendor, record, path, _, field = TIME_FIELDS[name]
    # Then it is refused naming the field, not read as milliseconds (1978)
    assert refused_fields(vendor, _set(record(), path, 253402300800)) == [field]
    with pytest.raises(ValueError, match="beyond the year 9999"):
        from_epoch(253402300800, "s")


# --- each vendor's unit -----------------------------------------------------------------------

MOMENT = datetime(2023, 5, 18, 3, 43, 53, tzinfo=UTC)  # 1684381433 s, 1684381433000 ms


@pytest.mark.parametrize("name", ["face-terminal record", "mettax gps", "senselink record"])
def test_seconds_fields_read_seconds_and_refuse_milliseconds(name):
    vendor, record, path, _, field = TIME_FIELDS[name]
    # Given the field in seconds, as a number and as digits, Then it is that moment
    assert normalize(vendor, _set(record(), path, 1684381433)).occurredAt == iso_utc(MOMENT)
    assert normalize(vendor, _set(record(), path, "1684381433")).occurredAt == iso_utc(MOMENT)
    # Given the same moment in milliseconds, Then it is beyond the year 9999: refused naming the field
    assert refused_fields(vendor, _set(record(), path, 1684381433000)) == [field]


def test_face_terminal_alarm_event_time_is_milliseconds_whatever_its_size():
    # Given event_time documented as 13-digit milliseconds
    vendor, record, path, _, _ = TIME_FIELDS["face-terminal alarm"]
    assert normalize(vendor, _set(record(), path, 1684381433000)).occurredAt == iso_utc(MOMENT)
    # When a firmware sends seconds there, Then it is read as milliseconds (January 1970), not
    # re-read by its size: the stored time shows the firmware's mistake
    assert normalize(vendor, _set(record(), path, 1684381433)).occurredAt == "1970-01-20T11:53:01.433Z"


def test_face_terminal_visitor_times_are_milliseconds():
    record = load_record("face-terminal", "variation-visitor-strings-for-numbers")
    record["data"]["user"].update(guest_time_start=1684381433000, guest_time_end="1684381433000")
    data = normalize("face-terminal", record).data
    assert data["user"]["guest_time_start"] == data["user"]["guest_time_end"] == iso_utc(MOMENT)


def test_jointech_times_are_iso_text_and_a_number_there_is_refused():
    # Given gpsTime as epoch seconds (the vendor documents UTC text)
    record = dict(load_record("jointech", "webhook-location"), gpsTime=1684381433)
    # Then it is refused naming gpsTime rather than guessed
    assert refused_fields("jointech", record) == ["gpsTime"]


def test_jointech_slave_timestamp_is_milliseconds():
    # Given a slave record timed only by subGpsTimestamp (epoch ms)
    record = dict(load_record("jointech", "webhook-sublock"), subGpsTimestamp=1701937790000)
    del record["subGpsTime"]
    [event] = JointechAdapter().normalize(RawPush("jointech", "http", json.dumps(record).encode(),
                                                  route={"kind": "sublock"}), RECEIVED)
    assert event.occurredAt == "2023-12-07T08:29:50.000Z"
    # And beyond the horizon it is refused naming it
    record["subGpsTimestamp"] = _millis(datetime(2100, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidPayload) as refused:
        JointechAdapter().normalize(RawPush("jointech", "http", json.dumps(record).encode(),
                                            route={"kind": "sublock"}), RECEIVED)
    assert [p.field for p in refused.value.problems] == ["subGpsTimestamp"]


@pytest.mark.parametrize("text, expected", [
    ("1684381433", iso_utc(MOMENT)),  # 10 digits: seconds
    ("1684381433000", iso_utc(MOMENT)),  # 13 digits: milliseconds
    ("2023-05-18 03:43:53", iso_utc(MOMENT)),  # server-local text (SENSELINK_TIMEZONE unset: UTC)
])
def test_senselink_alarm_times_read_digits_by_their_count(text, expected):
    vendor, record, path, _, _ = TIME_FIELDS["senselink alarm"]
    assert normalize(vendor, _set(record(), path, text)).occurredAt == expected


@pytest.mark.parametrize("text", ["16843814330", "168438143300", "16843814330000"])
def test_senselink_alarm_digits_of_neither_length_are_refused(text):
    vendor, record, path, _, field = TIME_FIELDS["senselink alarm"]
    assert refused_fields(vendor, _set(record(), path, text)) == [field]


@pytest.mark.parametrize("value, expected", [
    (1684381433, iso_utc(MOMENT)), (1684381433000, iso_utc(MOMENT)),
    (16843814330, iso_utc(RECEIVED)),  # neither unit: receipt stands in (the time is kept in data)
])
def test_ai_camera_undocumented_operator_epochs_by_digit_count(value, expected):
    record = load_record("ai-camera", "variation-unknown-operator")
    record["info"]["time"] = value
    assert normalize("ai-camera", record).occurredAt == expected


# --- the rules themselves -----------------------------------------------------------------------

@pytest.mark.parametrize("value, unit", [
    ("12_000", "s"), (" 1684381433", "s"), ("0x10", "s"), ("1e9", "s"), ("-5", "s"), (-5, "s"), (True, "s"),
    ("1684381433.5", "ms"), (float("nan"), "ms"), (float("inf"), "s"), ("١٢٣", "s"),
])
def test_epochs_are_numbers_or_plain_digits(value, unit):
    with pytest.raises(ValueError):
        from_epoch(value, unit)


def test_seconds_may_carry_a_fraction():
    assert from_epoch("1684381433.250", "s") == MOMENT + timedelta(milliseconds=250)
    assert from_epoch(1684381433.25, "s") == MOMENT + timedelta(milliseconds=250)


@pytest.mark.parametrize("value", [1684381433, "1684381433", 1684381433000, "1684381433000", "1684381433.0"])
def test_the_digit_rule_reads_10_digits_as_seconds_and_13_as_milliseconds(value):
    assert from_epoch_digits(value) == MOMENT


@pytest.mark.parametrize("value", [16843814330, 168438143300, 16843814330000, "", "abc"])
def test_the_digit_rule_refuses_other_counts(value):
    with pytest.raises(ValueError):
        from_epoch_digits(value)


def test_state_time_is_bounded_by_the_tolerance():
    assert state_time(RECEIVED + timedelta(hours=23), RECEIVED) == RECEIVED + CLOCK_TOLERANCE
    assert state_time(RECEIVED - timedelta(hours=1), RECEIVED) == RECEIVED - timedelta(hours=1)
    assert state_time(RECEIVED + timedelta(minutes=2), RECEIVED) == RECEIVED + timedelta(minutes=2)
