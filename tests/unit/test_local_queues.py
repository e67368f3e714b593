"""The local stack's SQS event source mapping (devicegate_local.queues) against moto: Lambda's
SQS event shape, BatchSize, deletes for successes only (ReportBatchItemFailures), a failed
message retried after the visibility timeout and holding back its FIFO group meanwhile."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devicegate_local import moto as local_moto
from devicegate_local.functions import FunctionError
from devicegate_local.queues import SqsPoller, SqsSource, sqs_sources
from devicegate_local.resources import FunctionSpec, Resolver
from tests.conftest import put_moto_back_after


@pytest.fixture
def sqs(aws_env, monkeypatch):
    # The local stack's moto: its FIFO groups come back in order after a visibility timeout.
    put_moto_back_after(monkeypatch)
    local_moto.redeliver_fifo_groups_in_order()
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _queue(sqs: Any, visibility: int = 1) -> tuple[str, str]:
    url = sqs.create_queue(QueueName="app.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": str(visibility)})[
        "QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _send(sqs: Any, url: str, body: str, group: str) -> str:
    return sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body,
                            MessageAttributes={"type": {"DataType": "String", "StringValue": f"t.{body}"}})["MessageId"]


class Function:
    """A function that fails the bodies in `failing` (and, as SqsFifoPartialProcessor with
    skip_group_on_error does, the later messages of their group) while `failing` holds them."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.failing = failing or set()
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, function_id: str, event: dict[str, Any]) -> Any:
        records = event["Records"]
        self.batches.append(records)
        failed_groups, failures = set(), []
        for record in records:
            group = record["attributes"]["MessageGroupId"]
            if record["body"] in self.failing or group in failed_groups:
                failed_groups.add(group)
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}


def _poller(sqs: Any, url: str, arn: str, invoke: Any, batch: int = 10) -> SqsPoller:
    return SqsPoller(SqsSource("App", arn, batch, report_item_failures=True), sqs, url, invoke, threading.Event())


def _left(sqs: Any, url: str) -> int:
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in got.values())


def test_the_event_has_lambdas_sqs_record_shape(sqs):
    url, arn = _queue(sqs)
    sent = _send(sqs, url, "a1", "dev-a")
    function = Function()
    assert _poller(sqs, url, arn, function).poll_once(wait_s=0) == 1
    [record] = function.batches[0]
    assert record["messageId"] == sent and record["body"] == "a1" and record["receiptHandle"]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn and record["awsRegion"] == "us-east-1"
    assert record["attributes"]["MessageGroupId"] == "dev-a"
    assert record["attributes"]["MessageDeduplicationId"] == "a1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["type"]["stringValue"] == "t.a1"
    assert record["messageAttributes"]["type"]["dataType"] == "String"
    assert _left(sqs, url) == 0


