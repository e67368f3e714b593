"""The local stack's HTTP front end under load and at its limits (local_http.LocalHttpServer):
a real listen backlog, idle connections that cost no thread and are closed after the idle
timeout, API Gateway's answers to what no route serves and to an event over Lambda's 6 MB."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devicegate_local.functions import Invoker
from devicegate_local.http import MAX_BODY_BYTES, REQUEST_THREADS, LocalHttpServer, Route
from tests.unit.test_local_functions import _spec

ROUTE = Route("POST", "/hooks/jointech/{token}", "Webhook")


def _answering(function_id: str, event: dict[str, Any]) -> Any:
    return {"statusCode": 200, "body": json.dumps({"token": event["pathParameters"]["token"]})}


def _start(server: LocalHttpServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[LocalHttpServer] = []

    def make(invoke: Any = _answering, start: bool = True, **options: Any) -> LocalHttpServer:
        server = LocalHttpServer("127.0.0.1", 0, [ROUTE], invoke, quiet=True, **options)
        servers.append(server)
        if start:
            _start(server)
        return server

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def _connect(server: LocalHttpServer, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(server.server_address[:2], timeout=timeout)


def _request(method: str = "POST", path: str = "/hooks/jointech/dev-token", body: bytes = b"{}") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


_UNREAD: dict[socket.socket, bytes] = {}  # what a read took past the end of the answer it was for


def _answer(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The next whole HTTP answer on the connection: (status, headers, body)."""
    data = _UNREAD.pop(connection, b"")
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += connection.recv(65536)
    _UNREAD[connection] = rest[length:]
    return int(lines[0].split(" ", 2)[1]), headers, rest[:length]


def test_forty_simultaneous_connections_are_all_answered(serve):
    # Given the front end bound but busy (not accepting yet), as when a burst arrives at once
    slow_calls = []

    def slow(function_id: str, event: dict[str, Any]) -> Any:
        slow_calls.append(1)
        time.sleep(0.02)
        return _answering(function_id, event)

    server = serve(slow, start=False)
    # When 40 terminals connect at the same moment (each connect must complete within 2 s)
    connections = [_connect(server, timeout=2) for _ in range(40)]
    try:
        _start(server)
        for connection in connections:
            connection.sendall(_request())
        # Then every connection gets its answer: none was refused or reset
        answers = [_answer(connection) for connection in connections]
    finally:
        for connection in connections:
            connection.close()
    assert [status for status, _, _ in answers] == [200] * 40
    assert len(slow_calls) == 40


def test_idle_connections_take_no_thread(serve):
    server = serve()
    with _connect(server) as first:  # serving: its request threads are running
        first.sendall(_request())
        assert _answer(first)[0] == 200
    before = threading.active_count()
    # When 200 clients connect and send nothing (and one more is answered, so all are accepted)
    idle = [_connect(server) for _ in range(200)]
    try:
        with _connect(server) as probe:
            probe.sendall(_request())
            assert _answer(probe)[0] == 200
        # Then the front end still runs on its fixed set of threads
        assert threading.active_count() == before
    finally:
        for connection in idle:
            connection.close()
    assert server._threads == REQUEST_THREADS


def test_a_keep_alive_connection_is_closed_after_the_idle_timeout(serve):
    server = serve(idle_timeout_s=0.3)
    with _connect(server) as connection:
        # Given a connection kept alive after its first answer
        connection.sendall(_request())
        status, headers, _ = _answer(connection)
        assert status == 200 and headers.get("connection") != "close"
        # And used again within the idle timeout
        connection.sendall(_request())
        assert _answer(connection)[0] == 200
        # When it then stays silent past the idle timeout
        # Then the front end closes it (the read ends instead of waiting out the 5 s socket timeout)
        assert connection.recv(1) == b""


def test_pipelined_requests_are_answered_in_order(serve):
    server = serve()
    with _connect(server) as connection:
        connection.sendall(_request(path="/hooks/jointech/first") + _request(path="/hooks/jointech/second"))
        first, second = _answer(connection), _answer(connection)
    assert json.loads(first[2]) == {"token": "first"} and json.loads(second[2]) == {"token": "second"}


@pytest.mark.parametrize("method, path", [
    ("BREW", "/hooks/jointech/dev-token"),     # a method http.server has no handler for (it answered 501 HTML)
    ("GET", "/hooks/jointech/dev-token"),      # a method the route does not serve
    ("DELETE", "/nowhere"),
])
def test_what_no_route_serves_is_answered_as_api_gateway_does(serve, method, path):
    calls = []
    server = serve(lambda function_id, event: calls.append(event))
    with _connect(server) as connection:
        connection.sendall(_request(method, path, b""))
        status, headers, body = _answer(connection)
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    assert headers["content-type"] == "application/json"
    assert calls == []


def test_a_malformed_request_line_gets_a_json_answer(serve):
    server = serve()
    with _connect(server) as connection:
        connection.sendall(b"POST /hooks/jointech/x HTTP/9.9\r\n\r\n")
        status, headers, body = _answer(connection)
    assert status == 505 and headers["content-type"] == "application/json" and "message" in json.loads(body)


def test_a_body_whose_event_is_over_6_mb_is_refused_without_invoking(serve, tmp_path: Path):
    # Given the front end invoking a real function, which leaves a mark when it runs
    spec = _spec(tmp_path, "Webhook")
    invoker = Invoker([spec], {})
    marker = tmp_path / "invoked"
    server = serve(invoker_bridge(invoker, marker))
    try:
        with _connect(server, timeout=30) as connection:
            # When the body is under API Gateway's 10 MB but its event is over Lambda's 6 MB
            body = json.dumps({"pad": "x" * 6_500_000}).encode()
            assert len(body) < MAX_BODY_BYTES
            connection.sendall(_request(body=body))
            status, _, answer = _answer(connection)
            # Then API Gateway's answer for Lambda's refusal, and the function never ran
            assert (status, json.loads(answer)) == (413, {"message": "Request Too Long"})
            assert not marker.exists()
            # While a small body on the same connection reaches it
            connection.sendall(_request(body=b'{"small": true}'))
            assert _answer(connection)[0] == 200 and marker.exists()
    finally:
        invoker.stop(grace_s=1)


def invoker_bridge(invoker: Invoker, marker: Path) -> Any:
    """The front end's invoke, with the function told (in its event) where to leave its mark."""

    def invoke(function_id: str, event: dict[str, Any]) -> Any:
        result = invoker(function_id, {**event, "touch": str(marker)})
        return {"statusCode": 200, "body": json.dumps(result)}

    return invoke


def test_a_function_error_is_a_500_with_the_functions_traceback(serve, tmp_path: Path, capsys):
    invoker = Invoker([_spec(tmp_path, "Webhook")], {})

    def invoke(function_id: str, event: dict[str, Any]) -> Any:
        return invoker(function_id, {"fail": True})

    server = LocalHttpServer("127.0.0.1", 0, [ROUTE], invoke)
    _start(server)
    try:
        with _connect(server, timeout=30) as connection:
            connection.sendall(_request())
            status, _, body = _answer(connection)
    finally:
        server.shutdown()
        server.server_close()
        invoker.stop(grace_s=1)
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    err = capsys.readouterr().err
    assert "Webhook failed on POST /hooks/jointech/{token}: ValueError: the handler failed on purpose" in err
    assert 'app.py", line' in err
