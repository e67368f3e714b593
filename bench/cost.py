"""What one event costs, path by path, at AWS list prices (us-east-1, on demand).

    ./run bench            # every benchmark; or: uv run python bench/cost.py [--write]

For each vendor path an event is sent three ways — new, retransmitted, invalid — through the real
handlers and (for a new one) the real outbox, on moto built from template.yaml. Every AWS request
the functions make is recorded at botocore's `before-call`/`after-call` hooks. DynamoDB write and
read units are not taken from moto (it does not meter them): they are computed from the items
themselves, before and after each request, by DynamoDB's size rules, for the table and for every
index of the template with its projection. Log bytes are what the functions really log (the
Powertools logger's stream and stdout, where metrics go as EMF), plus Lambda's own platform lines
as the template's SystemLogLevel lets them through.

What cannot be measured here is stated and used as an assumption (ASSUMPTIONS): billed durations,
how many events a stream batch carries, the platform log lines' size. Prices are list prices
(PRICES), read from AWS's pricing pages; change them there if yours differ.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the functions/ handlers, as SAM packages them

#: us-east-1 list prices in USD, read from the AWS pricing pages (first pricing tier).
PRICES = {
    "apigw_http_request": 1.00 / 1e6,  # HTTP API, per request (metered per 512 KB)
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit (1 KB)
    "dynamodb_rru": 0.125 / 1e6,  # on-demand read request unit (4 KB strongly, 8 KB eventually consistent)
    "sqs_fifo_request": 0.50 / 1e6,  # per 64 KB chunk of a request (message attributes count)
    # Fan-out (ConsumerApps): SNS FIFO, aws.amazon.com/sns/pricing ("FIFO topics").
    "sns_fifo_publish_request": 0.30 / 1e6,  # Publish/PublishBatch, per 64 KB chunk of a request
    "sns_fifo_publish_gb": 0.017,  # payload published
    "sns_fifo_delivery": 0.01 / 1e6,  # per message delivered to each subscription
    "sns_fifo_delivery_gb": 0.001,  # payload delivered, per subscription
    # The rejected alternative: EventBridge custom events, per event put (per 64 KB chunk).
    "eventbridge_event": 1.00 / 1e6,
    "sqs_standard_request": 0.40 / 1e6,
    "iot_rule_triggered": 0.15 / 1e6,
    "iot_rule_action": 0.15 / 1e6,
    "iot_message": 1.00 / 1e6,  # per 5 KB; Basic Ingest ($aws/rules/...) is not charged
    "s3_put": 0.005 / 1e3,
    "xray_trace": 5.00 / 1e6,  # traces recorded
    "logs_gb_ingested": 0.50,
    "secrets_manager_call": 0.05 / 1e4,
}

ASSUMPTIONS = {
    # Billed duration of one warm invocation, rounded up to the millisecond as Lambda bills: the
    # handler's own CPU time, scaled to the function's memory (Lambda gives one vCPU at 1,769 MB
    # and a proportional share below; bench/run.py measures the warm work at well under 1 ms of
    # one core, 1 ms is used), plus its AWS round trips in the region (a DynamoDB write answers
    # in ~4-6 ms, an S3 put in ~15-25 ms).
    "webhook_ms_per_round_trip": 6,
    "webhook_cpu_ms_at_one_vcpu": 1.0,
    "mb_per_vcpu": 1769,
    # The outbox handles a stream batch: per event its share of the SQS batch call and its
    # state read and write (the writes run one after the other per device).
    "outbox_ms_per_event": 4,
    # ... and per invocation, whatever its size: the batch's state read, its queue send, the
    # handler's own overhead.
    "outbox_ms_per_batch": 20,
    # Events per outbox invocation (BatchSize 100, a 1 s batching window): one invocation per
    # stream shard and window, and a large table has many shards each carrying few writes/s
    # (docs/capacity.md), so 10 rather than a full batch.
    "outbox_batch_events": 10,
    # Lambda's platform lines per invocation at SystemLogLevel INFO (START, END, REPORT in JSON);
    # none at WARN, the template's default.
    "platform_log_bytes_info": 700,
    # X-Ray at Tracing Active samples 1 request/s + 5 % (Lambda's own rule); at high rates 5 %.
    "xray_sampled_share_active": 0.05,
    # Token secrets are read once per 5 minutes per warm environment: negligible per event.
    # Each app's consumer receives and deletes in batches of 10 (ReceiveMessage,
    # DeleteMessageBatch): 0.2 SQS requests per event and app.
    "consumer_requests_per_event": 0.2,
    # A delivery from the topic into a queue is billed as one SQS request of that queue (the
    # conservative reading: the queue's owner pays for messages sent to it, whoever sends).
    "sqs_request_per_delivery": 1,
}

TEMPLATE = ROOT / "template.yaml"
FIXTURE_TOKEN = "dev-token"


# --- DynamoDB's size rules ---------------------------------------------------------------------

def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value (developer guide, "Item sizes and formats")."""
    (kind, raw), = value.items()
    if kind == "S":
        return len(raw.encode("utf-8"))
    if kind == "N":
        return number_size(raw)
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in raw)
    if kind == "NS":
        return sum(number_size(v) for v in raw)
    if kind == "BS":
        return sum(len(v) for v in raw)
    if kind == "M":
        # 3 bytes for the map, then each entry's name and value (plus 1 byte each).
        return 3 + sum(len(k.encode("utf-8")) + attribute_size(v) + 1 for k, v in raw.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in raw)
    raise ValueError(kind)


