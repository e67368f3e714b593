"""`devicegate strategy get|set --device SERIAL`: an AI camera's configuration, as its heartbeat
answer tells it (heartbeat interval, event send mode, detection strategy).

The configuration is the item CFG#ai-camera#{serial} / CONFIG, attribute `config`, that apps may
write too; the gateway reads it for every heartbeat answer, over the deployment default
(AI_CAMERA_DEFAULT_CONFIG). `set` validates before it writes: an item the camera cannot be told
is refused here (exit 2), since the gateway would ignore it and tell the default instead.

    devicegate strategy set --device I320013590DEA0BE21F6958 --file strategy.json
    devicegate strategy get --device I320013590DEA0BE21F6958
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

VENDOR = "ai-camera"
#: The template parameter the CLI reads the deployment default from when the shell has no
#: AI_CAMERA_DEFAULT_CONFIG (a deployment that has none uses the built-in default).
DEFAULT_PARAMETER = "AiCameraDefaultConfig"
NO_CONFIG = "(no device configuration; the deployment default applies)"


class StrategyError(Exception):
    """A failure already worded as the one line the user sees."""


def _out(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    print()


def _problems(problems: list[Any]) -> None:
    for p in problems:
        print(f"{p.field}: {p.problem}", file=sys.stderr)


# --- the configuration document --------------------------------------------------------------

def read_document(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StrategyError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StrategyError(f"{'stdin' if path == '-' else path} is not JSON: {exc}") from None


def as_config(document: Any) -> Any:
    """A bare strategy (its keys are strategy fields, none a configuration's) becomes
    {"strategy": ...}; anything else is taken as a whole configuration."""
    from devicegate.vendors.ai_camera.models import STRATEGY_FIELDS, CameraConfig

    if isinstance(document, dict) and set(document) & set(STRATEGY_FIELDS) and \
            not set(document) & set(CameraConfig.model_fields):
        return {"strategy": document}
    return document


def default_config(t: Any) -> tuple[dict[str, Any], str]:
    """The deployment default and where it came from: this shell's AI_CAMERA_DEFAULT_CONFIG, else
    the stack's (or template's) AiCameraDefaultConfig parameter, else the built-in one."""
    from devicegate.vendors.ai_camera.models import DEFAULT_CONFIG_ENV, ConfigInvalid, parse_default

    text, source = os.environ.get(DEFAULT_CONFIG_ENV), f"${DEFAULT_CONFIG_ENV}"
    if not (text and text.strip()):
        text, source = _parameter_default(t), f"parameter {DEFAULT_PARAMETER}"
    if not (text and text.strip()):
        return parse_default(None), "built-in"
    try:
        return parse_default(text), source
    except ConfigInvalid as exc:
        _problems(exc.problems)
        raise StrategyError(f"the deployment default ({source}) is invalid; fix it first") from None


def _parameter_default(t: Any) -> str | None:
    if t.stack:
        stack = t.client("cloudformation").describe_stacks(StackName=t.stack)["Stacks"][0]
        for entry in stack.get("Parameters", []):
            if entry["ParameterKey"] == DEFAULT_PARAMETER:
                return entry.get("ResolvedValue") or entry.get("ParameterValue")
        return None
    from devicegate_local.cfn_template import load_template
    from devicegate_local.resources import find_template

    template = find_template()
    if template is None:
        return None
    default = (load_template(template).get("Parameters") or {}).get(DEFAULT_PARAMETER, {}).get("Default")
    return None if default is None else str(default)


# --- storage -----------------------------------------------------------------------------------

def _ddb(t: Any) -> Any:
    from botocore.config import Config

    # Few, short retries: an operator at a shell wants "unreachable" in seconds, not minutes.
    return t.client("dynamodb", config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2}))


def _key(serial: str) -> dict[str, Any]:
    from devicegate.store import keys

    return {"pk": {"S": keys.config_pk(VENDOR, serial)}, "sk": {"S": keys.CONFIG_SK}}


def read_item(ddb: Any, table: str, serial: str) -> dict[str, Any] | None:
    from devicegate.store.codec import from_item

    found = ddb.get_item(TableName=table, Key=_key(serial), ConsistentRead=True)
    return from_item(found["Item"]) if "Item" in found else None


def write_item(ddb: Any, table: str, serial: str, config: dict[str, Any], by: str) -> str:
    from devicegate.core.timeutil import iso_utc, now_utc
    from devicegate.store.codec import to_attr

    at = iso_utc(now_utc())
    ddb.put_item(TableName=table, Item={**_key(serial), "config": to_attr(config), "updatedAt": {"S": at},
                                        "updatedBy": {"S": by}})
    return at


# --- commands ----------------------------------------------------------------------------------

def cmd_set(args: argparse.Namespace, target: Any) -> int:
    from devicegate.vendors.ai_camera.models import ConfigInvalid, parse_config, resolve_config

    # Validated before anything is looked up: a typo is reported even with no stack reachable.
    try:
        config = parse_config(as_config(read_document(args.file))).model_dump(exclude_none=True)
    except ConfigInvalid as exc:
        _problems(exc.problems)
        print("devicegate strategy: not written (invalid configuration)", file=sys.stderr)
        return 2
    t = target()
    default, source = default_config(t)
    try:
        told = resolve_config(config, default)
    except ConfigInvalid as exc:
        # Valid alone, but not a strategy the camera can take whole over this default: the
        # gateway would ignore it, so it is not written.
        _problems(exc.problems)
        print(f"devicegate strategy: not written: {exc.reason}; the default ({source}) has "
              f"{'a' if default.get('strategy') else 'no'} strategy", file=sys.stderr)
        return 2
    by = args.by or os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    at = write_item(_ddb(t), t.table, args.device, config, by)
    print(f"stored the configuration of {VENDOR} device {args.device} ({at}, by {by}); the camera is told "
          f"at its next heartbeat:")
    _out(told)
    return 0


def cmd_get(args: argparse.Namespace, target: Any) -> int:
    from devicegate.vendors.ai_camera.models import ConfigInvalid, resolve_config

    t = target()
    item = read_item(_ddb(t), t.table, args.device)
    default, source = default_config(t)
    stored = item.get("config") if item else None
    problems: list[Any] = []
    try:
        told = resolve_config(stored, default)
    except ConfigInvalid as exc:
        # Written by an app without validation: the gateway falls back to the default, say so.
        problems, told = exc.problems, resolve_config(None, default)
    from devicegate_cli.commands import shown_time

    if args.json:
        _out({"vendor": VENDOR, "device": args.device, "config": stored,
              "updatedAt": shown_time(item.get("updatedAt")) if item else None, "updatedBy": item.get("updatedBy") if item else None,
              "problems": [p.as_dict() for p in problems], "effective": told, "defaultFrom": source})
        return 0
    if item is None:
        print(NO_CONFIG)
    else:
        print(f"device configuration (updated {shown_time(item.get('updatedAt', '?'))} by "
              f"{item.get('updatedBy', '?')}):")
        _out(stored)
    if problems:
        print("warning: the stored configuration is invalid, the camera is told the default instead:",
              file=sys.stderr)
        _problems(problems)
    print(f"effective configuration, as the camera is told (default: {source}):")
    _out(told)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from devicegate_cli.edge import OneLineParser

    parser = OneLineParser(prog="devicegate strategy", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    # The query commands' target options, so resolve_target finds the same table.
    from devicegate_cli.commands import target_options

    target = target_options()
    target.add_argument("--device", required=True, help="the camera's serialNumber")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    p = sub.add_parser("get", parents=[target], help="print the stored and the effective configuration")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_get, usage=p)

    p = sub.add_parser("set", parents=[target], help="validate and store a device's configuration")
    p.add_argument("--file", required=True,
                   help="JSON file ('-' for stdin): a configuration {heartbeatInterval, eventSendMode, strategy} "
                        "or a bare strategy object")
    p.add_argument("--by", help="who made the change (default: $USER)")
    p.set_defaults(func=cmd_set, usage=p)
    return parser


def main(argv: list[str]) -> int:
    from devicegate.core.fields import PRINTABLE_ID

    args = build_parser().parse_args(argv)
    # The ingest rule for camera serials, so the CLI cannot write a configuration no camera has.
    if not PRINTABLE_ID.accepts(args.device):
        args.usage.error(f"--device must be the camera's serialNumber: {PRINTABLE_ID.problem}")
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    from devicegate_cli import commands

    commands.LOCAL_TIME = bool(args.local_time)  # from the query commands' target options
    resolved: list[Any] = []

    def target() -> Any:
        if not resolved:
            resolved.append(commands.resolve_target(args))
        return resolved[0]

    try:
        return args.func(args, target)
    except StrategyError as exc:
        print(f"devicegate strategy: {exc}", file=sys.stderr)
        return 2
    except EndpointConnectionError:
        where = (resolved[0].endpoint_for("dynamodb") if resolved else None) or "AWS"
        hint = "" if args.stack else "; is the local stack running? start it with: ./run local"
        print(f"devicegate strategy: cannot reach {where}{hint}", file=sys.stderr)
        return 1
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ResourceNotFoundException":
            table = resolved[0].table if resolved else "?"
            print(f"devicegate strategy: table {table} not found (is the stack deployed? --table names another)",
                  file=sys.stderr)
        else:
            print(f"devicegate strategy: {error.get('Code', 'error')}: {error.get('Message', exc)}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:
        print(f"devicegate strategy: {exc}", file=sys.stderr)
        return 1
