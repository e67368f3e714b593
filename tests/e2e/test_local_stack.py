"""End to end over real HTTP: `devicegate local` → webhook handler → DynamoDB → stream → outbox → SQS.

Runs the stack exactly as a developer does (see conftest.py); Ctrl-C is the fixture's teardown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

DEVICE = "8022300001"
LOCATION = {
    "assetId": DEVICE, "longitude": 0.0, "latitude": 0.0, "speed": 0, "direction": 0, "mileage": 16,
    "gpsTime": "2022-09-01T08:59:56Z", "ksInfo": "", "recvTime": "2022-09-01T08:59:56.964Z",
    "locType": 0, "cellSignal": 19, "gnssSignal": 0, "cells": "460,0,9383,220792647", "battery": 100,
    "voltage": "0.0", "statusJson": "{\"lockBar\":-1,\"lockRope\":0,\"lockStatus\":0}",
    "expandInfo": "{\"angle\":\"null\",\"backBattery\":\"null\",\"fuels\":\"-1,-1,-1\",\"humidity\":\"0\","
                  "\"lux\":\"0.0\",\"networkType\":\"0\",\"pressure\":\"0.0\",\"reportType\":\"0\","
                  "\"temperature\":\"-1000.0\"}",
}
LOCATION_PATH = "/hooks/jointech/dev-token/location"


def device_events(stack, device: str) -> list[dict[str, Any]]:
    """The device's event items: its partition (E#jointech#<device>), as the query CLI reads it."""
    from devicegate.store import keys

    ddb = stack.client("dynamodb")
    return ddb.query(
        TableName=stack.table_name, ConsistentRead=True,
        KeyConditionExpression="pk = :d",
        ExpressionAttributeValues={":d": {"S": keys.event_pk("jointech", device)}},
    )["Items"]


def receive_messages(stack, wait_s: float) -> list[dict[str, Any]]:
    """Every EventsQueue message that arrives within `wait_s` seconds (deleted once read; kept by
    the session for its table-and-queue check)."""
    return stack.receive_messages(wait_s)


def stored_keys(stack) -> set[str]:
    """pk of every event and quarantine item (device rows are the outbox's, not the request's)."""
    ddb = stack.client("dynamodb")
    keys: set[str] = set()
    kwargs: dict[str, Any] = {"TableName": stack.table_name, "ProjectionExpression": "pk"}
    while True:
        page = ddb.scan(**kwargs)
        keys |= {item["pk"]["S"] for item in page["Items"] if not item["pk"]["S"].startswith("D#")}
        if "LastEvaluatedKey" not in page:
            return keys
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stored_objects(stack) -> set[str]:
    listing = stack.client("s3").list_objects_v2(Bucket=stack.bucket_name)
    return {obj["Key"] for obj in listing.get("Contents", [])}


@pytest.fixture(scope="module")
def first_delivery(local_stack):
    """Given a fresh stack, when the documented location record is POSTed: the reply, the
    device's event items once stored and the queue messages published for it (≤ 10 s)."""
    reply = local_stack.post(LOCATION_PATH, json.dumps(LOCATION))
    deadline = time.monotonic() + 10
    items = device_events(local_stack, DEVICE)
    while not items and time.monotonic() < deadline:
        time.sleep(0.2)
        items = device_events(local_stack, DEVICE)
    messages = receive_messages(local_stack, max(1.0, deadline - time.monotonic()))
    while not messages and time.monotonic() < deadline:
        messages = receive_messages(local_stack, 1)
    return reply, items, messages


def test_location_post_is_stored_and_published(first_delivery):
    reply, items, messages = first_delivery
    # Then the vendor gets Jointech's success answer
    assert reply.status == 200, reply.body
    assert reply.json().get("result") == 200
    # And the table holds exactly one location event for the device
    assert len(items) == 1, items
    item = items[0]
    assert item["pk"]["S"].startswith("E#jointech#")
    assert item["deviceId"]["S"] == DEVICE
    assert item["kind"]["S"] == "location"
    # And the outbox published one CloudEvent for it to EventsQueue
    published = [m for m in messages if m.get("subject") == DEVICE]
    assert len(published) == 1, messages
    assert published[0]["type"] == "devicegate.jointech.location"


def test_repeated_post_is_deduplicated(local_stack, first_delivery):
    # Given the location record was stored and published once (first_delivery)
    assert len(first_delivery[1]) == 1
    # When the vendor pushes the very same record again
    reply = local_stack.post(LOCATION_PATH, json.dumps(LOCATION))
    # Then it is acknowledged, but neither stored nor published a second time
    assert reply.status == 200, reply.body
    assert reply.json().get("result") == 200
    assert receive_messages(local_stack, 3) == []
    assert len(device_events(local_stack, DEVICE)) == 1


