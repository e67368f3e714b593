"""`devicegate` command line: local stack, queries, quarantine and replay, device set-up and the
on-prem SenseLink bridge."""

from __future__ import annotations

import sys

# Commands with their own option parsers and imports, kept out of the query commands' start-up:
# `local` pulls in moto (devicegate_local, the `local` extra); the bridges and `face-terminal` are
# devicegate-onprem's (onprem/), which also installs alone on a machine on the customer's LAN.
_OWN_PARSERS = {
    "local": "devicegate_local.stack:main_local",
    "senselink-bridge": "devicegate_onprem.senselink_bridge:main",
    "face-terminal": "devicegate_onprem.face_terminal:main",
    "strategy": "devicegate_cli.strategy:main",
    # Commands to devices go through the IAM-authorized HTTP route (signed), not the table.
    "command": "devicegate_cli.device_commands:main",
    "mqtt-bridge": "devicegate_onprem.mqtt_bridge:main",
    # Starts the function's processes (and, with --fresh, moto) like `local` does: devicegate_local.
    "invoke": "devicegate_cli.invoke:main",
    # Sample pushes and the per-vendor check: they read events/ and talk HTTP to the routes.
    "examples": "devicegate_cli.examples:main",
    "urls": "devicegate_cli.deployment_tools:main_urls",
    "smoke": "devicegate_cli.deployment_tools:main_smoke",
    # The web console: Starlette, Jinja2 and uvicorn load only for it.
    "console": "devicegate_console.serve:main",
}

#: What to install when a lazily loaded command's package, or a library only it needs, is missing.
_MISSING: dict[str, tuple[str, frozenset[str]]] = {
    "devicegate_local": ("the local stack needs the `local` extra: uv sync --extra local, "
                         "or pip install '.[local]' from the checkout",
                         frozenset({"moto", "yaml", "paho", "flask", "werkzeug", "websockets"})),
    "devicegate_onprem": ("the LAN tools are their own package: pip install ./onprem from the checkout",
                          frozenset({"websockets"})),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in _OWN_PARSERS:
            from importlib import import_module

            module, _, name = _OWN_PARSERS[argv[0]].partition(":")
            package = module.partition(".")[0]
            try:
                return getattr(import_module(module), name)(argv[1:])
            except ModuleNotFoundError as exc:
                # The package itself, or a library of its install set (loaded as late as the
                # command's first use of it), is absent: say what to install, not a traceback.
                missing = (exc.name or "").partition(".")[0]
                if package not in _MISSING or missing not in {package, *_MISSING[package][1]}:
                    raise
                print(f"devicegate {argv[0]}: {_MISSING[package][0]} (no module named {exc.name!r})",
                      file=sys.stderr)
                return 2
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
