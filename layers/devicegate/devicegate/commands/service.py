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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from devicegate.core.commands import (
    CANCELLED,
    FAILED,
    MAX_TIMEOUT_S,
    MAX_WAIT_S,
    MIN_WAIT_S,
    PENDING,
    QUEUED,
    InvalidCommand,
    NotConfigured,
    NotWaiting,
    PublishFailed,
    Requester,
    command_id,
    public_view,
)
from devicegate.core.errors import FieldProblem, StorageUnavailable
from devicegate.core.fields import TOPIC_ID
from devicegate.core.timeutil import days_after, epoch_seconds, iso_utc
from devicegate.infra.iot import IotDataPublisher, Publisher, PublishRefused, PublishUnknown
from devicegate.infra.observability import logger

__all__ = ["CommandService", "CommandSettings", "IotDataPublisher", "PublishRefused", "PublishUnknown"]


class CommandSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    access_key: str = ""
    rate_limit: int = Field(6, ge=1)
    timeout_s: int = Field(300, ge=10, le=MAX_TIMEOUT_S)
    #: Commands kept for the next contact: default and longest expiry, the longest for one that
    #: may open or unlock something, and the attempts each gets.
    wait_default_s: int = Field(3600, ge=MIN_WAIT_S, le=MAX_WAIT_S)
    wait_max_s: int = Field(7 * 86400, ge=MIN_WAIT_S, le=MAX_WAIT_S)
    wait_unsafe_max_s: int = Field(300, ge=MIN_WAIT_S, le=3600)
    max_attempts: int = Field(3, ge=1, le=10)


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
                    if name not in ("raw", "command", "serial", "clientToken", "whenOnline", "expiresIn",
                                    "allowUnsafe")]
        token = document.get("clientToken")
        if token is not None and not (isinstance(token, str) and _valid_token(token)):
            problems.append(FieldProblem("clientToken", "1 to 64 letters, digits, '.', '_', ':' or '-'"))
        rendered, render_problems = self.protocol.render(device_id, document)
        problems += render_problems
        wait_s = self._wait(document, rendered, problems)
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
        log = {"vendor": self.vendor, "device": device_id, "command_id": ident, "word": rendered.word}
        if wait_s is not None:
            # Kept for the device's next contact (devicegate.outbox.waiting sends it): its
            # deadline for an answer is set per attempt, when it goes out.
            item.update(status=QUEUED, queuedAt=iso_utc(now), whenOnline=True, attempts=0,
                        maxAttempts=self.settings.max_attempts,
                        waitUntil=iso_utc(now + timedelta(seconds=wait_s)))
            if document.get("allowUnsafe") is True:
                item["allowUnsafe"] = True
            del item["timeoutAt"]
            self.store.create(self.vendor, device_id, item, self.settings.rate_limit, now, token)
            logger.info("command queued", extra=log)
            return public_view(item)
        self.store.create(self.vendor, device_id, item, self.settings.rate_limit, now, token)
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

    def _wait(self, document: dict[str, Any], rendered: Any, problems: list[FieldProblem]) -> int | None:
        """Seconds the command may wait for the device's next contact; None to send it now."""
        when_online = document.get("whenOnline", False)
        if not isinstance(when_online, bool):
            problems.append(FieldProblem("whenOnline", "true or false"))
            return None
        unsafe = document.get("allowUnsafe", False)
        if not isinstance(unsafe, bool):
            problems.append(FieldProblem("allowUnsafe", "true or false"))
        expires_in = document.get("expiresIn")
        if not when_online:
            for name in ("expiresIn", "allowUnsafe"):
                if name in document:
                    problems.append(FieldProblem(name, "only with whenOnline: true"))
            return None
        if rendered is None:
            return None
        actuates = self.protocol.may_actuate(rendered)
        if actuates and unsafe is not True:
            problems.append(FieldProblem("whenOnline", "this command may open or unlock something: it is not kept "
                                                       "for the next contact unless allowUnsafe is true"))
            return None
        longest = self.settings.wait_unsafe_max_s if actuates else self.settings.wait_max_s
        if expires_in is None:
            return min(self.settings.wait_default_s, longest)
        # Whole seconds (not a bool, which JSON-decoded is an int to Python).
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not MIN_WAIT_S <= expires_in <= longest:
            problems.append(FieldProblem("expiresIn", f"whole seconds from {MIN_WAIT_S} to {longest}"
                                                      + (" (a command that may open or unlock)" if actuates else "")))
            return None
        return expires_in

    def cancel(self, device_id: str, command_id_: str, now: datetime) -> dict[str, Any]:
        """Cancel a waiting command; NotWaiting (with the command, or None when there is no such
        command) when it is not waiting."""
        found = self.store.query(self.vendor, device_id, command_id=command_id_)
        if not found:
            raise NotWaiting(None)
        command = found[0]
        if command.get("status") != QUEUED or not self.store.cancel(self.vendor, device_id, command, now):
            latest = self.store.query(self.vendor, device_id, command_id=command_id_)
            view = public_view(latest[0] if latest else command)
            # Cancelled already: by this request (its answer lost, botocore's retry found the
            # status moved) or by an earlier one whose answer the app missed. What the app asked
            # for holds, so it is answered as done: a cancel is idempotent.
            if view.get("status") != CANCELLED:
                raise NotWaiting(view)
            return view
        logger.info("command cancelled", extra={"vendor": self.vendor, "device": device_id, "command_id": command_id_})
        latest = self.store.query(self.vendor, device_id, command_id=command_id_)
        return public_view(latest[0] if latest else command)

    def list(self, device_id: str, limit: int = 50, before: str | None = None,
             command_id_: str | None = None) -> list[dict[str, Any]]:
        return [public_view(i) for i in self.store.query(self.vendor, device_id, limit, before, command_id_)]


def _valid_token(token: str) -> bool:
    import re

    return re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", token) is not None


