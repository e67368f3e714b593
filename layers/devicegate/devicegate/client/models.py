"""The typed shapes apps read: the event envelope with its vocabulary blocks, the CloudEvent that
carries it on the queue, and a device's latest state. These models are the contract: the JSON
Schemas of docs/contracts are generated from them, and the client (devicegate.client) returns
them. The ingest functions never import this module: they build the same shapes as plain dicts
(core/vocabulary.py's TypedDicts, checked against these models by tests), because validating
what they built from validated records would only cost time on the hot path.

Models ignore fields they do not know, so an app built on this release keeps working when a
later one adds a field; they refuse a field of the wrong type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devicegate.core.vocabulary import AlarmStatus, Direction, Method, Role, Severity


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Position(_Shape):
    """Where the device was (Jointech, Mettax): one name per fact, one unit."""

    latitude: float = Field(description="WGS84 degrees, north positive", ge=-90, le=90)
    longitude: float = Field(description="WGS84 degrees, east positive", ge=-180, le=180)
    speedKmh: float | None = Field(None, description="speed over ground, km/h")
    headingDeg: float | None = Field(None, description="course, degrees clockwise from true north (0-360)")
    altitudeM: float | None = Field(None, description="altitude above sea level, metres")
    satellites: int | None = Field(None, description="satellites used in the fix")
    valid: bool = Field(True, description="the device had a fix (a record without one has no position block)")
    fixTime: datetime | None = Field(None, description="when the fix was taken, UTC")


class Alarm(_Shape):
    """What went wrong, on one severity scale for every vendor."""

    code: str | None = Field(None, description="the vendor's alarm code, as text")
    name: str | None = Field(None, description="the vendor's alarm name, in English")
    severity: Severity = Field(description="info (a notice), warning (look at it), critical (act now)")
    status: AlarmStatus | None = Field(None, description="the lifecycle step, for vendors whose alarms have one")
    id: str | None = Field(None, description="the vendor's alarm id, the same over the alarm's life")


class Person(_Shape):
    """Who passed, as the terminal knew them: a role, never a name or a number."""

    role: Role = "unknown"
    id: str | None = Field(None, description="the vendor's user id as the deployment's PersonalData policy keeps it "
                                             "(as sent, masked, or absent)")


class Passage(_Shape):
    """Someone at a door (face terminal, SenseLink, Mettax face check)."""

    granted: bool | None = Field(None, description="whether the door let them through")
    method: Method = Field("unknown", description="how the passage was claimed (the first factor)")
    direction: Direction = "unknown"
    person: Person | None = None
    score: float | None = Field(None, description="how well the face matched, 0-1", ge=0, le=1)


class Power(_Shape):
    """The device's supply, where reported."""

    batteryPct: float | None = Field(None, description="battery charge, percent")
    voltageV: float | None = Field(None, description="supply or battery voltage, volts")
    external: bool | None = Field(None, description="on external power (charging, mains)")


class Facts(_Shape):
    """The vocabulary blocks of an event: each present only when the record states its fact."""

    position: Position | None = None
    alarm: Alarm | None = None
    passage: Passage | None = None
    power: Power | None = None


Transport = Literal["http", "mqtt", "replay", "gateway"]
T = TypeVar("T")


