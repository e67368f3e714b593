"""`devicegate command send|status`: commands to Jointech devices from the shell, through the same
IAM-authorized HTTP route apps use (docs/commands.md).

    devicegate command send --device 794308010642 --command query_base_info --wait 60
    devicegate command send --device 794308010642 --raw "(794308010642,1,001,BASE,1)"
    devicegate command send --device 794308010642 --command query_base_info --when-online --expires-in 1h
    devicegate command status --device 794308010642 [--id ID] [--json]
    devicegate command cancel ID --device 794308010642

Against a deployment (--stack NAME) the request goes to the stack's HttpApiUrl output, signed with
SigV4 (service execute-api) using the caller's AWS credentials: the caller needs
execute-api:Invoke on the route. Without --stack it goes to the local stack's HTTP routes
(--api-url, $DEVICEGATE_API_URL, the running local stack's, else http://127.0.0.1:3000), signed
with the local stack's placeholder credentials, since the local routes refuse unsigned requests
as API Gateway does.

Exit status: 0 sent or queued, cancelled (with --wait: answered successfully), 1 the command failed,
timed out, expired or is still waiting when --wait ends, or the gateway could not be reached /
answered 5xx, 2 the request was refused (400, 403, 404, 409 — a cancel of a command that is not
waiting — 429).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from devicegate_local.names import API_URL_VARIABLE, LOCAL_CREDENTIALS, LOCAL_REGION, default_api_url

VENDOR = "jointech"
FINAL = ("succeeded", "failed", "timed_out", "expired", "cancelled")
#: Still to be answered: kept for the device's next contact, or sent.
OPEN = ("queued", "pending")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_arg(text: str) -> int:
    """`--expires-in`: whole seconds, or a number with s, m, h or d (90s, 5m, 1h, 7d)."""
    import re

    match = re.fullmatch(r"\s*([0-9]{1,7})\s*([smhd]?)\s*", text or "")
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds or a duration such as 90s, 5m, 1h, 7d")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


class CommandCliError(Exception):
    """A failure already worded as the one line the user sees; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Api:
    """The command route's base URL and how to sign requests to it."""

    base_url: str
    credentials: Any  # botocore credentials
    region: str

    def request(self, method: str, device: str, body: dict[str, Any] | None = None,
                query: dict[str, str] | None = None, suffix: str = "") -> Reply:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = f"{self.base_url.rstrip('/')}/devices/{VENDOR}/{quote(device, safe='')}/commands{suffix}"
        if query:
            url += "?" + urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if data is not None else {}
        signed = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(signed)
        request = urllib.request.Request(url, data=data, method=method, headers=dict(signed.headers.items()))
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, _json(response.read()), dict(response.headers.items()))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, _json(exc.read()), dict(exc.headers.items()))
        except (urllib.error.URLError, OSError) as exc:
            where = "is the local stack running? start it with: ./run local" if "127.0.0.1" in url else ""
            reason = getattr(exc, "reason", exc)
            raise CommandCliError(f"cannot reach {self.base_url}: {reason}. {where}".strip()) from None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data or b"null")
    except ValueError:
        return {"message": data.decode("utf-8", "replace")[:200]}


def resolve_api(args: argparse.Namespace) -> Api:
    import boto3

    if args.stack:
        from devicegate_cli.commands import endpoint_url

        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        cloudformation = session.client("cloudformation",
                                        endpoint_url=endpoint_url(session, "cloudformation", args.endpoint_url))
        stack = cloudformation.describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if "HttpApiUrl" not in outputs:
            raise CommandCliError(f"stack {args.stack} has no HttpApiUrl output")
        credentials = session.get_credentials()
        if credentials is None:
            raise CommandCliError("no AWS credentials found to sign the request (set a profile or AWS_* variables)")
        return Api(args.api_url or outputs["HttpApiUrl"], credentials.get_frozen_credentials(), session.region_name)
    from botocore.credentials import Credentials

    return Api(args.api_url or default_api_url(),
               Credentials(LOCAL_CREDENTIALS["aws_access_key_id"], LOCAL_CREDENTIALS["aws_secret_access_key"]),
               LOCAL_REGION)


# --- commands ----------------------------------------------------------------------------------

