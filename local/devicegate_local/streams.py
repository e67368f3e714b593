"""The stream half of `devicegate local`: a DynamoDB-stream event source mapping, emulated.

Polls the table's stream through the DynamoDB Streams calls (the local stack answers them from
moto in its own process: local_moto.InProcessStreams) and invokes the function with the
event Lambda would send, honouring the template's BatchSize, MaximumBatchingWindowInSeconds,
FilterCriteria, FunctionResponseTypes (ReportBatchItemFailures), BisectBatchOnFunctionError,
MaximumRetryAttempts and DestinationConfig.OnFailure.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devicegate_local.functions import FunctionError, StackStopping
from devicegate_local.names import LOCAL_REGION

log = logging.getLogger("devicegate.local")

_MISSING = object()
POLL_INTERVAL_S = 0.2
SHARD_REFRESH_S = 10.0


# --------------------------------------------------------------------------- filter patterns


def matches_pattern(pattern: dict[str, Any], event: Any) -> bool:
    """Whether `event` matches an EventBridge-style content filter, as Lambda applies it.

    Supported: exact values (strings, numbers, booleans, null), prefix, suffix,
    equals-ignore-case, exists, anything-but, numeric, nested objects and $or.
    """
    if not isinstance(pattern, dict):
        raise ValueError(f"a filter pattern must be an object, not {pattern!r}")
    for key, rule in pattern.items():
        if key == "$or":
            if not any(matches_pattern(option, event) for option in rule):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(rule, dict):
            if value is _MISSING:
                value = {}
            if not isinstance(value, dict) or not matches_pattern(rule, value):
                return False
        elif isinstance(rule, list):
            if not _matches_any(rule, value):
                return False
        else:
            raise ValueError(f"filter rule for {key!r} must be a list or an object, not {rule!r}")
    return True


def _matches_any(rules: list[Any], value: Any) -> bool:
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if (value is not _MISSING) == bool(rule["exists"]):
                return True
            continue
        if value is _MISSING:
            continue
        candidates = value if isinstance(value, list) else [value]
        if any(_matches_value(rule, candidate) for candidate in candidates):
            return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matches_value(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        if len(rule) != 1:
            raise ValueError(f"unsupported filter rule {rule!r}")
        (operator, operand), = rule.items()
        if operator == "prefix":
            return isinstance(value, str) and value.startswith(_text(operand))
        if operator == "suffix":
            return isinstance(value, str) and value.endswith(_text(operand))
        if operator == "equals-ignore-case":
            return isinstance(value, str) and value.lower() == str(operand).lower()
        if operator == "anything-but":
            if isinstance(operand, dict):
                return not _matches_value(operand, value)
            excluded = operand if isinstance(operand, list) else [operand]
            return not any(_matches_value(item, value) for item in excluded)
        if operator == "numeric":
            return _is_number(value) and _numeric(operand, value)
        raise ValueError(f"filter operator {operator!r} is not supported by the local stack")
    if rule is None:
        return value is None
    if _is_number(rule) and _is_number(value):
        return float(rule) == float(value)
    if isinstance(rule, bool) or isinstance(value, bool):
        return rule is value
    return type(rule) is type(value) and rule == value


def _text(operand: Any) -> str:
    if isinstance(operand, str):
        return operand
    raise ValueError(f"unsupported prefix/suffix operand {operand!r}")


def _numeric(conditions: list[Any], value: float) -> bool:
    checks = {
        "=": lambda a, b: a == b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    for index in range(0, len(conditions), 2):
        operator, bound = conditions[index], conditions[index + 1]
        if not checks[operator](value, bound):
            return False
    return True


_OPERATORS = ("prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists")
_NUMERIC_OPERATORS = ("=", "<", "<=", ">", ">=")


def validate_pattern(pattern: Any) -> None:
    """Raise ValueError for pattern syntax the local matcher does not implement."""
    if not isinstance(pattern, dict):
        raise ValueError(f"a filter pattern must be an object, not {pattern!r}")
    for key, rule in pattern.items():
        if key == "$or":
            if not isinstance(rule, list) or not rule:
                raise ValueError("$or needs a list of patterns")
            for option in rule:
                validate_pattern(option)
        elif isinstance(rule, dict):
            validate_pattern(rule)
        elif isinstance(rule, list):
            for item in rule:
                _validate_rule(item)
        else:
            raise ValueError(f"filter rule for {key!r} must be a list or an object, not {rule!r}")


def _validate_rule(rule: Any) -> None:
    if not isinstance(rule, dict):
        return
    if len(rule) != 1 or next(iter(rule)) not in _OPERATORS:
        raise ValueError(f"filter rule {rule!r} is not supported by the local stack")
    (operator, operand), = rule.items()
    if operator in ("prefix", "suffix") and not isinstance(operand, str):
        raise ValueError(f"unsupported {operator} operand {operand!r}")
    if operator == "numeric":
        if len(operand) % 2 or any(op not in _NUMERIC_OPERATORS for op in operand[::2]):
            raise ValueError(f"invalid numeric rule {operand!r}")
    if operator == "anything-but" and isinstance(operand, dict):
        _validate_rule(operand)


def parse_filters(filter_criteria: dict[str, Any] | None) -> list[dict[str, Any]]:
    """FilterCriteria.Filters[].Pattern (JSON strings) → patterns; raises on an invalid one."""
    patterns = []
    for item in (filter_criteria or {}).get("Filters") or []:
        pattern = item["Pattern"]
        pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
        validate_pattern(pattern)  # unsupported syntax fails at startup, not per record
        patterns.append(pattern)
    return patterns


def passes_filters(patterns: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    """Lambda invokes for a record when there are no filters or any filter matches it."""
    return not patterns or any(matches_pattern(pattern, record) for pattern in patterns)


# --------------------------------------------------------------------------- records


def _jsonable(value: Any) -> Any:
    """boto3's decoded attribute values back to the JSON Lambda receives (B/BS base64)."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def lambda_stream_record(raw: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A dynamodbstreams GetRecords record (as boto3 returns it) → a Lambda event record."""
    source = raw["dynamodb"]
    created = source.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        created = int(created.timestamp())
    dynamodb: dict[str, Any] = {"ApproximateCreationDateTime": created, "Keys": _jsonable(source["Keys"])}
    for image in ("NewImage", "OldImage"):
        if image in source:
            dynamodb[image] = _jsonable(source[image])
    dynamodb["SequenceNumber"] = source["SequenceNumber"]
    dynamodb["SizeBytes"] = source.get("SizeBytes", 0)
    dynamodb["StreamViewType"] = source["StreamViewType"]
    record = {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": raw.get("awsRegion") or LOCAL_REGION,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if raw.get("userIdentity"):
        record["userIdentity"] = raw["userIdentity"]
    return record


def drop_moto_upsert_artifacts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """moto's UpdateItem on a missing item emits two INSERTs (keys only, then the item); DynamoDB
    emits one. Drop the keys-only INSERT that is directly followed by an INSERT of the same key."""
    kept = []
    for index, record in enumerate(records):
        following = records[index + 1] if index + 1 < len(records) else None
        data = record["dynamodb"]
        if (
            following is not None
            and record["eventName"] == "INSERT"
            and following["eventName"] == "INSERT"
            and following["dynamodb"]["Keys"] == data["Keys"]
            and set(data.get("NewImage", {})) <= set(data["Keys"])
        ):
            continue
        kept.append(record)
    return kept


class InvalidBatchResponse(ValueError):
    """A ReportBatchItemFailures response Lambda treats as a failure of the whole batch."""


def first_failed_index(result: Any, records: list[dict[str, Any]]) -> int | None:
    """Index of the lowest failed record a ReportBatchItemFailures response names, or None.

    Lambda counts a null/empty response or batchItemFailures as complete success, and an item
    with a missing, empty or unknown itemIdentifier as complete failure (InvalidBatchResponse).
    """
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if not failures:
        return None
    positions = {record["dynamodb"]["SequenceNumber"]: index for index, record in enumerate(records)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in positions:
            raise InvalidBatchResponse(f"invalid batchItemFailures entry {failure!r}")
        indexes.append(positions[identifier])
    return min(indexes)


def _iso(epoch: Any) -> str:
    moment = datetime.fromtimestamp(float(epoch or 0), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def failure_destination_record(
    *,
    records: list[dict[str, Any]],
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    invoke_count: int,
    function_error: str | None,
    condition: str = "RetryAttemptsExhausted",
) -> dict[str, Any]:
    """The invocation record Lambda sends to an OnFailure destination for a discarded batch."""
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response_context["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": _iso(time.time()),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(records[0]["dynamodb"]["ApproximateCreationDateTime"]),
            "approximateArrivalOfLastRecord": _iso(records[-1]["dynamodb"]["ApproximateCreationDateTime"]),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


# --------------------------------------------------------------------------- the poller


@dataclass
class StreamSource:
    """One DynamoDB stream trigger of a function (a SAM DynamoDB event, or the
    AWS::Lambda::EventSourceMapping SAM would have made of it), with Lambda's defaults filled in."""

    function_id: str
    function_arn: str
    stream_arn: str
    starting_position: str = "LATEST"
    batch_size: int = 100
    batching_window_s: float = 0.0
    max_retries: int = -1  # -1: until the record expires, as in Lambda
    bisect: bool = False
    report_item_failures: bool = False
    filters: list[dict[str, Any]] = field(default_factory=list)
    on_failure_arn: str | None = None

    @classmethod
    def from_event(cls, function_id: str, function_arn: str, properties: dict[str, Any]) -> StreamSource:
        """A SAM `Type: DynamoDB` event's Properties."""
        return cls._from_properties(function_id, function_arn, properties["Stream"], properties)

    @classmethod
    def from_mapping(cls, function_id: str, function_arn: str, properties: dict[str, Any]) -> StreamSource:
        """An AWS::Lambda::EventSourceMapping's Properties: SAM's event under other names
        (EventSourceArn for Stream; FunctionName, already matched to `function_id`)."""
        return cls._from_properties(function_id, function_arn, properties["EventSourceArn"], properties)

    @classmethod
    def _from_properties(cls, function_id: str, function_arn: str, stream_arn: str,
                         properties: dict[str, Any]) -> StreamSource:
        on_failure = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        return cls(
            function_id=function_id,
            function_arn=function_arn,
            stream_arn=stream_arn,
            starting_position=str(properties.get("StartingPosition", "LATEST")),
            batch_size=int(properties.get("BatchSize", 100)),
            batching_window_s=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
            max_retries=int(properties.get("MaximumRetryAttempts", -1)),
            bisect=str(properties.get("BisectBatchOnFunctionError", "false")).lower() == "true",
            report_item_failures="ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or []),
            filters=parse_filters(properties.get("FilterCriteria")),
            on_failure_arn=on_failure,
        )


def is_dynamodb_stream_arn(arn: Any) -> bool:
    """arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>, what the poller can read."""
    return isinstance(arn, str) and arn.startswith("arn:") and ":dynamodb:" in arn and "/stream/" in arn


def mapping_enabled(properties: dict[str, Any]) -> bool:
    """A mapping (or SAM event) with `Enabled: false` exists but does not poll."""
    return str(properties.get("Enabled", True)).lower() != "false"


Invoke = Callable[[str, dict[str, Any]], Any]


class StreamPoller(threading.Thread):
    def __init__(
        self,
        source: StreamSource,
        streams_client: Any,
        sqs_client: Any,
        invoke: Invoke,
        queue_url_for_arn: Callable[[str], str | None],
        stop: threading.Event,
        retry_base_s: float = 0.25,
    ) -> None:
        super().__init__(name=f"stream-{source.function_id}", daemon=True)
        self.source = source
        self.streams = streams_client
        self.sqs = sqs_client
        self.invoke = invoke
        self.queue_url_for_arn = queue_url_for_arn
        self.stop_event = stop
        self.retry_base_s = retry_base_s
        self._iterators: dict[str, str] = {}
        self._positions: dict[str, str] = {}  # shard -> last sequence number fetched
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._due: dict[str, float] = {}
        self._next_refresh = 0.0
        self._polling = False
        self._seen_shards: set[str] = set()
        self._finished_shards: set[str] = set()

    # -- loop

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                if time.monotonic() >= self._next_refresh:
                    self._refresh_shards()
                fetched = any([self._fetch(shard_id) for shard_id in list(self._iterators)])
                self._dispatch()
            except Exception as exc:
                if self.stop_event.is_set():
                    return
                log.warning("stream poller %s: %s (retrying)", self.source.function_id, exc)
                self._iterators.clear()
                self._next_refresh = 0.0
                self.stop_event.wait(1.0)
                continue
            if not fetched:
                self.stop_event.wait(self._idle_wait())

    def _idle_wait(self) -> float:
        if not self._due:
            return POLL_INTERVAL_S
        return max(0.01, min(POLL_INTERVAL_S, min(self._due.values()) - time.monotonic()))

    def _refresh_shards(self) -> None:
        description = self.streams.describe_stream(StreamArn=self.source.stream_arn)["StreamDescription"]
        for shard in description.get("Shards") or []:
            shard_id = shard["ShardId"]
            if shard_id in self._iterators or shard_id in self._finished_shards:
                continue
            kwargs: dict[str, Any] = {"StreamArn": self.source.stream_arn, "ShardId": shard_id}
            if shard_id in self._positions:
                kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=self._positions[shard_id])
            elif self._polling and shard_id not in self._seen_shards:
                kwargs["ShardIteratorType"] = "TRIM_HORIZON"  # a shard born while we were polling
            elif shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber"):
                continue  # closed before we started: nothing LATEST/TRIM_HORIZON wants from it
            else:
                kwargs["ShardIteratorType"] = self.source.starting_position
            self._iterators[shard_id] = self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
            self._seen_shards.add(shard_id)
        self._polling = True
        self._next_refresh = time.monotonic() + SHARD_REFRESH_S

    def _fetch(self, shard_id: str) -> bool:
        iterator = self._iterators[shard_id]
        response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
        next_iterator = response.get("NextShardIterator")
        if next_iterator:
            self._iterators[shard_id] = next_iterator
        else:
            del self._iterators[shard_id]  # the shard is closed and fully read
            self._finished_shards.add(shard_id)
        raw_records = response.get("Records") or []
        if not raw_records:
            return False
        self._positions[shard_id] = raw_records[-1]["dynamodb"]["SequenceNumber"]
        records = drop_moto_upsert_artifacts(
            [lambda_stream_record(raw, self.source.stream_arn) for raw in raw_records]
        )
        wanted = [record for record in records if passes_filters(self.source.filters, record)]
        if wanted:
            buffer = self._buffers.setdefault(shard_id, [])
            if not buffer:
                self._due[shard_id] = time.monotonic() + self.source.batching_window_s
            buffer.extend(wanted)
        return True

    def _dispatch(self) -> None:
        for shard_id, buffer in list(self._buffers.items()):
            size = self.source.batch_size
            while len(buffer) >= size or (buffer and time.monotonic() >= self._due.get(shard_id, 0)):
                if self.stop_event.is_set():
                    return
                batch, buffer[:] = buffer[:size], buffer[size:]
                self.process_batch(shard_id, batch)
            if not buffer:
                self._buffers.pop(shard_id, None)
                self._due.pop(shard_id, None)

    # -- one batch, with Lambda's retry rules

    def process_batch(self, shard_id: str, records: list[dict[str, Any]], attempts: int = 0) -> None:
        """Invoke until the batch succeeds, retries run out (→ OnFailure) or the stack stops."""
        invocations = 0
        while records and not self.stop_event.is_set():
            invocations += 1
            failed_from, error = self._invoke_once(records)
            if failed_from is None:
                return
            if error and self.source.bisect and len(records) > 1:
                # Bisecting does not use up a retry; each half carries on with its own retries.
                half = len(records) // 2
                self.process_batch(shard_id, records[:half], attempts)
                self.process_batch(shard_id, records[half:], attempts)
                return
            records = records[failed_from:]
            attempts += 1
            if 0 <= self.source.max_retries < attempts:
                self._discard(shard_id, records, invocations, error)
                return
            self.stop_event.wait(min(self.retry_base_s * 2 ** (attempts - 1), 5.0))

    def _invoke_once(self, records: list[dict[str, Any]]) -> tuple[int | None, str | None]:
        """(index of the first record to retry or None on success, function error or None)."""
        try:
            result = self.invoke(self.source.function_id, {"Records": records})
        except StackStopping:
            return 0, None  # the batch stays unprocessed; the poller stops before retrying it
        except FunctionError as error:
            print(f"devicegate local: {self.source.function_id} failed on a stream batch: {error.error_type}: "
                  f"{error.message}\n{error.trace}".rstrip(), file=sys.stderr, flush=True)
            return 0, "Unhandled"
        except Exception:
            print(f"devicegate local: {self.source.function_id} failed on a stream batch", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return 0, "Unhandled"
        if not self.source.report_item_failures:
            return None, None
        try:
            return first_failed_index(result, records), None
        except InvalidBatchResponse as exc:
            print(f"devicegate local: {self.source.function_id}: {exc}; retrying the whole batch", file=sys.stderr)
            return 0, None

    def _discard(self, shard_id: str, records: list[dict[str, Any]], invocations: int, error: str | None) -> None:
        message = (
            f"devicegate local: {self.source.function_id} gave up on {len(records)} stream record(s) "
            f"{records[0]['dynamodb']['SequenceNumber']}..{records[-1]['dynamodb']['SequenceNumber']}"
        )
        destination = self.source.on_failure_arn
        url = self.queue_url_for_arn(destination) if destination else None
        if destination and url:
            body = failure_destination_record(
                records=records,
                shard_id=shard_id,
                stream_arn=self.source.stream_arn,
                function_arn=self.source.function_arn,
                invoke_count=invocations,
                function_error=error,
            )
            self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
            message += f"; described in {destination.rsplit(':', 1)[-1]}"
        elif destination:
            message += f"; OnFailure destination {destination} is not a local queue, dropped"
        print(message, file=sys.stderr, flush=True)
