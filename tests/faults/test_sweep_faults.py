"""Faults in the scheduled sweep, each of its calls: two hours after a Jointech device and two AI
cameras were last heard from, a Mettax face check got only its picture (no time of its own) and a
command got no answer, the sweep has five things to do, each in a shard of its own work list:

    Jointech device offline   due Query (its DUE#n), device items BatchGetItem, TransactWriteItems
                              (its item + the device.offline event)
    AI camera offline         device items and configurations BatchGetItem (its DUE#n)
    camera told a longer      its due bucket passed, but it is not silent for its new interval:
    interval since            device item PutItem (moved to its new bucket; its DUE#n)
    face check published      pending parts Query (its PARTS#n), parts GetItem, id marker
                              PutItem, event PutItem, parts UpdateItem
    command timed out         pending commands Query (its CMDPENDING#n), command UpdateItem

Every case: a failed call is recorded as the run's error, named by its step (a due shard, parts,
commands), every other step still does its work, and the run raises at the end (the Errors metric
and SweepErrorAlarm); the next run finishes the failed step, and nothing happens twice: one
device.offline event per silent device, none for the camera still on time, one face-check event,
the command timed out once, each event queued once.

Matrix: 1 sweep, 12 calls: 6 reads x 6 shape variants + 6 writes x 8, plus the 2 other network
errors on its first call and the 2 throttled answers of the 2 batch reads and the transaction
(3 x 2) = 92 cases.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from devicegate.core.offline import OfflinePolicy
from devicegate.core.timeutil import now_utc
from devicegate.infra.settings import get_settings
from devicegate.store import keys
from devicegate.store.codec import from_item, to_attr
from devicegate.store.devices import DeviceNews, DeviceStore, GroupNews, due_bucket
from devicegate.vendors import get_adapter
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
    where_batch,
    where_key,
    where_partition,
    where_transaction,
)
from tests.faults.test_outbox_faults import push_locations
from tests.support import Stack, context, load_event

DEVICE = "794308010642"  # a Jointech device with a command waiting
CAMERA = "I320013590DEA0BE21F6958"
RETOLD_CAMERA = "I320013590DEA0BE21F6959"  # told a longer interval after its last heartbeat
RETOLD_CONFIG = {"heartbeatInterval": 3600}  # offline after 3 h: not yet, two hours on
FACE_CHECK_DEVICE = "333777444585"
VENDORS = ("jointech", "ai-camera", "mettax")

#: The step a failure belongs to, as the sweep names it: the due shard each device is listed in
#: (each in its own: a failed shard must not hide another device's work), the parts, the commands.
JOINTECH_STEP, CAMERA_STEP, RETOLD_STEP = (keys.due_pk("jointech", DEVICE), keys.due_pk("ai-camera", CAMERA),
                                           keys.due_pk("ai-camera", RETOLD_CAMERA))
assert len({JOINTECH_STEP, CAMERA_STEP, RETOLD_STEP}) == 3, "the devices must be in three shards of DUE"

JOINTECH_DUE = Op("jointech-due", "dynamodb", "Query", writes=False, where=where_partition(JOINTECH_STEP, exact=True))
JOINTECH_READ = Op("jointech-read", "dynamodb", "BatchGetItem", writes=False,
                   where=where_batch(keys.device_pk("jointech", DEVICE)))
MARK_OFFLINE = Op("mark-offline", "dynamodb", "TransactWriteItems",
                  where=where_transaction(keys.device_pk("jointech", DEVICE)))
CAMERA_READ = Op("camera-read", "dynamodb", "BatchGetItem", writes=False,
                 where=where_batch(keys.config_pk("ai-camera", CAMERA)))
REBUCKET = Op("rebucket", "dynamodb", "PutItem", where=where_key(keys.device_pk("ai-camera", RETOLD_CAMERA)))
PARTS_LIST = Op("parts-list", "dynamodb", "Query", writes=False,
                where=where_partition(keys.parts_pending_pk("mettax", FACE_CHECK_DEVICE), exact=True))
PARTS_READ = Op("parts-read", "dynamodb", "GetItem", writes=False, where=where_key("P#"))
PARTS_MARKER = Op("parts-marker", "dynamodb", "PutItem", where=where_key("EID#"))
PARTS_EVENT = Op("parts-event", "dynamodb", "PutItem", where=where_key("E#"))
PARTS_DONE = Op("parts-done", "dynamodb", "UpdateItem", where=where_key("P#"))
COMMANDS_LIST = Op("commands-list", "dynamodb", "Query", writes=False,
                   where=where_partition(keys.commands_pending_pk("jointech", DEVICE), exact=True))
TIME_OUT = Op("time-out", "dynamodb", "UpdateItem", where=where_key("C#"))

STEP = {JOINTECH_DUE.label: JOINTECH_STEP, JOINTECH_READ.label: JOINTECH_STEP, MARK_OFFLINE.label: JOINTECH_STEP,
        CAMERA_READ.label: CAMERA_STEP, REBUCKET.label: RETOLD_STEP, PARTS_LIST.label: "parts",
        PARTS_READ.label: "parts", PARTS_MARKER.label: "parts", PARTS_EVENT.label: "parts",
        PARTS_DONE.label: "parts", COMMANDS_LIST.label: "commands", TIME_OUT.label: "commands"}

CASES = cases([("sweep", None, (JOINTECH_DUE, JOINTECH_READ, MARK_OFFLINE, CAMERA_READ, REBUCKET, PARTS_LIST,
                                 PARTS_READ, PARTS_MARKER, PARTS_EVENT, PARTS_DONE, COMMANDS_LIST, TIME_OUT))])


def policy() -> OfflinePolicy:
    """The offline intervals the outbox and the sweep apply (the deployment's OFFLINE_AFTER)."""
    return OfflinePolicy(get_settings().offline_after, get_adapter)


def configured(stack: Stack, camera: str, config: dict[str, Any]) -> None:
    # What an app (or `devicegate strategy set`) writes.
    stack.ddb.put_item(TableName=stack.table, Item={
        "pk": {"S": keys.config_pk("ai-camera", camera)}, "sk": {"S": keys.CONFIG_SK}, "config": to_attr(config)})


def silent_devices_and_overdue_work(stack: Stack) -> tuple[datetime, set[str]]:
    """Everything the sweep looks at, last touched now: the time two hours later, and the ids of
    the events stored so far."""
    push_locations(1, DEVICE)
    for camera in (CAMERA, RETOLD_CAMERA):
        configured(stack, camera, {"heartbeatInterval": 30})
    heartbeat = load_event("ai-camera/http-doc-heartbeat.json")
    assert answer_of(ai_camera_app.lambda_handler(heartbeat, context("AiCameraWebhookFunction")))[0] == 200
    # The contact the outbox records for these events, each device filed under the due bucket
    # its interval gives it (the second camera heard from like the first). The events themselves
    # are left out of the stream's delivery (tested elsewhere): what this case publishes is what
    # the sweep stores.
    given = stack_events(stack, VENDORS)
    news = [DeviceNews(e["vendor"], e["deviceId"], heard_at=e["receivedAt"],
                       groups={"summary": GroupNews(e["occurredAt"], e["eventId"], {"lastKind": e["kind"]})})
            for e in given]
    [camera] = [n for n in news if n.device_id == CAMERA]
    news.append(DeviceNews("ai-camera", RETOLD_CAMERA, heard_at=camera.heard_at, groups=dict(camera.groups)))
    DeviceStore(stack.ddb, stack.table).apply_many(news, now_utc(), policy())
    configured(stack, RETOLD_CAMERA, RETOLD_CONFIG)
    stack.new_stream_records()
    # A face check whose result never comes: its picture carries no time, so neither does the
    # record the sweep assembles from it (its event is keyed by an id marker)
    assert answer_of(mettax_app.lambda_handler(load_event("mettax/http-doc-face-check-picture.json"),
                                               context("MettaxWebhookFunction")))[0] == 200
    command = load_event("jointech-commands/http-post-typed-query-base-info.json")
    assert answer_of(commands_app.lambda_handler(command, context("JointechCommandsFunction")))[0] == 202
    heard = datetime.fromisoformat(stack.device_item("jointech", DEVICE)["heardAt"])
    return heard + timedelta(hours=2), {e["eventId"] for e in given}


def done(stack: Stack) -> dict[str, bool]:
    """Which of the sweep's steps have done their work."""
    def offline(vendor: str, device: str) -> bool:
        return "offlineSince" in stack.device_item(vendor, device)

    retold = stack.device_item("ai-camera", RETOLD_CAMERA)
    rebucketed = retold["gsi5sk"] == keys.due_sk(due_bucket(retold["heardAt"], policy().interval(
        "ai-camera", RETOLD_CONFIG)), "ai-camera", RETOLD_CAMERA)
    assert retold["online"] is True and "offlineSince" not in retold  # on time for its new interval
    parts = [from_item(i) for i in stack.ddb.query(
        TableName=stack.table, KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": keys.parts_pk("mettax", FACE_CHECK_DEVICE)}})["Items"]]
    commands = [from_item(i) for i in stack.ddb.query(
        TableName=stack.table, KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
        ExpressionAttributeValues={":p": {"S": keys.commands_pk("jointech", DEVICE)}, ":c": {"S": "C#"}})["Items"]]
    return {JOINTECH_STEP: offline("jointech", DEVICE), CAMERA_STEP: offline("ai-camera", CAMERA),
            RETOLD_STEP: rebucketed, "parts": bool(parts) and all("gsi5pk" not in p for p in parts),
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

    # Then everything is done, once: one device.offline event per silent device, one face check
    assert all(done(stack).values())
    events = stack_events(stack, VENDORS)
    assert sorted(e["deviceId"] for e in events if e["kind"] == "device.offline") == sorted([DEVICE, CAMERA])
    assert [e["kind"] for e in events if e["vendor"] == "mettax"] == ["face-check"]
    # And the outbox queues each event the sweep stored exactly once
    run_outbox_to_the_end(stack)
    sweeps = sorted(e["eventId"] for e in stack_events(stack, VENDORS) if e["eventId"] not in given)
    assert len(sweeps) == 3
    assert sorted(m["id"] for m in stack.queue_messages()) == sweeps
