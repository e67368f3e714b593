"""The SenseLink bridge's durable spool: an SQLite file holding every record frame between its
arrival from SenseLink and the gateway's 2xx, and the frames the gateway refused for good.

Standard library only: the bridge runs on an on-prem machine without the AWS libraries.

Schema (PRAGMA user_version = 2):

    pending   seq INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL, code INTEGER (NULL for a
              malformed frame without a usable one), record_id TEXT, frame TEXT (exact received
              text), attempts INTEGER, last_error TEXT
    rejected  seq INTEGER PRIMARY KEY AUTOINCREMENT, pending_seq INTEGER, received_at REAL,
              rejected_at REAL, code INTEGER, record_id TEXT, status INTEGER (HTTP status, NULL
              when the frame never reached the gateway), reason TEXT, frame BLOB

Version 1 had `pending.code NOT NULL` (only records were spooled); opening such a spool rebuilds
the table in one transaction, frames and their order kept.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 2

# AUTOINCREMENT, not a plain rowid: a rowid may be reused once the newest row is deleted, and
# the forwarder's "oldest first" relies on seq never going backwards across restarts.
_PENDING = """
CREATE TABLE IF NOT EXISTS pending (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL    NOT NULL,
    code        INTEGER,
    record_id   TEXT,
    frame       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
)"""
_REJECTED = """
CREATE TABLE IF NOT EXISTS rejected (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    pending_seq INTEGER,
    received_at REAL    NOT NULL,
    rejected_at REAL    NOT NULL,
    code        INTEGER,
    record_id   TEXT,
    status      INTEGER,
    reason      TEXT    NOT NULL,
    frame       BLOB    NOT NULL
)"""
# frame in `rejected` is declared BLOB so that junk arriving as undecodable bytes is kept
# byte for byte, while text frames stay text (BLOB affinity converts nothing).


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Version 1 -> 2: `pending.code` may be NULL. SQLite cannot drop a NOT NULL, so the table is
    rebuilt, in one transaction (a crash leaves version 1 whole), seq numbers and the AUTOINCREMENT
    counter kept: the forwarder's "oldest first" and `rejected.pending_seq` rely on them."""
    if db.execute("PRAGMA user_version").fetchone()[0] != 1:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE pending RENAME TO pending_v1")
        db.execute(_PENDING)
        db.execute("INSERT INTO pending SELECT seq, received_at, code, record_id, frame, attempts, last_error"
                   " FROM pending_v1 ORDER BY seq")
        counter = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'pending_v1'").fetchone()
        db.execute("DROP TABLE pending_v1")
        if counter is not None:
            db.execute("DELETE FROM sqlite_sequence WHERE name = 'pending'")
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('pending', ?)", counter)
        db.execute("PRAGMA user_version=2")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class SpoolClosed(RuntimeError):
    """The spool was closed at shutdown while another thread still held a reference."""


@dataclass(frozen=True)
class PendingFrame:
    seq: int
    received_at: float
    code: int | None
    record_id: str | None
    frame: str | bytes  # as spooled (the bridge spools text)
    attempts: int


