"""`devicegate senselink-bridge` against a fake SenseLink server (websockets) and a fake gateway
(http.server), the bridge running as a real subprocess so that signals, exit codes and what it
writes to stderr are the ones an operator gets."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import serve

from devicegate_onprem import senselink_bridge
from devicegate_onprem.senselink_bridge import classify, main, parse_config, signed_path

APP_KEY = "f7e1a2b3c4d5"
APP_SECRET = "s3cr3t-Pa55word-0042"
GATEWAY_TOKEN = "tok-9f8e7d6c5b4a"
SOURCE_NAME = "lobby-bridge"

# The vendor's documented examples; tests vary data.id.
RECORD = {"code": 30000, "message": "push record", "data": {
    "id": 1364591, "userId": 0, "name": "", "type": 3, "avatar": "", "direction": 0, "verifyScore": 0,
    "receptionUserId": 0, "receptionUserName": "", "groups": [{"id": 1, "name": "Default group", "type": 1}],
    "deviceName": "bella pro", "sn": "SPSP-f26131cf5301be29b3a6f7be150ed330", "signDate": "2019-09-29",
    "signTime": 1569725174, "signAvatar": "5d901af663cdaf0001252bb9", "signBgAvatar": "5d901af663cdaf0001252bba",
    "mobile": "", "icNumber": "", "idNumber": "", "jobNumber": "", "remark": "", "entryMode": 1,
    "signTimeZone": "+08:00", "docPhoto": "", "location": "306", "abnormalType": 0}}
ALARM = {"code": 30100, "desc": "", "message": "push alarm", "data": {
    "id": 0, "level": 0, "code": 0, "description": "", "status": 0, "traceId": "", "deviceId": 0,
    "deviceName": "", "deviceSn": "", "deviceLocation": "", "alarmTime": "", "releaseTime": "", "alarmPhoto": "",
    "resloveOption": 0}}
CONNECTED = '{"code":20000,"message":" Connected!","desc":"Connected!"}'
DENIED = '{"code":20002,"message":"Permission Denied!","desc":"app key not exist"}'
HEARTBEAT = '{"code":10000,"desc":"heart beat","message":"heart beat"}'

# Short delays everywhere so that no test waits on a production-sized backoff.
FAST = ["--reconnect-min", "0.05", "--reconnect-max", "0.2", "--retry-min", "0.05", "--retry-max", "0.2",
        "--auth-retry-max", "0.2", "--silence-timeout", "10", "--heartbeat-forward-interval", "60"]


def record(ident: int, **data: Any) -> str:
    message = copy.deepcopy(RECORD)
    message["data"].update(id=ident, **data)
    return json.dumps(message, ensure_ascii=False)


def alarm(ident: int) -> str:
    message = copy.deepcopy(ALARM)
    message["data"]["id"] = ident
    return json.dumps(message)


def wait_until(predicate, timeout: float = 10.0, what: str = "condition", log=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    detail = f"\n--- bridge log ---\n{log()}" if log else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")


# ---------------------------------------------------------------------------------------------
# Fake SenseLink


class TextBytes(bytes):
    """Bytes the fake server sends as a text frame, whether they are UTF-8 or not."""


@dataclass
class Attempt:
    at: float
    app_key: str
    timestamp: str
    sign: str
    valid: bool


class FakeSenseLink:
    """Checks each connection's app key and signature the way the server is documented to, then
    sends whatever the test scripts on the newest accepted connection."""

    def __init__(self, app_secret: str = APP_SECRET) -> None:
        self.app_secret = app_secret
        self.attempts: list[Attempt] = []
        self._current = None
        self._accepted = 0
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        assert started.wait(5)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        # The server's own pings stay off: SenseLink's liveness signal is its JSON heartbeat.
        self._server = self.loop.run_until_complete(self._serve())
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        started.set()
        self.loop.run_forever()

    async def _serve(self):
        return await serve(self._handler, "127.0.0.1", 0, ping_interval=None)

    async def _handler(self, ws) -> None:
        parts = ws.request.path.split("/")
        valid = False
        key = timestamp = sign = ""
        if len(parts) == 6 and parts[1:3] == ["websocket", "record"]:
            key, timestamp, sign = parts[3:]
            expected = hashlib.md5(f"{timestamp}#{self.app_secret}".encode()).hexdigest()
            valid = key == APP_KEY and sign == expected and abs(time.time() * 1000 - int(timestamp)) < 60_000
        self.attempts.append(Attempt(time.monotonic(), key, timestamp, sign, valid))
        if not valid:
            await ws.send(DENIED)
            await ws.close()
            return
        await ws.send(CONNECTED)
        self._current = ws
        self._accepted += 1
        await ws.wait_closed()

    @property
    def accepted(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.valid]

    def wait_accepted(self, count: int, timeout: float = 10.0, log=None) -> None:
        wait_until(lambda: self._accepted >= count, timeout, f"{count} accepted SenseLink connection(s)", log)

    def send(self, *frames: str | bytes) -> None:
        """Sends str as text frames, bytes as binary frames, TextBytes as text frames byte for byte."""
        async def go() -> None:
            for frame in frames:
                await self._current.send(frame, text=True if isinstance(frame, TextBytes) else None)

        asyncio.run_coroutine_threadsafe(go(), self.loop).result(30)

    def drop(self) -> None:
        """Closes the TCP connection without a WebSocket close frame, as a crashing server would."""
        self.loop.call_soon_threadsafe(self._current.transport.abort)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


# ---------------------------------------------------------------------------------------------
# Fake gateway


@dataclass
class Delivery:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class FakeGateway:
    """Accepts POSTs with 202 and records them; `mode` switches it to answering an error status,
    `stop()` to refusing connections, `reject_ids` to a permanent 400 for given data.id values."""

    mode: int | str = "ok"
    reject_ids: set[int] = field(default_factory=set)
    delivered: list[Delivery] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/senselink/{GATEWAY_TOKEN}"

    def start(self, mode: int | str = "ok") -> None:
        gateway = self
        self.mode = mode

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, reply = gateway._answer(body)
                if status == 202:
                    with gateway._lock:
                        gateway.delivered.append(Delivery(time.monotonic(), self.path, dict(self.headers), body))
                with gateway._lock:
                    gateway.answered.append(status)
                payload = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _answer(self, body: bytes) -> tuple[int, dict[str, str]]:
        if self.mode != "ok":
            return int(self.mode), {"message": "not now"}
        if _record_id(body) in self.reject_ids:
            return 400, {"message": "schema: field deviceSn missing"}
        # The real route answers what it cannot use 200 too, and keeps it in quarantine.
        return 202, {"message": "accepted"}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record_ids(self) -> list[int]:
        """data.id of the records and alarms delivered, in order (malformed frames left out)."""
        with self._lock:
            return [_record_id(d.body) for d in self.delivered if _code(d.body) in (30000, 30100)]

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [d.body for d in self.delivered]

    def heartbeats(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.delivered if _code(d.body) == 10000]


def _document(body: bytes) -> dict[str, Any]:
    # Malformed frames reach the gateway too: anything but an object is no record.
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


def _code(body: bytes) -> Any:
    return _document(body).get("code")


def _record_id(body: bytes) -> Any:
    data = _document(body).get("data")
    return data.get("id") if isinstance(data, dict) else None


# ---------------------------------------------------------------------------------------------
# The bridge as a subprocess


class Bridge:
    count = 0

    def __init__(self, tmp_path: Path, server: FakeSenseLink, gateway: FakeGateway, *options: str,
                 spool: Path | None = None) -> None:
        Bridge.count += 1
        self.spool = spool or tmp_path / "spool.db"
        self.log_path = tmp_path / f"bridge-{Bridge.count}.log"
        command = [sys.executable, "-m", "devicegate_cli.main", "senselink-bridge", "--ws", server.url,
                   "--app-key", APP_KEY, "--forward", gateway.url, "--spool", str(self.spool), "--name", SOURCE_NAME,
                   *FAST, *options]
        env = {**os.environ, "SENSELINK_APP_SECRET": APP_SECRET}
        with open(self.log_path, "wb") as stderr:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                            env=env, cwd=tmp_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def pending(self) -> list[tuple[int, str]]:
        return rows(self.spool, "SELECT seq, frame FROM pending ORDER BY seq")

    def rejected(self) -> list[tuple]:
        return rows(self.spool, "SELECT record_id, status, reason, frame FROM rejected ORDER BY seq")


def rows(spool: Path, query: str) -> list[tuple]:
    if not spool.exists():
        return []
    db = sqlite3.connect(spool, timeout=10)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def get_status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as response:
        return json.loads(response.read())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def senselink():
    server = FakeSenseLink()
    yield server
    server.close()


@pytest.fixture
def gateway():
    fake = FakeGateway()
    yield fake
    fake.stop()


@pytest.fixture
def bridges(tmp_path, senselink, gateway):
    started: list[Bridge] = []

    def start(*options: str, server: FakeSenseLink | None = None, **kwargs: Any) -> Bridge:
        bridge = Bridge(tmp_path, server or senselink, gateway, *options, **kwargs)
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        if bridge.process.poll() is None:
            bridge.process.kill()
            bridge.process.wait(5)


# ---------------------------------------------------------------------------------------------
# Required cases


def test_wrong_credentials_exit_2_with_clear_message_and_nothing_forwarded(gateway, bridges):
    # Given a SenseLink server that knows another secret for this app key
    server = FakeSenseLink(app_secret="not-the-bridge-secret")
    try:
        bridge = bridges(server=server)
        # When the bridge connects
        code = bridge.process.wait(10)
    finally:
        server.close()
    # Then it stops with 2 and says what to check, having forwarded nothing
    log = bridge.log()
    assert code == 2, log
    assert "SenseLink refused the credentials: app key / secret / clock?" in log
    assert len(server.attempts) == 1 and not server.attempts[0].valid
    assert gateway.answered == [] and bridge.pending() == []
    assert APP_SECRET not in log and server.attempts[0].sign not in log


def test_dropped_connection_reconnects_with_fresh_signature(senselink, gateway, bridges):
    # Given a connected bridge that delivered a first record
    bridge = bridges()
    senselink.wait_accepted(1, log=bridge.log)
    senselink.send(record(101))
    wait_until(lambda: gateway.record_ids() == [101], what="record 101 delivered", log=bridge.log)
    # When the server's socket goes away without a close frame
    senselink.drop()
    # Then the bridge reconnects with a new timestamp and signature, both valid
    senselink.wait_accepted(2, log=bridge.log)
    first, second = senselink.accepted[:2]
    assert first.timestamp != second.timestamp and first.sign != second.sign
    assert "event=disconnected" in bridge.log()
    # And frames sent after the reconnect are forwarded
    senselink.send(record(102), alarm(103))
    wait_until(lambda: gateway.record_ids() == [101, 102, 103], what="records after reconnect", log=bridge.log)
    assert bridge.stop() == 0


def test_gateway_outage_keeps_frames_in_spool_then_delivers_them_in_order(tmp_path, senselink, gateway, bridges,
                                                                          capsys):
    # Given a bridge with a status port and a gateway answering 503
    port = free_port()
    gateway.stop()
    gateway.start(mode=503)
    bridge = bridges("--status-port", str(port))
    senselink.wait_accepted(1, log=bridge.log)
    frames = [record(201), alarm(202), record(203, name="李雷")]
    # When records arrive during the 503s
    senselink.send(*frames)
    # Then they wait in the spool, exactly as received
    wait_until(lambda: len(bridge.pending()) == 3 and gateway.answered.count(503) >= 2, what="503s", log=bridge.log)
    assert [frame for _, frame in bridge.pending()] == frames
    status = get_status(port)
    assert status["connected"] is True and status["spool_pending"] == 3 and status["forwarded_total"] == 0
    assert status["last_forward_error"] == "HTTP 503" and status["last_frame_at"]
    assert "event=forward_failed status=503" in bridge.log()

    # When the gateway is unreachable and more records arrive
    gateway.stop()
    frames += [record(204), record(205)]
    senselink.send(*frames[3:])
    wait_until(lambda: len(bridge.pending()) == 5 and "Connection refused" in (get_status(port)["last_forward_error"]
                                                                                or ""), what="refused", log=bridge.log)
    # And then answers 403 (a wrong token)
    gateway.start(mode=403)
    wait_until(lambda: 403 in gateway.answered, what="403", log=bridge.log)
    assert len(bridge.pending()) == 5 and gateway.delivered == []

    # When it is back
    gateway.mode = "ok"
    # Then every frame arrives once, in order, byte for byte, and the spool is empty
    wait_until(lambda: len(gateway.record_ids()) == 5, what="all delivered", log=bridge.log)
    assert [d.body.decode() for d in gateway.delivered] == frames
    assert all(d.headers["X-Devicegate-Source"] == SOURCE_NAME and d.headers["Content-Type"] == "application/json"
               and d.path == f"/hooks/senselink/{GATEWAY_TOKEN}" for d in gateway.delivered)
    wait_until(lambda: get_status(port)["spool_pending"] == 0, what="status shows an empty spool")
    assert get_status(port)["forwarded_total"] == 5
    assert "gateway refused the token" in bridge.log()
    # And `status` reads the same from the file, without connecting
    assert main(["status", "--spool", str(bridge.spool)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pending"] == 0 and printed["rejected"] == 0 and printed["oldest_pending_age_s"] is None
    # And SIGTERM is a clean stop
    assert bridge.stop() == 0
    assert "event=stopped exit=0" in bridge.log()
    assert GATEWAY_TOKEN not in bridge.log()


def test_killed_bridge_delivers_every_spooled_frame_after_restart(tmp_path, senselink, gateway, bridges):
    # Given a gateway that is down and a bridge that spooled records from SenseLink
    gateway.stop()
    first = bridges()
    senselink.wait_accepted(1, log=first.log)
    frames = [record(301), alarm(302), record(303), record(304)]
    senselink.send(*frames)
    wait_until(lambda: len(first.pending()) == 4, what="4 spooled", log=first.log)
    assert rows(first.spool, "PRAGMA journal_mode") == [("wal",)]
    # When the bridge is killed outright, the gateway comes back and the bridge is restarted
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    gateway.start()
    second = bridges(spool=first.spool)
    # Then every frame is delivered (at least once, in order) and the spool is empty
    wait_until(lambda: len(first.pending()) == 0, what="spool drained", log=second.log)
    ids = gateway.record_ids()
    assert list(dict.fromkeys(ids)) == [301, 302, 303, 304]
    assert {d.body.decode() for d in gateway.delivered} == set(frames)
    assert "pending=4" in second.log().splitlines()[0]
    assert second.stop() == 0


def test_second_bridge_on_the_same_spool_exits_1(senselink, gateway, bridges):
    # Given a running bridge
    first = bridges()
    senselink.wait_accepted(1, log=first.log)
    # When another one is started on its spool
    second = bridges(spool=first.spool)
    # Then the second refuses (both would send every frame) and the first carries on
    assert second.process.wait(10) == 1
    assert "another bridge is using this spool" in second.log()
    senselink.send(record(351))
    wait_until(lambda: gateway.record_ids() == [351], what="first bridge still forwarding", log=first.log)
    assert first.stop() == 0


def test_silent_connection_is_replaced_after_silence_timeout(senselink, gateway, bridges):
    # Given a server that accepts the bridge and then sends nothing, not even heartbeats
    bridge = bridges("--silence-timeout", "0.6")
    senselink.wait_accepted(1, log=bridge.log)
    # When the silence lasts longer than --silence-timeout
    senselink.wait_accepted(2, timeout=5, log=bridge.log)
    # Then the bridge reconnected, no earlier than the timeout, and said why
    first, second = senselink.accepted[:2]
    assert second.at - first.at >= 0.55
    assert "event=silence" in bridge.log()
    # And the new connection works
    senselink.send(record(401))
    wait_until(lambda: gateway.record_ids() == [401], what="record on new connection", log=bridge.log)
    assert bridge.stop() == 0


def test_permanent_400_moves_frame_to_rejected_table_and_next_frames_still_arrive(senselink, gateway, bridges):
    # Given a gateway that permanently refuses record 502
    gateway.reject_ids = {502}
    bridge = bridges()
    senselink.wait_accepted(1, log=bridge.log)
    frames = [record(501), record(502), record(503)]
    # When three records arrive
    senselink.send(*frames)
    # Then 501 and 503 are delivered and 502 is kept, with the gateway's reason, for an operator
    wait_until(lambda: gateway.record_ids() == [501, 503], what="501 and 503", log=bridge.log)
    wait_until(lambda: bridge.pending() == [], what="pending empty", log=bridge.log)
    assert bridge.rejected() == [("502", 400, '{"message": "schema: field deviceSn missing"}', frames[1])]
    assert "event=forward_rejected status=400" in bridge.log()
    assert bridge.stop() == 0

    # When the operator fixes the cause and requeues the refused frame with the bridge stopped
    gateway.reject_ids = set()
    requeued = subprocess.run([sys.executable, "-m", "devicegate_cli.main", "senselink-bridge", "requeue",
                               "--spool", str(bridge.spool)], capture_output=True, text=True, timeout=30)
    assert requeued.returncode == 0 and json.loads(requeued.stdout) == {"requeued": 1}
    # Then the next bridge run delivers it, and nothing is left refused
    again = bridges(spool=bridge.spool)
    wait_until(lambda: gateway.record_ids() == [501, 503, 502], what="502 delivered after requeue", log=again.log)
    wait_until(lambda: again.pending() == [], what="pending empty", log=again.log)
    assert again.rejected() == []
    assert again.stop() == 0


def test_wrong_forward_path_keeps_frames_until_it_is_fixed(senselink, gateway, bridges):
    # Given a gateway answering 404 (a mistyped --forward path, or a route missing mid-deploy)
    gateway.mode = 404
    bridge = bridges()
    senselink.wait_accepted(1, log=bridge.log)
    # When records arrive
    senselink.send(record(701), record(702))
    wait_until(lambda: "event=forward_refused status=404" in bridge.log(), what="a 404", log=bridge.log)
    # Then they stay pending, not refused for good...
    assert [seq for seq, _ in bridge.pending()] and bridge.rejected() == []
    # ...and are delivered once the route answers
    gateway.mode = "ok"
    wait_until(lambda: gateway.record_ids() == [701, 702], what="701 and 702", log=bridge.log)
    assert bridge.rejected() == []
    assert bridge.stop() == 0


def test_heartbeats_not_spooled_forwarded_at_most_once_per_interval_and_logs_hold_no_personal_data(
        senselink, gateway, bridges):
    # Given a bridge logging at DEBUG that forwards heartbeats at most every 0.5 s
    bridge = bridges("--heartbeat-forward-interval", "0.5", "--log-level", "DEBUG")
    senselink.wait_accepted(1, log=bridge.log)
    # When SenseLink sends a heartbeat every 50 ms for 1.3 s, and one record full of personal data
    personal = {"name": "Zhang Wei 张伟", "mobile": "13800138000", "idNumber": "110101199003077777",
                "sn": "SPSP-0123456789abcdef0123456789abcdef", "deviceName": "front-door-pro"}
    senselink.send(record(601, **personal))
    started = time.monotonic()
    while time.monotonic() - started < 1.3:
        senselink.send(HEARTBEAT)
        time.sleep(0.05)
    wait_until(lambda: gateway.record_ids() == [601], what="record delivered", log=bridge.log)
    # Then 2 or 3 heartbeats (t=0, >=0.5, >=1.0) reached the gateway, none of them spooled
    beats = gateway.heartbeats()
    assert 2 <= len(beats) <= 3, [b.at for b in beats]
    assert all(b.body.decode() == HEARTBEAT for b in beats)
    assert rows(bridge.spool, "SELECT seq FROM sqlite_sequence WHERE name = 'pending'") == [(1,)]
    # And after a clean stop, the log holds none of the record's data, the secret or the sign
    assert bridge.stop() == 0
    log = bridge.log()
    assert "event=spooled code=30000 id=601" in log
    for secret in [*personal.values(), "张伟", APP_SECRET, GATEWAY_TOKEN, *(a.sign for a in senselink.attempts)]:
        assert secret not in log, secret
    assert "/websocket/record" not in log


def test_binary_and_junk_frames_are_tolerated_and_kept(senselink, gateway, bridges):
    # Given a connected bridge
    bridge = bridges()
    senselink.wait_accepted(1, log=bridge.log)
    # When SenseLink sends a record as a binary frame, an HTML page, undecodable bytes and a record
    binary_record = record(701).encode()
    senselink.send(binary_record, "<html>oops</html>", b"\xff\xfe\x00junk", record(702))
    # Then both records arrive as text, and the junk is kept in the rejected table
    wait_until(lambda: gateway.record_ids() == [701, 702], what="records around junk", log=bridge.log)
    assert gateway.delivered[0].body == binary_record
    assert bridge.rejected() == [(None, None, "not JSON", "<html>oops</html>"),
                                 (None, None, "not UTF-8", b"\xff\xfe\x00junk")]
    assert 'event=frame_kept reason="not JSON" length=17' in bridge.log()
    assert bridge.process.poll() is None and bridge.stop() == 0


# ---------------------------------------------------------------------------------------------
# Frames that must not end the session: the legacy push has no acknowledgement, so a session that
# ends loses whatever SenseLink had sent behind the frame that ended it.

FORWARDED = "forwarded"  # malformed JSON: the gateway keeps it in quarantine (answered 200)
DEEP = "[" * 100_000 + "]" * 100_000
NINE_MB = record(960, remark="x" * (9 * 1024 * 1024))
NESTED_17 = json.dumps({"code": 30000, "data": {"id": 961, "x": json.loads("[" * 15 + "]" * 15)}})
# (frame as SenseLink sends it, where it ends up: FORWARDED or the reason it is kept in the spool)
BAD_FRAMES = {
    "code-superscript-two": ('{"code": "²", "data": {"id": 950}}', FORWARDED),
    "code-superscript-two-escaped": (r'{"code": "\u00b2", "data": {"id": 950}}', FORWARDED),
    "code-10^30": (f'{{"code": {10 ** 30}, "data": {{"id": 951}}}}', FORWARDED),
    "code-10^30-text": (f'{{"code": "{10 ** 30}", "data": {{"id": 951}}}}', FORWARDED),
    "code-5000-digits-text": (f'{{"code": "{"9" * 5000}", "data": {{"id": 952}}}}', FORWARDED),
    "code-5000-digits": (f'{{"code": {"9" * 5000}, "data": {{"id": 952}}}}', FORWARDED),
    "array-100k-deep": (DEEP, "not JSON"),
    "nested-17-levels": (NESTED_17, "JSON nested deeper than 16 levels"),
    "9-MB-record": (NINE_MB, f"{len(NINE_MB)} bytes, over the gateway's 1048576"),
    "text-frame-not-utf8": (TextBytes(b'{"code": 30000, "data": {"name": "\xe5\xbc"}}'), "not UTF-8"),
    "binary-frame-not-utf8": (b"\x89PNG\r\n\x1a\n\x00", "not UTF-8"),
    "not-json": ("<html><body>502 Bad Gateway</body></html>", "not JSON"),
    "record-id-lone-surrogate": (r'{"code": 30000, "data": {"id": "\ud800", "sn": "SN-1"}}', FORWARDED),
    "unknown-code": ('{"code": 40404, "data": {"id": 953, "name": "Zhang Wei"}}', FORWARDED),
    "no-code": ('{"message": "push record", "data": {"id": 954}}', FORWARDED),
    "not-an-object": ("[30000, 30100]", FORWARDED),
}


@pytest.mark.parametrize("shape", BAD_FRAMES)
def test_a_bad_frame_neither_ends_the_session_nor_loses_the_records_behind_it(senselink, gateway, bridges, shape):
    frame, fate = BAD_FRAMES[shape]
    sent = frame if isinstance(frame, bytes) else frame.encode()
    behind = [record(1001), alarm(1002)]
    # Given a connected bridge
    bridge = bridges()
    senselink.wait_accepted(1, log=bridge.log)
    # When SenseLink sends the bad frame and two records right behind it on the same connection
    senselink.send(frame, *behind)
    # Then both records reach the gateway, in order, on that same connection
    wait_until(lambda: gateway.record_ids()[-2:] == [1001, 1002], timeout=30, what="the two records", log=bridge.log)
    log = bridge.log()
    assert len(senselink.attempts) == 1 and "event=disconnected" not in log, log
    if fate == FORWARDED:
        # And the bad frame went first, byte for byte, for the gateway's quarantine
        assert gateway.bodies() == [sent, *(r.encode() for r in behind)]
        assert bridge.rejected() == []
    else:
        # And it is kept whole in the spool, never sent
        assert gateway.bodies() == [r.encode() for r in behind]
        [(record_id, status, reason, kept)] = bridge.rejected()
        assert (record_id, status, reason) == (None, None, fate)
        assert (kept if isinstance(kept, bytes) else kept.encode()) == sent
        assert f'event=frame_kept reason="{fate}" length={len(sent)}' in log
    # And never logged
    assert "Zhang Wei" not in log and "502 Bad Gateway" not in log and "\\ud800" not in log
    wait_until(lambda: bridge.pending() == [], what="pending empty", log=bridge.log)
    assert bridge.stop() == 0


# ---------------------------------------------------------------------------------------------
# Arguments, signature, status


@pytest.mark.parametrize("argv, message", [
    (["--ws", "http://h:9000", "--app-key", "k", "--forward", "https://g/x"], "--ws must be"),
    (["--ws", "ws://h:9000", "--app-key", "k"], "--forward"),
    (["--ws", "ws://h:9000", "--app-key", "k", "--forward", "https://g/x", "--sign-format", "{ts}"], "--sign-format"),
    (["--ws", "ws://h:9000", "--app-key", "k", "--forward", "https://g/x", "--silence-timeout", "0"], "must be > 0"),
    (["--ws", "ws://h:9000", "--app-key", "k", "--forward", "https://g/x", "--name", "lobby bridge"], "--name"),
])
def test_bad_arguments_exit_1(argv, message, monkeypatch, capsys):
    # Given a secret in the environment and an unusable option
    monkeypatch.setenv("SENSELINK_APP_SECRET", "x")
    # When the command parses it Then it exits 1 (not argparse's 2, which means "refused")
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_missing_secret_exit_1_and_status_of_missing_spool_exit_1(tmp_path, monkeypatch, capsys):
    # Given no secret anywhere
    monkeypatch.delenv("SENSELINK_APP_SECRET", raising=False)
    # Then the bridge refuses to start, and `status` refuses a spool that does not exist
    assert main(["--ws", "ws://h:9000", "--app-key", "k", "--forward", "https://g/x"]) == 1
    assert "SENSELINK_APP_SECRET" in capsys.readouterr().err
    assert main(["status", "--spool", str(tmp_path / "none.db")]) == 1
    assert not (tmp_path / "none.db").exists()


def test_signature_follows_sign_format_and_timestamp_unit(monkeypatch):
    # Given the documented default and a replacement scheme
    monkeypatch.setenv("SENSELINK_APP_SECRET", "sec")
    base = ["--ws", "ws://h:9000", "--app-key", "key/1", "--forward", "https://g/x"]
    default = parse_config(base)
    custom = parse_config([*base, "--sign-format", "{app_key}{timestamp}{app_secret}", "--timestamp-unit", "s"])
    # When a path is signed at a fixed time
    now = 1_700_000_000.123
    # Then the timestamp unit and the signed text follow the options, and the key is path-safe
    assert signed_path(default, now) == (
        f"/websocket/record/key%2F1/1700000000123/{hashlib.md5(b'1700000000123#sec').hexdigest()}")
    assert signed_path(custom, now) == (
        f"/websocket/record/key%2F1/1700000000/{hashlib.md5(b'key/11700000000sec').hexdigest()}")


@pytest.mark.parametrize("status, outcome", [
    (200, "ok"), (202, "ok"), (204, "ok"), (401, "auth"), (403, "auth"), (408, "retry"), (425, "retry"),
    (429, "retry"), (500, "retry"), (503, "retry"), (None, "retry"), (400, "reject"), (404, "route"), (405, "route"),
    (413, "reject"), (415, "reject"), (301, "redirect"),
])
def test_http_outcomes(status, outcome):
    assert classify(status) == outcome


def test_backoff_doubles_with_jitter_and_caps():
    delays = [senselink_bridge.backoff(n, 1.0, 60.0) for n in range(10)]
    assert 0.5 <= delays[0] <= 1.0 and 4.0 <= delays[3] <= 8.0
    assert all(30.0 <= d <= 60.0 for d in delays[6:])
