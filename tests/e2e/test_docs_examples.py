"""Every example in the docs that targets the local stack, run against one (CONTRIBUTING.md
"Examples in the docs" is the convention; this module is its definition).

- ```sh fences in README.md, CONTRIBUTING.md and docs/**/*.md hold commands for the local stack:
  curl / mosquitto_pub against 127.0.0.1, `devicegate` (or `uv run devicegate`) without --stack,
  and the shell glue between them (pipes, `|| echo "exit $?"`). Each command runs in bash from the
  repository root and must exit 0; `# -> TEXT`, after the command on its line or on the comment
  lines right below it, says its output (stdout and stderr) contains TEXT.
- ```python fences are run the same way, one fence per interpreter (each fence is whole: its own
  imports); every `# -> TEXT` comment in the fence must be in what it prints.
- Anything else (```console for a deployment or a machine on the customer's LAN, ```text, ```json)
  is not run. A ```sh command that reaches for a deployment (--stack, aws, sam) fails here.

The stack is this module's own (free ports; the docs say 3000 / 5000 / 1883 and are rewritten to
its ports), loaded first with `devicegate examples load` (every vendor's events/*/http-*.json
through the HTTP front end and the Jointech MQTT records through the broker), as the docs tell a
reader to do on a fresh stack. Examples run in file order and may build on the
examples above them in the same file; queries are retried for a few seconds, since the outbox
(device state, alarm lifecycles, command answers) runs a moment after a push.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
READY = "devicegate local: ready"
COMMAND_TIMEOUT_S = 60
QUERY_RETRY_S = 15  # how long a query waits for the outbox to catch up

_FENCE = re.compile(r"^(?P<indent>\s*(?:\d+\.\s+|[-*]\s+)?)(?P<marker>`{3,}|~{3,})\s*(?P<info>[\w+-]*)")
#: Commands that only read: safe to run again while the outbox catches up.
_QUERY = re.compile(r"^(uv run )?devicegate (events|tail|state|devices|links|parts|alarms|event|quarantine|"
                    r"command status|strategy get)\b|--dry-run")
#: What a ```sh command may not do: it would need a deployment, root, or never return.
_NOT_LOCAL = [
    (re.compile(r"--stack\b"), "--stack targets a deployment"),
    (re.compile(r"(^|[|;&(]\s*)(aws|sam|sudo|apt-get|systemctl)\s"), "a deployment or a system command"),
    (re.compile(r"\./run\b"), "./run (start the stack in another terminal)"),
    (re.compile(r"devicegate (local|face-terminal)\b"), "a long-running or LAN command"),
    (re.compile(r"devicegate senselink-bridge (?!status|requeue)"), "the bridge needs a SenseLink server"),
    (re.compile(r"https?://(?!127\.0\.0\.1[:/])"), "a URL other than the local stack's"),
    (re.compile(r"mosquitto_sub\b"), "mosquitto_sub waits for ever"),
    # Examples run in the checkout: they may read its files, never write or remove one.
    (re.compile(r"(^|[|;&(]\s*)(cd|mkdir|rm|mv|cp|tee|chmod|chown)\s"), "a change to the checkout"),
    (re.compile(r"(?<![0-9&])>>?\s*(?!/dev/null|&)\S"), "output written to a file"),
]


@dataclass
class Example:
    path: Path
    line: int
    language: str  # sh or python
    code: str
    expected: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _fences(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(info string, line of the first content line, content lines) of each fenced block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        marker, indent = opened["marker"], len(opened["indent"])
        body, start = [], i + 2
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(marker):
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        yield opened["info"], start, body
        i += 1


def _comment_start(text: str) -> int:
    """Index of the unquoted `#` starting the comment of a shell line, or -1."""
    quote = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = None
        elif char == "\\":
            i += 1
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t"):
            return i
        i += 1
    return -1


def _expectation(comment: str) -> str | None:
    match = re.match(r"#\s*->\s?(.*)$", comment.strip())
    return match.group(1).rstrip() if match else None


def _sh_examples(path: Path, start: int, body: list[str]) -> Iterator[Example]:
    current: Example | None = None
    pending = ""
    for offset, line in enumerate(body):
        number = start + offset
        if pending:
            pending += "\n" + line
        elif not line.strip():
            continue
        elif line.lstrip().startswith("#"):
            expected = _expectation(line)
            if expected is not None and current is not None:
                current.expected.append(expected)
            continue
        else:
            pending, first = line, number
        if pending.endswith("\\"):
            continue
        if current is not None:
            yield current
        cut = _comment_start(pending.rsplit("\n", 1)[-1])
        last = pending.rsplit("\n", 1)[-1]
        expected = _expectation(last[cut:]) if cut >= 0 else None
        current = Example(path, first, "sh", pending, [expected] if expected is not None else [])
        pending = ""
    if current is not None:
        yield current


def collect() -> list[Example]:
    examples = []
    for path in DOCS:
        if not path.exists():
            continue
        for info, start, body in _fences(path):
            if info == "sh":
                examples += _sh_examples(path, start, body)
            elif info == "python":
                expected = [e for e in (_expectation(line[line.index("#"):]) for line in body if "#" in line) if e]
                examples.append(Example(path, start, "python", "\n".join(body) + "\n", expected))
    return examples


EXAMPLES = collect()


# --- the stack ---------------------------------------------------------------------------------

@dataclass
class Stack:
    http: int
    moto: int
    mqtt: int
    env: dict[str, str]
    log_path: Path

    def localize(self, code: str) -> str:
        """The docs' default ports -> this stack's; `devicegate command` told where the API is."""
        code = code.replace("127.0.0.1:3000", f"127.0.0.1:{self.http}")
        code = code.replace("127.0.0.1:5000", f"127.0.0.1:{self.moto}")
        code = re.sub(r"(mosquitto_pub\b[^\n|;&]*?)-p 1883\b", rf"\g<1>-p {self.mqtt}", code)
        return re.sub(r"(devicegate command (?:send|status))(?![^\n|;&]*--api-url)",
                      rf"\1 --api-url http://127.0.0.1:{self.http}", code)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


_PAHO_PUB = '''#!{python}
"""mosquitto_pub's options the docs use (-h -p -q -t, -m / -f / -s), with paho-mqtt: CI installs
the broker (Debian's mosquitto) but not mosquitto-clients."""
import argparse, sys
import paho.mqtt.publish as publish
p = argparse.ArgumentParser(add_help=False)
p.add_argument("-h", default="localhost"); p.add_argument("-p", type=int, default=1883)
p.add_argument("-q", type=int, default=0); p.add_argument("-t", required=True)
what = p.add_mutually_exclusive_group(required=True)
what.add_argument("-m"); what.add_argument("-f"); what.add_argument("-s", action="store_true")
a = p.parse_args()
payload = a.m.encode() if a.m is not None else open(a.f, "rb").read() if a.f else sys.stdin.buffer.read()
publish.single(a.t, payload, qos=a.q, hostname=a.h, port=a.p)
'''

_UV = '''#!{python}
"""`uv run [options] COMMAND ...` as COMMAND ...: the examples run in this environment, never
syncing it (no network, no change to .venv while the tests run)."""
import os, sys
args = sys.argv[1:]
if not args or args[0] != "run":
    sys.exit("the docs examples use `uv run` only")
args = args[1:]
while args and args[0].startswith("-"):
    args = args[2:] if args[0] in ("--extra", "--with", "--group", "--python") else args[1:]
os.execvp(args[0], args)
'''


def _tools(directory: Path) -> None:
    """devicegate, python and uv of this environment first on PATH; mosquitto_pub if missing."""
    python = sys.executable
    (directory / "devicegate").write_text(f'#!/bin/sh\nexec "{python}" -m devicegate_cli.main "$@"\n')
    for name in ("python", "python3"):
        (directory / name).write_text(f'#!/bin/sh\nexec "{python}" "$@"\n')
    (directory / "uv").write_text(_UV.format(python=python))
    if shutil.which("mosquitto_pub") is None or os.environ.get("DEVICEGATE_DOCS_PAHO"):
        (directory / "mosquitto_pub").write_text(_PAHO_PUB.format(python=python))
    for tool in directory.iterdir():
        tool.chmod(0o755)


def _load_fixtures(stack: Stack) -> None:
    """What the docs tell a reader to run on a fresh stack: `devicegate examples load` (every
    vendor's samples of events/, then a wait until the outbox has published them)."""
    done = subprocess.run(["devicegate", "examples", "load"], cwd=ROOT, env=stack.env, capture_output=True,
                          text=True, timeout=180, check=False)
    assert done.returncode == 0, f"devicegate examples load failed:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    http, moto, mqtt, iot_data = _free_ports(4)
    work = tmp_path_factory.mktemp("docs-examples")
    tools = work / "bin"
    tools.mkdir()
    _tools(tools)
    log_path = work / "devicegate-local.log"
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("AWS_", "DEVICEGATE_")) and k != "VIRTUAL_ENV"}
    # The stack says where it runs there, not in the checkout (where a developer's stack may run).
    base_env["DEVICEGATE_STATE_DIR"] = str(work / "state")
    command = [sys.executable, "-m", "devicegate_cli.main", "local", "--http-port", str(http),
               "--moto-port", str(moto), "--mqtt-port", str(mqtt), "--iot-data-port", str(iot_data)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env={**base_env, "PYTHONUNBUFFERED": "1"},
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while READY not in log_path.read_text(errors="replace").splitlines():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"devicegate local did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        # What docs/local.md tells a reader to export, pointed at this stack.
        env = {**base_env, "PATH": f"{tools}{os.pathsep}{base_env.get('PATH', '')}",
               "DEVICEGATE_ENDPOINT": f"http://127.0.0.1:{moto}", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto}",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "PYTHONUNBUFFERED": "1"}
        running = Stack(http, moto, mqtt, env, log_path)
        _load_fixtures(running)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the tests ---------------------------------------------------------------------------------

def _not_local(example: Example) -> list[str]:
    """Why a ```sh command does not belong in a ```sh fence (nothing, if it does)."""
    code = re.sub(r"(?m)\s#.*$", "", example.code)
    return [why for pattern, why in _NOT_LOCAL if example.language == "sh" and pattern.search(code)]


def _run(stack: Stack, example: Example) -> tuple[int, str]:
    code = stack.localize(example.code)
    command = ["bash", "-o", "pipefail", "-c", code] if example.language == "sh" else [sys.executable, "-c", code]
    try:
        done = subprocess.run(command, cwd=ROOT, env=stack.env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return -1, f"(no answer within {COMMAND_TIMEOUT_S} s)"
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.where for e in EXAMPLES])
def test_the_example_works(stack: Stack, example: Example):
    # Given the local stack with the fixtures, and the examples above this one in its file
    # (never a command meant for a deployment or a LAN: it would run against this machine)
    assert not _not_local(example), f"{example.where}: {_not_local(example)}: use a ```console fence"
    # When the example runs (a query again while the outbox catches up)
    retry = example.language == "sh" and bool(_QUERY.search(example.code.lstrip()))
    deadline = time.monotonic() + (QUERY_RETRY_S if retry else 0)
    while True:
        status, output = _run(stack, example)
        missing = [text for text in example.expected if text not in output]
        if (status == 0 and not missing) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    # Then it exits 0 and prints what the docs show
    shown = f"{example.where}:\n{example.code}\n--- exit {status}, output:\n{output[-3000:]}"
    assert status == 0, shown
    assert not missing, f"missing {missing} in\n{shown}"


def test_sh_examples_target_the_local_stack():
    # Given every command in a ```sh fence
    wrong = [f"{e.where}: {why}: {e.code.splitlines()[0]}" for e in EXAMPLES for why in _not_local(e)]
    # Then none needs a deployment, root or a device on a LAN (those go in ```console fences)
    assert wrong == []


def test_every_page_people_follow_has_examples_that_run():
    # Given the pages a reader is sent to first
    pages = [ROOT / "README.md", ROOT / "docs" / "local.md", ROOT / "docs" / "consuming.md",
             ROOT / "docs" / "commands.md", *sorted((ROOT / "docs" / "vendors").glob("*.md"))]
    counted = {page: sum(e.path == page for e in EXAMPLES) for page in pages}
    # Then each shows something the test runs, and the parser found the examples at all
    assert [str(p.relative_to(ROOT)) for p, n in counted.items() if n == 0] == []
    assert len(EXAMPLES) >= 40
