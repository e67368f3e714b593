"""Shared test helpers: fixtures from events/, the moto stack built from template.yaml, and
readers for what the gateway stored and published."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from devicegate.store.codec import from_item
from devicegate_local.lambda_context import LambdaContext

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def new_environment() -> None:
    """A fresh Lambda execution environment: every client, setting, adapter, pipeline and service
    the layer keeps is forgotten (devicegate.core.caches.reset), so the next use reads the
    environment again."""
    import devicegate.infra.settings  # noqa: F401  (hands the settings to the core and the vendors)
    from devicegate.core.caches import reset

    reset()


CONTRACTS = ROOT / "docs" / "contracts"


def contract_schemas() -> dict[str, dict[str, Any]]:
    """docs/contracts/schemas by `$id` (what a message's `dataschema` names), read once."""
    if not _SCHEMAS:
        for path in sorted((CONTRACTS / "schemas").glob("*.json")):
            schema = json.loads(path.read_text())
            _SCHEMAS[schema["$id"]] = schema
    return _SCHEMAS


_SCHEMAS: dict[str, dict[str, Any]] = {}
_VALIDATORS: dict[str, Any] = {}


def valid_message(body: dict[str, Any]) -> dict[str, Any]:
    """A queue message's body, after checking it against the contract: the CloudEvent schema, and
    its `data` against the schema its `dataschema` names (docs/contracts/schemas). Every test that
    reads the queue through a helper of this suite checks what it read."""
    from jsonschema import Draft202012Validator

    schemas = contract_schemas()
    for name in ("urn:devicegate:schema:cloudevent:1", body.get("dataschema")):
        assert name in schemas, f"message {body.get('type')} names no schema of docs/contracts: {name!r}"
        validator = _VALIDATORS.get(name)
        if validator is None:
            validator = _VALIDATORS[name] = Draft202012Validator(schemas[name])
        instance = body if name.endswith(":cloudevent:1") else body["data"]
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        assert not errors, (f"{body.get('type')} message {body.get('id')} does not match {name}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}" for e in errors[:5]))
    return body


def load_event(relative: str) -> dict[str, Any]:
    """An invocation event exactly as `sam local invoke -e events/<relative>` would take it."""
    return json.loads((EVENTS / relative).read_text())


def load_record(vendor: str, name: str) -> dict[str, Any]:
    return json.loads((EVENTS / vendor / "records" / f"{name}.json").read_text())


