"""`devicegate senselink-bridge`: relays an on-prem SenseLink server's WebSocket record push to
the gateway's webhook, through a durable SQLite spool.

SenseLink sits on a LAN the cloud cannot reach, so this process dials out to both sides. Its
promise is that no record is lost across bridge restarts or gateway outages: a record frame is
committed to the spool before anything else happens to it, and leaves the spool only when the
gateway answered 2xx (delivered) or a permanent 4xx (moved to the `rejected` table). Delivery is
therefore at-least-once; the gateway deduplicates.

Runs on a machine with only the standard library and `websockets`: nothing here may import
`devicegate` or boto3.

    devicegate senselink-bridge --ws ws://HOST:9000 --app-key KEY --forward URL   (secret in
        SENSELINK_APP_SECRET or --app-secret)
    devicegate senselink-bridge status [--spool PATH]

Exit status: 0 stopped by SIGINT/SIGTERM, 1 bad arguments or unusable spool/port, 2 SenseLink
refused the credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import json
import logging
import os
import random
import re
import signal
import socket
import sqlite3
import ssl
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn

from devicegate_onprem.senselink_spool import PendingFrame, Spool, SpoolClosed, read_stats

EXIT_OK, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2

CODE_HEARTBEAT = 10000
CODE_CONNECTED = 20000
CODE_PERMISSION_DENIED = 20002
CODE_RECORD = 30000
CODE_ALARM = 30100
RECORD_CODES = (CODE_RECORD, CODE_ALARM)

RECORD_PATH = "/websocket/record/{app_key}/{timestamp}/{sign}"
DEFAULT_SIGN_FORMAT = "{timestamp}#{app_secret}"
SECRET_ENV = "SENSELINK_APP_SECRET"
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

FORWARD_TIMEOUT_S = 10.0
DEPTH_LOG_INTERVAL_S = 60.0
# The largest frame read at all. websockets ends the connection on a bigger one (close 1009), and
# whatever SenseLink had sent behind it on that connection is lost: the legacy push has no
# acknowledgement. Records carry image ids, not images (a few KB); this is over three times the
# largest frame seen from a misbehaving server (9 MB), and bounded because websockets buffers up
# to 16 frames: a burst of them costs at most about half a gigabyte.
MAX_FRAME_BYTES = 32 * 1024 * 1024
# What the gateway's SenseLink route can use (tests/bridge checks both against the gateway's
# code). A body over SenseLinkAdapter.max_body_bytes is refused and can never be replayed (past
# Lambda's 6 MB invocation limit it does not even reach the function); of JSON nested deeper than
# jsonbody.MAX_DEPTH, or of text that is not JSON, the quarantine keeps a summary only. Such a
# frame stays whole in this spool's `rejected` table instead of being sent.
GATEWAY_MAX_BODY_BYTES = 1024 * 1024
GATEWAY_MAX_DEPTH = 16
# Long enough for a TLS handshake on a slow LAN, short enough that a dead server is noticed soon.
OPEN_TIMEOUT_S = 10.0
# A dead peer never answers the close handshake; waiting the library's default 10 s only delays
# the reconnect.
CLOSE_TIMEOUT_S = 2.0
# Waiting for an in-flight POST at shutdown avoids a duplicate after restart, but a hung gateway
# must not hold up a stop: whatever is unconfirmed stays in the spool and is sent again.
SHUTDOWN_JOIN_S = 5.0

log = logging.getLogger("devicegate.senselink_bridge")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on bad arguments, but 2 means "credentials refused" to whatever
    # supervises the bridge, so usage errors are turned into exit 1 by main().
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Config:
    ws: str
    app_key: str
    app_secret: str
    forward: str
    spool: str
    name: str
    status_port: int
    silence_timeout: float
    heartbeat_forward_interval: float
    ca_file: str | None
    log_level: str
    sign_format: str
    timestamp_unit: str
    reconnect_min: float
    reconnect_max: float
    retry_min: float
    retry_max: float
    auth_retry_max: float

    @property
    def ws_host(self) -> str:
        return urllib.parse.urlsplit(self.ws).netloc

    @property
    def forward_host(self) -> str:
        return urllib.parse.urlsplit(self.forward).netloc


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return value


def _run_parser() -> _Parser:
    parser = _Parser(
        prog="devicegate senselink-bridge",
        description="Relay SenseLink's WebSocket record push to the gateway webhook through a durable spool. "
                    "`devicegate senselink-bridge status --spool PATH` prints the spool's state.")
    parser.add_argument("--ws", required=True, help="SenseLink base URL, e.g. ws://10.0.0.5:9000 (or wss://)")
    parser.add_argument("--app-key", required=True)
    parser.add_argument("--app-secret", help=f"prefer the {SECRET_ENV} environment variable: "
                                             "a command line is visible to every user in ps")
    parser.add_argument("--forward", required=True, metavar="WEBHOOK_URL",
                        help="gateway webhook URL (http or https) that receives each frame as a POST")
    parser.add_argument("--spool", default="./senselink-spool.db", help="SQLite spool file (default %(default)s)")
    parser.add_argument("--name", default=None,
                        help="source name sent as X-Devicegate-Source (default: this host's name)")
    parser.add_argument("--status-port", type=_port, default=0,
                        help="serve GET /status on 127.0.0.1:PORT (0 = off, the default)")
    parser.add_argument("--silence-timeout", type=_positive, default=90.0,
                        help="reconnect when no frame at all arrived for this many seconds (default %(default)s)")
    parser.add_argument("--heartbeat-forward-interval", type=_non_negative, default=60.0,
                        help="forward a SenseLink heartbeat to the gateway at most this often, in seconds "
                             "(0 = never; default %(default)s)")
    parser.add_argument("--ca-file", help="extra CA certificate(s) (PEM) trusted for https/wss")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    signing = parser.add_argument_group("signature (replaceable: the vendor's scheme is not verified)")
    signing.add_argument("--sign-format", default=DEFAULT_SIGN_FORMAT,
                         help="text whose lowercase hex MD5 is the sign; placeholders {timestamp}, "
                              "{app_secret}, {app_key} (default %(default)s)")
    signing.add_argument("--timestamp-unit", choices=["ms", "s"], default="ms")
    tuning = parser.add_argument_group("retry tuning (seconds)")
    tuning.add_argument("--reconnect-min", type=_positive, default=1.0, help="first reconnect delay (%(default)s)")
    tuning.add_argument("--reconnect-max", type=_positive, default=60.0, help="longest reconnect delay (%(default)s)")
    tuning.add_argument("--retry-min", type=_positive, default=0.5,
                        help="first delay after a transient forward failure (%(default)s)")
    tuning.add_argument("--retry-max", type=_positive, default=30.0,
                        help="longest delay after transient forward failures (%(default)s)")
    tuning.add_argument("--auth-retry-max", type=_positive, default=60.0,
                        help="longest delay while the gateway answers 401/403 (%(default)s)")
    return parser


def parse_config(argv: list[str]) -> Config:
    args = _run_parser().parse_args(argv)
    secret = args.app_secret if args.app_secret is not None else os.environ.get(SECRET_ENV, "")
    if not secret:
        raise UsageError(f"the app secret is required: set {SECRET_ENV} (or pass --app-secret)")
    ws = args.ws.rstrip("/")
    parts = urllib.parse.urlsplit(ws)
    if parts.scheme not in ("ws", "wss") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(f"--ws must be ws://HOST:PORT or wss://HOST:PORT, got {args.ws!r}")
    forward = urllib.parse.urlsplit(args.forward)
    if forward.scheme not in ("http", "https") or not forward.hostname:
        raise UsageError("--forward must be an http:// or https:// URL")
    if not args.app_key.strip():
        raise UsageError("--app-key must not be empty")
    name = args.name if args.name is not None else socket.gethostname()
    # The gateway keys the bridge's liveness on this header and accepts only this alphabet; a
    # name it would ignore is better refused here than discovered as a "dead" bridge.
    if not _SOURCE_NAME.fullmatch(name):
        raise UsageError(f"--name must be 1-64 of A-Z a-z 0-9 _ . : - (got {name!r})")
    try:
        args.sign_format.format(timestamp=0, app_secret="", app_key="")
    except (KeyError, IndexError, ValueError) as error:
        raise UsageError(f"--sign-format: unusable placeholder ({error}); use {{timestamp}}, {{app_secret}}, "
                         "{app_key}") from None
    if args.ca_file and not os.path.isfile(args.ca_file):
        raise UsageError(f"--ca-file {args.ca_file!r} is not a file")
    if args.reconnect_min > args.reconnect_max or args.retry_min > args.retry_max:
        raise UsageError("a --*-min retry delay is larger than its --*-max")
    return Config(
        ws=ws, app_key=args.app_key, app_secret=secret, forward=args.forward, spool=args.spool, name=name,
        status_port=args.status_port, silence_timeout=args.silence_timeout,
        heartbeat_forward_interval=args.heartbeat_forward_interval, ca_file=args.ca_file,
        log_level=args.log_level, sign_format=args.sign_format, timestamp_unit=args.timestamp_unit,
        reconnect_min=args.reconnect_min, reconnect_max=args.reconnect_max, retry_min=args.retry_min,
        retry_max=args.retry_max, auth_retry_max=max(args.auth_retry_max, args.retry_min))


# ---------------------------------------------------------------------------------------------
# Small pieces


def signed_path(config: Config, now: float | None = None) -> str:
    """The record path with a fresh timestamp and sign: SenseLink checks the timestamp's age, so
    a signature is never reused across connection attempts."""
    now = time.time() if now is None else now
    timestamp = str(int(now * 1000) if config.timestamp_unit == "ms" else int(now))
    sign = hashlib.md5(
        config.sign_format.format(timestamp=timestamp, app_secret=config.app_secret,
                                  app_key=config.app_key).encode("utf-8"),
        usedforsecurity=False).hexdigest()
    return RECORD_PATH.format(app_key=urllib.parse.quote(config.app_key, safe=""), timestamp=timestamp, sign=sign)


def backoff(attempt: int, low: float, high: float) -> float:
    """Doubling delay with jitter in [d/2, d]: bridges restarted together must not reconnect in step."""
    delay = min(high, low * (2 ** min(attempt, 32)))
    return delay * random.uniform(0.5, 1.0)


def classify(status: int | None) -> str:
    """What an HTTP outcome means for a spooled frame: ok, retry, auth, redirect or reject."""
    if status is None or status in (408, 425, 429) or status >= 500:
        return "retry"
    if 200 <= status < 300:
        return "ok"
    if status in (401, 403):
        return "auth"
    # The gateway answers SenseLink input it cannot use with 200 (and keeps it in quarantine),
    # so a 404/405 means a wrong --forward path or a route missing mid-deploy: the frame is
    # fine, keep it. Other 4xx (413 too large, 400 unreadable request) will not change by
    # retrying and would block every later frame: those go to `rejected` (see `requeue`).
    if status in (404, 405):
        return "route"
    if 400 <= status < 500:
        return "reject"
    # 1xx/3xx: redirects are not followed (urllib would resend a POST as a bodiless GET and a
    # 2xx to that would delete the frame unsent), so this is a wrong --forward URL.
    return "redirect"


def _kv(event: str, **fields: Any) -> str:
    parts = [f"event={event}"]
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float):
            text = f"{value:.3f}".rstrip("0").rstrip(".")
        else:
            text = str(value)
        if not text or any(c in text for c in ' "=\\\n\r\t'):
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ARG002
        return None


@dataclass
class PostResult:
    status: int | None
    detail: str
    retry_after: float | None = None


class Redactor:
    """Scrubs the secret, the signed record path and the --forward path (its token) from text
    that may end up in a log, such as a library's exception message."""

    def __init__(self, config: Config) -> None:
        self._literals = [config.app_secret]
        forward_path = urllib.parse.urlsplit(config.forward).path
        if len(forward_path) > 1:
            self._literals.append(forward_path)
        self._signed = re.compile(r"/websocket/record/\S*")

    def __call__(self, text: str) -> str:
        for literal in self._literals:
            text = text.replace(literal, "***")
        return self._signed.sub("/websocket/record/***", text)


