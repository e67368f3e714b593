"""`devicegate console`: the console's command. It targets what every other command targets (the
running local stack by default, a deployment with --stack/--profile/--region and the operator's
own credentials), makes a fresh access token, prints the one link that carries it, and serves on
127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from typing import Any

from devicegate_cli.edge import OneLineParser, UsageError, at_the_edge, check_deployment_options, deployment_options

#: Where the console listens: this machine only, never another interface.
HOST = "127.0.0.1"


def build_parser() -> argparse.ArgumentParser:
    from devicegate_console.app import OSM_TILES

    parser = OneLineParser(prog="devicegate console",
                           description="A web view of the fleet, served on 127.0.0.1 for you alone: open the link "
                                       "it prints (it carries a fresh access token). Reads the running local stack, "
                                       "or a deployment with --stack.")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080; 0: any free one)")
    parser.add_argument("--tiles", default=OSM_TILES,
                        help=f"map tile URL template (default {OSM_TILES}); 'none' for a blank map "
                             "(the track is drawn either way)")
    deployment_options(parser)
    parser.add_argument("--endpoint-url", help="endpoint for every AWS call (as the other commands take it)")
    parser.add_argument("--table", help="table name, overriding discovery")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return at_the_edge("console", lambda: _serve(args), local_hint=not args.stack)


@dataclass
class Prepared:
    """The console the command serves: its app over the target, the socket it listens on, its token."""

    app: Any
    listening: socket.socket
    port: int
    token: str
    target: Any  # devicegate_cli.commands.Target
    reads: Any  # devicegate_console.reads.Reads


def prepare(args: argparse.Namespace) -> Prepared:
    """Everything `devicegate console` does before it serves: the target resolved as every other
    command resolves it, its reads, the command API, the listening socket and a fresh token."""
    check_deployment_options(args)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a port (0 to 65535)")
    from devicegate_cli.commands import ENDPOINT_VARIABLE, resolve_target, store_over
    from devicegate_local.names import running_stack

    if not (args.stack or args.endpoint_url or os.environ.get(ENDPOINT_VARIABLE) or running_stack()):
        raise UsageError("no local stack is running here: start one with ./run local (in another terminal), "
                         "or name a deployment with --stack")
    target = resolve_target(args)
    dynamodb = target.client("dynamodb")
    dynamodb.describe_table(TableName=target.table)  # unreachable or missing: one line now, not a page later
    listening = _listen(args.port)
    port = listening.getsockname()[1]

    from devicegate_console.app import Settings, create_app
    from devicegate_console.commands import Commands
    from devicegate_console.reads import Reads

    token = secrets.token_urlsafe(32)
    tiles = None if args.tiles.lower() in ("", "none") else args.tiles
    try:
        replays = store_over(target)  # the deployment's retention, which a replayed event is stored with
    except SystemExit as exc:  # the local stack's defaults are template.yaml's, not found from here
        print(f"devicegate console: edit and replay is off ({exc})", file=sys.stderr)
        replays = None
    s3 = s3_client(target.session, target.endpoint_for("s3"))
    reads = Reads(dynamodb, s3, target.table, store_over=replays, shards=target.shards(),
                  streams=target.client("dynamodbstreams"), bucket=target.bucket)
    # The command API as `devicegate command` finds it (the stack's HttpApiUrl, or the local
    # stack's routes); without one the device page says why instead of offering a form.
    commands = Commands.for_target(args.stack, args.profile, args.region, args.endpoint_url)
    if commands.why_not:
        print(f"devicegate console: sending commands is off ({commands.why_not})", file=sys.stderr)
    app = create_app(Settings(reads, token, port, tiles,
                              target=f"stack {args.stack}" if args.stack else "the local stack", commands=commands))
    return Prepared(app, listening, port, token, target, reads)


def _serve(args: argparse.Namespace) -> int:
    prepared = prepare(args)
    port, token, listening, app = prepared.port, prepared.token, prepared.listening, prepared.app

    import uvicorn

    # Its own handler, not the root logger's: Powertools (loaded with the layer by a replay)
    # filters every root handler against loggers whose name holds "devicegate".
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log = logging.getLogger("devicegate_console")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # The link is the one place the token is written: stdout, for the person who started it.
    print(f"devicegate console: http://{HOST}:{port}/?token={token}", flush=True)
    print("Ctrl-C stops.", flush=True)
    # uvicorn's own access log would write query strings (the token's first request has it).
    # A Live page holds its connection open: Ctrl-C waits this long for it, then closes it.
    config: Any = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                                 timeout_graceful_shutdown=3)
    try:
        uvicorn.Server(config).run(sockets=[listening])
    except KeyboardInterrupt:
        pass  # uvicorn stops on Ctrl-C, then raises it again: here it is the ordinary way out
    print("devicegate console: stopped", flush=True)
    return 0


def s3_client(session: Any, endpoint: str | None) -> Any:
    """The console's S3 client, which also signs the pictures' URLs: SigV4 (what every region
    takes) and, for a deployment, the bucket's regional host, since botocore signs for the global
    one, which does not serve a bucket of a region opened since 2019. An explicit endpoint (the
    local stack's moto) is kept as it is."""
    from botocore.config import Config

    if endpoint is None and session.region_name:
        return session.client("s3", endpoint_url=f"https://s3.{session.region_name}.amazonaws.com",
                              config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))
    return session.client("s3", endpoint_url=endpoint, config=Config(signature_version="s3v4"))


def _listen(port: int) -> socket.socket:
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((HOST, port))
    except OSError as exc:
        listening.close()
        raise UsageError(f"cannot listen on {HOST}:{port} ({exc.strerror}): is another console running? "
                         "(--port 0 takes any free port)") from None
    listening.listen(64)
    return listening
