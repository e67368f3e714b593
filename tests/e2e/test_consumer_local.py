"""The example consumer (examples/consumer) on the local stack: `devicegate local --app
examples/consumer/template.yaml` runs its function on its SQS event source, here the app's own
fan-out queue (ConsumerApps=consumer), so EventsQueue stays the session's to check. What the
consumer saw is read back from its log lines, typed with the client's models."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devicegate.client.models import Passage, Position, Power
from devicegate_local.names import local_queue_url
from tests.e2e.conftest import LocalStack, run_local_stack

pytestmark = pytest.mark.e2e

EVENTS = Path(__file__).resolve().parents[2] / "events"
APP_QUEUE = "ConsumerApp1Queue"
APP_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:devicegate-local-ConsumerApp1Queue.fifo"
TRACKER = "8022300901"


@pytest.fixture(scope="module")
def consumer_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with run_local_stack(tmp_path_factory, "--parameter-overrides", "ConsumerApps=consumer",
                         "--app", "examples/consumer/template.yaml",
                         "--app-param", f"EventsQueueArn={APP_QUEUE_ARN}") as stack:
        yield stack


def consumer_lines(stack: LocalStack, message: str) -> list[dict[str, Any]]:
    """The consumer's JSON log lines saying `message` (its function's output is the stack's)."""
    lines = []
    for line in stack.log().splitlines():
        if line.startswith("{") and '"devicegate-consumer"' in line:
            entry = json.loads(line)
            if entry.get("message") == message:
                lines.append(entry)
    return lines


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def seen(stack: LocalStack, event_type: str, device: str) -> list[dict[str, Any]]:
    return [e["event"] for e in consumer_lines(stack, "event")
            if e["event"]["type"] == event_type and e["event"]["device"] == device]


def test_the_consumer_sees_each_vendors_event_typed(consumer_stack: LocalStack) -> None:
    # Given a Jointech location with a fix and a face terminal's passage, pushed as the vendors do
    location = json.loads((EVENTS / "jointech/records/mqtt-location.json").read_text())
    location.update(assetId=TRACKER, locType=1, battery=80)
    assert consumer_stack.post("/hooks/jointech/dev-token/location", json.dumps(location)).status == 200
    passage = json.loads((EVENTS / "face-terminal/records/doc-record.json").read_text())
    terminal = passage["data"]["deviceSN"]
    assert consumer_stack.post("/hooks/face-terminal/dev-token", json.dumps(passage)).status == 200

    # When the consumer has handled them (outbox -> topic -> the app's queue -> its function)
    [tracked] = wait_for(lambda: seen(consumer_stack, "devicegate.jointech.location", TRACKER), "the location")
    [passed] = wait_for(lambda: seen(consumer_stack, "devicegate.face-terminal.record", terminal), "the passage")

    # Then it read each as a typed event: the vocabulary's position and power, the passage
    position = Position.model_validate(tracked["position"])
    assert (position.latitude, position.longitude, position.valid) == (location["latitude"], location["longitude"], True)
    assert Power.model_validate(tracked["power"]).batteryPct == 80
    assert "passage" not in tracked and "position" not in passed
    assert passed["passage"] == {"granted": True, "method": "face", "direction": "unknown", "role": "employee"}
    assert Passage.model_validate(passed["passage"]).granted is True
    # ... and logged nothing personal: no vendor record, no person but a role
    assert set(passed) == {"type", "source", "id", "device", "time", "passage"}
    assert passage["data"]["user"]["name"] not in json.dumps(passed, ensure_ascii=False)
    # ... and deleted what it handled: the app's queue is empty
    sqs = consumer_stack.client("sqs")
    url = local_queue_url(sqs, APP_QUEUE)
    wait_for(lambda: _in_queue(consumer_stack, url) == 0, "the app's queue to be empty", timeout=10)


def _in_queue(stack: LocalStack, url: str) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


def test_a_poison_message_is_reported_failed_retried_and_ends_in_the_dead_letter_queue(
        consumer_stack: LocalStack) -> None:
    # Given a message on the app's queue that is no devicegate event; the queue's visibility
    # timeout cut from 60 s to 1 s for the test, so its retries come within seconds
    sqs = consumer_stack.client("sqs")
    url = local_queue_url(sqs, APP_QUEUE)
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})
    time.sleep(1.5)  # the long poll under way took the queue's timeout when it began (1 s polls)
    poison = sqs.send_message(QueueUrl=url, MessageBody='{"hello": "not an event"}', MessageGroupId="poison",
                              MessageDeduplicationId="poison-1")["MessageId"]

    def refusals() -> list[dict[str, Any]]:
        return [e for e in consumer_lines(consumer_stack, "not a devicegate event") if e.get("messageId") == poison]

    # When the consumer receives it
    wait_for(refusals, "the consumer to refuse the poison message")
    # Then it was reported as a batch item failure (no function error, nothing of the body logged)
    wait_for(lambda: "ConsumerFunction reported 1 of 1 message(s) failed" in consumer_stack.log(), "the report")
    assert "BatchProcessingError" not in consumer_stack.log() and "not an event" not in consumer_stack.log()
    # ... another device's events still reach the consumer meanwhile
    location = json.loads((EVENTS / "jointech/records/mqtt-location.json").read_text())
    location.update(assetId="8022300902", locType=1)
    assert consumer_stack.post("/hooks/jointech/dev-token/location", json.dumps(location)).status == 200
    wait_for(lambda: seen(consumer_stack, "devicegate.jointech.location", "8022300902"), "the next device's event")
    # ... and it was retried, not lost: received again after each visibility timeout, then, after
    # the redrive policy's 5 receives, moved to the app's dead-letter queue
    dead = local_queue_url(sqs, "ConsumerApp1DeadLetterQueue")

    def dead_lettered() -> list[dict[str, Any]]:
        got = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return [m for m in got if m["MessageId"] == poison]

    [moved] = wait_for(dead_lettered, "the poison message in the dead-letter queue", timeout=40)
    assert moved["Body"] == '{"hello": "not an event"}' and len(refusals()) == 5
    assert _in_queue(consumer_stack, url) == 0