class Poster:
    """POSTs one frame to the gateway. Blocking: called from the forwarder and heartbeat threads,
    never from the receive loop."""

    def __init__(self, config: Config, redact: Redactor) -> None:
        self._url = config.forward
        self._headers = {"Content-Type": "application/json", "X-Devicegate-Source": config.name,
                         "User-Agent": "devicegate-senselink-bridge"}
        self._opener = urllib.request.build_opener(
            _NoRedirect, urllib.request.HTTPSHandler(context=_ssl_context(config.ca_file)))
        self._redact = redact

    def post(self, body: str | bytes, timeout: float = FORWARD_TIMEOUT_S) -> PostResult:
        data = body.encode("utf-8") if isinstance(body, str) else body
        request = urllib.request.Request(self._url, data=data, headers=self._headers, method="POST")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(64 * 1024)
                return PostResult(response.status, "")
        except urllib.error.HTTPError as error:
            try:
                raw = error.read(2048)
            except Exception:  # the body of an error is only a hint; a broken one must not matter
                raw = b""
            detail = " ".join(raw.decode("utf-8", "replace").split())[:200]
            return PostResult(error.code, self._redact(detail), _retry_after(error.headers.get("Retry-After")))
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            return PostResult(None, self._redact(f"{type(reason).__name__}: {reason}")[:200])


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: not worth parsing, the backoff is a fine substitute


