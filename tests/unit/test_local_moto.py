"""moto as the local stack runs it (local_moto.py): FIFO deduplication within the queue's
DeduplicationScope, the stream read in process, connections to moto kept open."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest

from devicegate_local import moto as local_moto
from devicegate_local.streams import lambda_stream_record


@pytest.fixture
def sqs_as_the_local_stack_runs_it(aws_env, moto_patches_undone):
    """moto in this process with the stack's FIFO deduplication, undone afterwards."""
    from moto import mock_aws

    local_moto.deduplicate_fifo_queues_by_scope()
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _fifo_queue(sqs: Any, name: str, scope: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes={
        "FifoQueue": "true", "DeduplicationScope": scope,
        "FifoThroughputLimit": "perMessageGroupId" if scope == "messageGroup" else "perQueue"})["QueueUrl"]


def _send(sqs: Any, url: str, group: str, dedup: str, body: str) -> None:
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedup)


def _drain(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return sorted(bodies)
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_deduplication_id_is_scoped_by_message_group_when_the_queue_says_so(sqs_as_the_local_stack_runs_it):
    sqs = sqs_as_the_local_stack_runs_it
    # Given the events queue's settings: DeduplicationScope messageGroup (one group per device)
    url = _fifo_queue(sqs, "events.fifo", "messageGroup")
    # When two devices' messages carry the same deduplication id, and one of them is sent twice
    _send(sqs, url, "device-a", "same-id", "a")
    _send(sqs, url, "device-b", "same-id", "b")
    _send(sqs, url, "device-a", "same-id", "a again")
    # Then each group gets its message once, as SQS delivers them
    assert _drain(sqs, url) == ["a", "b"]


def test_a_queue_scoped_fifo_queue_deduplicates_across_groups(sqs_as_the_local_stack_runs_it):
    sqs = sqs_as_the_local_stack_runs_it
    url = _fifo_queue(sqs, "queue-scoped.fifo", "queue")
    _send(sqs, url, "device-a", "same-id", "a")
    _send(sqs, url, "device-b", "same-id", "b")
    assert _drain(sqs, url) == ["a"]


def test_a_deleted_message_still_deduplicates_its_id_for_five_minutes(sqs_as_the_local_stack_runs_it):
    sqs = sqs_as_the_local_stack_runs_it
    url = _fifo_queue(sqs, "events.fifo", "messageGroup")
    # Given a message that was sent, received and deleted
    _send(sqs, url, "device-a", "id-1", "first")
    assert _drain(sqs, url) == ["first"]
    # When a publisher sends it again (its first send's answer was lost)
    _send(sqs, url, "device-a", "id-1", "first, again")
    # Then SQS accepts the send and delivers nothing: the interval runs from the first send
    assert _drain(sqs, url) == []


def test_queue_attributes_are_still_read_whole(sqs_as_the_local_stack_runs_it):
    sqs = sqs_as_the_local_stack_runs_it
    url = _fifo_queue(sqs, "events.fifo", "messageGroup")
    _send(sqs, url, "device-a", "id-1", "x")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"
    assert attributes["DeduplicationScope"] == "messageGroup"


# --------------------------------------------------------------------------- the stream, in process


@pytest.fixture
def dynamodb(aws_env):
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="events", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
        yield client


def _read_all(streams: Any, arn: str) -> list[dict[str, Any]]:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = []
    while True:
        page = streams.get_records(ShardIterator=iterator, Limit=2)
        records += [lambda_stream_record(raw, arn) for raw in page["Records"]]
        if not page["Records"]:
            return records
        iterator = page["NextShardIterator"]


def test_the_stream_read_in_process_gives_the_records_getrecords_gives(dynamodb):
    arn = dynamodb.describe_table(TableName="events")["Table"]["LatestStreamArn"]
    # Given items of every shape the gateway writes: strings, numbers, binary, maps, lists
    for n in range(3):
        dynamodb.put_item(TableName="events", Item={
            "pk": {"S": f"E#{n}"}, "n": {"N": str(n)}, "b": {"B": b"\x00\xff"},
            "m": {"M": {"k": {"S": "v"}, "l": {"L": [{"N": "1"}, {"B": b"\x01"}]}}}})
    # When the stream is read in process and through the DynamoDB Streams API
    in_process = _read_all(local_moto.InProcessStreams(), arn)
    over_the_api = _read_all(boto3.client("dynamodbstreams", region_name="us-east-1"), arn)
    # Then the function gets the same event records, in the same order
    assert len(in_process) == 3
    assert json.dumps(in_process, sort_keys=True) == json.dumps(over_the_api, sort_keys=True)
    # And reading again from where the last read ended gives nothing new
    assert in_process[-1]["dynamodb"]["NewImage"]["b"] == {"B": "AP8="}


def test_the_stream_over_the_moto_process_socket_gives_the_same_records(dynamodb, tmp_path):
    from devicegate_local.transport import StreamsClient, TransportServer

    arn = dynamodb.describe_table(TableName="events")["Table"]["LatestStreamArn"]
    dynamodb.put_item(TableName="events", Item={"pk": {"S": "E#1"}, "b": {"B": b"\x00\xff"}, "n": {"N": "1.5"}})
    # Given the socket the stack's pollers read the stream through (moto runs in another process)
    server = TransportServer(lambda environ: ("404 Not Found", [], b""), str(tmp_path / "aws.sock"),
                             streams=local_moto.InProcessStreams())
    server.start()
    try:
        over_the_socket = _read_all(StreamsClient(server.path), arn)
    finally:
        server.stop()
    # Then the poller gets what it gets in process, binary values as base64 text
    assert json.dumps(over_the_socket) == json.dumps(_read_all(local_moto.InProcessStreams(), arn))
    assert over_the_socket[0]["dynamodb"]["NewImage"]["b"] == {"B": "AP8="}


# --------------------------------------------------------------------------- the server


def test_moto_keeps_a_connection_open_across_calls(aws_env, moto_patches_undone):
    # Given moto's server as the stack runs it
    server = local_moto.MotoServer("127.0.0.1", 0)
    accepted = []
    original = server._server.process_request

    def counting(request: Any, client_address: Any) -> None:
        accepted.append(client_address)
        original(request, client_address)

    server._server.process_request = counting  # type: ignore[method-assign]
    server.start()
    try:
        sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{server.port}")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        # When one client makes several calls, one after the other
        for n in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        # Then they all went over one connection (werkzeug's server closes it after each answer)
        assert len(accepted) == 1
        assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"]["ApproximateNumberOfMessages"] == "5"
    finally:
        server.stop()
    assert not any(thread.name == "moto" for thread in threading.enumerate())


def test_an_item_over_400_kb_is_still_refused(aws_env, moto_patches_undone):
    from botocore.exceptions import ClientError
    from moto import mock_aws
    # Given moto as the stack runs it, which measures a new item once instead of per attribute
    local_moto.skip_repeated_work()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        # When an item is over DynamoDB's 400 KB only with all its attributes together
        big = {"pk": {"S": "big"}, **{f"part{n}": {"S": "x" * 100_000} for n in range(5)}}
        # Then it is refused as DynamoDB refuses it, and one under the limit is stored
        with pytest.raises(ClientError, match="Item size has exceeded the maximum allowed size"):
            ddb.put_item(TableName="t", Item=big)
        ddb.put_item(TableName="t", Item={"pk": {"S": "small"}, "part": {"S": "x" * 100_000}})
        assert ddb.get_item(TableName="t", Key={"pk": {"S": "small"}})["Item"]["part"]["S"] == "x" * 100_000


def test_a_query_walking_a_table_while_items_are_put_is_answered(aws_env, moto_patches_undone):
    import sys

    # Threads switch far more often than every 5 ms, so a walk is interrupted by a put if it can be
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    # Given moto as the stack runs it, and a table with an index (a Query on it walks every item)
    server = local_moto.MotoServer("127.0.0.1", 0)
    server.start()
    endpoint = f"http://127.0.0.1:{server.port}"
    ddb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    ddb.create_table(
        TableName="walked", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": attribute, "AttributeType": "S"} for attribute in ("pk", "sk", "g")],
        GlobalSecondaryIndexes=[{"IndexName": "byg", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}])
    failures: list[str] = []
    stop = threading.Event()

    def put(writer: int) -> None:
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        n = 0
        while not stop.is_set():
            n += 1
            client.put_item(TableName="walked", Item={"pk": {"S": "same"}, "sk": {"S": f"{writer}-{n}"},
                                                     "g": {"S": "x"}})

    writers = [threading.Thread(target=put, args=(w,), daemon=True) for w in range(3)]
    for writer in writers:
        writer.start()
    try:
        # When the index is queried again and again while three clients add items
        for _ in range(150):
            try:
                ddb.query(TableName="walked", IndexName="byg", KeyConditionExpression="g = :g",
                          ExpressionAttributeValues={":g": {"S": "x"}}, Select="COUNT")
            except Exception as exc:  # what a race in moto becomes: a 500 botocore gives up on
                failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        sys.setswitchinterval(switch_interval)
        stop.set()
        for writer in writers:
            writer.join()
        server.stop()
    # Then every query is answered (moto's tables are walked and changed one call at a time)
    assert failures == []
