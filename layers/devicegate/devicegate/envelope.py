"""The normalized event every vendor adapter produces, and the raw push every transport delivers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from devicegate.timeutil import iso_utc

Transport = Literal["http", "mqtt", "replay"]


@dataclass
class RawPush:
    """What a transport received, before anything is trusted.

    `body` is the request body as received (HTTP) or the rule's JSON re-encoded (MQTT); `document`
    is set when the transport already parsed it (IoT rules hand Lambda a JSON object), so the
    pipeline never parses twice. `route` holds non-secret routing facts (path kind, topic parts).
    """

    vendor: str
    transport: Transport
    body: bytes
    route: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    request_id: str = ""
    document: Any = None

    def raw_bytes(self) -> bytes:
        """The payload as received, for quarantine (re-encoded only when a transport parsed it)."""
        if self.body or self.document is None:
            return self.body
        return json.dumps(self.document, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class NormalizedEvent:
    """One device record, the same shape for every vendor (the stored item and the queue
    message's `data`). Built only through `make_event`; adapters validate the vendor side."""

    vendor: str  # adapter name, e.g. "jointech"
    deviceId: str  # the vendor's device identifier, as sent
    kind: str  # vendor-specific record kind: location, alarm, event...
    eventId: str  # the vendor's id where it has one, else derived from content (derive_event_id)
    occurredAt: str  # when it happened on the device, ISO 8601 UTC with milliseconds
    receivedAt: str  # when the gateway received it, same format
    transport: Transport  # http, mqtt
    dataJson: str = field(repr=False)  # the typed vendor record as canonical JSON: hashed, stored as is

    @property
    def data(self) -> dict[str, Any]:
        """The vendor record, typed and decoded (decoded from dataJson on each access)."""
        return json.loads(self.dataJson)

    @property
    def is_alarm(self) -> bool:
        return self.kind == "alarm"

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ENVELOPE_FIELDS}


ENVELOPE_FIELDS = ("vendor", "deviceId", "kind", "eventId", "occurredAt", "receivedAt", "transport", "data")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def derive_event_id(vendor: str, device_id: str, kind: str, occurred_at: str, data_json: str) -> str:
    """Content-addressed id for vendors without one: a retransmission (same device, kind, time
    and content) gets the same id whichever transport carried it; anything else a new one."""
    material = "\n".join((vendor, device_id, kind, occurred_at, data_json))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def record_json(model: BaseModel) -> str:
    """Canonical JSON of a validated vendor model: the same record gives the same text whatever
    key order the sender (or the IoT rule's re-serialization) used.

    Declared fields always serialize in model order, so pydantic's fast JSON dump is canonical;
    only top-level extra fields (kept in arrival order) force the sorted, slower route."""
    if model.model_extra:
        return canonical_json(model.model_dump(mode="json", exclude_none=True))
    return model.model_dump_json(exclude_none=True)


def make_event(*, vendor: str, device_id: str, kind: str, occurred_at: datetime, received_at: datetime,
               transport: Transport, data_json: str, event_id: str | None = None) -> NormalizedEvent:
    """The one way adapters build events, from the record's canonical JSON (`record_json`)."""
    occurred = iso_utc(occurred_at)
    return NormalizedEvent(
        vendor=vendor, deviceId=device_id, kind=kind,
        eventId=event_id or derive_event_id(vendor, device_id, kind, occurred, data_json),
        occurredAt=occurred, receivedAt=iso_utc(received_at), transport=transport, dataJson=data_json,
    )
