"""AI camera box messages and the configuration its answer carries, as the vendor documents them.

Source: "Heartbeat events" (vendor-docs/ai-camera-heartbeat.txt) and vendor-notes.md §1.

Every message is one JSON object POSTed to one URL:
`{"operator": "heartbeat", "deviceInfo": {"serialNumber": ...}, "info": {"eventId": 1, "time": ...}}`.
Only `heartbeat` is documented; the detection switches of the strategy name ~27 more event kinds
the box sends with other operators, so any operator is accepted and kept (see adapter.py).

How strict, and why:
- Refused when missing or malformed: `operator`, `deviceInfo.serialNumber` (the device id, part of
  table keys), and on a heartbeat `info.eventId` (echoed, and the retransmission key) and
  `info.time` (the answer's clock is given in its UTC offset).
- Optional although the document marks them required (IP, MAC, deviceType, deviceVersion,
  strategyVersion): they only describe the box, and refusing a heartbeat because a firmware leaves
  one out would make the box retransmit forever and look offline.

Export damage repaired in the fixtures: the answer's strategy object lacks commas after
`isCarDetectEnable` and every line below it.

The configuration half (`Strategy`, `CameraConfig`, `effective_config`) is what apps write per
device (item CFG#ai-camera#{serial} / CONFIG, attribute `config`) and the heartbeat answer tells the
camera; `AI_CAMERA_DEFAULT_CONFIG` is the deployment's default under every device's own keys.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    ValidationError,
    create_model,
)

from devicegate.core import deployment
from devicegate.core.caches import kept
from devicegate.core.errors import FieldProblem
from devicegate.core.fields import PRINTABLE_ID, OptText, VendorModel
from devicegate.core.validation import problems_from

HEARTBEAT = "heartbeat"

# --- messages the box sends ------------------------------------------------------------------

#: Printable ASCII without spaces: the serial is percent-encoded into DynamoDB keys and S3 paths.
#: The models check it with fields.PRINTABLE_ID (which also refuses dots alone); the CLI's quick
#: check of `--device` reads this.
SERIAL_PATTERN = r"^[\x21-\x7e]{1,64}$"
#: The operator becomes the stored kind (keys, metric dimensions, queue message types): bounded.
OPERATOR_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
MAX_EVENT_ID_LENGTH = 128


def _event_id(value: Any) -> int | str:
    # Echoed back with its JSON type (the box matches its own id), so no coercion at all; JSON
    # true would pass for 1 in Python, and a float id has no exact echo.
    if type(value) is int:
        return value
    if type(value) is str and 0 < len(value) <= MAX_EVENT_ID_LENGTH:
        return value
    raise ValueError(f"expected an integer or a string of 1 to {MAX_EVENT_ID_LENGTH} characters")


def parse_device_time(value: Any) -> datetime:
    """`info.time` with the device's own offset kept (the answer is told in it).

    ISO 8601 extended or basic, offset as "+08" (the document's), "+0800", "+08:00" or "Z":
    "2020-03-31T10:10:01+08", "20200331T101002+08". A time without an offset is refused: it could
    be any of 26 hours, and the answer would have no offset to use.
    """
    if type(value) is not str or len(value) > 64:
        raise ValueError("expected an ISO 8601 time text such as 2020-03-31T10:10:01+08")
    try:
        moment = datetime.fromisoformat(value.strip())  # 3.11+: basic format and "+08" included
    except ValueError:
        raise ValueError("not an ISO 8601 time (expected e.g. 2020-03-31T10:10:01+08)") from None
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("has no UTC offset (expected e.g. +08, +0800, +08:00 or Z)")
    if offset % timedelta(minutes=1):
        raise ValueError("UTC offset must be whole minutes")
    try:
        moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+08 has no UTC equivalent
        raise ValueError("time out of range") from None
    return moment


EventId = Annotated[int | str, PlainValidator(_event_id)]
DeviceTime = Annotated[datetime, PlainValidator(parse_device_time)]
Serial = Annotated[str, PRINTABLE_ID.validator()]


class DeviceInfo(VendorModel):
    """`deviceInfo`: who is talking. Only the serial number is relied on."""

    serialNumber: Serial = Field(description="equipment serial number: the device id (1 to 64 printable ASCII)")
    platformID: OptText = Field(None, description="platform id, e.g. 64010000001110000001")
    IP: OptText = Field(None, description="device IP address (documented required; optional here)")
    MAC: OptText = Field(None, description="device MAC address (documented required; optional here)")
    SN: OptText = Field(None, description="another serial number the box reports (not the device id)")
    DID: OptText = Field(None, description="device DID, e.g. IOTBEE-274996-YPHPK")
    deviceType: OptText = Field(None, description="device type, e.g. 0x0002 (documented required; optional here)")
    deviceVersion: OptText = Field(None, description="firmware version, e.g. V1.0.0 (documented required; "
                                                     "optional here)")


class HeartbeatInfo(VendorModel):
    """`info` of a heartbeat."""

    eventId: EventId = Field(description="event id, the same for the same event: a retransmission (after a "
                                         "power cut, or no answer within the interval) repeats it")
    time: DeviceTime = Field(description="when it happened, ISO 8601 in the device's offset: "
                                         "2020-03-31T10:10:01+08")
    strategyVersion: OptText = Field(None, description="version of the strategy the box runs "
                                                       "(documented required; optional here)")


class EventInfo(VendorModel):
    """`info` of an operator the document does not cover: nothing in it is known for sure, so only
    `eventId` is checked (it is echoed); `time` is read when it can be (see the adapter)."""

    eventId: EventId | None = Field(None, description="event id, as for a heartbeat")
    time: Any = Field(None, description="when it happened, if the operator says")


class _Envelope(VendorModel):
    """What every message starts with; other top-level fields are kept. Message and
    HeartbeatMessage add their own `info` (a heartbeat's is not a kind of any message's)."""

    operator: str = Field(pattern=OPERATOR_PATTERN, description="message name: heartbeat, or a detection "
                                                                "event kind (personDetect, ...)")
    deviceInfo: DeviceInfo = Field(description="the sending device")


class Message(_Envelope):
    """Any message: an operator, the device, and `info`; other top-level fields are kept."""

    info: EventInfo | None = Field(None, description="the event")


class HeartbeatMessage(_Envelope):
    """`operator: heartbeat`, sent every heartbeatInterval seconds; its answer configures the box."""

    info: HeartbeatInfo = Field(description="the heartbeat")


#: deviceInfo fields a heartbeat's stored record (and the device's state) carries.
DEVICE_FIELDS = tuple(DeviceInfo.model_fields)


# --- configuration the heartbeat answer carries -----------------------------------------------

def _whole_number(value: Any) -> Any:
    # The item is written by apps and read from DynamoDB: 30, 30.0 and Decimal("30") all mean 30;
    # true/false must not pass for 1/0, and "30" stays an error (a typed config, not a guess).
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not true/false")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return value


Hours = Annotated[int, BeforeValidator(_whole_number), Strict(), Field(ge=0)]
Seconds = Annotated[int, BeforeValidator(_whole_number), Strict(), Field(ge=1, le=86400)]
#: Strict: "true", 1 or "yes" in a detection switch is a mistake to report, not to guess.
Switch = Annotated[bool, Strict()]


class Strategy(BaseModel):
    """`strategy` of the heartbeat answer: report switches and intervals, all documented required.

    extra="forbid": a misspelt switch (`isPetDetectEnabled`) would otherwise be stored, sent, and
    silently ignored by the camera while the operator believes it is set. A flag a newer firmware
    adds is one line here.
    """

    model_config = ConfigDict(extra="forbid")

    passengerStaticsInterval: Hours = Field(description="(sic) passenger flow statistics interval, hours")
    heartBeatInterval: Seconds = Field(description="heartbeat interval, seconds (the strategy's copy of "
                                                   "heartbeatInterval)")
    isEnableElectronicDefence: Switch = Field(description="report electronic fence events")
    isCrossBorderDetectEnable: Switch = Field(description="report line crossing (cross-border) detections")
    isOffDutyDetectEnable: Switch = Field(description="report off-duty detections")
    isPassengerFlowStaticsEnable: Switch = Field(description="report passenger flow statistics")
    isCryScreamDetectEnable: Switch = Field(description="report crying and screaming detections")
    isPetDetectEnable: Switch = Field(description="report pet detections")
    isFallDetectEnable: Switch = Field(description="report fall detections")
    isSnapshotEnable: Switch = Field(description="report face captures")
    isPersonInfoEnable: Switch = Field(description="report face recognitions")
    isPersonDetectEnable: Switch = Field(description="report human form detections")
    isCarLicenseSnapshotEnable: Switch = Field(description="report licence plate captures (the document repeats "
                                                           "'human form detection' here, a copy error)")
    isCarDetectEnable: Switch = Field(description="report vehicle shape detections")
    isTimedSnapshotEnable: Switch = Field(description="report timed captures")
    isGroundLockStatusChangedEnable: Switch = Field(description="report ground lock status changes")
    isStartupReportEnable: Switch = Field(description="report power-on")
    isAbnormalEventEnable: Switch = Field(description="report exceptions")
    isNonWhitelistCarEnable: Switch = Field(description="report vehicles not on the whitelist")
    isMotionDetectEnable: Switch = Field(description="report motion detections")
    isTrafficStatisticsEnable: Switch = Field(description="report traffic statistics")
    isTrafficStatisticsCarShapeEnable: Switch = Field(description="report traffic flow statistics with vehicle "
                                                                  "shapes")
    isKey2CallEnable: Switch = Field(description="report one-key calls")
    isLicensePlateSurveillanceEnable: Switch = Field(description="report watch-listed licence plates")
    isFireDetectEventEnable: Switch = Field(description="report fire detections")
    isVideoCoverEventEnable: Switch = Field(description="report a covered lens")
    isElectricBikeEventEnable: Switch = Field(description="report electric scooter detections")
    isGasContainerEventEnable: Switch = Field(description="report gas cylinder detections")
    isElectronicDefenceV2EventEnable: Switch = Field(description="report electronic fence (v2) events")


STRATEGY_FIELDS = tuple(Strategy.model_fields)

if TYPE_CHECKING:
    # A model made by create_model is a value to a type checker, not a class it can check fields
    # against: it sees the patch as the BaseModel it is.
    StrategyPatch = BaseModel
else:
    #: The same fields, each optional: what a device's configuration may give, over the default's.
    StrategyPatch = create_model(
        "StrategyPatch", __config__=ConfigDict(extra="forbid"), __doc__="Some of Strategy's fields (extra='forbid').",
        **{name: (Annotated[(info.annotation, *info.metadata)] | None, Field(None, description=info.description))
           for name, info in Strategy.model_fields.items()},
    )


class CameraConfig(BaseModel):
    """A device's configuration item's `config` map (and AI_CAMERA_DEFAULT_CONFIG): every key
    optional, each falls back to the deployment default. extra="forbid", as for Strategy."""

    model_config = ConfigDict(extra="forbid")

    heartbeatInterval: Seconds | None = Field(None, description="seconds between heartbeats, 1 to 86400")
    eventSendMode: Literal["realTime", "retransmission"] | None = Field(
        None, description="realTime: live events first (the vendor's default); retransmission: the backlog first")
    strategy: StrategyPatch | None = Field(
        None, description="report switches and intervals; partial is allowed over a default strategy, as long "
                          "as the result has every field")


DEFAULT_CONFIG_ENV = "AI_CAMERA_DEFAULT_CONFIG"
#: Without AI_CAMERA_DEFAULT_CONFIG: no strategy, so each camera keeps the one it has.
BUILT_IN_DEFAULT: dict[str, Any] = {"heartbeatInterval": 60, "eventSendMode": "realTime"}


class ConfigInvalid(ValueError):
    """A configuration that cannot be told to a camera, with the fields at fault (never values)."""

    def __init__(self, reason: str, problems: list[FieldProblem]):
        super().__init__(reason + ": " + "; ".join(f"{p.field}: {p.problem}" for p in problems))
        self.reason = reason
        self.problems = problems


def plain_numbers(value: Any) -> Any:
    """boto3's resource layer hands numbers as Decimal: the same values as plain int/float."""
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_numbers(v) for v in value]
    return value