# ---------------------------------------------------------------------------------------------
# Frames

# What the receive loop does with a frame (Incoming.action).
RECORD = "record"  # a record or an alarm: spooled, then forwarded
MALFORMED = "malformed"  # JSON the gateway cannot use: spooled and forwarded all the same, so that
# the gateway keeps it in quarantine (personal data masked), where an operator sees and replays it
KEEP = "keep"  # what the gateway cannot keep whole or replay: kept whole in `rejected`, not sent
HEARTBEAT, CONNECTED, DENIED = "heartbeat", "connected", "denied"

# A code sent as text ("30000") is read as the gateway reads it; only ASCII digits, and few enough
# to be an SQLite integer ("²" is a digit to str.isdigit, not to int()).
_CODE_TEXT = re.compile(r"\s*[0-9]{1,18}\s*", re.ASCII)
_SQLITE_INTEGER = range(-(2 ** 63), 2 ** 63)
# The only field of a payload that may be logged (everything else in a record can be personal
# data): printable ASCII, so it is also safe to store and to print.
_LOGGABLE_ID = re.compile(r"[!-~]{1,64}")


@dataclass(frozen=True)
class Incoming:
    """One frame as the receive loop reads it. Built by `read_frame` from the frame's content
    alone; every value in it can be spooled and logged (frame aside, which is never logged)."""

    action: str
    frame: str | bytes  # as received: text when it is UTF-8
    code: int | None = None
    record_id: str | None = None
    reason: str = ""  # why a frame is MALFORMED or KEEP
    desc: str | None = None  # SenseLink's words on a refusal (20002)


