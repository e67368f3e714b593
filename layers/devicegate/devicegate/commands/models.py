"""The command API's request and answers as models: what docs/contracts/openapi.yaml says of
`POST|GET /devices/{vendor}/{deviceNum}/commands` is generated from these.

The request is still checked by CommandService.send and the vendor's `render` (which name every
field at fault in one answer); CommandRequest mirrors those checks, field for field, and
tests/unit/test_contracts.py holds the two together (a field added to one and not the other
fails there), so a new field appears in the contract when `./run contracts` is run again.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from devicegate.core.commands import MAX_WAIT_S, MIN_WAIT_S, STATUSES
from devicegate.vendors.jointech.commands import MAX_TEXT, TYPED

#: The typed commands an app may name (vendors/jointech/commands.py TYPED).
TypedCommandName = Literal[tuple(sorted(TYPED))]  # type: ignore[valid-type]
CommandStatus = Literal[STATUSES]  # type: ignore[valid-type]


class CommandRequest(BaseModel):
    """`raw` (the command text as the device reads it) or `command` (a documented command by name),
    not both; a typed command may name its `serial`."""

    model_config = ConfigDict(extra="forbid", title="CommandRequest")

    raw: str | None = Field(None, min_length=1, max_length=MAX_TEXT, pattern=r"^\([\x20-\x27\x2a-\x7e]*\)$",
                            description="the command text: `(deviceNum,1,serial,WORD,params...)`, printable ASCII, "
                                        "the first field the device number of the URL")
    command: TypedCommandName | None = Field(  # type: ignore[valid-type]
        None, description="a typed command: " + "; ".join(f"{c.name}: {c.description}" for c in TYPED.values()))
    serial: str | None = Field(None, pattern=r"^[0-9]{1,8}$",
                               description="typed commands only: the serial the answer echoes (default 001)")
    clientToken: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
                                    description="idempotency token: the same request again returns the command it "
                                                "created (200) instead of sending a second one")
    whenOnline: bool = Field(False, description="keep the command until the device's next contact instead of "
                                                "sending it now (status queued, then sent on contact)")
    expiresIn: int | None = Field(None, ge=MIN_WAIT_S, le=MAX_WAIT_S,
                                  description="whenOnline only: whole seconds the command may wait unsent (default "
                                              "and maximum are the stack's WaitingCommand* parameters; shorter for a "
                                              "command that may open or unlock)")
    allowUnsafe: bool = Field(False, description="whenOnline only: keep a command that may open or unlock "
                                                 "something (any word but the read-only BASE), with the short "
                                                 "UnsafeWaitingCommandMaxExpirySeconds")


class Requester(BaseModel):
    userArn: str
    accountId: str
    userId: str = ""


class CommandView(BaseModel):
    """A command as apps see it (core/commands.py public_view): its status and every stamp."""

    model_config = ConfigDict(extra="allow", title="Command")

    vendor: str
    deviceId: str
    commandId: str = Field(description="time-sortable: 20250207T035239964Z-<10 hex digits>")
    status: CommandStatus = Field(description="pending until the device answers (succeeded, failed) or the "
                                              "timeout passes (timed_out); a whenOnline command is queued until "
                                              "the device's next contact, then pending per attempt, or expired "
                                              "or cancelled unsent")
    statusAt: str
    requestedAt: str
    requestedBy: Requester
    requestId: str
    text: str = Field(description="the text sent to the device")
    word: str
    matchKey: str = Field(description="the commandType its answer will carry")
    serial: str
    timeoutAt: str | None = Field(None, description="the deadline of the answer to the attempt out now")
    command: str | None = Field(None, description="the typed command's name, when one was named")
    clientToken: str | None = None
    succeededAt: str | None = None
    failedAt: str | None = None
    timedOutAt: str | None = None
    whenOnline: bool | None = None
    queuedAt: str | None = None
    sentAt: str | None = Field(None, description="when the latest attempt went out")
    waitUntil: str | None = Field(None, description="a waiting command expires unsent after this")
    attempts: int | None = None
    maxAttempts: int | None = None
    expiredAt: str | None = None
    cancelledAt: str | None = None
    allowUnsafe: bool | None = None
    error: str | None = None
    response: list[Any] | None = Field(None, description="the device's decoded answer, on success")


class CommandList(BaseModel):
    deviceNum: str
    commands: list[CommandView] = Field(description="newest first")
    next: str | None = Field(None, description="present when the page is full: pass as ?before= for older ones")


class Problem(BaseModel):
    field: str
    problem: str


class CommandRefusal(BaseModel):
    """Every refusal: a message and, where fields are at fault, each named."""

    model_config = ConfigDict(extra="allow", title="CommandRefusal")

    message: str
    errors: list[Problem] | None = None
    limit: int | None = Field(None, description="429: commands a minute per device")
    retryAfterSeconds: int | None = Field(None, description="429: when to try again")