def cmd_send(args: argparse.Namespace, api: Api) -> int:
    body: dict[str, Any] = {"raw": args.raw} if args.raw is not None else {"command": args.command}
    for pair in args.param or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CommandCliError(f"--param {pair!r}: expected name=value", 2)
        body[name] = value
    if args.client_token:
        body["clientToken"] = args.client_token
    if args.when_online or args.allow_unlock_when_online:
        body["whenOnline"] = True
    elif args.expires_in is not None:
        raise CommandCliError("--expires-in is for a command kept until the device's next contact: add --when-online",
                              2)
    if args.expires_in is not None:
        body["expiresIn"] = args.expires_in
    if args.allow_unlock_when_online:
        body["allowUnsafe"] = True
    reply = api.request("POST", args.device, body)
    if reply.status not in (200, 202):
        return _refused(reply)
    command = reply.body
    queued = command.get("status") == "queued"
    if not args.wait:
        _show(command, args.json, ("" if queued else "sent") if reply.status == 202
              else "already sent (same clientToken)")
        return 0
    # The command is sent: its id first (on stderr, stdout being the result), so an operator who
    # stops waiting still knows which command to look up.
    print(f"command {command.get('commandId')} {'queued for' if queued else 'sent to'} {args.device}; waiting up "
          f"to {args.wait:g} s for the device's answer (Ctrl-C stops waiting, not the command)", file=sys.stderr,
          flush=True)
    deadline = time.monotonic() + args.wait
    try:
        while command.get("status") in OPEN and time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            polled = api.request("GET", args.device, query={"id": command["commandId"]})
            if polled.status != 200:
                return _refused(polled)
            command = polled.body
            print(f"  {command.get('status')}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print(f"devicegate: stopped waiting; command {command.get('commandId')} is {command.get('status')}: "
              f"devicegate command status --device {args.device} --id {command.get('commandId')}", file=sys.stderr)
        return 130
    _show(command, args.json, "")
    return 0 if command.get("status") == "succeeded" else 1


def cmd_cancel(args: argparse.Namespace, api: Api) -> int:
    import re

    if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", args.command_id):
        raise CommandCliError(f"{args.command_id!r} is not a command id (devicegate command status lists them)", 2)
    reply = api.request("POST", args.device, suffix=f"/{args.command_id}/cancel")
    if reply.status == 409 and isinstance(reply.body, dict):
        # One line: what the command is instead of waiting.
        print(f"devicegate: command {args.command_id} is {reply.body.get('status')}, not waiting: only a queued "
              "command can be cancelled", file=sys.stderr)
        return 2
    if reply.status != 200:
        return _refused(reply)
    _show(reply.body, args.json, "")
    return 0


def cmd_status(args: argparse.Namespace, api: Api) -> int:
    query = {"id": args.id} if args.id else {"limit": str(args.limit)}
    reply = api.request("GET", args.device, query=query)
    if reply.status != 200:
        return _refused(reply)
    if args.id:
        _show(reply.body, args.json, "")
        return 0
    commands = reply.body.get("commands", [])
    if args.json:
        _out(commands)
        return 0
    from devicegate.core.commands import LIFECYCLE
    from devicegate_cli.commands import print_table

    print_table([dict(c, what=c.get("command") or c.get("text"), answer=_answer(c),
                      lifecycle=LIFECYCLE.get(c.get("status", ""), c.get("status"))) for c in commands],
                ["requestedAt", "commandId", "status", "lifecycle", "what", "answer"])
    return 0


def _answer(command: dict[str, Any]) -> str | None:
    if command.get("response") is not None:
        return ",".join(str(v) for v in command["response"])
    return command.get("error")


def _show(command: dict[str, Any], as_json: bool, note: str) -> None:
    if as_json:
        _out(command)
        return
    what = command.get("command") or command.get("text")
    print(f"command {command.get('commandId')} {what}: {command.get('status')}" + (f" ({note})" if note else ""))
    if command.get("status") == "pending":
        from devicegate_cli.commands import shown_time

        print(f"waiting for the device's answer until {shown_time(command.get('timeoutAt'))}")
    if command.get("status") == "queued":
        from devicegate_cli.commands import shown_time

        print(f"kept for the device's next contact until {shown_time(command.get('waitUntil'))} "
              f"(attempts {command.get('attempts', 0)} of {command.get('maxAttempts')})")
    answer = _answer(command)
    if answer:
        print(f"answer: {answer}")


