"""Fan-out on the local stack: `devicegate local --parameter-overrides ConsumerApps=billing,dashboard`
creates the SNS FIFO topic, the apps' queues and the subscriptions from template.yaml, and each
app's queue, like EventsQueue, gets every event once with its attributes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from devicegate_local.names import local_queue_url
from tests.e2e.conftest import LocalStack, run_local_stack
from tests.e2e.test_local_stack import LOCATION, LOCATION_PATH
from tests.support import valid_message

pytestmark = pytest.mark.e2e

DEVICE = "8022300555"


@pytest.fixture(scope="module")
def fanout_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with run_local_stack(tmp_path_factory, "--parameter-overrides", "ConsumerApps=billing,dashboard") as stack:
        yield stack


def drain(stack: LocalStack, url: str, want: int, wait_s: float = 20) -> list[tuple[dict, dict[str, str]]]:
    sqs, out, deadline = stack.client("sqs"), [], time.monotonic() + wait_s
    while len(out) < want and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     MessageAttributeNames=["All"]).get("Messages", []):
            out.append((valid_message(json.loads(m["Body"])),
                        {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def test_each_app_and_events_queue_get_every_event_once(fanout_stack: LocalStack) -> None:
    # Given three locations pushed over HTTP
    for n in range(3):
        body = dict(LOCATION, assetId=DEVICE, gpsTime=f"2022-09-01T09:0{n}:00Z", speed=n)
        assert fanout_stack.post(LOCATION_PATH, json.dumps(body)).status == 200
    sqs = fanout_stack.client("sqs")
    # When the outbox has published them (through the topic)
    events = [(m["id"], {}) for m in fanout_stack.receive_messages(wait_s=8) if m["subject"] == DEVICE]
    apps = {app: drain(fanout_stack, local_queue_url(sqs, f"ConsumerApp{n}Queue"), 3)
            for n, app in ((1, "billing"), (2, "dashboard"))}
    # Then EventsQueue and each app's queue hold the same three events, once each, with attributes
    assert len(events) == 3 and len({i for i, _ in events}) == 3
    for app, received in apps.items():
        assert sorted(b["id"] for b, _ in received) == sorted(i for i, _ in events), app
        assert all(a == {"type": "devicegate.jointech.location", "vendor": "jointech", "device": DEVICE}
                   for _, a in received), app
    # ... and nothing more arrives (no duplicate from a retry)
    assert drain(fanout_stack, local_queue_url(sqs, "ConsumerApp1Queue"), 1, wait_s=3) == []
