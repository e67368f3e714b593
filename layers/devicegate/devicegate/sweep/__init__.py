"""The scheduled sweep (functions/device_sweep): devices that went silent, records whose parts
stopped coming, commands nobody answered.

1. Offline: each device's state item is listed in gsi5 under the bucket of time in which it
   becomes overdue (DUE#{shard} / {bucket}#{vendor}#{device}, KEYS_ONLY; store.devices moves it
   only when that bucket changes). The sweep queries, in every shard, only the buckets already
   past, reads those devices' items, and marks offline each one still silent for longer than its
   interval (core.offline: the deployment's OFFLINE_AFTER entry, else the vendor adapter's own,
   for AI cameras the interval each camera is told in its configuration) plus GRACE_SECONDS. A
   device heard from since it was listed has moved on to a later bucket already; one whose
   interval grew (a configuration change) is moved to its new bucket. So a run reads what is
   due, not the fleet: its cost follows the devices going silent.
2. Parts: a record sent in parts (a Mettax face check) whose parts are not all there
   PARTS_TIMEOUT_SECONDS after the first one is assembled from what came and stored, marked
   incomplete, so the queue still hears of it. Complete ones are only taken off the pending list.
3. Commands: a command sent to a device that got no answer by its deadline (plus a grace for the
   outbox's lag) is marked timed_out (gsi5 CMDPENDING#{shard}; devicegate.store.commands).
   Commands kept for the next contact: one past its expiry unsent is `expired` (gsi5
   CMDWAIT#{shard}, by `waitUntil`); an attempt unanswered is queued again for the next contact
   while attempts remain and its expiry has not passed, else timed out (gsi5 CMDSENT#{shard}).

The sweep queries gsi5 only, an index that holds nothing but keys: its role cannot read an event,
a person's data or a quarantined body through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from devicegate.core.errors import StorageUnavailable
from devicegate.core.offline import (  # noqa: F401 (the sweep's settings, re-exported)
    GRACE_SECONDS,
    OfflinePolicy,
    offline_after_spec,
    parse_offline_after,
)
from devicegate.core.timeutil import iso_utc, parse_time
from devicegate.infra.aws import query_pages
from devicegate.infra.observability import logger
from devicegate.infra.settings import DEFAULT_PARTS_TIMEOUT
from devicegate.store import keys
from devicegate.store.devices import DeviceStore
from devicegate.store.parts import DynamoParts


@dataclass
class SweepReport:
    devices: int = 0  # devices whose due bucket had passed (read by this run)
    marked_offline: int = 0
    parts_published: int = 0
    parts_incomplete: int = 0
    commands_timed_out: int = 0
    commands_expired: int = 0
    #: Unanswered attempts of waiting commands: queued again, or timed out after the last one.
    command_attempts_closed: int = 0
    errors: list[str] = field(default_factory=list)


class Sweep:
    def __init__(self, dynamodb: Any, table: str, store: Any, offline_after: dict[str, int | None],
                 vendors: list[str], adapter_for: Callable[[str], Any],
                 parts_timeout_s: int = DEFAULT_PARTS_TIMEOUT, retention_days=None):
        self._ddb = dynamodb
        self._table = table
        self._store = store  # EventStore: put_event for assembled records
        self._policy = OfflinePolicy(offline_after, adapter_for)
        self._vendors = set(vendors)
        self._adapter_for = adapter_for
        self._parts_timeout = parts_timeout_s
        self._devices = DeviceStore(dynamodb, table, retention_days)
        self._retention = retention_days
        self._parts = DynamoParts(dynamodb, None, table)

    def run(self, now: datetime) -> SweepReport:
        report = SweepReport()
        for partition in keys.all_shards(keys.DUE_PREFIX):
            try:
                self._sweep_due(partition, now, report)
            except Exception as exc:  # one shard's trouble (storage, a bad setting) must not stop the others
                logger.error("sweeping due devices failed", extra={"partition": partition,
                                                                   "error_type": type(exc).__name__})
                report.errors.append(f"{partition}: {type(exc).__name__}")
        try:
            self._sweep_parts(now, report)
        except Exception as exc:
            logger.error("sweeping pending parts failed", extra={"error_type": type(exc).__name__})
            report.errors.append(f"parts: {type(exc).__name__}")
        try:
            from devicegate.store.commands import (
                DynamoCommandStore,
                expire_waiting,
                retry_or_fail_sent,
                time_out_overdue,
            )

            commands = DynamoCommandStore(self._ddb, self._table, self._retention)
            report.commands_timed_out = time_out_overdue(commands, now)
            report.commands_expired = expire_waiting(commands, now)
            report.command_attempts_closed = retry_or_fail_sent(commands, now)
        except Exception as exc:  # like the steps above: reported (the run fails), the others still ran
            logger.error("timing out overdue commands failed", extra={"error_type": type(exc).__name__})
            report.errors.append(f"commands: {type(exc).__name__}")
        return report

    # -- offline -------------------------------------------------------------------------
    def _sweep_due(self, partition: str, now: datetime, report: SweepReport) -> None:
        due: list[tuple[str, str]] = []
        for sort_key in self._keys(partition, iso_utc(now)):
            _, vendor, device_key = sort_key.split("#", 2)
            if vendor in self._vendors:
                due.append((vendor, unquote(device_key)))
        for start in range(0, len(due), 100):
            chunk = due[start:start + 100]
            found = self._devices.read(chunk, configs_of=[d for d in chunk if self._policy.needs_config(d[0])])
            for vendor, device in chunk:
                item = found.get((vendor, device))
                if item is None or "heardAt" not in item or "offlineSince" in item:
                    continue  # gone (expired), or offline already: the index entry is stale
                report.devices += 1
                config = found.get(("config", vendor, device), {}).get("config")
                interval = self._policy.interval(vendor, config if isinstance(config, dict) else None)
                silent = (now - parse_time(item["heardAt"])).total_seconds()
                if interval is not None and silent > interval + GRACE_SECONDS:
                    if self._devices.mark_offline(item, interval, now):
                        report.marked_offline += 1
                else:
                    # Listed too early: its interval grew, or is off now, since it reported.
                    self._devices.rebucket(item, interval)

    def _keys(self, partition: str, now_text: str) -> Iterator[str]:
        """Sort keys of the entries in `partition` whose bucket has passed."""
        for raw in query_pages(self._ddb, "due devices query", TableName=self._table, IndexName="gsi5",
                               ProjectionExpression="gsi5sk", KeyConditionExpression="gsi5pk = :pk AND gsi5sk < :now",
                               ExpressionAttributeValues={":pk": {"S": partition}, ":now": {"S": now_text}}):
            yield raw["gsi5sk"]["S"]

    # -- parts ---------------------------------------------------------------------------
    def _sweep_parts(self, now: datetime, report: SweepReport) -> None:
        cutoff = iso_utc(now - timedelta(seconds=self._parts_timeout))
        for pk, sk in self._parts.overdue(cutoff):
            try:
                item = self._parts.read(pk, sk)
                if item is not None:
                    self._publish_parts(item, now, report)
            except StorageUnavailable:
                raise
            except Exception as exc:  # an adapter bug on one record must not stop the sweep
                logger.error("assembling pending parts failed", extra={"error_type": type(exc).__name__})
                report.errors.append(f"parts: {type(exc).__name__}")

    def _publish_parts(self, item: dict[str, Any], now: datetime, report: SweepReport) -> None:
        parts = self._store.load_parts({name[5:]: value for name, value in item.items()
                                        if name.startswith("part_") and isinstance(value, str)})
        adapter = self._adapter_for(item["vendor"])
        # Received when its last part was, not now: the event says when the gateway heard it.
        received = parse_time(item.get("lastReceivedAt") or item.get("firstReceivedAt") or iso_utc(now))
        event = adapter.assemble(item["deviceId"], item["group"], parts, received, item.get("transport", "http"))
        complete = bool(event.data.get("complete", True))
        # Stored first (a retry finds it and does not store it twice), then off the pending list.
        if self._store.put_event(event):
            report.parts_published += 1
            if not complete:
                report.parts_incomplete += 1
        self._parts.mark_assembled(item, event.eventId, now, complete)
