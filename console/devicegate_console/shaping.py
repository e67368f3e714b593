"""What the pages show, worked out from what reads.py returns: times for a person (the machine's
zone and "3 min ago"), a fleet row's one-line position or passage, a device's track with its
stops. Plain functions over plain data, so they are tested without a server or a browser."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def parse_utc(value: Any) -> datetime | None:
    """A time as the table writes it (ISO 8601 UTC), or None for anything else."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_time(value: Any, with_offset: bool = False) -> str:
    """`2025-02-07 16:26:30` (`+09:00` added with `with_offset`): the operator's own clock, the
    console running on their machine; every page's header names the zone once."""
    moment = parse_utc(value)
    if moment is None:
        return str(value) if value else "-"
    local = moment.astimezone()
    return f"{local:%Y-%m-%d %H:%M:%S}" + (f" {zone(local)}" if with_offset else "")


def iso_now() -> str:
    """Now, as the table writes times."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def zone(moment: datetime | None = None) -> str:
    """The machine's UTC offset (`+09:00`) at `moment` (now by default)."""
    offset = (moment or datetime.now(UTC)).astimezone().strftime("%z")
    return f"{offset[:3]}:{offset[3:]}"


def ago(value: Any, now: datetime | None = None) -> str:
    """How long ago, as a person says it: `just now`, `3 min ago`, `5 h ago`, `12 days ago`
    (`in 4 min` for a time ahead of this clock)."""
    moment = parse_utc(value)
    if moment is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    ahead = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    for size, unit in ((86400 * 365, "years"), (86400, "days"), (3600, "h"), (60, "min")):
        if seconds >= size:
            count = int(seconds // size)
            word = unit[:-1] if unit in ("years", "days") and count == 1 else unit
            return f"in {count} {word}" if ahead else f"{count} {word} ago"
    return "in 1 min" if ahead else "1 min ago"


def where(state: dict[str, Any] | None) -> str:
    """A device's latest position or passage in one line (the vocabulary's blocks), or ""."""
    groups = (state or {}).get("state") or {}
    position = groups.get("position")
    if position and "latitude" in position and "longitude" in position:
        text = f"{position['latitude']:.5f}, {position['longitude']:.5f}"
        if position.get("speedKmh") is not None:
            text += f" · {position['speedKmh']:g} km/h"
        return text
    passage = groups.get("passage")
    if passage:
        granted = {True: "granted", False: "refused"}.get(passage.get("granted"), "?")
        person = passage.get("person") or {}
        return " · ".join(p for p in (f"passage {granted}", passage.get("method"), person.get("role")) if p)
    return ""


def summary(event: dict[str, Any]) -> str:
    """An event's vocabulary blocks in one line (the Live page): its position or passage as the
    fleet page shows a state's, then its alarm (`alarm SOS (open)`), or ""."""
    facts = event.get("facts") or {}
    parts = [where({"state": facts})]
    alarm = facts.get("alarm")
    if alarm:
        name = alarm.get("name") or alarm.get("code") or ""
        parts.append(f"alarm {name}".strip() + (f" ({alarm['status']})" if alarm.get("status") else ""))
    return " · ".join(p for p in parts if p)


def live_row(event: dict[str, Any]) -> dict[str, Any]:
    """What the Live page shows of a stored event: a row the page's script writes as it comes."""
    from urllib.parse import quote

    vendor, device = str(event.get("vendor") or ""), str(event.get("deviceId") or "")
    return {"eventId": event.get("eventId"), "vendor": vendor, "deviceId": device, "kind": event.get("kind"),
            "occurredAt": event.get("occurredAt"), "receivedAt": event.get("receivedAt"),
            "time": local_time(event.get("receivedAt") or event.get("occurredAt")),
            "deviceTime": local_time(event.get("occurredAt")),
            "summary": summary(event), "transport": event.get("transport") or "",
            "href": f"/device/{quote(vendor, safe='')}/{quote(device, safe='')}"}


def pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def pictures(data: Any, path: str = "", depth: int = 0) -> list[dict[str, str]]:
    """The pictures an event's data refers to: each media reference ingest left in place of an
    inline image (core.envelope.media_ref: {key, contentType, bytes}, its key under media/), as
    {field, key} in the data's order. A vendor's own picture URL (Mettax's imageUrl) is no
    reference of ours and is not among them."""
    if depth > 6:
        return []
    if isinstance(data, dict):
        key, kind = data.get("key"), data.get("contentType")
        if isinstance(key, str) and key.startswith("media/") and isinstance(kind, str) and kind.startswith("image/"):
            return [{"field": path, "key": key}]
        return [p for name, value in data.items()
                for p in pictures(value, f"{path}.{name}" if path else str(name), depth + 1)]
    if isinstance(data, list):
        return [p for n, value in enumerate(data) for p in pictures(value, f"{path}[{n}]", depth + 1)]
    return []


# --- tracks ---------------------------------------------------------------------------------------

#: Below this a vehicle counts as standing (GPS drifts a few km/h at a standstill).
STOP_SPEED_KMH = 2.0
#: ...and within this distance of where it stopped.
STOP_RADIUS_M = 50.0


@dataclass
class Stop:
    latitude: float
    longitude: float
    start: str
    end: str
    minutes: float


def track_points(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The positions of `events` (any order), oldest first: each event whose facts hold a
    `position` block with coordinates, as {t, lat, lon, speed, heading, valid, eventId}."""
    points = []
    for event in events:
        position = (event.get("facts") or {}).get("position")
        if not position or "latitude" not in position or "longitude" not in position:
            continue
        points.append({"t": position.get("fixTime") or event["occurredAt"], "lat": position["latitude"],
                       "lon": position["longitude"], "speed": position.get("speedKmh"),
                       "heading": position.get("headingDeg"), "valid": position.get("valid", True),
                       "kind": event.get("kind"), "eventId": event.get("eventId")})
    return sorted(points, key=lambda p: (p["t"], p["eventId"] or ""))


def distance_m(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Great-circle distance between two points (haversine; plenty for stop detection)."""
    lat1, lat2 = math.radians(a["lat"]), math.radians(b["lat"])
    dlat, dlon = lat2 - lat1, math.radians(b["lon"] - a["lon"])
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * 6371000 * math.asin(min(1.0, math.sqrt(h)))


def stops(points: list[dict[str, Any]], min_minutes: float) -> list[Stop]:
    """Where the track stood still for at least `min_minutes`: a run of points within
    STOP_RADIUS_M of its first one, none faster than STOP_SPEED_KMH, lasting that long."""
    found: list[Stop] = []
    start = 0
    while start < len(points):
        end = start
        while end + 1 < len(points) and _standing(points[start], points[end + 1]):
            end += 1
        first, last = parse_utc(points[start]["t"]), parse_utc(points[end]["t"])
        if end > start and first and last:
            minutes = (last - first).total_seconds() / 60
            if minutes >= min_minutes:
                found.append(Stop(points[start]["lat"], points[start]["lon"], points[start]["t"], points[end]["t"],
                                  round(minutes, 1)))
        start = end + 1
    return found


def _slow(point: dict[str, Any]) -> bool:
    return point.get("speed") is None or point["speed"] < STOP_SPEED_KMH


def _standing(anchor: dict[str, Any], point: dict[str, Any]) -> bool:
    return _slow(anchor) and _slow(point) and distance_m(anchor, point) <= STOP_RADIUS_M


# --- quarantine -----------------------------------------------------------------------------------

def payload_text(body: bytes | None) -> str:
    """A quarantined payload to read: JSON pretty-printed, other text as it is, binary as base64."""
    if body is None:
        return "(the payload is not readable here)"
    try:
        return json.dumps(json.loads(body), ensure_ascii=False, indent=2)
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        return f"(binary, {len(body)} bytes, base64)\n{base64.b64encode(body).decode()}"


def names_device(route: dict[str, Any], body: bytes | None, device_id: str) -> bool:
    """Whether a quarantined payload names `device_id`: a route value or one of its `/` segments
    (an MQTT topic), or a value anywhere in its JSON payload (a string, or a number as written)."""
    for value in route.values():
        if str(value) == device_id or device_id in str(value).split("/"):
            return True
    if body is None:
        return False
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return _holds(document, device_id, depth=0)


def _holds(value: Any, wanted: str, depth: int) -> bool:
    if depth > 6:
        return False
    if isinstance(value, dict):
        return any(_holds(v, wanted, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_holds(v, wanted, depth + 1) for v in value)
    if isinstance(value, bool) or value is None:
        return False
    return str(value) == wanted


def reason_holds(item: dict[str, Any], reason: str | None) -> bool:
    """Whether a quarantined payload's reason holds `reason`, in any case (every one, without it):
    the quarantine page's filter, the rule `devicegate replay --reason` selects by."""
    return not reason or reason.casefold() in str(item.get("reason") or "").casefold()


#: What each replay outcome means, as the quarantine page's replay result says it.
REPLAY_WORDS = {"stored": "stored: left the quarantine", "duplicate": "already stored: left the quarantine",
                "still-invalid": "still refused: stays in quarantine", "partial": "partly stored: stays in quarantine",
                "failed": "failed: stays in quarantine, replay it again later",
                "would-replay": "would be stored (or found already stored)",
                "would-quarantine": "would stay in quarantine", "not-found": "no longer in quarantine"}


def changed_fields(before: bytes, after: bytes) -> list[str]:
    """What an edit changed, for its audit: the JSON paths whose values differ (`data.id`,
    `code`), never the values; `(body)` when either side is not JSON."""
    try:
        old, new = json.loads(before), json.loads(after)
    except (ValueError, UnicodeDecodeError):
        return [] if before == after else ["(body)"]
    found: list[str] = []
    _diff(old, new, "", found)
    return found


def _diff(old: Any, new: Any, path: str, found: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            _diff(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}.{key}" if path else str(key), found)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for n, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(a, b, f"{path}[{n}]", found)
    elif old != new or type(old) is not type(new):
        found.append(path or "(body)")


_ABSENT = object()
