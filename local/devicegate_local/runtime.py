"""One execution environment of a function, as the local stack runs it: a process of its own,
started by local_functions.py with only that function's environment, that imports the handler
once (the cold start) and then runs one invocation at a time, as Lambda's Python runtime does.

    python -m devicegate_local.runtime FD

FD is this end of a socket pair to the stack. Each request is a JSON header line followed by the
event as the JSON Lambda would send; each reply a JSON header line followed by the result as JSON,
or an error object shaped like Lambda's (errorType, errorMessage, stackTrace).
"""

from __future__ import annotations

import json
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: Lambda's limit on a synchronous invocation's response; past it the invocation fails.
RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024


def _error(error_type: str, message: str, trace: str = "") -> bytes:
    return json.dumps({"ok": False, "errorType": error_type, "errorMessage": message,
                       "stackTrace": trace}).encode() + b"\n"


def _load(hello: dict[str, Any]) -> Any:
    from devicegate_local.resources import import_handler

    return import_handler(hello["functionId"], Path(hello["codeDir"]), hello["handler"])


def _invoke(handler: Any, hello: dict[str, Any], request: dict[str, Any], payload: bytes) -> bytes:
    from devicegate_local.lambda_context import LambdaContext

    event = json.loads(payload)
    context = LambdaContext(hello["name"], memory_limit_in_mb=hello["memoryMb"], timeout_s=hello["timeoutS"],
                            aws_request_id=request.get("requestId"))
    started = time.monotonic()
    try:
        result = handler(event, context)
    except Exception as exc:  # the function's error, reported to the caller as Lambda reports it
        return _error(type(exc).__name__, str(exc), traceback.format_exc())
    duration_ms = (time.monotonic() - started) * 1000
    try:
        body = json.dumps(result).encode()
    except (TypeError, ValueError) as exc:
        return _error("Runtime.MarshalError", f"Unable to marshal response: {exc}")
    if len(body) > RESPONSE_LIMIT_BYTES:
        return _error("Function.ResponseSizeTooLarge",
                      f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size "
                      f"({RESPONSE_LIMIT_BYTES} bytes).")
    return json.dumps({"ok": True, "durationMs": duration_ms}).encode() + b"\n" + body


def main(argv: list[str]) -> int:
    # Ctrl-C in the stack's terminal reaches every process of its group: the stack stops this one
    # itself, after the invocations in flight, and a KeyboardInterrupt here would only print noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = Connection(int(argv[0]))
    hello = json.loads(connection.recv_bytes())
    if hello.get("awsSocket"):
        from devicegate_local.transport import install

        install(hello["awsEndpoint"], hello["awsSocket"])  # before the handler creates any client
    try:
        handler = _load(hello)
    except Exception as exc:  # the init phase failed: reported for the invocation that waits on it
        connection.send_bytes(_error("Runtime.ImportModuleError", f"{type(exc).__name__}: {exc}",
                                     traceback.format_exc()))
        return 1
    connection.send_bytes(b'{"ok": true}\n')
    while True:
        try:
            frame = connection.recv_bytes()
        except EOFError:  # the stack closed its end: stopping, or gone
            return 0
        header, _, payload = frame.partition(b"\n")
        connection.send_bytes(_invoke(handler, hello, json.loads(header), payload))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
