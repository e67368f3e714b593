"""Jointech: webhook rules (one URL per data type, or one URL for all) and MQTT topics."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import ValidationError

from devicegate.core import vocabulary as vocab
from devicegate.core.adapter import Answer, Outcome, VendorAdapter
from devicegate.core.envelope import NormalizedEvent, RawPush, make_event, record_json
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.timeutil import from_epoch
from devicegate.core.validation import pick as _pick
from devicegate.core.validation import problems_from
from devicegate.vendors.jointech import codes
from devicegate.vendors.jointech.models import RECORD_MODELS, Alarm, Location, SubLock

KINDS = tuple(RECORD_MODELS)
# Fields the webhook push carries and the MQTT push does not (compare the vendor's two field
# tables): stored, but left out of the content-derived event id so both transports agree.
TRANSPORT_FIELDS = frozenset({"fileIndex", "ks"})

# Their sample receivers answer {"result": 200}; retry behaviour is undocumented, so failures
# use real HTTP statuses, which any HTTP client treats as "not delivered".
_STATUS = {
    Outcome.ACCEPTED: (200, "ok"),
    Outcome.DUPLICATE: (200, "ok, already received"),
    Outcome.PARTIAL: (200, "ok, some records refused"),
    Outcome.INVALID: (400, "invalid payload"),
    Outcome.TOO_LARGE: (413, "payload too large"),
    Outcome.FORBIDDEN: (403, "forbidden"),
    Outcome.UNAVAILABLE: (503, "temporarily unavailable, retry later"),
}


_PLAIN_ANSWERS = {outcome: Answer(status, {"result": status, "message": message}, constant=True)
                  for outcome, (status, message) in _STATUS.items()}


def detect_kind(record: dict[str, Any]) -> str | None:
    """For the single-URL route: which data type a record is, from its fields."""
    if "subAssetID" in record or "sensorType" in record:
        return "sublock"
    if "commandType" in record:
        return "cmd"
    if "alarmType" in record:
        return "alarm"
    if "eventType" in record:
        return "event"
    if "gpsTime" in record:
        return "location"
    return None


class JointechAdapter(VendorAdapter):
    vendor: ClassVar[str] = "jointech"
    kinds: ClassVar[tuple[str, ...]] = KINDS
    max_body_bytes: ClassVar[int] = 256 * 1024
    # The rules' SELECT (template.yaml): topic(2) AS accessKey, topic(3) AS deviceNum, topic(4) AS
    # kind, and for slave locks topic(4) AS subLockNum.
    topic_fields: ClassVar[tuple[str, ...]] = ("accessKey", "deviceNum", "kind", "subLockNum")
    route_path_params: ClassVar[tuple[str, ...]] = ("kind",)
    summary_fields: ClassVar[tuple[str, ...]] = (
        "alarmName", "eventName", "eventTypeName", "error", "commandType", "subAssetID", "latitude", "longitude",
        "battery", "charging", "locTypeName")
    # Trackers report on a timer (minutes apart when moving, hourly when parked).
    offline_after_s: ClassVar[int | None] = 3600

    def normalize(self, push: RawPush, received_at: datetime) -> list[NormalizedEvent]:
        kind = push.route.get("kind")
        if kind is not None and kind not in RECORD_MODELS:
            raise InvalidPayload(f"unknown data type {kind[:32]!r}",
                                 [FieldProblem("kind", f"expected one of {', '.join(KINDS)}")])
        # Parsed by the stdlib's C decoder (jsonbody: the parsing rules), then validated. Not in
        # one pass with model_validate_json: pydantic's JSON parser takes NaN and Infinity, reads
        # 1e999 as infinity (the device "inf" in a text field) and lets a repeated key's last
        # value win, and none of that can be turned off. Two passes cost 3-4 us more per
        # location record (of ~100 us warm per event: bench/run.py's ratio 2.0x -> 2.1x).
        document = push.parsed()
        if not isinstance(document, dict):
            raise InvalidPayload("expected a JSON object", [FieldProblem("body", "not a JSON object")])
        record = ({k: v for k, v in document.items() if k not in self.topic_fields}
                  if push.transport == "mqtt" else document)
        if kind is None:
            kind = detect_kind(record)
            if kind is None:
                raise InvalidPayload("cannot tell the data type from the fields",
                                     [FieldProblem("body", "none of gpsTime, alarmType, eventType, commandType, "
                                                           "subAssetID found; use /hooks/jointech/{token}/{kind}")])
        model = _validated(kind, record)

        topic_device = push.route.get("deviceNum")
        if topic_device is not None and topic_device != model.assetId:
            raise InvalidPayload("topic and record name different devices",
                                 [FieldProblem("assetId", "does not match the topic's device number")])

        data_json, identity_json = record_json(model, TRANSPORT_FIELDS)
        occurred_at, time_field = _occurred_at(model)
        return [make_event(
            vendor=self.vendor, device_id=model.assetId, kind=kind, occurred_at=occurred_at,
            received_at=received_at, transport=push.transport, data_json=data_json, identity_json=identity_json,
            time_field=time_field,
            facts=(lambda at: facts(model, at)) if kind in _FACT_KINDS else None,
        )]

    def answer(self, outcome: Outcome, problems: list[FieldProblem] | None = None, reason: str = "") -> Answer:
        if not problems:
            return _PLAIN_ANSWERS[outcome]
        status, message = _STATUS[outcome]
        body: dict[str, Any] = {"result": status, "message": message}
        if problems:
            body["reason"] = reason
            body["errors"] = [p.as_dict() for p in problems]
        return Answer(status, body)

    def quarantine_kind(self, push: RawPush) -> str:
        kind = push.route.get("kind")
        return kind if kind in RECORD_MODELS else ("unknown" if kind is None else "invalid-kind")

    def state_patch(self, event: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return state_patch(event["kind"], event.get("data") or {})

    def command_reply(self, event: dict[str, Any]) -> Any:
        if event.get("kind") != "cmd":
            return None
        # Imported here: only the outbox needs it, the ingest functions never do.
        from devicegate.vendors.jointech.commands import command_reply

        return command_reply(event)


def _validated(kind: str, record: dict[str, Any]) -> Any:
    try:
        return RECORD_MODELS[kind].model_validate(record)
    except ValidationError as exc:
        raise InvalidPayload(f"invalid {kind} record", problems_from(exc)) from None


def _occurred_at(model: Any) -> tuple[datetime, str]:
    """When the record happened, and the field that says so."""
    if isinstance(model, Location):
        return model.gpsTime, "gpsTime"
    if isinstance(model, SubLock):
        if model.subGpsTime:
            return model.subGpsTime, "subGpsTime"
        if model.subGpsTimestamp:
            return from_epoch(model.subGpsTimestamp, "ms"), "subGpsTimestamp"  # checked by the model
        if model.gpsTime:
            return model.gpsTime, "gpsTime"
        raise InvalidPayload("slave record has no time", [FieldProblem("subGpsTime", "missing (and no gpsTime)")])
    return model.dateTime, "dateTime"


_FACT_KINDS = frozenset({"location", "alarm"})


def facts(record: Location | Alarm, occurred_at: str) -> vocab.Facts:
    """A location's or an alarm's blocks, read from its typed model (declared fields only: an
    extra field of the same name is the vendor's unvalidated text). The position: gpsTime /
    dateTime is the fix time; `valid` is a satellite fix (locType 1), base-station and cell
    positions (2, 3) are estimates, and locType 0 (no positioning) or 0.0/0.0 is no position at
    all, whatever else the record says (the device's last guess, not a place in the ocean). A
    location's power, an alarm's code."""
    found: vocab.Facts = {}
    if isinstance(record, Location):
        loc_type = record.locType
        if loc_type != 0:
            position = vocab.position(record.latitude, record.longitude, speed_kmh=record.speed,
                                      heading_deg=record.direction, fix_time=occurred_at)
            if position is not None:
                if loc_type is not None:
                    position["valid"] = loc_type == 1
                found["position"] = position
        # `voltage` 0.0 is the vendor's example for a device that measures none.
        power = vocab.power(record.battery, record.voltage or None, record.charging)
        if power is not None:
            found["power"] = power
    else:
        position = vocab.position(record.latitude, record.longitude, speed_kmh=record.speed, fix_time=occurred_at)
        if position is not None:
            found["position"] = position
        code = record.alarmType
        found["alarm"] = vocab.alarm(code, record.alarmName, codes.alarm_severity(code))  # type: ignore[arg-type]
    return found


def state_patch(kind: str, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Latest-state groups per record kind (see README "Device state"); position, power and the
    alarm are the vocabulary's groups (VendorAdapter.vocabulary_patch)."""
    groups: dict[str, dict[str, Any]] = {}
    if kind == "location":
        status = data.get("status") or {}
        lock = _pick(status, "lockStatus", "lockRope", "lockBar")
        if lock:
            groups["lock"] = lock
        vehicle = _pick(status, "acc", "fuelCut", "door", "engine")
        if vehicle:
            groups["vehicle"] = vehicle
        signal = _pick(data, "cellSignal", "gnssSignal")
        if signal:
            groups["signal"] = signal
        expand = data.get("expand") or {}
        environment = _pick(expand, "temperature", "humidity", "pressure", "lux", "fuels")
        if environment:
            groups["environment"] = environment
    elif kind == "event":
        groups["lastEvent"] = _pick(data, "eventType", "eventName", "unLockType", "unLockTypeName", "card")
    elif kind == "cmd":
        groups["lastCommandResponse"] = _pick(data, "commandType", "ok", "response", "error")
    elif kind == "sublock":
        groups[f"sublock:{data.get('subAssetID')}"] = _pick(
            data, "subAssetID", "sensorType", "sensorTypeName", "battery", "voltage", "locStatus", "locRope",
            "rssi", "temperature", "humidity", "locTimes", "eventType", "eventTypeName", "latitude", "longitude")
    return groups