def read_frame(raw: bytes) -> Incoming:
    """What a frame is and what becomes of it. Never raises on content: no frame, however made,
    may end the session, since the records SenseLink sent behind it would be lost with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Incoming(KEEP, raw, reason="not UTF-8")
    if len(raw) > GATEWAY_MAX_BODY_BYTES:
        return Incoming(KEEP, text, reason=f"{len(raw)} bytes, over the gateway's {GATEWAY_MAX_BODY_BYTES}")
    try:
        # The gateway drops a byte-order mark; json.loads refuses one. The gateway reads integers
        # of any length (and refuses those over 40 digits naming the field, keeping the frame in
        # quarantine as sent), so a long one must not make this frame "not JSON" here.
        message = json.loads(text.removeprefix("\ufeff"), parse_int=_any_integer)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested beyond the C stack's limit
        return Incoming(KEEP, text, reason="not JSON")
    if _deeper_than(message, GATEWAY_MAX_DEPTH):
        return Incoming(KEEP, text, reason=f"JSON nested deeper than {GATEWAY_MAX_DEPTH} levels")
    if not isinstance(message, dict):
        return Incoming(MALFORMED, text, reason="not a JSON object")
    code, record_id = _code(message.get("code")), _record_id(message)
    if code in RECORD_CODES:
        return Incoming(RECORD, text, code, record_id)
    if code == CODE_HEARTBEAT:
        return Incoming(HEARTBEAT, text, code)
    if code == CODE_CONNECTED:
        return Incoming(CONNECTED, text, code)
    if code == CODE_PERMISSION_DENIED:
        desc = message.get("desc") or message.get("message")
        return Incoming(DENIED, text, code, desc=_printable(desc, 100) if isinstance(desc, str) else None)
    # An unknown code may be a record type SenseLink added: the gateway keeps it for replay.
    reason = "no integer code" if code is None else f"unknown code {code}"
    return Incoming(MALFORMED, text, code, record_id, reason)


def _any_integer(text: str) -> int | float:
    # Past Python's own 4,300-digit limit an integer is read as its magnitude: only its place in
    # the frame matters here (a code that long is no code), the frame goes on as received.
    return int(text) if len(text) < 4000 else float(text)


def _code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in _SQLITE_INTEGER else None
    if isinstance(value, str) and _CODE_TEXT.fullmatch(value):
        return int(value)
    return None


def _record_id(message: dict[str, Any]) -> str | None:
    data = message.get("data")
    if not isinstance(data, dict):
        return None
    ident = data.get("id")
    if isinstance(ident, bool) or not isinstance(ident, (int, str)):
        return None
    # An int read here has fewer than 4,000 digits (_any_integer), so str() cannot fail.
    text = str(ident)[:64]
    return text if _LOGGABLE_ID.fullmatch(text) else None


def _printable(text: str, limit: int) -> str:
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text[:limit])


def _deeper_than(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (the top one is level 1), counted
    as the gateway counts brackets. A loop, not recursion: json.loads builds documents (some
    thousands of levels) deeper than Python's recursion limit (1,000) would let a walk go."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, level = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if level > limit:
            return True
        pending.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _where(error: BaseException) -> str:
    """Where an exception was raised ("senselink_bridge.py:412 in read_frame"): logged instead of
    its message, which may quote the frame."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{os.path.basename(last.filename)}:{last.lineno} in {last.name}"