def parse_config(document: Any) -> CameraConfig:
    """A `config` map as CameraConfig, or ConfigInvalid naming the fields."""
    try:
        return CameraConfig.model_validate(plain_numbers(document if document is not None else {}))
    except ValidationError as exc:
        raise ConfigInvalid("invalid camera configuration", problems_from(exc)) from None


def resolve_config(device_config: Any, default: dict[str, Any]) -> dict[str, Any]:
    """What the camera is told: the device's keys over `default` (a resolved configuration).

    The strategy merges key by key; if the result has any key it must be a whole Strategy (the
    camera takes the object as a whole). Its heartBeatInterval follows heartbeatInterval unless
    set, and a device's own heartbeatInterval wins over a default strategy's copy: the two mean the
    same and the device's is the more specific choice. Raises ConfigInvalid.
    """
    device = parse_config(device_config)
    interval = device.heartbeatInterval or default["heartbeatInterval"]
    resolved: dict[str, Any] = {"heartbeatInterval": interval,
                                "eventSendMode": device.eventSendMode or default["eventSendMode"]}
    own = device.strategy.model_dump(exclude_none=True) if device.strategy is not None else {}
    strategy = dict(default.get("strategy") or {})
    if device.heartbeatInterval is not None and "heartBeatInterval" not in own:
        strategy.pop("heartBeatInterval", None)
    strategy.update(own)
    if strategy:
        strategy.setdefault("heartBeatInterval", interval)
        try:
            resolved["strategy"] = Strategy.model_validate(strategy).model_dump()
        except ValidationError as exc:
            raise ConfigInvalid("incomplete strategy (a partial strategy needs a default strategy under it)",
                                problems_from(exc, "strategy")) from None
    return resolved


