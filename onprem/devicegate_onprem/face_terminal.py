"""`devicegate face-terminal`: point a face-recognition access terminal's event push at the gateway
(`POST /v1/event/subscribe`) and read the setting back (`GET /v1/event/subscribe`).

Runs on a machine on the terminal's LAN with the standard library only."""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import ssl
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

SUBSCRIBE_PATH = "/v1/event/subscribe"
HOOK_PREFIX = "/hooks/face-terminal/"
# The terminal's documented limit for event_dest.
MAX_URL_LENGTH = 1024
MASK = "****"

_TOKEN_IN_URL = re.compile(r"(/hooks/face-terminal/)([^/?#]+)")
_PASSWORD_IN_URL = re.compile(r"(://[^/?#@:]*:)([^/?#@]*)@")
# RFC 9110 token characters; http.client would raise a bare ValueError on anything else.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class TerminalError(Exception):
    """A failure talking to the terminal, already worded for the one-line error."""


@dataclass(frozen=True)
class Device:
    scheme: str
    host: str
    port: int

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.address}"


def mask_url(url: str) -> str:
    """The URL with the gateway token (and any password) replaced, since both grant ingest rights."""
    return _PASSWORD_IN_URL.sub(rf"\1{MASK}@", _TOKEN_IN_URL.sub(rf"\1{MASK}", url))


def _masked(value: Any, reveal: bool) -> Any:
    # Firmware differs in field names, so every string the terminal reports is masked, not just event_dest.
    if reveal:
        return value
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, dict):
        return {k: _masked(v, reveal) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, reveal) for v in value]
    return value


# --- argument validation ---------------------------------------------------------------------

def parse_device(raw: str) -> Device:
    text = raw.strip()
    # Installers copy the address from the terminal's screen as IP:PORT.
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"--device must be http://host[:port] or https://host[:port], got {raw!r}")
    if not parts.hostname:
        raise ValueError(f"--device has no host: {raw!r}")
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"--device must be just scheme://host[:port] (the API path is added), got {raw!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"--device has an invalid port: {raw!r}") from None
    default = 443 if parts.scheme == "https" else 80
    return Device(parts.scheme, parts.hostname, port or default)


def with_serial(url: str, serial: str | None) -> str:
    if not serial:
        return url
    parts = urlsplit(url)
    # An existing device= would make the gateway's attribution depend on which one it reads first.
    kept = [p for p in parts.query.split("&") if p and unquote(p.split("=", 1)[0]) != "device"]
    kept.append("device=" + quote(serial, safe=""))
    return urlunsplit(parts._replace(query="&".join(kept)))


