"""The app-facing access patterns, each a single DynamoDB Query (never a Scan).

Not used by the ingest functions; the CLI uses it, and apps can copy the calls (README "Data
model" shows the same calls as plain boto3).
"""

from __future__ import annotations

from typing import Any

from devicegate.store import keys
from devicegate.store.codec import from_item
from devicegate.store.items import envelope_of as envelope

_MAX_TIME = "9999"  # sorts after every ISO timestamp


def _query(ddb: Any, table: str, limit: int | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """One Query, following pagination only to reach `limit` items (1 MB pages)."""
    items: list[dict[str, Any]] = []
    while True:
        if limit:
            kwargs["Limit"] = limit - len(items)
        page = ddb.query(TableName=table, **kwargs)
        items += [from_item(i) for i in page.get("Items", [])]
        if "LastEvaluatedKey" not in page or (limit and len(items) >= limit):
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def device_events(ddb: Any, table: str, vendor: str, device_id: str, kind: str | None = None,
                  since: str | None = None, until: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """A device's events in [since, until), newest first; optionally of one kind (gsi2)."""
    index, pk_name, sk_name = ("gsi2", "gsi2pk", "gsi2sk") if kind else ("gsi1", "gsi1pk", "gsi1sk")
    pk = keys.device_kind_pk(vendor, device_id, kind) if kind else keys.device_pk(vendor, device_id)
    items = _query(ddb, table, limit, IndexName=index, ScanIndexForward=False,
                   KeyConditionExpression=f"{pk_name} = :pk AND {sk_name} BETWEEN :lo AND :hi",
                   ExpressionAttributeValues={":pk": {"S": pk}, ":lo": {"S": since or "0"},
                                              ":hi": {"S": until or _MAX_TIME}})
    return [envelope(i) for i in items]


def device_state(ddb: Any, table: str, vendor: str, device_id: str) -> dict[str, Any] | None:
    """Latest state: every state group of the device, from its own partition."""
    items = _query(ddb, table, KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
                   ExpressionAttributeValues={":pk": {"S": keys.device_pk(vendor, device_id)}, ":s": {"S": "S#"}},
                   ConsistentRead=True)
    if not items:
        return None
    groups = {i["group"]: i for i in items}
    summary_item = groups.pop("summary", {})
    summary = summary_item.get("value", {})
    state = {
        "vendor": vendor,
        "deviceId": device_id,
        "lastSeen": summary.get("lastSeen"),
        "lastKind": summary.get("lastKind"),
        "lastEventId": summary.get("lastEventId"),
        # Liveness (devicegate.liveness): last contact, and since when it is offline if it is.
        "online": summary_item.get("online"),
        "heardAt": summary_item.get("heardAt"),
        "state": {name: dict(g["value"], at=g["at"]) for name, g in sorted(groups.items()) if "value" in g},
    }
    if "offlineSince" in summary_item:
        state["offlineSince"] = summary_item["offlineSince"]
    return state


def fleet_alarms(ddb: Any, table: str, since: str | None = None, until: str | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    """Alarms of every vendor and device in [since, until), newest first (gsi3)."""
    items = _query(ddb, table, limit, IndexName="gsi3", ScanIndexForward=False,
                   KeyConditionExpression="gsi3pk = :pk AND gsi3sk BETWEEN :lo AND :hi",
                   ExpressionAttributeValues={":pk": {"S": keys.ALARM_PARTITION}, ":lo": {"S": since or "0"},
                                              ":hi": {"S": until or _MAX_TIME}})
    return [envelope(i) for i in items]


def event_by_id(ddb: Any, table: str, vendor: str, event_id: str) -> dict[str, Any] | None:
    items = _query(ddb, table, KeyConditionExpression="pk = :pk",
                   ExpressionAttributeValues={":pk": {"S": keys.event_pk(vendor, event_id)}})
    return envelope(items[0]) if items else None


def vendor_devices(ddb: Any, table: str, vendor: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Every device of a vendor with its last seen time (the state summaries, gsi5)."""
    items = _query(ddb, table, limit, IndexName="gsi5",
                   KeyConditionExpression="gsi5pk = :pk",
                   ExpressionAttributeValues={":pk": {"S": keys.vendor_devices_pk(vendor)}})
    return [_device_row(vendor, i) for i in items]


def _device_row(vendor: str, item: dict[str, Any]) -> dict[str, Any]:
    value = item.get("value") or {}
    row = {"vendor": vendor, "deviceId": item["deviceId"], "lastSeen": value.get("lastSeen"),
           "lastKind": value.get("lastKind"), "heardAt": item.get("heardAt"), "online": item.get("online")}
    if "offlineSince" in item:
        row["offlineSince"] = item["offlineSince"]
    return row


def offline_devices(ddb: Any, table: str, vendor: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Every device offline now, across vendors or of one (gsi3 OFFLINE, sk {vendor}#{device})."""
    condition, values = "gsi3pk = :pk", {":pk": {"S": keys.OFFLINE_PARTITION}}
    if vendor:
        condition += " AND begins_with(gsi3sk, :v)"
        values[":v"] = {"S": f"{vendor}#"}
    items = _query(ddb, table, limit, IndexName="gsi3", KeyConditionExpression=condition,
                   ExpressionAttributeValues=values)
    return [_device_row(i["vendor"], i) for i in items]


def linked_events(ddb: Any, table: str, vendor: str, link: str, limit: int | None = 100) -> list[dict[str, Any]]:
    """Records the vendor ties together (gsi4 L#{vendor}#{link}), oldest first: for Mettax the
    GPS fix, alarm, device info... sharing an `id`, `alarm:{alarmId}` an alarm's files,
    `capture:{captureId}` a capture's file."""
    items = _query(ddb, table, limit, IndexName="gsi4", KeyConditionExpression="gsi4pk = :pk",
                   ExpressionAttributeValues={":pk": {"S": keys.link_pk(vendor, link)}})
    return [envelope(i) for i in items]


def device_assemblies(ddb: Any, table: str, vendor: str, device_id: str, kind: str | None = None,
                      limit: int | None = 100) -> list[dict[str, Any]]:
    """A device's records sent in parts (Mettax face checks), each with the parts that came so
    far; `assembledEventId` once the one event apps and the queue see exists."""
    condition, values = "pk = :pk", {":pk": {"S": keys.parts_pk(vendor, device_id)}}
    if kind:
        condition += " AND begins_with(sk, :k)"
        values[":k"] = {"S": f"{kind}#"}
    import json

    rows = []
    for item in _query(ddb, table, limit, KeyConditionExpression=condition, ExpressionAttributeValues=values,
                       ScanIndexForward=False):
        parts = {name[5:]: json.loads(value) for name, value in item.items() if name.startswith("part_")}
        rows.append({"vendor": item.get("vendor"), "deviceId": item.get("deviceId"), "kind": item.get("kind"),
                     "group": item.get("group"), "firstReceivedAt": item.get("firstReceivedAt"),
                     "parts": parts, "assembledEventId": item.get("assembledEventId")})
    return rows


def quarantined(ddb: Any, table: str, vendor: str, limit: int | None = 100) -> list[dict[str, Any]]:
    """Payloads waiting in quarantine, newest first (gsi1 Q#vendor); replayed ones drop out."""
    items = _query(ddb, table, limit, IndexName="gsi1", ScanIndexForward=False,
                   KeyConditionExpression="gsi1pk = :pk",
                   ExpressionAttributeValues={":pk": {"S": keys.quarantine_list_pk(vendor)}})
    for item in items:
        item["id"] = item["pk"].rsplit("#", 1)[-1]
    return items


def _alarm_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ("vendor", "deviceId", "alarmId", "status", "statusAt", "steps",
                                 "details") if k in item} | {"eventIds": sorted(item.get("eventIds", ()))}


def device_alarms(ddb: Any, table: str, vendor: str, device_id: str) -> list[dict[str, Any]]:
    """The lifecycle items of a device's alarms (open, releasing, release failed, released)."""
    items = _query(ddb, table, KeyConditionExpression="pk = :pk",
                   ExpressionAttributeValues={":pk": {"S": keys.alarms_pk(vendor, device_id)}})
    return sorted((_alarm_item(i) for i in items), key=lambda a: a.get("statusAt", ""), reverse=True)


def alarms_in_status(ddb: Any, table: str, vendor: str, status: str = "open",
                     limit: int | None = 100) -> list[dict[str, Any]]:
    """A vendor's alarms whose lifecycle is now in `status` (e.g. every open alarm), newest
    step first (gsi1 AL#{vendor}#{status})."""
    items = _query(ddb, table, limit, IndexName="gsi1", ScanIndexForward=False,
                   KeyConditionExpression="gsi1pk = :pk",
                   ExpressionAttributeValues={":pk": {"S": keys.alarm_status_pk(vendor, status)}})
    return [_alarm_item(i) for i in items]
