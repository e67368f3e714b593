"""Jointech record models: the vendor's quirks, decoded as documented."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from devicegate.vendors.jointech.adapter import detect_kind, facts
from devicegate.vendors.jointech.models import Alarm, Event, ExpandInfo, Location, SubLock
from tests.support import load_record


def test_expand_info_sentinels_and_both_field_spellings():
    # Given the field table's spelling (fReportType) and the example's (networkType)
    info = ExpandInfo.model_validate({"temperature": "-1000.0", "fuels": "12.5,-1,-1", "fReportType": "1",
                                      "networkType": "4", "lux": "null", "humidity": "55"})
    dumped = info.model_dump(exclude_none=True)
    # Then -1000 and -1 mean "none", "null" is absent, codes get names
    assert "temperature" not in dumped and "lux" not in dumped
    assert dumped["fuels"] == [12.5, None, None]
    assert dumped["reportTypeName"] == "Supplementary report" and dumped["networkTypeName"] == "4G"


def test_location_battery_255_means_charging():
    record = load_record("jointech", "mqtt-location")
    location = Location.model_validate(record)
    assert location.charging is True and location.battery is None
    record["battery"] = "64"
    assert Location.model_validate(record).battery == 64


def test_status_minus_one_means_none():
    location = Location.model_validate(load_record("jointech", "webhook-location"))
    assert location.status.lockBar is None and location.status.lockStatus == 0


def test_ks_info_decodes_peripherals():
    location = Location.model_validate(load_record("jointech", "webhook-location-ksinfo"))
    sensor = location.ks.subInfo["112408000035"]
    assert sensor.temperature == 29.3 and location.ks.volValue == 23.5


def test_malformed_status_json_names_the_field():
    record = load_record("jointech", "webhook-location")
    record["statusJson"] = "{lockRope:0"
    with pytest.raises(ValidationError) as info:
        Location.model_validate(record)
    assert info.value.errors()[0]["loc"][0] == "statusJson"


def test_damaged_describe_stays_text_and_gets_no_details():
    # The vendor document's own example of a waybill describe is broken JSON: keep it as text
    record = load_record("jointech", "webhook-event")
    record["describe"] = '{" waybillGUID ":" 190 db1a2 -3 df1 "," waybillNo ":" 45435345 "}}'
    event = Event.model_validate(record)
    assert event.details is None and event.describe.startswith("{")


def test_unknown_codes_are_kept_with_a_placeholder_name():
    record = load_record("jointech", "webhook-alarm")
    record["alarmType"] = 9999
    assert Alarm.model_validate(record).alarmName == "unknown (9999)"


def test_sublock_humidity_zero_and_temperature_minus_1000_are_absent():
    sub = SubLock.model_validate(load_record("jointech", "webhook-sublock"))
    assert sub.humidity is None and sub.temperature is None and sub.subAssetID == "E0171E0365"


@pytest.mark.parametrize("name, kind", [
    ("webhook-location", "location"), ("webhook-alarm", "alarm"), ("webhook-event", "event"),
    ("webhook-cmd", "cmd"), ("webhook-sublock", "sublock"), ("mqtt-sublock", "sublock"),
])
def test_detect_kind_from_fields(name, kind):
    assert detect_kind(load_record("jointech", name)) == kind


AT = "2025-02-07T07:26:30.000Z"


def location(**fields) -> Location:
    return Location.model_validate({"assetId": "8052400203", "gpsTime": "2025-02-07T07:26:30Z", **fields})


def alarm(**fields) -> Alarm:
    return Alarm.model_validate({"assetId": "8052400203", "dateTime": "2025-02-07T07:26:30Z", **fields})


def test_no_fix_means_no_position():
    # The documented location has locType 0 and 0.0/0.0: that is "no fix", not the Gulf of Guinea
    found = facts(location(locType=0, latitude=0.0, longitude=0.0, battery=100), AT)
    assert found == {"power": {"batteryPct": 100, "external": False}}
    # 0/0 without a locType is no fix either; an alarm's position is one
    assert "position" not in facts(alarm(latitude=0.0, longitude=0.0, alarmType=44), AT)
    found = facts(alarm(latitude=22.6, longitude=113.9, alarmType=44), AT)
    assert found["position"] == {"latitude": 22.6, "longitude": 113.9, "valid": True, "fixTime": AT}
    assert found["alarm"]["code"] == "44" and found["alarm"]["name"]


def test_loc_type_0_alone_means_no_fix_whatever_the_coordinates_say():
    # A real-looking position with locType 0 (no positioning) is the device's last guess, not a fix:
    # only the locType rule keeps it out of state (the 0/0 rule does not apply here)
    found = facts(location(locType=0, latitude=22.6, longitude=113.9, battery=90), AT)
    assert "position" not in found and found["power"] == {"batteryPct": 90, "external": False}
    # The same coordinates with a fix (GPS, 1) are a position; a base station's is one, not a satellite fix
    found = facts(location(locType=1, latitude=22.6, longitude=113.9, speed=40.5, direction=270), AT)
    assert found["position"] == {"latitude": 22.6, "longitude": 113.9, "speedKmh": 40.5, "headingDeg": 270.0,
                                 "valid": True, "fixTime": AT}
    assert facts(location(locType=2, latitude=22.6, longitude=113.9), AT)["position"]["valid"] is False


def test_facts_read_declared_fields_only():
    # An extra field named like a declared one elsewhere (an alarm has no locType or direction) is the
    # vendor's unvalidated text: it neither hides the alarm's position nor becomes its heading
    found = facts(alarm(latitude=22.6, longitude=113.9, alarmType=44, locType=0, direction="north"), AT)
    assert found["position"] == {"latitude": 22.6, "longitude": 113.9, "valid": True, "fixTime": AT}
    # Battery 255 is the vendor's "charging": external power, no percentage
    assert facts(location(locType=1, latitude=22.6, longitude=113.9, battery=255), AT)["power"] == {"external": True}