def number_size(text: str) -> int:
    digits = str(Decimal(text).normalize()).replace("-", "").replace(".", "").lstrip("0")
    digits = digits.split("E")[0].rstrip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]  # its key attributes
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    include: tuple[str, ...] = ()

    def entry(self, item: dict[str, Any] | None, table_keys: tuple[str, ...]) -> dict[str, Any] | None:
        """The item's entry in this index (None when the item is not in it: sparse)."""
        if not item or any(k not in item for k in self.keys[:1]):
            return None
        if self.projection == "ALL":
            return item
        wanted = set(self.keys) | set(table_keys) | (set(self.include) if self.projection == "INCLUDE" else set())
        return {k: v for k, v in item.items() if k in wanted}


@dataclass(frozen=True)
class Table:
    keys: tuple[str, ...]
    indexes: tuple[Index, ...]

    @classmethod
    def from_template(cls) -> Table:
        from devicegate_local.cfn_template import load_template

        props = load_template(TEMPLATE)["Resources"]["EventsTable"]["Properties"]
        keys = tuple(k["AttributeName"] for k in props["KeySchema"])
        indexes = []
        for gsi in props.get("GlobalSecondaryIndexes", []):
            projection = gsi["Projection"]
            indexes.append(Index(gsi["IndexName"], tuple(k["AttributeName"] for k in gsi["KeySchema"]),
                                 projection["ProjectionType"], tuple(projection.get("NonKeyAttributes", ()))))
        return cls(keys, tuple(indexes))


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


def index_write_units(index: Index, table: Table, before: dict | None, after: dict | None) -> int:
    """What one item write costs in one index: nothing when its entry does not change; a put, a
    delete, or both when the entry's key moves."""
    old, new = index.entry(before, table.keys), index.entry(after, table.keys)
    if old is None and new is None or old == new:
        return 0
    if old is None:
        return write_units(item_size(new))
    if new is None:
        return write_units(item_size(old))
    if all(old.get(k) == new.get(k) for k in index.keys):
        return write_units(max(item_size(old), item_size(new)))
    return write_units(item_size(old)) + write_units(item_size(new))


# --- the meter ---------------------------------------------------------------------------------

@dataclass
class Usage:
    requests: Counter = field(default_factory=Counter)  # "service Operation" -> count
    wru: Counter = field(default_factory=Counter)  # "table" / index name -> write units
    rru: float = 0.0
    sqs_requests: int = 0
    s3_puts: int = 0
    message_bytes: int = 0  # bodies and attributes of the queue messages sent
    sns_publish_chunks: int = 0
    attribute_bytes: int = 0
    messages: int = 0

    def add(self, other: Usage) -> None:
        self.requests.update(other.requests)
        self.wru.update(other.wru)
        self.rru += other.rru
        self.sqs_requests += other.sqs_requests
        self.s3_puts += other.s3_puts
        self.message_bytes += other.message_bytes
        self.sns_publish_chunks += other.sns_publish_chunks
        self.attribute_bytes += other.attribute_bytes
        self.messages += other.messages


class Meter:
    """Records every request the functions' botocore session makes, and what it costs. Item
    images come from `inspector`, a client of another session (not metered itself)."""

    def __init__(self, table_name: str, inspector: Any, model: Table):
        self.table_name, self.inspector, self.model = table_name, inspector, model
        self.usage = Usage()

    def install(self) -> None:
        from devicegate.infra.aws import botocore_session

        events = botocore_session().get_component("event_emitter")
        events.register("before-parameter-build.*.*", self._before)
        events.register("after-call.*.*", self._after)

    def take(self) -> Usage:
        usage, self.usage = self.usage, Usage()
        return usage

    def _before(self, params: dict, model: Any, context: dict, **_: Any) -> None:
        context["meter_params"] = copy.deepcopy(params)
        if model.service_model.endpoint_prefix == "dynamodb":
            context["meter_before"] = [(key, self._get(key)) for key in _written_keys(model.name, params)]

    def _after(self, model: Any, parsed: dict, context: dict, **_: Any) -> None:
        service, name = model.service_model.endpoint_prefix, model.name
        params = context.get("meter_params", {})
        self.usage.requests[f"{service} {name}"] += 1
        if service == "sqs" and name.startswith("SendMessage"):
            entries = params.get("Entries") or [params]
            attributes = sum(_attribute_bytes(e.get("MessageAttributes", {})) for e in entries)
            size = sum(len(e.get("MessageBody", "").encode()) for e in entries) + attributes
            # Message attributes count toward the size SQS bills per 64 KB chunk.
            self.usage.sqs_requests += max(1, math.ceil(size / 65536))
            self.usage.message_bytes += size
            self.usage.attribute_bytes += attributes
            self.usage.messages += len(entries)
        elif service == "sns" and name == "PublishBatch":
            entries = params.get("PublishBatchRequestEntries", [])
            attributes = sum(_attribute_bytes(e.get("MessageAttributes", {})) for e in entries)
            size = sum(len(e["Message"].encode()) for e in entries) + attributes
            self.usage.sns_publish_chunks += max(1, math.ceil(size / 65536))
            self.usage.message_bytes += size
            self.usage.attribute_bytes += attributes
            self.usage.messages += len(entries)
        elif service == "s3" and name == "PutObject":
            self.usage.s3_puts += 1
        elif service == "dynamodb":
            self._dynamodb(name, params, parsed, context.get("meter_before", []))

    def _dynamodb(self, name: str, params: dict, parsed: dict, before: list[tuple[dict, dict | None]]) -> None:
        failed = "Error" in parsed
        transactional = 2 if name.startswith("Transact") else 1
        for key, old in before:
            new = old if failed else self._get(key)
            if failed:
                # A refused conditional write is charged like a write of the item there.
                self.usage.wru["table"] += transactional * write_units(item_size(old))
                continue
            self.usage.wru["table"] += transactional * write_units(max(item_size(old), item_size(new)))
            for index in self.model.indexes:
                self.usage.wru[index.name] += transactional * index_write_units(index, self.model, old, new)
        if name == "GetItem" and not failed:
            item = self._get(params["Key"]) if "Item" in parsed else None
            self.usage.rru += read_units(item_size(item), params.get("ConsistentRead", False))
        elif name == "BatchGetItem" and not failed:
            for request in params["RequestItems"].values():
                for key in request["Keys"]:
                    item = self._get(key)
                    if item is not None:
                        self.usage.rru += read_units(item_size(item), request.get("ConsistentRead", False))
        elif name == "Query" and not failed:
            index = next((i for i in self.model.indexes if i.name == params.get("IndexName")), None)
            total = 0
            for found in parsed.get("Items", []):
                item = self._get({"pk": found["pk"], "sk": found["sk"]})
                total += item_size(index.entry(item, self.model.keys) if index else item)
            self.usage.rru += read_units(total, params.get("ConsistentRead", False))

    def _get(self, key: dict) -> dict | None:
        return self.inspector.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")


