"""Faults in the outbox: each of its calls, on the stream path and on the scheduled redrive.

    11 locations of one device (two SQS chunks)
        the batch's state: device items BatchGetItem, the device's PutItem, the consistent
        re-read after a lost race (the put retried after its answer was lost); the second
        chunk's SQS SendMessageBatch
    a device back online after the sweep marked it offline
        TransactWriteItems (its item + the device.online event), the consistent re-read after
        a lost race (the transaction retried after its answer was lost)
    a face-terminal alarm's release, then (a terminal's backlog) the raise it ends
        alarm UpdateItem (status and step), the older step's own UpdateItem
    a device's answer to a pending command
        command match Query, command UpdateItem (succeeded)
    a batch of 3 that Lambda parked in OutboxFailureQueue, redriven on the schedule
        ReceiveMessage, GetShardIterator, GetRecords, DeleteMessage

Every case: the outbox never raises; a stream batch whose state fails reports every record (none
is published before the batch's state is written), one whose publish fails reports the failed
chunk's records and every later one (those before it are done: their messages are on the queue
already); Lambda delivering the reported records again finishes them, a later scheduled run
finishes a parked batch; each event reaches the queue exactly once, and state, liveness, alarm
lifecycles and commands move exactly once.

Matrix: 4 batches + 1 redrive, 14 calls: 6 reads x 6 shape variants + 8 writes x 8, plus the 2
other network errors on each target's first call (5 x 2) and the 2 throttled answers of the 3
batch reads and the transaction (4 x 2) = 118 cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from devicegate.outbox.messages import SQS_BATCH
from devicegate.outbox.stream import REDRIVE_VISIBILITY_S
from devicegate.store import keys
from devicegate.store.codec import from_item
from devicegate_local.lambda_context import LambdaContext
from functions.device_sweep import app as sweep_app
from functions.face_terminal_webhook import app as face_terminal_app
from functions.jointech_commands import app as commands_app
from functions.jointech_mqtt import app as mqtt_app
from functions.jointech_webhook import app as jointech_app
from functions.outbox import app as outbox_app
from tests.faults.injector import LOST_ANSWER, Injector
from tests.faults.matrix import (
    STATE_READ,
    STATE_REREAD,
    STATE_WRITE,
    Also,
    Op,
    answer_of,
    assert_each_event_queued_once,
    cases,
    new_event_records,
    run_outbox_to_the_end,
    stack_events,
    where_batch,
    where_key,
    where_partition,
    where_transaction,
)
from tests.support import Stack, context, load_event, with_body

DEVICE = "8022300777"
COMMAND_DEVICE = "794308010642"  # the device of the documented command answer
TERMINAL = "TERM-FAULTS"
VENDORS = ("jointech", "face-terminal")


def _alarm_status(params: dict[str, Any]) -> bool:
    return where_key("A#")(params) and "statusRank" in params["UpdateExpression"]


def _alarm_older_step(params: dict[str, Any]) -> bool:
    return where_key("A#")(params) and "statusRank" not in params["UpdateExpression"]


SECOND_CHUNK = 2  # the second chunk's send: the first chunk's ten records are done by then
SEND = Op("send", "sqs", "SendMessageBatch", call=SECOND_CHUNK)
BACK_ONLINE = Op("online", "dynamodb", "TransactWriteItems", where=where_transaction("D#"))
ONLINE_REREAD = Op("online-reread", "dynamodb", "BatchGetItem", writes=False, where=where_batch("D#", consistent=True),
                   also=(Also("dynamodb", "TransactWriteItems", LOST_ANSWER, "first", where_transaction("D#")),))
ALARM_STATUS = Op("alarm-status", "dynamodb", "UpdateItem", where=_alarm_status)
ALARM_OLDER_STEP = Op("alarm-older-step", "dynamodb", "UpdateItem", where=_alarm_older_step)
MATCH = Op("match", "dynamodb", "Query", writes=False, where=where_partition("C#"))
RESOLVE = Op("resolve", "dynamodb", "UpdateItem", where=where_key("C#"))
RECEIVE = Op("receive", "sqs", "ReceiveMessage")  # a write of sorts: a lost answer hides the messages
SHARD_ITERATOR = Op("shard-iterator", "dynamodbstreams", "GetShardIterator", writes=False)
GET_RECORDS = Op("get-records", "dynamodbstreams", "GetRecords", writes=False)
DELETE = Op("delete", "sqs", "DeleteMessage")


# --- what each batch builds on --------------------------------------------------------------------

def push_locations(count: int, device: str = DEVICE, hour: int = 10) -> None:
    # The minimal record (a time, no fix): its only state is the summary; a fuller record would
    # add groups to the same item, and the same calls.
    template = load_event("jointech/http-variation-minimal.json")
    for n in range(count):
        body = {"assetId": device, "gpsTime": f"2025-02-07T{hour}:{n:02d}:00Z"}
        assert jointech_app.lambda_handler(with_body(template, json.dumps(body)),
                                           context("JointechWebhookFunction"))["statusCode"] == 200


def two_chunks(stack: Stack, monkeypatch) -> None:
    push_locations(SQS_BATCH + 1)


def one_chunk(stack: Stack, monkeypatch) -> None:
    push_locations(3)


def back_online(stack: Stack, monkeypatch) -> None:
    # Heard from once, marked offline by the sweep two hours later, then heard from again
    push_locations(1)
    run_outbox_to_the_end(stack)
    heard = datetime.fromisoformat(stack.state("jointech", DEVICE)["summary"]["heardAt"])
    monkeypatch.setattr(sweep_app, "now_utc", lambda: heard + timedelta(hours=2))
    assert sweep_app.lambda_handler({"source": "aws.events"}, context("DeviceSweepFunction"))["markedOffline"] == 1
    run_outbox_to_the_end(stack)
    assert "offlineSince" in stack.state("jointech", DEVICE)["summary"]
    push_locations(1, hour=11)


def alarm_released_before_raised(stack: Stack, monkeypatch) -> None:
    # The release first, then the raise it ends (a terminal's backlog): the raise is older than
    # the status, so it only records its own step, in the second, smaller update.
    for status, at in ((3, 1684381500123), (1, 1684381433398)):
        data = {"trace_id": "SPX-FAULTS-1", "description": " ", "event_time": at, "status": status,
                "alarm_photo": " ", **({"code": 10001} if status == 1 else {})}
        event = with_body(load_event("face-terminal/http-doc-record.json"), json.dumps({"type": 1, "data": data}))
        event["queryStringParameters"] = {"device": TERMINAL}
        assert face_terminal_app.lambda_handler(event, context("FaceTerminalWebhookFunction"))["statusCode"] == 200


def command_answered(stack: Stack, monkeypatch) -> None:
    # A pending query_base_info, then the device's documented answer by MQTT
    push_locations(1, COMMAND_DEVICE)
    run_outbox_to_the_end(stack)
    event = load_event("jointech-commands/http-post-typed-query-base-info.json")
    assert answer_of(commands_app.lambda_handler(event, context("JointechCommandsFunction")))[0] == 202
    result = mqtt_app.lambda_handler(load_event("jointech/iot-mqtt-cmd-success.json"), context("JointechMqttFunction"))
    assert result["outcome"] == "accepted"


# --- and what must hold at the end ----------------------------------------------------------------

def newest_state(stack: Stack) -> None:
    newest = max(i["occurredAt"] for i in stack_events(stack, ["jointech"]) if "occurredAt" in i)
    summary = stack.state("jointech", DEVICE)["summary"]
    assert summary["value"]["lastSeen"] == newest and summary["online"] is True


def online_once(stack: Stack) -> None:
    summary = stack.state("jointech", DEVICE)["summary"]
    assert summary["online"] is True and "offlineSince" not in summary
    kinds = sorted(i["kind"] for i in stack.event_items("jointech") if i["kind"].startswith("device."))
    assert kinds == ["device.offline", "device.online"]


def alarm_released(stack: Stack) -> None:
    rows = stack.ddb.query(TableName=stack.table, KeyConditionExpression="pk = :p",
                           ExpressionAttributeValues={":p": {"S": keys.alarms_pk("face-terminal", TERMINAL)}})
    [alarm] = [from_item(i) for i in rows["Items"]]
    assert alarm["status"] == "released"
    assert {k: v for k, v in alarm.items() if k.startswith("step_")} == {
        "step_open": "2023-05-18T03:43:53.398Z", "step_released": "2023-05-18T03:45:00.123Z"}
    assert sorted(alarm["eventIds"]) == sorted(i["eventId"] for i in stack.event_items("face-terminal"))


def command_succeeded(stack: Stack) -> None:
    rows = stack.ddb.query(TableName=stack.table, KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
                           ExpressionAttributeValues={":p": {"S": keys.commands_pk("jointech", COMMAND_DEVICE)},
                                                      ":c": {"S": "C#"}})
    [command] = [from_item(i) for i in rows["Items"]]
    [reply] = [i for i in stack.event_items("jointech") if i["kind"] == "cmd"]
    assert command["status"] == "succeeded" and command["responseEventId"] == reply["eventId"]


@dataclass(frozen=True)
class Batch:
    given: Callable[[Stack, Any], None]
    then: Callable[[Stack], None]


LOCATIONS = Batch(two_chunks, newest_state)
FEW_LOCATIONS = Batch(one_chunk, newest_state)
COMEBACK = Batch(back_online, online_once)
ALARM = Batch(alarm_released_before_raised, alarm_released)
COMMAND = Batch(command_answered, command_succeeded)

STREAM_CASES = cases([
    ("chunks", LOCATIONS, (STATE_READ, STATE_WRITE, STATE_REREAD, SEND)),
    ("comeback", COMEBACK, (BACK_ONLINE, ONLINE_REREAD)),
    ("alarm", ALARM, (ALARM_STATUS, ALARM_OLDER_STEP)),
    ("command", COMMAND, (MATCH, RESOLVE)),
])
REDRIVE_CASES = cases([("redrive", FEW_LOCATIONS, (RECEIVE, SHARD_ITERATOR, GET_RECORDS, DELETE))])


def _count(stack: Stack, url: str) -> int:
    """Messages a queue holds, visible or not."""
    attributes = stack.session.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


@pytest.mark.parametrize("batch, op, shape, attempts", STREAM_CASES)
def test_a_stream_batch_whose_call_fails_is_finished_by_lambdas_retry_and_published_once(
        stack, faults: Injector, monkeypatch, logs, batch: Batch, op: Op, shape: str, attempts: str):
    # Given the stored events of this batch, as the stream mapping hands them to the outbox
    batch.given(stack, monkeypatch)
    records = new_event_records(stack)
    sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
    fault = op.arm(faults, shape, attempts)

    # When the outbox handles the batch and the call fails in this shape
    result = outbox_app.lambda_handler({"Records": records}, context("OutboxFunction"))
    faults.disarm()

    # Then it does not raise, it reports the failed chunk's records and every later one (or
    # nothing, when a retry absorbed the fault: botocore's, or the store's own), and the chunks
    # before are queued; a state call fails the whole batch, before anything is published
    assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
    failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    if fault.absorbed:
        assert failed == []
    else:
        first_chunk_hit = (op.call - 1) * SQS_BATCH if op.call else 0
        assert failed == sequences[first_chunk_hit:]
    assert _count(stack, stack.queue_url) >= len(sequences) - len(failed)
    # ...the failure classified, not caught as a bug by the chunk's last resort (which reports
    # the same records)
    assert "state projection raised" not in logs()

    # When Lambda delivers the reported records again (and the events they store, later)
    retry = [r for r in records if r["dynamodb"]["SequenceNumber"] in set(failed)]
    if retry:
        assert outbox_app.lambda_handler({"Records": retry}, context("OutboxFunction")) == {"batchItemFailures": []}
    run_outbox_to_the_end(stack)

    # Then every event is on the queue exactly once, and the device moved exactly once
    assert_each_event_queued_once(stack, VENDORS)
    batch.then(stack)


def park_in_failure_queue(stack: Stack, world, records: list[dict[str, Any]]) -> None:
    """What Lambda sends the OnFailure destination for a stream batch it gave up on."""
    streams = stack.session.client("dynamodbstreams")
    arn = records[0]["eventSourceARN"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    info = {"shardId": shard, "streamArn": arn, "batchSize": len(records),
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"]}
    stack.session.client("sqs").send_message(
        QueueUrl=world.created.queues["OutboxFailureQueue"],
        MessageBody=json.dumps({"version": "1.0", "requestContext": {"condition": "RetryAttemptsExhausted"},
                                "DDBStreamBatchInfo": info}))


def scheduled_redrive(world) -> dict[str, int]:
    return outbox_app.lambda_handler(load_event("outbox/scheduled-redrive.json"), LambdaContext.for_function(
        "OutboxFunction", timeout_s=world.timeouts["OutboxFunction"]))


@pytest.mark.parametrize("batch, op, shape, attempts", REDRIVE_CASES)
def test_a_parked_batch_whose_redrive_call_fails_is_published_once_by_a_later_run(
        world, stack, faults: Injector, sqs_clock, monkeypatch, batch: Batch, op: Op, shape: str, attempts: str):
    # Given a batch Lambda gave up on, parked in OutboxFailureQueue
    batch.given(stack, monkeypatch)
    park_in_failure_queue(stack, world, new_event_records(stack))
    parked = world.created.queues["OutboxFailureQueue"]
    fault = op.arm(faults, shape, attempts)

    # When the schedule runs the redrive and the call fails in this shape
    first = scheduled_redrive(world)
    faults.disarm()

    # Then it does not raise; the batch is either published or still waiting for a later run
    assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
    if op.label == RECEIVE.label and shape == LOST_ANSWER:
        # Received, then lost: the record is hidden from this run (botocore's retry included)
        # for the redrive's visibility timeout, and comes back for a later run
        assert first == {"redriven": 0, "waiting": 0}
    elif fault.absorbed:
        assert first == {"redriven": 1, "waiting": 0}
    else:
        assert first == {RECEIVE.label: {"redriven": 0, "waiting": 0},  # nothing read
                         SHARD_ITERATOR.label: {"redriven": 0, "waiting": 1},  # kept for a later run
                         GET_RECORDS.label: {"redriven": 0, "waiting": 1},
                         DELETE.label: {"redriven": 1, "waiting": 0}}[op.label]  # published, delete later

    # When later runs come, once the record the failed run held is visible again
    for _ in range(3):
        if _count(stack, parked) == 0:
            break
        sqs_clock.advance(REDRIVE_VISIBILITY_S + 1)
        scheduled_redrive(world)

    # Then the failure queue is empty, and every event is on the queue exactly once
    assert _count(stack, parked) == 0
    run_outbox_to_the_end(stack)
    assert_each_event_queued_once(stack, VENDORS)
    batch.then(stack)
