"""One vocabulary for the facts every vendor states its own way (docs/consuming.md "Vocabulary").

Beside the vendor's typed record (`data`), an event carries `facts`: up to four blocks, each with
one name per fact and one unit, the same whichever vendor sent it:

- `position`: where the device was (WGS84 degrees, km/h, degrees, metres, UTC time of the fix)
- `alarm`: what went wrong (the vendor's code and name, a severity, the lifecycle step)
- `passage`: someone at a door (granted, how, which way, who as a role, the match score)
- `power`: the device's supply (battery %, volts, on external power)

A block is there only when the record states its fact, and a field only when the record has
it (never null-filled). Each adapter builds the blocks from its typed model with the functions
below and hands them to make_event (`facts=`), which stores them as the event's `facts`. They are
plain dicts typed by these TypedDicts: built from validated data, they are not validated a second
time (the hot path). A person's id passes `person_id`, the deployment's PersonalData policy.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from pydantic_core import to_json

from devicegate.core import personal

#: How serious an alarm is, one scale for every vendor: `info` (a notice, nothing to do),
#: `warning` (look at it), `critical` (act now: tamper, forced door, fire, theft, collision).
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")

#: Where an alarm is in its lifecycle, for vendors whose alarms have one (face terminal,
#: SenseLink); the same words as the alarm lifecycle items (store/state.py).
AlarmStatus = Literal["open", "releasing", "release_failed", "released", "unknown"]

#: How a passage was claimed. Several factors together ("face and card") name the first, the
#: one that identified the person; `button` is the exit button inside, `remote` an app.
Method = Literal["face", "card", "qr", "pin", "idcard", "fingerprint", "password", "button", "remote", "unknown"]
METHODS: tuple[Method, ...] = ("face", "card", "qr", "pin", "idcard", "fingerprint", "password", "button",
                               "remote", "unknown")

Direction = Literal["in", "out", "unknown"]

#: Who passed, as the terminal knew them: never a name or a number (PersonalData decides ids).
Role = Literal["employee", "visitor", "stranger", "blacklist", "unknown"]
ROLES: tuple[Role, ...] = ("employee", "visitor", "stranger", "blacklist", "unknown")


class Position(TypedDict, total=False):
    latitude: float  # WGS84 degrees
    longitude: float  # WGS84 degrees
    speedKmh: float
    headingDeg: float  # 0-360, clockwise from north
    altitudeM: float
    satellites: int
    valid: bool  # the device had a fix (a record without one has no position block at all)
    fixTime: str  # ISO 8601 UTC


class Alarm(TypedDict, total=False):
    code: str  # the vendor's code, as text (numbers and words alike)
    name: str
    severity: Severity
    status: AlarmStatus
    id: str  # the vendor's alarm id, the same over the alarm's life


class Person(TypedDict, total=False):
    role: Role
    id: str  # the vendor's user id, as the PersonalData policy keeps it (absent when dropped)


class Passage(TypedDict, total=False):
    granted: bool
    method: Method
    direction: Direction
    person: Person
    score: float  # how well the face matched, 0-1 (Mettax's percent divided by 100)


class Power(TypedDict, total=False):
    batteryPct: float
    voltageV: float
    external: bool  # on external power (charging, mains)


class Facts(TypedDict, total=False):
    position: Position
    alarm: Alarm
    passage: Passage
    power: Power


#: The blocks, in the order docs/consuming.md lists them; each is a state group of the same name.
BLOCKS = ("position", "alarm", "passage", "power")


def facts_json(found: Facts) -> str:
    """The blocks as compact JSON text. pydantic-core's encoder: 1.3 us for a position block where
    the stdlib's takes 6 (its float formatting). Values come from validated records, so they are
    finite (core/jsonbody.py refuses NaN and Infinity); the keys are the builders' own."""
    return to_json(found).decode()


class Fields:
    """A typed model read like the record's dict (`.get`), computed fields included: one facts
    function serves an adapter's models and the dicts it assembles (Mettax's face check)."""

    __slots__ = ("_model",)

    def __init__(self, model: Any):
        self._model = model

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self._model, name, default)


def person_id(value: Any, category: str = "user_id") -> str | None:
    """A person's id as the deployment's PersonalData policy keeps it in records: as sent,
    masked, or not at all (core/personal.py)."""
    if value is None:
        return None
    action = personal.deployment_policy()[category]
    if action == "drop":
        return None
    return str(personal.mask(value) if action == "mask" else value)


def _present(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def position(latitude: float | None, longitude: float | None, *, speed_kmh: float | None = None,
             heading_deg: float | None = None, altitude_m: float | None = None, satellites: int | None = None,
             fix_time: str | None = None) -> Position | None:
    """A position block, or None without a fix: no coordinates, or 0/0 (what trackers send
    without one, not a place in the Gulf of Guinea)."""
    if latitude is None or longitude is None or (latitude == 0 and longitude == 0):
        return None
    # Built field by field, not through _present: every tracker record passes here (the hot path).
    block: Position = {"latitude": latitude, "longitude": longitude}
    if speed_kmh is not None:
        block["speedKmh"] = speed_kmh
    if heading_deg is not None:
        block["headingDeg"] = heading_deg
    if altitude_m is not None:
        block["altitudeM"] = altitude_m
    if satellites is not None:
        block["satellites"] = satellites
    block["valid"] = True
    if fix_time is not None:
        block["fixTime"] = fix_time
    return block


def alarm(code: str | int | None, name: str | None, severity: Severity, *, status: AlarmStatus | None = None,
          alarm_id: str | None = None) -> Alarm:
    return _present(code=None if code is None else str(code), name=name, severity=severity, status=status,
                    id=alarm_id)  # type: ignore[return-value]


def passage(granted: bool | None, method: Method, direction: Direction, role: Role, *,
            person_id: str | None = None, score: float | None = None) -> Passage:
    # Four decimals: what a match score means, and 12 bytes less per item than a float's 16 digits.
    return _present(granted=granted, method=method, direction=direction, person=_present(role=role, id=person_id),
                    score=None if score is None else round(score, 4))  # type: ignore[return-value]


def power(battery_pct: float | None = None, voltage_v: float | None = None,
          external: bool | None = None) -> Power | None:
    block: Power = {}
    if battery_pct is not None:
        block["batteryPct"] = battery_pct
    if voltage_v is not None:
        block["voltageV"] = voltage_v
    if external is not None:
        block["external"] = external
    return block or None


def method_of(entry_mode_name: str | None) -> Method:
    """The vocabulary's method from a terminal's entry-mode name ("face + card", "QR code"...):
    the first factor named."""
    if not entry_mode_name:
        return "unknown"
    text = entry_mode_name.casefold()
    for words, method in _METHOD_WORDS:
        if text.startswith(words):
            return method
    return "unknown"


_METHOD_WORDS: tuple[tuple[str, Method], ...] = (
    ("face", "face"), ("qr", "qr"), ("card", "card"), ("id card", "idcard"), ("job number", "pin"),
    ("pin", "pin"), ("exit button", "button"), ("health code", "qr"), ("fingerprint", "fingerprint"),
    ("password", "password"), ("remote", "remote"))


def role_of(name: str | None) -> Role:
    """The vocabulary's role from a vendor's user or group type name."""
    if name in ("employee", "visitor", "stranger", "blacklist"):
        return name  # type: ignore[return-value]
    if name in ("deny-list", "deny-list group"):
        return "blacklist"
    if name in ("employee group", "visitor group"):
        return name.split()[0]  # type: ignore[return-value]
    return "unknown"