def _attribute_bytes(attributes: dict) -> int:
    return sum(len(name.encode()) + len(value["DataType"].encode()) + len(value.get("StringValue", "").encode())
               for name, value in attributes.items())


def _written_keys(operation: str, params: dict) -> list[dict]:
    if operation == "PutItem":
        item = params["Item"]
        return [{"pk": item["pk"], "sk": item["sk"]}]
    if operation in ("UpdateItem", "DeleteItem"):
        return [params["Key"]]
    if operation == "TransactWriteItems":
        keys = []
        for action in params["TransactItems"]:
            (kind, spec), = action.items()
            if kind == "Put":
                keys.append({"pk": spec["Item"]["pk"], "sk": spec["Item"]["sk"]})
            elif kind in ("Update", "Delete"):
                keys.append(spec["Key"])
        return keys
    if operation == "BatchWriteItem":
        keys = []
        for requests in params["RequestItems"].values():
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    keys.append({"pk": item["pk"], "sk": item["sk"]})
                else:
                    keys.append(request["DeleteRequest"]["Key"])
        return keys
    return []


# --- the paths ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PathSpec:
    title: str
    function: str  # logical id in template.yaml
    module: str  # functions.<name>.app
    fixture: str  # events/<...>.json: the new event (sent again: its retransmission)
    transport: str  # https | mqtt
    invalid: Callable[[dict], dict]  # the fixture made invalid
    #: The device's next event, where the same record sent again would not be an ordinary one
    #: (an alarm's next step); else the fixture itself is stored again as a new event.
    next_fixture: str | None = None

    @property
    def vendor(self) -> str:
        return self.fixture.split("/")[0]


def _bad_http_body(event: dict) -> dict:
    bad = copy.deepcopy(event)
    bad["body"], bad["isBase64Encoded"] = '{"not": "a record"}', False
    return bad


def _bad_mqtt(event: dict) -> dict:
    return {k: v for k, v in event.items() if k in ("accessKey", "deviceNum", "kind")}


PATHS = (
    PathSpec("Jointech location (HTTPS)", "JointechWebhookFunction", "functions.jointech_webhook.app",
             "jointech/http-webhook-location.json", "https", _bad_http_body),
    PathSpec("Jointech location (MQTT)", "JointechMqttFunction", "functions.jointech_mqtt.app",
             "jointech/iot-mqtt-location.json", "mqtt", _bad_mqtt),
    PathSpec("Jointech alarm (HTTPS)", "JointechWebhookFunction", "functions.jointech_webhook.app",
             "jointech/http-webhook-alarm.json", "https", _bad_http_body),
    PathSpec("Face terminal record", "FaceTerminalWebhookFunction", "functions.face_terminal_webhook.app",
             "face-terminal/http-doc-record.json", "https", _bad_http_body),
    PathSpec("Face terminal record with photo", "FaceTerminalWebhookFunction", "functions.face_terminal_webhook.app",
             "face-terminal/http-variation-record-with-photo-and-pin.json", "https", _bad_http_body),
    PathSpec("Face terminal alarm (lifecycle)", "FaceTerminalWebhookFunction", "functions.face_terminal_webhook.app",
             "face-terminal/http-doc-alarm-raised-with-device.json", "https", _bad_http_body,
             next_fixture="face-terminal/http-variation-alarm-released.json"),
    PathSpec("SenseLink record", "SenseLinkWebhookFunction", "functions.senselink_webhook.app",
             "senselink/http-sub-record-employee.json", "https", _bad_http_body),
    PathSpec("Mettax GPS", "MettaxWebhookFunction", "functions.mettax_webhook.app",
             "mettax/http-doc-gps.json", "https", _bad_http_body),
    PathSpec("AI camera heartbeat", "AiCameraWebhookFunction", "functions.ai_camera_webhook.app",
             "ai-camera/http-doc-heartbeat.json", "https", _bad_http_body),
)