def parse_default(text: str | None) -> dict[str, Any]:
    """The deployment default from AI_CAMERA_DEFAULT_CONFIG's JSON text (empty: the built-in one)."""
    if text is None or not text.strip():
        return dict(BUILT_IN_DEFAULT)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigInvalid(f"{DEFAULT_CONFIG_ENV} is not JSON",
                            [FieldProblem(DEFAULT_CONFIG_ENV, str(exc).split(":")[0])]) from None
    try:
        return resolve_config(document, BUILT_IN_DEFAULT)
    except ConfigInvalid as exc:
        raise ConfigInvalid(f"{DEFAULT_CONFIG_ENV} is not a valid camera configuration", exc.problems) from None


@kept
def _default_json() -> str:
    return json.dumps(parse_default(deployment.setting("ai_camera_default_config", "")))


def deployment_default() -> dict[str, Any]:
    """The configuration every camera is told unless its own item says otherwise
    (AI_CAMERA_DEFAULT_CONFIG, handed in by infra.settings). Parsed once per environment; a broken
    one raises ConfigInvalid on every use (a deployment mistake that must show, not a camera quietly
    told something else)."""
    return json.loads(_default_json())  # a fresh copy: callers may change what they get


def effective_config(device_config: Any, default: dict[str, Any] | None = None,
                     device: str | None = None) -> dict[str, Any]:
    """The merged, validated configuration a camera is told (`device_config`: its item's `config`
    map, or None). An item apps wrote wrong falls back to the default with a warning: apps must
    not be able to break the answers, and the camera keeps being acknowledged."""
    base = deployment_default() if default is None else default
    try:
        return resolve_config(device_config, base)
    except ConfigInvalid as exc:
        from devicegate.infra.observability import logger

        # Field names only: the values are the app's, and may be anything.
        logger.warning("ai-camera device configuration invalid, using the deployment default",
                       extra={"vendor": "ai-camera", "device": device, "fields": [p.field for p in exc.problems]})
        return resolve_config(None, base)


def heartbeat_interval(device_config: Any) -> int:
    """Seconds between the heartbeats a camera is told to send (for the offline sweep). The larger
    of the two documented intervals, should a configuration set them apart: never call a camera
    offline for following either."""
    config = effective_config(device_config)
    return max(config["heartbeatInterval"], (config.get("strategy") or {}).get("heartBeatInterval", 0))