class Event(_Shape):
    """One stored event: the table's event item and the queue message's `data` alike."""

    vendor: str = Field(description="the vendor adapter: ai-camera, face-terminal, jointech, mettax, senselink")
    deviceId: str = Field(description="the vendor's device identifier, as sent")
    kind: str = Field(description="the vendor's record kind (location, alarm, recognition...); with the vendor, "
                                  "the event type devicegate.{vendor}.{kind}")
    eventId: str = Field(description="unique per device (docs/consuming.md, the identity rule per vendor)")
    occurredAt: datetime = Field(description="when it happened by the device's clock (or its receipt, for "
                                             "records without a time), UTC")
    receivedAt: datetime = Field(description="when the gateway received it, UTC")
    transport: Transport = Field(description="how it arrived: http, mqtt, replay (from quarantine), gateway "
                                             "(events the gateway writes itself)")
    data: dict[str, Any] = Field(default_factory=dict, description="the vendor's record, typed by vendor and kind "
                                                                  "(docs/contracts/schemas), personal data masked")
    facts: Facts | None = Field(None, description="the vocabulary blocks, when the record states their facts")
    dataRef: str | None = Field(None, description="s3://... of the whole record when it was too large for the "
                                                  "item; `data` is then empty")

    @property
    def type(self) -> str:
        return f"devicegate.{self.vendor}.{self.kind}"

    @property
    def position(self) -> Position | None:
        return self.facts.position if self.facts else None

    @property
    def alarm(self) -> Alarm | None:
        return self.facts.alarm if self.facts else None

    @property
    def passage(self) -> Passage | None:
        return self.facts.passage if self.facts else None

    @property
    def power(self) -> Power | None:
        return self.facts.power if self.facts else None


class DeviceOffline(_Shape):
    """`data` of the gateway's own `device.offline` event (store/liveness.py, written by the sweep)."""

    lastHeardAt: datetime | None = Field(description="the last contact before the silence, UTC")
    offlineSince: datetime = Field(description="when it became overdue: lastHeardAt + offlineAfterSeconds")
    offlineAfterSeconds: int | None = Field(description="the silence after which this device counts as offline")
    detectedAt: datetime = Field(description="when the sweep found it, UTC")


class DeviceOnline(_Shape):
    """`data` of the gateway's own `device.online` event (store/liveness.py, written by the outbox when
    an offline device is heard from again)."""

    onlineAt: datetime = Field(description="the contact that ended the silence, UTC")
    offlineSince: datetime | None = Field(description="when it had become overdue")
    lastHeardAt: datetime | None = Field(description="the last contact before the silence")
    offlineForSeconds: int = Field(description="seconds from offlineSince to onlineAt (0 when the mark was premature)")


class CommandStep(_Shape):
    """`data` of the gateway's `command.{queued|sent|answered|failed|expired|cancelled}` events: one
    step of a command kept for the device's next contact (store/commands.py lifecycle_event). Never
    the command's text."""

    commandId: str
    lifecycle: Literal["queued", "sent", "answered", "failed", "expired", "cancelled"]
    status: Literal["queued", "pending", "succeeded", "failed", "timed_out", "expired", "cancelled"] = Field(
        description="the stored status the step moved the command to (docs/commands.md)")
    statusAt: datetime
    command: str | None = Field(None, description="the typed command's name, when one was named")
    word: str | None = Field(None, description="the command word (BASE, RELAY...)")
    serial: str | None = None
    requestedAt: datetime | None = None
    waitUntil: datetime | None = Field(None, description="the command expires unsent after this")
    attempts: int | None = Field(None, description="attempts sent so far")
    maxAttempts: int | None = None
    allowUnsafe: bool | None = Field(None, description="kept although it may open or unlock something")
    clientToken: str | None = None
    responseType: str | None = Field(None, description="answered: the device's answer type")
    responseEventId: str | None = Field(None, description="answered or failed: the event holding the device's answer")
    error: str | None = Field(None, description="failed: why")


class CloudEvent(_Shape):
    """A queue message's body: CloudEvents 1.0, structured JSON mode, with the event as `data`."""

    specversion: Literal["1.0"]
    id: str = Field(description="the event's eventId")
    source: str = Field(description="devicegate/{vendor}/{device id, percent-encoded}; with id, the event's identity")
    type: str = Field(description="devicegate.{vendor}.{kind}")
    subject: str = Field(description="the device id")
    time: datetime = Field(description="the event's occurredAt")
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = Field(None, description="the JSON Schema of `data` for this type")
    dataref: str | None = Field(None, description="where the whole record is when it was too large for a message")
    data: Event


