"""Faults in the scheduled sweep, each of its calls: two hours after a Jointech device and an AI
camera were last heard from, a Mettax face check got only one of its parts and a command got no
answer, the sweep has four things to do:

    Jointech device offline   device list Query (V#jointech), TransactWriteItems (offline + event)
    AI camera offline         device list Query (V#ai-camera), configurations BatchGetItem
    face check published      pending parts Query, parts GetItem, event PutItem, parts UpdateItem
    command timed out         pending commands Query, command UpdateItem

Every case: a failed call is recorded as the run's error, every other step still does its work,
and the run raises at the end (the Errors metric and SweepErrorAlarm); the next run finishes the
failed step, and nothing happens twice: one device.offline event per device, one face-check
event, the command timed out once, each event queued once.

Matrix: 1 sweep, 10 calls: 6 reads x 6 shape variants + 4 writes x 8, plus the 2 other network
errors on its first call = 70 cases.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from devicegate.store import keys
from devicegate.store.codec import from_item, to_attr
from devicegate.store.liveness import Liveness
from functions.ai_camera_webhook import app as ai_camera_app
from functions.device_sweep import app as sweep_app
from functions.jointech_commands import app as commands_app
from functions.mettax_webhook import app as mettax_app
from tests.faults.injector import LOST_ANSWER, Injector
from tests.faults.matrix import (
    Op,
    answer_of,
    cases,
    run_outbox_to_the_end,
    stack_events,
    where_key,
    where_partition,
)
from tests.faults.test_outbox_faults import push_locations
from tests.support import Stack, context, load_event

DEVICE = "794308010642"  # a Jointech device with a command waiting
CAMERA = "I320013590DEA0BE21F6958"
FACE_CHECK_DEVICE = "333777444585"
VENDORS = ("jointech", "ai-camera", "mettax")


def _offline_of(vendor: str):
    def match(params: dict[str, Any]) -> bool:
        return params["TransactItems"][0]["Update"]["Key"]["pk"]["S"].startswith(f"D#{vendor}#")

    return match


JOINTECH_DEVICES = Op("jointech-devices", "dynamodb", "Query", writes=False, where=where_partition("V#jointech"))
CAMERA_DEVICES = Op("camera-devices", "dynamodb", "Query", writes=False, where=where_partition("V#ai-camera"))
CONFIGS = Op("camera-configs", "dynamodb", "BatchGetItem", writes=False)
MARK_OFFLINE = Op("mark-offline", "dynamodb", "TransactWriteItems", where=_offline_of("jointech"))
PARTS_LIST = Op("parts-list", "dynamodb", "Query", writes=False, where=where_partition(keys.PARTS_PARTITION))
PARTS_READ = Op("parts-read", "dynamodb", "GetItem", writes=False, where=where_key("P#"))
PARTS_EVENT = Op("parts-event", "dynamodb", "PutItem")
PARTS_DONE = Op("parts-done", "dynamodb", "UpdateItem", where=where_key("P#"))
COMMANDS_LIST = Op("commands-list", "dynamodb", "Query", writes=False,
                   where=where_partition(keys.COMMANDS_PENDING_PARTITION))
TIME_OUT = Op("time-out", "dynamodb", "UpdateItem", where=where_key("C#"))

#: The step each call belongs to: the one a failure of it leaves for the next run.
STEP = {JOINTECH_DEVICES.label: "jointech", MARK_OFFLINE.label: "jointech", CAMERA_DEVICES.label: "ai-camera",
        CONFIGS.label: "ai-camera", PARTS_LIST.label: "parts", PARTS_READ.label: "parts",
        PARTS_EVENT.label: "parts", PARTS_DONE.label: "parts", COMMANDS_LIST.label: "commands",
        TIME_OUT.label: "commands"}

CASES = cases([("sweep", None, (JOINTECH_DEVICES, MARK_OFFLINE, CAMERA_DEVICES, CONFIGS, PARTS_LIST, PARTS_READ,
                                 PARTS_EVENT, PARTS_DONE, COMMANDS_LIST, TIME_OUT))])


def silent_devices_and_overdue_work(stack: Stack) -> tuple[datetime, set[str]]:
    """Everything the sweep looks at, last touched now: the time two hours later, and the ids of
    the events stored so far."""
    push_locations(1, DEVICE)
    heartbeat = load_event("ai-camera/http-doc-heartbeat.json")
    stack.ddb.put_item(TableName=stack.table, Item={
        "pk": {"S": keys.config_pk("ai-camera", CAMERA)}, "sk": {"S": keys.CONFIG_SK},
        "config": to_attr({"heartbeatInterval": 30})})
    assert answer_of(ai_camera_app.lambda_handler(heartbeat, context("AiCameraWebhookFunction")))[0] == 200
    # The contact the outbox records for these events. The events themselves are left out of the
    # stream's delivery (tested elsewhere): what this case publishes is what the sweep stores.
    for event in stack_events(stack, VENDORS):
        Liveness(stack.ddb, stack.table).heard(event["vendor"], event["deviceId"], event["receivedAt"])
    given = {e["eventId"] for e in stack_events(stack, VENDORS)}
    stack.new_stream_records()
    assert answer_of(mettax_app.lambda_handler(load_event("mettax/http-doc-face-check-result.json"),
                                               context("MettaxWebhookFunction")))[0] == 200
    command = load_event("jointech-commands/http-post-typed-query-base-info.json")
    assert answer_of(commands_app.lambda_handler(command, context("JointechCommandsFunction")))[0] == 202
    heard = datetime.fromisoformat(stack.state("jointech", DEVICE)["summary"]["heardAt"])
    return heard + timedelta(hours=2), given


def done(stack: Stack) -> dict[str, bool]:
    """Which of the sweep's four steps have done their work."""
    def offline(vendor: str, device: str) -> bool:
        return "offlineSince" in stack.state(vendor, device)["summary"]

    parts = [from_item(i) for i in stack.ddb.query(
        TableName=stack.table, KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": keys.parts_pk("mettax", FACE_CHECK_DEVICE)}})["Items"]]
    commands = [from_item(i) for i in stack.ddb.query(
        TableName=stack.table, KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
        ExpressionAttributeValues={":p": {"S": keys.commands_pk("jointech", DEVICE)}, ":c": {"S": "C#"}})["Items"]]
    return {"jointech": offline("jointech", DEVICE), "ai-camera": offline("ai-camera", CAMERA),
            "parts": bool(parts) and all("gsi5pk" not in p for p in parts),
            "commands": [c["status"] for c in commands] == ["timed_out"]}


def sweep(monkeypatch, at: datetime) -> Any:
    monkeypatch.setattr(sweep_app, "now_utc", lambda: at)
    return sweep_app.lambda_handler(load_event("device-sweep/scheduled.json"), context("DeviceSweepFunction"))


def logged_errors(logs) -> list[str]:
    [line] = [json.loads(line) for line in logs().splitlines()
              if line.startswith("{") and json.loads(line).get("message") == "device sweep"]
    return line["errors"]


@pytest.mark.parametrize("target, op, shape, attempts", CASES)
def test_a_sweep_whose_call_fails_does_the_rest_raises_and_the_next_run_finishes_once(
        stack, faults: Injector, monkeypatch, logs, target, op: Op, shape: str, attempts: str):
    # Given silent devices, a face check missing a part and an unanswered command, two hours on
    later, given = silent_devices_and_overdue_work(stack)
    logs()  # what the Given logged is not the sweep's
    fault = op.arm(faults, shape, attempts)

    # When the sweep runs and the call fails in this shape
    if fault.absorbed:
        sweep(monkeypatch, later)
        errors: list[str] = []
    else:
        with pytest.raises(RuntimeError, match=r"device sweep incomplete: 1 error\(s\)"):
            sweep(monkeypatch, later)
        errors = logged_errors(logs)
    faults.disarm()

    # Then the fault was met; the failure is the run's one recorded error, and every other step
    # did its work all the same
    assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
    step = STEP[op.label]
    if not fault.absorbed:
        # ...as a storage failure of its step, not whatever a crash would have been named
        assert errors == [f"{step}: StorageUnavailable"]
    finished = done(stack)
    left = {s for s, ok in finished.items() if not ok}
    if fault.absorbed:
        assert left == set()
    elif shape == LOST_ANSWER:
        assert left <= {step}  # the write landed; what the step does after it waits for the next run
    else:
        assert left == {step}

    # When the next scheduled run comes
    sweep(monkeypatch, later + timedelta(minutes=5))

    # Then everything is done, once: one device.offline event per device, one face check
    assert all(done(stack).values())
    events = stack_events(stack, VENDORS)
    assert sorted(e["deviceId"] for e in events if e["kind"] == "device.offline") == sorted([DEVICE, CAMERA])
    assert [e["kind"] for e in events if e["vendor"] == "mettax"] == ["face-check"]
    # And the outbox queues each event the sweep stored exactly once
    run_outbox_to_the_end(stack)
    sweeps = sorted(e["eventId"] for e in stack_events(stack, VENDORS) if e["eventId"] not in given)
    assert len(sweeps) == 3
    assert sorted(m["id"] for m in stack.queue_messages()) == sweeps
