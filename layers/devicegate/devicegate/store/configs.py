"""Per-device configuration items that apps write and the gateway reads on the hot path.

Item: pk CFG#{vendor}#{device}, sk CONFIG, attribute `config` (a map whose shape the vendor's
adapter documents: the AI camera's heartbeat interval, send mode and strategy). The ingest
function reads it for every answer that carries it, so a change (`devicegate strategy set`)
reaches a device with its very next heartbeat. What each environment read last is kept only as
the answer for when the table cannot be read.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from devicegate.infra.aws import failures, unavailable
from devicegate.infra.observability import logger
from devicegate.store import keys
from devicegate.store.codec import from_item

# Bounded: one warm function may serve a large fleet; the least recently used entries go first.
LAST_READ_ENTRIES = 10_000


class DeviceConfigs:
    def __init__(self, dynamodb: Any, table: str):
        self._ddb = dynamodb
        self._table = table
        # (vendor, device) -> the `config` map last read (None: the device had none).
        self._last_read: OrderedDict[tuple[str, str], dict[str, Any] | None] = OrderedDict()
        # ... and as it came from the table (attribute values), to see it is unchanged cheaply.
        self._raw: dict[tuple[str, str], Any] = {}

    def get(self, vendor: str, device_id: str) -> dict[str, Any] | None:
        """The device's `config` map, or None when apps have written none.

        Read on every call rather than cached: one eventually consistent GetItem of an item
        under 4 KB is 0.5 read request unit, about $0.06 per million heartbeats on demand, the
        price of a change reaching the device at once. When the read fails, the map this
        environment read last is answered; with none, StorageUnavailable (the answer is retried).
        """
        key = (vendor, device_id)
        try:
            result = self._ddb.get_item(
                TableName=self._table,
                Key={"pk": {"S": keys.config_pk(vendor, device_id)}, "sk": {"S": keys.CONFIG_SK}},
                ProjectionExpression="#c", ExpressionAttributeNames={"#c": "config"},
            )
        except failures() as exc:
            if key in self._last_read:
                # A stale configuration beats a fallback to the default: the device would
                # otherwise flip its detections back and forth with the table's availability.
                self._last_read.move_to_end(key)
                logger.warning("device configuration unreadable, answering with the last one read",
                               extra={"vendor": vendor, "error_type": type(exc).__name__})
                return self._last_read[key]
            # Nothing read yet: not the deployment default either, since the device may have
            # its own (a camera told another heartbeat interval than the sweep expects would go
            # offline). The event is stored; the sender's retry is a duplicate answered in full.
            raise unavailable("configuration read", exc) from None
        item = result.get("Item")
        raw = item.get("config") if item else None
        if key in self._last_read and raw == self._raw.get(key):
            # Unchanged since the last read: the same map object, not decoded again, so the
            # adapter resolves a configuration (pydantic, 29 strategy fields) once per change.
            config = self._last_read[key]
        else:
            config = from_item(item).get("config") if item else None
            if config is not None and not isinstance(config, dict):
                logger.warning("device configuration is not a map; ignored", extra={"vendor": vendor})
                config = None
            self._raw[key] = raw
        self._last_read[key] = config
        self._last_read.move_to_end(key)
        while len(self._last_read) > LAST_READ_ENTRIES:
            self._raw.pop(self._last_read.popitem(last=False)[0], None)
        return config
