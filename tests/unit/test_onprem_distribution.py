"""devicegate-onprem (onprem/) installs alone, without what the gateway needs on AWS.

The SenseLink bridge and the Mosquitto bridge's configuration run on a customer's machine; boto3,
pydantic and Powertools have no business there. This installs the distribution into a fresh
virtual environment with uv, as an operator would with pip, and looks at what arrived.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

ONPREM = ROOT / "onprem"
GATEWAY_ONLY = ("boto3", "botocore", "pydantic", "aws_lambda_powertools")


def _uv() -> str:
    # `uv run` tells its children where it is; ./run and CI put ~/.local/bin on PATH.
    found = os.environ.get("UV") or shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local/bin"))
    if not found:
        pytest.fail("uv is not installed: ./run installs it", pytrace=False)
    return found


def _run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No terminal (CI), no project around the venv: uv must neither ask nor pick up this checkout.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_PROJECT", "VIRTUAL_ENV"))}
    result = subprocess.run([str(part) for part in command], cwd=cwd, env={**env, "UV_NO_PROGRESS": "1"},
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout}{result.stderr}",
                    pytrace=False)
    return result


@pytest.fixture(scope="module")
def onprem_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Given a fresh virtual environment with only devicegate-onprem installed into it
    where = tmp_path_factory.mktemp("onprem")
    uv = _uv()
    _run(uv, "venv", "--quiet", "--python", sys.executable, where / "venv", cwd=where)
    python = where / "venv" / "bin" / "python"
    _run(uv, "pip", "install", "--quiet", "--python", python, ONPREM, cwd=where)
    return python


def test_the_bridge_imports_without_the_gateway(onprem_python):
    # When its modules and the shipped Mosquitto configuration are looked for there
    probe = ("import json, devicegate_onprem.senselink_bridge, devicegate_onprem.mqtt_bridge as m, "
             "devicegate_onprem.face_terminal;"
             "print(json.dumps({'config': m.find_shipped_config() is not None, "
             "'site': devicegate_onprem.senselink_bridge.__file__}))")
    found = json.loads(_run(onprem_python, "-c", probe, cwd=onprem_python.parent).stdout)

    # Then they import from the installed distribution (not this checkout), the configuration with them
    assert found["config"] is True
    assert "site-packages" in found["site"]


def test_nothing_of_the_gateway_is_installed_with_it(onprem_python):
    # When the venv is asked for the gateway's own dependencies
    probe = ("import importlib.util, json;"
             f"print(json.dumps([n for n in {GATEWAY_ONLY!r} if importlib.util.find_spec(n)]))")
    present = json.loads(_run(onprem_python, "-c", probe, cwd=onprem_python.parent).stdout)

    # Then none of them came along; websockets, which the bridge needs, did
    assert present == []
    websockets = "import importlib.util; print(importlib.util.find_spec('websockets') is not None)"
    assert _run(onprem_python, "-c", websockets, cwd=onprem_python.parent).stdout.strip() == "True"


def test_its_command_runs_the_tools(onprem_python):
    # When the distribution's console script is asked for a tool's help
    script = onprem_python.parent / "devicegate-onprem"
    result = _run(script, "mqtt-bridge", "--help", cwd=onprem_python.parent)

    # Then the tool answers
    assert "config" in result.stdout and "check" in result.stdout
