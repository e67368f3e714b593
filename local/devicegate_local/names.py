"""Names and endpoints of the local stack, shared by `devicegate local` and the query CLI.

The local stack creates each template resource under a predictable name so that the CLI (and
anyone following the README) can find it. Its ports may be others than the defaults (--http-port,
--moto-port): while it runs it says which in `.devicegate/local.json` beside the template, and
every command (anywhere under that directory) follows it without flags ($DEVICEGATE_STATE_DIR
moves that file elsewhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LOCAL_STACK_NAME = "devicegate-local"
LOCAL_REGION = "us-east-1"
LOCAL_MOTO_PORT = 5000
LOCAL_HTTP_PORT = 3000
LOCAL_TOKEN = "dev-token"
# moto accepts any credentials; these keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
FIFO_SUFFIX = ".fifo"


def local_physical_name(logical_id: str, resource_type: str = "", fifo: bool = False) -> str:
    """Physical name the local stack gives a template resource (S3 wants lower case; SQS wants a
    FIFO queue's name to end in .fifo, as CloudFormation's generated names do)."""
    name = f"{LOCAL_STACK_NAME}-{logical_id}"
    if resource_type == "AWS::S3::Bucket":
        return name.lower()
    return name + FIFO_SUFFIX if fifo else name


def local_queue_url(sqs: Any, logical_id: str) -> str:
    """URL of the local stack's queue for `logical_id`, standard or FIFO.

    Asks the running stack rather than the template: the template may have changed since the
    stack started, and a standard and a FIFO queue never share a name."""
    name = local_physical_name(logical_id, "AWS::SQS::Queue")
    wanted = (name, name + FIFO_SUFFIX)
    for url in sqs.list_queues(QueueNamePrefix=name).get("QueueUrls") or []:
        if url.rsplit("/", 1)[-1] in wanted:
            return url
    # Neither exists: SQS's own QueueDoesNotExist names the queue for the user.
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def local_endpoint(port: int = LOCAL_MOTO_PORT) -> str:
    return f"http://127.0.0.1:{port}"


#: Where a running local stack says where it listens: .devicegate/ beside template.yaml (git
#: ignores it), or $DEVICEGATE_STATE_DIR (the tests' stacks keep theirs out of the checkout).
RUNNING_FILE = "local.json"
STATE_DIR_VARIABLE = "DEVICEGATE_STATE_DIR"


def _state_dir(start: Path | None = None) -> Path | None:
    if os.environ.get(STATE_DIR_VARIABLE):
        return Path(os.environ[STATE_DIR_VARIABLE])
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").is_file():
            return folder / ".devicegate"
    return None


def running_stack(start: Path | None = None) -> dict[str, Any] | None:
    """What the local stack running for this project wrote about itself (`moto`, `http`: base
    URLs; `mqttPort`, `pid`), or None when none runs (no file, or its process is gone)."""
    state = _state_dir(start)
    if state is None:
        return None
    try:
        info = json.loads((state / RUNNING_FILE).read_text())
        os.kill(int(info["pid"]), 0)  # still there? (signal 0 only checks)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None


def announce_running(project: Path, info: dict[str, Any]) -> Path | None:
    """Write `info` (with this process's pid) for the CLI, unless another live stack already
    did: the first one started stays the one commands follow. The file written, or None."""
    if running_stack(project) is not None:
        return None
    state = _state_dir(project)
    if state is None:
        return None
    path = state / RUNNING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({**info, "pid": os.getpid()}, indent=2) + "\n")
    partial.replace(path)  # atomic: a reader sees the old file or the whole new one
    return path


def withdraw_running(path: Path | None) -> None:
    """Remove the file `announce_running` wrote (only this process's own)."""
    if path is None:
        return
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def default_moto_endpoint() -> str:
    """The emulation's endpoint when nothing names one: the running stack's, else the default port."""
    running = running_stack()
    return str(running["moto"]) if running and running.get("moto") else local_endpoint()


def default_api_url() -> str:
    """The HTTP API's base URL when nothing names one: $DEVICEGATE_API_URL, the running stack's,
    else the default port."""
    if os.environ.get(API_URL_VARIABLE):
        return os.environ[API_URL_VARIABLE]
    running = running_stack()
    return str(running["http"]) if running and running.get("http") else f"http://127.0.0.1:{LOCAL_HTTP_PORT}"


#: The HTTP API (the command routes) for `devicegate command`, when --api-url is not given.
API_URL_VARIABLE = "DEVICEGATE_API_URL"
