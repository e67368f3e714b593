"""The HTTP half of `devicegate local`: API Gateway HTTP API routes → Lambda handlers.

Requests are turned into payload-format 2.0 events and handler results into responses the way
API Gateway does it, so a handler that works here works behind the deployed HTTP API.
"""

from __future__ import annotations

import base64
import collections
import io
import json
import queue
import re
import select
import selectors
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import parse_qsl, unquote

from devicegate_local.functions import FunctionError, RequestTooLarge, StackStopping
from devicegate_local.lambda_context import LOCAL_ACCOUNT_ID

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_DRAIN_LIMIT = 64 * 1024 * 1024
# How long a body may pause before the request is refused: a Content-Length larger than what the
# client sends would otherwise hold the request (and its thread) for as long as the client waits.
BODY_TIMEOUT_S = 10.0
# A POST without Content-Length is taken as bodyless only if nothing follows its headers this soon.
_UNANNOUNCED_BODY_WAIT_S = 0.05
_BODY_METHODS = ("POST", "PUT", "PATCH")
_DIGITS = re.compile(r"[0-9]+")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")
# Connections not yet accepted that the kernel holds (capped by net.core.somaxconn): a burst of
# new connections waits here instead of being reset.
LISTEN_BACKLOG = 1024
# API Gateway documents no idle timeout for HTTP APIs; a keep-alive connection that sends nothing
# for this long is closed here (--idle-timeout), so idle connections cannot pile up.
IDLE_TIMEOUT_S = 60.0
# Requests served at once; idle connections take no thread.
REQUEST_THREADS = 32
NOT_FOUND = (404, {"message": "Not Found"})  # also a method no route serves, as HTTP APIs answer it
TOO_LARGE = (413, {"message": "Request Entity Too Large"})
# The event would be over Lambda's 6 MB synchronous invoke limit: Lambda refuses it and API Gateway
# answers this (a captured answer: github.com/koki-develop/lgtm-generator/issues/10).
REQUEST_TOO_LONG = (413, {"message": "Request Too Long"})
INTERNAL_ERROR = (500, {"message": "Internal Server Error"})
SERVICE_UNAVAILABLE = (503, {"message": "Service Unavailable"})
FORBIDDEN = (403, {"message": "Forbidden"})  # API Gateway's answer to an unsigned request on an IAM route


@dataclass(frozen=True)
class Route:
    """One HttpApi event: `METHOD /path/{param}/{greedy+}`, served by function `target`; `iam`
    when the event says `Auth: {Authorizer: AWS_IAM}`."""

    method: str
    path: str
    target: str = ""
    iam: bool = False

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return [segment for segment in self.path.strip("/").split("/") if segment]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters if `METHOD path` (a decoded path) is served by this route."""
        if self.path == "$default":
            return {}
        if self.method not in ("ANY", method.upper()):
            return None
        wanted = self.segments
        given = [segment for segment in path.strip("/").split("/")] if path.strip("/") else []
        params: dict[str, str] = {}
        for index, pattern in enumerate(wanted):
            if pattern.startswith("{") and pattern.endswith("+}"):
                rest = given[index:]
                if index != len(wanted) - 1 or not rest or not "/".join(rest):
                    return None
                params[pattern[1:-2]] = "/".join(rest)
                return params
            if index >= len(given):
                return None
            if pattern.startswith("{") and pattern.endswith("}"):
                if not given[index]:
                    return None
                params[pattern[1:-1]] = given[index]
            elif pattern != given[index]:
                return None
        return params if len(given) == len(wanted) else None

    def specificity(self) -> tuple[bool, int, int, bool]:
        """Sort key, most specific first: API Gateway prefers literal segments over parameters,
        parameters over greedy ones, a method over ANY, and $default last."""
        segments = self.segments
        greedy = sum(1 for s in segments if s.endswith("+}"))
        literals = sum(1 for s in segments if not s.startswith("{"))
        return (self.path == "$default", greedy, -literals, self.method == "ANY")


def route_needs_iam(properties: dict[str, Any]) -> bool:
    """An HttpApi event's properties ask for the built-in IAM authorizer."""
    auth = properties.get("Auth") or {}
    return isinstance(auth, dict) and auth.get("Authorizer") == "AWS_IAM"


_SIGV4 = re.compile(r"AWS4-HMAC-SHA256 Credential=([A-Za-z0-9]{1,128})/\d{8}/[a-z0-9-]+/execute-api/aws4_request,"
                    r" ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}")


