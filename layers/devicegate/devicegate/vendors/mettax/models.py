"""Mettax (vehicle video telematics) webhook records, as the vendor documents them.

Source: the webhook push page (vendor-docs/mettax-webhook.txt). One URL per pushed service is
chosen in the Mettax console; every push carries a parameter `data` whose value is the record as
a JSON string (JSON inside JSON). Nothing in a record names its kind: the URL does (our
/hooks/mettax/{token}/{service}), or its fields do (adapter.detect_kind).

Quirks handled here:
- The examples send numbers as text (`"lat": "35.926264"`, `"compaResult": "0"`, `"status": "1"`)
  and `actual` may come as "true"/"false": both are read; text nulls are absent.
- Times. `deviceCt` is the gateway's time, UTC epoch seconds: it is the event's occurredAt.
  `reportCt` is the device's *local* wall-clock time written as if it were UTC epoch seconds
  (1724822445 means 05:20:45 on the device's clock, wherever it is). It is stored as sent, plus
  `reportedLocal` (that wall-clock time as ISO text without offset) and `deviceUtcOffset`
  (reportCt - deviceCt rounded to 15 minutes, "+08:00"), the latter only when the two are within
  14 hours of each other: beyond that one of the clocks is wrong, and no zone is implied.
  All three (and `accUpdateTime`) are documented as epoch seconds, every example has 10 digits, and
  nothing suggests Mettax sends milliseconds: they are read as seconds only, so a 13-digit value is
  beyond the year 9999 and refused naming the field, not read as milliseconds because of its size.
- Numbers as text follow the gateway's rule (docs/architecture.md "Parsing rules"): `"35.926264"`
  and `"0"` are read, `"12_000"` or `" 1 "` are refused naming the field.
- `actual: false` marks supplementary (backfilled) data sent after an outage: derived
  `backfill: true`. It is stored like any record; latest state never moves back to it, because the
  outbox only moves a state group forward to a newer occurredAt.
- `alarmType` is a comma-separated list: derived `alarmTypes` and `alarmTypeNames`.
- PassThrough `message` is itself a JSON string (`{"com1": "<hex>", "com2": "<hex>"}`): derived
  `messageDecoded`. Device serial data that is not JSON is kept as received, with a note.
- `similarity` is in units of 0.01 % (7577 = 75.77 %): derived `similarityPercent`.
Coded fields get a `...Name` next to them (codes.py). Unknown extra fields are kept.

Identifiers that end up in DynamoDB keys and event ids are bounded: deviceId 1..64 and
id/alarmId/captureId 1..128 printable ASCII characters (no blanks, no control characters).
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, computed_field

from devicegate.core import jsonbody
from devicegate.core.errors import InvalidPayload
from devicegate.core.fields import PRINTABLE_ID, OptFloat, OptInt, OptText, VendorModel
from devicegate.core.timeutil import from_epoch
from devicegate.vendors.mettax import codes


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _not_bool(value: Any) -> Any:
    # pydantic's lax int takes true as 1: a boolean time would be stored as 1970-01-01.
    if isinstance(value, bool):
        raise ValueError("expected epoch seconds, not a boolean")
    return value


# Printable ASCII, bounded: these become key parts and event ids (keys.py percent-encodes them).
DeviceId = Annotated[str, PRINTABLE_ID.validator()]
RecordId = Annotated[str, BeforeValidator(_strip), Field(pattern=r"^[\x21-\x7e]{1,128}$")]


def _epoch_seconds(value: int) -> int:
    from_epoch(value, "s")  # ValueError: negative, or beyond the year 9999 (milliseconds?)
    return value


#: Epoch seconds, kept as the vendor's number; read as seconds it must be a date.
EpochTime = Annotated[int, BeforeValidator(_not_bool), AfterValidator(_epoch_seconds)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]

#: 14 hours: the widest UTC offset in use (UTC+14, Line Islands).
MAX_UTC_OFFSET_S = 14 * 3600

_ACTUAL = "true: real time; false: supplementary transmission (backfilled after an outage)"
_REPORT_CT = ("device data reporting time, device time zone: the device's local wall-clock time "
              "written as epoch seconds")
_DEVICE_CT = "gateway data reporting time, UTC epoch seconds (the event's occurredAt)"
_ID = ("unique package id, '{deviceId}_{snowflake}'; records with the same id (a GPS fix and its "
       "alarm, device info...) belong to one package")


def epoch_moment(value: int) -> datetime:
    """An epoch-seconds value of these records as an aware UTC datetime (the model checked it)."""
    return from_epoch(value, "s")


def wall_clock(value: int) -> str:
    """`reportCt` as the device's wall-clock time: ISO text without offset (see module doc)."""
    return epoch_moment(value).replace(tzinfo=None).isoformat(timespec="seconds")


