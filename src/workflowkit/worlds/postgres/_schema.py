"""Opening the PostgreSQL World: its URL, its connection pool, and its migrations."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from .. import _migrations
from ._transactions import Conn

DEFAULT_SCHEMA = "workflowkit"
MIGRATIONS = _migrations.load("workflowkit.worlds.postgres")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_RECORD = _migrations.RECORD.replace("?", "%s")


def parse_url(url: str, schema: str | None = None) -> tuple[str, str]:
    """Split ``postgresql://...?schema=name`` into a libpq URL and the schema name."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != "schema"]
    from_url = [v for k, v in query if k == "schema"]
    name = schema or (from_url[-1] if from_url else DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.fullmatch(name):
        raise ValueError(
            f"invalid schema name {name!r}: use lower-case letters, digits and underscores"
        )
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(kept), parts.fragment))
    return conninfo, name


def connect_kwargs(schema: str, idle_in_transaction_timeout: float) -> dict[str, Any]:
    # A client frozen inside a transaction (SIGSTOP, a VM paused) would hold its row locks
    # for as long as it stays frozen, and claims skip locked runs: the server ends such a
    # session after this long, so its runs can be taken over.
    idle_ms = max(1, int(idle_in_transaction_timeout * 1000))
    return {
        "autocommit": True,
        "options": f"-c search_path={schema} -c TimeZone=UTC "
        f"-c idle_in_transaction_session_timeout={idle_ms}",
    }


async def open_pool(
    conninfo: str, kwargs: dict[str, Any], schema: str, sizes: tuple[int, int], retry_for: float
) -> AsyncConnectionPool[Conn]:
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        conninfo,
        min_size=sizes[0],
        max_size=sizes[1],
        kwargs=kwargs,
        # Waiting for a connection counts against the retry budget: with the pool's own
        # default (30 s) a call could wait that long before its retries even began.
        timeout=retry_for,
        open=False,
        name=f"workflowkit-{schema}",
    )
    try:
        await pool.open(wait=True, timeout=retry_for)
    except BaseException:
        await pool.close()
        raise
    return pool


async def migrate(conn: Conn, schema: str, lock: str) -> None:
    """Apply the migrations the schema lacks (inside the caller's transaction)."""
    # Serialise concurrent starters (several workers booting at once).
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
    await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (version integer PRIMARY KEY, "
        "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM migrations")
    row = await cur.fetchone()
    where = f"PostgreSQL schema {schema!r}"
    for migration in _migrations.to_apply(MIGRATIONS, int(row[0]) if row else 0, where):
        _migrations.note(migration, where)
        await conn.execute(migration.sql.encode())
        await conn.execute(_RECORD, (migration.version, migration.name))