def test_wrong_token_is_rejected_and_nothing_stored(local_stack, first_delivery):
    # Given the stack's current items and payload objects
    keys_before, objects_before = stored_keys(local_stack), stored_objects(local_stack)
    record = dict(LOCATION, assetId="8022300002")
    # When a push arrives with a token that is not the vendor's
    reply = local_stack.post("/hooks/jointech/not-the-token/location", json.dumps(record))
    # Then it is refused and leaves no trace in the table, the bucket or the queue
    assert reply.status == 403, reply.body
    time.sleep(1)
    assert stored_keys(local_stack) == keys_before
    assert stored_objects(local_stack) == objects_before
    assert device_events(local_stack, "8022300002") == []
    assert receive_messages(local_stack, 1) == []


def test_malformed_json_is_a_client_error(local_stack):
    # When the body is not JSON at all
    reply = local_stack.post(LOCATION_PATH, '{"assetId": "8022300001", ')
    # Then the answer is a 400 with a JSON body, never a 5xx
    assert reply.status == 400, reply.body
    assert isinstance(reply.json(), dict)


def test_unknown_route_is_404(local_stack):
    # When a path no function serves is requested
    reply = local_stack.post("/hooks/nobody/dev-token", "{}")
    # Then the HTTP API answers 404 Not Found, as API Gateway does
    assert reply.status == 404
    assert reply.json() == {"message": "Not Found"}
    # And a served path with another method is not a route either
    assert local_stack.request("GET", LOCATION_PATH).status == 404


def _cli(local_stack, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devicegate_cli.main", *argv,
                           "--endpoint-url", local_stack.moto_endpoint],
                          capture_output=True, text=True, timeout=60)


def test_query_cli_reads_the_running_stack(local_stack, first_delivery):
    # Given the documented location record stored through the gateway (first_delivery)
    assert len(first_delivery[1]) == 1
    # When an operator asks the CLI for the device's events and state
    events = _cli(local_stack, "events", "--vendor", "jointech", "--device", DEVICE, "--json")
    table = _cli(local_stack, "events", "--vendor", "jointech", "--device", DEVICE)
    deadline = time.monotonic() + 10
    state = _cli(local_stack, "state", "--vendor", "jointech", "--device", DEVICE, "--json")
    while state.returncode != 0 and time.monotonic() < deadline:  # the outbox runs asynchronously
        time.sleep(0.3)
        state = _cli(local_stack, "state", "--vendor", "jointech", "--device", DEVICE, "--json")
    # Then it gets the stored event as JSON, a readable table, and the device's last-seen state
    assert events.returncode == 0, events.stderr
    [event] = json.loads(events.stdout)
    assert (event["vendor"], event["deviceId"], event["kind"]) == ("jointech", DEVICE, "location")
    assert event["data"]["assetId"] == DEVICE and event["occurredAt"] == "2022-09-01T08:59:56.000Z"
    assert table.stdout.splitlines()[0].split() == ["OCCURREDAT", "KIND", "EVENTID", "SUMMARY"]
    assert state.returncode == 0, state.stderr
    summary = json.loads(state.stdout)
    assert summary["deviceId"] == DEVICE and summary["lastSeen"] == "2022-09-01T08:59:56.000Z"
    assert summary["state"]["power"]["batteryPct"] == 100


def test_commands_follow_a_stack_on_other_ports_without_flags(local_stack):
    # Given the stack on free ports (not 3000/5000) and a location stored through it
    assert local_stack.post(LOCATION_PATH, json.dumps(dict(LOCATION, assetId="8022300071"))).status == 200
    # When an operator runs the banner's commands with no endpoint flag nor variable, from anywhere
    # under the project (the stack announced itself: $DEVICEGATE_STATE_DIR here, .devicegate/ by default)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICEGATE_"))}
    env["DEVICEGATE_STATE_DIR"] = str(local_stack.state_dir)

    def devicegate(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "devicegate_cli.main", *argv], env=env, cwd=ROOT / "docs",
                              capture_output=True, text=True, timeout=60)

    deadline = time.monotonic() + 20
    while True:
        found = devicegate("events", "--vendor", "jointech", "--device", "8022300071")
        if found.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Then they reach it (the event is there), and the command API's default is its HTTP port too
    assert found.returncode == 0 and "location" in found.stdout, found.stderr
    status = devicegate("command", "status", "--device", "8022300071")
    assert status.returncode == 0 and "(none)" in status.stdout, status.stderr
