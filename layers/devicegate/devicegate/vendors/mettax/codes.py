"""Mettax code tables, from the webhook push document (vendor-docs/mettax-webhook.txt).

Mettax alarm types are camelCase words, not numbers, and the document publishes no list of
them: ALARM_TYPES holds only the ones seen in the document and our fixtures. A type not listed is
kept as sent (its name is the type itself), so a new alarm never costs a record.
"""

from __future__ import annotations

from devicegate.core.validation import name_of  # noqa: F401  (models call codes.name_of)

ALARM_TYPES: dict[str, str] = {
    "laneShift": "lane departure",  # the document's AlarmData example
    "fatigueDriving": "fatigue driving",
}

#: AlarmFile `fileType`, sent as two-digit text ("00"); keyed by its number so "0" and 0 match too.
FILE_TYPES = {0: "picture", 1: "audio", 2: "audio and video", 3: "text", 4: "others"}

#: FaceCheck result (messageType "1") `compaResult`.
COMPARE_RESULTS = {
    0: "matching successful",
    1: "matching failed",
    2: "timeout",
    3: "function not enabled",
    4: "abnormal connection",
    5: "no driver picture",
    6: "terminal face library empty",
}

#: FaceCheck driver picture (messageType "2") `status`.
PICTURE_STATUS = {0: "failure", 1: "success"}

#: RFID `status`.
RFID_STATUS = {1: "enter", 2: "exit"}


#: Alarm types that call for action now (core/vocabulary.py severity `critical`); every other
#: type, listed or not, is a `warning` (the document publishes no list to judge by).
CRITICAL_ALARM_TYPES = frozenset({"collision", "forwardCollision", "pedestrianCollision", "rollover", "sos"})


def alarm_severity(alarm_types: list[str]) -> str:
    return "critical" if CRITICAL_ALARM_TYPES.intersection(alarm_types) else "warning"


def alarm_type_name(alarm_type: str) -> str:
    return ALARM_TYPES.get(alarm_type, alarm_type)
