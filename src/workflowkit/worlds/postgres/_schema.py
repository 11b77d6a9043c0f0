"""Opening the PostgreSQL World: its URL, its connection pool, and its migrations."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..._settings import redact_url
from ...errors import ConfigurationError, WorldUnavailableError
from .. import _migrations
from ._transactions import Conn

DEFAULT_SCHEMA = "workflowkit"
MIGRATIONS = _migrations.load("workflowkit.worlds.postgres")
# One host of a URL's host list: a name or an IPv6 address in brackets, and a numeric port.
_HOST = re.compile(r"(\[[^\]]*\]|[^:\[\]/]*)(:[0-9]*)?")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_RECORD = _migrations.RECORD.replace("?", "%s")


def parse_url(url: str, schema: str | None = None) -> tuple[str, str]:
    """Split ``postgresql://...?schema=name`` into a libpq URL and the schema name.

    A URL of another form (a slash missing, a port that is not a number) is a
    ``ConfigurationError`` showing it with the password redacted: libpq's own errors
    would quote parts of it, password included.
    """
    shown = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ConfigurationError(f"not a PostgreSQL URL: {shown!r}")
    hosts = parts.netloc.rpartition("@")[2].split(",")  # libpq takes host:port,host:port
    if not url[len(parts.scheme) :].startswith("://") or not all(map(_HOST.fullmatch, hosts)):
        raise ConfigurationError(
            f"malformed PostgreSQL URL {shown!r}: write postgresql://user:password@host:port/"
            "database (with a /, ? or @ in the password written %2F, %3F, %40)"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != "schema"]
    from_url = [v for k, v in query if k == "schema"]
    name = schema or (from_url[-1] if from_url else DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.fullmatch(name):
        raise ConfigurationError(
            f"invalid schema name {name!r}: use lower-case letters, digits and underscores"
        )
    # Not urlunsplit: it drops the "//" of an empty host (postgresql:///db, the local socket).
    conninfo = f"postgresql://{parts.netloc}{parts.path}"
    if kept:
        conninfo += f"?{urlencode(kept)}"
    if parts.fragment:
        conninfo += f"#{parts.fragment}"
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
    except PoolTimeout:
        await pool.close()
        why = await _why_unreachable(conninfo, kwargs)
        raise WorldUnavailableError(
            f"PostgreSQL at {redact_url(conninfo)} could not be reached within {retry_for:g} s "
            f"(retry_for): {why}"
        ) from None
    except BaseException:
        await pool.close()
        raise
    return pool


async def _why_unreachable(conninfo: str, kwargs: dict[str, Any]) -> str:
    """What one more connection attempt says (the pool only logs its failures): the
    server's or the network's words, which name the host and user, never the password."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=5, **kwargs)
    except psycopg.Error as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    await conn.close()
    return "it answered only after the pool gave up"


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
