"""In-memory AWS for benchmarks, at two depths:

- `AwsStub`: real boto3 clients (request building, signing, parsing all run), every HTTP request
  answered in process by a botocore `before-send` hook, which also counts the round trips;
- `FakeClients`: client objects whose methods answer directly, so only devicegate's own code is
  measured (the figure the warm-cost target is about).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable

from botocore.awsrequest import AWSResponse

SECRET = json.dumps({"current": "bench-token-0001"})


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


# `name = :value` and `name = if_not_exists(name, :value)` in an UpdateExpression's SET clause: the
# forms the webhooks' updates use (nested paths, ADD and REMOVE are left out: nothing reads them back).
_ASSIGNMENT = re.compile(r"([#\w]+)\s*=\s*(if_not_exists\(\s*[#\w]+\s*,\s*)?(:\w+)")


def _by_key(items: Iterable[dict]) -> dict[tuple[str, str], dict]:
    return {(item["pk"]["S"], item["sk"]["S"]): item for item in items}


class AwsStub:
    """`items`: DynamoDB items (attribute format) that GetItem finds, such as a camera's
    configuration item; UpdateItem keeps its own items there too, so that ReturnValues ALL_OLD
    hands back what an earlier call wrote (the first part of a record sent in parts)."""

    def __init__(self, items: Iterable[dict] = ()) -> None:
        self.calls: Counter[str] = Counter()
        self.keys: set[tuple[str, str]] = set()
        self.items = _by_key(items)

    def total(self) -> int:
        return sum(self.calls.values())

    def attach(self, client) -> None:
        client.meta.events.register("before-send", self._answer)

    def _answer(self, request, **_):
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        operation = target.rsplit(".", 1)[-1]
        if not operation:  # S3 is REST, not JSON-RPC: the method names the call
            operation = {"PUT": "PutObject", "GET": "GetObject"}.get(request.method, request.method)
        self.calls[operation] += 1
        status, body = 200, {}
        if operation == "PutItem":
            item = json.loads(request.body)["Item"]
            key = (item["pk"]["S"], item["sk"]["S"])  # the table's whole key, as the condition sees it
            if key in self.keys:
                status, body = 400, {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                                     "message": "The conditional request failed"}
            self.keys.add(key)
        elif operation == "GetItem":
            key = json.loads(request.body)["Key"]
            item = self.items.get((key["pk"]["S"], key["sk"]["S"]))
            body = {"Item": item} if item is not None else {}  # {}: no such item, as DynamoDB answers
        elif operation == "UpdateItem":
            body = self._update(json.loads(request.body))
        elif operation == "GetSecretValue":
            body = {"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench", "Name": "bench",
                    "SecretString": SECRET, "VersionId": "v1"}
        if operation == "PutObject":  # REST: an empty body with an ETag, as S3 answers
            return AWSResponse(request.url, 200, {"etag": '"bench"', "content-length": "0"}, _Raw(b""))
        payload = json.dumps(body).encode()
        return AWSResponse(request.url, status, {"content-type": "application/x-amz-json-1.0"}, _Raw(payload))

    def _update(self, call: dict) -> dict:
        # Just enough of UpdateItem for the round-trip counts to follow the real code path: the
        # SET assignments are applied (if_not_exists honoured), and ALL_OLD returns the item as
        # it was. Conditions are not evaluated: on the pushes benchmarked they all hold (a state
        # never older than the pushed one, a quarantine call never retried by botocore).
        key = (call["Key"]["pk"]["S"], call["Key"]["sk"]["S"])
        old = self.items.get(key)
        item = dict(old) if old is not None else dict(call["Key"])
        names = call.get("ExpressionAttributeNames", {})
        values = call.get("ExpressionAttributeValues", {})
        for name, if_not_exists, value in _ASSIGNMENT.findall(call.get("UpdateExpression", "")):
            name = names.get(name, name)
            if not (if_not_exists and name in item):
                item[name] = values[value]
        self.items[key] = item
        return {"Attributes": old} if call.get("ReturnValues") == "ALL_OLD" and old is not None else {}


def install(stub: AwsStub) -> None:
    """Make devicegate's cached client factory hand out stubbed clients."""
    from devicegate.infra import aws

    real = aws.client.__wrapped__

    def stubbed(service: str, deadline_s: float | None = None):
        client = real(service, deadline_s)
        stub.attach(client)
        return client

    aws.client.cache_clear()
    aws.client = __import__("functools").cache(stubbed)
    import devicegate.ingest.wiring as runtime

    runtime.client = aws.client


class _FakeDynamo:
    def __init__(self, items: Iterable[dict] = ()) -> None:
        self.keys: set[tuple[str, str]] = set()
        self.items = _by_key(items)

    def get_item(self, **kwargs):
        item = self.items.get((kwargs["Key"]["pk"]["S"], kwargs["Key"]["sk"]["S"]))
        return {"Item": item} if item is not None else {}

    def put_item(self, **kwargs):
        key = (kwargs["Item"]["pk"]["S"], kwargs["Item"]["sk"]["S"])  # the table's whole key
        if key in self.keys:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "PutItem")
        self.keys.add(key)
        return {}

    def update_item(self, **kwargs):
        return {}


class _FakeS3:
    def put_object(self, **kwargs):
        return {}


class _FakeSecrets:
    def get_secret_value(self, **kwargs):
        return {"SecretString": SECRET}


def install_fakes(items: Iterable[dict] = ()) -> None:
    import devicegate.ingest.wiring as runtime
    from devicegate.infra import aws

    fakes = {"dynamodb": _FakeDynamo(items), "secretsmanager": _FakeSecrets(), "s3": _FakeS3()}
    aws.client = runtime.client = lambda service, deadline_s=None: fakes[service]
