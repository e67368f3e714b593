"""SenseLink (SenseTime) pushes, as the vendor documents them.

Sources: "3 Push通知" in vendor-docs/senselink-websocket-push.ja.txt (WebSocket frames) and the
vendor's public Event Subscription chapter (vendor-notes.md §4). Two envelopes carry the same
records:

- Event Subscription (SenseLink GE >= 2.2.0), HTTP POST:
  `{"eventType": "30000"|"30100", "messageId": "...", "sendTime": "...", "data": {...}}`
- WebSocket frame (legacy push), forwarded as is by `devicegate senselink-bridge`:
  `{"code": 30000|30100|10000|20000|20002, "message": "...", "desc": "...", "data": {...}}`

30000 is a recognition record, 30100 an alarm, 10000 a heartbeat. Record `signTime` is epoch
seconds ("認証時間(秒)"; `signTimeZone` is for display), read as seconds only. Alarm `alarmTime` /
`releaseTime` and the subscription's `sendTime` are typed "string" with no format given (the
examples are blank): a date and time, read in the server's time zone (SENSELINK_TIMEZONE) when it
carries no offset, or epoch digits. SenseLink counts in seconds here (`signTime`) and in
milliseconds elsewhere (the WebSocket URL's timestamp, per public clients), so epoch digits in
these text fields are read by the gateway's digit-count rule (core/timeutil.py: 10 digits
seconds, 13 milliseconds, anything else refused). Avatars and photos are image ids or URLs on the
SenseLink server, never inline images. Coded fields get a `...Name` next to them.

Export damage repaired in the fixtures: `"message""push alarm"` (missing colon) and a `// ...`
comment inside the alarm example.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, computed_field

from devicegate.core.fields import (
    LONG_PRINTABLE_ID,
    OptEpochSeconds,
    OptFloat,
    OptInt,
    OptText,
    VendorModel,
    sentinel,
)
from devicegate.vendors.senselink import codes

#: 0 is the vendor's "none" for ids (the alarm example is all zeros).
OptId = Annotated[str | None, sentinel(0)]
#: A device's LDID, or its id on the server: the gateway's device id (fields.IdRule).
DeviceRef = Annotated[str, LONG_PRINTABLE_ID.validator()]


class Group(VendorModel):
    id: OptText = Field(None, description="group id")
    name: OptText = Field(None, description="group name")
    type: OptInt = Field(None, description="1 employee group, 2 visitor group, 5 deny-list group")

    @computed_field
    def typeName(self) -> str | None:
        return codes.name_of(codes.GROUP_TYPE, self.type)


class Record(VendorModel):
    """30000 認証レコード: one recognition."""

    id: OptId = Field(None, max_length=64, description="record id on the SenseLink server (with the device, the event id)")
    userId: OptId = Field(None, description="recognised user's id; 0 = none (stranger)")
    name: OptText = Field(None, description="recognised user's name (personal data)")
    direction: OptInt = Field(None, description="access direction of the device")
    type: OptInt = Field(None, description="user identifier type")
    verifyScore: OptFloat = Field(None, description="verification score")
    receptionUserId: OptId = Field(None, description="id of the visitor's host")
    receptionUserName: OptText = Field(None, description="name of the visitor's host (personal data)")
    groups: list[Group] | None = Field(None, description="the user's groups")
    deviceName: OptText = Field(None, description="device name")
    sn: DeviceRef | None = Field(None, description="device LDID (the device id; required, see the adapter)")
    signDate: OptText = Field(None, description="record date, YYYY-MM-DD")
    avatar: OptText = Field(None, description="registered face photo (image id or URL)")
    signAvatar: OptText = Field(None, description="capture thumbnail (image id or URL)")
    signBgAvatar: OptText = Field(None, description="capture, large (image id or URL)")
    signTime: OptEpochSeconds = Field(None, description="recognition time, epoch seconds")
    mobile: OptText = Field(None, description="user's mobile number (personal data)")
    icNumber: OptText = Field(None, description="IC card number (masked by default)")
    idNumber: OptText = Field(None, description="ID number (masked by default; 'not available' per vendor)")
    jobNumber: OptText = Field(None, description="staff number")
    remark: OptText = Field(None, description="remark")
    entryMode: OptInt = Field(None, description="1 face, 2 QR code, 3 card, 4 face and card, 5 ID card, "
                                                "6 face and ID card")
    signTimeZone: OptText = Field(None, description="time zone of the record, e.g. +08:00")
    docPhoto: OptText = Field(None, description="ID document photo (image id or URL)")
    location: OptText = Field(None, description="where the device is installed")
    abnormalType: OptInt = Field(None, description="abnormal type (codes.ABNORMAL_TYPE); 0 none")
    bodyTemperature: Annotated[float | None, sentinel(0)] = Field(None, description="°C; 0 = not measured")
    mask: OptInt = Field(None, description="0 unknown, 1 no mask, 2 mask worn (the vendor's table is damaged)")

    @computed_field
    def entryModeName(self) -> str | None:
        return codes.name_of(codes.ENTRY_MODE, self.entryMode)

    @computed_field
    def abnormalTypeName(self) -> str | None:
        return codes.name_of(codes.ABNORMAL_TYPE, self.abnormalType)

    @computed_field
    def maskName(self) -> str | None:
        return codes.name_of(codes.MASK, self.mask)


class Alarm(VendorModel):
    """30100 アラートレコード: one step of a device alarm (status 1 active, 2 releasing, 3 released)."""

    id: OptId = Field(None, max_length=64, description="alarm record id")
    level: OptInt = Field(None, description="1 alert, 2 abnormal")
    code: OptInt = Field(None, description="alarm type (codes.ALARM_CODE)")
    description: OptText = Field(None, description="alarm description")
    status: OptInt = Field(None, description="1 active, 2 releasing, 3 released")
    traceId: OptText = Field(None, max_length=128,
                             description="alarm serial, generated by the device; same for every step")
    deviceId: Annotated[DeviceRef | None, sentinel(0)] = Field(
        None, description="device id on the SenseLink server (the device is id-{deviceId} without deviceSn)")
    deviceName: OptText = Field(None, description="device name")
    deviceSn: DeviceRef | None = Field(None, description="device LDID (the device id)")
    deviceLocation: OptText = Field(None, description="where the device is installed")
    alarmTime: OptText = Field(None, description="when the alarm was raised: server-local date and time, or "
                                                  "epoch digits (10 seconds, 13 milliseconds)")
    releaseTime: OptText = Field(None, description="when it was released, as alarmTime")
    alarmPhoto: OptText = Field(None, description="alarm photo (image id or URL)")
    resloveOption: OptInt = Field(None, description="(sic) 0 no release needed, 1 on the device only, "
                                                    "2 remotely only, 3 on the device or remotely")

    @computed_field
    def levelName(self) -> str | None:
        return codes.name_of(codes.ALARM_LEVEL, self.level)

    @computed_field
    def codeName(self) -> str | None:
        return codes.name_of(codes.ALARM_CODE, self.code)

    @computed_field
    def statusName(self) -> str | None:
        return codes.name_of(codes.ALARM_STATUS, self.status)

    @computed_field
    def resolveOptionName(self) -> str | None:
        return codes.name_of(codes.RESOLVE_OPTION, self.resloveOption)


class Subscription(VendorModel):
    """Event Subscription body. SenseLink needs HTTP 200 within 5 s, or it retries and then
    stops pushing for good."""

    eventType: int = Field(description="30000 record, 30100 alarm")
    messageId: OptText = Field(None, max_length=256, description="unique per event; the same on a retry")
    sendTime: OptText = Field(None, description="when SenseLink sent it, as an alarm's alarmTime")
    data: dict = Field(description="the record or alarm")


class Frame(VendorModel):
    """WebSocket frame, as forwarded by the bridge."""

    code: int = Field(description="30000 record, 30100 alarm, 10000 heartbeat, 20000 connected, 20002 denied")
    message: OptText = None
    desc: OptText = None
    data: dict | None = None


KINDS = {30000: ("record", Record), 30100: ("alarm", Alarm)}
HEARTBEAT = 10000
