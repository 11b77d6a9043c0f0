"""Streams in the PostgreSQL World: chunk tables and their queries.

Writers of one stream serialise on its ``streams`` row (``FOR UPDATE``), so indexes stay
dense and in commit order. Each function runs inside the World's transaction or read. The
rules are ``apply.may_write_stream``; the statements are in ``worlds._stream_sql``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ...errors import WorkflowRunNotFoundError
from .. import _stream_sql
from .._rows import run_status, stream_change_from_row, stream_info_from_row, stream_page
from ..apply import may_write_stream
from ..records import ChunkWriter, NewChunk, StreamChange, StreamInfo, StreamPage
from ._dialect import DIALECT, moment
from ._transactions import Conn

_q = DIALECT.sql


async def write(
    conn: Conn,
    run_id: str,
    name: str,
    chunks: Sequence[NewChunk],
    writer: ChunkWriter | None,
    close: bool,
    now: float,
) -> tuple[StreamChange, int]:
    """Append and maybe close; the change and the index of the first chunk written."""
    cur = await conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
    run = await cur.fetchone()
    at = DIALECT.time(now)
    await conn.execute(_q(_stream_sql.INSERT_STREAM), (run_id, name, at, at))
    cur = await conn.execute(
        "SELECT length, closed_at FROM streams WHERE run_id = %s AND name = %s FOR UPDATE",
        (run_id, name),
    )
    row = await cur.fetchone()
    assert row is not None
    start = int(row[0])
    status = None if run is None else run_status(run[0])
    if not may_write_stream(run_id, name, status, row[1] is not None, bool(chunks), close):
        return StreamChange(run_id, name, start, True), start
    if chunks:
        async with conn.cursor() as cursor:
            rows = _stream_sql.chunk_rows(run_id, name, start, chunks, writer, at)
            await cursor.executemany(_q(_stream_sql.INSERT_CHUNK), rows)
    length = start + len(chunks)
    await conn.execute(
        _q(_stream_sql.UPDATE_STREAM), (length, at, at if close else None, run_id, name)
    )
    return StreamChange(run_id, name, length, close), start


async def committed(
    conn: Conn, run_id: str, name: str, start: int, first: NewChunk, writer: ChunkWriter | None
) -> bool:
    """After a lost COMMIT: whether the write whose first chunk went to ``start`` landed."""
    cur = await conn.execute(
        "SELECT kind, data, step_id, attempt FROM stream_chunks "
        "WHERE run_id = %s AND name = %s AND idx = %s",
        (run_id, name, start),
    )
    row = await cur.fetchone()
    if row is None:
        return False
    expected = (writer.step_id, writer.attempt) if writer else (None, None)
    return (row[0], bytes(row[1]), (row[2], row[3])) == (str(first.kind), first.data, expected)


async def read(conn: Conn, run_id: str, name: str, start_index: int, limit: int) -> StreamPage:
    cur = await conn.execute(_q(_stream_sql.SELECT_STREAM_HEAD), (name, run_id))
    head = await cur.fetchone()
    if head is None:
        raise WorkflowRunNotFoundError(run_id)
    start = start_index
    if start_index < 0:
        cur = await conn.execute(
            _q(_stream_sql.SELECT_FROM_END).encode(), (run_id, name, -start_index - 1)
        )
        row = await cur.fetchone()
        start = 0 if row is None else int(row[0])
    end = min(start + limit, int(head[1] or 0))
    cur = await conn.execute(_q(_stream_sql.SELECT_CHUNKS).encode(), (run_id, name, start, end))
    return stream_page(head, start, end, await cur.fetchall())


async def list_streams(conn: Conn, run_id: str) -> list[StreamInfo]:
    cur = await conn.execute(_q(_stream_sql.SELECT_STREAMS), (run_id,))
    return [stream_info_from_row(run_id, row, moment) for row in await cur.fetchall()]


async def changed_since(conn: Conn, since: datetime) -> list[StreamChange]:
    cur = await conn.execute(_q(_stream_sql.SELECT_CHANGED_STREAMS), (since,))
    return [stream_change_from_row(row) for row in await cur.fetchall()]
