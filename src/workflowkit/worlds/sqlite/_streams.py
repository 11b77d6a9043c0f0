"""Streams in the SQLite World: chunks live in their own tables, not the event log.

Each function runs inside the writer's transaction (writes) or on the reader connection
(reads). The rules are ``apply.may_write_stream``; the statements are in ``worlds._stream_sql``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from ...errors import WorkflowRunNotFoundError
from .. import _stream_sql
from .._rows import run_status, stream_change_from_row, stream_info_from_row, stream_page
from ..apply import may_write_stream
from ..records import ChunkWriter, NewChunk, StreamChange, StreamInfo, StreamPage


def _moment(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def write(
    conn: sqlite3.Connection,
    run_id: str,
    name: str,
    chunks: Sequence[NewChunk],
    writer: ChunkWriter | None,
    close: bool,
    now: float,
) -> StreamChange:
    head = conn.execute(_stream_sql.SELECT_STREAM_HEAD, (name, run_id)).fetchone()
    status = None if head is None else run_status(head[0])
    length = 0 if head is None else int(head[1] or 0)
    closed = head is not None and head[2] is not None
    if not may_write_stream(run_id, name, status, closed, bool(chunks), close):
        return StreamChange(run_id, name, length, True)
    conn.execute(_stream_sql.INSERT_STREAM, (run_id, name, now, now))
    conn.executemany(
        _stream_sql.INSERT_CHUNK, _stream_sql.chunk_rows(run_id, name, length, chunks, writer, now)
    )
    length += len(chunks)
    closed_at = now if close else None
    conn.execute(_stream_sql.UPDATE_STREAM, (length, now, closed_at, run_id, name))
    return StreamChange(run_id, name, length, close)


def read(
    conn: sqlite3.Connection, run_id: str, name: str, start_index: int, limit: int
) -> StreamPage:
    head = conn.execute(_stream_sql.SELECT_STREAM_HEAD, (name, run_id)).fetchone()
    if head is None:
        raise WorkflowRunNotFoundError(run_id)
    start = start_index
    if start_index < 0:
        row = conn.execute(_stream_sql.SELECT_FROM_END, (run_id, name, -start_index - 1)).fetchone()
        start = 0 if row is None else int(row[0])
    end = min(start + limit, int(head[1] or 0))
    rows = conn.execute(_stream_sql.SELECT_CHUNKS, (run_id, name, start, end)).fetchall()
    return stream_page(head, start, end, rows)


def list_streams(conn: sqlite3.Connection, run_id: str) -> list[StreamInfo]:
    rows = conn.execute(_stream_sql.SELECT_STREAMS, (run_id,)).fetchall()
    return [stream_info_from_row(run_id, row, _moment) for row in rows]


def changed_since(conn: sqlite3.Connection, since: float) -> list[StreamChange]:
    rows = conn.execute(_stream_sql.SELECT_CHANGED_STREAMS, (since,)).fetchall()
    return [stream_change_from_row(row) for row in rows]