# ---------------------------------------------------------------------------------------------
# Shared state (read by /status, written by the receive loop and the forwarder)


class State:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connected = False
        self.forwarded_total = 0
        self.heartbeats_forwarded = 0
        self.last_frame_at: float | None = None
        self.last_forward_at: float | None = None
        self.last_forward_error: str | None = None
        self._backlog = False

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def count_forwarded(self) -> None:
        with self._lock:
            self.forwarded_total += 1
            self.last_forward_at = time.time()

    def count_heartbeat(self) -> None:
        with self._lock:
            self.heartbeats_forwarded += 1

    def backlog_started(self) -> bool:
        """True the first time a forward fails while frames wait: a backlog worth a log line.
        (Frames passing straight through are not: two lines per record would drown the log.)"""
        with self._lock:
            started, self._backlog = not self._backlog, True
            return started

    def backlog_ended(self, depth: int) -> bool:
        """True when a backlog announced by backlog_started has drained."""
        with self._lock:
            ended = self._backlog and depth == 0
            if ended:
                self._backlog = False
            return ended

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"connected": self.connected, "forwarded_total": self.forwarded_total,
                    "heartbeats_forwarded": self.heartbeats_forwarded,
                    "last_frame_at": _iso(self.last_frame_at), "last_forward_at": _iso(self.last_forward_at),
                    "last_forward_error": self.last_forward_error}


# ---------------------------------------------------------------------------------------------
# Forwarder


class Forwarder(threading.Thread):
    """Sends spooled frames oldest first, one at a time: the head of the queue blocks the rest
    while it is being retried, so the gateway sees frames in SenseLink's order."""

    def __init__(self, config: Config, spool: Spool, state: State, poster: Poster) -> None:
        super().__init__(name="senselink-forwarder", daemon=True)
        self._config, self._spool, self._state, self._poster = config, spool, state, poster
        self._wake = threading.Event()
        self._stop_requested = threading.Event()
        self._failures = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop_requested.set()
        self._wake.set()

    def run(self) -> None:
        try:
            self._loop()
        except SpoolClosed:
            pass  # shutdown closed the spool under a POST that outlived the join

    def _loop(self) -> None:
        while not self._stop_requested.is_set():
            try:
                self._step()
            except SpoolClosed:
                raise
            except Exception as error:
                # A dead forwarder thread would let the spool grow unnoticed while the bridge
                # looks healthy; a disk or database hiccup is retried instead.
                delay = backoff(self._failures, self._config.retry_min, self._config.retry_max)
                self._failures += 1
                self._state.update(last_forward_error=f"{type(error).__name__}: {error}"[:200])
                log.error(_kv("forwarder_error", error=f"{type(error).__name__}: {error}"[:200], retry_in=delay))
                self._stop_requested.wait(delay)

    def _step(self) -> None:
        self._wake.clear()
        frame = self._spool.oldest()
        if frame is None:
            # The receive loop wakes us on every new frame; the timeout is only a safety net.
            self._wake.wait(1.0)
            return
        result = self._poster.post(frame.frame)
        if self._stop_requested.is_set() and classify(result.status) != "ok":
            return
        self._settle(frame, result)

    def _settle(self, frame: PendingFrame, result: PostResult) -> None:
        outcome = classify(result.status)
        fields = {"seq": frame.seq, "code": frame.code, "id": frame.record_id}
        if outcome == "ok":
            self._failures = 0
            depth = self._spool.delete(frame.seq)
            self._state.count_forwarded()
            log.debug(_kv("forwarded", status=result.status, **fields, pending=depth))
            _note_depth(self._state, depth)
            return
        if outcome == "reject":
            self._failures = 0
            depth = self._spool.reject(frame.seq, result.status, result.detail or f"HTTP {result.status}")
            self._state.update(last_forward_error=f"HTTP {result.status} (rejected seq {frame.seq})")
            # The gateway's reason goes to the rejected table only: it may quote the frame.
            log.error(_kv("forward_rejected", status=result.status, **fields, pending=depth,
                          msg="the gateway refused the frame for good; moved to the spool's rejected table"))
            _note_depth(self._state, depth)
            return
        error = f"HTTP {result.status}" if result.status is not None else result.detail
        self._spool.note_failure(frame.seq, error)
        self._state.update(last_forward_error=error)
        if self._state.backlog_started():
            log.info(_kv("spool_depth", pending=self._spool.pending, msg="frames waiting for the gateway"))
        if outcome == "retry":
            delay = backoff(self._failures, self._config.retry_min, self._config.retry_max)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, self._config.retry_max))
            log.warning(_kv("forward_failed", status=result.status if result.status is not None else "network",
                            error=None if result.status is not None else result.detail, **fields,
                            attempt=frame.attempts + 1, retry_in=delay, pending=self._spool.pending))
        else:
            delay = backoff(self._failures, self._config.retry_min, self._config.auth_retry_max)
            msg = {"auth": "the gateway refused the token in the --forward URL",
                   "route": "the --forward URL names no gateway route; check its path"}.get(
                outcome, "the --forward URL redirects; give the final URL")
            log.error(_kv("forward_refused", status=result.status, **fields, retry_in=delay,
                          pending=self._spool.pending, msg=msg))
        self._failures += 1
        self._stop_requested.wait(delay)