@dataclass
class Measured:
    usage: Usage
    log_bytes: int
    invocations: int = 1


@dataclass
class PathResult:
    spec: PathSpec
    first: Measured  # the device's first event (its item and list entries are created)
    first_outbox: Measured
    retransmission: Measured
    invalid: Measured
    new: Measured  # a new event of a device already known: the steady state, what is priced
    outbox: Measured
    sizes: dict[str, int] = field(default_factory=dict)  # stored item bytes (DynamoDB's rules)


class Stack:
    """The template's resources in moto (in process), the functions' environment applied."""

    def __init__(self, overrides: dict[str, str] | None = None) -> None:
        import boto3
        from moto import mock_aws

        from devicegate_local.cfn_template import load_template
        from devicegate_local.resources import Resolver, create_resources, function_specs, merged_environment

        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true",
                           "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}.items():
            os.environ[key] = value
        os.environ.pop("AWS_ENDPOINT_URL", None)
        self._mock = mock_aws()
        self._mock.start()
        self.session = boto3.Session(region_name="us-east-1")
        resolver = Resolver(load_template(TEMPLATE), overrides)
        self.created = create_resources(resolver, self.session, token=FIXTURE_TOKEN)
        self.specs = {s.logical_id: s for s in function_specs(resolver, ROOT)}
        os.environ.update(merged_environment(self.specs.values()))
        self.table = self.created.tables["EventsTable"]
        self.ddb = self.session.client("dynamodb")
        self._position: dict[str, str] = {}

    def stop(self) -> None:
        self._mock.stop()

    def _items(self, prefixes: tuple[str, ...]) -> list[dict]:
        pages = self.ddb.get_paginator("scan").paginate(TableName=self.table)
        return [i for page in pages for i in page["Items"] if i["pk"]["S"].startswith(prefixes)]

    def forget_events(self, vendor: str) -> dict[str, int]:
        """Delete the vendor's stored events and id markers (consuming their stream records);
        returns the largest event item's size."""
        items = self._items((f"E#{vendor}#", f"EID#{vendor}#"))
        size = max((item_size(i) for i in items if i["pk"]["S"].startswith("E#")), default=0)
        for item in items:
            self.ddb.delete_item(TableName=self.table, Key={"pk": item["pk"], "sk": item["sk"]})
        self.new_stream_records()
        return {"event item": size}

    def state_sizes(self, vendor: str) -> dict[str, int]:
        items = self._items((f"D#{vendor}#",))
        return {"device item": max((item_size(i) for i in items), default=0)}

    def new_stream_records(self) -> list[dict]:
        streams = self.session.client("dynamodbstreams")
        arn = self.ddb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        out = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            after = self._position.get(shard["ShardId"])
            where = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after
                     else {"ShardIteratorType": "TRIM_HORIZON"})
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], **where)["ShardIterator"]
            for record in streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]:
                record.setdefault("eventSourceARN", arn)
                out.append(record)
                self._position[shard["ShardId"]] = record["dynamodb"]["SequenceNumber"]
        return out


def _invoke(handler: Callable, event: dict, function: str) -> tuple[Any, int]:
    """(result, bytes logged): the Powertools logger's stream and stdout (EMF metrics)."""
    import contextlib

    from devicegate.infra.observability import logger
    from devicegate_local.lambda_context import LambdaContext

    buffer, out = io.StringIO(), io.StringIO()
    handler_ = logger.registered_handler
    previous = handler_.setStream(buffer)
    try:
        with contextlib.redirect_stdout(out):
            try:
                result = handler(event, LambdaContext.for_function(function, timeout_s=60))
            except Exception as exc:  # the MQTT function raises to make Lambda retry
                result = exc
    finally:
        handler_.setStream(previous)
    return result, len(buffer.getvalue().encode()) + len(out.getvalue().encode())


def measure() -> list[PathResult]:
    import importlib

    stack = Stack()
    try:
        model = Table.from_template()
        meter = Meter(stack.table, stack.session.client("dynamodb"), model)
        meter.install()
        outbox = importlib.import_module("functions.outbox.app").lambda_handler
        results = []
        for spec in PATHS:
            handler = importlib.import_module(spec.module).lambda_handler
            event = json.loads((ROOT / "events" / spec.fixture).read_text())
            # Warm first (token secret read, clients made) with another bad payload, so the measured
            # ones meet a function as it runs in steady state.
            warm = spec.invalid(event)
            if "body" in warm:
                warm["body"] = '{"warm": "up"}'
            else:
                warm["warm"] = "up"
            _invoke(handler, warm, spec.function)
            stack.new_stream_records()
            meter.take()
            _, logged = _invoke(handler, event, spec.function)
            first = Measured(meter.take(), logged)
            _, logged = _invoke(outbox, {"Records": stack.new_stream_records()}, "OutboxFunction")
            first_drained = Measured(meter.take(), logged)
            _, logged = _invoke(handler, event, spec.function)
            again = Measured(meter.take(), logged)
            _, logged = _invoke(handler, spec.invalid(event), spec.function)
            invalid = Measured(meter.take(), logged)
            # The steady state: the same record as a new event of the now known device (its event
            # item and id marker taken away, so it is stored again, same size, received later).
            if spec.next_fixture:
                sizes = {}
                # Its body on the first one's route (the same device, as the route names it).
                event = dict(event, body=json.loads((ROOT / "events" / spec.next_fixture).read_text())["body"])
            else:
                sizes = stack.forget_events(spec.vendor)
            _, logged = _invoke(handler, event, spec.function)
            new = Measured(meter.take(), logged)
            _, logged = _invoke(outbox, {"Records": stack.new_stream_records()}, "OutboxFunction")
            drained = Measured(meter.take(), logged)
            sizes.update(stack.state_sizes(spec.vendor))
            results.append(PathResult(spec, first, first_drained, again, invalid, new, drained, sizes))
        return results
    finally:
        stack.stop()


