"""Jointech code tables, checked against values read in the vendor specification."""

import pytest

from devicegate.vendors.jointech.codes import (
    ALARM_TYPES,
    EVENT_TYPES,
    LOC_TYPES,
    NETWORK_TYPES,
    REPORT_TYPES,
    SENSOR_TYPES,
    SLAVE_EVENT_TYPES,
    UNLOCK_TYPES,
    name_of,
)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1, "Speeding alarm"),
        (40, "Lock rope cut"),
        (44, "Swiping illegal RFID card"),  # the MQTT alarm example sends 44
        (45, "Low power"),
        (46, "Back cover opened"),  # the webhook alarm example sends 46
        (198, "Slave sensor signal lost"),
        (407, "Late alarm"),
        (10000, "Custom alarm"),
    ],
)
def test_alarm_codes_read_from_the_spec(code, expected):
    # Given an alarm type code listed in the spec's "Alarm Type Description" table
    # When it is looked up
    name = name_of(ALARM_TYPES, code)
    # Then the vendor's name is returned, in sentence case
    assert name == expected


def test_alarm_table_has_every_code_of_both_copies():
    # Given the two "Alarm Type Description" tables of the spec
    # (webhook section and MQTT section), counted by listing the code/name pairs
    # of each copy with a script: 125 codes in the webhook copy (1 ... 407, then
    # 10000), 124 in the MQTT copy (the same codes and names, without 10000)
    # When the merged table is inspected
    codes = set(ALARM_TYPES)
    # Then it holds the union: 125 codes, 10000 included, and no gap code such as 14
    assert len(codes) == 125
    assert 10000 in codes
    assert 14 not in codes
    assert min(codes) == 1
    assert max(codes - {10000}) == 407


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1, "Unlock"),
        (2, "Lock"),
        (19, "Pull out the locking rope / press the unlocking button (JT705A/JT705C)"),
        (20, "Enter the starting point"),
        (10000, "Custom event"),
    ],
)
def test_event_codes_read_from_the_spec(code, expected):
    # Given an event type code from the "Event Type Description" table
    # When it is looked up
    # Then the vendor's name is returned
    assert name_of(EVENT_TYPES, code) == expected


def test_event_table_has_codes_1_to_20_and_10000():
    # Given the event table
    # When its codes are listed
    # Then they are exactly 1..20 and 10000
    assert set(EVENT_TYPES) == set(range(1, 21)) | {10000}


def test_slave_event_8_and_20_share_one_name():
    # Given the slave eventType description, which writes "8/20:Pull out the lock rope event"
    # When both codes are looked up
    # Then both give that name
    assert name_of(SLAVE_EVENT_TYPES, 8) == "Pull out the lock rope event"
    assert name_of(SLAVE_EVENT_TYPES, 20) == "Pull out the lock rope event"


def test_slave_event_ends_of_the_list():
    # Given the slave eventType description, from "-1：none" to "30:NFC trigger"
    # When the ends and the codes the spec skips are looked up
    # Then -1 and 30 are named and 11..13 are not defined
    assert SLAVE_EVENT_TYPES[-1] == "None"
    assert SLAVE_EVENT_TYPES[0] == "Lock event"
    assert SLAVE_EVENT_TYPES[30] == "NFC trigger"
    assert not {11, 12, 13} & set(SLAVE_EVENT_TYPES)


def test_small_tables_read_from_the_spec():
    # Given the field descriptions of unLockType, sensorType, locType,
    # networkType and reportType
    # When a few codes are looked up
    # Then the names match the spec
    assert UNLOCK_TYPES[-1] == "Locked"
    assert UNLOCK_TYPES[3] == "Bluetooth unlock"
    assert set(UNLOCK_TYPES) == {-1, 1, 2, 3, 4, 5, 6}
    assert SENSOR_TYPES == {1: "JT126", 4: "JT709", 5: "JT801", 6: "JT802"}
    assert LOC_TYPES[0] == "No positioning"
    assert LOC_TYPES[3] == "Cells positioning"
    assert NETWORK_TYPES[4] == "4G"
    assert set(NETWORK_TYPES) == set(range(6))
    assert REPORT_TYPES == {0: "Real-time", 1: "Supplementary report", 2: "Alarm"}


def test_name_of_none_is_none():
    # Given no code (the field was absent from the push)
    # When it is looked up
    # Then there is no name
    assert name_of(ALARM_TYPES, None) is None


@pytest.mark.parametrize("code", [14, 999, -5])
def test_name_of_unknown_code_keeps_the_code(code):
    # Given a code the table does not define
    # When it is looked up
    # Then the code is kept in the result instead of being dropped
    assert name_of(ALARM_TYPES, code) == f"unknown ({code})"


def test_name_of_code_zero_is_not_treated_as_missing():
    # Given code 0, which is falsy but a real code in several tables
    # When it is looked up
    # Then its name is returned, and an undefined 0 is reported as unknown
    assert name_of(LOC_TYPES, 0) == "No positioning"
    assert name_of(ALARM_TYPES, 0) == "unknown (0)"


def test_every_name_is_clean_sentence_case():
    # Given all tables
    tables = [ALARM_TYPES, EVENT_TYPES, UNLOCK_TYPES, SENSOR_TYPES,
              SLAVE_EVENT_TYPES, LOC_TYPES, NETWORK_TYPES, REPORT_TYPES]
    # When every name is inspected
    names = [name for table in tables for name in table.values()]
    # Then none has stray whitespace and each starts with a capital letter or digit
    for name in names:
        assert name == name.strip()
        assert "  " not in name
        assert "\t" not in name and "\n" not in name
        assert name[0].isupper() or name[0].isdigit(), name
