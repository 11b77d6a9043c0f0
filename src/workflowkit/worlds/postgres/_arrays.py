"""Many rows of one write as one statement: each parameter goes as one binary array.

``executemany`` sends a Bind and an Execute per row, and psycopg's Python work for each was
most of a worker's time writing a burst (a batch of 128 appends holds some 400 events and
as many step and run updates): for 100 events, about 2.3 ms of client CPU that way, 3.1 ms
as text arrays (psycopg writes them element by element through a regex), 0.65 ms as binary
ones. So a batch's rows of one statement go as one ``INSERT ... SELECT FROM unnest``,
``UPDATE ... FROM unnest`` or ``DELETE ... USING unnest``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ._transactions import Conn

# The array type of a parameter, by the Python type of its values. A parameter that is None
# in every row is written as NULL in the statement: it has no type to send.
_TYPES: dict[type, str] = {
    str: "text",
    int: "int8",
    bool: "bool",
    float: "float8",
    bytes: "bytea",
    datetime: "timestamptz",
}
_PLACEHOLDER = re.compile(r"%s")


async def write_rows(
    conn: Conn, query: str, rows: Sequence[tuple[Any, ...]], must_hit: bool
) -> None:
    """Queue ``query`` (an INSERT, UPDATE or DELETE with ``%s`` parameters) for every row, as
    one statement (a single row as it is). With ``must_hit``, an UPDATE or DELETE fails
    (division by zero) unless every row hit one (an INSERT fails on its own when its row
    exists)."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    try:
        types = tuple(_type_of(column) for column in columns)
    except _Mixed:  # values of two types for one parameter: no one array type fits
        types = None
    if len(rows) == 1 or types is None:
        alone = _one_must_hit(query) if must_hit else query
        for row in rows:
            await conn.execute(alone.encode(), row)
        return
    statement = _statement(query, types, must_hit)
    params: list[Any] = [column for column, kind in zip(columns, types, strict=True) if kind]
    if must_hit and not query.startswith("INSERT"):
        params.append(len(rows))
    await conn.execute(statement, params)


class _Mixed(Exception):
    pass


def _type_of(column: list[Any]) -> str | None:
    kinds = {type(value) for value in column if value is not None}
    if len(kinds) > 1:
        raise _Mixed
    return _TYPES[kinds.pop()] if kinds else None


@functools.cache
def _statement(query: str, types: tuple[str | None, ...], must_hit: bool) -> str:
    names = iter(range(1, len(types) + 1))
    body = _PLACEHOLDER.sub(lambda _: _column(next(names), types), query)
    typed = [(number, kind) for number, kind in enumerate(types, 1) if kind]
    arrays = ", ".join(f"%b::{kind}[]" for _, kind in typed)
    source = f"unnest({arrays}) AS v({', '.join(f'p{number}' for number, _ in typed)})"
    if body.startswith("INSERT"):
        head, _, values = body.partition(" VALUES (")
        return f"{head} SELECT {values.removesuffix(')')} FROM {source}"
    head, _, where = body.partition(" WHERE ")
    joined = "USING" if body.startswith("DELETE") else "FROM"
    statement = f"{head} {joined} {source} WHERE {where}"
    if not must_hit:
        return statement
    return f"WITH hit AS ({statement} RETURNING 1) SELECT 1 / (count(*) = %s)::int FROM hit"


@functools.cache
def _one_must_hit(query: str) -> str:
    """``query`` for one row, failing (division by zero) unless it changes a row."""
    if query.startswith(("UPDATE", "DELETE")):
        return f"WITH hit AS ({query} RETURNING 1) SELECT 1 / count(*) FROM hit"
    return query


def _column(number: int, types: tuple[str | None, ...]) -> str:
    return f"v.p{number}" if types[number - 1] else "NULL"
