"""AI camera box: POST /hooks/ai-camera/{token}, one JSON message per request.

The answer is the point of the exchange: a heartbeat's answer tells the box its heartbeat
interval, send mode and detection strategy (from the device's configuration item over the
deployment default, see models.py), and any message not answered `errorNo: 0` is retransmitted
with the same `eventId`. So a retransmission (same serial + eventId) is answered exactly like the
first delivery, and stored once.

Operators other than `heartbeat` (the ~27 detection event kinds the strategy switches name) are
not documented; each is stored as its own kind, the whole message as data, and acknowledged as
`{operator}-Ack`: never dropped.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar

from devicegate.core.adapter import Answer, Outcome, VendorAdapter
from devicegate.core.envelope import NormalizedEvent, RawPush, canonical_json, make_event
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.timeutil import iso_utc, now_utc, parse_time
from devicegate.core.validation import pick as _pick
from devicegate.core.validation import validated as _validated
from devicegate.vendors.ai_camera.models import (
    DEFAULT_CONFIG_ENV,
    DEVICE_FIELDS,
    HEARTBEAT,
    HeartbeatMessage,
    Message,
    deployment_default,
    effective_config,
    heartbeat_interval,
    parse_device_time,
)

__all__ = ["AiCameraAdapter", "DEFAULT_CONFIG_ENV", "deployment_default", "effective_config", "heartbeat_interval",
           "answer_time", "format_offset"]

#: Device facts kept as the device's latest state (no personal data: these describe the box).
STATE_FIELDS = ("IP", "MAC", "deviceType", "deviceVersion", "SN", "DID", "platformID", "strategyVersion")

_OK = {"errorNo": 0, "description": "ok"}
# The box treats any non-zero errorNo, or a non-200 status, as "not accepted" and sends again, so
# failures use real statuses: a retry helps only for 503, but nothing else is lost either (the
# payload is kept in quarantine).
_STATUS = {
    Outcome.ACCEPTED: (200, 0, "ok"),
    Outcome.DUPLICATE: (200, 0, "ok"),
    Outcome.PARTIAL: (200, 0, "ok"),
    Outcome.INVALID: (400, 400, "invalid message"),
    Outcome.TOO_LARGE: (413, 413, "message too large"),
    Outcome.FORBIDDEN: (403, 403, "forbidden"),
    Outcome.UNAVAILABLE: (503, 503, "temporarily unavailable, retry"),
}
_PLAIN = {outcome: Answer(status, {"result": {"errorNo": code, "description": text}}, constant=True)
          for outcome, (status, code, text) in _STATUS.items()}


def format_offset(offset: timedelta | None, basic: bool = False) -> str:
    """+08:00 (stored), or the answer's basic form: +08 when whole hours (as the document's
    example), +0530 otherwise."""
    minutes = int((offset or timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    if not basic:
        return f"{sign}{hours:02d}:{rest:02d}"
    return f"{sign}{hours:02d}" if rest == 0 else f"{sign}{hours:02d}{rest:02d}"


def answer_time(moment: datetime, offset: str | None) -> str:
    """Server time as the answer gives it: basic ISO 8601 in the device's own offset,
    20200331T101002+08 (the box shows and sets its clock from it)."""
    zone: tzinfo = UTC
    if offset:
        try:
            zone = parse_device_time(f"2000-01-01T00:00:00{offset}").tzinfo or zone
        except ValueError:
            pass  # stored by an older version or by hand: UTC is still a correct time
    local = moment.astimezone(zone)
    return f"{local:%Y%m%dT%H%M%S}{format_offset(local.utcoffset(), basic=True)}"


def _event_id(kind: str, serial: str, event_id: int | str, at: datetime | str | None) -> str:
    # The box repeats eventId (and the event's time) for the same event: serial + eventId + time
    # is the retransmission key, so 1 and "1" are one event (the key is text) and two boxes' 1s
    # are two. The time is part of it because a counter that restarts after a reboot (or a
    # firmware that always sends 1) would otherwise make every later heartbeat a "duplicate" for
    # the whole retention period: not stored, so the camera would look offline while beating.
    # A time that does not parse still tells two events apart: its text goes in as sent.
    when = iso_utc(at) if isinstance(at, datetime) else (at or "")
    digest = hashlib.sha256(f"{serial}\n{event_id}\n{when}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{kind}-{digest}"


#: Resolved configurations kept (one per configured camera a warm function answers).
_RESOLVED_ENTRIES = 10_000
#: Kinds the gateway writes itself (devicegate.liveness): no operator may take one.
GATEWAY_KIND_PREFIX = "device."


#: Heartbeats a camera may miss before the sweep marks it offline.
MISSED_HEARTBEATS = 3


class AiCameraAdapter(VendorAdapter):
    vendor: ClassVar[str] = "ai-camera"
    #: Only the documented kind; other operators are stored under their own name as they come.
    kinds: ClassVar[tuple[str, ...]] = (HEARTBEAT,)
    # Detection events may carry snapshots (base64 in the JSON). Lambda takes 6 MiB per synchronous
    # invocation, the API Gateway event around the body included (headers, request context, the
    # body's JSON escaping): 256 KiB is left for that envelope. Larger data goes to S3 in storage.
    max_body_bytes: ClassVar[int] = 6 * 1024 * 1024 - 256 * 1024
    summary_fields: ClassVar[tuple[str, ...]] = ("deviceType", "strategyVersion", "operator")
    # Each camera is told its own heartbeat interval (its configuration item, else the deployment
    # default): offline after MISSED_HEARTBEATS of them (the sweep adds its grace period).
    offline_from_config: ClassVar[bool] = True

    def check_deployment(self) -> None:
        # A broken AiCameraDefaultConfig fails the cold start with the parameter's name in the log
        # rather than answering every heartbeat 500.
        deployment_default()

    def offline_after(self, config: dict[str, Any] | None) -> int | None:
        return MISSED_HEARTBEATS * heartbeat_interval(config)

    def __init__(self, clock: Callable[[], datetime] = now_utc):
        self._clock = clock
        # Resolved configurations by the configuration map they came from. DeviceConfigs hands
        # out the same map object for a device as long as its item is unchanged, so validating
        # and merging (pydantic, 29 fields: a third of the heartbeat's own cost) happens once per
        # change, not once per heartbeat. The entry holds the map, so its id cannot be reused.
        self._resolved: OrderedDict[int | None, tuple[Any, dict[str, Any]]] = OrderedDict()

    def _told(self, config: dict[str, Any] | None, device: str) -> dict[str, Any]:
        key = None if config is None else id(config)
        hit = self._resolved.get(key)
        if hit is not None and hit[0] is config:
            return hit[1]
        told = effective_config(config, device=device)
        self._resolved[key] = (config, told)
        if len(self._resolved) > _RESOLVED_ENTRIES:
            self._resolved.popitem(last=False)
        return told

    # --- decode, validate, normalize ---------------------------------------------------------

    def normalize(self, push: RawPush, received_at: datetime) -> list[NormalizedEvent]:
        document = push.parsed()
        if not isinstance(document, dict):
            raise InvalidPayload("expected a JSON object", [FieldProblem("body", "not a JSON object")])
        if document.get("operator") == HEARTBEAT:
            return [self._heartbeat(_validated(HeartbeatMessage, document, "", "heartbeat"), push, received_at)]
        message = _validated(Message, document, "", "message")
        return [self._other(message, document, push, received_at)]

    def _heartbeat(self, message: HeartbeatMessage, push: RawPush, received_at: datetime) -> NormalizedEvent:
        device, info = message.deviceInfo, message.info
        data: dict[str, Any] = {name: getattr(device, name) for name in DEVICE_FIELDS
                                if getattr(device, name) is not None}
        data["eventId"] = info.eventId
        data["time"] = info.time.isoformat()
        if info.strategyVersion is not None:
            data["strategyVersion"] = info.strategyVersion
        # The answer's clock is given in the box's offset; the pipeline hands accepted_answer the
        # event only, so the offset travels in the record.
        data["timeOffset"] = format_offset(info.time.utcoffset())
        # Undocumented fields are kept, apart from the documented ones, by where they came.
        extra: dict[str, Any] = dict(message.model_extra or {})
        if device.model_extra:
            extra["deviceInfo"] = dict(device.model_extra)
        if info.model_extra:
            extra["info"] = dict(info.model_extra)
        if extra:
            data["extra"] = extra
        return make_event(vendor=self.vendor, device_id=device.serialNumber, kind=HEARTBEAT, occurred_at=info.time,
                          received_at=received_at, transport=push.transport, data_json=canonical_json(data),
                          event_id=_event_id(HEARTBEAT, device.serialNumber, info.eventId, info.time))

    def _other(self, message: Message, document: dict[str, Any], push: RawPush,
               received_at: datetime) -> NormalizedEvent:
        kind, serial = message.operator, message.deviceInfo.serialNumber
        if kind.startswith(GATEWAY_KIND_PREFIX):
            # device.offline / device.online are the gateway's own events: a box must not be able
            # to publish one (nor hide itself from the device list by sending them).
            raise InvalidPayload("operator names a gateway event",
                                 [FieldProblem("operator", f"must not start with {GATEWAY_KIND_PREFIX!r}")])
        info = message.info
        # The whole message as sent: nothing says which of its fields matter, so none is dropped.
        data_json = canonical_json(document)
        stated = _lenient_time(info.time if info is not None else None)
        occurred = stated or received_at
        event_id = info.eventId if info is not None else None
        # Without an eventId the id is content-derived (make_event): with a time, a retransmission
        # gets the same id; without one, receipt time is part of it, so a retransmission is stored
        # again. Twice is better than a second, different message with the same content never.
        return make_event(vendor=self.vendor, device_id=serial, kind=kind, occurred_at=occurred,
                          received_at=received_at, transport=push.transport, data_json=data_json,
                          event_id=(_event_id(kind, serial, event_id, stated or _raw_time(info))
                                    if event_id is not None else None))

    # --- answers -----------------------------------------------------------------------------

    def answer(self, outcome: Outcome, problems: list[FieldProblem] | None = None, reason: str = "") -> Answer:
        if not problems and not reason:
            return _PLAIN[outcome]
        status, code, text = _STATUS[outcome]
        # The pipeline's reason ("invalid heartbeat", "payload too large") says it already.
        body: dict[str, Any] = {"result": {"errorNo": code, "description": reason or text}}
        if problems:
            body["errors"] = [p.as_dict() for p in problems]
        return Answer(status, body)

    def config_device(self, events: list[NormalizedEvent]) -> str | None:
        # Only a heartbeat's answer carries configuration; other acks need no read.
        if events and events[0].kind == HEARTBEAT:
            return events[0].deviceId
        return None

    def accepted_answer(self, outcome: Outcome, events: list[NormalizedEvent],
                        config: dict[str, Any] | None) -> Answer:
        # DUPLICATE answers exactly like ACCEPTED: the box retransmits until it gets its ack.
        if outcome not in (Outcome.ACCEPTED, Outcome.DUPLICATE) or not events:
            return self.answer(outcome)
        event = events[0]
        data = event.data
        if event.kind == HEARTBEAT:
            told = self._told(config, event.deviceId)
            info: dict[str, Any] = {
                "eventId": data["eventId"],
                "time": answer_time(self._clock(), data.get("timeOffset")),
                "heartbeatInterval": told["heartbeatInterval"],
                "eventSendMode": told["eventSendMode"],
            }
            # No strategy configured anywhere: say nothing, and the camera keeps its own.
            if "strategy" in told:
                info["strategy"] = told["strategy"]
            return Answer(200, {"operator": "heartbeat-Ack", "info": info, "result": dict(_OK)})
        given = data.get("info")
        sent = given if isinstance(given, dict) else {}
        ack: dict[str, Any] = {"eventId": sent["eventId"]} if "eventId" in sent else {}
        return Answer(200, {"operator": f"{event.kind}-Ack", "info": ack, "result": dict(_OK)})

    # --- after storage -----------------------------------------------------------------------

    def state_patch(self, event: dict[str, Any]) -> dict[str, dict[str, Any]]:
        if event.get("kind") != HEARTBEAT:
            return {}
        facts = _pick(event.get("data") or {}, *STATE_FIELDS)
        return {"deviceInfo": facts} if facts else {}


def _raw_time(info: Any) -> str | None:
    value = getattr(info, "time", None)
    return value if isinstance(value, str) else None if value is None else str(value)


def _lenient_time(value: Any) -> datetime | None:
    """An undocumented operator's time, if it reads as one (the heartbeat's form, or epoch
    seconds/milliseconds); otherwise None and receipt time stands in. It is kept in data as sent."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, str):
            return parse_device_time(value)
        if isinstance(value, (int, float)):
            return parse_time(value)
    except ValueError:
        return None
    return None