@dataclass
class WaitingResult:
    """The outbox's batch for one new Jointech location (HTTPS), of a device with nothing waiting
    and of one with a command kept for its next contact (`whenOnline`)."""

    plain: Measured
    waiting: Measured
    #: The next batch: the command.sent event the dispatch stored, published like any event.
    sent_event: Measured


def measure_waiting() -> WaitingResult:
    """The check at contact (devicegate.outbox.waiting), through the real handlers: the same new
    location of a known device through the outbox, without then with a waiting command."""
    import importlib

    from devicegate.core.caches import reset

    stack = Stack({"JointechAccessKey": "ak-bench"})
    reset()  # a new execution environment: settings and clients read this stack's
    try:
        meter = Meter(stack.table, stack.session.client("dynamodb"), Table.from_template())
        meter.install()
        webhook = importlib.import_module("functions.jointech_webhook.app").lambda_handler
        commands = importlib.import_module("functions.jointech_commands.app").lambda_handler
        outbox = importlib.import_module("functions.outbox.app").lambda_handler
        location = json.loads((ROOT / "events/jointech/http-webhook-location.json").read_text())
        device = json.loads(location["body"])["assetId"]

        def new_location_through_the_outbox() -> Measured:
            stack.forget_events("jointech")  # the same record stored again as a new event
            _invoke(webhook, location, "JointechWebhookFunction")
            meter.take()
            _, logged = _invoke(outbox, {"Records": stack.new_stream_records()}, "OutboxFunction")
            return Measured(meter.take(), logged)

        new_location_through_the_outbox()  # the device known, the outbox warm
        plain = new_location_through_the_outbox()
        queued = json.loads((ROOT / "events/jointech-commands/http-post-typed-query-base-info-when-online.json")
                            .read_text())
        queued["pathParameters"]["deviceNum"] = device
        queued["rawPath"] = queued["requestContext"]["http"]["path"] = f"/devices/jointech/{device}/commands"
        answer, _ = _invoke(commands, queued, "JointechCommandsFunction")
        assert json.loads(answer["body"])["status"] == "queued", answer
        _invoke(outbox, {"Records": stack.new_stream_records()}, "OutboxFunction")  # its command.queued event
        waiting = new_location_through_the_outbox()
        _, logged = _invoke(outbox, {"Records": stack.new_stream_records()}, "OutboxFunction")
        return WaitingResult(plain, waiting, Measured(meter.take(), logged))
    finally:
        stack.stop()
        reset()


def waiting_section(result: WaitingResult) -> list[str]:
    def reqs(m: Measured) -> str:
        return ", ".join(f"{op} {n}" for op, n in sorted(m.usage.requests.items())) or "-"

    def units(m: Measured) -> str:
        return f"{sum(m.usage.wru.values())} WU, {m.usage.rru:g} RU"

    added = result.waiting.usage.requests - result.plain.usage.requests
    # What the outbox asks for a device's batch without the feature: its item read, its item written,
    # the messages sent. Anything more in the plain batch would be the check's cost.
    baseline = Counter({"dynamodb BatchGetItem": 1, "dynamodb PutItem": 1, "sqs SendMessageBatch": 1})
    extra = result.plain.usage.requests - baseline
    verdict = ("The check itself adds **no request and no unit** to an ordinary event of a device with nothing "
               "waiting:" if not extra else
               f"The check adds {', '.join(f'{op} {n}' for op, n in sorted(extra.items()))} to an ordinary event:")
    return ["", "### The check at contact for commands kept until the device's next contact", "",
            "Measured by `measure_waiting()`: a new Jointech location (HTTPS) of a known device through the real",
            "outbox, first with nothing waiting for the device, then with one command sent `whenOnline`.", "",
            "| outbox batch of one new location | requests | DynamoDB units |", "|---|---|---|",
            f"| device with nothing waiting | {reqs(result.plain)} | {units(result.plain)} |",
            f"| device with one command waiting | {reqs(result.waiting)} | {units(result.waiting)} |",
            f"| the next batch (its `command.sent` event) | {reqs(result.sent_event)} | {units(result.sent_event)} |",
            "",
            verdict,
            "the count (`waitingCommands`) is an attribute of the device item the outbox reads and writes for the",
            "batch anyway. A device with waiting commands pays, once per contact that sends them (the Query of its",
            "commands, the text read, the queued -> sent transaction with its event and the count, the IoT publish):",
            ", ".join(f"{op} {n}" for op, n in sorted(added.items()))
            + f"; {sum(result.waiting.usage.wru.values()) - sum(result.plain.usage.wru.values())} WU and "
            f"{result.waiting.usage.rru - result.plain.usage.rru:g} RU more. Then its `command.sent` event is "
            "published as any event."]


