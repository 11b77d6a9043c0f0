"""Streams in the SQLite World: chunks live in their own tables, not the event log.

Each function runs inside a transaction (writes) or on the reader connection (reads) the
World hands it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from ...errors import StreamClosedError, WorkflowRunNotFoundError
from .._sql import VISIBLE_CHUNK
from ..records import (
    ChunkKind,
    ChunkWriter,
    NewChunk,
    RunStatus,
    StreamChange,
    StreamChunk,
    StreamInfo,
    StreamPage,
)


def write(
    conn: sqlite3.Connection,
    run_id: str,
    name: str,
    chunks: Sequence[NewChunk],
    writer: ChunkWriter | None,
    close: bool,
    now: float,
) -> StreamChange:
    run = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if run is None:
        raise WorkflowRunNotFoundError(run_id)
    if RunStatus(run[0]).terminal:
        raise StreamClosedError(run_id, name, f"the run is {run[0]}")
    row = conn.execute(
        "SELECT length, closed_at FROM streams WHERE run_id = ? AND name = ?", (run_id, name)
    ).fetchone()
    if row is not None and row[1] is not None:
        if not chunks and close:
            return StreamChange(run_id, name, int(row[0]), True)  # closing twice is fine
        raise StreamClosedError(run_id, name)
    length = 0 if row is None else int(row[0])
    step_id, attempt = (writer.step_id, writer.attempt) if writer else (None, None)
    conn.executemany(
        "INSERT INTO stream_chunks (run_id, name, idx, kind, data, step_id, attempt, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (run_id, name, length + i, str(c.kind), c.data, step_id, attempt, now)
            for i, c in enumerate(chunks)
        ],
    )
    length += len(chunks)
    closed_at = now if close else None
    conn.execute(
        "INSERT INTO streams (run_id, name, length, closed_at, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET "
        "length = excluded.length, closed_at = excluded.closed_at, "
        "updated_at = excluded.updated_at",
        (run_id, name, length, closed_at, now, now),
    )
    return StreamChange(run_id, name, length, close)


def read(
    conn: sqlite3.Connection, run_id: str, name: str, start_index: int, limit: int
) -> StreamPage:
    run = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if run is None:
        raise WorkflowRunNotFoundError(run_id)
    row = conn.execute(
        "SELECT length, closed_at FROM streams WHERE run_id = ? AND name = ?", (run_id, name)
    ).fetchone()
    length, closed = (0, False) if row is None else (int(row[0]), row[1] is not None)
    closed = closed or RunStatus(run[0]).terminal
    start = _resolve_start(conn, run_id, name, start_index)
    end = min(start + limit, length)
    rows = conn.execute(
        f"SELECT c.idx, c.kind, c.data FROM stream_chunks c WHERE c.run_id = ? AND c.name = ? "
        f"AND c.idx >= ? AND c.idx < ? AND {VISIBLE_CHUNK} ORDER BY c.idx",
        (run_id, name, start, end),
    ).fetchall()
    chunks = [StreamChunk(int(r[0]), ChunkKind(r[1]), bytes(r[2])) for r in rows]
    next_index = max(start, end)
    return StreamPage(chunks, next_index, closed and next_index >= length)


def _resolve_start(conn: sqlite3.Connection, run_id: str, name: str, start_index: int) -> int:
    if start_index >= 0:
        return start_index
    row = conn.execute(
        f"SELECT c.idx FROM stream_chunks c WHERE c.run_id = ? AND c.name = ? AND {VISIBLE_CHUNK} "
        "ORDER BY c.idx DESC LIMIT 1 OFFSET ?",
        (run_id, name, -start_index - 1),
    ).fetchone()
    return 0 if row is None else int(row[0])


def list_streams(conn: sqlite3.Connection, run_id: str) -> list[StreamInfo]:
    rows = conn.execute(
        "SELECT s.name, s.length, s.closed_at, s.created_at, s.updated_at, r.status "
        "FROM streams s JOIN runs r ON r.run_id = s.run_id WHERE s.run_id = ? ORDER BY s.name",
        (run_id,),
    ).fetchall()
    return [
        StreamInfo(
            run_id,
            r[0],
            int(r[1]),
            r[2] is not None or RunStatus(r[5]).terminal,
            datetime.fromtimestamp(r[3], UTC),
            datetime.fromtimestamp(r[4], UTC),
        )
        for r in rows
    ]


def changed_since(conn: sqlite3.Connection, since: float) -> list[StreamChange]:
    rows = conn.execute(
        "SELECT run_id, name, length, closed_at FROM streams WHERE updated_at >= ?", (since,)
    ).fetchall()
    return [StreamChange(r[0], r[1], int(r[2]), r[3] is not None) for r in rows]
