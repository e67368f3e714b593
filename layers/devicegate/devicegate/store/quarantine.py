"""Quarantine items (pk Q#{vendor}#{digest}, sk Q): payloads the gateway refused, kept for
inspection and replay, each family's only writer and reader: the ingest functions write one per
distinct payload (`DynamoQuarantine.write`, counting sightings); the CLI and the replay list those
waiting (`quarantined`, gsi1 Q#{vendor}#{shard}), read one (`read`), the console records an
operator's edit on one (`record_edit`), and a replay marks one done (`mark_replayed`).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devicegate.core.errors import FieldProblem
from devicegate.core.timeutil import days_after, epoch_seconds, iso_utc
from devicegate.infra.aws import CONDITION_FAILED, error_code, failures, unavailable
from devicegate.store import keys
from devicegate.store.codec import from_item, to_attr
from devicegate.store.limits import MAX_INLINE_BYTES, fits_inline
from devicegate.store.sharded import MAX_TIME, query_shards


@dataclass
class QuarantineRecord:
    vendor: str
    kind: str
    transport: str
    reason: str
    problems: list[FieldProblem]
    body: bytes
    received_at: datetime
    content_type: str = ""
    route: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        # Dedup key: the same bad payload sent 50 times is one quarantine item with a count.
        material = self.vendor.encode() + b"\n" + self.kind.encode() + b"\n" + self.body
        return hashlib.sha256(material).hexdigest()[:40]


class DynamoQuarantine:
    def __init__(self, dynamodb: Any, s3: Any, table: str, bucket: str, quarantine_days: int):
        self._ddb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket
        self._quarantine_days = quarantine_days

    def write(self, record: QuarantineRecord, max_inline: int = MAX_INLINE_BYTES) -> bool:
        """Keep a rejected payload for inspection and replay (one item per payload, a count of
        its sightings). True when first seen."""
        digest = record.digest
        received = iso_utc(record.received_at)
        values: dict[str, Any] = {
            "vendor": record.vendor,
            "kind": record.kind,
            "transport": record.transport,
            "reason": record.reason,
            "problems": [p.as_dict() for p in record.problems],
            "contentType": record.content_type,
            "route": record.route,
            "firstSeenAt": received,
            "gsi1pk": keys.quarantine_list_pk(record.vendor, digest),
            "gsi1sk": f"{received}#{digest}",
            "expiresAt": epoch_seconds(days_after(record.received_at, self._quarantine_days)),
            "bodySize": len(record.body),
        }
        # Decide on what would be stored (base64 grows a third), not on the raw size.
        try:
            inline = ("body", record.body.decode("utf-8"))
        except UnicodeDecodeError:
            inline = ("bodyBase64", base64.b64encode(record.body).decode())
        if not fits_inline(inline[1], max_inline):
            key = f"quarantine/{record.vendor}/{record.received_at:%Y/%m/%d}/{digest}.bin"
            try:
                self._s3.put_object(Bucket=self._bucket, Key=key, Body=record.body,
                                    ContentType=record.content_type or "application/octet-stream")
            except failures() as exc:
                raise unavailable("s3 put_object", exc) from None
            values["bodyRef"] = f"s3://{self._bucket}/{key}"
        else:
            values[inline[0]] = inline[1]
        names = {f"#a{i}": name for i, name in enumerate(values)}
        sets = ", ".join(f"#a{i} = if_not_exists(#a{i}, :a{i})" for i in range(len(values)))
        attr_values = {f":a{i}": to_attr(v) for i, v in enumerate(values.values())}
        attr_values[":one"] = {"N": "1"}
        attr_values[":now"] = {"S": received}
        # The call's own token: when botocore retries an update that did land (a slow answer, a
        # read timeout), the retry is refused instead of counting the same sighting twice.
        attr_values[":call"] = {"S": uuid.uuid4().hex}
        try:
            old = self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": keys.quarantine_pk(record.vendor, digest)}, "sk": {"S": keys.QUARANTINE_SK}},
                UpdateExpression=f"SET {sets}, lastSeenAt = :now, lastCall = :call ADD seenCount :one",
                ConditionExpression="attribute_not_exists(lastCall) OR lastCall <> :call",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attr_values,
                ReturnValues="UPDATED_OLD",
            )
        except failures() as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False  # this very call landed already (its retry is what failed)
            raise unavailable("dynamodb quarantine", exc) from None
        return "seenCount" not in old.get("Attributes", {})


def quarantined(ddb: Any, table: str, vendor: str, limit: int | None = 100, since: str | None = None,
                until: str | None = None, shards: int | None = None) -> list[dict[str, Any]]:
    """Payloads waiting in quarantine, newest first (gsi1 Q#{vendor}#{shard}); replayed ones drop out.
    `since`/`until` bound when each was first received (the list's sort key), [since, until)."""
    partitions = [keys.quarantine_list_shard_pk(vendor, n) for n in range(shards or keys.shard_count())]
    window: dict[str, Any] = {}
    if since or until:
        window = {"condition": "gsi1sk BETWEEN :lo AND :hi",
                  "values": {":lo": {"S": since or "0"}, ":hi": {"S": until or MAX_TIME}}}
    items = query_shards(ddb, table, partitions, "gsi1", limit, newest_first=True, **window)
    for item in items:
        item["id"] = item["pk"].rsplit("#", 1)[-1]
    return items


def read(ddb: Any, table: str, vendor: str, item_id: str) -> dict[str, Any] | None:
    """One quarantined payload by its id (replayed or not), or None."""
    found = ddb.get_item(TableName=table, Key={"pk": {"S": keys.quarantine_pk(vendor, item_id)},
                                               "sk": {"S": keys.QUARANTINE_SK}})
    return from_item(found["Item"]) if found.get("Item") else None


def record_edit(ddb: Any, table: str, item: dict[str, Any], edit: dict[str, Any]) -> None:
    """An operator's edit of a kept payload, appended to the item's `edits` before the edited
    payload is replayed (the console): who, when, and what changed, as the caller describes it
    (field paths and sizes, not values). What was kept stays as it was."""
    ddb.update_item(
        TableName=table, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
        UpdateExpression="SET edits = list_append(if_not_exists(edits, :none), :edit)",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeValues={":none": {"L": []}, ":edit": {"L": [to_attr(edit)]}},
    )


def mark_replayed(ddb: Any, table: str, item: dict[str, Any], event_ids: list[str], at: datetime) -> None:
    """A replayed payload off the list, naming the events it became. Failures are botocore's own
    (the replay reports each item's with its code)."""
    ddb.update_item(
        TableName=table, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
        # Leaving the gsi1 list is what marks it done; the item stays until its TTL for audit.
        UpdateExpression="SET replayedAt = :t, replayedEventIds = :ids REMOVE gsi1pk, gsi1sk",
        ExpressionAttributeValues={":t": {"S": iso_utc(at)}, ":ids": {"L": [{"S": e} for e in event_ids]}},
    )
