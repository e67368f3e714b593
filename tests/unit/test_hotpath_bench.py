"""bench/run.py --compare: the other tree's functions are what its measurements import, and a
wrong commit is one line, not a traceback. Timing itself is never asserted."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from bench import run


def test_a_ref_that_is_no_commit_is_one_line():
    # When the ref names nothing, the bench stops before measuring anything, saying so
    with pytest.raises(SystemExit) as stopped, run.worktree("no-such-ref-anywhere"):
        pass
    assert str(stopped.value) == "--compare: 'no-such-ref-anywhere' is not a commit of this repository"


def test_the_compared_tree_is_the_one_measured(tmp_path):
    # Given a checkout of this tree's HEAD elsewhere (as --compare makes one of the ref)
    with run.worktree("HEAD") as (other, described):
        assert other != run.ROOT and (other / "layers" / "devicegate" / "devicegate").is_dir()
        assert described.split(",")[0] == subprocess.run(
            ["git", "-C", str(run.ROOT), "log", "-1", "--format=%h"], capture_output=True, text=True).stdout.strip()
        # When one small measurement runs against it
        args = argparse.Namespace(events=20, rounds=1, cold_runs=1)
        measured = run.measure_in_child(other, args)
    # Then it measured every path, warm and cold (the child refuses to measure another tree's layer,
    # and each cold start says where its devicegate came from)
    assert set(measured["warm"]) == set(measured["cold"]) == {p.key for p in run.PATHS}
    assert all(r["ratio"] > 0 for r in measured["warm"].values())
    # And the checkout is gone afterwards
    assert not other.exists()
    listed = subprocess.run(["git", "-C", str(run.ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert str(other) not in listed


def test_a_child_importing_another_layer_is_refused(tmp_path):
    # Given a directory whose layer is not where devicegate would come from (the editable install wins)
    code = tmp_path / "tree"
    (code / "layers" / "devicegate").mkdir(parents=True)
    # When it is measured, the child refuses rather than measure this tree under its name
    out = subprocess.run([sys.executable, str(run.Path(run.__file__)), "--measure-code", str(code), "--events", "1",
                          "--rounds", "1", "--cold-runs", "1"], capture_output=True, text=True)
    assert out.returncode != 0
    assert f"not from {code}" in out.stderr


def test_the_side_by_side_table_holds_the_medians_of_both_trees():
    def runs(*ratios):
        return [{"warm": {p.key: {"ratio": r, "ours_us": 100 * r} for p in run.PATHS},
                 "cold": {p.key: {"ratio": r / 2, "ours_ms": 500 * r} for p in run.PATHS}} for r in ratios]

    text = run.comparison("abc1234", "abc1234, committed 2026-12-01", runs(2.0, 3.0, 2.5), runs(2.2, 2.4, 2.3))
    row = next(line for line in text.splitlines() if line.startswith("| Jointech location | warm"))
    assert row == "| Jointech location | warm | 2.50x (250 µs) | 2.30x (230 µs) | 2.00x, 2.50x, 3.00x | 2.20x, 2.30x, 2.40x |"
    cold_row = next(line for line in text.splitlines() if line.startswith("| Mettax GPS | cold start"))
    assert cold_row.startswith("| Mettax GPS | cold start | 1.25x (1250 ms) | 1.15x (1150 ms) |")
