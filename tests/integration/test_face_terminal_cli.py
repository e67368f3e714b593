"""`devicegate face-terminal` against a fake terminal HTTP API on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devicegate_cli.main import main

TOKEN = "s3cr3t-t0ken-9f2c"
HOOK = f"https://gw.example.com/hooks/face-terminal/{TOKEN}"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeTerminal:
    """Behaves like the terminal's /v1/event/subscribe; `mode` scripts the failure under test."""

    mode: str = "store"
    config: dict[str, Any] | None = None
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def device(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, handler: BaseHTTPRequestHandler, method: str) -> tuple[int, str, bytes]:
        if self.mode == "hang":
            self.release.wait(5)
            return 200, "application/json", b'{"code": 200, "msg": "OK", "data": null}'
        if self.mode == "http401":
            return 401, "text/plain", b"Unauthorized: missing token"
        if self.mode == "html":
            return 200, "text/html", b"<html><body>Login page</body></html>"
        if self.mode == "refuse":
            return 200, "application/json", json.dumps({"code": 500, "msg": "invalid event_dest"}).encode()
        if method == "POST" and self.mode == "store":
            self.config = dict(self.requests[-1].body)
        data = None if self.mode == "null" else self.config  # "fixed" answers config without storing
        return 200, "application/json", json.dumps({"data": data, "code": 200, "msg": "OK"}).encode()


