"""`devicegate invoke`: every invocation event in events/ run through the function it is meant for,
each in its own processes with only its template environment, against one fresh emulation; and
the command itself (stdout the answer, stderr the function's logs, one line for each mistake)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devicegate.core.adapter import Outcome
from devicegate.vendors import get_adapter, vendor_names
from devicegate_cli.invoke import Emulation, emulation, function_of, lambda_event

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
#: Files in events/ that are no invocation event (a camera's configuration item, for the docs).
NOT_EVENTS = {"ai-camera/config-example.json"}
#: Events a fresh stack refuses, and where the docs say so: SenseLink's connection frames
#: (docs/vendors/senselink.md: quarantined, answered code 400), commands to a device that has
#: never reported, sent now or kept for its next contact (docs/commands.md: HTTP 404 unknown
#: device), and the cancel of a command the fresh stack does not hold (HTTP 404 no such command).
REFUSED = {"senselink/http-ws-doc-connected.json", "senselink/http-ws-doc-denied.json",
           "jointech-commands/http-post-raw-base-info.json", "jointech-commands/http-post-typed-query-base-info.json",
           "jointech-commands/http-post-typed-query-time-with-token.json",
           "jointech-commands/http-post-typed-query-base-info-when-online.json", "jointech-commands/http-post-cancel.json"}
SAMPLES = sorted(str(p.relative_to(EVENTS)) for p in EVENTS.glob("*/*.json") if str(p.relative_to(EVENTS)) not in NOT_EVENTS)


@pytest.fixture(scope="module", autouse=True)
def _moto_put_back(moto_patches_undone_for_the_module):
    """--fresh runs the stack's moto in this process (patched as the stack patches it)."""


@pytest.fixture(scope="module")
def fresh() -> Iterator[Emulation]:
    with emulation(fresh=True) as em:
        yield em


def _codes(value: Any) -> Any:
    """The numbers of a vendor answer (its status codes), without its texts."""
    if isinstance(value, dict):
        return {k: _codes(v) for k, v in value.items() if not isinstance(v, str)}
    return value


def _contains(whole: Any, part: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and _contains(whole[k], v) for k, v in part.items())
    return bool(whole == part)


def _vendor_of(event: dict[str, Any]) -> str | None:
    parts = str(event.get("rawPath", "")).split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "hooks" and parts[2] in vendor_names() else None


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_event_invokes_its_function_cleanly(fresh, sample):
    # Given an invocation event of events/ and the function its route, rule, stream or schedule names
    raw = (EVENTS / sample).read_bytes()
    event = json.loads(raw)
    function = function_of(event, fresh)
    assert function in fresh.specs, f"{sample} is an event of no function of template.yaml"
    # When it is invoked through `devicegate invoke`'s path (the event taken as it is)
    result = fresh.invoker(function, lambda_event(function, raw, fresh))
    # Then the function answers as the vendor expects: its success answer, or, for the events the
    # docs say a fresh stack refuses, its refusal
    vendor = _vendor_of(event)
    refused = sample in REFUSED
    if vendor is not None:
        expected = get_adapter(vendor).answer(Outcome.INVALID if refused else Outcome.ACCEPTED)
        assert result["statusCode"] == expected.status, result
        assert _contains(json.loads(result["body"]), _codes(expected.body)), result
    elif function == "JointechCommandsFunction":
        assert result["statusCode"] == (404 if refused else 200), result
    else:
        assert not refused
        assert result.get("batchItemFailures", []) == [] and "errors" not in result, result


def test_every_vendor_body_of_the_registry_has_an_event_the_command_recognises(fresh):
    # Given every vendor of the registry: each has HTTP events in events/ invoking its own function
    for vendor in vendor_names():
        samples = [s for s in SAMPLES if _vendor_of(json.loads((EVENTS / s).read_text())) == vendor]
        assert samples, f"no invocation event in events/ for {vendor}"


# --- the command -------------------------------------------------------------------------------

