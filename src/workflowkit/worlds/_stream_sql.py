"""The streams' statements both Worlds share: heads, chunks, and which chunks readers see."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .records import ChunkWriter, NewChunk

# -- streams ---------------------------------------------------------------------------------

# The run's status, and the stream's length and closing time (NULL if it has no row yet).
SELECT_STREAM_HEAD = (
    "SELECT r.status, s.length, s.closed_at FROM runs r LEFT JOIN streams s "
    "ON s.run_id = r.run_id AND s.name = ? WHERE r.run_id = ?"
)
INSERT_STREAM = (
    "INSERT INTO streams (run_id, name, length, created_at, updated_at) "
    "VALUES (?, ?, 0, ?, ?) ON CONFLICT DO NOTHING"
)
INSERT_CHUNK = (
    "INSERT INTO stream_chunks (run_id, name, idx, kind, data, step_id, attempt, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_STREAM = (
    "UPDATE streams SET length = ?, updated_at = ?, closed_at = coalesce(closed_at, ?) "
    "WHERE run_id = ? AND name = ?"
)
SELECT_STREAMS = (
    "SELECT s.name, s.length, s.closed_at, s.created_at, s.updated_at, r.status "
    "FROM streams s JOIN runs r ON r.run_id = s.run_id WHERE s.run_id = ? ORDER BY s.name"
)
SELECT_CHANGED_STREAMS = "SELECT run_id, name, length, closed_at FROM streams WHERE updated_at >= ?"
# The condition (on stream_chunks aliased ``c``) for a chunk readers may see: written outside
# a step, or by the step's latest attempt while it runs or after it completed; never by a
# failed or abandoned attempt.
VISIBLE_CHUNK = (
    "(c.step_id IS NULL OR EXISTS (SELECT 1 FROM steps s WHERE s.run_id = c.run_id "
    "AND s.step_id = c.step_id AND s.attempt = c.attempt "
    "AND s.status IN ('running', 'completed')))"
)


SELECT_CHUNKS = (
    "SELECT c.idx, c.kind, c.data FROM stream_chunks c WHERE c.run_id = ? AND c.name = ? "
    f"AND c.idx >= ? AND c.idx < ? AND {VISIBLE_CHUNK} ORDER BY c.idx"
)
# The index of the n-th visible chunk from the end (``OFFSET`` n - 1).
SELECT_FROM_END = (
    "SELECT c.idx FROM stream_chunks c WHERE c.run_id = ? AND c.name = ? "
    f"AND {VISIBLE_CHUNK} ORDER BY c.idx DESC LIMIT 1 OFFSET ?"
)


def chunk_rows(
    run_id: str,
    name: str,
    start: int,
    chunks: Sequence[NewChunk],
    writer: ChunkWriter | None,
    at: Any,
) -> list[tuple[Any, ...]]:
    """``INSERT_CHUNK`` parameters for ``chunks`` written from index ``start`` on."""
    step_id, attempt = (writer.step_id, writer.attempt) if writer else (None, None)
    return [
        (run_id, name, start + i, str(c.kind), c.data, step_id, attempt, at)
        for i, c in enumerate(chunks)
    ]