@pytest.fixture
def terminal():
    fake = FakeTerminal()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fake.requests.append(Received(self.command, self.path, dict(self.headers.items()),
                                          json.loads(raw) if raw else None))
            status, content_type, body = fake.answer(self, self.command)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the CLI gave up on a hanging answer and closed the socket

        do_GET = do_POST = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def cli(capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["face-terminal", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_subscribe_sends_config_and_verifies_read_back(terminal, cli):
    # Given a terminal that stores the subscription and reports it on GET
    # When subscribing the gateway's webhook with an auth header
    code, out, err = cli("subscribe", "--device", terminal.device, "--url", HOOK, "--header", "X-Api-Key: k1")
    # Then a JSON POST then a GET went to /v1/event/subscribe, carrying the header
    assert [(r.method, r.path) for r in terminal.requests] == [("POST", "/v1/event/subscribe"),
                                                                 ("GET", "/v1/event/subscribe")]
    post = terminal.requests[0]
    assert post.body == {"event_dest": HOOK, "enabled": True}
    assert post.headers["Content-Type"] == "application/json"
    assert all(r.headers["X-Api-Key"] == "k1" for r in terminal.requests)
    # And the output confirms the read-back without printing the token
    assert code == 0
    assert "verified" in out
    assert "/hooks/face-terminal/****" in out
    assert TOKEN not in out + err
    assert err == ""


def test_subscribe_with_serial_adds_device_parameter_keeping_query(terminal, cli):
    # Given a webhook URL that already has a query
    # When subscribing with --serial
    code, out, _ = cli("subscribe", "--device", terminal.device, "--url", HOOK + "?site=north",
                       "--serial", "FT 2024/01")
    # Then the terminal receives the URL with device= appended, percent-encoded
    sent = terminal.requests[0].body["event_dest"]
    assert sent == HOOK + "?site=north&device=FT%202024%2F01"
    assert code == 0
    assert "?site=north&device=FT%202024%2F01" in out and "verified" in out


def test_subscribe_with_data_null_reports_unverified(terminal, cli):
    # Given firmware that answers GET with data null, as in the vendor doc
    terminal.mode = "null"
    # When subscribing
    code, out, _ = cli("subscribe", "--device", terminal.device, "--url", HOOK)
    # Then the POST is accepted and the output says it could not be verified
    assert [r.method for r in terminal.requests] == ["POST", "GET"]
    assert code == 0
    assert "not verified" in out


def test_url_too_long_is_refused_before_any_request(terminal, cli, capsys):
    # Given a URL that fits alone but exceeds 1024 characters once device= is added
    url = HOOK + "?pad=" + "x" * (1024 - len(HOOK) - 5)
    assert len(url) == 1024
    # When subscribing with a serial
    with pytest.raises(SystemExit) as exit_info:
        main(["face-terminal", "subscribe", "--device", terminal.device, "--url", url, "--serial", "SN1"])
    # Then it is a usage error naming the length, and the terminal saw nothing
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "1035 characters" in err and "at most 1024" in err
    assert terminal.requests == []


def test_url_without_hook_path_warns_but_sends(terminal, cli):
    # Given a URL that is not the gateway's face-terminal route
    # When subscribing
    code, _, err = cli("subscribe", "--device", terminal.device, "--url", "https://gw.example.com/Record")
    # Then a warning is printed and the URL is still sent
    assert code == 0
    assert "warning" in err and "/hooks/face-terminal/" in err
    assert terminal.requests[0].body == {"event_dest": "https://gw.example.com/Record", "enabled": True}


def test_unreachable_terminal_names_the_address(cli):
    # Given a port nothing listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # When subscribing
    code, out, err = cli("subscribe", "--device", f"http://127.0.0.1:{port}", "--url", HOOK)
    # Then one line says the connection was refused, with the address tried
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "connection refused" in err and f"127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_refusing_terminal_reports_code_and_msg(terminal, cli):
    # Given a terminal that answers code 500
    terminal.mode = "refuse"
    # When subscribing
    code, out, err = cli("subscribe", "--device", terminal.device, "--url", HOOK)
    # Then the POST was sent, no read-back, and the error carries the terminal's code and msg
    assert [r.method for r in terminal.requests] == ["POST"]
    assert code == 1
    assert out == ""
    assert "terminal refused: code 500: invalid event_dest" in err


def test_http_401_reports_status_and_body(terminal, cli):
    # Given a terminal that wants credentials
    terminal.mode = "http401"
    # When showing its setting
    code, out, err = cli("show", "--device", terminal.device)
    # Then the error has the status, a header hint and the short body
    assert [(r.method, r.path) for r in terminal.requests] == [("GET", "/v1/event/subscribe")]
    assert code == 1
    assert out == ""
    assert "HTTP 401" in err and "--header" in err and "Unauthorized: missing token" in err


def test_html_answer_is_reported_as_non_json(terminal, cli):
    # Given a terminal that answers with an HTML page
    terminal.mode = "html"
    # When showing its setting
    code, _, err = cli("show", "--device", terminal.device)
    # Then the error says non-JSON with the content type
    assert len(terminal.requests) == 1
    assert code == 1
    assert "non-JSON (text/html)" in err and "Traceback" not in err


def test_hanging_terminal_times_out(terminal, cli):
    # Given a terminal that does not answer
    terminal.mode = "hang"
    # When subscribing with a short timeout
    code, out, err = cli("subscribe", "--device", terminal.device, "--url", HOOK, "--timeout", "0.3")
    # Then the request was received and the error names the timeout and address
    assert [r.method for r in terminal.requests] == ["POST"]
    assert code == 1
    assert out == ""
    assert f"127.0.0.1:{terminal.port} did not answer within 0.3 s" in err


def test_show_masks_the_token_and_reveal_prints_it(terminal, cli):
    # Given a terminal configured with a tokenised webhook and a serial
    terminal.config = {"event_dest": HOOK + "?device=SN7", "enabled": True}
    # When showing it, then showing it with --reveal, then as JSON
    code, out, _ = cli("show", "--device", terminal.device)
    revealed_code, revealed, _ = cli("show", "--device", terminal.device, "--reveal")
    json_code, as_json, _ = cli("show", "--device", terminal.device, "--json")
    # Then the default output masks the token segment only
    assert [r.method for r in terminal.requests] == ["GET", "GET", "GET"]
    assert code == revealed_code == json_code == 0
    assert "event_dest: https://gw.example.com/hooks/face-terminal/****?device=SN7" in out
    assert "enabled:    true" in out
    assert TOKEN not in out
    assert f"event_dest: {HOOK}?device=SN7" in revealed
    assert json.loads(as_json) == {"event_dest": "https://gw.example.com/hooks/face-terminal/****?device=SN7",
                                   "enabled": True}


def test_disable_sends_enabled_false(terminal, cli):
    # Given a terminal that stores the subscription
    # When subscribing with --disable
    code, out, _ = cli("subscribe", "--device", terminal.device, "--url", HOOK, "--disable")
    # Then enabled false was sent and read back
    assert terminal.requests[0].body == {"event_dest": HOOK, "enabled": False}
    assert code == 0
    assert "disabled" in out and "verified" in out


def test_bare_ip_port_device_is_accepted(terminal, cli):
    # Given the terminal's address as shown on its screen, without a scheme
    # When showing its setting (empty so far)
    code, out, _ = cli("show", "--device", f"127.0.0.1:{terminal.port}")
    # Then the request went over http and the empty data is reported
    assert [(r.method, r.path) for r in terminal.requests] == [("GET", "/v1/event/subscribe")]
    assert terminal.requests[0].headers["Host"] == f"127.0.0.1:{terminal.port}"
    assert code == 0
    assert "no subscription data" in out


def test_mismatching_read_back_fails(terminal, cli):
    # Given firmware that stores something other than what was sent
    terminal.config = {"event_dest": "http://old.example/Record", "enabled": False}
    terminal.mode = "fixed"
    # When subscribing
    code, _, err = cli("subscribe", "--device", terminal.device, "--url", HOOK)
    # Then the mismatch is reported with the terminal's values
    assert [r.method for r in terminal.requests] == ["POST", "GET"]
    assert code == 1
    assert "mismatch" in err and "http://old.example/Record" in err and "enabled=false" in err
