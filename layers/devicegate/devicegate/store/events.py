"""Storage behind a small interface; one DynamoDB (+ S3 for large payloads) implementation.

Hot path: one conditional PutItem per event. The condition is the dedup: an event's key is its
device, its time and its id (store.keys.event_pk/event_sk), all three the same for a
retransmission, which so finds its own item and is answered as accepted without a second item (and
so without a second stream record or queue message). An event timed by its receipt (no device
time: NormalizedEvent.device_time) would get a new key each time it is sent, and one whose vendor id
alone is its identity (NormalizedEvent.unique_id) may come again with its time restated; both
claim an id marker first, which hands a retransmission the key the first copy was stored under.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from devicegate.core.envelope import Heartbeat, NormalizedEvent
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.offline import OfflinePolicy
from devicegate.core.timeutil import days_after, parse_time
from devicegate.infra.aws import CONDITION_FAILED, INVALID_REQUEST, error_code, failures, unavailable
from devicegate.store import keys
from devicegate.store.items import event_item
from devicegate.store.limits import MAX_INLINE_BYTES, fits_inline
from devicegate.store.parts import MAX_PART_BYTES, OFFLOADED_PART, DynamoParts, PartsSoFar  # noqa: F401 (re-exported)
from devicegate.store.quarantine import DynamoQuarantine, QuarantineRecord  # noqa: F401 (re-exported)


class PayloadMissing(Exception):
    """An offloaded record's object is not in the bucket (NoSuchKey): no retry brings it back."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def load_offloaded(s3: Any, ref: str) -> dict[str, Any]:
    """The record an offloaded event's item points at (`dataRef`, s3://{bucket}/{key}), as it
    was stored (the canonical JSON of the vendor record). StorageUnavailable when S3 fails,
    PayloadMissing when the object is gone."""
    import json

    bucket, _, key = ref.removeprefix("s3://").partition("/")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except failures() as exc:
        if error_code(exc) in ("NoSuchKey", "NoSuchBucket"):
            raise PayloadMissing(error_code(exc)) from None
        raise unavailable("s3 get_object (offloaded record)", exc) from None
    record = json.loads(body)
    return record if isinstance(record, dict) else {"value": record}


class EventStore(Protocol):
    def put_event(self, event: NormalizedEvent) -> bool:
        """Store once (its media objects first). True when new, False when the same event id is
        already stored."""

    def heartbeat(self, beat: Heartbeat) -> None:
        """Move a source's last-seen time forward (never backwards)."""

    def put_part(self, event: NormalizedEvent) -> PartsSoFar:
        """Keep one part of a record sent in parts (event.part) on its assembly item, once."""

    def load_parts(self, stored: dict[str, str]) -> dict[str, str]:
        """Parts as an assembly item holds them (name -> JSON text or an S3 reference) -> name ->
        JSON text, the offloaded ones read back."""

    def quarantine(self, record: QuarantineRecord) -> bool:
        """Keep a rejected payload for inspection and replay. True when first seen."""