FANOUT_APPS = ("billing", "dashboard")
FANOUT_EVENTS = 10


def measure_fanout() -> dict[str, Any]:
    """The outbox with fan-out (ConsumerApps=billing,dashboard) on its own moto world: 10 Jointech
    locations of one device published as one batch; its requests, and what each queue received.
    Run in a process of its own (`--fanout-probe`): the functions' clients and settings are
    cached for the first world."""
    import importlib

    stack = Stack({"ConsumerApps": ",".join(FANOUT_APPS)})
    try:
        meter = Meter(stack.table, stack.session.client("dynamodb"), Table.from_template())
        meter.install()
        handler = importlib.import_module("functions.jointech_webhook.app").lambda_handler
        outbox = importlib.import_module("functions.outbox.app").lambda_handler
        event = json.loads((ROOT / "events" / "jointech/http-webhook-location.json").read_text())
        record = json.loads(event["body"])
        for n in range(FANOUT_EVENTS):
            body = dict(record, gpsTime=f"2025-02-07 10:{n:02d}:00", speed=n)
            _invoke(handler, dict(event, body=json.dumps(body)), "JointechWebhookFunction")
        meter.take()
        result, _ = _invoke(outbox, {"Records": stack.new_stream_records()}, "OutboxFunction")
        assert result == {"batchItemFailures": []}, result
        usage = meter.take()
        sqs = stack.session.client("sqs")
        received = {lid: int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                             ["Attributes"]["ApproximateNumberOfMessages"])
                    for lid, url in stack.created.queues.items() if lid in ("EventsQueue",) or lid.startswith("ConsumerApp")
                    and "DeadLetter" not in lid}
        return {"events": FANOUT_EVENTS, "requests": {k: v for k, v in usage.requests.items() if k.startswith(("sns", "sqs"))},
                "publish_chunks": usage.sns_publish_chunks, "message_bytes": usage.message_bytes / max(1, usage.messages),
                "received": received}
    finally:
        stack.stop()


