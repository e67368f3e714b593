"""The queue half of `devicegate local`: an SQS event source mapping, emulated, for an app's
function on one of the gateway's queues (`devicegate local --app examples/consumer/template.yaml`).

Like Lambda's poller, it receives from the mapped queue (with every system and message attribute),
invokes the function with the Lambda SQS event (messageId, receiptHandle, body, attributes with
MessageGroupId and MessageDeduplicationId, messageAttributes, eventSourceARN...), up to BatchSize
messages at a time, and deletes what succeeded: every message of the batch, or, with
FunctionResponseTypes ReportBatchItemFailures, every one its answer does not name. A message not
deleted comes back after the queue's visibility timeout, and the queue's redrive policy moves it to
the dead-letter queue after maxReceiveCount receives (moto does both, as SQS does). On a FIFO
queue a message in flight holds back the later messages of its group (moto receives no message of
a group that has one in flight), so a failed message blocks its group, and its group only, until
it is retried.
"""

from __future__ import annotations

import base64
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from devicegate_local.functions import FunctionError, StackStopping
from devicegate_local.names import LOCAL_REGION

log = logging.getLogger("devicegate.local")

#: SQS hands out at most 10 messages per ReceiveMessage.
RECEIVE_MAX = 10
#: The long poll of each receive: how soon a new message is seen, and how soon the poller stops.
POLL_WAIT_S = 1