class DeviceState(_Shape):
    """A device's latest state and liveness, from its one item."""

    vendor: str
    deviceId: str
    lastSeen: datetime | None = Field(None, description="occurredAt of the newest event")
    lastKind: str | None = None
    lastEventId: str | None = None
    online: bool | None = Field(None, description="false once the sweep found it silent too long")
    heardAt: datetime | None = Field(None, description="the last contact, by the gateway's clock")
    offlineSince: datetime | None = None
    state: dict[str, dict[str, Any]] = Field(default_factory=dict, description="every state group by name, its "
                                             "newest value with `at` (the time of the event it is from) and `eventId`: "
                                             "the vocabulary's (position, alarm, passage, power) and the vendor's own")

    def _block(self, name: str, model: type[_Shape]) -> Any:
        group = self.state.get(name)
        return model.model_validate(group) if group else None

    @property
    def position(self) -> Position | None:
        return self._block("position", Position)

    @property
    def alarm(self) -> Alarm | None:
        return self._block("alarm", Alarm)

    @property
    def passage(self) -> Passage | None:
        return self._block("passage", Passage)

    @property
    def power(self) -> Power | None:
        return self._block("power", Power)


class DeviceRow(_Shape):
    """A device in a list (a vendor's devices, the devices offline now): when it was last seen and
    heard from, and whether it is online; its state is one `state()` call away."""

    vendor: str
    deviceId: str
    lastSeen: datetime | None = Field(None, description="occurredAt of the newest event")
    lastKind: str | None = None
    heardAt: datetime | None = Field(None, description="the last contact, by the gateway's clock")
    online: bool | None = None
    offlineSince: datetime | None = None


class AlarmLifecycle(_Shape):
    """One face-terminal or SenseLink alarm over its steps (open, releasing or release_failed,
    released), whatever order the steps arrived in."""

    vendor: str
    deviceId: str
    alarmId: str = Field(description="the vendor's trace id, the same over the alarm's life")
    status: AlarmStatus
    statusAt: datetime | None = Field(None, description="when the current status was reached")
    code: str | None = Field(None, description="what the alarm is, as the first step to say it said (as text, "
                                               "as the vocabulary's alarm code: the item keeps the vendor's number)")
    codeName: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, description="the latest step's code, name, description")
    firstDetails: dict[str, Any] = Field(default_factory=dict, description="the first step's")
    steps: dict[str, datetime] = Field(default_factory=dict, description="the time of every step seen, by status")
    eventIds: list[str] = Field(default_factory=list, description="the events of its steps")

    @field_validator("code", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Assembly(_Shape):
    """A record the vendor sends in parts (a Mettax face check), with the parts come so far."""

    vendor: str | None = None
    deviceId: str | None = None
    kind: str | None = None
    group: str | None = Field(None, description="what ties the parts together")
    firstReceivedAt: datetime | None = None
    parts: dict[str, dict[str, Any]] = Field(default_factory=dict, description="each part by name; one too large "
                                             "for the item is {\"dataRef\": \"s3://...\"}")
    assembledEventId: str | None = Field(None, description="the one event apps see, once it exists")


class Problem(_Shape):
    """Why a quarantined payload was refused: a field and what is wrong with it."""

    field: str
    problem: str = ""


class QuarantinedPayload(_Shape):
    """A payload the gateway refused, kept for inspection and replay (one per distinct body)."""

    id: str = Field(description="the payload's digest: what `devicegate replay --id` takes")
    vendor: str
    kind: str = Field(description="the route's kind, or what the payload looked like")
    transport: str
    reason: str
    problems: list[Problem] = Field(default_factory=list)
    contentType: str = ""
    firstSeenAt: datetime | None = None
    lastSeenAt: datetime | None = None
    seenCount: int = 1
    bodySize: int | None = None
    body: str | None = Field(None, description="the body as text, when it was UTF-8 and small enough")
    bodyBase64: str | None = Field(None, description="the body, when it was not UTF-8")
    bodyRef: str | None = Field(None, description="s3://... of a body too large for the item (quarantine/: "
                                                  "not readable with AppReadPolicy)")
    replayedAt: datetime | None = None
    replayedEventIds: list[str] = Field(default_factory=list)


class Page(BaseModel, Generic[T]):
    """Some items of a list, and whether the list holds more than were asked for (`limit`): a
    list is never cut without saying so."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    more: bool = Field(False, description="true when the list has more items than `limit`")
