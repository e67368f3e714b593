"""What the outbox sends: one CloudEvents 1.0 message per stored event, with its FIFO identity
(one message group per device, a deduplication id per event), and the SQS publisher."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from devicegate.infra.aws import error_code, failures
from devicegate.infra.observability import logger
from devicegate.store import keys

SQS_BATCH = 10


# SQS: 1 MiB per message and per SendMessageBatch call; keep a margin for attributes and framing.
MAX_BATCH_BYTES = 1_000_000


MAX_MESSAGE_BYTES = 1_000_000


def event_source(vendor: str, device_id: str) -> str:
    """The CloudEvents `source` of a device's events: `devicegate/{vendor}/{device}` (the device id
    percent-encoded, as in table keys). Event ids are unique per device, not per vendor (two
    terminals may both send a record with uuid X), and CloudEvents defines (source, id) as an
    event's identity: the device belongs in the source."""
    return f"devicegate/{vendor}/{keys.device_key(device_id)}"


def cloud_event(event: dict[str, Any], data_ref: str | None = None) -> dict[str, Any]:
    """CloudEvents 1.0 structured JSON; `data` is the normalized event."""
    message = {
        "specversion": "1.0",
        "id": event["eventId"],
        "source": event_source(event["vendor"], event["deviceId"]),
        "type": f"devicegate.{event['vendor']}.{event['kind']}",
        "subject": event["deviceId"],
        "time": event["occurredAt"],
        "datacontenttype": "application/json",
        "data": event,
    }
    if data_ref:
        # Claim check (CloudEvents "dataref" extension): the payload was too big for an item.
        message["dataref"] = data_ref
    return message


@dataclass(frozen=True)
class Outgoing:
    """One queue message: the stream record it comes from, its body, and its FIFO identity."""

    sequence: str
    body: str
    group: str  # MessageGroupId: one per device, so each device's events stay in publish order
    dedup: str  # MessageDeduplicationId: the same event always has the same one


def message_group(vendor: str, device_id: str) -> str:
    # SQS takes up to 128 printable ASCII characters; percent-encoding keeps a device's group
    # unique and printable, and an id too long for that is hashed.
    group = f"{vendor}:{keys.device_key(device_id)}"
    if len(group) <= 128:
        return group
    return f"{vendor}:~" + hashlib.sha256(device_id.encode("utf-8", "surrogatepass")).hexdigest()


def deduplication_id(vendor: str, device_id: str, event_id: str) -> str:
    # A digest rather than the id itself: vendor ids may be longer than SQS's 128 characters
    # or hold characters it refuses there. The device is part of it, as of the CloudEvents
    # identity: two devices' events with one vendor id are two messages, even where the queue
    # deduplicates across groups (DeduplicationScope queue).
    material = f"{vendor}\n{device_id}\n{event_id}"
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


class Publisher(Protocol):
    def publish(self, messages: list[Outgoing]) -> list[str]:
        """Send the messages; return the sequence numbers of those that failed."""


class SqsPublisher:
    def __init__(self, sqs: Any, queue_url: str):
        self._sqs = sqs
        self._url = queue_url

    def publish(self, messages: list[Outgoing]) -> list[str]:
        entries = [{"Id": str(i), "MessageBody": m.body, "MessageGroupId": m.group,
                    "MessageDeduplicationId": m.dedup} for i, m in enumerate(messages)]
        try:
            result = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
        except failures() as exc:
            logger.warning("sqs send_message_batch failed", extra={"error": error_code(exc) or type(exc).__name__})
            return [m.sequence for m in messages]
        failed = result.get("Failed", [])
        if failed:
            logger.warning("sqs rejected messages", extra={"codes": sorted({f.get("Code", "") for f in failed})})
        return [messages[int(f["Id"])].sequence for f in failed]


def message_body(event: dict[str, Any], table: str = "") -> str:
    """The queue message for a stored event. ASCII escapes keep every character SQS accepts; a
    record too big for one message travels as a claim check naming its table item's key
    (dynamodb://{table}?pk=...&sk=..., URL-encoded)."""
    envelope = {k: v for k, v in event.items() if k != "dataRef"}
    body = json.dumps(cloud_event(envelope, event.get("dataRef")), ensure_ascii=True, separators=(",", ":"))
    if len(body) > MAX_MESSAGE_BYTES:
        envelope.pop("data", None)
        ref = event.get("dataRef") or "dynamodb://{}?{}".format(table, urlencode({
            "pk": keys.event_pk(event["vendor"], event["deviceId"]),
            "sk": keys.event_sk(event["occurredAt"], event["eventId"])}))
        body = json.dumps(cloud_event(envelope, ref), ensure_ascii=True, separators=(",", ":"))
    return body


