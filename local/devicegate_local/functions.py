"""The functions of `devicegate local`, invoked as Lambda invokes them.

Each function runs in execution environments of its own: processes (local_runtime.py) started
with exactly the function's template environment, plus what Lambda itself sets and the AWS
endpoint and credentials of the emulation. Module-level state (a cached client, Powertools'
Logger keys, a token cache) is therefore per function and per environment, as on Lambda, and one
function's variables are invisible to another. An environment runs one invocation at a time;
when every environment of a function is busy, another is started (a cold start), up to
`concurrency` per function, and an invocation takes the first environment that is free. The HTTP
front end, the stream pollers, the schedules and the IoT rules all invoke through `Invoker`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from devicegate_local.names import LOCAL_REGION
from devicegate_local.resources import FunctionSpec

log = logging.getLogger("devicegate.local")

#: Lambda refuses a synchronous invocation whose event (the request payload, as JSON) is larger.
#: 6 MB is 6,291,456 bytes (Lambda's error: "Request must be smaller than 6291456 bytes").
REQUEST_LIMIT_BYTES = 6 * 1024 * 1024
#: Execution environments per function unless --concurrency says otherwise: as many as the
#: machine has cores, 2 to 4. Measured on two cores with four senders: 2 environments answered
#: 236-272 records/s, 4 of them 196/s (more processes than cores cost more than they overlap).
DEFAULT_CONCURRENCY = max(2, min(4, os.cpu_count() or 2))
#: Taken from the stack's own environment: what a process needs to start at all.
_INHERITED = ("PATH", "HOME", "PYTHONPATH", "TMPDIR", "SYSTEMROOT")
_STOP_GRACE_S = 5.0


class InvokeError(Exception):
    """An invocation that did not return a result."""


class RequestTooLarge(InvokeError):
    """Lambda's RequestEntityTooLargeException: the event is over the synchronous invoke limit.
    The function is never called."""

    def __init__(self, function_id: str, size: int) -> None:
        super().__init__(f"{function_id}: the event is {size} bytes; Lambda takes at most "
                         f"{REQUEST_LIMIT_BYTES} bytes for a synchronous invocation")
        self.size = size


class FunctionError(InvokeError):
    """The function failed: its handler raised, its result was not JSON, its process died, or its
    init failed. `trace` is the traceback as the function's own process printed it."""

    def __init__(self, function_id: str, error_type: str, message: str, trace: str = "") -> None:
        super().__init__(f"{function_id}: {error_type}: {message}")
        self.function_id = function_id
        self.error_type = error_type
        self.message = message
        self.trace = trace


class StackStopping(InvokeError):
    """The stack is stopping: no new invocation starts, and one in flight when it stops ends here."""


def lambda_variables(spec: FunctionSpec) -> dict[str, str]:
    """The variables Lambda sets in every execution environment of the function."""
    stream = time.strftime("%Y/%m/%d", time.gmtime()) + "/[$LATEST]" + uuid.uuid4().hex
    return {
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
        "TZ": ":UTC",
        # Lambda's own locale is en_US.UTF-8; what matters is UTF-8, and C.UTF-8 exists everywhere.
        "LANG": "C.UTF-8",
    }


