"""Commands sent to devices, tracked from the app's request to the device's answer.

    app ── POST /devices/{vendor}/{device}/commands (IAM) ──► CommandService.send
        1. validate      the vendor's protocol renders the body to the command text, or names the
                         fields at fault
        2. store         ONE transaction: the device exists (its state item), the device's counter
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

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from devicegate.core.commands import (
    FAILED,
    MAX_TIMEOUT_S,
    PENDING,
    InvalidCommand,
    NotConfigured,
    PublishFailed,
    Requester,
    command_id,
    public_view,
)
from devicegate.core.errors import FieldProblem, StorageUnavailable
from devicegate.core.fields import TOPIC_ID
from devicegate.core.timeutil import days_after, epoch_seconds, iso_utc
from devicegate.infra.observability import logger


class CommandSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    access_key: str = ""
    rate_limit: int = Field(6, ge=1)
    timeout_s: int = Field(300, ge=10, le=MAX_TIMEOUT_S)


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
        from devicegate.infra.aws import error_code, failures, maybe_processed

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


