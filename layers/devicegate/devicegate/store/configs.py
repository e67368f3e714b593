"""Per-device configuration items that apps write and the gateway reads on the hot path.

Item: pk CFG#{vendor}#{device}, sk CONFIG, attribute `config` (a map whose shape the vendor's
adapter documents: the AI camera's heartbeat interval, send mode and strategy). The ingest
function reads it at most once per device per CACHE_SECONDS (a warm Lambda answers a camera's
heartbeats from memory), so a change reaches a device within that time plus one heartbeat.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from devicegate.infra.aws import failures, unavailable
from devicegate.infra.observability import logger
from devicegate.store import keys
from devicegate.store.codec import from_item

CACHE_SECONDS = 60.0
# Bounded: one warm function may serve a large fleet; the least recently used entries go first.
CACHE_ENTRIES = 10_000


class DeviceConfigs:
    def __init__(self, dynamodb: Any, table: str, ttl_s: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self._ddb = dynamodb
        self._table = table
        self._ttl = ttl_s
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, dict[str, Any] | None]] = OrderedDict()

    def get(self, vendor: str, device_id: str) -> dict[str, Any] | None:
        """The device's `config` map, or None when apps have written none."""
        key = (vendor, device_id)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            self._cache.move_to_end(key)
            return cached[1]
        try:
            result = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": {"S": keys.config_pk(vendor, device_id)}, "sk": {"S": keys.CONFIG_SK}},
                ProjectionExpression="#c", ExpressionAttributeNames={"#c": "config"},
            )
        except failures() as exc:
            if cached is not None:
                # A stale configuration beats a fallback to the default: the device would
                # otherwise flip its detections back and forth with the table's availability.
                logger.warning("device configuration unreadable, answering with the cached one",
                               extra={"vendor": vendor, "error_type": type(exc).__name__})
                return cached[1]
            raise unavailable("configuration read", exc) from None
        item = result.get("Item")
        config = from_item(item).get("config") if item else None
        if config is not None and not isinstance(config, dict):
            logger.warning("device configuration is not a map; ignored", extra={"vendor": vendor})
            config = None
        self._cache[key] = (now, config)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return config
