"""The local stack's functions (local_functions.py, local_runtime.py): each in processes of its
own with only its own environment, invoked concurrently, with Lambda's limits and error shapes.

The functions here are small handlers written to a temporary folder; the stack runs them exactly
as it runs the template's."""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from devicegate_local.functions import (
    REQUEST_LIMIT_BYTES,
    FunctionError,
    Invoker,
    RequestTooLarge,
    StackStopping,
)
from devicegate_local.resources import FunctionSpec

HANDLER = '''
import json, os, pathlib, time

INVOCATIONS = 0  # module-level state: one count per execution environment


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    if event.get("fail"):
        raise ValueError("the handler failed on purpose")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("touch"):
        pathlib.Path(event["touch"]).touch()
    met = 0
    if event.get("meet"):
        # Wait, at most 20 s, until `expect` invocations are running at the same time.
        folder = pathlib.Path(event["meet"])
        (folder / str(os.getpid())).touch()
        deadline = time.monotonic() + 20
        while len(list(folder.iterdir())) < event["expect"] and time.monotonic() < deadline:
            time.sleep(0.01)
        met = len(list(folder.iterdir()))
    if event.get("unserializable"):
        return {"when": object()}
    return {"pid": os.getpid(), "invocations": INVOCATIONS, "met": met, "function": context.function_name,
            "env": {name: os.environ.get(name) for name in event.get("read", [])}}
'''


def _spec(tmp_path: Path, logical_id: str, environment: dict[str, str] | None = None,
          timeout_s: float = 10) -> FunctionSpec:
    code = tmp_path / logical_id
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(textwrap.dedent(HANDLER), encoding="utf-8")
    return FunctionSpec(logical_id=logical_id, name=f"devicegate-local-{logical_id}", code_dir=code,
                        handler="app.handler", memory_mb=128, timeout_s=timeout_s, environment=environment or {},
                        events={})


