"""Where a World stores payloads, for ``workflowkit reencrypt``: every column holding one,
read in key order a bounded batch at a time, and rewritten only where it still holds the
bytes that were read (a compare-and-swap, so a write racing with it is never undone).

Every payload lives in one of four columns: ``events.payload`` (run inputs and results,
step inputs, results and errors, hook metadata and payloads: the runs, steps and hooks rows
point into the log), ``stream_chunks.data``, ``webhook_responses.payload`` and
``schedules.input``. The statements are the same on SQLite and PostgreSQL but for the
placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .records import StoredPayload


@dataclass(frozen=True, slots=True)
class Place:
    table: str
    keys: tuple[str, ...]
    column: str
    kind: bool = False  # stream chunks: the kind column is swapped with the data


PLACES = {
    "events": Place("events", ("run_id", "seq"), "payload"),
    "stream_chunks": Place("stream_chunks", ("run_id", "name", "idx"), "data", kind=True),
    "webhook_responses": Place("webhook_responses", ("reply_to",), "payload"),
    "schedules": Place("schedules", ("schedule_id",), "input"),
}


def scan(
    place: Place, after: Sequence[Any] | None, skip_prefix: bytes, limit: int, mark: str
) -> tuple[str, tuple[Any, ...]]:
    """The next ``limit`` payloads after the key ``after`` that do not start with
    ``skip_prefix`` (those sealed with the active key already)."""
    keys = ", ".join(place.keys)
    kind = ", kind" if place.kind else ""
    where = [f"{place.column} IS NOT NULL", f"substr({place.column}, 1, {len(skip_prefix)}) <> ?"]
    params: list[Any] = [skip_prefix]
    if after is not None:
        where.append(f"({keys}) > ({', '.join('?' * len(place.keys))})")
        params.extend(after)
    sql = (
        f"SELECT {keys}, {place.column}{kind} FROM {place.table} WHERE {' AND '.join(where)} "
        f"ORDER BY {keys} LIMIT ?"
    )
    return sql.replace("?", mark), (*params, limit)


def row_payload(place: Place, row: Sequence[Any]) -> StoredPayload:
    n = len(place.keys)
    kind = str(row[n + 1]) if place.kind else None
    return StoredPayload(place.table, tuple(row[:n]), bytes(row[n]), kind)


def swap(place: Place, mark: str) -> str:
    """Set the payload (and a chunk's kind) where the row still holds what was read."""
    match = " AND ".join(f"{k} = ?" for k in place.keys)
    sets = f"{place.column} = ?" + (", kind = ?" if place.kind else "")
    same = f"{place.column} = ?" + (" AND kind = ?" if place.kind else "")
    return f"UPDATE {place.table} SET {sets} WHERE {match} AND {same}".replace("?", mark)


def swap_params(place: Place, old: StoredPayload, data: bytes, kind: str | None) -> tuple[Any, ...]:
    new = (data, kind) if place.kind else (data,)
    same = (old.data, old.kind) if place.kind else (old.data,)
    return (*new, *old.key, *same)
