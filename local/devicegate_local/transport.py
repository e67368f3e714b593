"""How the local stack's functions reach the AWS emulation: botocore's request, as it would go over
HTTP, handed to moto over a Unix socket instead.

Each function runs in a process of its own (local_functions.py) and moto in the stack's process,
so every AWS call of a handler crosses a process boundary. Over HTTP, that crossing (urllib3 and
http.client building the request and parsing the answer's headers in the function; http.server
parsing them again and werkzeug building the WSGI environ in moto) cost about 0.5 ms of the
function's CPU and 0.3 ms of moto's per call, measured: a fifth of everything the stack spends
on a face-terminal record. botocore still serializes, signs and parses every call as it does
against AWS; only the bytes travel differently. This is moto's own way in when it mocks botocore
(a handler on `before-send`), with moto's server-mode WSGI app on the other end.

A frame is a JSON header line then the body: {method, target, headers} one way, {status, headers}
the other, over multiprocessing's length-prefixed Connection.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger("devicegate.local")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]
#: An environ in, (status line, headers, body) out: moto's app (local_moto.DirectDispatch).
Dispatch = Callable[[dict[str, Any]], tuple[str, list[tuple[str, str]], bytes]]


# --------------------------------------------------------------------------- the stack's end


def wsgi_environ(method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
    """The WSGI environ werkzeug's server (with moto's request handler) builds for this request."""
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )

    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    environ: dict[str, Any] = {
        "wsgi.version": (1, 0), "wsgi.url_scheme": parts.scheme or "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "REQUEST_METHOD": method, "SCRIPT_NAME": "",
        # As werkzeug: the decoded path, its UTF-8 bytes read as latin-1 (PEP 3333).
        "PATH_INFO": unquote(parts.path or "/").encode("utf-8").decode("latin-1"),
        "QUERY_STRING": parts.query, "REQUEST_URI": target, "RAW_URI": target,
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": 0, "SERVER_NAME": parts.hostname or "127.0.0.1",
        "SERVER_PORT": str(parts.port or 80), "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": parts.netloc, "CONTENT_LENGTH": str(len(body)),
    }
    preserved: dict[str, str] = {}
    for name, value in headers:
        key = environ_key_for_header(name)
        if key in ("HTTP_HOST", "CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING"):
            continue  # from the URL and the body as they are here
        if should_preserve_original_header_name(name):
            preserved.setdefault(key, name)  # S3 metadata names keep their underscores
        environ[key] = f"{environ[key]},{value}" if key in environ and key.startswith("HTTP_") else value
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = preserved
    return environ


def call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of a WSGI app's answer, the body read whole."""
    answer: dict[str, Any] = {}
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, headers
        return written.append

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return answer["status"], answer["headers"], b"".join(written) + data


#: What the stack's stream pollers may ask of `streams` (local_moto.InProcessStreams).
STREAM_CALLS = ("describe_stream", "get_shard_iterator", "get_records")


