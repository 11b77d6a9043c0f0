"""A batch's rows of one write go as one statement of arrays (``postgres._arrays``): each row
is written as ``execute`` would write it alone, and a write that must hit its row fails the
statement when one row is not there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from workflowkit.worlds.postgres._arrays import write_rows

Conn = psycopg.AsyncConnection[tuple[Any, ...]]
AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
async def conn(pg_url: str, pg_schema: str) -> AsyncIterator[Conn]:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        await conn.execute(
            "CREATE TABLE t (id text PRIMARY KEY, n integer, at timestamptz, "
            "data bytea, flag boolean, note text)"
        )
        yield conn


async def rows(conn: Conn) -> list[tuple[Any, ...]]:
    cur = await conn.execute("SELECT id, n, at, data, flag, note FROM t ORDER BY id")
    return await cur.fetchall()


async def test_inserts_keep_each_rows_values_and_nulls(conn: Conn) -> None:
    insert = "INSERT INTO t (id, n, at, data, flag, note) VALUES (%s, %s, %s, %s, %s, 'x')"
    await write_rows(
        conn,
        insert,
        [("a", 1, AT, b"\x00\x01", True), ("b", None, None, None, False), ("c", 3, AT, b"", None)],
        must_hit=True,
    )
    assert await rows(conn) == [
        ("a", 1, AT, b"\x00\x01", True, "x"),
        ("b", None, None, None, False, "x"),
        ("c", 3, AT, b"", None, "x"),
    ]
    with pytest.raises(psycopg.errors.UniqueViolation):
        await write_rows(conn, insert, [("d", 1, AT, b"", True), ("a", 1, AT, b"", True)], True)


async def test_updates_and_deletes_hit_each_row_once(conn: Conn) -> None:
    await write_rows(
        conn,
        "INSERT INTO t (id, n) VALUES (%s, %s)",
        [("a", 1), ("b", 2), ("c", 3)],
        must_hit=True,
    )
    # A parameter None in every row is sent as NULL; one None in some rows as their NULL.
    await write_rows(
        conn,
        "UPDATE t SET n = coalesce(CAST(%s AS INTEGER), n + 10), at = %s, note = %s "
        "WHERE id = %s AND n = %s",
        [(None, None, "one", "a", 1), (None, None, None, "b", 2)],
        must_hit=True,
    )
    assert await rows(conn) == [
        ("a", 11, None, None, None, "one"),
        ("b", 12, None, None, None, None),
        ("c", 3, None, None, None, None),
    ]
    await write_rows(conn, "DELETE FROM t WHERE id = %s", [("a",), ("c",)], must_hit=True)
    assert [row[0] for row in await rows(conn)] == ["b"]


async def test_a_write_that_must_hit_fails_when_one_row_is_missing(conn: Conn) -> None:
    await write_rows(conn, "INSERT INTO t (id, n) VALUES (%s, %s)", [("a", 1), ("b", 2)], True)
    update = "UPDATE t SET n = %s WHERE id = %s AND n = %s"
    with pytest.raises(psycopg.errors.DivisionByZero):
        await write_rows(conn, update, [(5, "a", 1), (6, "b", 99)], must_hit=True)
    assert [row[1] for row in await rows(conn)] == [1, 2]  # one statement: nothing changed
    await write_rows(conn, update, [(5, "a", 1), (6, "b", 99)], must_hit=False)
    assert [row[1] for row in await rows(conn)] == [5, 2]


async def test_one_row_or_values_of_two_types_go_row_by_row(conn: Conn) -> None:
    insert = "INSERT INTO t (id, n, note) VALUES (%s, %s, %s)"
    await write_rows(conn, insert, [("a", 1, "x")], must_hit=True)
    # A parameter that is text in one row and a number in another fits no array type.
    await write_rows(conn, insert, [("b", 2, "y"), ("c", 3, 4)], must_hit=True)
    assert [(row[0], row[1], row[5]) for row in await rows(conn)] == [
        ("a", 1, "x"),
        ("b", 2, "y"),
        ("c", 3, "4"),
    ]
    with pytest.raises(psycopg.errors.DivisionByZero):
        await write_rows(conn, "UPDATE t SET n = %s WHERE id = %s", [(9, "zz")], must_hit=True)
