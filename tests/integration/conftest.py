"""Fixtures of the integration tests: the query CLI against the moto stack."""

from __future__ import annotations

import pytest

from devicegate_cli import commands
from devicegate_cli.main import main


@pytest.fixture
def cli(stack, monkeypatch, capsys):
    """Run `devicegate ARGV...` against the test's stack: (exit code, stdout); what it wrote to
    stderr is then `run.err`."""
    monkeypatch.setattr(commands, "resolve_target",
                        lambda args: commands.Target(stack.session, None, stack.table, stack.bucket))

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()  # drop the handlers' metric lines printed before
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's way out (a mistake in the arguments, --help)
            code = exc.code
        captured = capsys.readouterr()
        run.err = captured.err  # type: ignore[attr-defined]
        return code, captured.out

    return run