def test_a_failed_message_is_kept_blocks_its_group_and_is_retried_after_the_visibility_timeout(sqs):
    # Given two messages of one device and one of another, the first of which fails once
    url, arn = _queue(sqs, visibility=1)
    for body, group in (("a1", "dev-a"), ("a2", "dev-a"), ("b1", "dev-b")):
        _send(sqs, url, body, group)
    function = Function({"a1"})
    poller = _poller(sqs, url, arn, function)
    # When the poller takes them: the other device's is deleted, the failed group's are kept
    assert poller.poll_once(wait_s=0) == 3
    assert _left(sqs, url) == 2
    # Then nothing of the failed group comes back before the visibility timeout
    assert poller.poll_once(wait_s=0) == 0
    # ... and after it, both come back, in order, received a second time, and succeed
    function.failing.clear()
    time.sleep(1.2)
    assert poller.poll_once(wait_s=0) == 2
    assert [(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in function.batches[-1]] == [
        ("a1", "2"), ("a2", "2")]
    assert _left(sqs, url) == 0


def test_batch_size_is_honoured(sqs):
    url, arn = _queue(sqs)
    for n in range(5):
        _send(sqs, url, f"m{n}", f"dev-{n}")
    function = Function()
    poller = _poller(sqs, url, arn, function, batch=2)
    while poller.poll_once(wait_s=0):
        pass
    assert [len(b) for b in function.batches] == [2, 2, 1] and _left(sqs, url) == 0


def test_a_function_error_or_an_invalid_answer_deletes_nothing(sqs):
    url, arn = _queue(sqs, visibility=30)
    _send(sqs, url, "a1", "dev-a")
    _send(sqs, url, "b1", "dev-b")

    def raises(function_id: str, event: dict[str, Any]) -> Any:
        raise FunctionError("App", "ValueError", "boom")

    assert _poller(sqs, url, arn, raises).poll_once(wait_s=0) == 2
    assert _left(sqs, url) == 2
    url2, arn2 = sqs.create_queue(QueueName="other.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"], arn
    _send(sqs, url2, "c1", "dev-c")
    assert _poller(sqs, url2, arn2, lambda f, e: {"batchItemFailures": [{"itemIdentifier": "nope"}]}).poll_once(
        wait_s=0) == 1
    assert _left(sqs, url2) == 1


def test_sqs_events_of_the_template_become_sources():
    spec = FunctionSpec("Consumer", "c", None, "app.h", 128, 3, {}, {  # type: ignore[arg-type]
        "Q": {"Type": "SQS", "Properties": {"Queue": "arn:aws:sqs:us-east-1:1:q.fifo", "BatchSize": 5,
                                            "FunctionResponseTypes": ["ReportBatchItemFailures"]}},
        "Off": {"Type": "SQS", "Properties": {"Queue": "arn:aws:sqs:us-east-1:1:r", "Enabled": False}},
        "Api": {"Type": "HttpApi", "Properties": {}}})
    assert sqs_sources([spec]) == [SqsSource("Consumer", "arn:aws:sqs:us-east-1:1:q.fifo", 5, True)]
    # ... and so do a template's mappings on a queue (not those on a stream: streams.py plays them)
    template = {"Parameters": {"Q": {"Type": "String", "Default": "arn:aws:sqs:us-east-1:1:app.fifo"}},
                "Resources": {
                    "Fn": {"Type": "AWS::Serverless::Function"},
                    "OnQueue": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
                        "EventSourceArn": {"Ref": "Q"}, "FunctionName": {"Ref": "Fn"}, "BatchSize": 3}},
                    "OnStream": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
                        "EventSourceArn": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x", "FunctionName": {"Ref": "Fn"}}}}}
    function = FunctionSpec("Fn", "devicegate-local-Fn", None, "app.h", 128, 3, {}, {})  # type: ignore[arg-type]
    assert sqs_sources([function], [Resolver(template)]) == [
        SqsSource("Fn", "arn:aws:sqs:us-east-1:1:app.fifo", 3, False)]


@pytest.fixture
def gateway(aws_env):
    """The gateway's template, its resources created in moto (what its outputs resolve to)."""
    from devicegate_local.cfn_template import load_template
    from devicegate_local.resources import create_resources
    from tests.support import ROOT

    with mock_aws():
        resolver = Resolver(load_template(ROOT / "template.yaml"))
        create_resources(resolver, boto3.Session(region_name="us-east-1"), token="dev-token")
        yield resolver


CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "consumer" / "template.yaml"


def test_an_apps_parameters_take_the_gateways_outputs_of_their_name(gateway):
    from devicegate_local.stack import load_apps

    [(path, app)] = load_apps([CONSUMER], [], gateway)
    assert path == CONSUMER and app.overrides == {
        "EventsQueueArn": "arn:aws:sqs:us-east-1:123456789012:devicegate-local-EventsQueue.fifo",
        "EventsTableName": "devicegate-local-EventsTable", "AppReadPolicyArn": "devicegate-local-AppReadPolicy",
        "DevicegateLayerArn": "devicegate-local-SharedLayer"}
    [(_, other)] = load_apps([CONSUMER], ["EventsQueueArn=arn:aws:sqs:us-east-1:123456789012:mine.fifo"], gateway)
    assert other.overrides["EventsQueueArn"] == "arn:aws:sqs:us-east-1:123456789012:mine.fifo"


@pytest.mark.parametrize("pairs, says", [
    (["Nope=1"], "--app-param Nope: no --app template declares it"),
    (["EventsQueueArn"], "expected NAME=VALUE"),
])
def test_an_app_parameter_no_template_takes_is_a_mistake(gateway, pairs, says):
    from devicegate_local.stack import StartupError, load_apps

    with pytest.raises(StartupError, match=says):
        load_apps([CONSUMER], pairs, gateway)


def test_an_app_needs_a_value_for_every_parameter_and_logical_ids_of_its_own(gateway, tmp_path):
    from devicegate_local.stack import StartupError, load_apps

    lonely = tmp_path / "template.yaml"
    lonely.write_text("Parameters:\n  Unheard:\n    Type: String\nResources: {}\n")
    with pytest.raises(StartupError, match="no value for Unheard"):
        load_apps([lonely], [], gateway)
    clash = tmp_path / "clash.yaml"
    clash.write_text("Resources:\n  EventsQueue:\n    Type: AWS::SQS::Queue\n")
    with pytest.raises(StartupError, match="EventsQueue also in the gateway's template"):
        load_apps([clash], [], gateway)
