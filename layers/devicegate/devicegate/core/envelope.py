"""The normalized event every vendor adapter produces, and the raw push every transport delivers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from devicegate.core import jsonbody, personal
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.timeutil import check_horizon, iso_utc
from devicegate.core.vocabulary import Facts, facts_json

#: "gateway": events the gateway writes itself (device.offline / device.online).
Transport = Literal["http", "mqtt", "replay", "gateway"]


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

    def parsed(self) -> Any:
        """The payload as JSON under the parsing rules (devicegate.jsonbody): the transport's
        document with its numbers checked, or the body parsed. InvalidPayload naming the field."""
        if self.document is not None:
            return jsonbody.check_document(self.document)
        return jsonbody.loads(self.body)

    def raw_bytes(self) -> bytes:
        """The payload as received, for quarantine (re-encoded only when a transport parsed it).
        ASCII escapes: a parsed document may hold text that is not valid UTF-8 (lone surrogates)."""
        if self.body or self.document is None:
            return self.body
        return json.dumps(self.document, ensure_ascii=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class MediaObject:
    """Binary content carried inside a record (a base64 face photo) that is stored as its own S3
    object; the event's data holds a reference (`media_ref`) instead of the bytes. The key is
    derived from the event id, so a retransmission rewrites the same object, never a second one."""

    key: str  # relative to the payload bucket: media/{vendor}/{device}/{yyyy/mm/dd}/{eventId}/{name}
    body: bytes = field(repr=False)
    content_type: str = "image/jpeg"


def media_key(vendor: str, device_id: str, occurred_at: datetime, event_id: str, name: str, extension: str) -> str:
    """Object key of a record's media: by vendor, device, the day it happened (not received, so
    a retransmission a day later lands on the same key) and event id."""
    from urllib.parse import quote

    day = occurred_at.astimezone(UTC)
    device = _not_dots(quote(device_id, safe=""))
    return f"media/{vendor}/{device}/{day:%Y/%m/%d}/{_not_dots(event_id)}/{name}.{extension}"


def _not_dots(segment: str) -> str:
    # `.` and `..` would be resolved by tools that treat keys as paths (sync clients, URL
    # normalization). Device ids cannot be dots alone (fields.IdRule); a vendor's event id might.
    # Still injective: a `%` in a device id is encoded, and event ids (face terminals) have none.
    return segment.replace(".", "%2E") if not segment.strip(".") else segment


def media_ref(media: MediaObject) -> dict[str, Any]:
    """What the stored record holds in place of the bytes (the key is in the payload bucket,
    output PayloadBucketName)."""
    return {"key": media.key, "contentType": media.content_type, "bytes": len(media.body)}


@dataclass(frozen=True, slots=True)
class Part:
    """One message of a record that a vendor sends in several messages (Mettax's face check:
    comparison result + driver picture, same `id`, either order, each possibly retransmitted).

    The pipeline keeps each part on one assembly item as it arrives (answered "accepted" once
    stored there); when every name in `needs` is present, the adapter's `assemble` builds the one
    event apps and the queue see."""

    group: str  # assembly id shared by the parts (the vendor's id)
    name: str  # this part's name, one of `needs`
    needs: tuple[str, ...]  # every part name a complete record has


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A liveness signal (SenseLink's code 10000): moves the source's last-seen time forward and
    is answered like an event, but is not an event (nothing stored, nothing published)."""

    vendor: str
    source: str  # the bridge or server that sent it, as a device id of the vendor
    at: str  # when it was received, ISO 8601 UTC


@dataclass(frozen=True, slots=True)
class RefusedRecord:
    """One record of a push carrying several that cannot become an event: kept in quarantine on
    its own, as a push of its own (`body`, replayable on the same route), while the push's other
    records are stored."""

    reason: str
    problems: list[FieldProblem]
    body: bytes = field(repr=False)


@dataclass(slots=True)
class NormalizedEvent:
    """One device record, the same shape for every vendor (the stored item and the queue
    message's `data`). Built only through `make_event`; adapters validate the vendor side.

    Never changed once built (dataclasses.replace makes another), but not frozen: a frozen
    dataclass sets each of these fields through object.__setattr__, 1.9 us per event against
    0.5 (python3.13, measured), and every event of every vendor is built here."""

    vendor: str  # adapter name, e.g. "jointech"
    deviceId: str  # the vendor's device identifier, as sent
    kind: str  # vendor-specific record kind: location, alarm, event...
    eventId: str  # the vendor's id where it has one, else derived from content (derive_event_id)
    occurredAt: str  # when it happened on the device, ISO 8601 UTC with milliseconds
    receivedAt: str  # when the gateway received it, same format
    transport: Transport  # http, mqtt
    dataJson: str = field(repr=False)  # the typed vendor record as canonical JSON: hashed, stored as is
    #: Binary parts stored as S3 objects before the item (dataJson holds their media_ref).
    media: tuple[MediaObject, ...] = field(default=(), repr=False)
    #: Set when this is one part of a record sent in several messages (see Part).
    part: Part | None = None
    #: Groups records the vendor ties together (Mettax: a GPS fix and the alarm with the same
    #: `id`; an alarm's files). Items with one link share a gsi4 partition L#{vendor}#{link}.
    link: str | None = None
    #: False when occurredAt is the gateway's receipt (the record carried no time of its own): a
    #: retransmission then has another occurredAt, so the store finds it by id (an id marker)
    #: rather than by its timeline key.
    device_time: bool = True
    #: True when the vendor documents its id as unique per record whatever its time field says
    #: (a face terminal's `uuid`, a SenseLink record `id`): a copy restating the time (a
    #: fraction added, milliseconds instead of seconds, another path's clock) is the same event,
    #: so the store finds it by id too. Otherwise the time is part of the identity, and every
    #: adapter puts it into the event id (derived ids hash it, vendor ids carry it), so two items
    #: under one id cannot happen (docs/consuming.md, "What makes two records one event").
    unique_id: bool = False
    #: The vocabulary blocks (core/vocabulary.py) as JSON, None when the record states none of
    #: their facts (stored as the item's `facts`, published as the envelope's).
    factsJson: str | None = field(default=None, repr=False)

    @property
    def keyed_by_id(self) -> bool:
        """The store claims the id before writing the event (store.events: the EID# marker)."""
        return self.unique_id or not self.device_time

    @property
    def data(self) -> dict[str, Any]:
        """The vendor record, typed and decoded (decoded from dataJson on each access)."""
        return json.loads(self.dataJson)

    @property
    def is_alarm(self) -> bool:
        return self.kind == "alarm"


