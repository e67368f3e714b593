"""The bridge's spool file across versions: a spool left by an older bridge opens with its frames,
their order and its sequence intact."""

from __future__ import annotations

import sqlite3

from devicegate_onprem.senselink_spool import SCHEMA_VERSION, Spool

# Version 1 as the first bridge created it: only records were spooled, so `code` was NOT NULL.
V1 = """
CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL, code INTEGER NOT NULL,
                      record_id TEXT, frame TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE rejected (seq INTEGER PRIMARY KEY AUTOINCREMENT, pending_seq INTEGER, received_at REAL NOT NULL,
                       rejected_at REAL NOT NULL, code INTEGER, record_id TEXT, status INTEGER, reason TEXT NOT NULL,
                       frame BLOB NOT NULL);
PRAGMA user_version = 1;
"""


def test_a_version_1_spool_is_upgraded_with_its_frames_order_and_sequence(tmp_path):
    # Given a version 1 spool holding two frames, whose newest frames (up to seq 9) were delivered
    path = tmp_path / "spool.db"
    db = sqlite3.connect(path)
    db.executescript(V1)
    db.execute("INSERT INTO pending (seq, received_at, code, record_id, frame, attempts) VALUES "
               "(4, 1.0, 30000, '4', 'four', 2), (6, 2.0, 30100, NULL, 'six', 0), (9, 3.0, 30000, '9', 'nine', 0)")
    db.execute("DELETE FROM pending WHERE seq = 9")
    db.commit()
    db.close()
    # When this bridge opens it and spools a malformed frame, which has no code
    spool = Spool(str(path))
    seq, depth = spool.add('{"code": "²"}', None, None)
    # Then the old frames are there, oldest first, and the new one comes after every seq ever used
    head = spool.oldest()
    assert head is not None and (head.seq, head.code, head.frame, head.attempts) == (4, 30000, "four", 2)
    assert (seq, depth) == (10, 3)
    spool.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT seq, code, frame FROM pending ORDER BY seq").fetchall() == [
        (4, 30000, "four"), (6, 30100, "six"), (10, None, '{"code": "²"}')]
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (2,)
    assert {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {
        "pending", "rejected", "sqlite_sequence"}
    db.close()


def test_a_new_spool_takes_a_frame_without_a_code(tmp_path):
    spool = Spool(str(tmp_path / "spool.db"))
    assert spool.add("[1]", None, None) == (1, 1)
    spool.close()
    again = Spool(str(tmp_path / "spool.db"))  # reopened: nothing to migrate
    assert again.pending == 1
    again.close()
