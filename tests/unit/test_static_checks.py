"""ruff and mypy belong to the suite: a finding fails CI like a failing test.

Their rules and mypy's files are in pyproject.toml; the commands are the ones `./run lint` runs,
read from the `run` script, so the task and the suite cannot check different things.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT


def _lint_arguments(tool: str) -> list[str]:
    """What the `run` script's lint task passes to `uv run --frozen <tool>`."""
    for line in (ROOT / "run").read_text().splitlines():
        words = line.split()
        if words[:4] == ["uv", "run", "--frozen", tool]:
            return [word for word in words[4:] if word != ";;"]
    raise AssertionError(f"./run lint does not run {tool} with `uv run --frozen {tool}`")


def _run(tool: str) -> subprocess.CompletedProcess[str]:
    # The tool installed beside the interpreter running the tests: the version uv.lock pins.
    return subprocess.run([sys.executable, "-m", tool, *_lint_arguments(tool)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def _assert_clean(tool: str, result: subprocess.CompletedProcess[str]) -> None:
    # pytest.fail rather than assert: the tool's report is the message, without a repr of it.
    if result.returncode != 0:
        pytest.fail(f"{tool} exited {result.returncode}:\n{result.stdout}{result.stderr}", pytrace=False)


def test_ruff_finds_nothing():
    # When ruff checks what ./run lint has it check
    result = _run("ruff")

    # Then it exits cleanly
    _assert_clean("ruff", result)


def test_mypy_finds_nothing():
    # When mypy checks the files pyproject.toml lists, as ./run lint has it
    result = _run("mypy")

    # Then it exits cleanly
    _assert_clean("mypy", result)
