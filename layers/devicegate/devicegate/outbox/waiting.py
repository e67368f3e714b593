"""Commands kept for a device's next contact (`whenOnline`), sent by the outbox when that contact
comes: any event of the device over any transport (a record by HTTPS or MQTT, a Jointech status
or heartbeat packet, its answer to a command) is one, since every stored event passes here; not
the gateway's own events, nor the vendor cloud's "device not online" answer (outbox.batch). The
heartbeats that are no event (a SenseLink bridge's, which move the device item directly in the
ingest function) send nothing: no vendor with commands has them.

The check costs nothing for a device with nothing waiting: the outbox reads every batch
device's state item anyway (store.devices), and a waiting command counts itself on that item
(`waitingCommands`, store.commands). Only a device with a count is looked at: one Query of its
commands, then per waiting command, oldest first, the read of its text, one transaction (queued ->
pending, an attempt more, its `command.sent` event, the count down) and one publish, as the
commands API sends a command now.

Marked sent before the publish, as a command is stored before it is sent: a publish refused, or
a function that dies between the two, leaves an attempt unanswered, which the sweep queues again
for the next contact (or fails after the last attempt). A failure here never fails the batch:
the command stays waiting (counted), and the batch's own events are published as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devicegate.core.errors import StorageUnavailable
from devicegate.core.timeutil import iso_utc
from devicegate.infra.iot import Publisher, PublishRefused, PublishUnknown
from devicegate.infra.observability import innermost_frame, logger


@dataclass(frozen=True)
class Dispatcher:
    store: Any  # devicegate.store.commands.DynamoCommandStore
    publisher: Publisher
    #: The vendor's command topic for a device ("" when the vendor takes no commands, or its
    #: access key is not set: nothing is sent, the commands keep waiting).
    topic_for: Callable[[str, str], str]
    timeout_s: int

    def dispatch(self, vendor: str, device_id: str, now: datetime) -> int:
        """Send what waits for the device, in order; how many went out. Never raises."""
        log = {"vendor": vendor, "device": device_id}
        try:
            topic = self.topic_for(vendor, device_id)
            if not topic:
                logger.warning("waiting commands not sent: commands not configured", extra=log)
                return 0
            sent = 0
            for command in self.store.waiting(vendor, device_id, now):
                ident = command["commandId"]
                if command.get("waitUntil", "") <= iso_utc(now):
                    continue  # past its expiry: the sweep lets it go
                text = self.store.text(vendor, device_id, ident)
                if text is None:
                    logger.error("waiting command has no text", extra={**log, "command_id": ident})
                    continue
                if not self.store.mark_sent(vendor, device_id, command, now, self.timeout_s):
                    continue  # sent by a concurrent batch, cancelled or expired meanwhile
                try:
                    self.publisher.publish(topic, text.encode("ascii"))
                    sent += 1
                    logger.info("waiting command sent", extra={**log, "command_id": ident, "word": command.get("word")})
                except (PublishRefused, PublishUnknown) as exc:
                    # Marked sent: the sweep finds the attempt unanswered and queues it again.
                    logger.warning("waiting command publish failed", extra={**log, "command_id": ident,
                                                                           "error": str(exc)})
            return sent
        except StorageUnavailable as exc:
            logger.warning("waiting commands not sent: storage unavailable", extra={**log, "error": str(exc)})
        except Exception as exc:  # a bug here must not hold back the batch's events
            logger.error("waiting commands dispatch raised", extra={**log, "error_type": type(exc).__name__,
                                                                     "where": innermost_frame(exc)})
        return 0
