"""The scheduled sweep (functions/device_sweep): devices that went silent, and records whose
parts stopped coming.

1. Offline: every device of every vendor with a reporting interval is listed from its summary
   items (gsi5 V#{vendor}, one paginated Query per vendor); one whose last contact (`heardAt`)
   is older than its interval (plus GRACE_SECONDS) is marked offline (devicegate.store.liveness).
   The interval is the deployment's OFFLINE_AFTER entry for the vendor (seconds, or "off"), else
   the vendor adapter's own: a fixed `offline_after_s` (None for devices that only speak when
   something happens, such as access terminals on a quiet door), or, for vendors whose devices
   are told an interval (AI cameras: a heartbeat interval), `offline_after(config)` from each
   device's configuration item.
2. Parts: a record sent in parts (a Mettax face check) whose parts are not all there
   PARTS_TIMEOUT_SECONDS after the first one is assembled from what came and stored, marked
   incomplete, so the queue still hears of it. Complete ones are only taken off the pending list.
3. Commands: a command sent to a device that got no answer by its deadline (plus a grace for the
   outbox's lag) is marked timed_out (gsi5 CMDPENDING, one paginated Query; devicegate.commands).

The sweep queries gsi5 only, an index that holds nothing but these work lists and projects keys
plus liveness fields: its role cannot read an event, a person's data or a quarantined body.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devicegate.core.errors import StorageUnavailable
from devicegate.core.timeutil import iso_utc, parse_time
from devicegate.infra.aws import failures, unavailable
from devicegate.infra.observability import logger
from devicegate.store import keys
from devicegate.store.codec import from_item
from devicegate.store.liveness import Liveness

#: Contact is recorded by the outbox, a little after the device spoke: no device goes offline for
#: the outbox's lag.
GRACE_SECONDS = 30
DEFAULT_PARTS_TIMEOUT = 600
#: The adapter's own interval (no OFFLINE_AFTER entry for the vendor).
FROM_ADAPTER = object()


def offline_after_spec(adapters: list[Any]) -> str:
    """The vendors' own intervals as an OFFLINE_AFTER value: the template parameter's default
    (a test holds the two together). Vendors whose devices are told an interval are left out."""
    return ",".join(f"{a.vendor}={'off' if a.offline_after_s is None else a.offline_after_s}"
                    for a in adapters if not a.offline_from_config)


def parse_offline_after(spec: str) -> dict[str, int | None]:
    """`jointech=3600,mettax=1800,face-terminal=off` -> seconds per vendor (None = not tracked);
    `default=` applies to listed-nowhere vendors with a fixed interval of their own."""
    table: dict[str, int | None] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        value = value.strip().lower()
        if not sep or not (value == "off" or (value.isdigit() and int(value) >= 60)):
            raise ValueError(f"bad OFFLINE_AFTER entry {part!r}: expected vendor=seconds (>= 60) or vendor=off")
        table[name.strip()] = None if value == "off" else int(value)
    return table


@dataclass
class SweepReport:
    devices: int = 0
    marked_offline: int = 0
    parts_published: int = 0
    parts_incomplete: int = 0
    commands_timed_out: int = 0
    errors: list[str] = field(default_factory=list)


class Sweep:
    def __init__(self, dynamodb: Any, table: str, store: Any, offline_after: dict[str, int | None],
                 vendors: list[str], adapter_for: Callable[[str], Any],
                 parts_timeout_s: int = DEFAULT_PARTS_TIMEOUT, retention_days=None):
        self._ddb = dynamodb
        self._table = table
        self._store = store  # EventStore: put_event for assembled records
        self._offline_after = offline_after
        self._vendors = vendors
        self._adapter_for = adapter_for
        self._parts_timeout = parts_timeout_s
        self._liveness = Liveness(dynamodb, table, retention_days)

    def run(self, now: datetime) -> SweepReport:
        report = SweepReport()
        for vendor in self._vendors:
            try:
                self._sweep_vendor(vendor, now, report)
            except Exception as exc:  # one vendor's trouble (storage, a bad setting) must not stop the others
                logger.error("sweeping a vendor failed", extra={"vendor": vendor, "error_type": type(exc).__name__})
                report.errors.append(f"{vendor}: {type(exc).__name__}")
        try:
            self._sweep_parts(now, report)
        except Exception as exc:
            logger.error("sweeping pending parts failed", extra={"error_type": type(exc).__name__})
            report.errors.append(f"parts: {type(exc).__name__}")
        try:
            from devicegate.store.commands import DynamoCommandStore, time_out_overdue

            report.commands_timed_out = time_out_overdue(DynamoCommandStore(self._ddb, self._table), now)
        except Exception as exc:  # like the steps above: reported (the run fails), the others still ran
            logger.error("timing out overdue commands failed", extra={"error_type": type(exc).__name__})
            report.errors.append(f"commands: {type(exc).__name__}")
        return report

    # -- offline -------------------------------------------------------------------------
    def _limit_for(self, vendor: str) -> Any:
        """Seconds, None (not tracked) or FROM_ADAPTER's per-device configuration path."""
        adapter = self._adapter_for(vendor)
        if vendor in self._offline_after:
            return self._offline_after[vendor]
        if adapter.offline_from_config:
            return FROM_ADAPTER
        if adapter.offline_after_s is not None and "default" in self._offline_after:
            return self._offline_after["default"]
        return adapter.offline_after_s

    def _sweep_vendor(self, vendor: str, now: datetime, report: SweepReport) -> None:
        fixed = self._limit_for(vendor)
        if fixed is None:
            return
        candidates: list[tuple[str, str, float]] = []
        for item in self._devices(vendor):
            report.devices += 1
            heard = item.get("heardAt")
            if not heard or "offlineSince" in item:
                continue
            silent = (now - parse_time(heard)).total_seconds()
            if fixed is not FROM_ADAPTER:
                if silent > fixed + GRACE_SECONDS:
                    self._mark(vendor, item["deviceId"], heard, fixed, now, report)
            elif silent > GRACE_SECONDS:
                candidates.append((item["deviceId"], heard, silent))
        # Devices told their own interval: only those silent for longer than the grace period
        # have their configuration read, 100 per call.
        adapter = self._adapter_for(vendor)
        for start in range(0, len(candidates), 100):
            chunk = candidates[start:start + 100]
            configs = self._configs(vendor, [device for device, _, _ in chunk])
            for device, heard, silent in chunk:
                interval = adapter.offline_after(configs.get(device))
                if interval is None:
                    continue
                limit = interval + GRACE_SECONDS
                if silent > limit:
                    self._mark(vendor, device, heard, limit, now, report)

    def _mark(self, vendor: str, device: str, heard: str, limit: int, now: datetime, report: SweepReport) -> None:
        if self._liveness.mark_offline(vendor, device, heard, limit, now):
            report.marked_offline += 1

    def _devices(self, vendor: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table, "IndexName": "gsi5",
            "KeyConditionExpression": "gsi5pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.vendor_devices_pk(vendor)}},
            # Only what the decision needs: pages stay small however large the state values.
            "ProjectionExpression": "deviceId, heardAt, offlineSince",
        }
        while True:
            try:
                page = self._ddb.query(**kwargs)
            except failures() as exc:
                raise unavailable("device list query", exc) from None
            for raw in page.get("Items", []):
                item = from_item(raw)
                if "deviceId" in item:
                    yield item
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _configs(self, vendor: str, devices: list[str]) -> dict[str, dict[str, Any] | None]:
        wanted = {keys.config_pk(vendor, d): d for d in devices}
        request = {self._table: {"Keys": [{"pk": {"S": pk}, "sk": {"S": keys.CONFIG_SK}} for pk in wanted],
                                 "ProjectionExpression": "pk, #c", "ExpressionAttributeNames": {"#c": "config"}}}
        found: dict[str, dict[str, Any] | None] = {}
        for _ in range(5):  # unprocessed keys come back under load; retry those a few times
            try:
                result = self._ddb.batch_get_item(RequestItems=request)
            except failures() as exc:
                raise unavailable("configuration read", exc) from None
            for raw in result.get("Responses", {}).get(self._table, []):
                item = from_item(raw)
                config = item.get("config")
                found[wanted[item["pk"]]] = config if isinstance(config, dict) else None
            request = result.get("UnprocessedKeys") or {}
            if not request:
                return found
        raise StorageUnavailable("configuration read left keys unprocessed")

    # -- parts ---------------------------------------------------------------------------
    def _sweep_parts(self, now: datetime, report: SweepReport) -> None:
        cutoff = iso_utc(now - timedelta(seconds=self._parts_timeout))
        kwargs: dict[str, Any] = {
            "TableName": self._table, "IndexName": "gsi5", "ProjectionExpression": "pk, sk",
            "KeyConditionExpression": "gsi5pk = :pk AND gsi5sk < :cutoff",
            "ExpressionAttributeValues": {":pk": {"S": keys.PARTS_PARTITION}, ":cutoff": {"S": cutoff}},
        }
        while True:
            try:
                page = self._ddb.query(**kwargs)
            except failures() as exc:
                raise unavailable("pending parts query", exc) from None
            for raw in page.get("Items", []):
                try:
                    item = self._parts_item(raw["pk"], raw["sk"])
                    if item is not None:
                        self._publish_parts(item, now, report)
                except StorageUnavailable:
                    raise
                except Exception as exc:  # an adapter bug on one record must not stop the sweep
                    logger.error("assembling pending parts failed", extra={"error_type": type(exc).__name__})
                    report.errors.append(f"parts: {type(exc).__name__}")
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _parts_item(self, pk: dict[str, Any], sk: dict[str, Any]) -> dict[str, Any] | None:
        """The whole assembly item (the index holds only its keys), as it is now."""
        try:
            found = self._ddb.get_item(TableName=self._table, Key={"pk": pk, "sk": sk}, ConsistentRead=True)
        except failures() as exc:
            raise unavailable("pending parts read", exc) from None
        return from_item(found["Item"]) if found.get("Item") else None

    def _publish_parts(self, item: dict[str, Any], now: datetime, report: SweepReport) -> None:
        parts = {name[5:]: value for name, value in item.items() if name.startswith("part_") and isinstance(value, str)}
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
        try:
            # assembledComplete false tells the pipeline that a part arriving later completes a
            # record already published incomplete (it then publishes the completion too).
            self._ddb.update_item(
                TableName=self._table, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
                UpdateExpression=("SET assembledEventId = if_not_exists(assembledEventId, :e), assembledAt = :now, "
                                  "assembledComplete = if_not_exists(assembledComplete, :c) REMOVE gsi5pk, gsi5sk"),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":e": {"S": event.eventId}, ":now": {"S": iso_utc(now)},
                                           ":c": {"BOOL": complete}},
            )
        except failures() as exc:
            raise unavailable("pending parts update", exc) from None


def offline_after_from_env() -> dict[str, int | None]:
    """OFFLINE_AFTER (template parameter OfflineAfter); unset: every vendor's own interval."""
    return parse_offline_after(os.environ.get("OFFLINE_AFTER") or "")


def parts_timeout_from_env() -> int:
    text = (os.environ.get("PARTS_TIMEOUT_SECONDS") or "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_PARTS_TIMEOUT
