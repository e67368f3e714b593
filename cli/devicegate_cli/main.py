"""`devicegate` command line: local stack, queries, quarantine and replay, device set-up and the
on-prem SenseLink bridge."""

from __future__ import annotations

import sys

# Commands with their own option parsers and imports, kept out of the query commands' start-up:
# `local` pulls in moto; the bridge runs on an on-prem machine with only the standard library
# and websockets; `face-terminal` talks to a terminal on the LAN.
_OWN_PARSERS = {
    "local": "devicegate_cli.local_stack:main_local",
    "senselink-bridge": "devicegate_cli.senselink_bridge:main",
    "face-terminal": "devicegate_cli.face_terminal:main",
    "strategy": "devicegate_cli.strategy:main",
    # Commands to devices go through the IAM-authorized HTTP route (signed), not the table.
    "command": "devicegate_cli.device_commands:main",
    "mqtt-bridge": "devicegate_cli.mqtt_bridge:main",
    # Starts the function's processes (and, with --fresh, moto) like `local` does.
    "invoke": "devicegate_cli.invoke:main",
    # Sample pushes and the per-vendor check: they read events/ and talk HTTP to the routes.
    "examples": "devicegate_cli.examples:main",
    "urls": "devicegate_cli.deployment_tools:main_urls",
    "smoke": "devicegate_cli.deployment_tools:main_smoke",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in _OWN_PARSERS:
            from importlib import import_module

            module, _, name = _OWN_PARSERS[argv[0]].partition(":")
            return getattr(import_module(module), name)(argv[1:])
        from devicegate_cli.commands import run_command

        return run_command(argv)
    except KeyboardInterrupt:
        print("devicegate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`devicegate events ... | head -n 1`): stop quietly, as a program
        # killed by SIGPIPE would (the shell's 128 + 13), and keep Python from failing again
        # when it flushes stdout at exit.
        import io
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):  # stdout is no file (tests capture it)
            pass
        return 141


if __name__ == "__main__":
    sys.exit(main())