class DynamoEventStore:
    def __init__(self, dynamodb: Any, s3: Any, table: str, bucket: str,
                 retention_days, quarantine_days: int, policy: OfflinePolicy | None = None):
        self._ddb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket
        self._retention_days = retention_days  # callable (vendor, kind) -> days
        self._quarantine_days = quarantine_days
        self._policy = policy  # offline intervals, for the sources of heartbeats
        self._parts = DynamoParts(dynamodb, s3, table, bucket, retention_days)
        self._quarantine = DynamoQuarantine(dynamodb, s3, table, bucket, quarantine_days)

    def put_event(self, event: NormalizedEvent) -> bool:
        received = datetime.fromisoformat(event.receivedAt)
        # Retention counts from receipt: a record backfilled from 2020 must not expire at once.
        item = event_item(event, days_after(received, self._retention_days(event.vendor, event.kind)))
        # Bytes, as DynamoDB counts them: 300,000 CJK characters are 900 KB.
        if not fits_inline(item["data"]["S"], MAX_INLINE_BYTES):
            item = self._offload_data(event, item, received)
        # Objects before the item: once the item exists (and so the queue message), everything it
        # references exists too. A retransmission rewrites the same keys with the same bytes.
        for media in event.media:
            self._put_object(media.key, media.body, media.content_type)
        if event.keyed_by_id:
            item = self._claim_id(event, item)
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            )
        except failures() as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            if error_code(exc) == INVALID_REQUEST:
                # The item itself is unstorable (a key over DynamoDB's size limits...): retrying
                # cannot help, so the payload goes to quarantine like any other bad input.
                raise InvalidPayload("record cannot be stored as an item",
                                     [FieldProblem("body", "a value is too large for a table key")]) from None
            raise unavailable("dynamodb put_item", exc) from None
        return True

    def _claim_id(self, event: NormalizedEvent, item: dict[str, Any]) -> dict[str, Any]:
        """The item under the key the event's first copy claimed. Marker first, event second: a
        copy whose event write failed after its marker landed is retried by the vendor, and the
        retry finds the marker, writes the event under the marker's key, and only then is
        answered; a retry after both landed finds the event too (a duplicate)."""
        marker = {"pk": {"S": keys.event_id_pk(event.vendor, event.deviceId)}, "sk": {"S": event.eventId},
                  "eventSk": item["sk"], "occurredAt": item["occurredAt"], "receivedAt": item["receivedAt"],
                  "expiresAt": item["expiresAt"]}
        try:
            self._ddb.put_item(TableName=self._table, Item=marker, ConditionExpression="attribute_not_exists(pk)",
                               ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return item
        except failures() as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise unavailable("dynamodb put_item (id marker)", exc) from None
            first = (getattr(exc, "response", None) or {}).get("Item") or {}
        if "eventSk" not in first:
            return item  # cannot happen with this code's markers; the event's own key is safe
        claimed = dict(item, sk=first["eventSk"], occurredAt=first["occurredAt"], receivedAt=first["receivedAt"])
        if "gsi4sk" in claimed:
            claimed["gsi4sk"] = first["eventSk"]
        if "gsi3sk" in claimed:
            claimed["gsi3sk"] = {"S": keys.alarm_sk(first["occurredAt"]["S"], event.vendor, event.eventId)}
        return claimed

    def _offload_data(self, event: NormalizedEvent, item: dict[str, Any], received: datetime) -> dict[str, Any]:
        # The day it happened, not the day received: a retransmission days later (a terminal's
        # backlog) must find the same key, not leave a second, orphaned object.
        occurred = datetime.fromisoformat(event.occurredAt)
        key = (f"payloads/{event.vendor}/{keys.device_key(event.deviceId)}/"
               f"{occurred:%Y/%m/%d}/{event.eventId}.json")
        self._put_object(key, item["data"]["S"].encode(), "application/json")
        return dict(item, data={"S": "{}"}, dataRef={"S": f"s3://{self._bucket}/{key}"})

    def _put_object(self, key: str, body: bytes, content_type: str) -> None:
        try:
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)
        except failures() as exc:
            raise unavailable("s3 put_object", exc) from None

    def heartbeat(self, beat: Heartbeat) -> None:
        from devicegate.store.devices import DeviceNews, DeviceStore, GroupNews

        # The device item the outbox keeps for events: the source shows in the vendor's device
        # list with its last-seen time, an older beat never wins, and it counts as contact.
        news = DeviceNews(beat.vendor, beat.source, heard_at=beat.at,
                          groups={"summary": GroupNews(beat.at, "", {"lastKind": "heartbeat", "lastReceivedAt": beat.at})})
        DeviceStore(self._ddb, self._table, self._retention_days).apply_many([news], parse_time(beat.at), self._policy)

    def put_part(self, event: NormalizedEvent) -> PartsSoFar:
        return self._parts.put(event)

    def load_parts(self, stored: dict[str, str]) -> dict[str, str]:
        return self._parts.load(stored)

    def quarantine(self, record: QuarantineRecord) -> bool:
        # The same inline limit as an event's data (read here, where it is set).
        return self._quarantine.write(record, MAX_INLINE_BYTES)