@dataclass
class SqsSource:
    """One SQS trigger of a function (a SAM `Type: SQS` event), with Lambda's defaults."""

    function_id: str
    queue_arn: str
    batch_size: int = 10
    report_item_failures: bool = False

    @classmethod
    def from_event(cls, function_id: str, properties: dict[str, Any]) -> SqsSource:
        """A SAM `Type: SQS` event's Properties."""
        return cls._from_properties(function_id, str(properties["Queue"]), properties)

    @classmethod
    def from_mapping(cls, function_id: str, properties: dict[str, Any]) -> SqsSource:
        """An AWS::Lambda::EventSourceMapping's Properties (EventSourceArn for Queue)."""
        return cls._from_properties(function_id, str(properties["EventSourceArn"]), properties)

    @classmethod
    def _from_properties(cls, function_id: str, queue_arn: str, properties: dict[str, Any]) -> SqsSource:
        batch = int(properties.get("BatchSize", 10))
        if not 1 <= batch <= 10_000:
            raise ValueError(f"BatchSize {batch} is not 1 to 10000")
        return cls(function_id=function_id, queue_arn=queue_arn, batch_size=batch,
                   report_item_failures="ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or []))


def is_sqs_arn(arn: Any) -> bool:
    """arn:aws:sqs:<region>:<account>:<queue name>, what this poller reads."""
    return isinstance(arn, str) and arn.startswith("arn:") and arn.split(":")[2:3] == ["sqs"]


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return out


def lambda_sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A ReceiveMessage message (as boto3 returns it) -> the record of Lambda's SQS event."""
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {name: _message_attribute(value)
                              for name, value in (message.get("MessageAttributes") or {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": LOCAL_REGION,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def succeeded(result: Any, records: list[dict[str, Any]], report_item_failures: bool) -> list[dict[str, Any]]:
    """The records to delete after an invocation that returned `result`.

    Without ReportBatchItemFailures, all of them. With it, those its batchItemFailures do not
    name; an entry naming no record of the batch (or no itemIdentifier) fails the whole batch,
    as Lambda treats it."""
    if not report_item_failures or not isinstance(result, dict) or not result.get("batchItemFailures"):
        return records
    ids = {record["messageId"] for record in records}
    failed = set()
    for entry in result["batchItemFailures"]:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in ids:
            print(f"devicegate local: invalid batchItemFailures entry {entry!r}; the whole batch failed",
                  file=sys.stderr, flush=True)
            return []
        failed.add(identifier)
    return [record for record in records if record["messageId"] not in failed]


Invoke = Callable[[str, dict[str, Any]], Any]


class SqsPoller(threading.Thread):
    """Lambda's SQS poller for one mapping: receive, invoke, delete what succeeded."""

    def __init__(self, source: SqsSource, sqs: Any, queue_url: str, invoke: Invoke, stop: threading.Event) -> None:
        super().__init__(name=f"sqs-{source.function_id}", daemon=True)
        self.source = source
        self.sqs = sqs
        self.queue_url = queue_url
        self.invoke = invoke
        self.stop_event = stop

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll_once()
            except Exception as exc:
                if self.stop_event.is_set():
                    return
                log.warning("queue poller %s: %s (retrying)", self.source.function_id, exc)
                self.stop_event.wait(1.0)

    def receive(self, wait_s: int = POLL_WAIT_S) -> list[dict[str, Any]]:
        """Up to BatchSize messages: a long poll, then more receives while the queue has them."""
        messages: list[dict[str, Any]] = []
        while len(messages) < self.source.batch_size and not self.stop_event.is_set():
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=min(RECEIVE_MAX, self.source.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else wait_s, AttributeNames=["All"], MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"]).get("Messages") or []
            messages += got
            if len(got) < RECEIVE_MAX:
                break
        return messages

    def poll_once(self, wait_s: int = POLL_WAIT_S) -> int:
        """One batch: received, invoked, its successes deleted. The number of messages received."""
        messages = self.receive(wait_s)
        if not messages:
            return 0
        records = [lambda_sqs_record(m, self.source.queue_arn) for m in messages]
        try:
            result = self.invoke(self.source.function_id, {"Records": records})
        except StackStopping:
            return len(records)  # nothing deleted: they come back after the visibility timeout
        except FunctionError as error:
            print(f"devicegate local: {self.source.function_id} failed on a batch of {len(records)} from "
                  f"{self.source.queue_arn.rsplit(':', 1)[-1]}: {error.error_type}: {error.message}\n"
                  f"{error.trace}".rstrip(), file=sys.stderr, flush=True)
            return len(records)
        done = succeeded(result, records, self.source.report_item_failures)
        for start in range(0, len(done), RECEIVE_MAX):
            chunk = done[start:start + RECEIVE_MAX]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": record["receiptHandle"]} for n, record in enumerate(chunk)])
        if len(done) < len(records):
            print(f"devicegate local: {self.source.function_id} reported {len(records) - len(done)} of "
                  f"{len(records)} message(s) failed; they come back after the visibility timeout",
                  file=sys.stderr, flush=True)
        return len(records)


def sqs_sources(specs: list[Any], resolvers: Sequence[Any] = ()) -> list[SqsSource]:
    """Every enabled SQS trigger of the functions: their `Type: SQS` events, and the
    AWS::Lambda::EventSourceMapping resources of the templates (`resolvers`) on a queue."""
    from devicegate_local.resources import MAPPING_TYPE, TemplateError
    from devicegate_local.streams import mapping_enabled

    sources = []
    for resolver in resolvers:
        for logical_id, resource in resolver.resources.items():
            if (resource or {}).get("Type") != MAPPING_TYPE or not resolver.enabled(logical_id):
                continue
            properties = resolver.resolve(resource.get("Properties") or {})
            if not is_sqs_arn(properties.get("EventSourceArn")) or not mapping_enabled(properties):
                continue
            name = str(properties.get("FunctionName", "")).split(":function:", 1)[-1].split(":", 1)[0]
            spec = next((spec for spec in specs if spec.name == name), None)
            if spec is None:
                raise TemplateError(f"{logical_id}: FunctionName {name} is not a function of these templates")
            try:
                sources.append(SqsSource.from_mapping(spec.logical_id, properties))
            except (ValueError, KeyError) as exc:
                raise TemplateError(f"{logical_id}: {exc}") from exc
    for spec in specs:
        for event_id, event in spec.events.items():
            if (event or {}).get("Type") != "SQS":
                continue
            properties = event.get("Properties") or {}
            if not mapping_enabled(properties):
                continue
            try:
                sources.append(SqsSource.from_event(spec.logical_id, properties))
            except (ValueError, KeyError) as exc:
                raise TemplateError(f"{spec.logical_id}.{event_id}: {exc}") from exc
    return sources
