"""AWS IoT Core topic rules -> raw pushes.

The rules (template.yaml) add the topic's parts to the message: `SELECT *, topic(2) AS accessKey,
topic(3) AS deviceNum, topic(4) AS kind` (and `subLockNum` for slave locks). When a rule cannot
deliver, its errorAction writes the original message with its topic to S3; `event_from_topic`
rebuilds the same event from there.
"""

from __future__ import annotations

from typing import Any

from devicegate.core.envelope import RawPush


def iot_push(vendor: str, event: Any, request_id: str = "") -> RawPush:
    from devicegate.vendors import get_adapter

    fields = get_adapter(vendor).topic_fields
    route = {k: str(event[k]) for k in fields if isinstance(event, dict) and event.get(k) is not None}
    return RawPush(vendor=vendor, transport="mqtt", body=b"", route=route, document=event, request_id=request_id)


def event_from_topic(topic: str, message: Any) -> Any:
    """What the rule's SELECT would have produced for `message` published on `topic` (a Basic
    Ingest topic, $aws/rules/<rule>/upload/..., reads as the topic after the rule's prefix, as
    topic(n) does in the rule)."""
    parts = topic.split("/")
    if parts[:2] == ["$aws", "rules"]:
        parts = parts[3:]
    if not isinstance(message, dict) or len(parts) < 4 or parts[0] != "upload":
        return message
    event = dict(message, accessKey=parts[1], deviceNum=parts[2])
    if len(parts) == 5 and parts[4] == "sublock":
        event.update(subLockNum=parts[3], kind="sublock")
    else:
        event["kind"] = parts[3]
    return event
