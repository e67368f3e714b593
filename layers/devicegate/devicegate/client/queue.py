"""Queue messages to typed CloudEvents, whichever queue they come from and however they were read.

- EventsQueue (no fan-out): the outbox's body, its message attributes (`type`, `vendor`, `device`).
- An app's queue with fan-out (ConsumerApps): the template subscribes every queue to the topic with
  raw delivery, so the body and the attributes are exactly EventsQueue's. A subscription made
  without raw delivery (an app's own) wraps them in SNS's notification envelope
  (`{"Type": "Notification", "Message": body, "MessageAttributes": {name: {"Type", "Value"}}}`):
  the parser unwraps it.
- A record of a Lambda SQS event (`body`, `messageAttributes: {name: {"stringValue", ...}}`), a
  message of boto3's `receive_message` (`Body`, `MessageAttributes: {name: {"StringValue", ...}}`),
  or Powertools' SQSRecord (its `raw_event`).

The attributes, where present, must say what the body says (type, vendor, device): a message
whose attributes disagree with its body is not the gateway's, and is refused rather than routed
on either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from devicegate.client.models import CloudEvent

#: The String attributes the outbox sets on every message (outbox/messages.py).
ATTRIBUTES = ("type", "vendor", "device")


class NotAnEvent(ValueError):
    """A message that is not a devicegate CloudEvent (or whose attributes contradict its body)."""


def _record_dict(record: Any) -> Mapping[str, Any]:
    if isinstance(record, Mapping):
        return record
    raw = getattr(record, "raw_event", None)  # Powertools' SQSRecord
    if isinstance(raw, Mapping):
        return raw
    raise NotAnEvent(f"not an SQS record: {type(record).__name__}")


def _attribute_values(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (attributes or {}).items():
        if isinstance(value, Mapping):
            # Lambda: stringValue; boto3: StringValue; an SNS envelope: Value.
            text = value.get("stringValue", value.get("StringValue", value.get("Value")))
            if isinstance(text, str):
                out[name] = text
    return out


def _unwrap(text: str | bytes) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotAnEvent(f"the body is not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(body, dict):
        raise NotAnEvent("the body is not a JSON object")
    if body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        inner, _ = _unwrap(body["Message"])
        return inner, _attribute_values(body.get("MessageAttributes"))
    return body, {}


def _checked(body: dict[str, Any], attributes: dict[str, str]) -> CloudEvent:
    try:
        event = CloudEvent.model_validate(body)
    except ValidationError as exc:
        # Where and what, never the values: a message's content has no place in an app's logs.
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['type']}" for e in exc.errors()[:8])
        raise NotAnEvent(f"not a devicegate CloudEvent ({problems})") from None
    said = {"type": event.type, "vendor": event.data.vendor, "device": event.source.rsplit("/", 1)[-1]}
    wrong = sorted(name for name in ATTRIBUTES if name in attributes and attributes[name] != said[name])
    if wrong:
        raise NotAnEvent(f"message attributes {', '.join(wrong)} contradict the body ({event.source} {event.id})")
    return event


def parse_body(text: str | bytes, attributes: Mapping[str, Any] | None = None) -> CloudEvent:
    """A message body (the outbox's, or SNS's envelope around it) as a typed CloudEvent; with
    `attributes` (in any of the shapes above), checked against them."""
    body, enveloped = _unwrap(text)
    return _checked(body, {**_attribute_values(attributes), **enveloped})


def attributes_of(record: Any) -> dict[str, str]:
    """A record's String message attributes (`type`, `vendor`, `device`) without parsing its body:
    enough to route or skip a message. Empty for a message read without them (boto3 without
    MessageAttributeNames) or wrapped in an SNS envelope (they are inside it)."""
    raw = _record_dict(record)
    return _attribute_values(raw.get("messageAttributes", raw.get("MessageAttributes")))


def parse_record(record: Any) -> CloudEvent:
    """An SQS record (Lambda's event record, boto3's message, Powertools' SQSRecord) of the events
    queue or of an app's fan-out queue, as a typed CloudEvent. Raises NotAnEvent."""
    raw = _record_dict(record)
    body = raw.get("body", raw.get("Body"))
    if not isinstance(body, (str, bytes)):
        raise NotAnEvent("the record has no body")
    return parse_body(body, raw.get("messageAttributes", raw.get("MessageAttributes")))