class TransportServer:
    """Serves moto on a Unix socket, a thread per connected function process (each process keeps
    one connection per thread that calls AWS). With `streams`, also the stream pollers' three
    DynamoDB Streams calls, answered from moto's backend as plain JSON (a frame with "streams")."""

    def __init__(self, dispatch: Dispatch, path: str, streams: Any = None) -> None:
        self.dispatch = dispatch
        self.streams = streams
        self.path = path
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        os.chmod(path, 0o600)  # only this user's processes may call the emulation this way
        self._listener.listen(128)
        self._stopping = threading.Event()
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="aws-transport", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            connection = Connection(sock.detach())
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=self._serve, args=(connection,), name="aws-transport-call", daemon=True).start()

    def _serve(self, connection: Connection) -> None:
        try:
            while True:
                try:
                    frame = connection.recv_bytes()
                except (EOFError, OSError):  # the function's process ended, or the stack stops
                    return
                header, _, body = frame.partition(b"\n")
                request = json.loads(header)
                if "streams" in request:
                    reply = self._stream_call(request["streams"], request["args"])
                    try:
                        connection.send_bytes(reply)
                    except OSError:
                        return
                    continue
                try:
                    status, headers, data = self.dispatch(wsgi_environ(
                        request["method"], request["url"], request["headers"], body))
                except Exception:  # a bug in moto: say so, answer like a failing service, keep serving
                    log.error("moto failed on %s %s:\n%s", request["method"], urlsplit(request["url"]).path,
                              traceback.format_exc().rstrip())
                    status, headers, data = "500 Internal Server Error", [("Content-Type", "text/plain")], b"moto failed"
                answer = {"status": int(status.split(" ", 1)[0]), "headers": headers}
                try:
                    connection.send_bytes(json.dumps(answer).encode() + b"\n" + data)
                except OSError:
                    return
        finally:
            with self._lock:  # not while stop() is ending it
                self._connections.discard(connection)
                connection.close()

    def _stream_call(self, call: str, args: dict[str, Any]) -> bytes:
        if self.streams is None or call not in STREAM_CALLS:
            return json.dumps({"error": f"no stream call {call!r} here"}).encode()
        try:
            result = getattr(self.streams, call)(**args)
        except (LookupError, ValueError) as exc:  # an unknown table, shard or iterator
            return json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
        # Binary attribute values as DynamoDB's JSON carries them: base64 text.
        return json.dumps({"result": result}, default=_base64).encode()

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                # Ended, not closed, from here: its thread reads EOF and closes it (closed from two
                # threads, a descriptor number could be closed again after another socket took it).
                with socket.fromfd(connection.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as end:
                    try:
                        end.shutdown(socket.SHUT_RDWR)
                    except OSError:  # the other end went first: it is ended either way
                        pass
            self._connections.clear()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _base64(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON")


class StreamsClient:
    """The stream pollers' DynamoDB Streams calls (botocore's names and answers), over the
    socket to the moto process, answered from moto's backend (local_moto.InProcessStreams)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def _call(self, call: str, **args: Any) -> Any:
        with self._lock:
            if self._connection is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self._path)
                self._connection = Connection(sock.detach())
            try:
                self._connection.send_bytes(json.dumps({"streams": call, "args": args}).encode())
                answer = json.loads(self._connection.recv_bytes())
            except (OSError, EOFError):
                self._connection = None
                raise
        if "error" in answer:
            raise LookupError(answer["error"])
        return answer["result"]

    def describe_stream(self, StreamArn: str) -> Any:  # noqa: N803 - botocore's names
        return self._call("describe_stream", StreamArn=StreamArn)

    def get_shard_iterator(self, **args: Any) -> Any:
        return self._call("get_shard_iterator", **args)

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> Any:  # noqa: N803
        return self._call("get_records", ShardIterator=ShardIterator, Limit=Limit)


# --------------------------------------------------------------------------- the function's end


class _Body(io.BytesIO):
    """An answer's body as botocore reads an HTTP one (StreamingBody reads `raw` and streams it)."""

    def stream(self, amt: int = 1024 * 1024, decode_content: bool = True) -> Any:
        while chunk := self.read(amt):
            yield chunk


def install(endpoint: str, path: str) -> None:
    """Send every botocore request for `endpoint` (the emulation) through the socket at `path`,
    in every session created from now on; any other endpoint (the IoT data stand-in) is left to
    HTTP."""
    import botocore.handlers

    local = threading.local()

    def connection() -> Connection:
        if getattr(local, "connection", None) is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            local.connection = Connection(sock.detach())
        return local.connection

    def send(request: Any, **kwargs: Any) -> Any:
        if not request.url.startswith(endpoint):
            return None
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import EndpointConnectionError

        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = [(name, value.decode("latin-1") if isinstance(value, bytes) else value)
                   for name, value in request.headers.items()]
        frame = json.dumps({"method": request.method, "url": request.url, "headers": headers}).encode()
        try:
            link = connection()
            link.send_bytes(frame + b"\n" + (body or b""))
            answer_head, _, data = link.recv_bytes().partition(b"\n")
        except (OSError, EOFError) as exc:
            local.connection = None
            raise EndpointConnectionError(endpoint_url=request.url, error=exc) from exc
        answer = json.loads(answer_head)
        return AWSResponse(request.url, answer["status"], dict(answer["headers"]), _Body(data))

    botocore.handlers.BUILTIN_HANDLERS.append(("before-send", send))