def _devicegate(*argv: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICEGATE_"))}
    env["DEVICEGATE_STATE_DIR"] = str(state_dir)  # no running stack there
    return subprocess.run([sys.executable, "-m", "devicegate_cli.main", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_invoke_prints_the_answer_on_stdout_and_the_function_logs_on_stderr(tmp_path):
    # Given a Jointech alarm that already is an HTTP API event
    # When it is invoked on a fresh emulation
    done = _devicegate("invoke", "JointechWebhookFunction", "--fresh", "-e", "events/jointech/http-webhook-alarm.json",
                       state_dir=tmp_path)
    # Then stdout is the handler's answer alone, as JSON, and the command exits 0
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"result": 200, "message": "ok"}


def test_a_scheduled_function_logs_to_stderr_not_into_the_answer(tmp_path):
    # Given the device sweep, which logs one line per run
    done = _devicegate("invoke", "DeviceSweepFunction", "--fresh", "-e", "events/device-sweep/scheduled.json",
                       state_dir=tmp_path)
    # Then its log line is on stderr and stdout is its answer only
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["devices"] == 0
    assert '"message":"device sweep"' in done.stderr


def test_a_vendor_body_is_wrapped_into_the_event_of_the_route_path_names(tmp_path):
    # Given a Jointech record (a vendor body, not an event) and its kind's route
    done = _devicegate("invoke", "JointechWebhookFunction", "--fresh", "-e", "events/jointech/records/mqtt-location.json",
                       "--path", "/hooks/dev-token/location", state_dir=tmp_path)
    # Then a path that is no route of the function is one line naming its routes
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "is no route of JointechWebhookFunction" in done.stderr and "POST /hooks/jointech/{token}/{kind}" in done.stderr
    # When the path is right, the body is accepted as the vendor's push
    done = _devicegate("invoke", "JointechWebhookFunction", "--fresh", "-e", "events/jointech/records/mqtt-location.json",
                       "--path", "/hooks/jointech/dev-token/location", state_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(json.loads(done.stdout)["body"]) == {"result": 200, "message": "ok"}


def test_an_mqtt_message_goes_through_the_topic_rule(tmp_path):
    # Given a Jointech MQTT message (the body as published): without its topic it is one line
    done = _devicegate("invoke", "JointechMqttFunction", "--fresh", "-e", "events/jointech/records/mqtt-location.json",
                       state_dir=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "--topic" in done.stderr
    # When the topic is given, the rule's SELECT makes the event and the record is stored
    done = _devicegate("invoke", "JointechMqttFunction", "--fresh", "-e", "events/jointech/records/mqtt-location.json",
                       "--topic", "upload/ak-demo/8052400203/location", state_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"outcome": "accepted", "stored": 1, "duplicates": 0}


@pytest.mark.parametrize(("argv", "exit_code", "says"), [
    (["invoke", "JointechWebhook", "--fresh", "-e", "events/jointech/http-webhook-alarm.json"], 2,
     "no function 'JointechWebhook' in template.yaml; one of: AiCameraWebhookFunction"),
    (["invoke", "JointechWebhookFunction", "--fresh", "-e", "events/mettax/http-doc-gps.json"], 2,
     "this event is for MettaxWebhookFunction, not JointechWebhookFunction"),
    (["invoke", "JointechWebhookFunction", "--fresh", "-e", "events/none.json"], 2, "cannot read -e events/none.json"),
    (["invoke", "JointechWebhookFunction", "-e", "events/jointech/http-webhook-alarm.json"], 2,
     "no local stack is running here"),
    (["invoke", "JointechWebhookFunction", "--header", "no-colon"], 2, "'no-colon' is not NAME:VALUE"),
    (["invoke"], 2, "the following arguments are required: FUNCTION"),
])
def test_each_mistake_is_one_line_and_a_non_zero_exit(tmp_path, argv, exit_code, says):
    done = _devicegate(*argv, state_dir=tmp_path)
    assert done.returncode == exit_code
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert says in done.stderr
