"""SenseLink code tables (senselink-websocket-push.ja.txt), translated from the vendor's Japanese."""

from __future__ import annotations

from devicegate.core.validation import name_of  # noqa: F401  (models call codes.name_of)
from devicegate.core.vocabulary import AlarmStatus, Severity

ENTRY_MODE = {1: "face", 2: "QR code", 3: "card", 4: "face and card", 5: "ID card", 6: "face and ID card"}

ABNORMAL_TYPE = {
    0: "none",
    10001: "ID card does not match",
    10002: "card does not match",
    10003: "code does not match",
    20001: "visitor outside validity period",
    20002: "outside access hours",
    30001: "invalid ID card",
    30002: "invalid IC card",
    30003: "invalid QR code",
    40001: "abnormal body temperature",
    50001: "no mask",
}

# The vendor's table reads "0: unknown, 0: not worn, 2: worn"; 1 is taken to be "not worn".
MASK = {0: "unknown", 1: "no mask", 2: "mask worn"}

GROUP_TYPE = {1: "employee group", 2: "visitor group", 5: "deny-list group"}

ALARM_LEVEL = {1: "alert", 2: "abnormal"}

ALARM_CODE = {
    10001: "device theft (tamper)",
    10002: "door forced open",
    10003: "door sensor timeout",
    10004: "password cracking",
    10005: "unsupported alarm",
    10006: "thermal camera connection abnormal",
    20001: "camera dirty",
    20002: "non-living attack",
    20003: "fire alarm",
    30001: "device offline",
    40001: "feature extraction error",
}

ALARM_STATUS = {1: "active", 2: "releasing", 3: "released"}

RESOLVE_OPTION = {0: "no release needed", 1: "release on the device only", 2: "remote release only",
                  3: "release on the device or remotely"}

#: Alarm status -> lifecycle status and its rank (later steps win a tie on time).
ALARM_LIFECYCLE: dict[int, tuple[AlarmStatus, int]] = {1: ("open", 1), 2: ("releasing", 2), 3: ("released", 3)}

#: Alarm code -> severity (core/vocabulary.py); codes not listed are a `warning`.
ALARM_SEVERITY: dict[int, Severity] = {10001: "critical", 10002: "critical", 10004: "critical", 20002: "critical", 20003: "critical",
                  10005: "info", 20001: "info"}
