"""What a command to a device is, whoever handles it: its statuses and their stamps, the limits
that bound matching an answer to it, the errors a request for one is answered with (each to one
HTTP answer in devicegate.commands.http), and the view apps get. The flow is in
devicegate.commands.service; the items in devicegate.store.commands.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devicegate.core.errors import FieldProblem
from devicegate.core.timeutil import iso_utc

PENDING, SUCCEEDED, FAILED, TIMED_OUT = "pending", "succeeded", "failed", "timed_out"
#: A command kept for the device's next contact (`whenOnline`): waiting, let go unsent by its
#: `waitUntil`, or cancelled by an app before it went out.
QUEUED, EXPIRED, CANCELLED = "queued", "expired", "cancelled"
STATUSES = (QUEUED, PENDING, SUCCEEDED, FAILED, TIMED_OUT, EXPIRED, CANCELLED)
#: The item attribute stamping when a command entered each status. A waiting command's `pending`
#: is its latest attempt going out (`sentAt`); its `requestedAt` stays the app's request.
STATUS_AT = {PENDING: "requestedAt", SUCCEEDED: "succeededAt", FAILED: "failedAt", TIMED_OUT: "timedOutAt",
             QUEUED: "queuedAt", EXPIRED: "expiredAt", CANCELLED: "cancelledAt"}
#: A waiting command's lifecycle as apps read it on the queue (event kind `command.{name}`), from
#: the stored statuses: pending is "sent" (to the device, awaiting its answer), succeeded
#: "answered", and a last attempt unanswered (timed_out) "failed" like an error answer.
LIFECYCLE = {QUEUED: "queued", PENDING: "sent", SUCCEEDED: "answered", FAILED: "failed", TIMED_OUT: "failed",
             EXPIRED: "expired", CANCELLED: "cancelled"}
#: Kinds of the lifecycle events (store.commands writes them under the device's event partition).
LIFECYCLE_KINDS = frozenset(f"command.{name}" for name in LIFECYCLE.values())
#: Bounds of a waiting command's expiry the template's parameters may set (Flespi's range).
MIN_WAIT_S, MAX_WAIT_S = 60, 30 * 86400
#: Rate-limit windows are calendar minutes (one counter item each, no read before the write).
RATE_WINDOW_S = 60
#: The longest timeout the template allows (CommandTimeoutSeconds MaxValue): an answer can only be
#: for a command sent at most this long before it, which bounds the outbox's Query.
MAX_TIMEOUT_S = 3600
#: Answers are received by another function on another clock; a command stored a little "after"
#: its answer by the clocks' difference is still the one it answers.
CLOCK_SLACK_S = 5
#: The sweep leaves a command this long past its deadline before timing it out: an answer that
#: came in time may still be on its way through the outbox.
SWEEP_GRACE_S = 60
MAX_BODY_BYTES = 4096


class CommandError(Exception):
    """Base of everything a command request is answered on purpose."""


@dataclass
class InvalidCommand(CommandError):
    reason: str
    problems: list[FieldProblem] = field(default_factory=list)


@dataclass
class UnknownDevice(CommandError):
    device_id: str


@dataclass
class RateLimited(CommandError):
    limit: int
    retry_after_s: int


@dataclass
class DuplicateRequest(CommandError):
    """The clientToken was used before: for the same command (answered with that command) or not."""

    command: dict[str, Any] | None
    same: bool


@dataclass
class PublishFailed(CommandError):
    """Stored but not (or not surely) sent. `sent_unknown`: the publish timed out, so the message
    may have gone; the command stays pending and an answer still resolves it."""

    command: dict[str, Any]
    sent_unknown: bool


@dataclass
class NotWaiting(CommandError):
    """Cancel of a command that is not waiting (sent, answered, over): its status says which."""

    command: dict[str, Any] | None


class NotConfigured(CommandError):
    """The deployment lacks what commands need (the vendor's access key)."""


@dataclass(frozen=True)
class Requester:
    """Who asked, from API Gateway's IAM authorizer context. The access key id is left out: it is
    a credential's name, and the ARN already says who."""

    user_arn: str
    account_id: str
    user_id: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"userArn": self.user_arn, "accountId": self.account_id, "userId": self.user_id}


def command_id(now: datetime) -> str:
    """Time-sortable and unique: `20250207T035239964Z-` + 10 random hex digits."""
    return f"{stamp(now)}-{secrets.token_hex(5)}"


def stamp(moment: datetime) -> str:
    text = iso_utc(moment)  # 2025-02-07T03:52:39.964Z
    return text[0:4] + text[5:7] + text[8:13] + text[14:16] + text[17:19] + text[20:23] + "Z"


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    """A command item as apps see it: everything but the keys and the TTL."""
    hidden = {"pk", "sk", "gsi5pk", "gsi5sk", "expiresAt", "kind"}
    return {k: v for k, v in sorted(item.items()) if k not in hidden}


