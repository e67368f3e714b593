"""Times: reading vendor times in their documented form and unit, the bounds on a time ahead of its
receipt, and the single output format used everywhere (sortable ISO 8601 UTC).

Reading (docs/architecture.md "Parsing rules", Times). Every vendor time field is documented as one form:
ISO 8601 text (`parse_time`), epoch seconds or epoch milliseconds (`from_epoch`), and is read as
exactly that. A number's size never picks its unit: 253402300800 in a seconds field is the year
10000 and refused, not 1978 read as milliseconds. The few fields a vendor may send in either unit
(named in their models, with the reason) use one rule by digit count (`from_epoch_digits`): up to
10 digits are seconds, exactly 13 are milliseconds, any other count is neither and refused.

Ahead of receipt. Device clocks drift, and zones mis-set by hours exist in the field, so a record
stamped after the gateway received it is stored, with two bounds:
- CLOCK_TOLERANCE: latest state orders a record by `state_time`, its time but at most this long
  after its receipt, so a record stamped a day ahead can hold a device's state against the
  correct-clock records after it for this long at most, not for a day;
- FUTURE_HORIZON: a time further ahead than this is no clock or zone error (UTC offsets span 26
  hours) but a broken value; `check_horizon` refuses it naming the field it came from (make_event
  calls it for every event's time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

#: How far ahead of its receipt a record's own time still orders latest state (state_time).
CLOCK_TOLERANCE = timedelta(minutes=5)
#: How far ahead of its receipt a record's time may be at all (check_horizon).
FUTURE_HORIZON = timedelta(days=7)

EpochUnit = Literal["s", "ms"]

#: An epoch sent as text: a JSON integer (no sign, blanks, underscores or fraction), or with a
#: fraction of a second for seconds.
_EPOCH_TEXT = {"s": re.compile(r"(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,9})?"), "ms": re.compile(r"0|[1-9][0-9]{0,18}")}
_UNIT_NAMES = {"s": "epoch seconds", "ms": "epoch milliseconds"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: object) -> datetime:
    """ISO 8601 text (Z, +hh, +hh:mm; naive = UTC) -> aware UTC. Numbers are refused: an epoch
    is read with its unit (from_epoch), never guessed."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if type(value) is not str:
        raise ValueError("expected an ISO 8601 time text")
    try:
        # fromisoformat (3.11+) takes "Z", "+08" and "+08:00", and runs in C: the fast path.
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("not an ISO 8601 time") from None
    try:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 has no UTC equivalent
        raise ValueError("time out of range") from None


def from_epoch(value: object, unit: EpochUnit) -> datetime:
    """An epoch in `unit` -> aware UTC: a JSON number, or its text as a JSON integer ("1685343715";
    seconds may have a fraction). ValueError for anything else, negative epochs and epochs no
    calendar holds (a millisecond value in a seconds field lands there, past the year 50000)."""
    if type(value) is str:
        if not _EPOCH_TEXT[unit].fullmatch(value):
            raise ValueError(f"expected {_UNIT_NAMES[unit]} as a number or its digits")
        number: int | float = int(value) if unit == "ms" or "." not in value else float(value)
    elif type(value) is int or type(value) is float:
        number = value
    else:
        raise ValueError(f"expected {_UNIT_NAMES[unit]}")
    if number != number or number < 0:
        raise ValueError(f"{_UNIT_NAMES[unit]} must not be negative")
    try:
        # timedelta, not fromtimestamp: exact for milliseconds, and no platform limits.
        return _EPOCH + (timedelta(milliseconds=number) if unit == "ms" else timedelta(seconds=number))
    except OverflowError:
        hint = " (milliseconds sent as seconds?)" if unit == "s" else ""
        raise ValueError(f"{_UNIT_NAMES[unit]} beyond the year 9999{hint}") from None


def epoch_unit_by_digits(value: object) -> EpochUnit:
    """The one rule for fields documented (or suspected) to carry either unit: up to 10 digits
    are seconds (until 2286), exactly 13 are milliseconds (2001 to 2286); 11, 12 and more than 13
    digits are neither in this era, so ValueError rather than a guess."""
    if type(value) is str:
        digits = len(value.split(".", 1)[0])
    elif type(value) is int or type(value) is float:
        digits = len(str(int(value))) if value == value and abs(value) != float("inf") else 0
    else:
        raise ValueError("expected epoch seconds or milliseconds")
    if 1 <= digits <= 10:
        return "s"
    if digits == 13:
        return "ms"
    raise ValueError("epoch of neither 10 digits (seconds) nor 13 (milliseconds)")


def from_epoch_digits(value: object) -> datetime:
    """An epoch whose unit the field does not fix, read by epoch_unit_by_digits."""
    return from_epoch(value, epoch_unit_by_digits(value))


def state_time(occurred: datetime, received: datetime) -> datetime:
    """The time latest state orders a record by: its own, but at most CLOCK_TOLERANCE after it
    was received (module doc)."""
    return min(occurred, received + CLOCK_TOLERANCE)


def check_horizon(occurred: datetime, received: datetime) -> None:
    """ValueError when `occurred` is more than FUTURE_HORIZON after `received` (module doc)."""
    if occurred - received > FUTURE_HORIZON:
        raise ValueError(f"more than {FUTURE_HORIZON.days} days after the gateway received it "
                         f"({iso_utc(received)}): not a device clock's error")


def iso_utc(moment: datetime) -> str:
    """Fixed-width `YYYY-MM-DDTHH:MM:SS.mmmZ`: sorts as text, which the table's sort keys rely on."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def now_utc() -> datetime:
    return datetime.now(UTC)


def epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def days_after(moment: datetime, days: int) -> datetime:
    return moment + timedelta(days=days)
