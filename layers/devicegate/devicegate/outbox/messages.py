"""What the outbox sends: one CloudEvents 1.0 message per stored event, with its FIFO identity
(one message group per device, a deduplication id per event) and the message attributes apps
route and filter on, and the two publishers: SQS (EventsQueue alone) and SNS (the fan-out topic
every app's queue is subscribed to, template parameter ConsumerApps)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from devicegate.infra.aws import error_code, failures
from devicegate.infra.observability import logger
from devicegate.store import keys

SQS_BATCH = 10


# SQS: 1 MiB per message and per SendMessageBatch call, attributes included; a margin for framing.
MAX_BATCH_BYTES = 1_000_000


MAX_MESSAGE_BYTES = 1_000_000


# SNS: 256 KiB (262,144 bytes) per message and per PublishBatch call, attributes included (a topic's
# MaximumMessageSize can raise it to 1 MiB; the template keeps the default). A margin for framing.
SNS_MAX_BATCH_BYTES = 260_000


SNS_MAX_MESSAGE_BYTES = 260_000


def event_source(vendor: str, device_id: str) -> str:
    """The CloudEvents `source` of a device's events: `devicegate/{vendor}/{device}` (the device id
    percent-encoded, as in table keys). Event ids are unique per device, not per vendor (two
    terminals may both send a record with uuid X), and CloudEvents defines (source, id) as an
    event's identity: the device belongs in the source."""
    return f"devicegate/{vendor}/{keys.device_key(device_id)}"


def event_type(event: dict[str, Any]) -> str:
    return f"devicegate.{event['vendor']}.{event['kind']}"


#: Version of the schemas in docs/contracts/schemas: raised when a type's `data` changes in a way an
#: app must know of (a field removed or retyped); additions keep it.
SCHEMA_VERSION = 1
#: Vendors that store kinds no document names (the AI camera keeps any `operator` it does not know
#: as its kind): their kinds beyond these share one schema, `devicegate.{vendor}.other`.
#: tests/unit/test_contracts.py holds this to the adapters' kinds.
OPEN_KINDS = {"ai-camera": frozenset({"heartbeat", "device.offline", "device.online"})}


def data_schema(vendor: str, kind: str) -> str:
    """The CloudEvents `dataschema` of an event: the `$id` of docs/contracts/schemas/{type}.json. A
    URN, not a URL: nothing is fetched at run time, an app maps it to the file it ships with (or
    loads the folder into a registry keyed by `$id`). A string format per message, no schema work."""
    known = OPEN_KINDS.get(vendor)
    if known is not None and kind not in known:
        kind = "other"
    return f"urn:devicegate:schema:devicegate.{vendor}.{kind}:{SCHEMA_VERSION}"


