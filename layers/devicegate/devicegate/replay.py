"""Re-ingest quarantined payloads after a fix (README "Quarantine and replay").

A replayed payload goes through the same adapter and the same conditional write as a live one,
so replaying twice, or replaying something that meanwhile arrived again, stores it once.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from devicegate.envelope import RawPush
from devicegate.errors import InvalidPayload
from devicegate.queries import quarantined
from devicegate.storage import DynamoEventStore
from devicegate.timeutil import iso_utc, now_utc
from devicegate.vendors import get_adapter


@dataclass
class ReplayOutcome:
    id: str
    status: str  # "stored", "duplicate", "still-invalid", "would-replay"
    detail: str = ""


def _body(item: dict[str, Any], s3: Any) -> bytes:
    if "body" in item:
        return item["body"].encode("utf-8")
    if "bodyBase64" in item:
        return base64.b64decode(item["bodyBase64"])
    bucket, key = item["bodyRef"].removeprefix("s3://").split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def push_from_quarantine(item: dict[str, Any], body: bytes) -> RawPush:
    route = {k: str(v) for k, v in (item.get("route") or {}).items()}
    if item.get("transport") == "mqtt":
        return RawPush(item["vendor"], "mqtt", b"", route=route, document=json.loads(body))
    return RawPush(item["vendor"], "http", body, route=route, headers={"content-type": item.get("contentType", "")})


def replay(ddb: Any, s3: Any, table: str, store: DynamoEventStore, vendor: str,
           ids: list[str] | None = None, dry_run: bool = False) -> list[ReplayOutcome]:
    adapter = get_adapter(vendor)
    outcomes = []
    for item in quarantined(ddb, table, vendor, limit=None):
        if ids and item["id"] not in ids:
            continue
        if dry_run:
            outcomes.append(ReplayOutcome(item["id"], "would-replay", item.get("reason", "")))
            continue
        try:
            events = adapter.normalize(push_from_quarantine(item, _body(item, s3)), now_utc())
        except (InvalidPayload, ValueError) as exc:
            outcomes.append(ReplayOutcome(item["id"], "still-invalid", str(exc)))
            continue
        new = [store.put_event(e) for e in events]
        ddb.update_item(
            TableName=table, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
            # Leaving the gsi1 list is what marks it done; the item stays until its TTL for audit.
            UpdateExpression="SET replayedAt = :t, replayedEventIds = :ids REMOVE gsi1pk, gsi1sk",
            ExpressionAttributeValues={":t": {"S": iso_utc(now_utc())},
                                       ":ids": {"L": [{"S": e.eventId} for e in events]}},
        )
        outcomes.append(ReplayOutcome(item["id"], "stored" if any(new) else "duplicate",
                                      ",".join(e.eventId for e in events)))
    if ids:
        missing = set(ids) - {o.id for o in outcomes}
        outcomes += [ReplayOutcome(i, "not-found") for i in sorted(missing)]
    return outcomes