def utc_offset(report_ct: int, device_ct: int) -> str | None:
    """reportCt - deviceCt rounded to 15 minutes as "+hh:mm", or None beyond +-14 h."""
    difference = (epoch_moment(report_ct) - epoch_moment(device_ct)).total_seconds()
    if abs(difference) > MAX_UTC_OFFSET_S:
        return None
    # 15 minutes: the finest step of real zone offsets (+05:45, +12:45); absorbs the seconds
    # between the device's report and the gateway's.
    minutes = round(difference / 900) * 15
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


class _Record(VendorModel):
    deviceId: DeviceId = Field(description="device id")


class _Reported(_Record):
    """A record stamped by the device (reportCt) and the gateway (deviceCt)."""

    # Computed fields are properties so that code reading them gets their type; mypy does not
    # support a decorator over @property (python/mypy#1362), hence the ignore pydantic's
    # documentation prescribes on each @computed_field line of this module.

    # Documented for AlarmData, GPS and DeviceInfo only (required there); typed wherever sent.
    actual: bool | None = Field(None, description=_ACTUAL)
    reportCt: EpochTime = Field(description=_REPORT_CT)
    deviceCt: EpochTime = Field(description=_DEVICE_CT)

    @computed_field(description="true when actual is false: backfilled data, never newer than the state")  # type: ignore[prop-decorator]
    @property
    def backfill(self) -> bool | None:
        return None if self.actual is None else not self.actual

    @computed_field(description="reportCt as the device's local wall-clock time, ISO 8601 without offset")  # type: ignore[prop-decorator]
    @property
    def reportedLocal(self) -> str:
        return wall_clock(self.reportCt)

    @computed_field(description="the device's UTC offset, (reportCt - deviceCt) to 15 min; absent beyond +-14 h")  # type: ignore[prop-decorator]
    @property
    def deviceUtcOffset(self) -> str | None:
        return utc_offset(self.reportCt, self.deviceCt)


class Alarm(_Reported):
    """AlarmData (service "alarm"). Its files arrive later as AlarmFile records whose `id` is this
    `alarmId`; the vendor API 'alarm/alarmFileByAlarmId' lists them too."""

    actual: bool = Field(description=_ACTUAL)
    alarmType: str = Field(description="alarm types, comma-separated (e.g. 'laneShift,fatigueDriving')")
    alarmId: RecordId = Field(description="unique alarm id; AlarmFile `id` and the vendor's alarm pages use it")
    id: RecordId = Field(description=_ID)
    lat: Latitude = Field(description="latitude, WGS-84")
    lon: Longitude = Field(description="longitude, WGS-84")
    speed: OptFloat = Field(None, description="km/h")
    alarmAttribute: OptText = Field(None, description="storage anomaly: storage id; camera loss: camera serial "
                                                      "number; fence entry/exit: fence name")

    @computed_field(description="alarmType split at commas, blanks dropped")  # type: ignore[prop-decorator]
    @property
    def alarmTypes(self) -> list[str]:
        return [t for t in (part.strip() for part in self.alarmType.split(",")) if t]

    @computed_field(description="a name per alarm type (codes.ALARM_TYPES); unknown types as sent")  # type: ignore[prop-decorator]
    @property
    def alarmTypeNames(self) -> list[str]:
        return [codes.alarm_type_name(t) for t in self.alarmTypes]

    @computed_field(description="the link of this alarm's files: query gsi4 L#mettax#alarm:{alarmId}")  # type: ignore[prop-decorator]
    @property
    def alarmFilesLink(self) -> str:
        return f"alarm:{self.alarmId}"