def _note_depth(state: State, depth: int) -> None:
    if state.backlog_ended(depth):
        log.info(_kv("spool_depth", pending=0, forwarded_total=state.forwarded_total, msg="spool drained"))


# ---------------------------------------------------------------------------------------------
# Status endpoint


def _status_server(port: int, report) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
            if self.path.split("?")[0] != "/status":
                self.send_error(404)
                return
            body = json.dumps(report()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("status request " + format, *args)

    # Loopback only: the figures are harmless but this is not an endpoint for the network.
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    # A short poll keeps shutdown() from adding half a second to every stop.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="senselink-status",
                     daemon=True).start()
    return server


# ---------------------------------------------------------------------------------------------
# The bridge


class Bridge:
    def __init__(self, config: Config, spool: Spool) -> None:
        self.config = config
        self.spool = spool
        self.state = State()
        self.redact = Redactor(config)
        self.poster = Poster(config, self.redact)
        self.forwarder = Forwarder(config, spool, self.state, self.poster)
        self._heartbeat_sent_at: float | None = None
        self._heartbeat_busy = threading.Lock()
        secure = urllib.parse.urlsplit(config.ws).scheme == "wss"
        self._ssl = _ssl_context(config.ca_file) if secure else None

    def status(self) -> dict[str, Any]:
        report = self.state.snapshot()
        try:
            stats = self.spool.stats()
        except SpoolClosed:
            stats = {"pending": None, "rejected": None, "oldest_pending_age_s": None}
        report.update(spool_pending=stats["pending"], spool_rejected=stats["rejected"],
                      oldest_pending_age_s=stats["oldest_pending_age_s"], name=self.config.name,
                      ws_host=self.config.ws_host, app_key=self.config.app_key)
        return report

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        status_server = None
        if self.config.status_port:
            try:
                status_server = _status_server(self.config.status_port, self.status)
            except OSError as error:
                log.error(_kv("status_port_unavailable", port=self.config.status_port, error=str(error)))
                return EXIT_USAGE
        pending, rejected = self.spool.counts()
        log.info(_kv("started", name=self.config.name, host=self.config.ws_host, app_key=self.config.app_key,
                     forward_host=self.config.forward_host, spool=self.config.spool, pending=pending,
                     rejected=rejected, status_port=self.config.status_port or None))
        if pending:  # left by the previous run: say so when it has drained
            self.state.backlog_started()
        self.forwarder.start()
        session = asyncio.create_task(self._connect_forever(), name="senselink-session")
        reporter = asyncio.create_task(self._report_depth(), name="senselink-depth")
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            code = EXIT_OK
            if session.done():
                try:
                    code = session.result()
                except (sqlite3.Error, SpoolClosed) as error:
                    log.error(_kv("spool_failed", spool=self.config.spool, error=str(error)))
                    code = EXIT_USAGE
            if stop.is_set():
                log.info(_kv("stopping", msg="signal received"))
        finally:
            for task in (session, reporter, stopper):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(session, reporter, stopper, return_exceptions=True),
                                       CLOSE_TIMEOUT_S + 1)
            self.state.update(connected=False)
            self.forwarder.stop()
            await asyncio.to_thread(self.forwarder.join, SHUTDOWN_JOIN_S)
            if status_server is not None:
                status_server.shutdown()
                status_server.server_close()
        pending, rejected = self.spool.counts()
        log.info(_kv("stopped", exit=code, pending=pending, rejected=rejected,
                     forwarded_total=self.state.forwarded_total))
        return code

    async def _report_depth(self) -> None:
        while True:
            await asyncio.sleep(DEPTH_LOG_INTERVAL_S)
            try:
                pending, rejected = self.spool.counts()
            except (sqlite3.Error, SpoolClosed):
                continue  # the receive loop and the forwarder report spool failures themselves
            snapshot = self.state.snapshot()
            log.info(_kv("spool_depth", pending=pending, rejected=rejected, connected=snapshot["connected"],
                         forwarded_total=snapshot["forwarded_total"], last_forward_error=snapshot["last_forward_error"]))

    async def _connect_forever(self) -> int:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        attempt = 0
        host, app_key = self.config.ws_host, self.config.app_key
        while True:
            # Rebuilt every attempt: the timestamp in the path must be fresh.
            uri = self.config.ws + signed_path(self.config)
            reached = False
            try:
                async with connect(uri, ssl=self._ssl, open_timeout=OPEN_TIMEOUT_S, ping_interval=20,
                                   ping_timeout=20, close_timeout=CLOSE_TIMEOUT_S, max_size=MAX_FRAME_BYTES,
                                   user_agent_header="devicegate-senselink-bridge") as ws:
                    log.info(_kv("websocket_open", host=host, app_key=app_key, attempt=attempt + 1))
                    outcome, reached = await self._session(ws)
                if outcome == "refused":
                    return EXIT_REFUSED
                reason = outcome
            except InvalidStatus as error:
                reason = f"handshake refused: HTTP {error.response.status_code}"
            except (asyncio.CancelledError, sqlite3.Error, SpoolClosed):
                # A spool that cannot be written would turn every record into a lost one:
                # stop instead of reconnecting, so the supervisor sees it.
                raise
            except Exception as error:  # DNS, refused, TLS, timeouts, protocol errors: all mean "try again"
                reason = self.redact(f"{type(error).__name__}: {error}")[:300]
            finally:
                self.state.update(connected=False)
            attempt = 0 if reached else attempt + 1
            delay = backoff(max(attempt - 1, 0), self.config.reconnect_min, self.config.reconnect_max)
            log.warning(_kv("disconnected" if reached else "connect_failed", host=host, app_key=app_key,
                            reason=reason, reconnect_in=delay))
            await asyncio.sleep(delay)

    async def _session(self, ws) -> tuple[str, bool]:
        """Reads frames until the connection ends; returns (why, whether SenseLink said connected)."""
        from websockets.exceptions import ConnectionClosed

        reached = False
        while True:
            try:
                # Bytes, text frames too: websockets would end the connection on a text frame that
                # is not UTF-8 (close 1007), and the frames behind it would be lost with it.
                raw = await asyncio.wait_for(ws.recv(decode=False), self.config.silence_timeout)
            except TimeoutError:
                log.warning(_kv("silence", host=self.config.ws_host, app_key=self.config.app_key,
                                seconds=self.config.silence_timeout, msg="no frame, not even a heartbeat; reconnecting"))
                return "silence timeout", reached
            except ConnectionClosed as closed:
                received = closed.rcvd
                detail = f"closed code={received.code}" if received is not None else "connection lost"
                return detail, reached
            self.state.update(last_frame_at=time.time())
            action = self._handle(raw)
            if action == CONNECTED:
                reached = True
            elif action == DENIED:
                return "refused", reached

    def _handle(self, raw: bytes) -> str:
        """Deals with one frame; returns what it was (Incoming.action)."""
        try:
            incoming = read_frame(raw)
        except Exception as error:
            # read_frame is total by design; should it still fail, the frame is kept whole and the
            # session goes on, since ending it would lose every record SenseLink sent behind it.
            incoming = Incoming(KEEP, raw, reason=f"the bridge could not read it ({type(error).__name__})")
            log.error(_kv("frame_unreadable", error_type=type(error).__name__, where=_where(error), length=len(raw)))
        action, code, record_id = incoming.action, incoming.code, incoming.record_id
        if action in (RECORD, MALFORMED):
            # Spooled first and committed: from here on a crash or an outage cannot lose it.
            seq, depth = self.spool.add(incoming.frame, code, record_id)
            self.forwarder.wake()
            if action == RECORD:
                log.debug(_kv("spooled", code=code, id=record_id, seq=seq, pending=depth))
            else:
                log.warning(_kv("malformed_frame", reason=incoming.reason, code=code, id=record_id, length=len(raw),
                                seq=seq, msg="forwarded all the same: the gateway keeps it in quarantine"))
        elif action == KEEP:
            self.spool.reject_frame(incoming.frame, None, None, incoming.reason)
            log.warning(_kv("frame_kept", reason=incoming.reason, length=len(raw),
                            msg="not for the gateway; kept whole in the spool's rejected table"))
        elif action == HEARTBEAT:
            log.debug(_kv("heartbeat"))
            self._forward_heartbeat(incoming.frame)
        elif action == CONNECTED:
            self.state.update(connected=True)
            log.info(_kv("connected", host=self.config.ws_host, app_key=self.config.app_key))
        elif action == DENIED:
            log.error(_kv("credentials_refused", host=self.config.ws_host, app_key=self.config.app_key,
                          desc=incoming.desc or None,
                          msg="SenseLink refused the credentials: app key / secret / clock?"))
        return action

    def _forward_heartbeat(self, text: str | bytes) -> None:
        interval = self.config.heartbeat_forward_interval
        now = time.monotonic()
        if not interval or (self._heartbeat_sent_at is not None and now - self._heartbeat_sent_at < interval):
            return
        # A heartbeat is only a liveness hint: one at a time, off the receive loop, never retried.
        if not self._heartbeat_busy.acquire(blocking=False):
            return
        self._heartbeat_sent_at = now

        def send() -> None:
            try:
                result = self.poster.post(text)
                if classify(result.status) == "ok":
                    self.state.count_heartbeat()
                    log.debug(_kv("heartbeat_forwarded", status=result.status))
                else:
                    log.info(_kv("heartbeat_forward_failed", status=result.status,
                                 error=None if result.status is not None else result.detail))
            finally:
                self._heartbeat_busy.release()

        threading.Thread(target=send, name="senselink-heartbeat", daemon=True).start()


