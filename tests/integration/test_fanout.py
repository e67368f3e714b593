"""Every published event carries its routing attributes, and with fan-out (ConsumerApps) every
app's queue and EventsQueue each get every event once: through SNS FIFO with raw delivery, on moto
built from template.yaml with the parameter set, as `sam deploy --parameter-overrides` would."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from moto import mock_aws

from devicegate.infra import aws
from devicegate.outbox import wiring as outbox_wiring
from devicegate_local.cfn_template import load_template
from devicegate_local.resources import Resolver, create_resources, function_specs, merged_environment
from functions.jointech_webhook import app as webhook_app
from functions.outbox import app as outbox_app
from tests.conftest import TEMPLATE, _clear_caches
from tests.support import ROOT, Stack, context, load_event, valid_message, with_body

APPS = ("billing", "dashboard")
DEVICE = "8022300999"


@pytest.fixture
def fanout(aws_env, monkeypatch):
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        resolver = Resolver(load_template(TEMPLATE), {"ConsumerApps": ",".join(APPS)})
        created = create_resources(resolver, session, token="dev-token")
        for key, value in merged_environment(function_specs(resolver, ROOT)).items():
            monkeypatch.setenv(key, value)
        _clear_caches()
        yield Stack(session=session, table=created.tables["EventsTable"], queue_url=created.queues["EventsQueue"],
                    bucket=created.buckets["PayloadBucket"], secret_arn=created.secrets["JointechTokenSecret"],
                    queues=dict(created.queues))
    _clear_caches()


def store_locations(count: int) -> None:
    template = load_event("jointech/http-webhook-location.json")
    record = json.loads(template["body"])
    for n in range(count):
        body = dict(record, assetId=DEVICE, gpsTime=f"2025-02-07 10:{n:02d}:00", speed=n)
        assert webhook_app.lambda_handler(with_body(template, json.dumps(body)),
                                          context("JointechWebhookFunction"))["statusCode"] == 200


def drain(stack: Stack, queue: str) -> list[tuple[dict, dict[str, str]]]:
    """(body, attributes) of every message on the queue (by logical id), deleting them."""
    sqs, url, out = stack.session.client("sqs"), stack.queues[queue], []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                          WaitTimeSeconds=0).get("Messages", []):
        for m in messages:
            out.append((valid_message(json.loads(m["Body"])),
                        {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def assert_attributes(received: list[tuple[dict, dict[str, str]]]) -> None:
    for body, attributes in received:
        assert attributes == {"type": body["type"], "vendor": "jointech", "device": DEVICE}
        assert attributes["type"] == "devicegate.jointech.location"


class FailingEntries:
    """A client whose next batch call refuses the entries at the given positions (the service's
    Failed list), or, with lose_answer, sends everything and then loses the answer."""

    def __init__(self, real, operation: str, refuse: tuple[int, ...] = (), lose_answer: bool = False):
        self.real, self.operation, self.refuse, self.lose_answer, self.calls = real, operation, refuse, lose_answer, 0

    def __getattr__(self, name):
        real = getattr(self.real, name)
        if name != self.operation:
            return real

        def call(**kwargs):
            self.calls += 1
            if self.calls > 1:
                return real(**kwargs)
            key = "PublishBatchRequestEntries" if "PublishBatchRequestEntries" in kwargs else "Entries"
            if self.lose_answer:
                real(**kwargs)
                from botocore.exceptions import ReadTimeoutError

                raise ReadTimeoutError(endpoint_url="https://lost.invalid")
            kept = [e for i, e in enumerate(kwargs[key]) if i not in self.refuse]
            answer = real(**dict(kwargs, **{key: kept})) if kept else {"Successful": []}
            return dict(answer, Failed=[{"Id": kwargs[key][i]["Id"], "Code": "InternalError", "SenderFault": False}
                                        for i in self.refuse])
        return call


def publish_with(monkeypatch, service: str, operation: str, **fault) -> FailingEntries:
    real_client = aws.client
    wrapper = FailingEntries(real_client(service), operation, **fault)
    monkeypatch.setattr("devicegate.outbox.wiring.client", lambda name: wrapper if name == service else real_client(name))
    outbox_wiring.wiring.cache_clear()
    return wrapper


def run_outbox(stack: Stack, records: list[dict]) -> list[dict]:
    failed = outbox_app.lambda_handler({"Records": records}, context("OutboxFunction"))["batchItemFailures"]
    return [r for r in records if r["dynamodb"]["SequenceNumber"] in {f["itemIdentifier"] for f in failed}]


def test_a_queue_message_carries_type_vendor_and_device_and_a_retry_the_same(stack, monkeypatch):
    # Given 3 events, the second of which SQS refuses on the first send
    store_locations(3)
    publish_with(monkeypatch, "sqs", "send_message_batch", refuse=(1,))
    records = stack.new_stream_records()
    retry = run_outbox(stack, records)
    assert len(retry) == 2
    # When Lambda delivers the reported records again
    assert run_outbox(stack, retry) == []
    # Then each event is on the queue once, every message with the three attributes
    received = drain(stack, "EventsQueue")
    assert sorted(b["id"] for b, _ in received) == sorted(e["eventId"] for e in stack.event_items())
    assert len(received) == 3
    assert_attributes(received)


def test_fanout_off_is_todays_stack_locally(stack):
    # No topic, no app queue: the outbox publishes to EventsQueue itself
    assert not any(q.startswith("ConsumerApp") for q in stack.queues)
    assert "OUTBOX_TOPIC_ARN" not in os.environ
    topics = [t["TopicArn"].rsplit(":", 1)[-1] for t in stack.session.client("sns").list_topics()["Topics"]]
    assert topics == ["devicegate-local-AlarmTopic"]


def test_with_two_apps_every_queue_gets_every_event_once_with_its_attributes(fanout):
    # Given fan-out to billing and dashboard, and 12 events (two PublishBatch calls)
    assert {"ConsumerApp1Queue", "ConsumerApp2Queue"} <= set(fanout.queues) and "ConsumerApp3Queue" not in fanout.queues
    store_locations(12)
    # When the outbox publishes them
    assert run_outbox(fanout, fanout.new_stream_records()) == []
    # Then EventsQueue and each app's queue hold each event once, the same body and attributes
    stored = sorted(e["eventId"] for e in fanout.event_items())
    seen = {}
    for queue in ("EventsQueue", "ConsumerApp1Queue", "ConsumerApp2Queue"):
        received = drain(fanout, queue)
        assert sorted(b["id"] for b, _ in received) == stored, queue
        assert_attributes(received)
        # In publish order per device (one message group)
        assert [b["data"]["occurredAt"] for b, _ in received] == sorted(b["data"]["occurredAt"] for b, _ in received)
        seen[queue] = sorted(json.dumps(b, sort_keys=True) for b, _ in received)
    assert seen["EventsQueue"] == seen["ConsumerApp1Queue"] == seen["ConsumerApp2Queue"]


@pytest.mark.parametrize("fault", [{"refuse": (2, 5)}, {"lose_answer": True}], ids=["partial-failure", "lost-answer"])
def test_a_publish_batch_that_fails_in_part_or_loses_its_answer_reaches_each_app_once(fanout, monkeypatch, fault):
    # Given 6 events and a PublishBatch that refuses some entries (or whose answer is lost after
    # SNS took them all)
    store_locations(6)
    wrapper = publish_with(monkeypatch, "sns", "publish_batch", **fault)
    records = fanout.new_stream_records()
    retry = run_outbox(fanout, records)
    # Then the first failed entry and every later one are reported, and their retry finishes them
    assert retry and run_outbox(fanout, retry) == [] and wrapper.calls == 2
    stored = sorted(e["eventId"] for e in fanout.event_items())
    for queue in ("EventsQueue", "ConsumerApp1Queue", "ConsumerApp2Queue"):
        received = drain(fanout, queue)
        assert sorted(b["id"] for b, _ in received) == stored, queue
        assert_attributes(received)