class Gps(_Reported):
    """GPS Data (service "gps")."""

    actual: bool = Field(description=_ACTUAL)
    num: int = Field(description="number of satellites")
    lon: Longitude | None = Field(None, description="longitude, WGS-84")
    lat: Latitude | None = Field(None, description="latitude, WGS-84")
    speed: OptFloat = Field(None, description="km/h")
    course: OptInt = Field(None, description="direction of travel, degrees")
    id: RecordId = Field(description=_ID)


class DeviceInfo(_Reported):
    """DeviceInfo Data (service "device-info")."""

    actual: bool = Field(description=_ACTUAL)
    acc: OptInt = Field(None, description="ACC: 0 off, 1 on")
    blockedStatus: OptInt = Field(None, description="oil and electricity (cut-off): 0 off, 1 on")
    odometer: OptFloat = Field(None, description="mileage statistics")
    elec: OptInt = Field(None, description="power: 0 off, 1 on")
    ioStatus: OptInt = Field(None, description="I/O status")
    signal: OptInt = Field(None, description="GSM signal strength")
    voltage: OptFloat = Field(None, description="external voltage, V (wired devices only)")
    quantity: OptFloat = Field(None, description="battery, %")
    accUpdateTime: EpochTime | None = Field(None, description="last ACC change, device time zone (like reportCt)")
    localizationFailure: bool | None = Field(None, description="true: the device has no position fix")
    id: RecordId = Field(description=_ID)


#: DeviceInfo's own fields: any of them tells a record apart as device info.
DEVICE_INFO_FIELDS = ("acc", "blockedStatus", "odometer", "elec", "ioStatus", "signal", "voltage", "quantity",
                      "accUpdateTime", "localizationFailure")


class PassThrough(_Reported):
    """PassThrough Data (service "passthrough"): serial-port data the device forwards."""

    message: str | dict[str, Any] = Field(description="JSON string holding com1 and com2 (hex serial data)")
    id: RecordId = Field(description=_ID)

    @cached_property
    def decoded(self) -> tuple[dict[str, Any] | None, str | None]:
        if isinstance(self.message, dict):  # sent as an object instead of a string
            return self.message, None
        try:
            decoded = jsonbody.loads(self.message, field="message")
        except InvalidPayload as exc:
            # Device serial data: never dropped, even when it is not what the document shows (nor
            # when it breaks the parsing rules, a NaN or a repeated key: the text is kept as sent;
            # "\ud800" escapes would decode into text no store can hold, the escaped original can).
            if any(p.problem == jsonbody.NOT_UNICODE for p in exc.problems):
                return None, "message holds text that is not valid Unicode; kept as received"
            return None, "message is not JSON; kept as received"
        if not isinstance(decoded, dict):
            return None, "message is not a JSON object; kept as received"
        return decoded, None

    @computed_field(description="`message` decoded: {'com1': hex, 'com2': hex}; absent when it is not JSON")  # type: ignore[prop-decorator]
    @property
    def messageDecoded(self) -> dict[str, Any] | None:
        return self.decoded[0]

    @computed_field(description="why messageDecoded is absent")  # type: ignore[prop-decorator]
    @property
    def messageNote(self) -> str | None:
        return self.decoded[1]


class AlarmFile(_Record):
    """AlarmFile Data (service "alarm-file"): one file (picture, video...) of an alarm. No time."""

    id: RecordId = Field(description="the alarm's alarmId (AlarmData)")
    fileUrl: str = Field(min_length=1, description="file URL")
    fileType: str = Field(max_length=8, description="00 picture, 01 audio, 02 audio and video, 03 text, 04 others")

    @computed_field(description="name of fileType (codes.FILE_TYPES)")  # type: ignore[prop-decorator]
    @property
    def fileTypeName(self) -> str | None:
        code = self.fileType.strip()
        if code.isascii() and code.isdigit():
            return codes.name_of(codes.FILE_TYPES, int(code))
        return f"unknown ({code[:16]})"


