"""Commands sent to devices, tracked from the app's request to the device's answer.

    app ── POST /devices/{vendor}/{device}/commands (IAM) ──► CommandService.send
        1. validate      the vendor's protocol renders the body to the command text, or names the
                         fields at fault
        2. store         ONE transaction: the device exists (its summary item), the device's counter
                         for this minute is below the limit, the command's status item (pending,
                         who/when, timeoutAt), its text item and, with a clientToken, the token item
        3. publish       IoT data plane, QoS 1, on the vendor's command topic
        4. answer        202 + the command id; a refused publish marks the command failed (503)
    device answer ─► stored cmd event ─► outbox: resolve_reply (the command it answers: pending ->
                     succeeded | failed, once) ─► sweep: time_out_overdue (pending -> timed_out)

Stored first, published second: a command is never sent without a record of it, and one whose
publish is lost with the function is timed out by the sweep. Every transition is conditional on
the status it leaves, so a retried outbox batch or sweep never resolves a command twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from devicegate import keys
from devicegate.adapter import CommandReply
from devicegate.errors import FieldProblem, StorageUnavailable
from devicegate.fields import TOPIC_ID
from devicegate.observability import logger
from devicegate.settings import vendor_env
from devicegate.timeutil import days_after, epoch_seconds, iso_utc

PENDING, SUCCEEDED, FAILED, TIMED_OUT = "pending", "succeeded", "failed", "timed_out"
STATUSES = (PENDING, SUCCEEDED, FAILED, TIMED_OUT)
#: The item attribute stamping when a command entered each status.
STATUS_AT = {PENDING: "requestedAt", SUCCEEDED: "succeededAt", FAILED: "failedAt", TIMED_OUT: "timedOutAt"}
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


# --- errors: each maps to exactly one answer (devicegate.command_http) ---------------------------

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


class CommandSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    access_key: str = ""
    rate_limit: int = Field(6, ge=1)
    timeout_s: int = Field(300, ge=10, le=MAX_TIMEOUT_S)


@cache
def command_settings(vendor: str) -> CommandSettings:
    """JOINTECH_ACCESS_KEY, JOINTECH_COMMAND_RATE_LIMIT, JOINTECH_COMMAND_TIMEOUT_SECONDS."""
    values = {"access_key": vendor_env(vendor, "ACCESS_KEY").strip(),
              "rate_limit": vendor_env(vendor, "COMMAND_RATE_LIMIT") or 6,
              "timeout_s": vendor_env(vendor, "COMMAND_TIMEOUT_SECONDS") or 300}
    return CommandSettings.model_validate(values)


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


# --- the service -------------------------------------------------------------------------------

class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes) -> None:
        """Raise PublishRefused (not sent) or PublishUnknown (may have been sent)."""


class PublishRefused(Exception):
    pass


class PublishUnknown(Exception):
    pass


class IotDataPublisher:
    """AWS IoT data plane, QoS 1: IoT Core keeps the message for the bridge's subscription."""

    def __init__(self, iot_data: Any):
        self._iot = iot_data

    def publish(self, topic: str, payload: bytes) -> None:
        from devicegate.aws import error_code, failures, maybe_processed

        try:
            # One attempt (devicegate.aws.NOT_RETRIED): a retry could send the command twice.
            self._iot.publish(topic=topic, qos=1, payload=payload)
        except failures() as exc:
            if maybe_processed(exc):
                # Sent, maybe: the request may have reached IoT Core before the answer was lost
                # (a read timeout, or a connection reset, which may come after the request).
                raise PublishUnknown(type(exc).__name__) from None
            # An error answer, or no connection at all (or no credentials): not sent.
            raise PublishRefused(error_code(exc) or type(exc).__name__) from None


