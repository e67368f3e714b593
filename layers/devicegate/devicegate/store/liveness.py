"""Online / offline: the events the gateway itself writes about devices.

Every device's state item (store.devices) carries `heardAt`: when the gateway last *received*
anything from the device. Received, not happened: a device backfilling yesterday's records after
a dead zone is talking now. The outbox moves it forward for every stored event, heartbeats move
it forward directly.

The sweep (functions/device_sweep) marks a device offline once `heardAt` is older than its
expected reporting interval: `online` false, `offlineSince`, and the sparse gsi3 keys
OFFLINE#{shard} / {vendor}#{device}. The next thing heard from it clears them. Each transition
also stores a `device.offline` / `device.online` event, written in the same transaction as the
state change (both or neither), which the outbox then publishes like any other event. The ids
derive from the times involved, so a retried sweep or outbox batch finds its event already
stored instead of writing a second one.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from devicegate.core.commands import LIFECYCLE_KINDS
from devicegate.core.envelope import NormalizedEvent, canonical_json, make_event
from devicegate.core.timeutil import parse_time

OFFLINE = "device.offline"
ONLINE = "device.online"
#: Kinds the gateway itself writes about devices (their liveness, and the lifecycle of commands
#: waiting for them); they neither move state nor count as contact.
GATEWAY_KINDS = frozenset({OFFLINE, ONLINE}) | LIFECYCLE_KINDS


def _id(kind: str, vendor: str, device_id: str, at: str) -> str:
    digest = hashlib.sha256(f"{vendor}\n{device_id}\n{at}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{kind}-{digest}"


def transition_event(kind: str, vendor: str, device_id: str, occurred_at: str, now: datetime,
                     data: dict[str, Any]) -> NormalizedEvent:
    """A device.offline / device.online event, keyed by the moment it describes."""
    return make_event(vendor=vendor, device_id=device_id, kind=kind, occurred_at=parse_time(occurred_at),
                      received_at=now, transport="gateway", data_json=canonical_json(data),
                      event_id=_id(kind, vendor, device_id, occurred_at))
