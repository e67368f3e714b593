"""When a device counts as offline: the deployment's OFFLINE_AFTER entries over each vendor's
own interval. Used by the outbox (to file a device under the bucket in which it becomes overdue)
and by the sweep (to decide it is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devicegate.core.pairs import pairs

#: Contact is recorded by the outbox, a little after the device spoke: no device goes offline for
#: the outbox's lag.
GRACE_SECONDS = 30


def offline_after_spec(adapters: list[Any]) -> str:
    """The vendors' own intervals as an OFFLINE_AFTER value: the template parameter's default
    (a test holds the two together). Vendors whose devices are told an interval are left out."""
    return ",".join(f"{a.vendor}={'off' if a.offline_after_s is None else a.offline_after_s}"
                    for a in adapters if not a.offline_from_config)


def parse_offline_after(spec: str) -> dict[str, int | None]:
    """`jointech=3600,mettax=1800,face-terminal=off` -> seconds per vendor (None = not tracked);
    `default=` applies to listed-nowhere vendors with a fixed interval of their own."""
    table: dict[str, int | None] = {}
    for part, name, value in pairs(spec):
        value = (value or "").lower()
        if not value or not (value == "off" or (value.isdigit() and int(value) >= 60)):
            raise ValueError(f"bad OFFLINE_AFTER entry {part!r}: expected vendor=seconds (>= 60) or vendor=off")
        table[name] = None if value == "off" else int(value)
    return table


class OfflinePolicy:
    """Seconds of silence after which a device is offline, per vendor (and, for vendors whose
    devices are told an interval, per device configuration)."""

    def __init__(self, offline_after: dict[str, int | None], adapter_for: Callable[[str], Any]):
        self._table = offline_after
        self._adapter_for = adapter_for

    def needs_config(self, vendor: str) -> bool:
        """The interval comes from each device's configuration item (AI cameras)."""
        return vendor not in self._table and bool(self._adapter_for(vendor).offline_from_config)

    def interval(self, vendor: str, config: dict[str, Any] | None = None) -> int | None:
        """Seconds (None: not tracked). `config`: the device's configuration, for vendors that
        need it (None: the deployment's default configuration)."""
        if vendor in self._table:
            return self._table[vendor]
        adapter = self._adapter_for(vendor)
        if adapter.offline_from_config:
            return adapter.offline_after(config)
        if adapter.offline_after_s is not None and "default" in self._table:
            return self._table["default"]
        return adapter.offline_after_s
