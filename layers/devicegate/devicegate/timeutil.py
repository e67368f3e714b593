"""Time parsing and the single output format used everywhere (sortable ISO 8601 UTC)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
# Vendors send "2020-03-31T10:10:01+08" (hour-only offset), which fromisoformat rejects.
_HOUR_ONLY_OFFSET = re.compile(r"([+-]\d{2})$")


def parse_time(value: object) -> datetime:
    """ISO 8601 text (Z, +hh, +hh:mm, naive = UTC) or epoch seconds/milliseconds -> aware UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError("expected a time")
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 10_000_000_000 else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected an ISO 8601 time")
    text = value.strip()
    if text.isdigit():
        return parse_time(int(text))
    if "T" in text and _HOUR_ONLY_OFFSET.search(text) and text[-3] in "+-":
        text += ":00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {value[:40]!r}") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
