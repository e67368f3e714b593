"""One item per device: every state group, last contact, online or offline — written once per
outbox batch (and once per sweep transition), whatever the batch said about the device.

Item: pk D#{vendor}#{device}, sk S. Attributes:
- `state`: {group: {"at": time, "eventId": id, "value": {...}}}; each group moves forward only
  with a newer `at` (an old or backfilled record never moves it back), independently of the others;
  a value is bounded (store.limits: long free text cut, `"truncated": true` beside it, the whole
  record in the event `eventId` names) and so is the number of groups, so no record can push the
  item past DynamoDB's 400 KB;
- `heardAt` (last contact, a receive time), `online`, and while offline `offlineSince`;
- `version`: the optimistic lock every writer checks and moves (the outbox, the sweep, a
  heartbeat), so two writers that read the same item cannot both write what they merged;
- index keys: gsi2 V#{vendor}#{shard} / {device} (the vendor's device list, KEYS_ONLY, written
  once, when the device is first seen), gsi5 DUE#{shard} / {bucket}#{vendor}#{device} (KEYS_ONLY:
  when the device becomes overdue, rounded up to a bucket; rewritten only when that bucket moves,
  which is all the sweep reads) and, while offline, gsi3 OFFLINE#{shard} / {vendor}#{device}.
  No index projects what changes on every event, so an ordinary state write is the base item
  alone (one write unit per KB).

A write is read, merge, conditional put: the read is one BatchGetItem for a whole batch of
devices (half a read unit each), the write one PutItem per device that changed (nothing for a
retried batch). A put refused by the lock re-reads that device consistently and merges again. A
put DynamoDB refuses as such (ValidationException), or a merge that raises, fails that device
alone (Applied.failure): the caller records it, and the batch's other devices and its messages go
on; only transient failures (StorageUnavailable) fail the batch, to be retried.
Offline -> online and online -> offline are transactions with the device.online / device.offline
event they publish, so the event exists exactly when the transition happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from devicegate.core.envelope import NormalizedEvent
from devicegate.core.errors import ItemRefused, StorageUnavailable
from devicegate.core.offline import GRACE_SECONDS, OfflinePolicy
from devicegate.core.timeutil import days_after, epoch_seconds, iso_utc, parse_time
from devicegate.infra.aws import (
    CONDITION_FAILED,
    cancellation_reasons,
    cancelled_by_conditions,
    error_code,
    failures,
    refused_item,
    unavailable,
)
from devicegate.infra.observability import innermost_frame, logger
from devicegate.store import keys
from devicegate.store.codec import from_item, to_attr
from devicegate.store.items import event_item
from devicegate.store.limits import MAX_STATE_GROUPS, bounded
from devicegate.store.liveness import OFFLINE, ONLINE, transition_event

#: Attempts of one device's read-merge-write when other writers keep winning the lock.
MAX_ATTEMPTS = 4
#: A transition transaction cancelled by throttling or a conflict is tried again after each of
#: these pauses (None: give up).
TRANSACTION_RETRY_PAUSES_S = (0.05, 0.2, None)
#: The due bucket is a quarter of the device's offline interval, at least this: a device reporting
#: every minute moves its bucket (an index write) once per quarter interval, not once per report.
#: Buckets round down, so the sweep reads a device a little early rather than late: one that is
#: not overdue yet stays where it is and is read again by the next run.
MIN_BUCKET_S = 300


@dataclass(frozen=True)
class GroupNews:
    #: What the group is ordered by: the event's occurredAt, but at most 5 minutes past its
    #: receipt (outbox.batch.state_at), so a clock running ahead cannot freeze a group.
    at: str
    event_id: str
    value: dict[str, Any]


@dataclass
class DeviceNews:
    """What one outbox batch (or a heartbeat) says about one device."""

    vendor: str
    device_id: str
    groups: dict[str, GroupNews] = field(default_factory=dict)
    heard_at: str | None = None  # the newest receive time of new contact
    #: Seconds of silence after which the device is offline (None: not tracked); decides the due
    #: bucket the sweep reads.
    offline_after_s: int | None = None

    def merge(self, other: DeviceNews) -> None:
        for group, news in other.groups.items():
            if group not in self.groups or news.at > self.groups[group].at:
                self.groups[group] = news
        if other.heard_at and (self.heard_at is None or other.heard_at > self.heard_at):
            self.heard_at = other.heard_at


@dataclass(frozen=True)
class Applied:
    changed: bool  # something was written
    came_online: bool = False
    #: Why this device's write failed for good (a refused item's code, a merge's exception type);
    #: None when it did not. The news is not applied; the caller records it where operators look.
    failure: str | None = None
    #: Commands waiting for this device's next contact (the item's `waitingCommands`, as read with
    #: the batch): the outbox sends them when this is above zero, and looks for none otherwise.
    waiting: int = 0


def _key(vendor: str, device_id: str) -> dict[str, Any]:
    return {"pk": {"S": keys.device_pk(vendor, device_id)}, "sk": {"S": keys.STATE_SK}}


def due_bucket(heard_at: str, offline_after_s: int) -> str:
    """The time (ISO) the device becomes overdue (its interval plus the outbox's grace), rounded
    down to its bucket: the sweep reads a bucket once it has begun."""
    width = max(MIN_BUCKET_S, offline_after_s // 4)
    due = epoch_seconds(parse_time(heard_at)) + offline_after_s + GRACE_SECONDS
    return iso_utc(datetime.fromtimestamp((due // width) * width, tz=UTC))


class DeviceStore:
    def __init__(self, dynamodb: Any, table: str, retention_days: Callable[[str, str], int] | None = None):
        self._ddb = dynamodb
        self._table = table
        self._retention_days = retention_days or (lambda vendor, kind: 365)

    # -- reads -------------------------------------------------------------------------------
    def read(self, devices: Iterable[tuple[str, str]], consistent: bool = False,
             configs_of: Iterable[tuple[str, str]] = ()) -> dict[Any, dict[str, Any]]:
        """The state items of many devices (absent ones left out), 100 keys per BatchGetItem;
        with `configs_of`, those devices' configuration items in the same calls, under
        ("config", vendor, device)."""
        wanted: dict[tuple[str, str], Any] = {}
        for vendor, device in devices:
            wanted[(keys.device_pk(vendor, device), keys.STATE_SK)] = (vendor, device)
        for vendor, device in configs_of:
            wanted[(keys.config_pk(vendor, device), keys.CONFIG_SK)] = ("config", vendor, device)
        found: dict[Any, dict[str, Any]] = {}
        pairs = list(wanted)
        for start in range(0, len(pairs), 100):
            request: dict[str, Any] = {self._table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in pairs[start:start + 100]],
                "ConsistentRead": consistent}}
            for attempt in range(MAX_ATTEMPTS + 1):
                if attempt:
                    time.sleep(0.05 * 2 ** attempt)  # keys handed back under load: back off first
                try:
                    answer = self._ddb.batch_get_item(RequestItems=request)
                except failures() as exc:
                    raise unavailable("device state read", exc) from None
                for raw in answer.get("Responses", {}).get(self._table, []):
                    item = from_item(raw)
                    found[wanted[(item["pk"], item["sk"])]] = item
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise StorageUnavailable("device state read left keys unprocessed")
        return found

    def get(self, vendor: str, device_id: str, consistent: bool = True) -> dict[str, Any] | None:
        return self.read([(vendor, device_id)], consistent).get((vendor, device_id))

    # -- the outbox and heartbeats -------------------------------------------------------------
    def apply_many(self, news: list[DeviceNews], now: datetime, policy: OfflinePolicy | None = None) -> list[Applied]:
        """Every device's news in one read (BatchGetItem, with the configuration items the
        offline intervals need) and one write per device whose item changes."""
        wants_config = [(n.vendor, n.device_id) for n in news if policy and policy.needs_config(n.vendor)]
        current = self.read([(n.vendor, n.device_id) for n in news], configs_of=wants_config)
        applied = []
        for one in news:
            if policy is not None:
                config = current.get(("config", one.vendor, one.device_id), {}).get("config")
                one.offline_after_s = policy.interval(one.vendor, config if isinstance(config, dict) else None)
            item = current.get((one.vendor, one.device_id))
            done = self._apply_alone(one, item, now)
            waiting = int((item or {}).get("waitingCommands") or 0)
            applied.append(replace(done, waiting=waiting) if waiting > 0 else done)
        return applied

    def _apply_alone(self, news: DeviceNews, current: dict[str, Any] | None, now: datetime) -> Applied:
        """apply(), with a failure that would recur on every retry kept to this device."""
        try:
            return self.apply(news, current, now)
        except StorageUnavailable:
            raise  # transient: the whole batch is retried
        except ItemRefused as exc:
            logger.error("device state write refused", extra={"vendor": news.vendor, "code": exc.code})
            return Applied(changed=False, failure=exc.code)
        except Exception as exc:  # a merge bug on one device's item must not stop the others
            logger.error("device state merge raised", extra={"vendor": news.vendor, "error_type": type(exc).__name__,
                                                             "where": innermost_frame(exc)})
            return Applied(changed=False, failure=type(exc).__name__)

    def apply(self, news: DeviceNews, current: dict[str, Any] | None, now: datetime) -> Applied:
        """Merge `news` into the device's item (`current`, as read; None when absent) and write
        it if anything moved; on a lost race, read again and merge again."""
        for _ in range(MAX_ATTEMPTS):
            merged = self._merged(news, current)
            if merged is None:
                return Applied(changed=False)
            item, came_online = merged
            try:
                if came_online:
                    self._transact(item, current, transition_event(ONLINE, news.vendor, news.device_id,
                                                                   item["heardAt"], now, {
                        "onlineAt": item["heardAt"], "offlineSince": current["offlineSince"] if current else None,
                        "lastHeardAt": (current or {}).get("heardAt"),
                        # Contact the outbox recorded late (its lag) may predate the offline
                        # mark: the mark was premature, the device never silent for long.
                        "offlineForSeconds": max(0, int((parse_time(item["heardAt"]) - parse_time(
                            current["offlineSince"])).total_seconds())) if current else 0,
                    }), now)
                    logger.info("device transition", extra={"vendor": news.vendor, "kind": ONLINE})
                else:
                    self._put(item, current)
                return Applied(changed=True, came_online=came_online)
            except _LostRace:
                current = self.get(news.vendor, news.device_id, consistent=True)
        raise StorageUnavailable("device state kept changing under the outbox")

    def _merged(self, news: DeviceNews, current: dict[str, Any] | None) -> tuple[dict[str, Any], bool] | None:
        """The item after `news`, and whether it brings the device back online; None when the
        news changes nothing (all older than what is there: a retried batch)."""
        item: dict[str, Any] = dict(current) if current else {
            "pk": keys.device_pk(news.vendor, news.device_id), "sk": keys.STATE_SK, "vendor": news.vendor,
            "deviceId": news.device_id, "state": {}, "version": 0,
            # The device list: written once, with the item (KEYS_ONLY index, never moved).
            "gsi2pk": keys.vendor_devices_pk(news.vendor, keys.shard(news.vendor, news.device_id)),
            "gsi2sk": keys.device_key(news.device_id),
        }
        state: dict[str, Any] = dict(item.get("state") or {})
        changed = current is None
        for group, value in news.groups.items():
            held = state.get(group)
            if held is None or value.at > held.get("at", ""):
                kept, cut = bounded(value.value)
                state[group] = {"at": value.at, "eventId": value.event_id, "value": kept}
                if cut:
                    state[group]["truncated"] = True
                changed = True
        if len(state) > MAX_STATE_GROUPS:
            # Groups named by content (a slave lock's id) have no natural end: the one updated
            # longest ago goes; `summary` (what the device last sent) always stays.
            by_age = sorted((g for g in state if g != "summary"), key=lambda g: state[g].get("at", ""))
            for group in by_age[:len(state) - MAX_STATE_GROUPS]:
                del state[group]
        item["state"] = state
        came_online = False
        if news.heard_at and news.heard_at > item.get("heardAt", ""):
            item["heardAt"] = news.heard_at
            changed = True
            if "offlineSince" in item:
                came_online = True
                for name in ("offlineSince", "gsi3pk", "gsi3sk"):
                    item.pop(name, None)
            item["online"] = True
        if "heardAt" in item and item.get("online", True):
            self._set_due(item, news)
        if not changed:
            return None
        return item, came_online

    def _set_due(self, item: dict[str, Any], news: DeviceNews) -> None:
        if news.offline_after_s is None:
            item.pop("gsi5pk", None)
            item.pop("gsi5sk", None)
            return
        item["gsi5pk"] = keys.due_pk(news.vendor, news.device_id)
        item["gsi5sk"] = keys.due_sk(due_bucket(item["heardAt"], news.offline_after_s), news.vendor, news.device_id)

    # -- the sweep ------------------------------------------------------------------------------
    def mark_offline(self, current: dict[str, Any], offline_after_s: int, now: datetime) -> bool:
        """Mark a device offline that has been silent since `current["heardAt"]` (the item as the
        sweep read it). False when it was heard from meanwhile, or is offline already."""
        if "offlineSince" in current or "heardAt" not in current:
            return False
        vendor, device = current["vendor"], current["deviceId"]
        heard = current["heardAt"]
        since = iso_utc(parse_time(heard) + timedelta(seconds=offline_after_s))
        item = dict(current, online=False, offlineSince=since,
                    gsi3pk=keys.offline_pk(vendor, device),
                    gsi3sk=keys.offline_sk(vendor, device))
        item.pop("gsi5pk", None)  # no longer due: it is offline
        item.pop("gsi5sk", None)
        event = transition_event(OFFLINE, vendor, device, since, now, {
            "lastHeardAt": heard, "offlineSince": since, "offlineAfterSeconds": offline_after_s,
            "detectedAt": iso_utc(now)})
        try:
            self._transact(item, current, event, now)
        except _LostRace:
            return False  # heard from, or marked, by someone else meanwhile: that write wins
        logger.info("device transition", extra={"vendor": vendor, "kind": OFFLINE})
        return True

    def rebucket(self, current: dict[str, Any], offline_after_s: int | None) -> None:
        """Move an online device's due bucket (its interval changed since it last reported)."""
        news = DeviceNews(current["vendor"], current["deviceId"], offline_after_s=offline_after_s)
        item = dict(current)
        self._set_due(item, news)
        if item.get("gsi5sk") != current.get("gsi5sk"):
            try:
                self._put(item, current)
            except _LostRace:
                pass  # it reported meanwhile: the outbox set its bucket

    # -- writes -------------------------------------------------------------------------------
    def _versioned(self, item: dict[str, Any], current: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        version = int((current or {}).get("version", 0))
        written = dict(item, version=version + 1)
        condition: dict[str, Any]
        if current is None:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {"ConditionExpression": "#version = :version", "ExpressionAttributeNames": {"#version": "version"},
                         "ExpressionAttributeValues": {":version": {"N": str(version)}}}
        return written, condition

    def _put(self, item: dict[str, Any], current: dict[str, Any] | None) -> None:
        written, condition = self._versioned(item, current)
        try:
            self._ddb.put_item(TableName=self._table, Item={k: to_attr(v) for k, v in written.items()}, **condition)
        except failures() as exc:
            if error_code(exc) == CONDITION_FAILED:
                raise _LostRace() from None
            if refused_item(exc):
                raise ItemRefused("device state write", error_code(exc)) from None
            raise unavailable("device state write", exc) from None

    def _transact(self, item: dict[str, Any], current: dict[str, Any] | None, event: NormalizedEvent,
                  now: datetime) -> None:
        written, condition = self._versioned(item, current)
        stored = event_item(event, days_after(now, self._retention_days(event.vendor, event.kind)))
        actions = [
            {"Put": {"TableName": self._table, "Item": {k: to_attr(v) for k, v in written.items()}, **condition}},
            {"Put": {"TableName": self._table, "Item": stored, "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
        for pause in TRANSACTION_RETRY_PAUSES_S:
            try:
                self._ddb.transact_write_items(TransactItems=actions)
                return
            except failures() as exc:
                # Only a refused condition is a lost race (the item moved, or the event is
                # there). A throttled or conflicting transaction, which botocore does not retry,
                # is tried again after a pause, then fails the batch or run (retried as a whole).
                if cancelled_by_conditions(exc):
                    raise _LostRace() from None
                if refused_item(exc):
                    raise ItemRefused(f"{event.kind} transition", "ValidationError") from None
                if pause is None or not cancellation_reasons(exc):
                    raise unavailable(f"{event.kind} transition", exc) from None
            time.sleep(pause)


class _LostRace(Exception):
    """Another writer changed the item (or stored the transition) since it was read."""
