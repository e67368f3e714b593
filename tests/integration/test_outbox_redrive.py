"""An outage of the queue or the table that outlasts the outbox's retry budget heals by itself.

The stream mapping (template OutboxStreamMapping) retries a failing batch MaximumRetryAttempts
times, then parks it in OutboxFailureQueue; the outbox's own schedule (OutboxRedrive) re-reads
parked batches from the stream and publishes them once the dependency answers again. These
tests play that timeline on a simulated clock: Lambda's retries a few seconds apart, a 60 s
outage, the schedule every minute.
"""

from __future__ import annotations

import json

import pytest

from devicegate_local.cfn_template import load_template
from functions.jointech_webhook import app as webhook_app
from functions.outbox import app as outbox_app
from tests.support import ROOT, context, load_event, with_body

MAPPING = load_template(ROOT / "template.yaml")["Resources"]["OutboxStreamMapping"]["Properties"]
RETRY_PAUSE_S = 3  # Lambda retries a stream batch within seconds; the exact backoff is not documented
OUTAGE_S = 60
SCHEDULE_S = 60


class Clock:
    """Simulated seconds since the test began; moto's SQS reads it too, so visibility timeouts and
    deduplication windows pass as the simulated minutes do."""

    def __init__(self) -> None:
        self.now = 0.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    import moto.sqs.models as sqs_models

    clock = Clock()
    real_seconds, real_millis = sqs_models.unix_time, sqs_models.unix_time_millis
    monkeypatch.setattr(sqs_models, "unix_time", lambda *a: real_seconds(*a) + clock.now)
    monkeypatch.setattr(sqs_models, "unix_time_millis", lambda *a: real_millis(*a) + clock.now * 1000)
    return clock


class Outage:
    """Every call of the chosen operations fails as if the service were unreachable, while the
    simulated clock is inside the outage window."""

    def __init__(self, clock: Clock, until: float) -> None:
        self.clock, self.until, self.refused = clock, until, 0

    def __call__(self, **kwargs):
        if self.clock.now < self.until:
            from botocore.exceptions import EndpointConnectionError

            self.refused += 1
            raise EndpointConnectionError(endpoint_url="https://unreachable.invalid")
        return None


def store_locations(stack, device: str, count: int) -> list[str]:
    template = load_event("jointech/http-webhook-location.json")
    record = json.loads(template["body"])
    for n in range(count):
        body = dict(record, assetId=device, gpsTime=f"2025-02-07 10:{n:02d}:00", speed=n)
        response = webhook_app.lambda_handler(with_body(template, json.dumps(body)), context("JointechWebhookFunction"))
        assert response["statusCode"] == 200
    return [e["eventId"] for e in stack.event_items() if e["deviceId"] == device]


