"""Opening the SQLite file: connections, WAL mode, migrations, and the WAL checkpointer.

Files written before migration files existed (a ``meta`` table saying ``schema`` 2 to 4)
are adopted: brought to schema 4 in place, then recorded as having migration 1, which
creates exactly that schema.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

from ...errors import CorruptDataError, WorldOpenError
from .. import _migrations
from ._threads import retry_busy

MIGRATIONS = _migrations.load("workflowkit.worlds.sqlite")
# Past this size the checkpointer truncates the WAL (see ``Checkpointer``).
WAL_LIMIT_BYTES = 16 * 1024 * 1024

# Columns that schemas 2 and 3 lack, to adopt such files.
_LEGACY_COLUMNS = (
    ("steps", "executor", "TEXT"),
    ("steps", "lease_until", "REAL"),
    ("steps", "queued_at", "REAL"),
)


BUSY_TIMEOUT_MS = 5000  # how long a statement waits for another process's lock


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


def prepare(path: Path) -> None:
    """Make ``path`` a database of the current schema (WAL mode, migrations applied).

    A file SQLite cannot open or read (not a database, damaged, a directory, unreadable)
    is a ``WorldOpenError`` naming it, not a bare ``sqlite3`` error.
    """
    try:
        conn = connect(path)
        try:
            retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"), what="enable WAL")
            retry_busy(lambda: _migrate(conn, path), what="migrate")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise WorldOpenError(str(path), f"{type(exc).__name__}: {exc}") from exc


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")  # the migration lock: one process at a time
    try:
        applied = _applied(conn, path)
        for migration in _migrations.to_apply(MIGRATIONS, applied, str(path)):
            _migrations.note(migration, str(path))
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(_migrations.RECORD, (migration.version, migration.name))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _applied(conn: sqlite3.Connection, path: Path) -> int:
    """The latest migration applied (0 for a new file), adopting a pre-migrations file."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    if "migrations" in tables:
        row = conn.execute("SELECT max(version) FROM migrations").fetchone()
        return int(row[0] or 0)
    if "meta" not in tables:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    _adopt(conn, path, int(row[0]) if row else 0)
    conn.execute(_migrations.RECORD, (1, MIGRATIONS[0].name))
    return 1


def _adopt(conn: sqlite3.Connection, path: Path, schema: int) -> None:
    if schema > 4:
        raise CorruptDataError(
            f"{path} was written by a newer workflowkit (schema {schema}): upgrade workflowkit"
        )
    if schema < 2:
        raise CorruptDataError(
            f"{path} was written by a pre-release development version of workflowkit (schema "
            f"{schema}) that has no migration: delete the file to start afresh"
        )
    for table, column, kind in _LEGACY_COLUMNS:
        present = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    conn.execute("DROP TABLE meta")


def _statements(script: str) -> list[str]:
    """A script's statements (``executescript`` would commit the migration's transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if not current and line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


class Checkpointer:
    """Copies the WAL back into the database file, off every writer's path.

    A passive checkpoint never catches up with a writer that never pauses, and the WAL
    starts over only once one has: under steady load it would grow without bound. Past
    ``WAL_LIMIT_BYTES`` the checkpointer finishes the job and truncates; the passive pass
    has already copied nearly everything, so writers wait only briefly.
    """

    def __init__(self, path: Path, interval: float) -> None:
        self._path = path
        self._wal = path.with_name(path.name + "-wal")
        self._interval = interval
        # The WAL was past its limit at the last look and is not truncated yet: writers
        # should leave the GIL and the write lock room for the checkpoint (``caught_up``).
        self._behind = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="workflowkit-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        conn = connect(self._path)
        # A blocking checkpoint holds new writers back while it waits for readers: give up
        # soon and try again next time rather than stall the writers for long.
        conn.execute("PRAGMA busy_timeout = 100")
        try:
            while not self._stop.wait(self._interval):
                self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    def caught_up(self) -> bool:
        """Whether the WAL was within its limit at the last look (thread-safe)."""
        return not self._behind

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            if _file_size(self._wal) > WAL_LIMIT_BYTES:
                self._behind = True
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._behind = False


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