ENVELOPE_FIELDS = ("vendor", "deviceId", "kind", "eventId", "occurredAt", "receivedAt", "transport", "data", "facts")


def canonical_json(value: Any) -> str:
    # allow_nan=False: NaN/Infinity are not JSON. Parsing refuses them already (jsonbody); this
    # is the backstop for a value computed from a record.
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        field = jsonbody.non_finite_field(value) or "body"
        raise InvalidPayload("numbers must be finite", [FieldProblem(field, jsonbody.NOT_FINITE)]) from None


def derive_event_id(vendor: str, device_id: str, kind: str, occurred_at: str, identity_json: str) -> str:
    """Content-addressed id for vendors without one: a retransmission (same device, kind, time
    and identifying content) gets the same id whichever transport carried it; anything else a new
    one. `identity_json` is the record without the fields that differ by transport (record_json)."""
    material = "\n".join((vendor, device_id, kind, occurred_at, identity_json))
    return hashlib.sha256(_utf8(material)).hexdigest()[:32]


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates ("\ud800" escapes) parse into Python text but are not storable text.
        raise InvalidPayload("text is not valid Unicode", [FieldProblem("body", "contains an unpaired surrogate")]) from None


def record_json(model: BaseModel, transport_fields: frozenset[str] = frozenset()) -> tuple[str, str]:
    """(data_json, identity_json) of a validated vendor model.

    data_json is the whole record, canonical: declared fields serialize in model order, so
    pydantic's fast JSON dump is canonical; top-level extra fields (kept in arrival order) force
    the sorted route. identity_json leaves out what differs between transports for the same
    record (extra fields, and the vendor's `transport_fields`, e.g. Jointech's webhook-only
    fileIndex), so a record pushed by webhook and by MQTT gets one id.
    """
    extras = model.model_extra
    if extras:
        data_json = canonical_json(model.model_dump(mode="json", exclude_none=True))
    else:
        data_json = model.model_dump_json(exclude_none=True)
    dropped = {name for name in transport_fields if getattr(model, name, None) is not None}
    if extras:
        dropped.update(extras)
    if not dropped:
        return data_json, data_json
    return data_json, model.model_dump_json(exclude_none=True, exclude=dropped)


def make_event(*, vendor: str, device_id: str, kind: str, occurred_at: datetime, received_at: datetime,
               transport: Transport, data_json: str, identity_json: str | None = None,
               event_id: str | None = None, media: tuple[MediaObject, ...] = (),
               part: Part | None = None, link: str | None = None, device_time: bool = True,
               unique_id: bool = False, time_field: str = "occurredAt",
               facts: Callable[[str], Facts] | None = None) -> NormalizedEvent:
    """The one way adapters build events, from the record's JSON texts (`record_json`).
    `time_field` is the vendor field `occurred_at` was read from (`gpsTime`, `data.timestamp`),
    named when the time is beyond the horizon (core/timeutil.py FUTURE_HORIZON). `facts` gives the
    record's vocabulary blocks (core/vocabulary.py) from the event's occurredAt text, built by the
    adapter from its typed model (not parsed back from data_json: the hot path)."""
    try:
        check_horizon(occurred_at, received_at)
    except ValueError as exc:
        raise InvalidPayload("time too far in the future", [FieldProblem(time_field, str(exc))]) from None
    # Every event's data passes here: the one place personal data is masked or dropped before
    # anything is stored or published, and kept out of content-derived ids (core/personal.py).
    data_json, identity_json = personal.scrub_event(data_json, identity_json, derived=not event_id)
    if identity_json is not None and identity_json is not data_json or event_id:
        _utf8(data_json)  # otherwise derive_event_id has checked it
    occurred = iso_utc(occurred_at)
    found = facts(occurred) if facts is not None else None
    return NormalizedEvent(
        vendor=vendor, deviceId=device_id, kind=kind,
        eventId=event_id or derive_event_id(vendor, device_id, kind, occurred, identity_json or data_json),
        occurredAt=occurred, receivedAt=iso_utc(received_at), transport=transport, dataJson=data_json,
        media=media, part=part, link=link,
        # A fallback to the receipt time is a receipt time, whoever forgot to say so.
        device_time=device_time and occurred_at != received_at,
        unique_id=unique_id, factsJson=facts_json(found) if found else None,
    )