@dataclass
class CommandService:
    vendor: str
    protocol: Any  # the vendor's command module: render(), topic(), valid_device()
    store: Any  # devicegate.command_store.DynamoCommandStore
    publisher: Publisher
    settings: CommandSettings
    retention_days: int

    def send(self, device_id: str, document: Any, requester: Requester, request_id: str,
             now: datetime) -> dict[str, Any]:
        """Validate, store, publish; the stored command as apps see it (status pending)."""
        if not self.settings.access_key:
            raise NotConfigured(f"{self.vendor} commands need the vendor's access key (template parameter)")
        if not self.protocol.valid_device(device_id):
            raise InvalidCommand("invalid device number",
                                 [FieldProblem("deviceNum", TOPIC_ID.problem)])
        if not isinstance(document, dict):
            raise InvalidCommand("expected a JSON object", [FieldProblem("body", "not a JSON object")])
        problems = [FieldProblem(name, "unknown field") for name in sorted(document)
                    if name not in ("raw", "command", "serial", "clientToken")]
        token = document.get("clientToken")
        if token is not None and not (isinstance(token, str) and _valid_token(token)):
            problems.append(FieldProblem("clientToken", "1 to 64 letters, digits, '.', '_', ':' or '-'"))
        rendered, render_problems = self.protocol.render(device_id, document)
        problems += render_problems
        if problems:
            raise InvalidCommand("invalid command", problems)

        ident = command_id(now)
        timeout_at = iso_utc(now + timedelta(seconds=self.settings.timeout_s))
        item: dict[str, Any] = {
            "kind": "command",
            "vendor": self.vendor, "deviceId": device_id, "commandId": ident, "status": PENDING,
            "statusAt": iso_utc(now), "requestedAt": iso_utc(now), "requestedBy": requester.as_dict(),
            "requestId": request_id, "text": rendered.text, "word": rendered.word, "matchKey": rendered.match_key,
            "serial": rendered.serial, "timeoutAt": timeout_at,
            "expiresAt": epoch_seconds(days_after(now, self.retention_days)),
            "gsi5pk": keys.COMMANDS_PENDING_PARTITION,
            "gsi5sk": keys.pending_command_sk(timeout_at, self.vendor, device_id, ident),
        }
        if rendered.typed:
            item["command"] = rendered.typed
        if token:
            item["clientToken"] = token
        self.store.create(self.vendor, device_id, item, self.settings.rate_limit, now, token)
        log = {"vendor": self.vendor, "device": device_id, "command_id": ident, "word": rendered.word}
        try:
            self.publisher.publish(self.protocol.topic(self.settings.access_key, device_id),
                                   rendered.text.encode("ascii"))
        except PublishRefused as exc:
            logger.warning("command publish refused", extra={**log, "error_code": str(exc)})
            error = f"not sent: the IoT data plane refused it ({exc})"
            try:
                if self.store.mark_unsent(self.vendor, device_id, ident, now, error):
                    item.update(status=FAILED, statusAt=iso_utc(now), failedAt=iso_utc(now), error=error)
            except StorageUnavailable as unmarked:
                # Not sent is what the app must hear, or it would retry under the same token and
                # be handed this command as if it had gone out. It stays pending until the sweep
                # times it out.
                logger.warning("unsent command not marked failed", extra={**log, "error": str(unmarked)})
            raise PublishFailed(public_view(item), sent_unknown=False) from None
        except PublishUnknown as exc:
            logger.warning("command publish outcome unknown", extra={**log, "error_type": str(exc)})
            raise PublishFailed(public_view(item), sent_unknown=True) from None
        logger.info("command sent", extra=log)
        return public_view(item)

    def list(self, device_id: str, limit: int = 50, before: str | None = None,
             command_id_: str | None = None) -> list[dict[str, Any]]:
        return [public_view(i) for i in self.store.query(self.vendor, device_id, limit, before, command_id_)]


def _valid_token(token: str) -> bool:
    import re

    return re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", token) is not None


# --- off the hot path: the outbox and the sweep ------------------------------------------------

def resolve_reply(store: Any, vendor: str, reply: CommandReply) -> str | None:
    matched = store.resolve(vendor, reply)
    if matched is None:
        logger.info("command reply matched no waiting command",
                    extra={"vendor": vendor, "device": reply.device_id, "command_type": reply.command_type})
    else:
        logger.info("command resolved", extra={"vendor": vendor, "device": reply.device_id, "command_id": matched,
                                               "ok": reply.ok})
    return matched


def time_out_overdue(store: Any, now: datetime) -> int:
    """Mark every command past its deadline (and the grace) timed out; how many were."""
    count = 0
    for pk, sk in store.overdue(now):
        if store.time_out(pk, sk, now):
            count += 1
    return count
