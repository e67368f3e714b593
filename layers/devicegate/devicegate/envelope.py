"""The normalized event every vendor adapter produces, and the raw push every transport delivers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class NormalizedEvent(BaseModel):
    """One device record, the same shape for every vendor (stored item, queue message `data`)."""

    model_config = ConfigDict(frozen=True)

    vendor: str = Field(description="adapter name, e.g. 'jointech'")
    deviceId: str = Field(description="the vendor's device identifier, as sent")
    kind: str = Field(description="vendor-specific record kind, e.g. location, alarm, event")
    eventId: str = Field(description="the vendor's id where it has one, else derived from content")
    occurredAt: str = Field(description="when it happened on the device, ISO 8601 UTC (ms)")
    receivedAt: str = Field(description="when the gateway received it, ISO 8601 UTC (ms)")
    transport: Transport = "http"
    data: dict[str, Any] = Field(description="the vendor record, typed and decoded")

    @property
    def is_alarm(self) -> bool:
        return self.kind == "alarm"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def derive_event_id(vendor: str, device_id: str, kind: str, occurred_at: datetime, data: dict) -> str:
    """Content-addressed id for vendors without one: a retransmission (same device, kind, time
    and content) gets the same id whichever transport carried it; anything else a new one."""
    material = "\n".join((vendor, device_id, kind, iso_utc(occurred_at), canonical_json(data)))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]
