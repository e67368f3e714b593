"""Fixtures of the fault suite: one moto world per module, wiped between cases, and the injector.

The root `stack` fixture builds the template's resources for every test (~0.3 s); the fault
matrix has hundreds of cases, so here the world is built once per module and each case starts
from an empty table, bucket and queues instead, with every cached client, setting and pipeline
dropped as on a new Lambda execution environment. Tests take `stack` and `faults` by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devicegate_local.cfn_template import load_template
from devicegate_local.resources import Resolver, create_resources, function_specs, merged_environment
from tests.conftest import _clear_caches
from tests.faults.injector import Injector
from tests.support import ROOT, Stack

#: The commands function needs the vendor's access key (a template parameter without default).
ACCESS_KEY = "ak-demo"


class _Session:
    """The tests' own boto3 session, one client per service (Stack asks for one per read)."""

    def __init__(self, session: boto3.Session) -> None:
        self._session = session
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service)
        return self._clients[service]


@dataclass
class World:
    session: _Session
    created: Any
    timeouts: dict[str, float]  # function logical id -> its template Timeout
    injector: Injector
    stream: StreamReader


class StreamReader:
    """Stack.new_stream_records, with the stream's ARN and shards looked up once for the module
    (they never change) and the position carried from case to case, so that each case reads only
    its own records: the same records in the same shape, a few ms cheaper per read."""

    def __init__(self, session: _Session, table: str) -> None:
        self._streams = session.client("dynamodbstreams")
        self._arn = session.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self._shards = [s["ShardId"] for s in self._streams.describe_stream(
            StreamArn=self._arn)["StreamDescription"]["Shards"]]
        self._after: dict[str, str] = {}

    def trimmed(self) -> None:
        """The stream was trimmed (by the wipe): read from its new start."""
        self._after.clear()

    def read(self) -> list[dict[str, Any]]:
        records = []
        for shard in self._shards:
            after = self._after.get(shard)
            position = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after
                        else {"ShardIteratorType": "TRIM_HORIZON"})
            iterator = self._streams.get_shard_iterator(StreamArn=self._arn, ShardId=shard, **position)["ShardIterator"]
            while iterator:
                page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                if not page["Records"]:
                    break
                for record in page["Records"]:
                    record.setdefault("eventSourceARN", self._arn)
                    records.append(record)
                    self._after[shard] = record["dynamodb"]["SequenceNumber"]
                iterator = page.get("NextShardIterator")
        return records


class SqsClock:
    """Simulated seconds added to moto's SQS clock, so visibility timeouts pass without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(scope="module")
def world(request):
    """The module's moto world, built with the module's PARAMETERS (template parameter
    overrides, e.g. fan-out's ConsumerApps) if it has any."""
    from devicegate.infra import aws

    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true",
                           "POWERTOOLS_METRICS_NAMESPACE": "Devicegate", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                           # Cases purge the queues one after the other, well within moto's 60 s.
                           "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false"}.items():
            mp.setenv(key, value)
        for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            mp.delenv(key, raising=False)
        with mock_aws():
            session = _Session(boto3.Session(region_name="us-east-1"))
            resolver = Resolver(load_template(ROOT / "template.yaml"), getattr(request.module, "PARAMETERS", None))
            created = create_resources(resolver, session._session, token="dev-token")
            specs = function_specs(resolver, ROOT)
            for key, value in merged_environment(specs).items():
                mp.setenv(key, value)
            mp.setenv("JOINTECH_ACCESS_KEY", ACCESS_KEY)
            # One botocore session for the module, the injector wrapped around moto in it. Clients
            # are still created anew for every case (fresh retry quotas, fresh caches); only the
            # service models are parsed once instead of per case.
            _clear_caches()
            botocore_session = aws._session()
            injector = Injector()
            injector.install(botocore_session, mp)
            kept = cache(lambda: botocore_session)
            kept.cache_clear = lambda: None  # conftest's _clear_caches must not replace it
            mp.setattr(aws, "_session", kept)
            yield World(session, created, {s.logical_id: s.timeout_s for s in specs}, injector,
                        StreamReader(session, created.tables["EventsTable"]))
    _clear_caches()


@pytest.fixture
def sqs_clock(monkeypatch) -> SqsClock:
    import moto.sqs.models as sqs_models

    clock = SqsClock()
    seconds, millis = sqs_models.unix_time, sqs_models.unix_time_millis
    monkeypatch.setattr(sqs_models, "unix_time", lambda *a: seconds(*a) + clock.offset)
    monkeypatch.setattr(sqs_models, "unix_time_millis", lambda *a: millis(*a) + clock.offset * 1000)
    return clock


@pytest.fixture
def stack(world, sqs_clock) -> Stack:
    """The module's world, emptied: what a case stores and publishes is all there is."""
    _wipe(world)
    _clear_caches()
    created = world.created
    stack = Stack(session=world.session, table=created.tables["EventsTable"],  # type: ignore[arg-type]
                  queue_url=created.queues["EventsQueue"], bucket=created.buckets["PayloadBucket"],
                  secret_arn=created.secrets["JointechTokenSecret"], queues=dict(created.queues))
    stack.new_stream_records = world.stream.read  # type: ignore[method-assign]
    return stack


@pytest.fixture
def faults(world, stack) -> Injector:
    """The injector, nothing armed, its clock at zero."""
    world.injector.reset()
    return world.injector


def _wipe(world: World) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.iotdata.models import iotdata_backends

    session, created = world.session, world.created
    world.injector.reset()
    ddb = session.client("dynamodb")
    for table in created.tables.values():
        keys = [{"pk": i["pk"], "sk": i["sk"]} for page in ddb.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="pk, sk") for i in page["Items"]]
        for start in range(0, len(keys), 25):
            ddb.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": k}} for k in keys[start:start + 25]]})
        # The stream forgets every earlier case, as DynamoDB's trims it after 24 hours: moto
        # deep-copies a table, its stream included, on every TransactWriteItems, which would
        # otherwise get slower with every case of the module. Sequence numbers carry on.
        shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[table].stream_shard
        shard.starting_sequence_number += len(shard.items)
        shard.items = []
    world.stream.trimmed()
    s3 = session.client("s3")
    for bucket in created.buckets.values():
        found = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        if found:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in found]})
    sqs = session.client("sqs")
    for url in created.queues.values():
        sqs.purge_queue(QueueUrl=url)  # messages in flight and FIFO deduplication history too
    iotdata_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].published_payloads.clear()
    assert "AWS_ENDPOINT_URL" not in os.environ
