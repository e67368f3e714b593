"""SenseLink: POST /hooks/senselink/{token}, Event Subscription bodies and bridged WebSocket frames.

The answer matters more than anywhere else: SenseLink retries a push that is not answered HTTP
200 within 5 s, then marks the subscription abnormal and pushes nothing more until someone
re-enables it. So every payload that will never become valid by retrying (malformed, unknown
code, too large) is kept in quarantine and answered 200 with the reason in the body; only a
wrong token (403) and a storage failure (503, so nothing is lost) answer otherwise.

Event ids: a record is its device + SenseLink record `id` (`rec-{hash}`), so the same record
arriving by the subscription and by the bridge, or retried, is one event, while two servers'
records with the same id are two; without an id, the `messageId`. An
alarm step is its `traceId` (or alarm `id`) + `status` + times: raised and released are two
events, their retries are not.

Devices: a record's `sn` (the LDID), an alarm's `deviceSn`, else `id-{deviceId}`; an alarm naming
neither (the vendor's example) is filed under the bridge that forwarded it, `bridge:{name}`, as
heartbeats are. A record without `sn`, and anything needing a bridge without its header, is
refused: no payload makes up a device.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timezone
from typing import Any, ClassVar

from devicegate.core import deployment
from devicegate.core.adapter import AlarmTransition, Answer, Outcome, VendorAdapter
from devicegate.core.envelope import Heartbeat, NormalizedEvent, RawPush, canonical_json, make_event
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.fields import TOPIC_ID
from devicegate.core.timeutil import from_epoch_digits, iso_utc
from devicegate.core.validation import pick as _pick
from devicegate.core.validation import validated as _validated
from devicegate.vendors.senselink import codes
from devicegate.vendors.senselink.models import HEARTBEAT, KINDS, Alarm, Frame, Record, Subscription

#: Header the bridge names itself in; its heartbeats keep `bridge:{name}` alive.
SOURCE_HEADER = "x-devicegate-source"

_STATUS = {
    Outcome.ACCEPTED: (200, 200, "success"),
    Outcome.DUPLICATE: (200, 200, "success"),
    Outcome.PARTIAL: (200, 200, "success"),
    # 200 on purpose: a non-200 makes SenseLink retry and then disable the subscription; the
    # payload is in quarantine, and the body says why.
    Outcome.INVALID: (200, 400, "invalid payload, kept in quarantine"),
    Outcome.TOO_LARGE: (200, 413, "payload too large, kept in quarantine"),
    Outcome.FORBIDDEN: (403, 403, "forbidden"),
    Outcome.UNAVAILABLE: (503, 503, "temporarily unavailable, retry"),
}
_PLAIN = {outcome: Answer(status, {"code": code, "message": message}, constant=True)
          for outcome, (status, code, message) in _STATUS.items()}


def server_timezone() -> timezone:
    """SENSELINK_TIMEZONE (e.g. +09:00): the zone of alarm times sent without an offset (parsed by
    infra.settings; UTC when unset)."""
    zone: timezone = deployment.setting("senselink_timezone", UTC)
    return zone


def local_time(value: str | None, field: str) -> datetime | None:
    """Server-local text ("2023-05-18 10:30:05", ISO) or epoch digits, by the digit-count rule
    (models.py says why) -> aware UTC."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        try:
            return from_epoch_digits(text)
        except ValueError as exc:
            raise InvalidPayload(f"{field} is not a time", [FieldProblem(field, str(exc))]) from None
    try:
        moment = datetime.fromisoformat(text.replace("/", "-"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=server_timezone())
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01 east of UTC has no UTC time
        raise InvalidPayload(f"{field} is not a time", [FieldProblem(field, "expected a date and time")]) from None


def _hash(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


class SenseLinkAdapter(VendorAdapter):
    vendor: ClassVar[str] = "senselink"
    kinds: ClassVar[tuple[str, ...]] = ("record", "alarm")
    max_body_bytes: ClassVar[int] = 1024 * 1024  # records carry image ids, not images
    answer_deadline_s: ClassVar[float | None] = 5.0
    summary_fields: ClassVar[tuple[str, ...]] = ("entryModeName", "abnormalTypeName", "codeName", "statusName", "traceId")
    # Records come when someone passes a device; the bridge's heartbeats are its own liveness.
    offline_after_s: ClassVar[int | None] = None

    def normalize(self, push: RawPush, received_at: datetime) -> list[NormalizedEvent | Heartbeat]:
        document = push.parsed()
        if not isinstance(document, dict):
            raise InvalidPayload("expected a JSON object", [FieldProblem("body", "not a JSON object")])
        if "eventType" in document:
            envelope = _validated(Subscription, document, "", "event subscription body")
            code, data, message_id = envelope.eventType, envelope.data, envelope.messageId
            sent_at = local_time(envelope.sendTime, "sendTime")
        elif "code" in document:
            frame = _validated(Frame, document, "", "WebSocket frame")
            if frame.code == HEARTBEAT:
                return [Heartbeat(self.vendor, _bridge(push, "a heartbeat"), iso_utc(received_at))]
            code, data, message_id, sent_at = frame.code, frame.data, None, None
        else:
            raise InvalidPayload("neither an event subscription body nor a WebSocket frame",
                                 [FieldProblem("body", "expected eventType (subscription) or code (frame)")])
        if code not in KINDS:
            raise InvalidPayload(f"code {code} is not a record or an alarm",
                                 [FieldProblem("eventType" if message_id is not None or sent_at else "code",
                                               "expected 30000 (record) or 30100 (alarm)")])
        kind, model = KINDS[code]
        record = _validated(model, data if data is not None else {}, "data", kind)
        if isinstance(record, Record):
            return [self._record(record, push, received_at, message_id, sent_at)]
        return [self._alarm(record, push, received_at, message_id, sent_at)]

    def _record(self, record: Record, push: RawPush, received_at: datetime, message_id: str | None,
                sent_at: datetime | None) -> NormalizedEvent:
        if record.sn is None:
            # Every record comes from a device, which names itself: no fallback a record could
            # be filed under without making up a device.
            raise InvalidPayload("record names no device",
                                 [FieldProblem("data.sn", "missing or blank: the device's LDID is its id")])
        device = record.sn
        occurred = record.signTime or sent_at or received_at
        time_field = "data.signTime" if record.signTime else "sendTime"
        if record.id:
            # Record ids count per SenseLink server: with the device they are unique across
            # servers pushing to one gateway, and the same for subscription and bridge.
            event_id = f"rec-{_hash(device, record.id)}"
        elif message_id:
            event_id = f"msg-{_hash(message_id)}"
        else:
            event_id = f"rec-{_hash(device, iso_utc(occurred), record.userId or '', record.name or '')}"
        # A record id (or a subscription's messageId) names the record whatever its time says: the
        # bridge's frame and the subscription's body may state signTime differently (unique_id).
        return self._event(record, "record", device, occurred, received_at, push, event_id, message_id,
                           device_time=record.signTime is not None, unique_id=bool(record.id or message_id),
                           time_field=time_field)

    def _alarm(self, record: Alarm, push: RawPush, received_at: datetime, message_id: str | None,
               sent_at: datetime | None) -> NormalizedEvent:
        raised = local_time(record.alarmTime, "data.alarmTime")
        released = local_time(record.releaseTime, "data.releaseTime")
        device = _alarm_device(record, push)
        # A release step (2 releasing, 3 released) happened when it was handled, if the server says.
        step_released = record.status in (2, 3) and released is not None
        occurred = (released if step_released else raised) or sent_at or received_at
        time_field = "data.releaseTime" if step_released else "data.alarmTime" if raised else "sendTime"
        alarm_key = record.traceId or record.id
        if alarm_key:
            event_id = "alm-" + _hash(device, alarm_key, str(record.status), record.alarmTime or "",
                                      record.releaseTime or "")
        elif message_id:
            event_id = f"msg-{_hash(message_id)}"
        else:
            event_id = "alm-" + _hash(device, canonical_json(record.model_dump(mode="json", exclude_none=True)))
        # An alarm step's id holds its times (alarm key, status, alarmTime, releaseTime): the same
        # key and status at another time is another step, never a second item under one id.
        return self._event(record, "alarm", device, occurred, received_at, push, event_id, message_id,
                           device_time=bool(raised or released), unique_id=not alarm_key and bool(message_id),
                           time_field=time_field)

    def _event(self, record: Any, kind: str, device: str, occurred: datetime, received_at: datetime,
               push: RawPush, event_id: str, message_id: str | None, device_time: bool,
               unique_id: bool, time_field: str) -> NormalizedEvent:
        # Names, numbers, avatars...: make_event applies the deployment's policy (core/personal.py).
        data = record.model_dump(mode="json", exclude_none=True)
        if message_id:
            data["messageId"] = message_id
        return make_event(vendor=self.vendor, device_id=device, kind=kind, occurred_at=occurred,
                          received_at=received_at, transport=push.transport, data_json=canonical_json(data),
                          event_id=event_id, device_time=device_time, unique_id=unique_id,
                          time_field=time_field)

    def answer(self, outcome: Outcome, problems: list[FieldProblem] | None = None, reason: str = "") -> Answer:
        if not problems:
            return _PLAIN[outcome]
        status, code, message = _STATUS[outcome]
        body: dict[str, Any] = {"code": code, "message": f"{message}: {reason}" if reason else message,
                                "errors": [p.as_dict() for p in problems]}
        return Answer(status, body)

    def quarantine_kind(self, push: RawPush) -> str:
        return "push"

    def state_patch(self, event: dict[str, Any]) -> dict[str, dict[str, Any]]:
        data = event.get("data") or {}
        if event["kind"] == "record":
            return {"lastRecognition": _pick(data, "entryModeName", "abnormalTypeName", "maskName", "verifyScore",
                                             "deviceName", "location")}
        if event["kind"] == "alarm":
            return {"lastAlarm": _pick(data, "traceId", "code", "codeName", "status", "statusName", "levelName")}
        return {}

    def alarm_transition(self, event: dict[str, Any]) -> AlarmTransition | None:
        data = event.get("data") or {}
        alarm_id = data.get("traceId") or data.get("id")
        if not alarm_id:
            return None
        code = data.get("status")
        step = codes.ALARM_LIFECYCLE.get(code) if code is not None else None
        status, rank = step or ("unknown", 0)
        return AlarmTransition(alarm_id=str(alarm_id), status=status, rank=rank, at=event["occurredAt"],
                               details=_pick(data, "code", "codeName", "level", "levelName", "description",
                                             "statusName", "resolveOptionName"),
                               code=data.get("code"), name=data.get("codeName"))


def _bridge(push: RawPush, what: str) -> str:
    """`bridge:{name}`, the device id of the bridge that forwarded `push` (its liveness entry).
    Only the bridge sends the header, and always does: without it there is no source to name."""
    source = push.headers.get(SOURCE_HEADER)
    if source is None:
        raise InvalidPayload(f"{what} needs the bridge's name",
                             [FieldProblem(SOURCE_HEADER, "missing: the bridge names itself in this header")])
    return f"bridge:{TOPIC_ID.require(source, SOURCE_HEADER)}"


def _alarm_device(record: Alarm, push: RawPush) -> str:
    """The LDID, else the server's device id (`id-{deviceId}`); an alarm naming neither (the
    vendor's own example, all zeros) is a server's and is filed under the bridge that forwarded it.
    Without a bridge it is refused: `unknown` would be a device nobody has."""
    if record.deviceSn is not None:
        return record.deviceSn
    if record.deviceId is not None:
        return f"id-{record.deviceId}"
    if push.headers.get(SOURCE_HEADER) is None:
        raise InvalidPayload("alarm names no device",
                             [FieldProblem("data.deviceSn", "missing or blank, and no data.deviceId")])
    return _bridge(push, "an alarm naming no device")
