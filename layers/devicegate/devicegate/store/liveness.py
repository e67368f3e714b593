"""Online / offline: when each device was last heard from, and the transitions between the two.

Every device's summary item (pk D#{vendor}#{device}, sk S#summary, listed in gsi5 V#{vendor})
carries `heardAt`: when the gateway last *received* anything from the device. Received, not
happened: a device backfilling yesterday's records after a dead zone is talking now. The outbox
moves it forward for every stored event, heartbeats move it forward directly.

The sweep (functions/device_sweep) marks a device offline once `heardAt` is older than its
expected reporting interval: `online` false, `offlineSince`, and the sparse gsi3 keys
OFFLINE / {vendor}#{device}, so "every device offline now" is one Query. The next thing heard
from it clears them. Each transition also stores a `device.offline` / `device.online` event,
written in the same transaction as the state change (both or neither), which the outbox then
publishes like any other event. The ids derive from the times involved, so a retried sweep or
outbox batch finds its event already stored instead of writing a second one.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from devicegate.core.envelope import NormalizedEvent, canonical_json, make_event
from devicegate.core.timeutil import days_after, iso_utc, parse_time
from devicegate.infra.aws import CONDITION_FAILED, cancelled_by_conditions, error_code, failures, unavailable
from devicegate.infra.observability import logger
from devicegate.store import keys
from devicegate.store.items import event_item

OFFLINE = "device.offline"
ONLINE = "device.online"
#: Kinds the gateway itself writes about devices; they neither move state nor count as contact.
GATEWAY_KINDS = frozenset({OFFLINE, ONLINE})
# ONLINE and GROUP are DynamoDB reserved words.
_NAMES = {"#online": "online", "#grp": "group"}


def _id(kind: str, vendor: str, device_id: str, at: str) -> str:
    digest = hashlib.sha256(f"{vendor}\n{device_id}\n{at}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{kind}-{digest}"


def transition_event(kind: str, vendor: str, device_id: str, occurred_at: str, now: datetime,
                     data: dict[str, Any]) -> NormalizedEvent:
    """A device.offline / device.online event, keyed by the moment it describes."""
    return make_event(vendor=vendor, device_id=device_id, kind=kind, occurred_at=parse_time(occurred_at),
                      received_at=now, transport="gateway", data_json=canonical_json(data),
                      event_id=_id(kind, vendor, device_id, occurred_at))


def _summary_key(vendor: str, device_id: str) -> dict[str, Any]:
    return {"pk": {"S": keys.device_pk(vendor, device_id)}, "sk": {"S": keys.state_sk("summary")}}


class Liveness:
    def __init__(self, dynamodb: Any, table: str, retention_days=None):
        self._ddb = dynamodb
        self._table = table
        # callable (vendor, kind) -> days for the transition events' expiresAt
        self._retention_days = retention_days or (lambda vendor, kind: 365)

    def heard(self, vendor: str, device_id: str, at: str, now: datetime | None = None) -> bool:
        """The device was heard from at `at` (ISO UTC, a receive time). True when this brought
        it back online (a device.online event was stored)."""
        key = _summary_key(vendor, device_id)
        values = {":h": {"S": at}, ":vendor": {"S": vendor}, ":dev": {"S": device_id}, ":t": {"BOOL": True},
                  ":g5": {"S": keys.vendor_devices_pk(vendor)}, ":g5s": {"S": keys.device_key(device_id)},
                  ":grp": {"S": "summary"}}
        # ONLINE is a DynamoDB reserved word: every expression names it through #online.
        sets = ("heardAt = :h, #online = :t, vendor = :vendor, deviceId = :dev, #grp = :grp, "
                "gsi5pk = :g5, gsi5sk = :g5s")
        # Two writers may race (two outbox batches, the sweep): each attempt re-reads what the
        # condition refused, so the newest contact always lands and a comeback is stored once.
        for _ in range(3):
            try:
                # The common case, one write: an online device heard from again.
                self._ddb.update_item(
                    TableName=self._table, Key=key, UpdateExpression=f"SET {sets}",
                    ConditionExpression=("(attribute_not_exists(heardAt) OR heardAt < :h) "
                                         "AND attribute_not_exists(offlineSince)"),
                    ExpressionAttributeValues=values, ExpressionAttributeNames=_NAMES,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return False
            except failures() as exc:
                if error_code(exc) != CONDITION_FAILED:
                    raise unavailable("liveness update", exc) from None
                old = (getattr(exc, "response", None) or {}).get("Item") or {}
            if old.get("heardAt", {}).get("S", "") >= at:
                return False  # older news than what the item holds
            if "offlineSince" not in old:
                continue  # someone else brought it back meanwhile: retry the plain update
            offline_since = old["offlineSince"]["S"]
            now = now or datetime.now(parse_time(at).tzinfo)
            event = transition_event(ONLINE, vendor, device_id, at, now, {
                "onlineAt": at, "offlineSince": offline_since,
                "lastHeardAt": old.get("heardAt", {}).get("S"),
                # Contact the outbox recorded late (its lag) may predate the offline mark: the
                # mark was premature, and the device was never silent for a measurable time.
                "offlineForSeconds": max(0, int((parse_time(at) - parse_time(offline_since)).total_seconds())),
            })
            if self._transition(event, {
                "Key": key, "UpdateExpression": f"SET {sets} REMOVE offlineSince, gsi3pk, gsi3sk",
                "ConditionExpression": "offlineSince = :os AND heardAt < :h",
                "ExpressionAttributeValues": {**values, ":os": {"S": offline_since}},
                "ExpressionAttributeNames": _NAMES,
            }, now):
                return True
        return False

    def mark_offline(self, vendor: str, device_id: str, heard_at: str, offline_after_s: int, now: datetime) -> bool:
        """Mark a device offline that has been silent since `heard_at` (as read by the sweep).
        False when it was heard from meanwhile, or is offline already."""
        since_text = iso_utc(parse_time(heard_at) + timedelta(seconds=offline_after_s))
        event = transition_event(OFFLINE, vendor, device_id, since_text, now, {
            "lastHeardAt": heard_at, "offlineSince": since_text, "offlineAfterSeconds": offline_after_s,
            "detectedAt": iso_utc(now),
        })
        return self._transition(event, {
            "Key": _summary_key(vendor, device_id),
            "UpdateExpression": "SET #online = :f, offlineSince = :since, gsi3pk = :g3, gsi3sk = :g3s",
            # Exactly the silence the sweep saw: anything heard since then wins.
            "ConditionExpression": "heardAt = :h AND attribute_not_exists(offlineSince)",
            "ExpressionAttributeNames": {"#online": "online"},
            "ExpressionAttributeValues": {
                ":f": {"BOOL": False}, ":since": {"S": since_text}, ":h": {"S": heard_at},
                ":g3": {"S": keys.OFFLINE_PARTITION},
                ":g3s": {"S": f"{vendor}#{keys.device_key(device_id)}"},
            },
        }, now)

    def _transition(self, event: NormalizedEvent, update: dict[str, Any], now: datetime) -> bool:
        item = event_item(event, days_after(now, self._retention_days(event.vendor, event.kind)))
        try:
            self._ddb.transact_write_items(TransactItems=[
                {"Update": {"TableName": self._table, **update}},
                {"Put": {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}},
            ])
        except failures() as exc:
            if cancelled_by_conditions(exc):
                return False
            raise unavailable(f"{event.kind} transition", exc) from None
        logger.info("device transition", extra={"vendor": event.vendor, "kind": event.kind})
        return True
