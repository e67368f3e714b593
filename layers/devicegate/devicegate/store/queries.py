"""The app-facing access patterns, each a DynamoDB Query (never a Scan), or one Query per shard
of a sharded list, run in parallel and merged (store.keys: lists many devices write are split in
SHARDS partitions so that no key takes the whole fleet's writes).

Not used by the ingest functions; apps, the CLI and the console read them through the typed
client (devicegate.client). The sharded lists take `shards`, the deployment's Shards (the
stack's output), where the caller is not a function of the stack (SHARDS in its environment).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from devicegate.store import keys
from devicegate.store.codec import from_item
from devicegate.store.items import envelope_of as envelope
from devicegate.store.quarantine import quarantined  # noqa: F401 (re-exported: the CLI reads it here)
from devicegate.store.sharded import MAX_TIME
from devicegate.store.sharded import query as _query
from devicegate.store.sharded import query_shards as _query_shards


def device_events(ddb: Any, table: str, vendor: str, device_id: str, kind: str | None = None,
                  since: str | None = None, until: str | None = None, limit: int | None = 50,
                  fields: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """A device's events in [since, until), newest first; optionally of one kind (a filter on
    the same Query: the device's partition is its timeline); with `fields`, only those
    attributes of each event (a ProjectionExpression: less to send, parse and decode, the same
    read capacity)."""
    values = {":pk": {"S": keys.event_pk(vendor, device_id)}, ":lo": {"S": since or "0"},
              ":hi": {"S": until or MAX_TIME}}
    extra: dict[str, Any] = {}
    names: dict[str, str] = {}
    if kind:
        extra["FilterExpression"] = "#kind = :kind"
        names["#kind"] = "kind"
        values[":kind"] = {"S": kind}
    if fields is not None:
        # Placeholders for every name: "data" and others are DynamoDB reserved words.
        projected = {f"#f{n}": name for n, name in enumerate(fields)}
        extra["ProjectionExpression"] = ", ".join(projected)
        names.update(projected)
    if names:
        extra["ExpressionAttributeNames"] = names
    items = _query(ddb, table, limit, ScanIndexForward=False,
                   KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                   ExpressionAttributeValues=values, **extra)
    return [envelope(i) for i in items]


#: Device timelines read at once by fleet_events: enough to hide the round trips of a few
#: thousand devices, few enough not to spread one page over hundreds of connections.
FLEET_WORKERS = 16


def fleet_events(ddb: Any, table: str, vendors: Iterable[str], kind: str | None = None,
                 since: str | None = None, until: str | None = None, limit: int | None = 50,
                 workers: int = FLEET_WORKERS, shards: int | None = None) -> list[dict[str, Any]]:
    """Events of every device of `vendors` in [since, until), newest first; optionally of one
    kind. No Scan and no index of its own (an ordinary event is in none): the device list (gsi2
    V#{vendor}#{shard}, keys only), then each device's timeline, the same Query as
    device_events, `workers` at a time, merged by time. Each device gives at most `limit` events
    (no more of its own can be among the newest `limit`), so a page costs a bounded number of
    reads: one Query per shard of each vendor's list, one per device."""
    timelines = [keys.timeline_of(entry["pk"]) for vendor in vendors
                 for entry in _listed_devices(ddb, table, vendor, shards)]
    if not timelines:
        return []
    values = {":lo": {"S": since or "0"}, ":hi": {"S": until or MAX_TIME}}
    extra: dict[str, Any] = {}
    if kind:
        extra = {"FilterExpression": "#kind = :kind", "ExpressionAttributeNames": {"#kind": "kind"}}
        values[":kind"] = {"S": kind}

    def timeline(pk: str) -> list[dict[str, Any]]:
        return _query(ddb, table, limit, ScanIndexForward=False,
                      KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                      ExpressionAttributeValues={":pk": {"S": pk}, **values}, **extra)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(timelines)))) as pool:
        each = list(pool.map(timeline, timelines))
    # The sort key is {occurredAt}#{eventId}: by time, then id, as device_events orders one device.
    merged = heapq.merge(*each, key=lambda item: (item["sk"], item["pk"]), reverse=True)
    return [envelope(i) for i in (list(merged)[:limit] if limit else merged)]


def _listed_devices(ddb: Any, table: str, vendor: str, shards: int | None = None) -> list[dict[str, Any]]:
    return _query_shards(ddb, table, [keys.vendor_devices_pk(vendor, n) for n in range(shards or keys.shard_count())],
                         "gsi2")