def fanout_probe() -> dict[str, Any]:
    import subprocess

    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--fanout-probe"], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- prices ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """What the template decides about the bill: memory, tracing, platform logs."""

    memory_mb: dict[str, int]
    tracing: str
    system_log_level: str
    basic_ingest: bool

    @classmethod
    def from_template(cls) -> Settings:
        from devicegate_local.cfn_template import load_template

        template = load_template(TEMPLATE)
        params = template["Parameters"]
        globals_ = template.get("Globals", {}).get("Function", {})

        def value(setting: Any, default: str) -> str:
            if isinstance(setting, dict) and "Ref" in setting:
                return str(params[setting["Ref"]]["Default"])
            return str(setting) if setting is not None else default

        memory = {}
        for name, resource in template["Resources"].items():
            if resource.get("Type") == "AWS::Serverless::Function":
                memory[name] = int(value(resource["Properties"].get("MemorySize", globals_.get("MemorySize")), "128"))

        logging = globals_.get("LoggingConfig", {})
        rules = [r["Properties"]["TopicRulePayload"]["Sql"] for r in template["Resources"].values()
                 if r.get("Type") == "AWS::IoT::TopicRule"]
        policy = json.dumps(template["Resources"].get("JointechBridgePolicy", {}))
        return cls(memory, value(globals_.get("Tracing"), "PassThrough"),
                   value(logging.get("SystemLogLevel"), "INFO"),
                   bool(rules) and "$aws/rules/" in policy)


def dollars_per_million(result: PathResult, settings: Settings, batch_events: float | None = None) -> dict[str, float]:
    """$ per million new events of this path, by service (`batch_events`: events per outbox
    invocation, the assumption's unless given)."""
    a, price = ASSUMPTIONS, PRICES
    new, outbox = result.new, result.outbox
    per_batch = 1 / (batch_events or a["outbox_batch_events"])
    round_trips = sum(new.usage.requests.values())
    memory = settings.memory_mb[result.spec.function]
    own_ms = a["webhook_cpu_ms_at_one_vcpu"] * max(1.0, a["mb_per_vcpu"] / memory)
    ingest_ms = math.ceil(own_ms + a["webhook_ms_per_round_trip"] * round_trips)
    gb = memory / 1024
    outbox_gb = settings.memory_mb["OutboxFunction"] / 1024
    lambda_cost = (price["lambda_request"] * (1 + per_batch)
                   + price["lambda_gb_second_arm64"] * (gb * ingest_ms + outbox_gb * (a["outbox_ms_per_event"]
                                                                         + a["outbox_ms_per_batch"] * per_batch)) / 1000)
    if result.spec.transport == "https":
        front = price["apigw_http_request"]
    else:
        front = price["iot_rule_triggered"] + price["iot_rule_action"]
        if not settings.basic_ingest:
            front += price["iot_message"]
    wru = sum(new.usage.wru.values()) + sum(outbox.usage.wru.values())
    rru = new.usage.rru + outbox.usage.rru
    # SQS batches of up to 10 messages per request in steady state (the outbox's chunks).
    sqs = price["sqs_fifo_request"] * outbox.usage.sqs_requests / max(1, len_published(result)) / 10 \
        if outbox.usage.sqs_requests else 0.0
    platform = a["platform_log_bytes_info"] * (1 + per_batch) if settings.system_log_level in ("INFO", "DEBUG") else 0
    log_bytes = new.log_bytes + outbox.log_bytes * per_batch + platform
    xray = price["xray_trace"] * a["xray_sampled_share_active"] * (1 + per_batch) if settings.tracing == "Active" else 0
    costs = {
        "API Gateway" if result.spec.transport == "https" else "IoT Core": front,
        "Lambda": lambda_cost,
        "DynamoDB": price["dynamodb_wru"] * wru + price["dynamodb_rru"] * rru,
        "SQS": sqs,
        "S3": price["s3_put"] * (new.usage.s3_puts + outbox.usage.s3_puts),
        "CloudWatch Logs": price["logs_gb_ingested"] * log_bytes / 1e9,
        "X-Ray": xray,
    }
    return {service: cost * 1e6 for service, cost in costs.items()}


def len_published(result: PathResult) -> int:
    # One event per measured push: the outbox sent one message (one chunk).
    return 1


def write_unit_breakdown(result: PathResult) -> str:
    parts = Counter(result.new.usage.wru) + Counter(result.outbox.usage.wru)
    return " + ".join(f"{name} {units}" for name, units in sorted(parts.items()) if units) or "0"


def report(results: list[PathResult], settings: Settings, waiting: WaitingResult | None = None) -> str:
    lines = ["## Cost per event", "",
             "Produced by `python bench/cost.py --write` (also run by `./run bench`): every AWS request of each path,",
             "counted through the real handlers and the real outbox on moto built from template.yaml; write and read",
             "units computed from the stored items by DynamoDB's size rules, for the table and every index with its",
             "projection; list prices of us-east-1 (bench/cost.py PRICES) and the stated assumptions below.", "",
             f"Template settings priced: Tracing `{settings.tracing}`, SystemLogLevel `{settings.system_log_level}`, "
             f"MQTT through Basic Ingest: {'yes' if settings.basic_ingest else 'no'}, ingest memory "
             f"{settings.memory_mb.get('JointechWebhookFunction')} MB.", "",
             "A *new* event is one of a device the gateway already knows (the steady state, what the prices are for);",
             "a device's *first* event also creates its item and its entries in the device list and the due list.",
             "The outbox's requests are per batch: with several events of a device in one batch its state is still",
             "one read and one write, so these per-event figures are the worst case (one event per device per batch).", "",
             "### AWS requests and DynamoDB units per event", "",
             "| path | new: ingest requests | outbox requests (per batch of its events) | write units, new event "
             "(end to end) | first event of a device | read units | retransmission | invalid | item bytes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        def reqs(m: Measured) -> str:
            return ", ".join(f"{op} {n}" for op, n in sorted(m.usage.requests.items())) or "-"
        again = f"{reqs(r.retransmission)}; {sum(r.retransmission.usage.wru.values())} WU"
        bad = f"{reqs(r.invalid)}; {sum(r.invalid.usage.wru.values())} WU"
        first = sum(r.first.usage.wru.values()) + sum(r.first_outbox.usage.wru.values())
        sizes = ", ".join(f"{name} {size}" for name, size in r.sizes.items())
        lines.append(f"| {r.spec.title} | {reqs(r.new)} | {reqs(r.outbox)} | "
                     f"**{sum(r.new.usage.wru.values()) + sum(r.outbox.usage.wru.values())}** ({write_unit_breakdown(r)}) "
                     f"| {first} | {r.new.usage.rru + r.outbox.usage.rru:g} | {again} | {bad} | {sizes} |")
    services = ["API Gateway", "IoT Core", "Lambda", "DynamoDB", "SQS", "S3", "CloudWatch Logs", "X-Ray"]
    lines += ["", "### $ per million new events, by service", "",
              "| path | " + " | ".join(services) + " | total |", "|---" * (len(services) + 2) + "|"]
    totals = {}
    for r in results:
        costs = dollars_per_million(r, settings)
        totals[r.spec.title] = sum(costs.values())
        lines.append(f"| {r.spec.title} | " + " | ".join(f"{costs[s]:.3f}" if s in costs else "-" for s in services)
                     + f" | **{totals[r.spec.title]:.2f}** |")
    sensitivity = [(n, {r.spec.title: sum(dollars_per_million(r, settings, n).values()) for r in results[:2]})
                   for n in (100, 10, 3, 1)]
    lines += ["", "Events per outbox invocation move the outbox's share: a young table has few stream shards, each",
              "carrying many writes, and its batches fill (100); a table of many terabytes has about one stream shard",
              "per partition, each carrying few writes per second, and batches shrink toward one event within the",
              "1 s batching window (docs/capacity.md). Totals at 100 / 10 / 3 / 1 events per batch: "
              + "; ".join(f"{title} " + " / ".join(f"${costs[title]:.2f}" for _, costs in sensitivity)
                          for title in sensitivity[0][1]) + ".",
              "", "Log bytes per new event (what the functions logged here): "
              + ", ".join(f"{r.spec.title} {r.new.log_bytes} + outbox {r.outbox.log_bytes} per batch" for r in results[:2]),
              ]
    lines += fanout_section(results, fanout_probe())
    if waiting is not None:
        lines += waiting_section(waiting)
    lines += ["", "Assumptions:", ""]
    lines += [f"- `{name}` = {value}" for name, value in ASSUMPTIONS.items()]
    lines += ["", "Prices (USD):", ""] + [f"- `{name}` = {value:g}" for name, value in PRICES.items()]
    return "\n".join(lines) + "\n"


def fanout_cost(message_bytes: float, apps: int, events_per_request: int = 10) -> dict[str, float]:
    """$ per million events of delivering them to the default app and `apps` more (0: no fan-out,
    today's SendMessageBatch to EventsQueue), and through EventBridge instead, for a message of
    `message_bytes` (body and attributes), requests of `events_per_request` messages."""
    a, price = ASSUMPTIONS, PRICES
    chunks = max(1, math.ceil(message_bytes * events_per_request / 65536)) / events_per_request
    consumers = (apps + 1) * a["consumer_requests_per_event"] * price["sqs_fifo_request"]
    deliveries_into_queues = (apps + 1) * a["sqs_request_per_delivery"] * price["sqs_fifo_request"]
    gb = message_bytes / 1e9
    costs = {
        "SQS send (outbox)": price["sqs_fifo_request"] * chunks if apps == 0 else 0.0,
        "SNS publish + payload": 0.0 if apps == 0 else price["sns_fifo_publish_request"] * chunks
        + price["sns_fifo_publish_gb"] * gb,
        "SNS deliveries": 0.0 if apps == 0 else (apps + 1) * (price["sns_fifo_delivery"] + price["sns_fifo_delivery_gb"] * gb),
        "SQS deliveries into the queues": 0.0 if apps == 0 else deliveries_into_queues,
        "SQS consumers (receive + delete)": consumers,
    }
    eventbridge = (price["eventbridge_event"] * max(1, math.ceil(message_bytes / 65536)) + deliveries_into_queues
                   + consumers)
    return {**{k: v * 1e6 for k, v in costs.items()}, "total": sum(costs.values()) * 1e6,
            "EventBridge instead": eventbridge * 1e6}


def fanout_section(results: list[PathResult], probe: dict[str, Any]) -> list[str]:
    sizes = {r.spec.title: r.outbox.usage.message_bytes / max(1, r.outbox.usage.messages) for r in results
             if r.outbox.usage.messages}
    attributes = max((r.outbox.usage.attribute_bytes / max(1, r.outbox.usage.messages) for r in results), default=0)
    title, size = next(iter(sizes.items()))
    largest = max(sizes.values())
    columns = ["SQS send (outbox)", "SNS publish + payload", "SNS deliveries", "SQS deliveries into the queues",
               "SQS consumers (receive + delete)", "total", "EventBridge instead"]
    lines = ["", "### Message attributes and fan-out (ConsumerApps)", "",
             f"Every message carries the attributes `type`, `vendor` and `device`: {attributes:.0f} bytes at most here "
             "(name, `String` and value each count toward the message size). They add no request; SQS bills a",
             "request per 64 KB chunk of its messages, attributes included, so they cost something only when they",
             f"push a send across a 64 KB boundary: the measured messages are {min(sizes.values()):.0f} to {largest:.0f} bytes "
             "with their attributes, a chunk of 10 of the largest is "
             f"{math.ceil(largest * 10 / 65536)} chunk(s), as without them.", "",
             f"Delivering to the apps, $ per million events ({title}: {size:.0f}-byte messages, 10 per request;",
             "the consumers' own receives and deletes included for every queue, at 10 per request). 0 apps is",
             "today's stack (ConsumerApps empty); with apps the outbox makes one PublishBatch per 10 events",
             "whatever their number, and SNS delivers to EventsQueue and to each app's queue:", "",
             "| apps besides the default | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for apps in (0, 1, 2, 4):
        costs = fanout_cost(size, apps)
        lines.append(f"| {apps} | " + " | ".join(f"{costs[c]:.3f}" for c in columns) + " |")
    requests = ", ".join(f"{op} {n}" for op, n in sorted(probe["requests"].items()))
    received = ", ".join(f"{queue} {n}" for queue, n in sorted(probe["received"].items()))
    lines += ["", f"Measured on moto with ConsumerApps={','.join(FANOUT_APPS)}: {probe['events']} events of one batch -> "
              f"outbox requests {requests} ({probe['publish_chunks']} 64 KB chunk(s), "
              f"{probe['message_bytes']:.0f} bytes a message); messages received: {received}."]
    lines += ["", "Fan-out adds to the outbox's requests nothing per app (one PublishBatch replaces the SendMessageBatch);",
              "per app it adds SNS's delivery ($0.01 per million plus $0.001/GB), the message entering the app's",
              "queue (counted as one SQS request, `sqs_request_per_delivery`) and the app's own receives and deletes.",
              "EventBridge, the rejected alternative, charges $1.00 per million events put (per 64 KB) before its",
              "deliveries to the same queues, and gives SQS FIFO targets neither ordering per device nor deduplication."]
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="record the figures in docs/benchmarks.md")
    parser.add_argument("--fanout-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fanout_probe:
        probe = measure_fanout()
        print(json.dumps(probe))
        return 0
    settings = Settings.from_template()
    results = measure()
    text = report(results, settings, measure_waiting())
    print(text)
    if args.write:
        from bench.doc_sections import replace_section

        replace_section(text)
        print("written to docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