def function_environment(spec: FunctionSpec, stack: Mapping[str, str]) -> dict[str, str]:
    """Everything a function's process sees: the template's variables, then Lambda's own and the
    emulation's (endpoint, credentials), which a template cannot override; nothing else of the
    stack's own environment but what starting a process needs."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(spec.environment)
    env.update(lambda_variables(spec))
    env.update(stack)
    # A developer's ~/.aws/config (a profile's endpoint, retries) is no part of Lambda.
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    # Handler output reaches the stack's terminal as it is written, not when a buffer fills.
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Environment:
    """One process running one function (local_runtime.py), one invocation at a time."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], transport: str | None = None) -> None:
        self.spec = spec
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "devicegate_local.runtime", str(theirs.fileno())],
                env=env, cwd=spec.code_dir, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        self._connection = Connection(ours.detach())
        self._connection.send_bytes(json.dumps({
            "functionId": spec.logical_id, "name": spec.name, "codeDir": str(spec.code_dir),
            "handler": spec.handler, "memoryMb": spec.memory_mb, "timeoutS": spec.timeout_s,
            # The function's AWS calls to the emulation go through this socket (local_transport.py).
            "awsEndpoint": env.get("AWS_ENDPOINT_URL"), "awsSocket": transport,
        }).encode())

    def wait_ready(self) -> None:
        """The cold start: until the handler is imported. FunctionError when the init failed."""
        header, _ = self._receive()
        if not header.get("ok"):
            self.stop()
            raise FunctionError(self.spec.logical_id, header["errorType"], header["errorMessage"],
                                header.get("stackTrace", ""))

    def invoke(self, request: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        self._connection.send_bytes(json.dumps(request).encode() + b"\n" + payload)
        return self._receive()

    def _receive(self) -> tuple[dict[str, Any], bytes]:
        try:
            frame = self._connection.recv_bytes()
        except (EOFError, OSError):
            code = self.process.wait()
            raise FunctionError(self.spec.logical_id, "Runtime.ExitError",
                                f"the function's process exited ({code}) before it answered") from None
        header, _, body = frame.partition(b"\n")
        return json.loads(header), body

    def stop(self, grace_s: float = 0.0) -> None:
        self._connection.close()  # the runtime reads EOF and exits
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class FunctionPool:
    """The execution environments of one function: another is started while every one is busy,
    up to `concurrency`; an invocation takes the first one free."""

    def __init__(self, spec: FunctionSpec, environment: Callable[[], dict[str, str]], concurrency: int,
                 transport: str | None = None) -> None:
        self.spec = spec
        self._transport = transport
        #: Called when an environment starts: the stack adds the IoT data endpoint once the broker runs.
        self._environment = environment
        self._concurrency = concurrency
        self._condition = threading.Condition()
        self._idle: list[_Environment] = []
        self._all: set[_Environment] = set()
        self._starting = 0
        self._init_failures: list[FunctionError] = []
        self._stopping = False

    @property
    def size(self) -> int:
        with self._condition:
            return len(self._all)

    def invoke(self, request: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        environment = self._acquire()
        try:
            reply = environment.invoke(request, payload)
        except FunctionError:
            self._discard(environment)
            raise
        self._release(environment)
        return reply

    def _acquire(self) -> _Environment:
        with self._condition:
            while True:
                if self._stopping:
                    raise StackStopping(f"{self.spec.logical_id}: the local stack is stopping")
                if self._init_failures:
                    raise self._init_failures.pop(0)
                if self._idle:
                    return self._idle.pop()
                # One cold start at a time: several at once on a small machine make each of them,
                # and every invocation waiting on one, seconds slower (measured: four at once took
                # 4.7 s each on two busy cores); a waiting invocation takes whichever environment
                # is free first, a new one or one that finished.
                if not self._starting and len(self._all) < self._concurrency:
                    self._starting += 1
                    threading.Thread(target=self._start_one, name=f"cold-start-{self.spec.logical_id}",
                                     daemon=True).start()
                self._condition.wait()

    def _start_one(self) -> None:
        environment: _Environment | None = None
        failure: FunctionError | None = None
        try:
            environment = _Environment(self.spec, self._environment(), self._transport)
            environment.wait_ready()
        except FunctionError as error:
            failure, environment = error, None
        except OSError as error:  # the process could not even start
            failure, environment = FunctionError(self.spec.logical_id, "Runtime.StartError", str(error)), None
        with self._condition:
            self._starting -= 1
            if environment is not None and self._stopping:
                environment.stop()
            elif environment is not None:
                self._all.add(environment)
                self._idle.append(environment)
            elif failure is not None:
                self._init_failures.append(failure)
            self._condition.notify_all()

    def _release(self, environment: _Environment) -> None:
        with self._condition:
            if self._stopping:
                self._all.discard(environment)
                environment.stop()
            else:
                self._idle.append(environment)
            self._condition.notify_all()

    def _discard(self, environment: _Environment) -> None:
        with self._condition:
            self._all.discard(environment)
            self._condition.notify_all()
        environment.stop()

    def stop(self, grace_s: float = _STOP_GRACE_S) -> None:
        """No new invocation; the idle environments stop now, busy ones after their invocation or
        `grace_s`, whichever comes first."""
        deadline = time.monotonic() + grace_s
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
            idle, self._idle = self._idle, []
            for environment in idle:
                self._all.discard(environment)
            while self._all and time.monotonic() < deadline:
                self._condition.wait(max(0.0, deadline - time.monotonic()))
            busy, self._all = list(self._all), set()
        for environment in idle + busy:
            environment.stop(grace_s=1.0)


class Invoker:
    """Invokes the template's functions like Lambda: each in its own environments, concurrently,
    with the request size limit, Lambda's error shapes, and a warning for an invocation that ran
    past its Timeout (Lambda would have stopped it; here it is let finish)."""

    def __init__(self, specs: list[FunctionSpec], stack_environment: Mapping[str, str],
                 concurrency: int = DEFAULT_CONCURRENCY, transport: str | None = None) -> None:
        """`transport`: the socket of local_transport.TransportServer, which the functions' calls to
        the emulation (AWS_ENDPOINT_URL) take instead of HTTP; None: HTTP."""
        self.specs = {spec.logical_id: spec for spec in specs}
        self._transport = transport
        #: Read when an environment starts: add to it (the IoT data endpoint) before invoking.
        self.stack_environment = dict(stack_environment)
        self._concurrency = concurrency
        self._pools: dict[str, FunctionPool] = {}
        self._lock = threading.Lock()

    def environment_of(self, function_id: str) -> dict[str, str]:
        return function_environment(self.specs[function_id], self.stack_environment)

    def pool(self, function_id: str) -> FunctionPool:
        with self._lock:
            if function_id not in self._pools:
                self._pools[function_id] = FunctionPool(
                    self.specs[function_id], functools.partial(self.environment_of, function_id), self._concurrency,
                    self._transport)
            return self._pools[function_id]

    def __call__(self, function_id: str, event: Any, request_id: str | None = None) -> Any:
        """The handler's result. `request_id`: Lambda keeps an async event's id across its retries.
        Raises RequestTooLarge, FunctionError or StackStopping."""
        spec = self.specs[function_id]
        payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        if len(payload) > REQUEST_LIMIT_BYTES:
            raise RequestTooLarge(function_id, len(payload))
        header, body = self.pool(function_id).invoke({"requestId": request_id or str(uuid.uuid4())}, payload)
        if not header.get("ok"):
            raise FunctionError(function_id, header["errorType"], header["errorMessage"], header.get("stackTrace", ""))
        elapsed = header["durationMs"] / 1000
        if elapsed > spec.timeout_s:
            print(f"devicegate local: {function_id} ran {elapsed:.1f}s, over its {spec.timeout_s:g}s Timeout; "
                  "Lambda would have stopped it", file=sys.stderr, flush=True)
        return json.loads(body)

    def stop(self, grace_s: float = _STOP_GRACE_S) -> None:
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.stop(grace_s)
