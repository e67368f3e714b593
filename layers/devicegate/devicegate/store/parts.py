"""Assembly items of records sent in parts (pk P#{vendor}#{device}, sk {kind}#{group}: a Mettax
face check's parts), each family's only writer and reader: the ingest functions keep each part on
its item once (`put`); the sweep lists the items still waiting past the deadline (`overdue`), reads
one (`read`) and marks it assembled (`mark_assembled`) once the record is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devicegate.core.envelope import NormalizedEvent
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.timeutil import days_after, epoch_seconds, iso_utc
from devicegate.infra.aws import INVALID_REQUEST, error_code, failures, query_pages, unavailable
from devicegate.store import keys
from devicegate.store.codec import from_item
from devicegate.store.limits import fits_inline

#: A record's parts share one item; two of them must fit in DynamoDB's 400 KB with room to spare.
#: A larger part is kept as an S3 object and the item holds its reference (OFFLOADED_PART).
MAX_PART_BYTES = 180_000
#: How an assembly item's part attribute names a part kept in S3: the part's JSON text always
#: starts with `{`, so the two cannot be confused.
OFFLOADED_PART = "s3://"


@dataclass
class PartsSoFar:
    parts: dict[str, str]  # part name -> dataJson, every part stored so far (this one included)
    new: bool  # this part was not stored before (not a retransmission)
    #: The sweep already published the record without some part (complete: false): the event
    #: completing it now is a second one, an update, under its own id.
    published_incomplete: bool = False


class DynamoParts:
    def __init__(self, dynamodb: Any, s3: Any, table: str, bucket: str = "", retention_days: Any = None):
        self._ddb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket
        self._retention_days = retention_days  # callable (vendor, kind) -> days

    def put(self, event: NormalizedEvent) -> PartsSoFar:
        """Keep one part of a record sent in parts (event.part) on its assembly item, once."""
        part = event.part
        assert part is not None
        held = event.dataJson
        if not fits_inline(held, MAX_PART_BYTES):
            # Every part shares one item (400 KB): a part this large is kept beside it, in S3, under
            # a key of its own (a retransmission rewrites the same object).
            key = (f"payloads/{event.vendor}/{keys.device_key(event.deviceId)}/parts/{event.kind}/"
                   f"{keys.device_key(part.group)}/{part.name}.json")
            try:
                self._s3.put_object(Bucket=self._bucket, Key=key, Body=held.encode("utf-8", "surrogatepass"),
                                    ContentType="application/json")
            except failures() as exc:
                raise unavailable("s3 put_object", exc) from None
            held = f"{OFFLOADED_PART}{self._bucket}/{key}"
        received = datetime.fromisoformat(event.receivedAt)
        # One UpdateItem: the part lands once (if_not_exists: a retransmission cannot replace
        # it), and ALL_OLD hands back the parts that arrived before it, in either order. Until
        # the sweep has seen it complete, the item stays listed as pending in gsi5 (PARTS), so a
        # record whose last part never comes still reaches the queue, marked incomplete.
        names = {"#p": f"part_{part.name}", "#g": "group", "#k": "kind"}
        values = {
            ":data": {"S": held}, ":vendor": {"S": event.vendor}, ":dev": {"S": event.deviceId},
            ":kind": {"S": event.kind}, ":group": {"S": part.group}, ":at": {"S": event.receivedAt},
            ":transport": {"S": event.transport},
            ":exp": {"N": str(epoch_seconds(days_after(received, self._retention_days(event.vendor, event.kind))))},
            ":pending": {"S": keys.parts_pending_pk(event.vendor, event.deviceId)},
            ":psk": {"S": keys.parts_pending_sk(event.receivedAt, event.vendor, event.deviceId, part.group)},
        }
        try:
            result = self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": keys.parts_pk(event.vendor, event.deviceId)},
                     "sk": {"S": keys.parts_sk(event.kind, part.group)}},
                UpdateExpression=("SET #p = if_not_exists(#p, :data), vendor = :vendor, deviceId = :dev, #k = :kind, "
                                  "#g = :group, firstReceivedAt = if_not_exists(firstReceivedAt, :at), "
                                  "lastReceivedAt = :at, "
                                  "transport = if_not_exists(transport, :transport), "
                                  "expiresAt = if_not_exists(expiresAt, :exp), "
                                  "gsi5pk = if_not_exists(gsi5pk, :pending), gsi5sk = if_not_exists(gsi5sk, :psk)"),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except failures() as exc:
            if error_code(exc) == INVALID_REQUEST:
                raise InvalidPayload("record cannot be stored as an item",
                                     [FieldProblem("body", "a value is too large for a table key")]) from None
            raise unavailable("dynamodb update_item", exc) from None
        before = result.get("Attributes", {})
        stored = {name[5:]: value["S"] for name, value in before.items() if name.startswith("part_") and "S" in value}
        new = part.name not in stored
        parts = self.load(stored)
        parts.setdefault(part.name, event.dataJson)
        published = before.get("assembledComplete", {}).get("BOOL")
        return PartsSoFar(parts, new, published_incomplete=published is False)

    def load(self, stored: dict[str, str]) -> dict[str, str]:
        """Part name -> its JSON text, those kept in S3 read back."""
        return {name: self._get_text(value) if value.startswith(OFFLOADED_PART) else value
                for name, value in stored.items()}

    def _get_text(self, ref: str) -> str:
        bucket, _, key = ref.removeprefix(OFFLOADED_PART).partition("/")
        try:
            return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", "surrogatepass")
        except failures() as exc:
            raise unavailable("s3 get_object (offloaded part)", exc) from None

    def overdue(self, cutoff: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """The keys (raw attribute values) of the assembly items still waiting whose first part
        came before `cutoff`, shard after shard (gsi5 PARTS#{shard}, KEYS_ONLY)."""
        for partition in keys.all_shards(keys.PARTS_PREFIX):
            for raw in query_pages(self._ddb, "pending parts query", TableName=self._table, IndexName="gsi5",
                                   ProjectionExpression="pk, sk",
                                   KeyConditionExpression="gsi5pk = :pk AND gsi5sk < :cutoff",
                                   ExpressionAttributeValues={":pk": {"S": partition}, ":cutoff": {"S": cutoff}}):
                yield raw["pk"], raw["sk"]

    def read(self, pk: dict[str, Any], sk: dict[str, Any]) -> dict[str, Any] | None:
        """The whole assembly item (the index holds only its keys), as it is now."""
        try:
            found = self._ddb.get_item(TableName=self._table, Key={"pk": pk, "sk": sk}, ConsistentRead=True)
        except failures() as exc:
            raise unavailable("pending parts read", exc) from None
        return from_item(found["Item"]) if found.get("Item") else None

    def mark_assembled(self, item: dict[str, Any], event_id: str, now: datetime, complete: bool) -> None:
        """Off the pending list, naming the event assembled from it (a retry keeps the first)."""
        try:
            # assembledComplete false tells the pipeline that a part arriving later completes a
            # record already published incomplete (it then publishes the completion too).
            self._ddb.update_item(
                TableName=self._table, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
                UpdateExpression=("SET assembledEventId = if_not_exists(assembledEventId, :e), assembledAt = :now, "
                                  "assembledComplete = if_not_exists(assembledComplete, :c) REMOVE gsi5pk, gsi5sk"),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":e": {"S": event_id}, ":now": {"S": iso_utc(now)},
                                           ":c": {"BOOL": complete}},
            )
        except failures() as exc:
            raise unavailable("pending parts update", exc) from None