class Spool:
    """One connection shared by the receive loop and the forwarder thread, behind a lock.

    Every write runs in autocommit mode with synchronous=FULL, so a method returning means the
    change is on disk: a frame acknowledged by `add` survives a SIGKILL or a power cut.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"spool {path}: WAL journal mode unavailable (got {mode})")
        # WAL's default NORMAL may lose the last commits on power loss; FULL syncs every commit.
        self._db.execute("PRAGMA synchronous=FULL")
        _migrate_v1(self._db)
        self._db.execute(_PENDING)
        self._db.execute(_REJECTED)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._pending = self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise SpoolClosed(self.path)
        return self._db

    @property
    def pending(self) -> int:
        return self._pending

    def add(self, frame: str | bytes, code: int | None, record_id: str | None,
            received_at: float | None = None) -> tuple[int, int]:
        """Store a frame to forward; returns (seq, pending depth) once it is committed."""
        with self._lock:
            cursor = self._conn().execute(
                "INSERT INTO pending (received_at, code, record_id, frame) VALUES (?, ?, ?, ?)",
                (time.time() if received_at is None else received_at, code, record_id, frame))
            self._pending += 1
            return int(cursor.lastrowid or 0), self._pending

    def oldest(self) -> PendingFrame | None:
        with self._lock:
            row = self._conn().execute(
                "SELECT seq, received_at, code, record_id, frame, attempts FROM pending ORDER BY seq LIMIT 1"
            ).fetchone()
        return PendingFrame(*row) if row else None

    def delete(self, seq: int) -> int:
        """Forget a delivered frame; returns the pending depth."""
        with self._lock:
            deleted = self._conn().execute("DELETE FROM pending WHERE seq = ?", (seq,)).rowcount
            self._pending -= deleted
            return self._pending

    def note_failure(self, seq: int, error: str) -> None:
        with self._lock:
            self._conn().execute(
                "UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE seq = ?", (error[:200], seq))

    def reject(self, seq: int, status: int | None, reason: str) -> int:
        """Move a pending frame the gateway refused for good to `rejected`; returns the pending depth."""
        with self._lock:
            db = self._conn()
            # One transaction: a crash between the copy and the delete would otherwise keep the
            # frame in both tables and send it again after restart.
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO rejected (pending_seq, received_at, rejected_at, code, record_id, status, reason,"
                    " frame) SELECT seq, received_at, ?, code, record_id, ?, ?, frame FROM pending WHERE seq = ?",
                    (time.time(), status, reason[:500], seq))
                deleted = db.execute("DELETE FROM pending WHERE seq = ?", (seq,)).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._pending -= deleted
            return self._pending

    def reject_frame(self, frame: str | bytes, code: int | None, record_id: str | None, reason: str) -> None:
        """Keep a frame that is not forwardable at all (junk, unknown code) for an operator."""
        now = time.time()
        with self._lock:
            self._conn().execute(
                "INSERT INTO rejected (pending_seq, received_at, rejected_at, code, record_id, status, reason, frame)"
                " VALUES (NULL, ?, ?, ?, ?, NULL, ?, ?)", (now, now, code, record_id, reason[:500], frame))

    def requeue(self, status: int | None = None) -> int:
        """Move refused frames (those that came from `pending`, optionally of one HTTP status)
        back to the end of the queue, in their original order. Returns how many moved."""
        where = "pending_seq IS NOT NULL" + (" AND status = ?" if status is not None else "")
        params: tuple[Any, ...] = (status,) if status is not None else ()
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT INTO pending (received_at, code, record_id, frame) SELECT received_at, code, "
                           f"record_id, CAST(frame AS TEXT) FROM rejected WHERE {where} ORDER BY seq", params)
                moved = db.execute(f"DELETE FROM rejected WHERE {where}", params).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._pending += moved
            return moved

    def counts(self) -> tuple[int, int]:
        with self._lock:
            rejected = self._conn().execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
            return self._pending, rejected

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return _stats(self._conn(), self.path)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _stats(db: sqlite3.Connection, path: str) -> dict[str, Any]:
    now = time.time()
    pending, oldest_at, newest_at = db.execute(
        "SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM pending").fetchone()
    head = db.execute("SELECT attempts, last_error FROM pending ORDER BY seq LIMIT 1").fetchone()
    rejected = db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
    by_status = {("none" if status is None else str(status)): count for status, count in db.execute(
        "SELECT status, COUNT(*) FROM rejected GROUP BY status ORDER BY status")}
    return {
        "spool": path,
        "pending": pending,
        "rejected": rejected,
        "oldest_pending_age_s": None if oldest_at is None else round(now - oldest_at, 3),
        "newest_pending_age_s": None if newest_at is None else round(now - newest_at, 3),
        "oldest_pending_attempts": head[0] if head else None,
        "oldest_pending_last_error": head[1] if head else None,
        "rejected_by_status": by_status,
    }


def read_stats(path: str) -> dict[str, Any]:
    """Spool figures for `senselink-bridge status`, without creating a spool that is not there."""
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"pending", "rejected"} <= tables:
            raise sqlite3.DatabaseError(f"{path} is not a SenseLink bridge spool")
        return _stats(db, path)
    finally:
        db.close()
