"""An app's consumer of devicegate events: each SQS record becomes a typed CloudEvent
(devicegate.client.parse_record), and the app does its work with it: here, one log line per
event with what it is, which device, and the vocabulary's blocks an app reads whatever the vendor
(position, alarm, passage, power). Nothing personal is logged: no vendor record (`data`), no
person id, only the passage's role.

A message that fails (here: one that is not a devicegate event) is reported as a batch item
failure, with every later message of its group (its device) in the batch, so that no device's
events are handled out of order; they come back after the queue's visibility timeout, and after 5
receives a message is in the queue's dead-letter queue.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from devicegate.client import CloudEvent, DeviceGate, Event, NotAnEvent, parse_record

logger = Logger()
# A failed message fails the later messages of its group (its device) in the batch, and only
# those: other devices' events go on (FIFO order is per device).
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A batch whose every message failed is reported like any other rather than raised: Lambda's
# outcome is the same (each comes back after the visibility timeout), without a function error.
processor.raise_on_entire_batch_failure = False


@cache
def gate() -> DeviceGate:
    # Only a record too large for its message needs the table: created on first use.
    return DeviceGate(os.environ["EVENTS_TABLE"])


def summary(message: CloudEvent, event: Event) -> dict[str, Any]:
    """What the app keeps of an event: its identity and the vocabulary's blocks, no personal field."""
    line: dict[str, Any] = {"type": message.type, "source": message.source, "id": message.id,
                            "device": event.deviceId, "time": message.time.isoformat()}
    if event.position:
        line["position"] = event.position.model_dump(mode="json", exclude_none=True)
    if event.alarm:
        line["alarm"] = event.alarm.model_dump(mode="json", exclude_none=True, include={"code", "name", "severity",
                                                                                      "status"})
    if event.passage:
        passage = event.passage
        line["passage"] = {"granted": passage.granted, "method": passage.method, "direction": passage.direction,
                           "role": passage.person.role if passage.person else "unknown"}
    if event.power:
        line["power"] = event.power.model_dump(mode="json", exclude_none=True)
    return line


def record_handler(record: SQSRecord) -> None:
    try:
        message = parse_record(record)
    except NotAnEvent:
        # Not the gateway's (someone else wrote to the queue): this record fails, and after 5
        # receives it is in the dead-letter queue. Its id only: the body may be anything.
        logger.warning("not a devicegate event", extra={"messageId": record.message_id})
        raise
    event = gate().event_of(message) if message.dataref else message.data
    logger.info("event", extra={"event": summary(message, event)})


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