def state_view(item: dict[str, Any]) -> dict[str, Any]:
    """A device's state item as apps see it: last seen, liveness, and each group's newest value
    with the time it is from."""
    groups = dict(item.get("state") or {})
    summary = groups.pop("summary", {})
    state: dict[str, Any] = {
        "vendor": item["vendor"],
        "deviceId": item["deviceId"],
        "lastSeen": summary.get("at"),
        "lastKind": (summary.get("value") or {}).get("lastKind"),
        "lastEventId": summary.get("eventId") or None,
        # Liveness: last contact (a receive time), and since when it is offline if it is.
        "online": item.get("online"),
        "heardAt": item.get("heardAt"),
        "state": {name: dict(g.get("value") or {}, at=g["at"], eventId=g.get("eventId"))
                  for name, g in sorted(groups.items())},
    }
    if "offlineSince" in item:
        state["offlineSince"] = item["offlineSince"]
    return state


def device_state(ddb: Any, table: str, vendor: str, device_id: str) -> dict[str, Any] | None:
    """Latest state: every state group of the device, and its liveness, from its one item."""
    found = ddb.get_item(TableName=table, Key={"pk": {"S": keys.device_pk(vendor, device_id)},
                                               "sk": {"S": keys.STATE_SK}}, ConsistentRead=True)
    return state_view(from_item(found["Item"])) if found.get("Item") else None


def fleet_alarms(ddb: Any, table: str, since: str | None = None, until: str | None = None,
                 limit: int | None = 100, vendor: str | None = None, shards: int | None = None) -> list[dict[str, Any]]:
    """Alarms of every device in [since, until), newest first (gsi3 ALARM#{shard}); of one
    vendor's devices only with `vendor` (a filter: the list is by time, for every vendor)."""
    values = {":lo": {"S": since or "0"}, ":hi": {"S": until or MAX_TIME}}
    extra: dict[str, Any] = {}
    if vendor:
        values[":vendor"] = {"S": vendor}
        extra = {"FilterExpression": "vendor = :vendor"}
    items = _query_shards(ddb, table, keys.all_shards(keys.ALARM_PREFIX, shards), "gsi3", limit, newest_first=True,
                          condition="gsi3sk BETWEEN :lo AND :hi", values=values, **extra)
    return [envelope(i) for i in items]


def event_by_id(ddb: Any, table: str, vendor: str, device_id: str, event_id: str,
                occurred_at: str | None = None) -> dict[str, Any] | None:
    """One event. With its time (a queue message's `time`) one GetItem; without, the device's
    timeline is searched for the id (a filtered Query of its partition: fine for a person,
    not for a hot path)."""
    pk = {"S": keys.event_pk(vendor, device_id)}
    if occurred_at:
        found = ddb.get_item(TableName=table, Key={"pk": pk, "sk": {"S": keys.event_sk(occurred_at, event_id)}})
        if found.get("Item"):
            return envelope(from_item(found["Item"]))
    items = _query(ddb, table, 1, KeyConditionExpression="pk = :pk", FilterExpression="eventId = :id",
                   ExpressionAttributeValues={":pk": pk, ":id": {"S": event_id}})
    return envelope(items[0]) if items else None


def _states(ddb: Any, table: str, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Device state items by (vendor, device id), 100 per BatchGetItem."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(pairs), 100):
        request: dict[str, Any] = {table: {"Keys": [
            {"pk": {"S": keys.device_pk(v, d)}, "sk": {"S": keys.STATE_SK}} for v, d in pairs[start:start + 100]]}}
        while request:
            answer = ddb.batch_get_item(RequestItems=request)
            for raw in answer.get("Responses", {}).get(table, []):
                item = from_item(raw)
                found[(item["vendor"], item["deviceId"])] = item
            request = answer.get("UnprocessedKeys") or {}
    return found


def _state_items(ddb: Any, table: str, pairs: list[tuple[str, str]], workers: int = 8
                 ) -> dict[tuple[str, str], dict[str, Any]]:
    """_states, the batches `workers` at a time."""
    chunks = [pairs[n:n + 100] for n in range(0, len(pairs), 100)]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    if not chunks:
        return found
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks)))) as pool:
        for batch in pool.map(lambda chunk: _states(ddb, table, chunk), chunks):
            found.update(batch)
    return found