def failure_destination_record(records: list[dict], shard_id: str, stream_arn: str) -> dict:
    """What Lambda sends an OnFailure destination for a stream batch it gave up on (the fields
    the redrive reads; Lambda adds request and response context)."""
    return {"version": "1.0", "requestContext": {"condition": "RetryAttemptsExhausted"},
            "DDBStreamBatchInfo": {"shardId": shard_id, "streamArn": stream_arn, "batchSize": len(records),
                                   "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                                   "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"]}}


def deliver_like_lambda(stack, records: list[dict], clock: Clock) -> bool:
    """The stream mapping: invoke, retry from the first reported failure, park after the budget.
    True when the batch was done, False when it went to OutboxFailureQueue."""
    shard = stack.session.client("dynamodbstreams").describe_stream(
        StreamArn=records[0]["eventSourceARN"])["StreamDescription"]["Shards"][0]["ShardId"]
    batch = records
    for _ in range(MAPPING["MaximumRetryAttempts"] + 1):
        result = outbox_app.lambda_handler({"Records": batch}, context("OutboxFunction"))
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        if not failed:
            return True
        batch = batch[next(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed):]
        clock.advance(RETRY_PAUSE_S)
    sqs = stack.session.client("sqs")
    url = stack.queues["OutboxFailureQueue"]
    parked = failure_destination_record(batch, shard, batch[0]["eventSourceARN"])
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(parked))
    return False


def scheduled_redrive() -> dict:
    from devicegate_local.lambda_context import LambdaContext

    timeout = load_template(ROOT / "template.yaml")["Resources"]["OutboxFunction"]["Properties"]["Timeout"]
    return outbox_app.lambda_handler(load_event("outbox/scheduled-redrive.json"),
                                     LambdaContext.for_function("OutboxFunction", timeout_s=timeout))


@pytest.mark.parametrize("service, operations", [
    ("sqs", ("SendMessageBatch", "ReceiveMessage")),
    ("dynamodb", ("BatchGetItem", "PutItem", "TransactWriteItems")),
])
def test_a_60_second_outage_is_redriven_once_the_dependency_is_back(stack, clock, service, operations):
    from devicegate.infra.aws import client

    # Given 12 stored events of one device (two SQS chunks), and the outbox's dependency down for
    # 60 s from now
    event_ids = store_locations(stack, "8022300777", 12)
    assert len(event_ids) == 12
    outage = Outage(clock, until=OUTAGE_S)
    for operation in operations:
        client(service).meta.events.register_first(f"before-send.{service}.{operation}", outage)

    # When the stream mapping delivers the batch and exhausts its retries during the outage
    done = deliver_like_lambda(stack, stack.new_stream_records(), clock)
    # Then the batch is parked, nothing reached the queue yet
    assert not done and outage.refused > 0 and clock.now < OUTAGE_S
    assert stack.queue_messages() == []

    # When the schedule fires once inside the outage, and once after it
    clock.now = SCHEDULE_S - 15
    during = scheduled_redrive()
    clock.now = SCHEDULE_S + OUTAGE_S
    after = scheduled_redrive()

    # Then the first run could not publish and kept the batch; the second published it
    assert during["redriven"] == 0
    assert after == {"redriven": 1, "waiting": 0}
    # And every event is on the queue exactly once, and the failure queue is empty
    assert sorted(m["id"] for m in stack.queue_messages()) == sorted(event_ids)
    assert stack.messages_in("OutboxFailureQueue") == 0
    # And the device's state is the newest event's (the redrive ran the whole outbox, not only SQS)
    summary = stack.state("jointech", "8022300777")["summary"]
    assert summary["value"]["lastSeen"].startswith("2025-02-07T10:11:00")
    assert summary["heardAt"]
    # And a later run finds nothing to do and sends nothing again
    assert scheduled_redrive() == {"redriven": 0, "waiting": 0}
    assert stack.queue_messages() == []


def test_a_parked_batch_partly_published_before_the_outage_is_not_published_twice(stack, clock):
    from devicegate.infra.aws import client

    # Given 12 events; the queue takes the first chunk of 10, then goes down for 60 s
    event_ids = store_locations(stack, "8022300778", 12)
    calls = {"n": 0}

    def second_chunk_onwards(**kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            return Outage(clock, until=OUTAGE_S)(**kwargs)
        return None

    client("sqs").meta.events.register_first("before-send.sqs.SendMessageBatch", second_chunk_onwards)
    # When the stream mapping gives up and the schedule redrives after the outage
    assert not deliver_like_lambda(stack, stack.new_stream_records(), clock)
    first = stack.queue_messages()
    clock.now = SCHEDULE_S + OUTAGE_S
    assert scheduled_redrive() == {"redriven": 1, "waiting": 0}
    # Then the first ten were published once before the outage, the last two once after it
    later = stack.queue_messages()
    assert len(first) == 10 and len(later) == 2
    assert sorted(m["id"] for m in first + later) == sorted(event_ids)


def test_a_failure_record_whose_events_left_the_stream_waits_for_a_person(stack):
    from botocore.exceptions import ClientError

    from devicegate.infra.aws import client

    # Given a parked batch whose records the stream no longer holds (older than its 24 hours:
    # DynamoDB Streams answers TrimmedDataAccessException)
    sqs = stack.session.client("sqs")
    url = stack.queues["OutboxFailureQueue"]
    store_locations(stack, "8022300779", 1)
    [record] = stack.new_stream_records()
    shard = stack.session.client("dynamodbstreams").describe_stream(
        StreamArn=record["eventSourceARN"])["StreamDescription"]["Shards"][0]["ShardId"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(
        failure_destination_record([record], shard, record["eventSourceARN"])))

    def trimmed(**kwargs):
        raise ClientError({"Error": {"Code": "TrimmedDataAccessException", "Message": "trimmed"}}, "GetShardIterator")

    client("dynamodbstreams").meta.events.register_first("before-send.dynamodbstreams.GetShardIterator", trimmed)
    # When the schedule runs
    result = scheduled_redrive()
    # Then nothing is published, and the record stays for the alarm (it is not deleted)
    assert result == {"redriven": 0, "waiting": 1}
    assert stack.queue_messages() == []
    # (hidden for the redrive's visibility timeout, then visible again for the next run)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
