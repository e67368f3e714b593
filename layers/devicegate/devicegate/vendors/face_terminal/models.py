"""The face-recognition access terminal's HTTP event push, as the vendor documents it.

Source: "事件推送协议(HTTP/HTTPS)" in vendor-docs/face-terminal-push.zh.txt. The terminal POSTs
`{"type": 0|1, "data": {...}}` as application/json: type 0 a recognition (passage) record, unique
by `uuid`; type 1 a device alarm, identified by `trace_id`, whose `status` goes raised (1) ->
release failed (2) -> released (3), each a separate push.

Times, each read in its documented unit (never by its size): record `timestamp` epoch seconds
(typed Int in the field table, which cannot hold milliseconds; the example is 10 digits),
`guest_time_*` epoch milliseconds ("毫秒级"), alarm `event_time` epoch milliseconds ("精确到毫秒,
13位"). A millisecond value sent as `timestamp` is beyond the year 9999: refused naming the field.
Images (`rgb_image`, `alarm_photo`) are base64 JPEG of tens to hundreds of KB; the examples send
" " for "no picture". Coded fields get a `..._name` / `...Name` next to them (codes.py).
Unknown extra fields are kept.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, computed_field

from devicegate.core.fields import (
    DeviceId,
    EpochMillis,
    EpochSeconds,
    OptEpochMillis,
    OptFloat,
    OptInt,
    OptText,
    VendorModel,
    sentinel,
)
from devicegate.vendors.face_terminal import codes

#: uuid and trace_id become event ids / key parts: printable, no delimiters, bounded.
RecordId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")]
#: guest_time_* use 0 for "not a visitor".
MillisOrNone = Annotated[OptEpochMillis, sentinel(0)]


class Group(VendorModel):
    id: OptText = Field(None, description="group id")
    name: OptText = Field(None, description="group name")


class User(VendorModel):
    """事件用户对象: the person recognised. Personal data: see devicegate.personal."""

    name: OptText = Field(None, description="user name (personal data)")
    user_id: OptText = Field(None, description="user id")
    type: OptInt = Field(None, description="user type: 1 employee, 2 visitor, 5 blacklist")
    ic_number: OptText = Field(None, description="IC card number (masked by default)")
    job_number: OptText = Field(None, description="job (staff) number")
    id_number: OptText = Field(None, description="ID card number (masked by default)")
    guest_time_start: MillisOrNone = Field(None, description="visitor validity start, ms epoch; 0 = none")
    guest_time_end: MillisOrNone = Field(None, description="visitor validity end, ms epoch; 0 = none")
    remark: OptText = Field(None, description="remark, at most 256 bytes")
    pin: OptText = Field(None, description="PIN code: never stored (devicegate.personal)")
    groups: list[Group] | None = Field(None, description="groups the user belongs to")

    @computed_field
    def typeName(self) -> str | None:
        return codes.name_of(codes.USER_TYPE, self.type)


class Recognition(VendorModel):
    """type 0 识别事件: one recognition / passage."""

    deviceSN: DeviceId = Field(description="device serial number")
    uuid: RecordId = Field(description="unique id of the record (the event id)")
    timestamp: EpochSeconds = Field(description="recognition time, epoch seconds")
    recognitionType: OptInt = Field(None, description="1 employee, 2 visitor, 3 stranger, 4 non-live, 5 blacklist")
    recognizeScore: OptFloat = Field(None, description="recognition score")
    mask: OptInt = Field(None, description="0 detection off, 1 no mask, 2 mask worn")
    mode: OptInt = Field(None, description="verification mode 0..9 (codes.VERIFICATION_MODE)")
    rgb_image: OptText = Field(None, description="base64 JPEG face capture; stored in S3, replaced by a reference")
    pass_: bool | None = Field(None, alias="pass", description="passage allowed")
    bodyTemperature: Annotated[float | None, sentinel(0)] = Field(None, description="°C; 0.0 = not measured")
    entry_mode: OptInt = Field(None, description="how the door was opened, 1..12 (codes.ENTRY_MODE)")
    abnormal_type: OptInt = Field(None, description="abnormal event type (codes.ABNORMAL_TYPE); 0 none")
    user: User | None = Field(None, description="the recognised user; absent for strangers")

    @computed_field
    def recognitionTypeName(self) -> str | None:
        return codes.name_of(codes.RECOGNITION_TYPE, self.recognitionType)

    @computed_field
    def maskName(self) -> str | None:
        return codes.name_of(codes.MASK, self.mask)

    @computed_field
    def modeName(self) -> str | None:
        return codes.name_of(codes.VERIFICATION_MODE, self.mode)

    @computed_field
    def entry_mode_name(self) -> str | None:
        return codes.name_of(codes.ENTRY_MODE, self.entry_mode)

    @computed_field
    def abnormal_type_name(self) -> str | None:
        return codes.name_of(codes.ABNORMAL_TYPE, self.abnormal_type)


class Alarm(VendorModel):
    """type 1 设备告警事件: one step of a device alarm. The push carries no device serial number:
    the device comes from `deviceSN` when a firmware adds it, else the URL's `device` parameter."""

    trace_id: RecordId = Field(description="alarm serial number, generated by the device; same for every step")
    event_time: EpochMillis = Field(description="raised: when it happened; release steps: when handled (ms epoch)")
    status: int = Field(description="1 raised, 2 release failed, 3 released")
    code: OptInt = Field(None, description="alarm code (codes.ALARM_CODE); required when status is 1")
    description: OptText = Field(None, description="alarm description")
    user_id: OptText = Field(None, description="related user id")
    alarm_photo: OptText = Field(None, description="base64 JPEG; stored in S3, replaced by a reference")
    deviceSN: DeviceId | None = Field(None, description="not in the vendor's table; used when present")

    @computed_field
    def codeName(self) -> str | None:
        return codes.name_of(codes.ALARM_CODE, self.code)

    @computed_field
    def statusName(self) -> str | None:
        return codes.name_of(codes.ALARM_STATUS, self.status)


class Push(VendorModel):
    """事件推送: the envelope of every push."""

    type: int = Field(description="0 recognition record, 1 device alarm")
    data: dict = Field(description="the record; its model depends on type")


RECORD_MODELS: dict[int, tuple[str, type[VendorModel]]] = {0: ("record", Recognition), 1: ("alarm", Alarm)}
