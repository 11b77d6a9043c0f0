"""Streams in the PostgreSQL World: chunk tables and their queries.

Writers of one stream serialise on its ``streams`` row (``FOR UPDATE``), so indexes stay
dense and in commit order. Each function runs inside the World's transaction or read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

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

Conn = AsyncConnection[tuple[Any, ...]]


async def write(
    conn: Conn,
    run_id: str,
    name: str,
    chunks: Sequence[NewChunk],
    writer: ChunkWriter | None,
    close: bool,
) -> tuple[StreamChange, int]:
    """Append and maybe close; the change and the index of the first chunk written."""
    cur = await conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
    run = await cur.fetchone()
    if run is None:
        raise WorkflowRunNotFoundError(run_id)
    if RunStatus(run[0]).terminal:
        raise StreamClosedError(run_id, name, f"the run is {run[0]}")
    await conn.execute(
        "INSERT INTO streams (run_id, name, length, created_at, updated_at) "
        "VALUES (%s, %s, 0, clock_timestamp(), clock_timestamp()) ON CONFLICT DO NOTHING",
        (run_id, name),
    )
    cur = await conn.execute(
        "SELECT length, closed_at FROM streams WHERE run_id = %s AND name = %s FOR UPDATE",
        (run_id, name),
    )
    row = await cur.fetchone()
    assert row is not None
    start = int(row[0])
    if row[1] is not None:
        if not chunks and close:
            return StreamChange(run_id, name, start, True), start  # closing twice is fine
        raise StreamClosedError(run_id, name)
    step_id, attempt = (writer.step_id, writer.attempt) if writer else (None, None)
    if chunks:
        async with conn.cursor() as batch:
            await batch.executemany(
                "INSERT INTO stream_chunks (run_id, name, idx, kind, data, step_id, attempt, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, clock_timestamp())",
                [
                    (run_id, name, start + i, str(c.kind), c.data, step_id, attempt)
                    for i, c in enumerate(chunks)
                ],
            )
    length = start + len(chunks)
    await conn.execute(
        "UPDATE streams SET length = %s, updated_at = clock_timestamp(), "
        "closed_at = CASE WHEN %s THEN clock_timestamp() ELSE closed_at END "
        "WHERE run_id = %s AND name = %s",
        (length, close, run_id, name),
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
    cur = await conn.execute(
        "SELECT r.status, s.length, s.closed_at FROM runs r LEFT JOIN streams s "
        "ON s.run_id = r.run_id AND s.name = %s WHERE r.run_id = %s",
        (name, run_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise WorkflowRunNotFoundError(run_id)
    length = int(row[1] or 0)
    closed = row[2] is not None or RunStatus(row[0]).terminal
    start = await _resolve_start(conn, run_id, name, start_index)
    end = min(start + limit, length)
    cur = await conn.execute(
        f"SELECT c.idx, c.kind, c.data FROM stream_chunks c WHERE c.run_id = %s "
        f"AND c.name = %s AND c.idx >= %s AND c.idx < %s AND {VISIBLE_CHUNK} "
        "ORDER BY c.idx".encode(),
        (run_id, name, start, end),
    )
    chunks = [StreamChunk(int(r[0]), ChunkKind(r[1]), bytes(r[2])) for r in await cur.fetchall()]
    next_index = max(start, end)
    return StreamPage(chunks, next_index, closed and next_index >= length)


async def _resolve_start(conn: Conn, run_id: str, name: str, start_index: int) -> int:
    if start_index >= 0:
        return start_index
    cur = await conn.execute(
        "SELECT c.idx FROM stream_chunks c WHERE c.run_id = %s AND c.name = %s "
        f"AND {VISIBLE_CHUNK} ORDER BY c.idx DESC LIMIT 1 OFFSET %s".encode(),
        (run_id, name, -start_index - 1),
    )
    row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def list_streams(conn: Conn, run_id: str) -> list[StreamInfo]:
    cur = await conn.execute(
        "SELECT s.name, s.length, s.closed_at, s.created_at, s.updated_at, r.status "
        "FROM streams s JOIN runs r ON r.run_id = s.run_id WHERE s.run_id = %s ORDER BY s.name",
        (run_id,),
    )
    return [
        StreamInfo(
            run_id,
            r[0],
            int(r[1]),
            r[2] is not None or RunStatus(r[5]).terminal,
            r[3].astimezone(UTC),
            r[4].astimezone(UTC),
        )
        for r in await cur.fetchall()
    ]


async def changed_since(conn: Conn, since: datetime) -> list[StreamChange]:
    cur = await conn.execute(
        "SELECT run_id, name, length, closed_at FROM streams "
        "WHERE updated_at >= %s - interval '5 seconds'",
        (since,),
    )
    return [StreamChange(r[0], r[1], int(r[2]), r[3] is not None) for r in await cur.fetchall()]