def with_body(event: dict[str, Any], body: str | bytes, **headers: str) -> dict[str, Any]:
    """A copy of an HTTP event with another body (bytes are sent base64, as API Gateway does)."""
    import base64

    clone = copy.deepcopy(event)
    if isinstance(body, bytes):
        clone["body"], clone["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        clone["body"], clone["isBase64Encoded"] = body, False
    clone["headers"].update(headers)
    return clone


def with_path(event: dict[str, Any], token: str, kind: str | None) -> dict[str, Any]:
    clone = copy.deepcopy(event)
    if kind is None:
        clone["routeKey"] = clone["requestContext"]["routeKey"] = "POST /hooks/jointech/{token}"
        clone["pathParameters"] = {"token": token}
        path = f"/hooks/jointech/{token}"
    else:
        clone["routeKey"] = clone["requestContext"]["routeKey"] = "POST /hooks/jointech/{token}/{kind}"
        clone["pathParameters"] = {"token": token, "kind": kind}
        path = f"/hooks/jointech/{token}/{kind}"
    clone["rawPath"] = clone["requestContext"]["http"]["path"] = path
    return clone


def context(name: str = "test-function") -> LambdaContext:
    return LambdaContext.for_function(name)


@dataclass
class Stack:
    """The template's resources in moto, plus readers for what tests assert on."""

    session: boto3.Session
    table: str
    queue_url: str
    bucket: str
    secret_arn: str
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL
    _stream_position: dict[str, str] = field(default_factory=dict)

    @property
    def ddb(self):
        return self.session.client("dynamodb")

    def event_items(self, vendor: str = "jointech") -> list[dict[str, Any]]:
        """Stored event items, with `data` decoded from its JSON text."""
        # Tests may scan; the gateway's own readers never do.
        items = [from_item(i) for i in self.ddb.scan(TableName=self.table)["Items"]
                 if i["pk"]["S"].startswith(f"E#{vendor}#")]
        for item in items:
            item["data"] = json.loads(item["data"])
        return items

    def quarantine_items(self, vendor: str = "jointech") -> list[dict[str, Any]]:
        items = self.ddb.scan(TableName=self.table)["Items"]
        return [from_item(i) for i in items if i["pk"]["S"].startswith(f"Q#{vendor}#")]

    def state(self, vendor: str, device: str) -> dict[str, dict[str, Any]]:
        """The device's state groups by name ({at, eventId, value}), read from its one item; the
        summary also carries the item's liveness fields (heardAt, online, offlineSince)."""
        from devicegate.store import keys

        found = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                  Key={"pk": {"S": keys.device_pk(vendor, device)}, "sk": {"S": keys.STATE_SK}})
        if "Item" not in found:
            return {}
        item = from_item(found["Item"])
        groups = {name: dict(group, group=name) for name, group in item.get("state", {}).items()}
        if "summary" in groups:
            summary = groups["summary"]
            summary["value"] = dict(summary["value"], lastSeen=summary["at"], lastEventId=summary["eventId"])
            summary.update({k: item[k] for k in ("heardAt", "online", "offlineSince", "gsi3pk", "gsi3sk",
                                                  "gsi5pk", "gsi5sk") if k in item})
        return groups

    def device_item(self, vendor: str, device: str) -> dict[str, Any] | None:
        from devicegate.store import keys

        found = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                  Key={"pk": {"S": keys.device_pk(vendor, device)}, "sk": {"S": keys.STATE_SK}})
        return from_item(found["Item"]) if "Item" in found else None

    def queue_messages(self) -> list[dict[str, Any]]:
        sqs = self.session.client("sqs")
        out = []
        while True:
            got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                return out
            for m in messages:
                out.append(valid_message(json.loads(m["Body"])))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def messages_in(self, queue: str) -> int:
        """Messages a queue holds (visible or not), by its logical id."""
        attributes = self.session.client("sqs").get_queue_attributes(
            QueueUrl=self.queues[queue],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(value) for value in attributes.values())

    def new_stream_records(self) -> list[dict[str, Any]]:
        """Stream records written since the last call, in the shape Lambda hands the outbox."""
        streams = self.session.client("dynamodbstreams")
        arn = self.ddb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        records = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            after = self._stream_position.get(shard_id)
            kwargs = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after
                      else {"ShardIteratorType": "TRIM_HORIZON"})
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **kwargs)["ShardIterator"]
            for record in streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]:
                record.setdefault("eventSourceARN", arn)
                records.append(record)
                self._stream_position[shard_id] = record["dynamodb"]["SequenceNumber"]
        return records


def seed_fleet(ddb: Any, table: str, vendor: str, devices: int, events_per_device: int,
               start: str = "2025-02-07T00:00:00.000Z", step_s: int = 30, same_time: int = 1) -> list[str]:
    """A fleet written with the store's own item layouts (no ingest, no outbox: fast enough for
    thousands): `devices` devices of `vendor`, each with a state item (summary and position
    groups, online) and `events_per_device` location events with a position, `same_time` of them
    per timestamp (ties on the timeline), `step_s` apart, moving north. The device ids."""
    from datetime import timedelta

    from devicegate.core.envelope import NormalizedEvent, canonical_json
    from devicegate.core.timeutil import iso_utc, parse_time
    from devicegate.store.devices import DeviceNews, DeviceStore, GroupNews
    from devicegate.store.items import event_item

    first = parse_time(start)
    expires = first + timedelta(days=3650)
    store = DeviceStore(ddb, table)
    ids = [f"seed{n:06d}" for n in range(devices)]
    for device_id in ids:
        last: dict[str, Any] = {}
        requests = []
        for n in range(events_per_device):
            at = iso_utc(first + timedelta(seconds=step_s * (n // same_time)))
            position = {"latitude": 22.5 + n * 0.0001, "longitude": 113.9, "speedKmh": 20.0, "valid": True,
                        "fixTime": at}
            event = NormalizedEvent(vendor=vendor, deviceId=device_id, kind="location", eventId=f"e{n:07d}",
                                    occurredAt=at, receivedAt=at, transport="http",
                                    dataJson=canonical_json({"assetId": device_id, "n": n}),
                                    factsJson=canonical_json({"position": position}))
            requests.append({"PutRequest": {"Item": event_item(event, expires)}})
            last = {"at": at, "id": event.eventId, "position": position}
        for chunk in range(0, len(requests), 25):
            ddb.batch_write_item(RequestItems={table: requests[chunk:chunk + 25]})
        if last:
            groups = {"summary": GroupNews(last["at"], last["id"], {"lastKind": "location", "lastReceivedAt": last["at"]}),
                      "position": GroupNews(last["at"], last["id"], last["position"])}
            store.apply_many([DeviceNews(vendor, device_id, groups=groups, heard_at=last["at"])], first)
    return ids