def device_states(ddb: Any, table: str, pairs: list[tuple[str, str]], workers: int = 8
                  ) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest state of many devices by (vendor, device id), as device_state gives one: 100
    per BatchGetItem, the batches `workers` at a time. A device never heard from is absent."""
    return {pair: state_view(item) for pair, item in _state_items(ddb, table, pairs, workers).items()}


def _device_row(item: dict[str, Any]) -> dict[str, Any]:
    view = state_view(item)
    row = {k: view[k] for k in ("vendor", "deviceId", "lastSeen", "lastKind", "heardAt", "online")}
    if "offlineSince" in view:
        row["offlineSince"] = view["offlineSince"]
    return row


def _rows(ddb: Any, table: str, listed: list[dict[str, Any]],
          row: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    pairs = []
    for entry in listed:
        vendor, device_key = entry["pk"].split("#", 2)[1:]  # D#{vendor}#{quoted device id}
        pairs.append((vendor, unquote(device_key)))
    found = _state_items(ddb, table, pairs)  # in parallel: one round trip for a fleet of 800
    return [row(found[p]) for p in pairs if p in found]


def vendor_devices(ddb: Any, table: str, vendor: str, limit: int | None = None,
                   shards: int | None = None, whole: bool = False) -> list[dict[str, Any]]:
    """Every device of a vendor with its last seen time and liveness: the device list (gsi2
    V#{vendor}#{shard}, keys only), then the items themselves (BatchGetItem). With `whole`,
    each device's whole state (device_state's view) from the same items: a fleet view's
    positions without reading every item a second time."""
    listed = _query_shards(ddb, table, [keys.vendor_devices_pk(vendor, n) for n in range(shards or keys.shard_count())],
                           "gsi2", limit)
    return _rows(ddb, table, listed, state_view if whole else _device_row)


def offline_devices(ddb: Any, table: str, vendor: str | None = None, limit: int | None = None,
                    shards: int | None = None) -> list[dict[str, Any]]:
    """Every device offline now, across vendors or of one (gsi3 OFFLINE#{shard}, sk {vendor}#{device})."""
    condition, values = "", {}
    if vendor:
        condition, values = "begins_with(gsi3sk, :v)", {":v": {"S": f"{vendor}#"}}
    items = _query_shards(ddb, table, keys.all_shards(keys.OFFLINE_PREFIX, shards), "gsi3", limit,
                          condition=condition, values=values)
    return [_device_row(i) for i in items]


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
    rows = []
    for item in _query(ddb, table, limit, KeyConditionExpression=condition, ExpressionAttributeValues=values,
                       ScanIndexForward=False):
        # A part too large for the item is in S3 (store.events.OFFLOADED_PART): its reference is shown.
        parts = {name[5:]: json.loads(value) if value.startswith("{") else {"dataRef": value}
                 for name, value in item.items() if name.startswith("part_")}
        rows.append({"vendor": item.get("vendor"), "deviceId": item.get("deviceId"), "kind": item.get("kind"),
                     "group": item.get("group"), "firstReceivedAt": item.get("firstReceivedAt"),
                     "parts": parts, "assembledEventId": item.get("assembledEventId")})
    return rows


def _alarm_item(item: dict[str, Any]) -> dict[str, Any]:
    steps = {name[5:]: value for name, value in item.items() if name.startswith("step_")}
    return {k: item[k] for k in ("vendor", "deviceId", "alarmId", "status", "statusAt", "code", "codeName",
                                 "details", "firstDetails") if k in item} | {
        "steps": steps, "eventIds": sorted(item.get("eventIds", ()))}


def device_alarms(ddb: Any, table: str, vendor: str, device_id: str) -> list[dict[str, Any]]:
    """The lifecycle items of a device's alarms (open, releasing, release failed, released)."""
    items = _query(ddb, table, KeyConditionExpression="pk = :pk",
                   ExpressionAttributeValues={":pk": {"S": keys.alarms_pk(vendor, device_id)}})
    return sorted((_alarm_item(i) for i in items), key=lambda a: a.get("statusAt", ""), reverse=True)


def alarms_in_status(ddb: Any, table: str, vendor: str, status: str = "open",
                     limit: int | None = 100, shards: int | None = None) -> list[dict[str, Any]]:
    """A vendor's alarms whose lifecycle is now in `status` (e.g. every open alarm), newest
    step first (gsi1 AL#{vendor}#{status}#{shard})."""
    partitions = [keys.alarm_status_shard_pk(vendor, status, n) for n in range(shards or keys.shard_count())]
    items = _query_shards(ddb, table, partitions, "gsi1", limit, newest_first=True)
    return [_alarm_item(i) for i in items]
