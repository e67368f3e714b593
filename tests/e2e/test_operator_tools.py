"""`devicegate examples load`, `urls`, `smoke` and `invoke` against a running local stack of this
module's own (they add sample devices and records, which the session's shared stack must not
see), driven as a developer drives them: the CLI in a subprocess that finds the stack through
its state file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from devicegate.store.queries import device_events, device_state, event_by_id
from devicegate.vendors import vendor_names
from devicegate_local.names import LOCAL_CREDENTIALS, LOCAL_REGION, local_physical_name
from tests.e2e.conftest import READY, _free_ports

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: This module's stack runs with a parameter other than the template's default, which `invoke`
#: must give the functions too.
CAMERA_DEFAULT = {"heartbeatInterval": 45, "eventSendMode": "realTime"}


@dataclass
class Running:
    env: dict[str, str]
    moto: str
    http: str

    def client(self, service: str):
        return boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS).client(service, endpoint_url=self.moto)

    def devicegate(self, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "devicegate_cli.main", *argv], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def event_count(self) -> int:
        ddb, count, kwargs = self.client("dynamodb"), 0, {"TableName": local_physical_name("EventsTable"),
                                                          "ProjectionExpression": "pk"}
        while True:
            page = ddb.scan(**kwargs)
            count += sum(item["pk"]["S"].startswith("E#") for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return count
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    http, moto, mqtt, iot_data = _free_ports(4)
    work = tmp_path_factory.mktemp("operator-tools")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICEGATE_"))}
    env["DEVICEGATE_STATE_DIR"] = str(work / "state")
    log_path = work / "local.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "devicegate_cli.main", "local", "--http-port", str(http),
                                    "--moto-port", str(moto), "--mqtt-port", str(mqtt), "--iot-data-port",
                                    str(iot_data), "--quiet", "--parameter-overrides",
                                    f"AiCameraDefaultConfig={json.dumps(CAMERA_DEFAULT)}"], cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"},
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while READY not in log_path.read_text(errors="replace").splitlines():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"devicegate local did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield Running(env, f"http://127.0.0.1:{moto}", f"http://127.0.0.1:{http}")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_examples_load_every_vendors_samples_once(running):
    # Given a fresh local stack
    # When the examples are loaded
    done = running.devicegate("examples", "load")
    # Then each vendor of the registry is named with what its samples got, nothing unexpected
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == vendor_names()
    assert not any("unexpected" in line for line in lines)
    assert "senselink: 7 accepted, 2 refused (quarantined)" in lines  # its connection frames
    assert re.fullmatch(r"loaded: [1-9]\d* new events stored and published", lines[-1])
    # And the device docs/commands.md sends commands to has reported (its state exists)
    assert device_state(running.client("dynamodb"), local_physical_name("EventsTable"), "jointech",
                        "794308010642") is not None
    # When they are loaded again, nothing new is stored (every push is a retransmission)
    before = running.event_count()
    again = running.devicegate("examples", "load")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "loaded: nothing new (every sample was there already)"
    assert running.event_count() == before


def test_urls_name_every_vendor_with_its_token_masked_unless_revealed(running):
    # When the URLs of the running stack are asked for
    done = running.devicegate("urls")
    # Then each vendor of the registry has its webhook URL on the stack's HTTP address, token masked
    assert done.returncode == 0, done.stderr
    vendors = {line.split()[0] for line in done.stdout.splitlines()}
    assert vendors == set(vendor_names())
    assert f"jointech       {running.http}/hooks/jointech/dev******" in done.stdout.splitlines()
    assert "dev-token" not in done.stdout
    assert "--reveal" in done.stderr
    # And --reveal --json gives the URLs to paste, token and all
    revealed = json.loads(running.devicegate("urls", "--reveal", "--json").stdout)
    assert {v["vendor"]: v["urls"][0] for v in revealed}["mettax"] == f"{running.http}/hooks/mettax/dev-token"


def test_smoke_finds_one_new_record_per_vendor_stored_and_published(running):
    # When the smoke test runs against the local stack
    done = running.devicegate("smoke")
    # Then there is one line per vendor, each ok, and exit 0
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == vendor_names()
    ddb, table = running.client("dynamodb"), local_physical_name("EventsTable")
    for line in lines:
        vendor, status, _, device, _, event_id = line.split()[:6]
        assert status == "ok" and line.endswith("stored, published"), line
        # And each record it names really is in the table, under the device it says
        assert event_by_id(ddb, table, vendor, device, event_id.rstrip(":")) is not None, line
    # And a second run makes new records again (fresh ids and times), so it passes again
    again = running.devicegate("smoke")
    assert again.returncode == 0, again.stdout
    assert set(again.stdout.split()) & {line.split()[5] for line in lines} == set()


def test_smoke_fails_a_vendor_whose_route_refuses_and_exits_1(running):
    # Given the Mettax token rotated in its secret while the function still holds the old one
    # (it re-reads the secret every 5 minutes): the URL the console would get is refused
    secrets = running.client("secretsmanager")
    name = local_physical_name("MettaxTokenSecret")
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps({"current": "rotated-token"}))
    try:
        done = running.devicegate("smoke", "--wait", "5")
    finally:
        secrets.put_secret_value(SecretId=name, SecretString=json.dumps({"current": "dev-token"}))
    # Then Mettax's line says FAILED with the HTTP answer, the others are ok, and the exit is 1
    assert done.returncode == 1, done.stdout
    by_vendor = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert by_vendor["mettax"].startswith("mettax  FAILED  HTTP 403"), by_vendor["mettax"]
    assert all(" ok " in line for vendor, line in by_vendor.items() if vendor != "mettax")


def test_invoke_against_the_running_stack_stores_there(running, tmp_path):
    # Given a Jointech record with a kind's route, as a vendor body
    done = running.devicegate("invoke", "JointechWebhookFunction", "-e", "events/jointech/records/variation-minimal.json",
                              "--path", "/hooks/jointech/dev-token/location")
    # Then the running stack's function answered (a repeat: examples load pushed the same record)
    assert done.returncode == 0, done.stderr
    assert json.loads(json.loads(done.stdout)["body"])["result"] == 200
    # And a message of a device never heard from, published on its topic, is stored in the
    # running stack's table
    record = json.loads((ROOT / "events/jointech/records/mqtt-location.json").read_text())
    (tmp_path / "message.json").write_text(json.dumps(dict(record, assetId="8099900001")))
    done = running.devicegate("invoke", "JointechMqttFunction", "-e", str(tmp_path / "message.json"),
                              "--topic", "upload/ak-demo/8099900001/location")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored"] == 1
    [stored] = device_events(running.client("dynamodb"), local_physical_name("EventsTable"), "jointech", "8099900001")
    assert stored["kind"] == "location"


def test_invoke_gives_the_function_the_running_stacks_parameters_and_fresh_the_templates(running):
    # Given the stack started with AiCameraDefaultConfig's heartbeatInterval 45 (the template says 60)
    sample = "events/ai-camera/http-variation-heartbeat-minimal.json"
    # When a camera's heartbeat is invoked against it, and against a fresh emulation
    on_stack = running.devicegate("invoke", "AiCameraWebhookFunction", "-e", sample)
    fresh = running.devicegate("invoke", "AiCameraWebhookFunction", "-e", sample, "--fresh")
    # Then each answers with the configuration its own parameters make
    assert on_stack.returncode == 0 and fresh.returncode == 0, on_stack.stderr + fresh.stderr
    assert json.loads(json.loads(on_stack.stdout)["body"])["info"]["heartbeatInterval"] == 45
    assert json.loads(json.loads(fresh.stdout)["body"])["info"]["heartbeatInterval"] == 60


@pytest.mark.parametrize(("argv", "says"), [
    (["examples", "load"], "devicegate examples: no local stack is running here"),
    (["urls"], "devicegate urls: no local stack is running here"),
    (["smoke"], "devicegate smoke: no local stack is running here"),
    (["urls", "--region", "eu-west-1"], "devicegate urls: --profile and --region name a deployment: give its --stack"),
    (["examples"], "devicegate examples: the following arguments are required: ACTION"),
    (["smoke", "--wait", "soon"], "devicegate smoke: argument --wait: invalid float value: 'soon'"),
])
def test_each_mistake_is_one_line_and_exit_2(tmp_path, argv, says):
    # Given no running stack (an empty state directory)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICEGATE_"))}
    env["DEVICEGATE_STATE_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "devicegate_cli.main", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert says in done.stderr