def local_iam_identity(headers: Any) -> dict[str, Any] | None:
    """The `requestContext.authorizer.iam` API Gateway would add for a SigV4-signed request, or
    None when the request is not signed for execute-api (API Gateway answers 403 then).

    The local stack checks the signature's *shape* only (moto's credentials are not real ones):
    enough for a client that forgot to sign to fail here as it would when deployed."""
    match = _SIGV4.fullmatch((headers.get("Authorization") or "").strip())
    if match is None or not (headers.get("X-Amz-Date") or "").strip():
        return None
    return {"accessKey": match.group(1), "accountId": LOCAL_ACCOUNT_ID, "callerId": "LOCAL", "cognitoIdentity": None,
            "principalOrgId": None, "userArn": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/local", "userId": "LOCAL"}


def match_route(routes: Iterable[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The most specific route serving `METHOD path`, with its path parameters."""
    for route in sorted(routes, key=Route.specificity):
        params = route.match(method, path)
        if params is not None:
            return route, params
    return None


def build_http_event(
    *,
    route: Route,
    path_params: dict[str, str],
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    domain_name: str,
    now: datetime | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload-format 2.0 event. `raw_path` is the decoded path, as
    HTTP API delivers it; `raw_query` stays percent-encoded."""
    now = now or datetime.now(UTC)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    user_agent = merged.get("user-agent", "")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id or str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = dict(path_params)
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def json_response(status: int, payload: Any) -> HttpResponse:
    return HttpResponse(status, [("content-type", "application/json")], json.dumps(payload).encode())


def map_handler_result(result: Any) -> HttpResponse:
    """A handler's return value → the HTTP response API Gateway (payload 2.0) sends.

    A dict with statusCode is a full response; any other JSON value (a dict without statusCode,
    a string...) is the body of a 200 application/json response, as HTTP API infers it.
    Raises ValueError for a response API Gateway would reject (it answers 500 then).
    """
    if isinstance(result, dict) and "statusCode" in result:
        status = result["statusCode"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"invalid statusCode {status!r}")
        headers = [(str(k), _header_value(v)) for k, v in (result.get("headers") or {}).items()]
        headers += [("set-cookie", str(cookie)) for cookie in result.get("cookies") or []]
        body = result.get("body")
        if body is None:
            data = b""
        elif not isinstance(body, str):
            data = json.dumps(body).encode()
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(body)
        else:
            data = body.encode("utf-8")
        return HttpResponse(status, headers, data)
    body = result if isinstance(result, str) else json.dumps(result)
    return HttpResponse(200, [("content-type", "application/json")], body.encode("utf-8"))


def _host_name(host_header: str | None) -> str:
    """The domain of a Host header ("127.0.0.1:3000" -> "127.0.0.1"), as API Gateway's domainName."""
    host = (host_header or "").strip()
    if host.startswith("["):  # [::1]:3000
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


Invoke = Callable[[str, dict[str, Any]], Any]  # (function logical id, event) -> handler result


class RequestRefused(Exception):
    """A request the front end answers itself, before any route runs (API Gateway's 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def content_length(values: list[str]) -> int:
    """The body length Content-Length announces; RequestRefused(400) when it is not one
    non-negative decimal number (repeated headers, or a list, only if every value agrees)."""
    parts = [part.strip() for value in values for part in value.split(",")]
    if not all(_DIGITS.fullmatch(part) for part in parts):
        shown = ", ".join(values)[:40]
        raise RequestRefused(400, f"invalid Content-Length {shown!r}: it must be a non-negative whole number of bytes")
    if len(set(int(part) for part in parts)) != 1:
        raise RequestRefused(400, f"conflicting Content-Length values {', '.join(values)[:40]!r}")
    return int(parts[0])


class _Connection:
    """A client connection and its buffered reader, kept from one request to the next."""

    __slots__ = ("sock", "address", "rfile", "wfile", "idle_since")

    def __init__(self, sock: socket.socket, address: Any) -> None:
        self.sock = sock
        self.address = address
        self.rfile = sock.makefile("rb")
        # Unbuffered: each answer is one write of bytes already joined (BaseHTTPRequestHandler's
        # annotation says BufferedIOBase; it only ever calls write and flush).
        self.wfile: Any = sock.makefile("wb", buffering=0)
        self.idle_since = time.monotonic()

    def has_buffered_request(self) -> bool:
        """Bytes of a next request already here (pipelined, or read ahead with this one)."""
        return _peek(self.sock, self.rfile)

    def close(self) -> None:
        for closing in (self.rfile.close, self.wfile.close, self.sock.close):
            try:
                closing()
            except OSError:
                pass  # already reset by the client: closed either way


def _peek(sock: socket.socket, rfile: Any) -> bool:
    # Non-blocking, so nothing waits and no read timeout marks the stream unusable.
    previous = sock.gettimeout()
    sock.setblocking(False)
    try:
        # A socket's makefile("rb") is a BufferedReader, which typeshed widens to BufferedIOBase.
        return bool(cast(io.BufferedReader, rfile).peek(1))
    except OSError:
        return False
    finally:
        sock.settimeout(previous)


class LocalHttpServer:
    """API Gateway's front end for the template's routes.

    Binds on construction (so a busy port fails fast); `serve_forever` in a thread, `shutdown`
    from another, then `server_close`. One thread watches the listening socket and every idle
    connection; a fixed set of `threads` serves the requests, so thousands of idle keep-alive
    connections cost no thread, and a connection idle for `idle_timeout_s` is closed. The listen
    backlog holds `LISTEN_BACKLOG` connections not yet accepted, so a burst is queued, not reset.
    """

    def __init__(self, host: str, port: int, routes: list[Route], invoke: Invoke, quiet: bool = False,
                 body_timeout_s: float = BODY_TIMEOUT_S, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 threads: int = REQUEST_THREADS) -> None:
        self.routes = routes
        self.invoke = invoke
        self.quiet = quiet
        self.public_host = host
        self.body_timeout_s = body_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._threads = threads
        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(LISTEN_BACKLOG)
            self.socket.setblocking(False)
        except OSError:
            self.socket.close()
            raise
        self.server_address = self.socket.getsockname()
        self._ready: queue.SimpleQueue[_Connection | None] = queue.SimpleQueue()
        self._returned: collections.deque[_Connection] = collections.deque()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._workers: list[threading.Thread] = []
        self._open: set[_Connection] = set()
        self._open_lock = threading.Lock()

    # -- the watching thread

    def serve_forever(self) -> None:
        self._workers = [threading.Thread(target=self._work, name=f"http-{n}", daemon=True)
                         for n in range(self._threads)]
        for worker in self._workers:
            worker.start()
        selector = selectors.DefaultSelector()
        selector.register(self.socket, selectors.EVENT_READ)
        selector.register(self._wake_reader, selectors.EVENT_READ)
        idle: dict[_Connection, None] = {}  # watched connections, oldest first
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                oldest = next(iter(idle), None)
                wait = 1.0 if oldest is None else max(0.0, oldest.idle_since + self.idle_timeout_s - now)
                for key, _ in selector.select(timeout=min(wait, 1.0)):
                    if key.fileobj is self.socket:
                        for connection in self._accept():
                            selector.register(connection.sock, selectors.EVENT_READ, connection)
                            idle[connection] = None
                    elif key.fileobj is self._wake_reader:
                        self._drain_wakeups()
                    else:  # a request arrives: a worker takes the connection until it has answered
                        connection = key.data
                        selector.unregister(connection.sock)
                        del idle[connection]
                        self._ready.put(connection)
                while self._returned:
                    connection = self._returned.popleft()
                    connection.idle_since = time.monotonic()
                    selector.register(connection.sock, selectors.EVENT_READ, connection)
                    idle[connection] = None
                expired = time.monotonic() - self.idle_timeout_s
                while idle and (stale := next(iter(idle))).idle_since <= expired:
                    del idle[stale]
                    selector.unregister(stale.sock)
                    self._close(stale)
        finally:
            for connection in idle:
                self._close(connection)
            selector.close()
            self._stopped.set()

    def _accept(self) -> list[_Connection]:
        accepted: list[_Connection] = []
        while True:
            try:
                sock, address = self.socket.accept()
            except BlockingIOError:
                return accepted
            except OSError as exc:  # out of file descriptors: the rest waits in the backlog
                print(f"devicegate local: cannot accept a connection: {exc}", file=sys.stderr, flush=True)
                return accepted
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Also the longest a request's head or body may pause: a client that stops mid-request
            # gives its thread back after this long.
            sock.settimeout(self.body_timeout_s)
            connection = _Connection(sock, address)
            with self._open_lock:
                self._open.add(connection)
            accepted.append(connection)

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except BlockingIOError:
            return

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"x")
        except BlockingIOError:
            pass  # already full of wake-ups: the watcher will look

    # -- the request threads

    def _work(self) -> None:
        while (connection := self._ready.get()) is not None:
            self._serve(connection)

    def _serve(self, connection: _Connection) -> None:
        handler = _RequestHandler(connection, self)
        try:
            handler.handle_one_request()
        except OSError:  # reset or timed out mid-answer: nothing more to say on it
            handler.close_connection = True
        if handler.close_connection or self._stopping.is_set():
            self._close(connection)
        elif connection.has_buffered_request():
            self._ready.put(connection)
        else:
            self._returned.append(connection)
            self._wake()

    def _close(self, connection: _Connection) -> None:
        with self._open_lock:
            self._open.discard(connection)
        connection.close()

    # -- lifecycle, as socketserver's

    def shutdown(self) -> None:
        """Stop serving and wait for the watching thread to end (call from another thread)."""
        self._stopping.set()
        self._wake()
        if self._workers:
            self._stopped.wait()

    def server_close(self, timeout_s: float = 10.0) -> None:
        """Close the socket and every connection; requests in flight get `timeout_s` to finish."""
        self._stopping.set()
        self.socket.close()
        for _ in self._workers:
            self._ready.put(None)
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._open_lock:
            remaining, self._open = list(self._open), set()
        for connection in remaining:
            connection.close()
        self._wake_reader.close()
        self._wake_writer.close()


class _RequestHandler(BaseHTTPRequestHandler):
    """One request of a connection (BaseHTTPRequestHandler reads and parses it; any method is
    routed, as API Gateway routes any method)."""

    server: LocalHttpServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def __init__(self, connection: _Connection, server: LocalHttpServer) -> None:  # noqa: D107
        # Not BaseRequestHandler's constructor, which would serve the whole connection.
        self.server = server
        self.request = self.connection = connection.sock
        self.client_address = connection.address
        self.rfile = connection.rfile
        self.wfile = connection.wfile
        self.close_connection = True

    def version_string(self) -> str:
        return "devicegate-local"

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except TimeoutError:  # connected, then silent past the timeout mid-line
            return
        if not self.raw_requestline:  # the client closed the connection
            return
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():  # answered already (send_error)
            return
        self._handle()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's refusals (a malformed request line, too many headers...) in API Gateway's
        JSON shape instead of an HTML page."""
        reason = message or self.responses.get(code, ("Error",))[0]
        self.close_connection = True
        self._write(json_response(code, {"message": reason}))

    def _handle(self) -> None:
        started = time.monotonic()
        route_key = f"{self.command} (no route)"
        try:
            response, route_key = self._respond()
        except Exception:  # the emulator itself failed: still answer like API Gateway
            traceback.print_exc(file=sys.stderr)
            response = json_response(*INTERNAL_ERROR)
        if not self.server.quiet:
            ms = (time.monotonic() - started) * 1000
            # Never the raw path: its {token} segment is the vendor's secret.
            print(f"{route_key} {response.status} {ms:.0f}ms", file=sys.stderr, flush=True)
        self._write(response)

    def _respond(self) -> tuple[HttpResponse, str]:
        raw_target = self.path
        raw_path, _, raw_query = raw_target.partition("?")
        raw_path = raw_path.split("#", 1)[0]
        path = unquote(raw_path)
        matched = match_route(self.server.routes, self.command, path)
        try:
            body = self._read_body()
        except RequestRefused as refused:
            # What is left of the body cannot be told from a next request: end the connection.
            self.close_connection = True
            label = matched[0].route_key if matched else f"{self.command} (no route)"
            return json_response(refused.status, {"message": refused.message}), label
        if matched is None:
            # API Gateway's answer to a method or path no route serves, whatever the method.
            return json_response(*NOT_FOUND), f"{self.command} (no route)"
        route, params = matched
        identity = local_iam_identity(self.headers) if route.iam else None
        if route.iam and identity is None:
            return json_response(*FORBIDDEN), route.route_key
        event = build_http_event(
            route=route,
            path_params=params,
            method=self.command,
            raw_path=path,
            raw_query=raw_query,
            headers=self.headers.items(),
            body=body,
            source_ip=self.client_address[0],
            domain_name=_host_name(self.headers.get("Host")) or self.server.public_host,
        )
        if identity is not None:
            event["requestContext"]["authorizer"] = {"iam": identity}
        try:
            result = self.server.invoke(route.target, event)
            return map_handler_result(result), route.route_key
        except RequestTooLarge:
            # Lambda refused the event without calling the function; API Gateway says so.
            return json_response(*REQUEST_TOO_LONG), route.route_key
        except FunctionError as error:
            print(f"devicegate local: {route.target} failed on {route.route_key}: {error.error_type}: "
                  f"{error.message}\n{error.trace}".rstrip(), file=sys.stderr, flush=True)
            return json_response(*INTERNAL_ERROR), route.route_key
        except StackStopping:
            return json_response(*SERVICE_UNAVAILABLE), route.route_key
        except Exception:
            # API Gateway answers 500 when the integration fails; make the cause visible.
            print(f"devicegate local: {route.target} failed on {route.route_key}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            return json_response(*INTERNAL_ERROR), route.route_key

    def _read_body(self) -> bytes:
        """The request body; RequestRefused for one over the limit (413) or one that does not
        match its framing (400): a bad Content-Length, fewer bytes than it announces, a body
        without Content-Length, a broken chunked encoding."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._with_timeout(self._read_chunked)
        values = self.headers.get_all("Content-Length") or []
        if not values:
            if self.command in _BODY_METHODS and self._unannounced_body():
                raise RequestRefused(400, "the request has a body but no Content-Length header "
                                          "(or Transfer-Encoding: chunked)")
            return b""
        length = content_length(values)
        if length > MAX_BODY_BYTES:
            if length <= _DRAIN_LIMIT:  # read it so the client gets to see the 413
                try:
                    self._with_timeout(lambda: self._drain(length))
                except RequestRefused:
                    pass  # it stopped sending: the answer is still that it was too large
            raise RequestRefused(TOO_LARGE[0], TOO_LARGE[1]["message"])
        return self._with_timeout(lambda: self._read_exactly(length)) if length else b""

    def _with_timeout(self, read: Callable[[], Any]) -> Any:
        # The connection's timeout is body_timeout_s from its accept on.
        try:
            return read()
        except TimeoutError:
            raise RequestRefused(400, f"the request body stopped arriving for {self.server.body_timeout_s:g} s "
                                      "before the end its framing announces (a Content-Length larger than the "
                                      "body?)") from None

    def _read_exactly(self, length: int) -> bytes:
        body = self.rfile.read(length)
        if len(body) < length:
            raise RequestRefused(400, f"the request body has {len(body)} bytes but its Content-Length says {length}")
        return body

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                return
            length -= len(chunk)

    def _unannounced_body(self) -> bool:
        """Whether bytes follow the headers although no length was announced. HTTP/1.1 would take
        them for the next request; a client that sent them meant them as this one's body."""
        if _peek(self.connection, self.rfile):
            return True
        readable, _, _ = select.select([self.connection], [], [], _UNANNOUNCED_BODY_WAIT_S)
        return bool(readable) and _peek(self.connection, self.rfile)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _HEX_DIGITS.fullmatch(size_text):
                raise RequestRefused(400, "invalid chunked request body: expected a chunk size in hex")
            size = int(size_text, 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = self.rfile.readline(8192)
                    if not trailer:
                        raise RequestRefused(400, "invalid chunked request body: it ends before its last chunk")
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise RequestRefused(TOO_LARGE[0], TOO_LARGE[1]["message"])
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise RequestRefused(400, "invalid chunked request body: a chunk is shorter than its size")
            chunks.append(chunk)

    def _write(self, response: HttpResponse) -> None:
        # Status, headers and body in one write: no second segment waiting on a delayed ACK.
        lines = [f"{self.protocol_version} {response.status} {self.responses.get(response.status, ('',))[0]}",
                 f"Server: {self.version_string()}", f"Date: {self.date_time_string()}"]
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                lines.append(f"{name}: {value}")
        if "content-type" not in names and response.body:
            lines.append("content-type: application/json")
        lines.append(f"apigw-requestid: {uuid.uuid4()}")
        lines.append(f"Content-Length: {len(response.body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.wfile.write(head if self.command == "HEAD" else head + response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # http.server's default line includes the raw path, which carries the token.
        return
