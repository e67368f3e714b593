"""A long run's running count on stderr (devicegate_cli.presentation.Progress): periodic lines in
a log, one line rewritten in place on a terminal, always the totals at the end."""

from __future__ import annotations

import io

from devicegate_cli.presentation import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_a_line_every_interval_and_the_totals_at_the_end():
    # Given a run logged to a file, a line every 10 s
    clock, log = Clock(), io.StringIO()
    progress = Progress("replay", stream=log, every=10.0, clock=clock)
    # When 30 items are done over 25 seconds
    for i in range(30):
        clock.now = 100.0 + i * 25 / 29
        progress.add("stored" if i % 3 else "duplicate")
    clock.now = 126.0
    progress.done()
    # Then two running lines (after 10 and 20 s), then the totals with the time taken
    lines = log.getvalue().splitlines()
    assert [line.endswith("so far") for line in lines] == [True, True, False]
    assert lines[0] == ("replay: 13 items done (5 duplicate, 8 stored) so far")
    assert lines[-1] == "replay: 30 items done (10 duplicate, 20 stored) in 26.0 s"


def test_on_a_terminal_one_line_rewritten_in_place_and_left_with_the_totals():
    clock, terminal = Clock(), Terminal()
    progress = Progress("redrive", stream=terminal, clock=clock)
    for _ in range(3):
        clock.now += 0.5
        progress.add("stored")
    progress.done()
    written = terminal.getvalue()
    # Every update returns to the start of the line and clears it; only the last ends the line
    assert written.count("\r\x1b[K") == 4 and written.count("\n") == 1
    assert written.endswith("\r\x1b[Kredrive: 3 items done (3 stored) in 1.5 s\n")


def test_nothing_done_says_so():
    log = io.StringIO()
    progress = Progress("replay", stream=log, clock=Clock())
    progress.done()
    assert log.getvalue() == "replay: 0 items done in 0.0 s\n"
