"""Faults on the commands function (IAM routes): POST stores the command in one transaction, then
publishes it on the device's topic; GET lists the device's commands with their texts.

    POST, with a clientToken and without    store TransactWriteItems, publish (IoT data plane),
                                            mark-unsent UpdateItem (after a refused publish)
    POST again, the same clientToken        token item GetItem, status items Query, text items
                                            Query (the command it created, answered again)
    GET                                     status items Query, text items Query

A command's answer must tell the app the truth, because the app decides from it whether to send
again: "pending" (202) only once the command is stored and was published, exactly once;
"may have been sent" (202) when the publish's outcome is unknown; "not sent" (503) only when it
surely was not; "retry later" (503) only when nothing was stored that a retry would not find.
Then the app does what the answer says, and the device gets each command at most once.

Matrix: 4 targets, 11 calls: 5 reads x 6 shape variants + 6 writes x 8, plus the 2 other network
errors on 6 calls (each target's first, and the publish) and the 2 throttled answers of the 2
transactions = 94 cases.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest

from devicegate.store import keys
from devicegate.store.codec import from_item
from functions.jointech_commands import app as commands_app
from tests.faults.conftest import ACCESS_KEY
from tests.faults.injector import LOST_ANSWER, Injector
from tests.faults.matrix import Also, Op, answer_of, cases, where_key, where_partition
from tests.support import Stack, context, load_event

STORE = Op("store", "dynamodb", "TransactWriteItems")
PUBLISH = Op("publish", "iot-data", "Publish", network=True)
UNSENT = Op("mark-unsent", "dynamodb", "UpdateItem", where=where_key("C#"), also=(Also("iot-data", "Publish", "denied"),))
STATUS_QUERY = Op("status-query", "dynamodb", "Query", writes=False, where=where_partition("C#"))
TEXT_QUERY = Op("text-query", "dynamodb", "Query", writes=False, where=where_partition("CX#"))


@dataclass(frozen=True)
class Post:
    sample: str  # events/jointech-commands/<sample>

    def event(self, token: str | None = None) -> dict[str, Any]:
        """The sample as API Gateway hands it over; `token`: another clientToken in its body."""
        event = copy.deepcopy(load_event(f"jointech-commands/{self.sample}"))
        if token is not None:
            event["body"] = json.dumps(dict(json.loads(event["body"]), clientToken=token))
        return event

    @property
    def device(self) -> str:
        return self.event()["pathParameters"]["deviceNum"]

    @property
    def token(self) -> str | None:
        return json.loads(self.event()["body"] or "{}").get("clientToken")


WITH_TOKEN = Post("http-post-typed-query-time-with-token.json")
WITHOUT_TOKEN = Post("http-post-raw-base-info.json")
LISTING = Post("http-get-list.json")

TOKEN_READ = Op("token-read", "dynamodb", "GetItem", writes=False, where=where_key("CX#"))

POST_CASES = cases([("post-token", WITH_TOKEN, (STORE, PUBLISH, UNSENT)),
                    ("post-no-token", WITHOUT_TOKEN, (STORE, PUBLISH, UNSENT))])
RESEND_CASES = cases([("post-again", WITH_TOKEN, (TOKEN_READ, STATUS_QUERY, TEXT_QUERY))])
GET_CASES = cases([("get", LISTING, (STATUS_QUERY, TEXT_QUERY))])


def request(event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = commands_app.lambda_handler(event, context("JointechCommandsFunction"))
    status, body = answer_of(response)
    return status, body, response["headers"]


def published() -> list[tuple[str, bytes]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iotdata.models import iotdata_backends

    return iotdata_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].published_payloads


def command_items(stack: Stack, device: str) -> dict[str, dict[str, Any]]:
    """commandId -> status item."""
    items = stack.ddb.query(TableName=stack.table, KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
                            ExpressionAttributeValues={":p": {"S": keys.commands_pk("jointech", device)},
                                                       ":c": {"S": "C#"}}, ConsistentRead=True)["Items"]
    return {i["commandId"]: i for i in map(from_item, items)}


def device_has_reported(stack: Stack, device: str) -> None:
    # The state item the outbox keeps for every device heard from; the command's transaction
    # checks that it exists.
    stack.ddb.put_item(TableName=stack.table, Item={
        "pk": {"S": keys.device_pk("jointech", device)}, "sk": {"S": keys.STATE_SK},
        "vendor": {"S": "jointech"}, "deviceId": {"S": device}, "heardAt": {"S": "2025-02-07T10:00:00.000Z"},
        "online": {"BOOL": True}, "version": {"N": "1"}})


def outcome_of(answer: tuple[int, dict[str, Any], dict[str, str]]) -> str:
    """Which of the answers an app can get: sent, maybe (sent), not-sent, retry-later, same (the
    command an earlier request with this clientToken created)."""
    status, body, headers = answer
    if status == 202:
        return "maybe" if "may have been sent" in body.get("message", "") else "sent"
    if status == 200:
        return "same"
    assert status == 503, answer  # never a 500, and no other status for a valid command
    if "not sent" in body["message"]:
        assert headers.get("retry-after") == "5"
        return "not-sent"
    assert body == {"message": "temporarily unavailable, retry later"} and headers.get("retry-after") == "5"
    return "retry-later"


@pytest.mark.parametrize("target, op, shape, attempts", POST_CASES)
def test_a_command_whose_call_fails_is_answered_truthfully_and_reaches_the_device_at_most_once(
        stack, faults: Injector, target: Post, op: Op, shape: str, attempts: str):
    # Given a device that has reported, and an app about to send it a command
    device = target.device
    device_has_reported(stack, device)
    fault = op.arm(faults, shape, attempts)

    # When the app posts the command and the call fails in this shape
    answer = request(target.event())
    faults.disarm()

    # Then the fault was met, and the answer tells the truth about storing and sending
    assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
    outcome = outcome_of(answer)
    landed_publishes = int(op.label == PUBLISH.label and shape == LOST_ANSWER)  # the device got it, unanswered
    assert_truthful(stack, device, answer, outcome, published_before=0, unanswered=landed_publishes)
    if op.label == STORE.label and (fault.absorbed or shape == LOST_ANSWER):
        # The transaction is in the table: the command goes out as if nothing happened
        assert outcome == "sent"
    sent = int(outcome == "sent") + landed_publishes

    # When the app does what the answer says
    if outcome in ("sent", "maybe"):
        if target.token:  # it missed our answer and sends the same request again
            again = request(target.event())
            assert outcome_of(again) == "same" and again[1]["commandId"] == answer[1]["commandId"]
            assert again[1]["status"] == "pending"
    else:
        if outcome == "not-sent":  # sent again, under a new token (or none): a new command
            again = request(target.event(token="app-resent-1") if target.token else target.event())
        else:  # retry later: the same request
            again = request(target.event())
        assert outcome_of(again) == "sent"
        assert_truthful(stack, device, again, "sent", published_before=sent, unanswered=0)
        sent += 1

    # Then the device got each command at most once: exactly the ones answered "sent", plus the
    # one whose publish landed unanswered (answered "may have been sent")
    assert len(published()) == sent
    # And one command waits for the device's answer: the one the app holds. Another is pending
    # only if the app was told it was not sent (its failure could not be recorded: the sweep
    # times it out)
    held = (again if outcome not in ("sent", "maybe") else answer)[1]["commandId"]
    unsent = {answer[1]["commandId"]} if outcome == "not-sent" else set()
    items = command_items(stack, device)
    assert {c for c, i in items.items() if i["status"] == "pending"} - unsent == {held}
    assert {i["status"] for i in items.values()} <= {"pending", "failed"}


def assert_truthful(stack: Stack, device: str, answer, outcome: str, published_before: int, unanswered: int) -> None:
    status, body, _ = answer
    items = command_items(stack, device)
    topic = f"download/{ACCESS_KEY}/{device}/cmd"
    new = published()[published_before:]
    if outcome in ("sent", "maybe"):
        # Accepted only once stored: the command is in the table, pending, as answered
        assert items[body["commandId"]]["status"] == "pending"
        if outcome == "sent":
            assert new == [(topic, body["text"].encode())]  # published, exactly once
        else:
            assert len(new) == unanswered  # maybe: it went out or not, but never twice
    elif outcome == "not-sent":
        assert new == []
        assert items[body["commandId"]]["status"] in ("failed", "pending")  # pending: the sweep times it out
    else:  # retry later: nothing stored that the retry would not find, nothing sent
        assert new == []
        assert [i for i in items.values() if i["status"] == "pending"] == []


@pytest.mark.parametrize("target, op, shape, attempts", RESEND_CASES)
def test_a_repeated_request_whose_lookup_fails_is_answered_retry_later_and_then_with_the_same_command(
        stack, faults: Injector, target: Post, op: Op, shape: str, attempts: str):
    # Given a command sent with a clientToken, whose answer the app did not get
    device = target.device
    device_has_reported(stack, device)
    sent = request(target.event())
    assert outcome_of(sent) == "sent"
    fault = op.arm(faults, shape, attempts)

    # When the app sends the same request again and looking the command up fails in this shape
    answer = request(target.event())
    faults.disarm()

    # Then it is told to retry later (or, when botocore's retry absorbed the fault, gets the
    # command): never a second command, never a second publish
    assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
    if not fault.absorbed:
        assert outcome_of(answer) == "retry-later"
        # When it retries
        answer = request(target.event())
    assert outcome_of(answer) == "same" and answer[1]["commandId"] == sent[1]["commandId"]
    assert list(command_items(stack, device)) == [sent[1]["commandId"]]
    assert len(published()) == 1


@pytest.mark.parametrize("target, op, shape, attempts", GET_CASES)
def test_listing_commands_while_a_call_fails_is_answered_retry_later_and_then_listed(
        stack, faults: Injector, target: Post, op: Op, shape: str, attempts: str):
    # Given a device with one command sent
    device = target.device
    device_has_reported(stack, device)
    sent = request(WITHOUT_TOKEN.event())
    assert outcome_of(sent) == "sent"
    fault = op.arm(faults, shape, attempts)

    # When the app lists the device's commands and the call fails in this shape
    answer = request(target.event())
    faults.disarm()

    # Then it is told to retry later (or, when botocore's retry absorbed the fault, gets the list)
    assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
    if not fault.absorbed:
        assert outcome_of(answer) == "retry-later"
        # When it retries
        answer = request(target.event())
    # Then it gets the command, with its text
    status, body, _ = answer
    assert status == 200
    [listed] = body["commands"]
    assert listed["commandId"] == sent[1]["commandId"] and listed["text"] == sent[1]["text"]