def check_webhook_url(url: str, serial: str | None) -> tuple[str, list[str]]:
    """The URL to send (serial added) and warnings; ValueError when the terminal could not use it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--url must be an absolute http:// or https:// URL, got {mask_url(url)!r}")
    # The terminal writes the URL into its own request line; it does not percent-encode for us.
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in url):
        raise ValueError("--url contains spaces, control or non-ASCII characters; percent-encode them")
    if parts.fragment:
        raise ValueError("--url has a #fragment, which is never sent to the gateway; remove it")
    final = with_serial(url, serial)
    if len(final) > MAX_URL_LENGTH:
        extra = " after adding device=" + quote(serial or "", safe="") if serial else ""
        raise ValueError(f"--url is {len(final)} characters{extra}; the terminal accepts at most {MAX_URL_LENGTH}")
    warnings = []
    if HOOK_PREFIX not in parts.path:
        warnings.append(f"--url path has no {HOOK_PREFIX}<token>; the gateway will not accept these events")
    elif not _TOKEN_IN_URL.search(parts.path):
        warnings.append(f"--url has no token after {HOOK_PREFIX}; the gateway will reject these events")
    return final, warnings


def parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _HEADER_NAME.match(name):
        # Not echoed: a malformed header is most likely a credential missing its colon.
        raise ValueError("--header must be 'Name: value' with a token name before the colon")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"--header {name} value contains a line break")
    return name, value


def _timeout(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be between 0 and 600 seconds")
    return value


# --- talking to the terminal -----------------------------------------------------------------

def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def call(device: Device, method: str, headers: list[tuple[str, str]], timeout: float,
         body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The terminal's JSON answer when code is 200; TerminalError otherwise."""
    # http.client rather than urllib: no proxy from the environment for a LAN address, no redirect
    # silently turning the POST into a GET, and the socket errors stay distinguishable.
    if device.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(device.host, device.port, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(device.host, device.port, timeout=timeout)
    send_headers = {"Accept": "application/json", "Connection": "close"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        send_headers["Content-Type"] = "application/json"
    send_headers.update(headers)
    where = f"{method} {device.base}{SUBSCRIBE_PATH}"
    try:
        conn.request(method, SUBSCRIBE_PATH, body=payload, headers=send_headers)
        response = conn.getresponse()
        status, reason = response.status, response.reason
        content_type = response.getheader("Content-Type", "")
        raw = response.read()
    except TimeoutError:
        raise TerminalError(f"terminal at {device.address} did not answer within {timeout:g} s ({where})") from None
    except ConnectionRefusedError:
        raise TerminalError(f"cannot reach terminal at {device.address}: connection refused "
                            "(wrong port, or the HTTP API is disabled)") from None
    except socket.gaierror as exc:
        raise TerminalError(f"cannot reach terminal at {device.address}: host name {device.host!r} not resolved "
                            f"({exc.strerror or exc})") from None
    except ssl.SSLError as exc:
        detail = getattr(exc, "verify_message", None) or exc.reason or exc
        raise TerminalError(f"TLS with terminal at {device.address} failed: {detail}") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise TerminalError(f"terminal at {device.address} closed the connection without a valid answer "
                            f"({type(exc).__name__}: {_short(str(exc), 80) or 'no detail'})") from None
    except OSError as exc:
        raise TerminalError(f"cannot reach terminal at {device.address}: {exc.strerror or exc}") from None
    finally:
        conn.close()

    text = raw.decode("utf-8", errors="replace")
    if not 200 <= status < 300:
        hint = " (credentials: --header 'Name: value')" if status in (401, 403) else ""
        detail = f": {_short(text)}" if text.strip() else ""
        raise TerminalError(f"terminal answered HTTP {status} {reason}{hint}{detail}")
    try:
        answer = json.loads(text)
    except ValueError:
        kind = content_type.split(";")[0].strip() or "no content type"
        raise TerminalError(f"terminal answered {where} with non-JSON ({kind}): {_short(text, 120)!r}") from None
    if not isinstance(answer, dict):
        raise TerminalError(f"terminal answered with JSON that is not an object: {_short(text, 120)}")
    code = answer.get("code")
    # Some firmware sends the code as a string.
    if str(code).strip() != "200":
        message = answer.get("msg", answer.get("message", ""))
        raise TerminalError(f"terminal refused: code {code}: {message}")
    return answer


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


def _on_off(value: Any) -> str:
    flag = _as_bool(value)
    return "unknown" if flag is None else ("true" if flag else "false")


# --- commands --------------------------------------------------------------------------------

def cmd_subscribe(args: argparse.Namespace, device: Device, headers: list[tuple[str, str]]) -> int:
    url, enabled = args.url, not args.disable
    shown = url if args.reveal else mask_url(url)
    call(device, "POST", headers, args.timeout, {"event_dest": url, "enabled": enabled})
    print(f"terminal {device.base} accepted event_dest {shown} "
          f"({'enabled' if enabled else 'disabled'})")
    try:
        answer = call(device, "GET", headers, args.timeout)
    except TerminalError as exc:
        print(f"devicegate face-terminal: subscription sent, but reading it back failed: {exc}", file=sys.stderr)
        return 1
    data = answer.get("data")
    if not isinstance(data, dict) or "event_dest" not in data:
        print("not verified: the terminal does not report its subscription (data is empty); "
              "check that events arrive")
        return 0
    got_url, got_enabled = data.get("event_dest"), _as_bool(data.get("enabled"))
    if got_url == url and got_enabled in (enabled, None):
        suffix = "" if got_enabled is not None else " (enabled not reported)"
        print(f"verified: terminal reports the same event_dest{suffix}")
        return 0
    got_shown = got_url if args.reveal or not isinstance(got_url, str) else mask_url(got_url)
    print(f"devicegate face-terminal: mismatch: terminal reports event_dest {got_shown} "
          f"enabled={_on_off(data.get('enabled'))}", file=sys.stderr)
    return 1


def cmd_show(args: argparse.Namespace, device: Device, headers: list[tuple[str, str]]) -> int:
    answer = call(device, "GET", headers, args.timeout)
    data = _masked(answer.get("data"), args.reveal)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    if not isinstance(data, dict):
        print(f"terminal {device.base} returned no subscription data ({json.dumps(data)}); "
              "this firmware does not report it")
        return 0
    print(f"event_dest: {data.get('event_dest', '(not reported)')}")
    print(f"enabled:    {_on_off(data['enabled']) if 'enabled' in data else '(not reported)'}")
    for key, value in data.items():
        if key not in ("event_dest", "enabled"):
            print(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devicegate face-terminal",
                                     description="configure a face-recognition terminal's event push")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", required=True, metavar="http://IP:PORT",
                        help="the terminal's HTTP API; a bare IP:PORT means http://")
    common.add_argument("--timeout", type=_timeout, default=5.0, metavar="SECONDS",
                        help="per connect/read on the terminal (default 5)")
    common.add_argument("--header", action="append", default=[], metavar="'Name: value'",
                        help="extra request header, for firmware that wants auth (repeatable)")
    common.add_argument("--reveal", action="store_true", help="print the webhook token instead of ****")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("subscribe", parents=[common], help="set the event push URL, then read it back")
    p.add_argument("--url", required=True, metavar="WEBHOOK_URL",
                   help="https://API/hooks/face-terminal/{token}")
    p.add_argument("--serial", help="the terminal's serial number, added as ?device=SERIAL so the gateway "
                                    "can attribute its alarm events")
    p.add_argument("--disable", action="store_true", help="send enabled=false (stop the push)")
    p.set_defaults(func=cmd_subscribe, usage=p)

    p = sub.add_parser("show", parents=[common], help="print the terminal's event push setting")
    p.add_argument("--json", action="store_true", help="the terminal's data object as JSON")
    p.set_defaults(func=cmd_show, usage=p)
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        device = parse_device(args.device)
        headers = [parse_header(h) for h in args.header]
        if args.command == "subscribe":
            args.url, warnings = check_webhook_url(args.url, args.serial)
            for warning in warnings:
                print(f"devicegate face-terminal: warning: {warning}", file=sys.stderr)
    except ValueError as exc:
        # The subcommand's parser, so the usage line printed is the one that was misused.
        args.usage.error(str(exc))
    try:
        return args.func(args, device, headers)
    except TerminalError as exc:
        print(f"devicegate face-terminal: {exc}", file=sys.stderr)
        return 1