# ---------------------------------------------------------------------------------------------
# Entry points


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s senselink-bridge %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # websockets logs the request line (with the sign) and frame contents (personal data) at
    # DEBUG; it must stay quiet whatever --log-level says.
    logging.getLogger("websockets").setLevel(logging.WARNING)


def _lock_spool(path: str):
    """Holds an exclusive lock next to the spool: two bridges on one spool would send every frame
    twice and race on deletes. The kernel drops the lock when the process dies, even by SIGKILL."""
    try:
        import fcntl
    except ImportError:  # not POSIX: go without the guard
        return None
    handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise
    return handle


def _status_main(argv: list[str]) -> int:
    parser = _Parser(prog="devicegate senselink-bridge status",
                     description="Print the spool's state as JSON, without connecting to anything.")
    parser.add_argument("--spool", default="./senselink-spool.db")
    args = parser.parse_args(argv)
    try:
        stats = read_stats(args.spool)
    except FileNotFoundError:
        print(f"devicegate senselink-bridge status: no spool at {args.spool}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        print(f"devicegate senselink-bridge status: {args.spool}: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(stats, indent=2))
    return EXIT_OK


def _requeue_main(argv: list[str]) -> int:
    parser = _Parser(prog="devicegate senselink-bridge requeue",
                     description="Move frames the gateway refused back to the pending queue (after fixing the "
                                 "cause); the bridge must be stopped.")
    parser.add_argument("--spool", default="./senselink-spool.db")
    parser.add_argument("--status", type=int, help="only frames refused with this HTTP status")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.spool):
        print(f"devicegate senselink-bridge requeue: no spool at {args.spool}", file=sys.stderr)
        return EXIT_USAGE
    try:
        lock = _lock_spool(args.spool)
    except OSError:
        print("devicegate senselink-bridge requeue: a bridge is using this spool; stop it first", file=sys.stderr)
        return EXIT_USAGE
    spool = Spool(args.spool)
    try:
        moved = spool.requeue(args.status)
    finally:
        spool.close()
        if lock is not None:
            lock.close()
    print(json.dumps({"requeued": moved}))
    return EXIT_OK


def main(argv: list[str]) -> int:
    try:
        if argv and argv[0] == "status":
            return _status_main(argv[1:])
        if argv and argv[0] == "requeue":
            return _requeue_main(argv[1:])
        config = parse_config(argv)
    except UsageError as error:
        print(f"devicegate senselink-bridge: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    try:
        import websockets  # noqa: F401 - only checked here, used by the session
    except ImportError:
        print("devicegate senselink-bridge: the websockets package is missing "
              "(pip install ./onprem: the devicegate-onprem distribution)", file=sys.stderr)
        return EXIT_USAGE
    _setup_logging(config.log_level)
    try:
        lock = _lock_spool(config.spool)
    except OSError:
        log.error(_kv("spool_locked", spool=config.spool, msg="another bridge is using this spool"))
        return EXIT_USAGE
    try:
        spool = Spool(config.spool)
    except Exception as error:
        log.error(_kv("spool_unusable", spool=config.spool, error=str(error)))
        return EXIT_USAGE
    try:
        return asyncio.run(Bridge(config, spool).run())
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return EXIT_OK
    finally:
        spool.close()
        if lock is not None:
            lock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
