"""The functions' way to the AWS emulation (local_transport.py): botocore's requests through a
Unix socket to moto's app, answered as over HTTP."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from devicegate_local.functions import Invoker
from devicegate_local.moto import MotoServer
from devicegate_local.resources import FunctionSpec
from devicegate_local.transport import TransportServer

HANDLER = '''
import boto3


def handler(event, context):
    # moto's state is this test process's: each invocation makes its own resources
    bucket, queue, table = (f"transport-{event['run']}-{kind}" for kind in ("bucket", "queue", "table"))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    # A key that needs quoting, and metadata whose name keeps its underscore (moto's special case)
    s3.put_object(Bucket=bucket, Key="a b/ü.json", Body=b'{"x": 1}', Metadata={"my_key": "v"})
    head = s3.head_object(Bucket=bucket, Key="a b/ü.json")
    body = s3.get_object(Bucket=bucket, Key="a b/ü.json")["Body"].read().decode()
    sqs = boto3.client("sqs")
    try:
        sqs.get_queue_url(QueueName="no-such-queue")
        missing = None
    except sqs.exceptions.QueueDoesNotExist as error:
        missing = error.response["Error"]["Code"]
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    ddb = boto3.client("dynamodb")
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    item = {"pk": {"S": "once"}}
    ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    try:
        ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        again = None
    except ddb.exceptions.ConditionalCheckFailedException as error:
        again = error.response["Error"]["Code"]
    return {"metadata": head["Metadata"], "length": head["ContentLength"], "body": body, "missing": missing,
            "received": sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"], "again": again}
'''


@pytest.fixture
def moto_with_transport(tmp_path: Path, aws_env, moto_patches_undone) -> Any:
    server = MotoServer("127.0.0.1", 0)
    accepted: list[Any] = []
    original = server._server.process_request

    def counting(request: Any, client_address: Any) -> None:
        accepted.append(client_address)
        original(request, client_address)

    server._server.process_request = counting  # type: ignore[method-assign]
    server.start()
    transport = TransportServer(server.dispatch, str(tmp_path / "aws.sock"))
    transport.start()
    yield f"http://127.0.0.1:{server.port}", transport.path, accepted
    transport.stop()
    server.stop()


def _invoker(tmp_path: Path, endpoint: str, transport: str | None) -> Invoker:
    code = tmp_path / "Fn"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(HANDLER), encoding="utf-8")
    spec = FunctionSpec(logical_id="Fn", name="devicegate-local-Fn", code_dir=code, handler="app.handler",
                        memory_mb=128, timeout_s=30, environment={}, events={})
    return Invoker([spec], {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing"}, transport=transport)


def test_a_functions_aws_calls_go_through_the_socket_and_are_answered_as_over_http(tmp_path, moto_with_transport):
    endpoint, socket_path, accepted = moto_with_transport
    invoke = _invoker(tmp_path, endpoint, socket_path)
    try:
        # When a function calls S3, SQS and DynamoDB (successes, errors, a streamed body)
        result = invoke("Fn", {"run": "socket"})
    finally:
        invoke.stop(grace_s=1)
    # Then botocore in the function got moto's answers, parsed as they are over HTTP
    assert result == {"metadata": {"my_key": "v"}, "length": 8, "body": '{"x": 1}', "missing":
                      "AWS.SimpleQueueService.NonExistentQueue", "received": "hello",
                      "again": "ConditionalCheckFailedException"}
    # And none of them went over HTTP to moto's server
    assert accepted == []


def test_without_the_socket_a_function_calls_moto_over_http(tmp_path, moto_with_transport):
    endpoint, _, accepted = moto_with_transport
    invoke = _invoker(tmp_path, endpoint, None)
    try:
        assert invoke("Fn", {"run": "http"})["received"] == "hello"
    finally:
        invoke.stop(grace_s=1)
    assert accepted
