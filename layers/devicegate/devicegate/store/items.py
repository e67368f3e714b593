"""The layout of an event item, both ways: the stored item built from a normalized event (with the
keys of every access pattern), and a stored item (or stream image) back to the envelope apps see.
Used by every writer of events (ingest, liveness transitions, the sweep) and by every reader."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from devicegate.core.envelope import ENVELOPE_FIELDS, NormalizedEvent
from devicegate.core.timeutil import epoch_seconds
from devicegate.store import keys
from devicegate.store.codec import from_item


def event_item(event: NormalizedEvent, expires_at: datetime) -> dict[str, Any]:
    """The stored event, already in DynamoDB's attribute format (every value is a string or a
    number, so it is written directly): the envelope plus its keys.

    Keyed by device and time (keys.event_pk / event_sk), so a device's timeline, of every kind or
    of one, is a Query of the table itself: an ordinary event lands in no index at all, one write
    unit per KB. Alarms also land in gsi3 (fleet-wide by time, sharded), linked records in gsi4.
    """
    item: dict[str, Any] = {
        "pk": {"S": keys.event_pk(event.vendor, event.deviceId)},
        "sk": {"S": keys.event_sk(event.occurredAt, event.eventId)},
        "vendor": {"S": event.vendor},
        "deviceId": {"S": event.deviceId},
        "kind": {"S": event.kind},
        "eventId": {"S": event.eventId},
        "occurredAt": {"S": event.occurredAt},
        "receivedAt": {"S": event.receivedAt},
        "transport": {"S": event.transport},
        # Stored as its canonical JSON text: the same bytes the id was derived from, no 32-level
        # nesting limit, no Decimal surprises for apps, and no per-value encoding on the hot path.
        "data": {"S": event.dataJson},
        "expiresAt": {"N": str(epoch_seconds(expires_at))},
    }
    if event.factsJson is not None:
        # The vocabulary blocks (core/vocabulary.py), canonical JSON like `data`; absent when none.
        item["facts"] = {"S": event.factsJson}
    if event.is_alarm:
        item["gsi3pk"] = {"S": keys.alarm_pk(event.vendor, event.deviceId)}
        item["gsi3sk"] = {"S": keys.alarm_sk(event.occurredAt, event.vendor, event.eventId)}
    if event.link:
        item["gsi4pk"] = {"S": keys.link_pk(event.vendor, event.link)}
        item["gsi4sk"] = {"S": keys.event_sk(event.occurredAt, event.eventId)}
    return item


def envelope_of(item: dict[str, Any]) -> dict[str, Any]:
    """A stored event item (plain values) back to the normalized envelope."""
    out = {name: item[name] for name in ENVELOPE_FIELDS if name in item}
    if isinstance(out.get("data"), str):
        out["data"] = json.loads(out["data"])
    if isinstance(out.get("facts"), str):
        out["facts"] = json.loads(out["facts"])
    if "dataRef" in item:
        out["dataRef"] = item["dataRef"]
    return out


def envelope_from_image(image: dict[str, Any]) -> dict[str, Any]:
    return envelope_of(from_item(image))
