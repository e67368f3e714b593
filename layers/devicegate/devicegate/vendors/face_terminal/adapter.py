"""Face-recognition access terminal: POST /hooks/face-terminal/{token}[?device=SERIAL].

The terminal authenticates nothing (its subscription is just a URL), so the token is a path
segment. It caches a record whenever the answer is anything but its success shape and uploads the
backlog (up to 50,000 records) once answers succeed again: success is only said after the record
is stored, and a retransmitted record (same `uuid`; an alarm step: same `trace_id`, `status` and
time) is answered success without a second event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from devicegate.core import personal
from devicegate.core import vocabulary as vocab
from devicegate.core.adapter import AlarmTransition, Answer, Outcome, VendorAdapter
from devicegate.core.envelope import (
    MediaObject,
    NormalizedEvent,
    RawPush,
    canonical_json,
    derive_event_id,
    make_event,
    media_key,
    media_ref,
)
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.fields import TOPIC_ID
from devicegate.core.media import decode_image, image_type
from devicegate.core.timeutil import iso_utc
from devicegate.core.validation import pick as _pick
from devicegate.core.validation import validated as _validated
from devicegate.vendors.face_terminal import codes
from devicegate.vendors.face_terminal.models import RECORD_MODELS, Alarm, Push, Recognition

#: Device id of alarms that name no device (no deviceSN in the record, no ?device= in the URL): the
#: vendor's alarm push carries no serial at all, so this is the documented place for them (README
#: "Face terminal set-up"). A serial or a `device` parameter that is there but unusable (`..`,
#: control characters, a fraction) is refused instead; only the text nulls vendors send for "none"
#: ("", "null": absent in every vendor model) count as no serial.
UNATTRIBUTED = "unattributed"

# The field table says `message`, the example says `msg`: both are sent, so either reading works.
_STATUS = {
    Outcome.ACCEPTED: (200, 200, "success"),
    Outcome.DUPLICATE: (200, 200, "success"),
    Outcome.PARTIAL: (200, 200, "success"),
    Outcome.INVALID: (400, 400, "invalid record"),
    Outcome.TOO_LARGE: (413, 413, "record too large"),
    Outcome.FORBIDDEN: (403, 403, "forbidden"),
    Outcome.UNAVAILABLE: (503, 503, "temporarily unavailable, keep the record and retry"),
}


def _body(code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "msg": message, "message": message, "data": data if data is not None else {}}


_PLAIN = {outcome: Answer(status, _body(code, message), constant=True)
          for outcome, (status, code, message) in _STATUS.items()}


class FaceTerminalAdapter(VendorAdapter):
    vendor: ClassVar[str] = "face-terminal"
    kinds: ClassVar[tuple[str, ...]] = ("record", "alarm")
    route_query_params: ClassVar[tuple[str, ...]] = ("device",)
    # Names and numbers of people are left out of summaries.
    summary_fields: ClassVar[tuple[str, ...]] = (
        "recognitionTypeName", "pass", "entry_mode_name", "abnormal_type_name", "codeName", "statusName", "trace_id")
    # A terminal speaks only when someone passes: silence on a quiet door says nothing.
    offline_after_s: ClassVar[int | None] = None
    # Two inline JPEGs at most, tens to hundreds of KB each; Lambda's 6 MB request limit is the
    # real ceiling (API Gateway's 10 MB cannot reach a function).
    max_body_bytes: ClassVar[int] = 6 * 1024 * 1024

    def normalize(self, push: RawPush, received_at: datetime) -> list[NormalizedEvent]:
        envelope = _validated(Push, push.parsed(), "", "push")
        if envelope.type not in RECORD_MODELS:
            raise InvalidPayload(f"unknown event type {envelope.type}",
                                 [FieldProblem("type", "expected 0 (recognition record) or 1 (device alarm)")])
        kind, model_type = RECORD_MODELS[envelope.type]
        record = _validated(model_type, envelope.data, "data", kind)
        if isinstance(record, Recognition):
            return [self._recognition(record, push, received_at)]
        return [self._alarm(record, push, received_at)]

    def _recognition(self, record: Recognition, push: RawPush, received_at: datetime) -> NormalizedEvent:
        event_id = record.uuid
        data = record.model_dump(mode="json", by_alias=True, exclude_none=True)
        # The user's PIN, numbers, name... are dropped or masked by make_event, as every record's
        # personal fields are (core/personal.py); only the photo is this adapter's to decide.
        media = self._media(data, "rgb_image", record.deviceSN, record.timestamp, event_id)
        # The document makes `uuid` the record's identity: a copy restating `timestamp` is the
        # same passage (unique_id), found by its id rather than stored a second time.
        return make_event(vendor=self.vendor, device_id=record.deviceSN, kind="record",
                          occurred_at=record.timestamp, received_at=received_at, transport=push.transport,
                          data_json=canonical_json(data), event_id=event_id, media=media, unique_id=True,
                          time_field="data.timestamp", facts=lambda at: _passage(record))

    def _alarm(self, record: Alarm, push: RawPush, received_at: datetime) -> NormalizedEvent:
        device = record.deviceSN or _route_device(push) or UNATTRIBUTED
        # One alarm is several pushes (raised, release failed, released): the step is part of
        # the identity, the trace id alone is not.
        identity = canonical_json({"trace_id": record.trace_id, "status": record.status})
        event_id = derive_event_id(self.vendor, device, "alarm", iso_utc(record.event_time), identity)
        data = record.model_dump(mode="json", by_alias=True, exclude_none=True)
        media = self._media(data, "alarm_photo", device, record.event_time, event_id)
        return make_event(vendor=self.vendor, device_id=device, kind="alarm", occurred_at=record.event_time,
                          received_at=received_at, transport=push.transport, data_json=canonical_json(data),
                          event_id=event_id, media=media, time_field="data.event_time",
                          facts=lambda at: _alarm_facts(record))

    def _media(self, data: dict[str, Any], field: str, device: str, occurred: datetime,
               event_id: str) -> tuple[MediaObject, ...]:
        """The inline picture becomes an S3 object; the record keeps a reference in its place.
        A deployment that drops photos stores neither (`photo=drop`)."""
        image = decode_image(data.pop(field, None), f"data.{field}")
        if image is None or personal.deployment_policy()["photo"] == "drop":
            return ()
        content_type, extension = image_type(image)
        media = MediaObject(media_key(self.vendor, device, occurred, event_id, field, extension), image, content_type)
        data[field] = media_ref(media)
        return (media,)

    def answer(self, outcome: Outcome, problems: list[FieldProblem] | None = None, reason: str = "") -> Answer:
        if not problems:
            return _PLAIN[outcome]
        status, code, message = _STATUS[outcome]
        text = f"{message}: {reason}" if reason else message
        return Answer(status, _body(code, text, {"errors": [p.as_dict() for p in problems]}))

    def quarantine_kind(self, push: RawPush) -> str:
        return "push"

    def state_patch(self, event: dict[str, Any]) -> dict[str, dict[str, Any]]:
        # What the passage block has no name for (the abnormal type, the mask).
        data = event.get("data") or {}
        if event["kind"] == "record":
            return {"lastRecognition": _pick(data, "recognitionTypeName", "abnormal_type_name", "maskName")}
        return {}

    def alarm_transition(self, event: dict[str, Any]) -> AlarmTransition | None:
        data = event.get("data") or {}
        code = data.get("status")
        step = codes.ALARM_LIFECYCLE.get(code) if code is not None else None
        trace_id = data.get("trace_id")
        if not trace_id:
            return None
        status, rank = step or ("unknown", 0)
        return AlarmTransition(alarm_id=trace_id, status=status, rank=rank, at=event["occurredAt"],
                               details=_pick(data, "code", "codeName", "description", "statusName"),
                               code=data.get("code"), name=data.get("codeName"))


def _passage(record: Recognition) -> vocab.Facts:
    # The terminal states no direction; a stranger has no user (and so no id).
    user = record.user
    # Computed fields read as methods to mypy (pydantic's computed_field without @property).
    kind: Any = record.recognitionTypeName or (user.typeName if user else None)  # type: ignore[truthy-function]
    role = vocab.role_of(kind)
    return {"passage": vocab.passage(record.pass_, vocab.method_of(record.entry_mode_name), "unknown", role,  # type: ignore[arg-type]
                                     person_id=vocab.person_id(user.user_id) if user else None,
                                     score=record.recognizeScore)}


def _alarm_facts(record: Alarm) -> vocab.Facts:
    step = codes.ALARM_LIFECYCLE.get(record.status)
    severity = codes.ALARM_SEVERITY.get(record.code, "warning") if record.code is not None else "warning"
    return {"alarm": vocab.alarm(record.code, record.codeName, severity,  # type: ignore[arg-type]
                                 status=step[0] if step else "unknown", alarm_id=record.trace_id)}


def _route_device(push: RawPush) -> str | None:
    # Checked only when an alarm needs it: a record names its own device, and refusing it for the
    # URL's parameter would keep it in quarantine for good (a replay has the same parameter).
    device = push.route.get("device")
    return None if device is None else TOPIC_ID.require(device, "device")
