"""Jointech push records (webhook and MQTT carry the same JSON), as the vendor documents them.

Source: "Webhook Data Push Service" / "MQTT Data Push Service" (vendor-docs/jointech-webhook-and-
mqtt.txt). Quirks handled here: `statusJson`, `expandInfo` and `ksInfo` are JSON inside strings;
inside them "null" is text, temperature -1000 and fuel -1 mean "none", battery 255 means
"charging"; numbers may arrive as strings. Unknown extra fields are kept, never dropped.
Code tables live in `codes.py`; each coded field gets a `...Name` next to it.

Times: `gpsTime`, `recvTime`, `dateTime`, `subGpsTime` and a peripheral's `dateTime` are ISO 8601
UTC text, as documented (a number there is refused, not guessed); `subGpsTimestamp` is epoch
milliseconds (the documented example, 1701937790000, is the `subGpsTime` beside it).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, Field, computed_field, field_validator, model_validator

from devicegate.core.fields import (
    DeviceId,
    IsoTime,
    MinusOneNone,
    OptFloat,
    OptInt,
    OptIsoTime,
    OptText,
    VendorModel,
    blank_to_none,
    json_in_string,
    sentinel,
)
from devicegate.core.timeutil import from_epoch
from devicegate.vendors.jointech import codes

Temperature = Annotated[float | None, sentinel(-1000)]


class _Model(VendorModel):
    pass


# --- JSON documents inside strings -------------------------------------------------------------

class Status(_Model):
    """`statusJson`: lock, vehicle and JT802 slave status. -1 means "none" throughout."""

    @model_validator(mode="before")
    @classmethod
    def _minus_one_is_none(cls, data: Any) -> Any:
        # Every status field uses -1 for "none": one pass instead of a validator per field.
        if isinstance(data, dict):
            return {k: (None if v == -1 or v == "-1" else v) for k, v in data.items()}
        return data

    lockStatus: OptInt = Field(None, description="lock: 0 off (unlocked), 1 on (locked)")
    lockRope: OptInt = Field(None, description="rope: 1 pulled out, 0 inserted")
    lockBar: OptInt = Field(None, description="lock bar state (undocumented values)")
    acc: OptInt = Field(None, description="engine switch: 1 on, 0 off")
    fuelCut: OptInt = Field(None, description="oil cut-off switch: 1 on, 0 off")
    door: OptInt = Field(None, description="door: 1 open, 0 closed")
    engine: OptInt = Field(None, description="engine: 1 on, 0 off")
    bottomDisassembly: OptInt = Field(None, description="JT802: 1 bottom disassembled")
    emergencyKey: OptInt = Field(None, description="JT802: 0 sealed, 1 enabled")
    lockMotor: OptInt = Field(None, description="JT802: 0 off, 1 on")
    structuralDisassembly: OptInt = Field(None, description="JT802: 1 disassembled")
    lockValve: OptInt = Field(None, description="JT802: 0 off, 1 on")
    lockKnob: OptInt = Field(None, description="JT802: 0 off, 1 on")
    gateway: OptInt = Field(None, description="meaningless per the vendor; kept as sent")


def _fuels(value: Any) -> Any:
    value = blank_to_none(value)
    if isinstance(value, str):
        levels = [None if part.strip() in ("-1", "-1.0", "") else part.strip() for part in value.split(",")]
        return levels if any(level is not None for level in levels) else None  # "-1,-1,-1": no sensor
    return value


class ExpandInfo(_Model):
    """`expandInfo`: extension sensors. The example uses `reportType`/`networkType`, the field
    table `fReportType`/`fNetworkType`: both are accepted."""

    temperature: Temperature = Field(None, description="°C; -1000 = none")
    humidity: OptFloat = Field(None, description="%")
    fuels: Annotated[list[float | None] | None, BeforeValidator(_fuels)] = Field(
        None, description="oil levels, one per sensor; -1 = none")
    fAcceleration: OptText = Field(None, description="'x:1;y:-29;z:-2903'")
    lux: OptFloat = Field(None, description="illuminance, lux")
    pressure: OptFloat = Field(None, description="Pa")
    posture: OptText = None
    angle: OptText = None
    fVoltage: OptFloat = Field(None, description="V")
    backBattery: OptText = Field(None, description="backup battery, e.g. '55,3.88,0'")
    reportType: OptInt = Field(None, validation_alias=AliasChoices("fReportType", "reportType"),
                               description="0 real-time, 1 supplementary (backfill), 2 alarm")
    networkType: OptInt = Field(None, validation_alias=AliasChoices("fNetworkType", "networkType"),
                                description="0 unknown, 1..5 = 1G..5G")

    @computed_field
    def reportTypeName(self) -> str | None:
        return codes.name_of(codes.REPORT_TYPES, self.reportType)

    @computed_field
    def networkTypeName(self) -> str | None:
        return codes.name_of(codes.NETWORK_TYPES, self.networkType)


class SubSensor(_Model):
    """One peripheral inside `ksInfo.subInfo`."""

    subId: OptText = None
    dateTime: OptIsoTime = None
    temperature: Temperature = None
    humidity: OptFloat = None
    lux: OptFloat = None
    eventType: OptInt = None


class KsInfo(_Model):
    """`ksInfo`: KS20A asset (signal light controller) information."""

    temperature: Temperature = Field(None, description="onboard °C; -1000 = none")
    humidity: OptFloat = None
    volStatus: OptInt = Field(None, description="0 normal, 1 overvoltage, 2 undervoltage")
    volValue: OptFloat = Field(None, description="V")
    eleStatus: OptInt = Field(None, description="0 normal, 1 overcurrent, 2 undercurrent")
    eleValue: OptFloat = Field(None, description="A")
    pressure: OptFloat = None
    shakeStatus: OptInt = Field(None, description="0 stationary, 1 shaking")
    angVelocity: OptFloat = Field(None, description="mdps")
    posture: OptText = None
    vibrate: OptInt = Field(None, description="amplitude, mg")
    subLockId: OptText = None
    subLargeCharId: OptText = None
    luminance1: OptInt = Field(None, description="white, %")
    luminance2: OptInt = Field(None, description="red, %")
    luminance3: OptInt = Field(None, description="yellow, %")
    luminance4: OptInt = Field(None, description="blue, %")
    subInfo: dict[str, SubSensor] | None = None


StatusJson = Annotated[Status | None, BeforeValidator(json_in_string)]
ExpandJson = Annotated[ExpandInfo | None, BeforeValidator(json_in_string)]
KsJson = Annotated[KsInfo | None, BeforeValidator(json_in_string)]


# --- the five record kinds ---------------------------------------------------------------------

class _Record(_Model):
    assetId: DeviceId = Field(description="device id")


class _Positioned(_Record):
    longitude: OptFloat = Field(None, ge=-180, le=180, description="WGS-84")
    latitude: OptFloat = Field(None, ge=-90, le=90, description="WGS-84")
    speed: OptFloat = Field(None, description="km/h")
    mileage: OptFloat = Field(None, description="km")
    cells: OptText = Field(None, description="'MCC,MNC,LAC,CID'")


class Location(_Positioned):
    """Positioning data (webhook rule "location", topic upload/{ak}/{dev}/location)."""

    direction: OptFloat = Field(None, description="degrees, 0-360")
    gpsTime: IsoTime = Field(description="positioning time, UTC")
    recvTime: OptIsoTime = Field(None, description="platform receive time, UTC")
    locType: OptInt = Field(None, description="0 none, 1 GPS, 2 base station, 3 cells")
    cellSignal: OptInt = None
    gnssSignal: OptInt = None
    # No range check beyond 255 = charging: an odd reading must not cost the whole record (its
    # position above all); speed and direction are kept as sent for the same reason.
    battery: OptInt = Field(None, description="%; the vendor's 255 (charging) becomes charging=true")
    charging: bool | None = None
    voltage: OptFloat = Field(None, description="V")
    status: StatusJson = Field(None, validation_alias="statusJson")
    expand: ExpandJson = Field(None, validation_alias="expandInfo")
    ks: KsJson = Field(None, validation_alias="ksInfo")

    @model_validator(mode="after")
    def _charging(self) -> Location:
        if self.battery is not None:
            self.charging = self.battery == 255
            if self.charging:
                self.battery = None
        return self

    @computed_field
    def locTypeName(self) -> str | None:
        return codes.name_of(codes.LOC_TYPES, self.locType)


class Alarm(_Positioned):
    """Alarm data (rule "alarm", topic .../alarm)."""

    alarmType: int = Field(description="code, see codes.ALARM_TYPES")
    dateTime: IsoTime = Field(description="UTC")
    describe: OptText = None
    fileIndex: OptText = Field(None, description="serial number of media files")

    @computed_field
    def alarmName(self) -> str | None:
        return codes.name_of(codes.ALARM_TYPES, self.alarmType)


class Event(_Positioned):
    """Event data (rule "event", topic .../event): lock/unlock, waybill, photo events."""

    eventType: int = Field(description="code, see codes.EVENT_TYPES")
    unLockType: OptInt = Field(None, description="lock events only, see codes.UNLOCK_TYPES")
    dateTime: IsoTime = Field(description="UTC")
    card: OptText = Field(None, description="swiped card number")
    password: OptText = Field(None, description="unlock password: never stored nor published (a credential, "
                                                "dropped by core/personal.py whatever PersonalData says)")
    describe: OptText = Field(None, description="text; JSON with waybillGUID/waybillNo for events 13-18")
    fileIndex: OptText = None

    @computed_field
    def eventName(self) -> str | None:
        return codes.name_of(codes.EVENT_TYPES, self.eventType)

    @computed_field
    def unLockTypeName(self) -> str | None:
        return codes.name_of(codes.UNLOCK_TYPES, self.unLockType)

    @computed_field
    def details(self) -> dict[str, Any] | None:
        """`describe` decoded when it is a JSON object (waybill events), else None."""
        if not self.describe or not self.describe.lstrip().startswith("{"):
            return None
        try:
            value = json_in_string(self.describe)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class CommandResponse(_Record):
    """Command response (rule "command response", topic .../cmd). `content` is a JSON array in a
    string when the device answered, plain text (e.g. "Device not online！") when it did not."""

    commandType: OptText = None
    content: OptText = None
    dateTime: IsoTime

    def _parsed(self) -> list[Any] | None:
        text = (self.content or "").strip()
        if not text.startswith("["):
            return None
        try:
            value = json_in_string(text)
        except ValueError:
            return None
        return value if isinstance(value, list) else None

    @computed_field
    def ok(self) -> bool:
        return self._parsed() is not None

    @computed_field
    def response(self) -> list[Any] | None:
        return self._parsed()

    @computed_field
    def error(self) -> str | None:
        return None if self._parsed() is not None else (self.content or None)


class SubLock(_Positioned):
    """Slave lock / sensor data (rule "slave lock", topic .../{subLockNum}/sublock)."""

    direction: OptFloat = Field(None, description="degrees, 0-360")
    gpsTime: OptIsoTime = Field(None, description="host positioning time, UTC")
    recvTime: OptIsoTime = None
    subAssetID: DeviceId = Field(description="slave device number")
    subGpsTime: OptIsoTime = Field(None, description="slave positioning time, UTC")
    subGpsTimestamp: OptInt = Field(None, description="slave positioning time, epoch ms")
    battery: OptInt = Field(None, description="slave battery %")
    voltage: OptFloat = Field(None, description="slave voltage, V")
    sensorType: OptInt = Field(None, description="1 JT126, 4 JT709, 5 JT801, 6 JT802")
    locStatus: MinusOneNone = Field(None, description="slave lock: 0 off, 1 on")
    locRope: MinusOneNone = Field(None, description="slave rope: 1 pulled out, 0 inserted")
    rssi: OptInt = None
    # The vendor's table swaps the two descriptions; the example shows humidity 0 and
    # temperature -1000.0, so -1000 is "no temperature" and 0 humidity "none" as documented.
    temperature: Temperature = Field(None, description="°C; -1000 = none")
    humidity: Annotated[float | None, sentinel(0)] = Field(None, description="%; 0 = none")
    locTimes: OptInt = Field(None, description="unlock count")
    eventType: OptInt = Field(None, description="slave event, see codes.SLAVE_EVENT_TYPES")
    status: StatusJson = Field(None, validation_alias="statusJson")

    @computed_field
    def sensorTypeName(self) -> str | None:
        return codes.name_of(codes.SENSOR_TYPES, self.sensorType)

    @computed_field
    def eventTypeName(self) -> str | None:
        return codes.name_of(codes.SLAVE_EVENT_TYPES, self.eventType)

    @field_validator("subGpsTimestamp")
    @classmethod
    def _epoch_ms(cls, value: int | None) -> int | None:
        # Kept as the vendor's number; read as milliseconds, it must be a date (adapter._occurred_at).
        if value is not None:
            from_epoch(value, "ms")
        return value


RECORD_MODELS: dict[str, type[_Record]] = {
    "location": Location,
    "alarm": Alarm,
    "event": Event,
    "cmd": CommandResponse,
    "sublock": SubLock,
}