class SensorData(_Reported):
    """Device SensorData (service "sensor"): analogue (ADC) readings."""

    id: RecordId = Field(description="unique id (the document calls it 'unique alarmId')")
    adc: str = Field(description="ADC (analogue) data, as sent")


class CaptureFile(_Record):
    """CaptureFile Data (service "capture-file"): the file of a capture requested through the
    vendor's capture API, which returned `captureId`. No time."""

    captureId: RecordId = Field(description="the id the capture API returned")
    channelId: int = Field(ge=0, lt=2**31, description="device (camera) channel id")
    fileUrl: str = Field(min_length=1, description="capture file URL")


class FaceCheckResult(_Reported):
    """Face Check, messageType "1": the comparison result. Its driver picture (messageType "2")
    comes as a separate message with the same `id`, in either order."""

    id: RecordId = Field(description=_ID + "; the picture message carries the same id")
    messageType: str = Field(description="'1': face comparison result")
    licensePlate: OptText = Field(None, description="license plate number")
    faceId: OptText = Field(None, description="the driver's face id")
    driverName: OptText = Field(None, description="driver name")
    lat: Latitude = Field(description="latitude, WGS-84")
    lon: Longitude = Field(description="longitude, WGS-84")
    compaResult: int = Field(description="0 matching successful, 1 failed, 2 timeout, 3 function not enabled, "
                                         "4 abnormal connection, 5 no driver picture, 6 terminal face library empty")
    similarity: float = Field(description="similarity in units of 0.01 % (7577 = 75.77 %)")

    @computed_field(description="similarity in percent (similarity / 100)")  # type: ignore[prop-decorator]
    @property
    def similarityPercent(self) -> float:
        return round(self.similarity / 100, 2)

    @computed_field(description="name of compaResult (codes.COMPARE_RESULTS)")  # type: ignore[prop-decorator]
    @property
    def compaResultName(self) -> str | None:
        return codes.name_of(codes.COMPARE_RESULTS, self.compaResult)


class FaceCheckPicture(_Record):
    """Face Check, messageType "2": the driver picture. No time."""

    id: RecordId = Field(description=_ID + "; the comparison result carries the same id")
    messageType: str = Field(description="'2': driver picture")
    imageUrl: OptText = Field(None, description="driver image URL")
    status: int = Field(description="0 failure, 1 success")

    @computed_field(description="name of status (codes.PICTURE_STATUS)")  # type: ignore[prop-decorator]
    @property
    def statusName(self) -> str | None:
        return codes.name_of(codes.PICTURE_STATUS, self.status)


class Rfid(_Reported):
    """Push RFID (service "rfid"): the device's RFID reader read a driver card."""

    id: RecordId = Field(description=_ID)
    licensePlate: OptText = Field(None, description="license plate number")
    rfidNo: OptText = Field(None, description="the driver's RFID card number")
    driverName: OptText = Field(None, description="driver name")
    lat: Latitude = Field(description="latitude, WGS-84")
    lon: Longitude = Field(description="longitude, WGS-84")
    status: int = Field(description="1 enter, 2 exit")

    @computed_field(description="name of status (codes.RFID_STATUS)")  # type: ignore[prop-decorator]
    @property
    def statusName(self) -> str | None:
        return codes.name_of(codes.RFID_STATUS, self.status)


#: Service (kind) -> model. Face Check has two models, chosen by messageType (FACE_CHECK_MODELS).
RECORD_MODELS: dict[str, type[VendorModel]] = {
    "gps": Gps,
    "alarm": Alarm,
    "device-info": DeviceInfo,
    "passthrough": PassThrough,
    "alarm-file": AlarmFile,
    "sensor": SensorData,
    "capture-file": CaptureFile,
    "face-check": FaceCheckResult,
    "rfid": Rfid,
}
FACE_CHECK_MODELS: dict[str, tuple[str, type[VendorModel]]] = {
    "1": ("result", FaceCheckResult),
    "2": ("picture", FaceCheckPicture),
}
#: The face check's part names, in the order its parts are listed.
FACE_CHECK_PARTS = ("result", "picture")
KINDS = tuple(RECORD_MODELS)
