"""Mettax: POST /hooks/mettax/{token}/{service} (one URL per service) or /hooks/mettax/{token}.

Transport. Every push carries a parameter `data` holding the record as a JSON string (JSON
inside JSON), in a JSON body, a form or multipart: vendors/mettax/body.py finds and decodes it.

Kinds. The URL's service names the kind (gps, alarm, device-info, passthrough, alarm-file,
sensor, capture-file, face-check, rfid); the record is then validated against that service's model.
Without one, the fields decide (detect_kind, in this order): messageType -> face-check,
captureId -> capture-file, alarmType/alarmId -> alarm, message -> passthrough, adc -> sensor,
fileUrl -> alarm-file, rfidNo or status with lat/lon -> rfid, num -> gps, a DeviceInfo field or
only the common fields -> device-info.

Event ids are the vendor's ids with the record's time, so a retransmission (Mettax's cloud resends
a record as it stored it) is a duplicate of the stored event: `{kind}-{id}-{deviceCt}` (gps,
device-info, passthrough, rfid), `alarm-{alarmId}-{deviceCt}`, `face-check-{id}` (assembled once
from its parts), `alarm-file-{alarmId}-{sha256(fileUrl)[:16]}` and `capture-file-{captureId}-
{channelId}-{sha256(fileUrl)[:16]}` (file records carry no time: found again by id); sensor data,
whose `id` the document calls an alarm id, gets a content-derived id (time included). The same id
with another deviceCt is another event under another event id, never a second item under one.

Links (gsi4, partition L#mettax#{link}): the package id `{deviceId}_{snowflake}` for gps, alarm,
device-info, passthrough, rfid, face-check and sensor, so Query gsi4 L#mettax#{id} returns a GPS
fix and the alarm (device info...) that share its id; `alarm:{alarmId}` for alarm files (an
alarm's data carries `alarmFilesLink` to go from the alarm to them: Query L#mettax#alarm:{alarmId});
`capture:{captureId}` for a capture's file (L#mettax#capture:{captureId}).

Face check comes as two messages with the same `id`, in either order: messageType "1" (the
comparison result) and "2" (the driver picture). Each becomes a part (Part group=id, names
"result"/"picture"); the pipeline keeps them and calls `assemble`, which builds the one
`face-check` event apps see (marked complete: false when a part never came).

Answer. Mettax documents no answer and no retry behaviour. Accepted and duplicate pushes are
answered HTTP 200 `{"code": 200, "message": "success"}`; failures with their real HTTP status
(400 invalid, 413 too large, 403 forbidden, 503 retry later) and the same body shape with the
reason and the fields at fault, so any HTTP client counts them as not delivered. A `data` array
is judged record by record: the valid records are stored, each invalid one is kept in quarantine
alone (as `{"data": <record>}`, replayable on the same URL), and the push is answered 200
`{"code": 200, "message": "partially accepted: 1 of 3 records refused, ...", "errors": [{"field":
"data.1.lat", ...}]}`; only a push whose every record is refused is answered 400.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, ClassVar

from devicegate.core import jsonbody, personal
from devicegate.core import vocabulary as vocab
from devicegate.core.adapter import Answer, Outcome, VendorAdapter
from devicegate.core.envelope import (
    NormalizedEvent,
    Part,
    RawPush,
    RefusedRecord,
    Transport,
    canonical_json,
    make_event,
    record_json,
)
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.validation import pick, validated
from devicegate.vendors.mettax import codes
from devicegate.vendors.mettax.body import FORM_CHARSETS, body_encoding, multipart_texts, records_of
from devicegate.vendors.mettax.models import (
    DEVICE_INFO_FIELDS,
    FACE_CHECK_MODELS,
    FACE_CHECK_PARTS,
    KINDS,
    RECORD_MODELS,
    epoch_moment,
)

#: Fields every timed record has; a record with these alone is taken for device info.
COMMON_FIELDS = frozenset({"actual", "deviceId", "reportCt", "deviceCt", "id"})
#: The picture's fields the assembled face check renames (status) or already has (id...).
_PICTURE_OWN = frozenset({"id", "deviceId", "messageType", "imageUrl", "status", "statusName"})

_STATUS = {
    Outcome.ACCEPTED: (200, "success"),
    Outcome.DUPLICATE: (200, "success"),
    # Several records in one `data` array: the valid ones are stored, the refused ones named
    # (errors) and kept in quarantine. 200: Mettax documents no retry behaviour, and a retry
    # could only store nothing again and refuse the same records again.
    Outcome.PARTIAL: (200, "partially accepted"),
    Outcome.INVALID: (400, "invalid payload"),
    Outcome.TOO_LARGE: (413, "payload too large"),
    Outcome.FORBIDDEN: (403, "forbidden"),
    Outcome.UNAVAILABLE: (503, "temporarily unavailable, retry later"),
}
_PLAIN_ANSWERS = {outcome: Answer(status, {"code": status, "message": message}, constant=True)
                  for outcome, (status, message) in _STATUS.items()}

_NO_KIND = ("no field tells the data type (messageType, captureId, alarmType, alarmId, message, adc, fileUrl, "
            "rfidNo, status with lat/lon, num, a DeviceInfo field); name the service in the URL: "
            "/hooks/mettax/{token}/{service}")


def detect_kind(record: dict[str, Any]) -> str | None:
    """For the single-URL route: which service a record comes from, by its fields (the order
    matters: a face check's picture has `status` but no lat/lon, an alarm has lat/lon...)."""
    if "messageType" in record:
        return "face-check"
    if "captureId" in record:
        return "capture-file"
    if "alarmType" in record or "alarmId" in record:
        return "alarm"
    if "message" in record:
        return "passthrough"
    if "adc" in record:
        return "sensor"
    if "fileUrl" in record:
        return "alarm-file"
    if "rfidNo" in record or ("status" in record and ("lat" in record or "lon" in record)):
        return "rfid"
    if "num" in record:
        return "gps"
    if any(name in record for name in DEVICE_INFO_FIELDS):
        return "device-info"
    # DeviceInfo's own fields are all optional: a record of common fields alone is one.
    if record and record.keys() <= COMMON_FIELDS:
        return "device-info"
    return None


class MettaxAdapter(VendorAdapter):
    vendor: ClassVar[str] = "mettax"
    kinds: ClassVar[tuple[str, ...]] = KINDS
    max_body_bytes: ClassVar[int] = 1024 * 1024  # records carry file URLs, never files
    route_path_params: ClassVar[tuple[str, ...]] = ("service",)
    summary_fields: ClassVar[tuple[str, ...]] = (
        "alarmTypes", "lat", "lon", "compaResultName", "similarityPercent", "complete", "fileTypeName", "backfill",
        "acc")
    # A vehicle with ignition on reports GPS every few seconds to minutes.
    offline_after_s: ClassVar[int | None] = 1800

    def normalize(self, push: RawPush, received_at: datetime) -> list[NormalizedEvent | RefusedRecord]:
        service = _service(push)
        records = records_of(push)
        if len(records) == 1:
            # One record: refused with its push, kept as it was sent.
            return [self._event(records[0][0], records[0][1], service, push.transport, received_at)]
        # A `data` array is judged record by record (pipeline: Outcome.PARTIAL): one bad record
        # neither stops the others nor makes the sender resend the ones that were stored.
        judged: list[NormalizedEvent | RefusedRecord] = []
        for record, prefix in records:
            try:
                judged.append(self._event(record, prefix, service, push.transport, received_at))
            except InvalidPayload as exc:
                judged.append(RefusedRecord(exc.reason, exc.problems, _push_of(record)))
        return judged

    def _event(self, record: dict[str, Any], prefix: str, service: str | None, transport: Transport,
               received_at: datetime) -> NormalizedEvent:
        kind = service or detect_kind(record)
        if kind is None:
            raise InvalidPayload("cannot tell the data type from the fields",
                                 [FieldProblem(prefix or "data", _NO_KIND)])
        if kind == "face-check":
            return self._face_check_part(record, prefix, transport, received_at)
        model = validated(RECORD_MODELS[kind], record, prefix, f"{kind} record")
        data_json, identity_json = record_json(model)
        # deviceCt is part of a timed record's identity (module doc): without it in the id, a
        # record restating its time would be a second item under one event id.
        device_ct = getattr(model, "deviceCt", None)
        at = "" if device_ct is None else f"-{device_ct}"
        if kind == "alarm":
            event_id, link = f"alarm-{model.alarmId}{at}", model.id
        elif kind == "alarm-file":
            event_id, link = f"alarm-file-{model.id}-{_url_hash(model.fileUrl)}", f"alarm:{model.id}"
        elif kind == "capture-file":
            event_id = f"capture-file-{model.captureId}-{model.channelId}-{_url_hash(model.fileUrl)}"
            link = f"capture:{model.captureId}"
        elif kind == "sensor":
            event_id, link = None, model.id  # content-derived id (make_event)
        else:
            event_id, link = f"{kind}-{model.id}{at}", model.id
        # File records carry no time: received_at (their ids do not depend on it).
        occurred_at = epoch_moment(device_ct) if device_ct is not None else received_at
        return make_event(vendor=self.vendor, device_id=model.deviceId, kind=kind, occurred_at=occurred_at,
                          received_at=received_at, transport=transport, data_json=data_json,
                          identity_json=identity_json, event_id=event_id, link=link,
                          time_field=_field(prefix, "deviceCt"),
                          facts=(lambda at: facts(kind, vocab.Fields(model), at)) if kind in _FACT_KINDS else None)

    def _face_check_part(self, record: dict[str, Any], prefix: str, transport: Transport,
                         received_at: datetime) -> NormalizedEvent:
        message_type = record.get("messageType")
        key = str(message_type).strip() if isinstance(message_type, (str, int)) else None
        if key not in FACE_CHECK_MODELS:
            raise InvalidPayload("unknown face check message type", [FieldProblem(
                _field(prefix, "messageType"), "expected 1 (comparison result) or 2 (driver picture)")])
        name, model_type = FACE_CHECK_MODELS[key]
        model = validated(model_type, record, prefix, f"face check {name}")
        data_json, _ = record_json(model)
        device_ct = getattr(model, "deviceCt", None)  # the picture has no time
        return make_event(
            vendor=self.vendor, device_id=model.deviceId, kind="face-check",
            occurred_at=epoch_moment(device_ct) if device_ct is not None else received_at,
            received_at=received_at, transport=transport, data_json=data_json,
            event_id=f"face-check-{model.id}", link=model.id, device_time=device_ct is not None,
            part=Part(group=model.id, name=name, needs=FACE_CHECK_PARTS), time_field=_field(prefix, "deviceCt"),
        )

    def assemble(self, device_id: str, group: str, parts: dict[str, str], received_at: datetime,
                 transport: str) -> NormalizedEvent:
        """The face check apps see: the result's fields, plus the picture's imageUrl and status
        (as pictureStatus/pictureStatusName), `complete` and `missing`. Built only from the parts
        (canonical JSON), so either arrival order gives the same dataJson."""
        result = jsonbody.loads(parts["result"], "result") if "result" in parts else None
        picture = jsonbody.loads(parts["picture"], "picture") if "picture" in parts else None
        # messageType says which message a part was; the assembled record is both.
        data = {k: v for k, v in result.items() if k != "messageType"} if result else {}
        if picture:
            data.update(pick(picture, "imageUrl"))
            if picture.get("status") is not None:
                data["pictureStatus"] = picture["status"]
            if picture.get("statusName") is not None:
                data["pictureStatusName"] = picture["statusName"]
            # Vendor fields the document does not list are kept, as everywhere.
            data.update({k: v for k, v in picture.items() if k not in _PICTURE_OWN and k not in data})
        missing = [name for name in FACE_CHECK_PARTS if name not in parts]
        data.update(id=group, deviceId=device_id, complete=not missing, missing=missing)
        device_ct = result.get("deviceCt") if result else None
        return make_event(vendor=self.vendor, device_id=device_id, kind="face-check",
                          occurred_at=epoch_moment(device_ct) if device_ct is not None else received_at,
                          received_at=received_at, transport=transport,  # type: ignore[arg-type]
                          data_json=canonical_json(data), event_id=f"face-check-{group}", link=group,
                          device_time=device_ct is not None, time_field="result.deviceCt",
                          facts=lambda at: facts("face-check", data, at))

    def answer(self, outcome: Outcome, problems: list[FieldProblem] | None = None, reason: str = "") -> Answer:
        if outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE) or not (problems or reason):
            return _PLAIN_ANSWERS[outcome]
        status, message = _STATUS[outcome]
        body: dict[str, Any] = {"code": status,
                                "message": f"{message}: {reason}" if reason and reason != message else message}
        if problems:
            body["errors"] = [p.as_dict() for p in problems]
        return Answer(status, body)

    def quarantine_kind(self, push: RawPush) -> str:
        service = push.route.get("service")
        # Never the route's text itself when it is not a known service: it names S3 keys.
        return "unknown" if service is None else service if service in RECORD_MODELS else "invalid-service"

    def quarantine_body(self, push: RawPush) -> bytes:
        """The refused body read as records_of reads it, with the deployment's personal-data
        policy applied (core/personal.py): JSON (the record in `data`'s string included) and forms
        scrubbed and kept replayable; a multipart body kept as sent when it holds nothing
        personal, else as a summary; a body in a charset the gateway does not read, a summary."""
        policy, raw = personal.deployment_policy(), push.raw_bytes()
        try:
            encoding, charset = body_encoding(push)
            if encoding in ("document", "json"):
                return personal.scrub_payload(raw, policy)
            if encoding == "form" and charset in FORM_CHARSETS:
                return personal.scrub_form(raw, policy, charset)
            fields = multipart_texts(push.body, push.headers.get("content-type", "")) if encoding == "multipart" \
                else None
        except Exception:  # hostile headers or parts (the email parser): a summary, never the body as sent
            fields = None
        return personal.keep_unless_personal(raw, fields, policy)

    def state_patch(self, event: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return state_patch(event["kind"], event.get("data") or {})

    def vocabulary_patch(self, event: dict[str, Any]) -> dict[str, dict[str, Any]]:
        # Backfilled records set no state (state_patch says why), the vocabulary's groups neither.
        if (event.get("data") or {}).get("backfill") is True:
            return {}
        return super().vocabulary_patch(event)


# --- the body: where `data` is -----------------------------------------------------------------

def _service(push: RawPush) -> str | None:
    service = push.route.get("service")
    if service is not None and service not in RECORD_MODELS:
        raise InvalidPayload(f"unknown service {service[:32]!r}",
                             [FieldProblem("service", f"expected one of {', '.join(KINDS)}")])
    return service


def _push_of(record: dict[str, Any]) -> bytes:
    """One record of a batch as a push of its own (JSON body), for quarantine and replay."""
    alone = {"data": record}
    try:
        return json.dumps(alone, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: kept as its escape, which parses back the same
        return json.dumps(alone, ensure_ascii=True, separators=(",", ":")).encode()


def _field(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _url_hash(url: str) -> str:
    # Several files of one alarm (pictures, videos) share its id: the URL tells them apart.
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# --- latest state -------------------------------------------------------------------------------

_FACT_KINDS = frozenset({"gps", "alarm", "rfid", "device-info"})


def facts(kind: str, data: Any, occurred_at: str) -> vocab.Facts:
    """lat/lon are WGS84 degrees and speed km/h as sent (the document's units); the fix time is
    occurredAt (deviceCt: reportCt is the device's local wall clock). `valid`: a GPS record
    counted satellites (`num`); rfid, alarm and face-check records state no count."""
    found: vocab.Facts = {}
    position = vocab.position(data.get("lat"), data.get("lon"), speed_kmh=data.get("speed"),
                              heading_deg=data.get("course"), satellites=data.get("num"), fix_time=occurred_at)
    if position is not None:
        if kind == "gps":
            position["valid"] = bool(data.get("num"))
        found["position"] = position
    if kind == "alarm":
        types = data.get("alarmTypes") or []
        found["alarm"] = vocab.alarm(data.get("alarmType"), ", ".join(data.get("alarmTypeNames") or []) or None,
                                     codes.alarm_severity(types), alarm_id=data.get("alarmId"))  # type: ignore[arg-type]
    elif kind == "face-check" and data.get("compaResult") is not None:
        # The driver's face against the vehicle's face library: matched is a known driver.
        matched = data["compaResult"] == 0
        similarity = data.get("similarity")  # units of 0.01 %
        found["passage"] = vocab.passage(matched, "face", "unknown", "employee" if matched else "unknown",
                                         person_id=data.get("faceId"),
                                         score=None if similarity is None else similarity / 10000)
    elif kind == "device-info":
        power = vocab.power(data.get("quantity"), data.get("voltage"))
        if power is not None:
            found["power"] = power
    return found


def state_patch(kind: str, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Latest-state groups per record kind (see README "Device state"); position, alarm, passage
    and power are the vocabulary's groups (VendorAdapter.vocabulary_patch).

    Backfilled records (`backfill: true`) set no state at all. The outbox's guard (a group moves
    only with a newer occurredAt) is not enough for them: `deviceCt` is when Mettax's gateway
    got the record, so data uploaded after a dead zone carries the upload time, and an hour-old
    position would pass for the newest. Real-time records own the latest state."""
    if data.get("backfill") is True:
        return {}
    groups: dict[str, dict[str, Any]] = {}
    if kind == "device-info":
        info = pick(data, "acc", "blockedStatus", "odometer", "elec", "ioStatus", "signal", "voltage", "quantity",
                    "localizationFailure")
        if info:
            groups["deviceInfo"] = info
    elif kind == "rfid":
        groups["driver"] = {"source": "rfid",
                            **pick(data, "rfidNo", "driverName", "licensePlate", "status", "statusName")}
    elif kind == "face-check" and data.get("complete") is True:
        # Only an assembled, complete face check says who drives (a lone part may be a picture).
        groups["driver"] = {"source": "face-check",
                            **pick(data, "faceId", "driverName", "licensePlate", "compaResult", "compaResultName",
                                   "similarityPercent", "pictureStatusName", "imageUrl")}
    return groups
