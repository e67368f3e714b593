"""Fixtures: an AWS emulation holding exactly the resources template.yaml declares."""

from __future__ import annotations

import os

import boto3
import pytest
from moto import mock_aws

from devicegate_local.cfn_template import load_template
from devicegate_local.resources import Resolver, create_resources, function_specs, merged_environment
from tests.support import ROOT, Stack, new_environment

TEMPLATE = ROOT / "template.yaml"


def _clear_caches() -> None:
    # Lambda keeps clients and settings for the life of an environment; each test is a new one.
    new_environment()


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true",
                       "POWERTOOLS_METRICS_NAMESPACE": "Devicegate",
                       # botocore now routes streams to account-scoped hosts moto does not match.
                       "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def stack(aws_env, monkeypatch):
    """The template's tables, queues, bucket and secrets in moto; functions' env applied."""
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        resolver = Resolver(load_template(TEMPLATE))
        created = create_resources(resolver, session, token="dev-token")
        for key, value in merged_environment(function_specs(resolver, ROOT)).items():
            monkeypatch.setenv(key, value)
        _clear_caches()
        yield Stack(
            session=session,
            table=created.tables["EventsTable"],
            queue_url=created.queues["EventsQueue"],
            bucket=created.buckets["PayloadBucket"],
            secret_arn=created.secrets["JointechTokenSecret"],
            queues=dict(created.queues),
        )
    _clear_caches()
    assert "AWS_ENDPOINT_URL" not in os.environ


@pytest.fixture
def logs(capsys):
    """Everything the functions write: the Powertools logger's stream (bound at import, so capsys
    alone would miss it) plus stdout/stderr (EMF metrics). Call it to read what was written."""
    import io

    from devicegate.infra.observability import logger

    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)

    def read() -> str:
        captured = capsys.readouterr()
        return buffer.getvalue() + captured.out + captured.err

    yield read
    handler.setStream(previous)


def put_moto_back_after(patch: pytest.MonkeyPatch) -> None:
    """The local stack patches moto's classes for its own process (devicegate_local.moto: FIFO
    deduplication by scope, streams kept through cancelled transactions, work done once; and
    moto_reads' Query and BatchGetItem); a test that builds that moto server here puts them back
    afterwards, or every later test in the session
    runs on the stack's moto (the fault matrix then found its queue one message short)."""
    import moto.backends
    from moto.core import responses
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs.models import Queue, SQSBackend

    for owner, names in (
            (DynamoDBBackend, ("transact_write_items",)),
            (DynamoDBStreamsBackend, ("get_shard_iterator", "get_records")),
            (Queue, ("add_message", "attributes", "pending_messages", "pending_message_groups")),
            (SQSBackend, ("send_message", "send_message_batch", "is_message_valid_based_on_retention_period")),
            (Item, ("__init__",)),
            (ConditionExpressionParser, ("parse",)),
            (Table, ("all_items", "query")),  # devicegate_local.moto_reads
            (DynamoHandler, ("query", "batch_get_item", "get_item", "call_action", "put_item", "update_item",
                             "delete_item", "batch_write_item", "transact_write_items")),
            (DomainDispatcherApplication, ("get_backend_for_host",)),
            (responses, ("method_names_from_class", "gen_amzn_requestid_long")),
            (moto.backends, ("list_of_moto_modules",))):
        for name in names:
            patch.setattr(owner, name, vars(owner)[name])


@pytest.fixture
def moto_patches_undone(monkeypatch):
    put_moto_back_after(monkeypatch)


@pytest.fixture(scope="module")
def moto_patches_undone_for_the_module():
    with pytest.MonkeyPatch.context() as patch:
        put_moto_back_after(patch)
        yield
