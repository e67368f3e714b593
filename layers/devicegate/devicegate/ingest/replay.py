"""Re-ingest what was kept instead of stored (docs/deploy.md "Quarantine and replay"):
quarantined payloads after a fix, events Lambda parked in the MQTT failure queue, and messages the
IoT rules could not deliver.

Everything goes through the live Pipeline (authentication skipped: the payload was received
before), so a replay assembles parts, answers heartbeats and stores exactly as a live push would,
and replaying twice, or replaying something that meanwhile arrived again, stores it once.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from devicegate.core.adapter import Outcome
from devicegate.core.envelope import RawPush
from devicegate.core.errors import InvalidPayload
from devicegate.core.timeutil import iso_utc, now_utc
from devicegate.ingest.iot import event_from_topic, iot_push
from devicegate.ingest.pipeline import Pipeline
from devicegate.store.configs import DeviceConfigs
from devicegate.store.events import DynamoEventStore
from devicegate.store.queries import quarantined
from devicegate.vendors import get_adapter


@dataclass
class ReplayOutcome:
    id: str
    status: str  # stored, duplicate, quarantined, still-invalid, failed, would-replay
    detail: str = ""
    answer: Any = None  # what the sender would have been answered (a camera's strategy...)


def _body(item: dict[str, Any], s3: Any) -> bytes:
    if "body" in item:
        return item["body"].encode("utf-8")
    if "bodyBase64" in item:
        return base64.b64decode(item["bodyBase64"])
    bucket, key = item["bodyRef"].removeprefix("s3://").split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _reingest(push: RawPush, store: DynamoEventStore, dry_run: bool, quarantine_invalid: bool = True,
              configs: DeviceConfigs | None = None) -> tuple[str, str, Any]:
    """(status, detail, answer) of one payload through the live pipeline; a dry run only decodes."""
    adapter = get_adapter(push.vendor)
    if dry_run:
        try:
            events = adapter.normalize(push, now_utc())
        except InvalidPayload as exc:
            return ("would-quarantine" if quarantine_invalid else "still-invalid"), exc.reason, None
        return "would-replay", ",".join(getattr(e, "eventId", "") for e in events), None
    result = Pipeline(adapter, store, verifier=None, configs=configs, quarantine=quarantine_invalid).ingest(push)
    ids = ",".join(e.eventId for e in result.events)
    if result.outcome in (Outcome.INVALID, Outcome.TOO_LARGE):
        return ("quarantined" if result.quarantined else "still-invalid"), result.reason, result.answer.body
    if result.outcome is Outcome.UNAVAILABLE:
        return "failed", "storage unavailable; nothing was changed, replay again later", result.answer.body
    return ("duplicate" if result.outcome is Outcome.DUPLICATE else "stored"), ids, result.answer.body


def redrive_queue(sqs: Any, queue_url: str, store: DynamoEventStore, vendor: str,
                  dry_run: bool = False) -> list[ReplayOutcome]:
    """Re-ingest the events Lambda parked in a failure queue after its async retries (the
    destination record carries the original event as `requestPayload`). A message is deleted
    once its event is stored, found stored, or quarantined; a storage failure leaves it."""
    outcomes: list[ReplayOutcome] = []
    seen: set[str] = set()
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  VisibilityTimeout=30)
        messages = [m for m in got.get("Messages", []) if m["MessageId"] not in seen]
        if not messages:
            return outcomes
        for message in messages:
            seen.add(message["MessageId"])
            try:
                record = json.loads(message["Body"])
                payload = record["requestPayload"]
            except (ValueError, KeyError, TypeError):
                outcomes.append(ReplayOutcome(message["MessageId"], "not-an-invocation-record"))
                continue
            status, detail, answer = _reingest(iot_push(vendor, payload), store, dry_run)
            outcomes.append(ReplayOutcome(message["MessageId"], status, detail, answer))
            if not dry_run and status != "failed":
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def redrive_iot_errors(s3: Any, bucket: str, store: DynamoEventStore, vendor: str,
                       dry_run: bool = False) -> list[ReplayOutcome]:
    """Re-ingest messages an IoT rule could not deliver (its errorAction wrote them to
    quarantine/iot-errors/ with the topic and the payload base64-encoded)."""
    outcomes: list[ReplayOutcome] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix="quarantine/iot-errors/"):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            try:
                record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                topic = record["topic"]
                raw = base64.b64decode(record["base64OriginalPayload"])
            except (ValueError, KeyError, TypeError):
                outcomes.append(ReplayOutcome(key, "not-an-iot-error-record"))
                continue
            try:
                message = json.loads(raw)
                push = iot_push(vendor, event_from_topic(topic, message))
            except ValueError:
                push = RawPush(vendor, "mqtt", raw, route={"topic": topic})
            status, detail, answer = _reingest(push, store, dry_run)
            outcomes.append(ReplayOutcome(key, status, detail, answer))
            if not dry_run and status != "failed":
                s3.delete_object(Bucket=bucket, Key=key)
    return outcomes


def push_from_quarantine(item: dict[str, Any], body: bytes) -> RawPush:
    route = {k: str(v) for k, v in (item.get("route") or {}).items()}
    if item.get("transport") == "mqtt":
        return RawPush(item["vendor"], "mqtt", b"", route=route, document=json.loads(body))
    return RawPush(item["vendor"], "http", body, route=route, headers={"content-type": item.get("contentType", "")})


def replay(ddb: Any, s3: Any, table: str, store: DynamoEventStore, vendor: str,
           ids: list[str] | None = None, dry_run: bool = False) -> list[ReplayOutcome]:
    outcomes = []
    configs = DeviceConfigs(ddb, table)
    for item in quarantined(ddb, table, vendor, limit=None):
        if ids and item["id"] not in ids:
            continue
        try:
            push = push_from_quarantine(item, _body(item, s3))
        except ValueError as exc:
            outcomes.append(ReplayOutcome(item["id"], "still-invalid", str(exc)))
            continue
        status, detail, answer = _reingest(push, store, dry_run, quarantine_invalid=False, configs=configs)
        outcomes.append(ReplayOutcome(item["id"], status, detail if status != "would-replay" else item.get("reason", ""),
                                      answer))
        if status in ("stored", "duplicate"):
            ddb.update_item(
                TableName=table, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
                # Leaving the gsi1 list is what marks it done; the item stays until its TTL for audit.
                UpdateExpression="SET replayedAt = :t, replayedEventIds = :ids REMOVE gsi1pk, gsi1sk",
                ExpressionAttributeValues={":t": {"S": iso_utc(now_utc())},
                                           ":ids": {"L": [{"S": e} for e in detail.split(",") if e]}},
            )
    if ids:
        missing = set(ids) - {o.id for o in outcomes}
        outcomes += [ReplayOutcome(i, "not-found") for i in sorted(missing)]
    return outcomes