def _refused(reply: Reply) -> int:
    body = reply.body if isinstance(reply.body, dict) else {}
    print(f"devicegate: HTTP {reply.status}: {body.get('message', '')}", file=sys.stderr)
    for problem in body.get("errors") or []:
        print(f"  {problem.get('field')}: {problem.get('problem')}", file=sys.stderr)
    if reply.status == 429:
        print(f"  retry after {reply.headers.get('Retry-After') or reply.headers.get('retry-after')} s",
              file=sys.stderr)
    if reply.status == 403:
        print("  the caller needs execute-api:Invoke on the command route "
              "(docs/commands.md, \"From an app\": an app's IAM policy)", file=sys.stderr)
    return 2 if 400 <= reply.status < 500 else 1


def _out(value: Any) -> None:
    from devicegate_cli.commands import LOCAL_TIME

    if LOCAL_TIME:
        from devicegate_cli.presentation import times_in_local_zone

        value = times_in_local_zone(value)
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    print()


def build_parser() -> argparse.ArgumentParser:
    from devicegate_cli.commands import limit_arg
    from devicegate_cli.edge import OneLineParser, deployment_options

    parser = OneLineParser(prog="devicegate command", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    target = OneLineParser(add_help=False)
    deployment_options(target)
    target.add_argument("--api-url", help="base URL of the HTTP API (default: the stack's HttpApiUrl with "
                                          f"--stack; else ${API_URL_VARIABLE}, the running local stack's, "
                                          "or http://127.0.0.1:3000)")
    target.add_argument("--endpoint-url", help="endpoint of the CloudFormation call that finds the stack's "
                                               "HttpApiUrl, with --stack (default: botocore's AWS_ENDPOINT_URL_"
                                               "CLOUDFORMATION / AWS_ENDPOINT_URL, else AWS)")
    target.add_argument("--device", required=True, help="the device number (Jointech assetId)")
    target.add_argument("--json", action="store_true", help="machine-readable output")
    target.add_argument("--local-time", action="store_true",
                        help="times in this machine's time zone, with its offset (default: UTC, as stored)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=OneLineParser)

    send = sub.add_parser("send", parents=[target], help="send a command to a device")
    what = send.add_mutually_exclusive_group(required=True)
    what.add_argument("--raw", help="the command text, e.g. (794308010642,1,001,BASE,1)")
    what.add_argument("--command", help="a typed command: query_base_info, query_time")
    send.add_argument("--param", action="append", metavar="NAME=VALUE",
                      help="a typed command's parameter (e.g. serial=002); repeatable")
    send.add_argument("--client-token", help="idempotency token: sending again with it returns the same command")
    send.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                      help="wait up to this long for the device's answer")
    send.add_argument("--when-online", action="store_true",
                      help="keep the command until the device's next contact (a record, a heartbeat), "
                           "instead of sending it now")
    send.add_argument("--expires-in", type=duration_arg, metavar="DURATION",
                      help="with --when-online: let it go unsent after this long (90s, 5m, 1h, 7d; default and "
                           "longest are the stack's WaitingCommand* parameters)")
    send.add_argument("--allow-unlock-when-online", action="store_true",
                      help="keep a command that may open or unlock something (any but the documented queries) "
                           "until the next contact too; its expiry is short (UnsafeWaitingCommandMaxExpirySeconds)")
    send.set_defaults(func=cmd_send)

    cancel = sub.add_parser("cancel", parents=[target], help="cancel a command waiting for the device's next contact")
    cancel.add_argument("command_id", metavar="ID", help="the command id (devicegate command status lists them)")
    cancel.set_defaults(func=cmd_cancel)

    status = sub.add_parser("status", parents=[target], help="a device's commands and their status, newest first")
    status.add_argument("--id", help="only this command")
    status.add_argument("--limit", type=limit_arg, default=20, help="at most this many, newest first (default 20)")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str]) -> int:
    from devicegate_cli import commands

    args = build_parser().parse_args(argv)
    commands.LOCAL_TIME = args.local_time  # print_table and shown_time follow it
    from devicegate_cli.edge import at_the_edge, check_deployment_options

    def call() -> int:
        check_deployment_options(args)
        try:
            return int(args.func(args, resolve_api(args)))
        except CommandCliError as exc:  # already worded, with its own exit status
            print(f"devicegate: {exc}", file=sys.stderr)
            return exc.code

    return at_the_edge("command", call)
