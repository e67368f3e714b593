"""Faults in the outbox's publish with fan-out (ConsumerApps): the SNS PublishBatch of the second
chunk of 11 locations, in every shape, on a world built with two apps.

Every case: the outbox never raises; it reports the failed chunk's records and every later one
(the first chunk's are on every queue already), and Lambda delivering them again finishes them;
EventsQueue and each app's queue then hold each event exactly once, with its attributes.

Matrix: 1 call, its 8 shapes on every attempt and 2 on the first only = 10 cases.
"""

from __future__ import annotations

import json

import pytest

from devicegate.outbox.messages import SQS_BATCH
from functions.outbox import app as outbox_app
from tests.faults.injector import Injector
from tests.faults.matrix import Op, cases, new_event_records, run_outbox_to_the_end, stack_events
from tests.faults.test_outbox_faults import LOCATIONS, Batch
from tests.support import Stack, context

#: Template parameters of this module's world (tests/faults/conftest.py).
PARAMETERS = {"ConsumerApps": "billing,dashboard"}
QUEUES = ("EventsQueue", "ConsumerApp1Queue", "ConsumerApp2Queue")

PUBLISH = Op("publish", "sns", "PublishBatch", call=2)  # the second chunk's
CASES = cases([("fanout", LOCATIONS, (PUBLISH,))])


def drain(stack: Stack, queue: str) -> list[tuple[str, dict[str, str]]]:
    sqs, url, out = stack.session.client("sqs"), stack.queues[queue], []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                          MessageAttributeNames=["All"]).get("Messages", []):
        for m in messages:
            out.append((json.loads(m["Body"])["id"], {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


@pytest.mark.parametrize("batch, op, shape, attempts", CASES)
def test_a_fanout_publish_that_fails_is_finished_by_lambdas_retry_and_reaches_every_app_once(
        stack, faults: Injector, monkeypatch, batch: Batch, op: Op, shape: str, attempts: str):
    # Given 11 stored locations (two chunks), as the stream mapping hands them to the outbox
    assert set(QUEUES) <= set(stack.queues)
    batch.given(stack, monkeypatch)
    records = new_event_records(stack)
    sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
    fault = op.arm(faults, shape, attempts)

    # When the outbox publishes them and the second PublishBatch fails in this shape
    result = outbox_app.lambda_handler({"Records": records}, context("OutboxFunction"))
    faults.disarm()

    # Then the second chunk is reported (or nothing, when botocore's retry absorbed the fault)
    assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
    failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    assert failed == ([] if fault.absorbed else sequences[SQS_BATCH:])

    # When Lambda delivers the reported records again
    retry = [r for r in records if r["dynamodb"]["SequenceNumber"] in set(failed)]
    if retry:
        assert outbox_app.lambda_handler({"Records": retry}, context("OutboxFunction")) == {"batchItemFailures": []}
    run_outbox_to_the_end(stack)

    # Then every queue holds each event exactly once, with its attributes, and the device moved once
    stored = sorted(i["eventId"] for i in stack_events(stack, ["jointech"]))
    for queue in QUEUES:
        received = drain(stack, queue)
        assert sorted(ident for ident, _ in received) == stored, queue
        assert {a["type"] for _, a in received} == {"devicegate.jointech.location"}
    batch.then(stack)
