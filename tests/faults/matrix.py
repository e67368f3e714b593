"""The matrix's vocabulary: the calls a function makes (Op), the fault shapes that apply to each,
and the checks every case ends with (the outbox run to the end, the queue drained)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from devicegate.store.codec import from_item
from tests.faults.injector import LOST_ANSWER, SHAPES, THROTTLED_ANSWERS, Fault, Injector
from tests.support import Stack, context


@dataclass(frozen=True)
class Also:
    """A fault armed with an op's own, on every call it matches: what the op's path needs first
    (the publish refused, for the command marked unsent; a write's answer lost once, for the
    re-read of the lost race its retry meets)."""

    service: str
    operation: str
    shape: str
    attempts: str = "every"
    where: Callable[[dict[str, Any]], bool] | None = None


@dataclass(frozen=True)
class Op:
    """One AWS call on a function's path, as a fault target."""

    label: str
    service: str
    operation: str
    #: A write: a lost answer can leave it done. For a read, a lost answer is just a read timeout.
    writes: bool = True
    where: Callable[[dict[str, Any]], bool] | None = None
    call: int | None = None  # only the nth matching call (the second chunk's, say)
    #: Also the two other ways a connection fails before anything is sent (unreachable, connect
    #: timeout). The code tells them from a reset only on the IoT publish; every function's
    #: first call meets them too, so each sees all four network error classes.
    network: bool = False
    also: tuple[Also, ...] = ()

    def arm(self, injector: Injector, shape: str, attempts: str) -> Fault:
        """Arm this op's fault (and its companions); the op's own fault is returned."""
        for other in self.also:
            injector.arm(Fault(other.service, other.operation, other.shape, other.attempts, where=other.where))
        return injector.arm(Fault(self.service, self.operation, shape, attempts, call=self.call, where=self.where))


def variants(op: Op) -> list[tuple[str, str]]:
    """Every shape that applies to `op` on every attempt, plus two that only the first attempt
    meets, so botocore's own retry is what follows: a throttle (the retry succeeds) and, for a
    write, a lost answer (the retry meets the item its first attempt wrote). A batch read and a
    transaction also meet throttling as DynamoDB tells it in their answers, on every call and on
    the first only (the code's own retry follows)."""
    shapes = [s for s in SHAPES if (op.writes or s != LOST_ANSWER)
              and (op.network or s not in ("unreachable", "connect-timeout"))]
    firsts = ["throttled", *([LOST_ANSWER] if op.writes else [])]
    answered = [THROTTLED_ANSWERS[op.operation]] if op.operation in THROTTLED_ANSWERS else []
    return [(s, "every") for s in shapes + answered] + [(s, "first") for s in firsts + answered]


def cases(targets: Iterable[tuple[str, Any, tuple[Op, ...]]]) -> list[Any]:
    """pytest params (target, op, shape, attempts) for every target, each of its ops, each shape;
    the first op of a target also meets every network error class."""
    return [pytest.param(target, op, shape, attempts, id=f"{name}-{op.label}-{shape}-{attempts}")
            for name, target, ops in targets
            for op in (replace(ops[0], network=True), *ops[1:])
            for shape, attempts in variants(op)]


def where_key(prefix: str) -> Callable[[dict[str, Any]], bool]:
    """Calls on one item whose partition key starts with `prefix` (D#, A#, C#, P#, EID#...): the
    `Key` of a GetItem or UpdateItem, the `Item` of a PutItem."""
    def match(params: dict[str, Any]) -> bool:
        return (params.get("Key") or params.get("Item") or {}).get("pk", {}).get("S", "").startswith(prefix)

    match.__name__ = f"key_{prefix}"
    return match


def where_batch(prefix: str = "", consistent: bool | None = None) -> Callable[[dict[str, Any]], bool]:
    """BatchGetItems asking for an item whose partition key starts with `prefix`; with
    `consistent`, only the consistent ones (a lost race's re-read) or only the others."""
    def match(params: dict[str, Any]) -> bool:
        requests = params.get("RequestItems", {}).values()
        return any((consistent is None or bool(r.get("ConsistentRead")) == consistent)
                   and any(k["pk"]["S"].startswith(prefix) for k in r.get("Keys", [])) for r in requests)

    return match