@pytest.fixture
def invoker_for(tmp_path):
    made: list[Invoker] = []

    def make(*specs: FunctionSpec, concurrency: int = 4) -> Invoker:
        invoker = Invoker(list(specs), {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, concurrency=concurrency)
        made.append(invoker)
        return invoker

    yield make
    for invoker in made:
        invoker.stop(grace_s=1)


def test_a_function_sees_only_its_own_environment(tmp_path, invoker_for, monkeypatch):
    # Given two functions whose templates set different variables, one name in both with two values,
    # and a variable in the developer's shell that no template sets
    monkeypatch.setenv("DEVELOPER_SHELL_ONLY", "leak")
    monkeypatch.setenv("TABLE_NAME", "a-real-table-from-the-shell")
    invoke = invoker_for(_spec(tmp_path, "Alpha", {"ALPHA_ONLY": "a", "SHARED": "alpha's"}),
                         _spec(tmp_path, "Beta", {"BETA_ONLY": "b", "SHARED": "beta's"}))
    read = ["ALPHA_ONLY", "BETA_ONLY", "SHARED", "DEVELOPER_SHELL_ONLY", "TABLE_NAME", "AWS_ENDPOINT_URL",
            "AWS_LAMBDA_FUNCTION_NAME"]
    # When each reads its environment
    alpha = invoke("Alpha", {"read": read})["env"]
    beta = invoke("Beta", {"read": read})["env"]
    # Then each sees its own variables, the stack's AWS endpoint and Lambda's own, and nothing else
    assert alpha == {"ALPHA_ONLY": "a", "BETA_ONLY": None, "SHARED": "alpha's", "DEVELOPER_SHELL_ONLY": None,
                     "TABLE_NAME": None, "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
                     "AWS_LAMBDA_FUNCTION_NAME": "devicegate-local-Alpha"}
    assert beta["BETA_ONLY"] == "b" and beta["ALPHA_ONLY"] is None and beta["SHARED"] == "beta's"


def test_invocations_of_a_function_run_at_once_in_separate_environments(tmp_path, invoker_for):
    # Given a function that waits until two of its invocations run at the same time
    invoke = invoker_for(_spec(tmp_path, "Alpha"))
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    results: list[dict[str, Any]] = []
    # When two invocations arrive together
    threads = [threading.Thread(target=lambda: results.append(invoke("Alpha", {"meet": str(meeting), "expect": 2})))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then both ran at once (one at a time, the first would have given up waiting alone),
    # each in its own process with its own module state
    assert [result["met"] for result in results] == [2, 2]
    assert len({result["pid"] for result in results}) == 2
    assert [result["invocations"] for result in results] == [1, 1]


def test_an_environment_is_reused_and_keeps_its_module_state(tmp_path, invoker_for):
    invoke = invoker_for(_spec(tmp_path, "Alpha"))
    first, second = invoke("Alpha", {}), invoke("Alpha", {})
    assert first["pid"] == second["pid"]
    assert (first["invocations"], second["invocations"]) == (1, 2)


def test_invocations_beyond_the_concurrency_wait_for_a_free_environment(tmp_path, invoker_for):
    invoke = invoker_for(_spec(tmp_path, "Alpha"), concurrency=1)
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(invoke("Alpha", {"sleep": 0.05}))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({result["pid"] for result in results}) == 1
    assert invoke.pool("Alpha").size == 1


def test_an_event_over_lambdas_6_mb_limit_never_reaches_the_function(tmp_path, invoker_for):
    invoke = invoker_for(_spec(tmp_path, "Alpha"))
    marker = tmp_path / "called"
    # When the event, as JSON, is one byte over 6 MB
    padding = "x" * (REQUEST_LIMIT_BYTES - len(json.dumps({"touch": str(marker), "pad": ""}, separators=(",", ":"))) + 1)
    with pytest.raises(RequestTooLarge):
        invoke("Alpha", {"touch": str(marker), "pad": padding})
    # Then Lambda refused it: the function never ran (no environment was even started)
    assert not marker.exists()
    assert invoke.pool("Alpha").size == 0
    # While an event of exactly the limit is invoked
    invoke("Alpha", {"touch": str(marker), "pad": padding[:-1]})
    assert marker.exists()


def test_a_failing_handler_is_a_function_error_with_its_traceback(tmp_path, invoker_for):
    invoke = invoker_for(_spec(tmp_path, "Alpha"))
    with pytest.raises(FunctionError) as raised:
        invoke("Alpha", {"fail": True})
    assert raised.value.error_type == "ValueError"
    assert "the handler failed on purpose" in raised.value.trace and "app.py" in raised.value.trace
    # And the environment serves the next invocation, as Lambda's Python runtime does
    assert invoke("Alpha", {})["invocations"] == 2


def test_a_result_that_is_not_json_is_lambdas_marshal_error(tmp_path, invoker_for):
    invoke = invoker_for(_spec(tmp_path, "Alpha"))
    with pytest.raises(FunctionError) as raised:
        invoke("Alpha", {"unserializable": True})
    assert raised.value.error_type == "Runtime.MarshalError"


def test_a_handler_that_cannot_be_imported_fails_its_invocation(tmp_path, invoker_for):
    spec = _spec(tmp_path, "Broken")
    (spec.code_dir / "app.py").write_text("import a_module_that_does_not_exist\n", encoding="utf-8")
    invoke = invoker_for(spec)
    with pytest.raises(FunctionError) as raised:
        invoke("Broken", {})
    assert raised.value.error_type == "Runtime.ImportModuleError"
    assert "a_module_that_does_not_exist" in raised.value.message


def test_an_invocation_past_its_timeout_is_reported(tmp_path, invoker_for, capsys):
    invoke = invoker_for(_spec(tmp_path, "Alpha", timeout_s=0.01))
    invoke("Alpha", {"sleep": 0.1})
    err = capsys.readouterr().err
    assert "Alpha ran " in err and "s, over its 0.01s Timeout; Lambda would have stopped it" in err


def test_stopping_ends_every_environment_and_refuses_new_invocations(tmp_path, invoker_for):
    invoke = invoker_for(_spec(tmp_path, "Alpha"))
    invoke("Alpha", {})
    environments = list(invoke.pool("Alpha")._all)
    invoke.stop(grace_s=1)
    assert all(environment.process.poll() is not None for environment in environments)
    with pytest.raises(StackStopping):
        invoke("Alpha", {})
