"""Faults on a command kept for the device's next contact (`whenOnline`): the commands function
queuing and cancelling it, the outbox sending it when the contact comes, and the sweep expiring
it or queuing an unanswered attempt again.

    POST with whenOnline (the commands function)
        store TransactWriteItems (the device's count, the command, its text, command.queued)
    POST .../cancel
        status items Query, text items Query, cancel TransactWriteItems (status, count, event)

    a contact of a device with a command waiting (the outbox, devicegate.outbox.waiting)
        waiting commands Query (C#), text GetItem (CX#), mark-sent TransactWriteItems (status,
        count, command.sent event), publish (IoT data plane)
    the sweep past a waiting command's expiry
        CMDWAIT#n Query (gsi5), expire TransactWriteItems
    the sweep past an unanswered attempt's deadline
        CMDSENT#n Query (gsi5), requeue TransactWriteItems

Every case: the app is told the truth (queued / cancelled, or retry later, and its retry does it
once); the outbox reports no record failed because of a waiting command (the batch's own
events are published as usual, exactly once); the command is never lost nor sent twice: it is
still queued and counted, so a later contact sends it, or it is sent (or, its publish lost, its
attempt is queued again by the sweep); the sweep retried later does its step once, one event each.

Matrix: 5 targets, 12 calls: 6 reads x 6 shape variants + 6 writes x 8, plus the 2 other network
errors on each target's first call and the publish (6 x 2) and the 2 throttled answers of the 5
transactions (5 x 2) = 106 cases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from devicegate.store import keys
from devicegate.store.codec import from_item
from functions.device_sweep import app as sweep_app
from functions.jointech_commands import app as commands_app
from functions.outbox import app as outbox_app
from tests.faults.conftest import ACCESS_KEY
from tests.faults.injector import Injector
from tests.faults.matrix import (
    Op,
    answer_of,
    assert_each_event_queued_once,
    cases,
    new_event_records,
    run_outbox_to_the_end,
    where_key,
    where_partition,
    where_transaction,
)
from tests.support import Stack, context, load_event, with_body

DEVICE = "794308010642"  # the device of the when-online sample
TOPIC = f"download/{ACCESS_KEY}/{DEVICE}/cmd"

WAITING_QUERY = Op("waiting-query", "dynamodb", "Query", writes=False, where=where_partition("C#"))
TEXT_READ = Op("text-read", "dynamodb", "GetItem", writes=False, where=where_key("CX#"))
MARK_SENT = Op("mark-sent", "dynamodb", "TransactWriteItems", where=where_transaction("C#"))
PUBLISH = Op("publish", "iot-data", "Publish", network=True)
EXPIRED_QUERY = Op("expired-query", "dynamodb", "Query", writes=False, where=where_partition("CMDWAIT#"))
EXPIRE = Op("expire", "dynamodb", "TransactWriteItems", where=where_transaction("C#"))
SENT_QUERY = Op("sent-query", "dynamodb", "Query", writes=False, where=where_partition("CMDSENT#"))
REQUEUE = Op("requeue", "dynamodb", "TransactWriteItems", where=where_transaction("C#"))

_minutes = count(1)


def contact() -> None:
    """The device heard from: a new location record."""
    from functions.jointech_webhook import app as jointech_app

    at = datetime(2025, 2, 7, 10, tzinfo=UTC) + timedelta(minutes=next(_minutes))
    body = {"assetId": DEVICE, "gpsTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    event = with_body(load_event("jointech/http-variation-minimal.json"), json.dumps(body))
    assert jointech_app.lambda_handler(event, context("JointechWebhookFunction"))["statusCode"] == 200


def queue_command(stack: Stack) -> None:
    contact()
    run_outbox_to_the_end(stack)
    event = load_event("jointech-commands/http-post-typed-query-base-info-when-online.json")
    status, body = answer_of(commands_app.lambda_handler(event, context("JointechCommandsFunction")))
    assert (status, body["status"]) == (202, "queued")
    run_outbox_to_the_end(stack)


def command(stack: Stack) -> dict[str, Any]:
    rows = stack.ddb.query(TableName=stack.table, KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
                           ExpressionAttributeValues={":p": {"S": keys.commands_pk("jointech", DEVICE)},
                                                      ":c": {"S": "C#"}})
    [item] = [from_item(i) for i in rows["Items"]]
    return item


def waiting_count(stack: Stack) -> int:
    return int((stack.device_item("jointech", DEVICE) or {}).get("waitingCommands") or 0)


def _payloads() -> list[tuple[str, bytes]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iotdata.models import iotdata_backends

    return iotdata_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].published_payloads


def published() -> list[tuple[str, bytes]]:
    """What moto's IoT data plane was asked to publish on the device's command topic."""
    return [p for p in _payloads() if p[0] == TOPIC]


def sweep(monkeypatch, at: datetime) -> dict[str, Any]:
    monkeypatch.setattr(sweep_app, "now_utc", lambda: at)
    try:
        return sweep_app.lambda_handler({"source": "aws.events"}, context("DeviceSweepFunction"))
    except RuntimeError:  # a step failed: the run is reported failed, the next one starts over
        return {}


def sent_until_answered_or_over(stack: Stack, monkeypatch) -> None:
    """What follows a fault, fault-free: contacts, and the sweep past an unanswered attempt,
    until the command went out; then the device must have got it exactly once (an attempt marked
    sent whose publish never happened is queued again by the sweep, and sent at a contact)."""
    for _ in range(3):
        item = command(stack)
        if item["status"] == "queued":
            contact()
            run_outbox_to_the_end(stack)
        elif item["status"] == "pending" and not published():
            # Marked sent, its publish refused or never made: the sweep queues the attempt again
            sweep(monkeypatch, datetime.fromisoformat(item["timeoutAt"]) + timedelta(seconds=61))
            run_outbox_to_the_end(stack)
        else:
            break
    item = command(stack)
    assert item["status"] == "pending" and waiting_count(stack) == 0
    assert len(published()) == 1


def one_event_per_step(stack: Stack) -> list[str]:
    kinds = [i["kind"] for i in stack.event_items("jointech") if i["kind"].startswith("command.")]
    return sorted(kinds)


@dataclass(frozen=True)
class Target:
    given: Any
    label: str


def _contact_given(stack: Stack, monkeypatch) -> None:
    queue_command(stack)
    contact()


def _expiry_given(stack: Stack, monkeypatch) -> None:
    queue_command(stack)


def _requeue_given(stack: Stack, monkeypatch) -> None:
    queue_command(stack)
    contact()
    run_outbox_to_the_end(stack)
    assert command(stack)["status"] == "pending"


CONTACT = Target(_contact_given, "contact")
EXPIRY = Target(_expiry_given, "expiry")
RETRY = Target(_requeue_given, "retry")

QUEUE_STORE = Op("queue-store", "dynamodb", "TransactWriteItems", where=where_transaction("D#"))
CANCEL_STATUS_QUERY = Op("status-query", "dynamodb", "Query", writes=False, where=where_partition("C#"))
CANCEL_TEXT_QUERY = Op("text-query", "dynamodb", "Query", writes=False, where=where_partition("CX#"))
CANCEL = Op("cancel", "dynamodb", "TransactWriteItems", where=where_transaction("C#"))
QUEUE, CANCELLING = Target(lambda stack, monkeypatch: None, "queue"), Target(_expiry_given, "cancel")
COMMAND_CASES = cases([("queue", QUEUE, (QUEUE_STORE,)),
                       ("cancel", CANCELLING, (CANCEL_STATUS_QUERY, CANCEL_TEXT_QUERY, CANCEL))])

CASES = cases([("contact", CONTACT, (WAITING_QUERY, TEXT_READ, MARK_SENT, PUBLISH)),
               ("expiry", EXPIRY, (EXPIRED_QUERY, EXPIRE)),
               ("retry", RETRY, (SENT_QUERY, REQUEUE))])


@pytest.mark.parametrize("target, op, shape, attempts", CASES)
def test_a_failure_around_a_waiting_command_loses_neither_it_nor_the_batchs_events(
        stack, faults: Injector, monkeypatch, target: Target, op: Op, shape: str, attempts: str):
    _payloads().clear()
    target.given(stack, monkeypatch)
    fault = op.arm(faults, shape, attempts)

    if target is CONTACT:
        # When the outbox handles the contact and the call fails in this shape
        result = outbox_app.lambda_handler({"Records": new_event_records(stack)}, context("OutboxFunction"))
        faults.disarm()
        # Then no record is reported failed for it: the contact's events go on
        assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
        assert result == {"batchItemFailures": []}
        run_outbox_to_the_end(stack)
        # And the command was sent, or waits still (counted) for the next contact
        item = command(stack)
        assert item["status"] in ("queued", "pending")
        assert waiting_count(stack) == (1 if item["status"] == "queued" else 0)
        assert len(published()) <= 1
        sent_until_answered_or_over(stack, monkeypatch)
    else:
        item = command(stack)
        at = (datetime.fromisoformat(item["waitUntil"]) + timedelta(seconds=1) if target is EXPIRY
              else datetime.fromisoformat(item["timeoutAt"]) + timedelta(seconds=61))
        # When the sweep runs past the deadline and the call fails in this shape, then again
        sweep(monkeypatch, at)
        faults.disarm()
        assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
        sweep(monkeypatch, at + timedelta(seconds=1))
        run_outbox_to_the_end(stack)
        # Then the step happened once: expired (counted off) or queued again (counted)
        item = command(stack)
        if target is EXPIRY:
            assert (item["status"], waiting_count(stack)) == ("expired", 0)
            assert one_event_per_step(stack) == ["command.expired", "command.queued"]
        else:
            assert (item["status"], item["attempts"], waiting_count(stack)) == ("queued", 1, 1)
            assert one_event_per_step(stack) == ["command.queued", "command.queued", "command.sent"]
    # And every stored event, the device's and the lifecycle's, is on the queue exactly once
    assert_each_event_queued_once(stack, ["jointech"])


def _post(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return answer_of(commands_app.lambda_handler(event, context("JointechCommandsFunction")))


def _cancel_event(command_id: str) -> dict[str, Any]:
    event = load_event("jointech-commands/http-post-cancel.json")
    event["pathParameters"] = {"deviceNum": DEVICE, "commandId": command_id}
    return event


@pytest.mark.parametrize("target, op, shape, attempts", COMMAND_CASES)
def test_queuing_or_cancelling_while_a_call_fails_is_answered_truthfully_and_happens_once(
        stack, faults: Injector, monkeypatch, target: Target, op: Op, shape: str, attempts: str):
    _payloads().clear()
    if target is QUEUE:
        contact()
        run_outbox_to_the_end(stack)
        event = load_event("jointech-commands/http-post-typed-query-base-info-when-online.json")
    else:
        queue_command(stack)
        event = _cancel_event(command(stack)["commandId"])
    fault = op.arm(faults, shape, attempts)

    # When the app's request meets the fault
    status, body = _post(event)
    faults.disarm()

    # Then it is done (202 queued / 200 cancelled) or the app is told to retry later, and does
    assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
    done = 202 if target is QUEUE else 200
    if status != done:
        assert (status, body) == (503, {"message": "temporarily unavailable, retry later"}), (status, body)
        status, body = _post(event)
    assert status == done, body
    run_outbox_to_the_end(stack)
    # And it happened once: one command, queued and counted (or cancelled and counted off), one
    # event per step, nothing sent to the device
    item = command(stack)
    if target is QUEUE:
        assert (item["status"], waiting_count(stack)) == ("queued", 1)
        assert one_event_per_step(stack) == ["command.queued"]
    else:
        assert (item["status"], body["status"], waiting_count(stack)) == ("cancelled", "cancelled", 0)
        assert one_event_per_step(stack) == ["command.cancelled", "command.queued"]
    assert published() == []
    assert_each_event_queued_once(stack, ["jointech"])