def where_transaction(prefix: str) -> Callable[[dict[str, Any]], bool]:
    """TransactWriteItems whose first action is on an item whose partition key starts with
    `prefix` (a device's transition: its item, then its event)."""
    def match(params: dict[str, Any]) -> bool:
        [first, *_] = params["TransactItems"]
        [action] = first.values()
        return (action.get("Item") or action.get("Key") or {})["pk"]["S"].startswith(prefix)

    return match


def where_partition(prefix: str, exact: bool = False) -> Callable[[dict[str, Any]], bool]:
    """Queries of a partition starting with `prefix` (named by the `:pk` of their key condition):
    a device's commands (C#), their texts (CX#); `exact`: of that partition only (one shard of a
    gsi5 work list, DUE#n, PARTS#n or CMDPENDING#n, not DUE#n0)."""
    def match(params: dict[str, Any]) -> bool:
        partition = params.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S", "")
        return partition == prefix if exact else partition.startswith(prefix)

    return match


# --- the calls of a device's state item (store.devices), from the outbox and from heartbeats ------

#: The read of the devices' items (BatchGetItem, eventually consistent), ...
STATE_READ = Op("state-read", "dynamodb", "BatchGetItem", writes=False, where=where_batch("D#", consistent=False))
#: ... the conditional put of a changed one (its `version` moved, or created) ...
STATE_WRITE = Op("state-write", "dynamodb", "PutItem", where=where_key("D#"))
#: ... and the consistent re-read of a lost race: here the put's own retry, after its first
#: answer was lost, finds the version it moved itself.
STATE_REREAD = Op("state-reread", "dynamodb", "BatchGetItem", writes=False, where=where_batch("D#", consistent=True),
                  also=(Also("dynamodb", "PutItem", LOST_ANSWER, "first", where_key("D#")),))


# --- the end of every case -----------------------------------------------------------------------

def new_event_records(stack: Stack) -> list[dict[str, Any]]:
    """New stream records as the stream mapping hands them over: its filter passes the INSERTs of
    event items only (template OutboxStreamMapping)."""
    return [r for r in stack.new_stream_records()
            if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["pk"]["S"].startswith("E#")]


def run_outbox_to_the_end(stack: Stack, rounds: int = 4) -> None:
    """The stream mapping, fault-free: every new event to the outbox, again for what that stored
    (a device.online event is published by the batch after the one that stored it)."""
    from functions.outbox import app as outbox_app

    for _ in range(rounds):
        records = new_event_records(stack)
        if not records:
            return
        assert outbox_app.lambda_handler({"Records": records}, context("OutboxFunction")) == {"batchItemFailures": []}
    raise AssertionError("the outbox kept storing new events")


def stack_events(stack: Stack, vendors: Iterable[str]) -> list[dict[str, Any]]:
    """The stored events of these vendors, envelope fields only (one scan for all of them)."""
    prefixes = tuple(f"E#{vendor}#" for vendor in vendors)
    items = [from_item(i) for page in stack.ddb.get_paginator("scan").paginate(
        TableName=stack.table, ProjectionExpression="pk, eventId, vendor, deviceId, kind, occurredAt, receivedAt")
        for i in page["Items"] if i["pk"]["S"].startswith(prefixes)]
    return sorted(items, key=lambda i: i["pk"])


def assert_each_event_queued_once(stack: Stack, vendors: Iterable[str]) -> list[dict[str, Any]]:
    """Drain the queue: exactly one message per stored event, none for anything else."""
    stored = sorted(i["eventId"] for i in stack_events(stack, vendors))
    messages = stack.queue_messages()
    assert sorted(m["id"] for m in messages) == stored
    return messages


def answer_of(response: dict[str, Any]) -> tuple[int, Any]:
    return response["statusCode"], json.loads(response["body"])
