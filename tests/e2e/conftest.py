"""The local stack (`devicegate local`) as a subprocess on free ports, for end-to-end tests.

The stack is started once per test session from the repository root, exactly as a developer
runs it, and stopped with SIGINT (Ctrl-C) at the end: the teardown asserts it exits 0 promptly
and without a traceback, which is the Ctrl-C test. Before that, it checks that the table and the
queue agree over everything the session's tests did: every stored event published exactly once,
every published message a stored event (assert_table_and_queue_agree). Tests read the queue only
through LocalStack.receive_messages, which keeps what they read for that check.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from devicegate_local.names import LOCAL_CREDENTIALS, LOCAL_REGION, local_physical_name, local_queue_url
from tests.support import valid_message

ROOT = Path(__file__).resolve().parents[2]
READY = "devicegate local: ready"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
#: How long the session's end waits for the outbox to publish what the last tests stored.
AGREEMENT_TIMEOUT_S = 30


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class HttpReply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LocalStack:
    base_url: str
    moto_endpoint: str
    session: boto3.Session
    table_name: str
    events_queue_url: str
    bucket_name: str
    log_path: Path
    mqtt_port: int  # the stack's mosquitto, on 127.0.0.1
    iot_data_endpoint: str  # what the stack sets as AWS_ENDPOINT_URL_IOT_DATA_PLANE for its functions
    state_dir: Path  # where it says where it runs ($DEVICEGATE_STATE_DIR): commands follow it

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.moto_endpoint)

    def post(self, path: str, body: str | bytes, content_type: str = "application/json") -> HttpReply:
        return self.request("POST", path, body, {"content-type": content_type})

    def request(
        self, method: str, path: str, body: str | bytes | None = None, headers: dict[str, str] | None = None
    ) -> HttpReply:
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return HttpReply(response.status, response.read())
        except urllib.error.HTTPError as error:
            return HttpReply(error.code, error.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    #: Every EventsQueue message the session received, in order: what the table is checked against
    #: when the stack stops (assert_table_and_queue_agree).
    received: list[dict[str, Any]] = field(default_factory=list)

    def receive_messages(self, wait_s: float) -> list[dict[str, Any]]:
        """Every EventsQueue message that arrives within `wait_s` seconds (deleted once read). The
        one way tests read the queue, so the session sees every message that was published."""
        sqs = self.client("sqs")
        bodies: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            got = sqs.receive_message(QueueUrl=self.events_queue_url, MaxNumberOfMessages=10,
                                      WaitTimeSeconds=min(1, max(0, int(remaining))))
            for message in got.get("Messages", []):
                # Checked against docs/contracts: every message a test reads matches its schema.
                bodies.append(valid_message(json.loads(message["Body"])))
                sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"])
            if not got.get("Messages") and remaining < 1:
                break
        self.received.extend(bodies)
        return bodies


def stored_event_identities(stack: LocalStack) -> list[tuple[str, str]]:
    """(CloudEvents source, id) of every event item in the table, as the outbox publishes them."""
    from devicegate.outbox.messages import event_source

    ddb = stack.client("dynamodb")
    found: list[tuple[str, str]] = []
    kwargs: dict[str, Any] = {"TableName": stack.table_name, "ProjectionExpression": "pk, vendor, deviceId, eventId"}
    while True:
        page = ddb.scan(**kwargs)
        found += [(event_source(item["vendor"]["S"], item["deviceId"]["S"]), item["eventId"]["S"])
                  for item in page["Items"] if item["pk"]["S"].startswith("E#")]
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def assert_table_and_queue_agree(stack: LocalStack, settle_s: float = AGREEMENT_TIMEOUT_S) -> None:
    """After every end-to-end test: each stored event was published exactly once, and each
    published message is a stored event (no item without its message, no two items under one
    identity, no message twice). Waits for the outbox to publish what is still in flight."""
    deadline = time.monotonic() + settle_s
    while True:
        stored = stored_event_identities(stack)
        stack.receive_messages(1)
        published = [(m["source"], m["id"]) for m in stack.received]
        if set(published) >= set(stored) or time.monotonic() > deadline:
            break
    repeated_items = sorted(identity for identity, count in Counter(stored).items() if count > 1)
    repeated_messages = sorted(identity for identity, count in Counter(published).items() if count > 1)
    never_published = sorted(set(stored) - set(published))
    never_stored = sorted(set(published) - set(stored))
    assert not repeated_items, f"two items under one event identity: {repeated_items[:10]}"
    assert not repeated_messages, f"events published more than once: {repeated_messages[:10]}"
    assert not never_published, f"{len(never_published)} stored events never published: {never_published[:10]}"
    assert not never_stored, f"{len(never_stored)} published events not in the table: {never_stored[:10]}"


def _wait_ready(process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if READY in text.splitlines():
            return
        if process.poll() is not None:
            pytest.fail(f"devicegate local exited with {process.returncode} before ready:\n{text}")
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"devicegate local not ready within {START_TIMEOUT_S}s:\n{log_path.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with run_local_stack(tmp_path_factory) as stack:
        yield stack


@contextlib.contextmanager
def run_local_stack(tmp_path_factory: pytest.TempPathFactory, *extra_args: str) -> Iterator[LocalStack]:
    """`devicegate local` with `extra_args` (e.g. --parameter-overrides), until Ctrl-C."""
    http_port, moto_port, mqtt_port, iot_data_port = _free_ports(4)
    log_path = tmp_path_factory.mktemp("local-stack") / "devicegate-local.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "DEVICEGATE_LOCAL_TOKEN"}
    env["PYTHONUNBUFFERED"] = "1"
    # Where the stack says where it runs: not the checkout, where a developer's own stack may be.
    state_dir = tmp_path_factory.mktemp("local-state")
    env["DEVICEGATE_STATE_DIR"] = str(state_dir)
    command = [
        sys.executable, "-m", "devicegate_cli.main", "local",
        "--http-port", str(http_port), "--moto-port", str(moto_port),
        "--mqtt-port", str(mqtt_port), "--iot-data-port", str(iot_data_port),
        # The device sweep every few seconds instead of every 5 minutes, so tests see it run.
        "--schedule-every", "3", *extra_args,
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, log_path)
        endpoint = f"http://127.0.0.1:{moto_port}"
        session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
        sqs = session.client("sqs", endpoint_url=endpoint)
        stack = LocalStack(
            base_url=f"http://127.0.0.1:{http_port}",
            moto_endpoint=endpoint,
            session=session,
            table_name=local_physical_name("EventsTable", "AWS::DynamoDB::Table"),
            events_queue_url=local_queue_url(sqs, "EventsQueue"),  # FIFO or not, as the template has it
            bucket_name=local_physical_name("PayloadBucket", "AWS::S3::Bucket"),
            log_path=log_path,
            mqtt_port=mqtt_port,
            iot_data_endpoint=f"http://127.0.0.1:{iot_data_port}",
            state_dir=state_dir,
        )
        yield stack
        assert_table_and_queue_agree(stack)
    finally:
        if process.poll() is None:
            stopping_at = len(log_path.read_text(errors="replace"))
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"devicegate local did not stop within {STOP_TIMEOUT_S}s of SIGINT")
            shutdown = log_path.read_text(errors="replace")[stopping_at:]
            assert code == 0, f"devicegate local exited {code} on SIGINT:\n{shutdown}"
            assert "Traceback" not in shutdown, shutdown
            assert "devicegate local: stopped" in shutdown, shutdown
            # The stack's mosquitto stops with it: nothing listens on its port any more.
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", mqtt_port)) != 0, "the MQTT broker outlived the stack"
