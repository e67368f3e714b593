"""What every `devicegate` command shares at its edges: the parser that tells a mistake in one
line, the options that name a deployment, and the one place where an error becomes a line on
stderr and an exit status instead of a traceback.

Exit statuses: 2 a mistake of the caller's (an option, a name, a file), 1 the target failed
(AWS, the local stack, the network); main.py adds 130 (Ctrl-C) and 141 (a closed pipe).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a mistake told in one line on stderr (exit 2) instead of the usage block."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class UsageError(Exception):
    """A mistake the parser cannot see alone (two options that contradict): one line, exit 2."""


def deployment_options(parser: argparse.ArgumentParser) -> None:
    """--stack, --profile, --region: the same three words on every command that can reach a
    deployment (without --stack it is the running local stack)."""
    parser.add_argument("--stack", help="deployed stack name (default: the running local stack)")
    parser.add_argument("--profile", help="AWS profile, with --stack")
    parser.add_argument("--region", help="AWS region, with --stack")


def check_deployment_options(args: argparse.Namespace) -> None:
    # A profile or region alone would be silently ignored: the local stack has neither.
    if not getattr(args, "stack", None) and (getattr(args, "profile", None) or getattr(args, "region", None)):
        raise UsageError("--profile and --region name a deployment: give its --stack too")


def at_the_edge(name: str, call: Callable[[], int], *, local_hint: bool = False,
                target_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run one command: a UsageError is one line and exit 2; an AWS error (or one of
    `target_errors`: what else means "the target failed" for this command) one line and exit 1,
    naming the local stack when that is what was not reached (`local_hint`). Anything else is a
    bug of devicegate's, and its traceback is what a report needs."""
    try:
        return call()
    except UsageError as exc:
        print(f"devicegate {name}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(exc, (BotoCoreError, ClientError, *target_errors)):
            raise
        hint = " (is the local stack running? start it with: ./run local)" if local_hint else ""
        print(f"devicegate {name}: {exc}{hint}", file=sys.stderr)
        return 1
