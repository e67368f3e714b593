"""`devicegate` command line: local stack, queries, quarantine and replay."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `local` owns its own options and pulls in moto; keep the query commands light.
    if argv and argv[0] == "local":
        from devicegate_cli.local_stack import main_local

        return main_local(argv[1:])
    from devicegate_cli.commands import run_command

    return run_command(argv)


if __name__ == "__main__":
    sys.exit(main())