def cloud_event(event: dict[str, Any], data_ref: str | None = None) -> dict[str, Any]:
    """CloudEvents 1.0 structured JSON; `data` is the normalized event."""
    message = {
        "specversion": "1.0",
        "id": event["eventId"],
        "source": event_source(event["vendor"], event["deviceId"]),
        "type": event_type(event),
        "subject": event["deviceId"],
        "time": event["occurredAt"],
        "datacontenttype": "application/json",
        "dataschema": data_schema(event["vendor"], event["kind"]),
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
    attributes: dict[str, str] = field(default_factory=dict)  # String message attributes by name

    @property
    def size(self) -> int:
        """What the message counts against SQS's and SNS's size limits: body and attributes."""
        return len(self.body.encode()) + attributes_size(self.attributes)


def message_attributes(event: dict[str, Any]) -> dict[str, str]:
    """`type` (the CloudEvents type), `vendor` and `device` (percent-encoded, as in `source` and the
    table keys: always valid attribute text, whatever a device calls itself), so that an app
    routes or filters (an SNS filter policy, a consumer's switch) without parsing the body."""
    return {"type": event_type(event), "vendor": event["vendor"], "device": keys.device_key(event["deviceId"])}


def attributes_size(attributes: dict[str, str]) -> int:
    # Name, data type ("String") and value all count toward the message size.
    return sum(len(name.encode()) + len("String") + len(value.encode()) for name, value in attributes.items())


def _wire_attributes(attributes: dict[str, str]) -> dict[str, dict[str, str]]:
    return {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}


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
    #: A message (body and attributes) over this goes as a claim check; a call holds at most
    #: max_batch_bytes (and SQS_BATCH messages).
    max_message_bytes: int
    max_batch_bytes: int

    def publish(self, messages: list[Outgoing]) -> list[str]:
        """Send the messages; return the sequence numbers of those that failed."""


class SqsPublisher:
    """EventsQueue alone (ConsumerApps empty): one SendMessageBatch per chunk."""

    max_message_bytes = MAX_MESSAGE_BYTES
    max_batch_bytes = MAX_BATCH_BYTES

    def __init__(self, sqs: Any, queue_url: str):
        self._sqs = sqs
        self._url = queue_url

    def publish(self, messages: list[Outgoing]) -> list[str]:
        entries = [{"Id": str(i), "MessageBody": m.body, "MessageGroupId": m.group,
                    "MessageDeduplicationId": m.dedup, "MessageAttributes": _wire_attributes(m.attributes)}
                   for i, m in enumerate(messages)]
        try:
            result = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
        except failures() as exc:
            logger.warning("sqs send_message_batch failed", extra={"error": error_code(exc) or type(exc).__name__})
            return [m.sequence for m in messages]
        return _failed_entries(messages, result, "sqs")


class SnsPublisher:
    """The fan-out topic (ConsumerApps set): one PublishBatch per chunk, whatever the number of
    apps; SNS delivers each message, body and attributes as they are (raw delivery), to
    EventsQueue and to every app's queue. The topic deduplicates on the same id as the queues,
    so a chunk re-sent after a lost answer or a partial failure reaches no queue twice."""

    max_message_bytes = SNS_MAX_MESSAGE_BYTES
    max_batch_bytes = SNS_MAX_BATCH_BYTES

    def __init__(self, sns: Any, topic_arn: str):
        self._sns = sns
        self._arn = topic_arn

    def publish(self, messages: list[Outgoing]) -> list[str]:
        entries = [{"Id": str(i), "Message": m.body, "MessageGroupId": m.group,
                    "MessageDeduplicationId": m.dedup, "MessageAttributes": _wire_attributes(m.attributes)}
                   for i, m in enumerate(messages)]
        try:
            result = self._sns.publish_batch(TopicArn=self._arn, PublishBatchRequestEntries=entries)
        except failures() as exc:
            logger.warning("sns publish_batch failed", extra={"error": error_code(exc) or type(exc).__name__})
            return [m.sequence for m in messages]
        return _failed_entries(messages, result, "sns")


def _failed_entries(messages: list[Outgoing], result: dict[str, Any], service: str) -> list[str]:
    # SendMessageBatch and PublishBatch answer alike: a 200 with a Failed entry per refused message.
    failed = result.get("Failed", [])
    if failed:
        logger.warning(f"{service} rejected messages", extra={"codes": sorted({f.get("Code", "") for f in failed})})
    return [messages[int(f["Id"])].sequence for f in failed]


def message_body(event: dict[str, Any], table: str = "", limit: int = MAX_MESSAGE_BYTES) -> str:
    """The queue message for a stored event. ASCII escapes keep every character SQS accepts; a
    record too big for one message (`limit` bytes: the publisher's, less the attributes) travels
    as a claim check naming its table item's key (dynamodb://{table}?pk=...&sk=..., URL-encoded)."""
    envelope = {k: v for k, v in event.items() if k != "dataRef"}
    body = json.dumps(cloud_event(envelope, event.get("dataRef")), ensure_ascii=True, separators=(",", ":"))
    if len(body) > limit:
        envelope.pop("data", None)
        ref = event.get("dataRef") or "dynamodb://{}?{}".format(table, urlencode({
            "pk": keys.event_pk(event["vendor"], event["deviceId"]),
            "sk": keys.event_sk(event["occurredAt"], event["eventId"])}))
        body = json.dumps(cloud_event(envelope, ref), ensure_ascii=True, separators=(",", ":"))
    return body




def events_publisher(sqs: Any, sns: Any, queue_url: str, topic_arn: str = "") -> Publisher:
    """The fan-out topic when the stack has one (ConsumerApps), else EventsQueue itself."""
    return SnsPublisher(sns, topic_arn) if topic_arn else SqsPublisher(sqs, queue_url)
