"""State writes that failed for good: where an operator finds them (`devicegate state-failures`).

The outbox moves items forward from events (a device's state, an alarm's lifecycle, a command's
status). When DynamoDB refuses one of those writes as such (ValidationException), or the code
merging it raises, retrying the batch would fail the same way and hold back every other event in
it. So the write is given up for that device alone, its events are published anyway, and the
failure is kept here: one item per device and kind of write, with how often and when it failed,
the error's code (never a value of the record) and the last events concerned.

Item: pk SF#{vendor}#{device}, sk {what} (device | alarm | command | state-patch | payload);
listed per vendor, newest first, in gsi1 SF#{vendor}#{shard} / {lastAt}#{device}#{what}. It expires
after the quarantine's retention, like other things kept for inspection.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devicegate.core.timeutil import days_after, epoch_seconds, iso_utc
from devicegate.infra.aws import CONDITION_FAILED, error_code, failures, query_pages, unavailable
from devicegate.store import keys
from devicegate.store.codec import from_item

#: Events named on a failure item: enough to find the records, bounded so the item stays small.
MAX_EVENT_IDS = 10
#: What failed, as recorded (`sk`).
WHATS = ("device", "alarm", "command", "state-patch", "payload")


@dataclass(frozen=True)
class StateFailure:
    vendor: str
    device_id: str
    what: str  # one of WHATS
    error: str  # an error code or exception type, never a message (it may quote a value)
    event_ids: tuple[str, ...]


class StateFailures:
    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30):
        self._ddb = dynamodb
        self._table = table
        self._retention_days = retention_days

    def record(self, failure: StateFailure, now: datetime) -> None:
        """Count one more failure of this kind for this device. A StorageUnavailable fails the
        batch (retried): the failure is never lost, at worst counted twice."""
        at = iso_utc(now)
        ids = list(dict.fromkeys(failure.event_ids))[-MAX_EVENT_IDS:]
        device = keys.device_key(failure.device_id)
        values: dict[str, Any] = {
            ":vendor": {"S": failure.vendor}, ":device": {"S": failure.device_id}, ":what": {"S": failure.what},
            ":error": {"S": failure.error[:200]}, ":at": {"S": at}, ":one": {"N": "1"},
            ":ids": {"L": [{"S": i} for i in ids]} if ids else {"L": []},
            ":g1": {"S": keys.state_failures_pk(failure.vendor, failure.device_id)},
            ":g1s": {"S": f"{at}#{device}#{failure.what}"},
            ":exp": {"N": str(epoch_seconds(days_after(now, self._retention_days)))},
            # The call's own token: a retry of an update that landed is refused, not counted twice.
            ":call": {"S": uuid.uuid4().hex},
        }
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": keys.state_failure_pk(failure.vendor, failure.device_id)},
                     "sk": {"S": failure.what}},
                UpdateExpression=("SET vendor = :vendor, deviceId = :device, #what = :what, #error = :error, "
                                  "lastAt = :at, firstAt = if_not_exists(firstAt, :at), eventIds = :ids, "
                                  "gsi1pk = :g1, gsi1sk = :g1s, expiresAt = :exp, lastCall = :call "
                                  "ADD #count :one"),
                ConditionExpression="attribute_not_exists(lastCall) OR lastCall <> :call",
                ExpressionAttributeNames={"#what": "what", "#error": "error", "#count": "count"},
                ExpressionAttributeValues=values,
            )
        except failures() as exc:
            if error_code(exc) == CONDITION_FAILED:
                return  # this very call landed already (its retry is what failed)
            raise unavailable("state failure record", exc) from None

    def for_vendor(self, vendor: str, limit: int | None = None) -> list[dict[str, Any]]:
        """A vendor's failure items, newest first (every shard, merged)."""
        items: list[dict[str, Any]] = []
        for number in range(keys.shard_count()):
            for raw in query_pages(self._ddb, "state failures query", TableName=self._table, IndexName="gsi1",
                                   KeyConditionExpression="gsi1pk = :pk",
                                   ExpressionAttributeValues={":pk": {"S": keys.state_failures_shard_pk(vendor,
                                                                                                        number)}},
                                   ScanIndexForward=False):
                items.append(from_item(raw))
        items.sort(key=lambda item: item.get("gsi1sk", ""), reverse=True)
        return items[:limit] if limit is not None else items
