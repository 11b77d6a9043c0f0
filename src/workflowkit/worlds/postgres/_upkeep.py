"""The PostgreSQL World's upkeep: retention (expired runs, old webhook responses) and
re-encrypting stored payloads (``worlds._payload_sql``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .. import _payload_sql, _retention_sql
from ..records import RunStatus, StoredPayload
from ._dialect import DIALECT
from ._parts import WorldParts
from ._transactions import Conn, Outcome


class WorldUpkeep(WorldParts):
    """Deleting what retention expired, and swapping payloads for re-encryption."""

    async def expired_runs(
        self, ended_before: datetime, statuses: Sequence[RunStatus], limit: int
    ) -> list[str]:
        sql = _retention_sql.expired(DIALECT, len(statuses))
        params = (*(str(s) for s in statuses), ended_before, limit)

        async def read(conn: Conn) -> list[str]:
            cur = await conn.execute(sql, params)
            return [row[0] for row in await cur.fetchall()]

        result: list[str] = await self._read(read, "expired_runs")
        return result

    async def delete_runs(self, run_ids: Sequence[str]) -> list[str]:
        async def body(conn: Conn, retry: bool) -> Outcome:
            cur = await conn.execute(_retention_sql.ended(DIALECT, " FOR UPDATE"), (list(run_ids),))
            ended = [row[0] for row in await cur.fetchall()]
            for statement in _retention_sql.deletes(DIALECT):
                await conn.execute(statement, (ended,))
            return Outcome(ended)

        # Deleting again what is gone deletes nothing: safe to repeat after a lost commit.
        coro = self._db.transaction(body, what="delete_runs", idempotent=True)
        deleted: list[str] = await self._call(coro)
        return deleted

    async def purge_webhook_responses(self, before: datetime) -> int:
        async def body(conn: Conn, retry: bool) -> Outcome:
            cur = await conn.execute(DIALECT.sql(_retention_sql.PURGE_RESPONSES), (before,))
            return Outcome(cur.rowcount)

        coro = self._db.transaction(body, what="purge_webhook_responses", idempotent=True)
        count: int = await self._call(coro)
        return count

    async def scan_payloads(
        self, place: str, after: Sequence[Any] | None, skip_prefix: bytes, limit: int
    ) -> list[StoredPayload]:
        spec = _payload_sql.PLACES[place]
        sql, params = _payload_sql.scan(spec, after, skip_prefix, limit, "%s")

        async def read(conn: Conn) -> list[StoredPayload]:
            cur = await conn.execute(sql, params)
            return [_payload_sql.row_payload(spec, r) for r in await cur.fetchall()]

        return await self._read(read, "scan_payloads")

    async def swap_payloads(self, swaps: Sequence[tuple[StoredPayload, bytes, str | None]]) -> int:
        async def body(conn: Conn, retry: bool) -> Outcome:
            done = 0
            for old, data, kind in swaps:
                spec = _payload_sql.PLACES[old.place]
                params = _payload_sql.swap_params(spec, old, data, kind)
                cur = await conn.execute(_payload_sql.swap(spec, "%s"), params)
                done += cur.rowcount
            return Outcome(done)

        # A compare-and-swap: repeating it after a lost commit changes nothing.
        coro = self._db.transaction(body, what="swap_payloads", idempotent=True)
        swapped: int = await self._call(coro)
        return swapped
