"""Time parsing and the single output format used everywhere (sortable ISO 8601 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def parse_time(value: object) -> datetime:
    """ISO 8601 text (Z, +hh, +hh:mm, naive = UTC) or epoch seconds/milliseconds -> aware UTC."""
    if type(value) is str:
        try:
            # fromisoformat (3.11+) takes "Z", "+08" and "+08:00", and runs in C: the fast path.
            parsed = datetime.fromisoformat(value)
        except ValueError:
            text = value.strip()
            if text.isdigit():
                return parse_time(int(text))
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError("not an ISO 8601 time") from None
        try:
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 has no UTC equivalent
            raise ValueError("time out of range") from None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError("expected a time")
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 10_000_000_000 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("time out of range") from None
    raise ValueError("expected an ISO 8601 time")


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
