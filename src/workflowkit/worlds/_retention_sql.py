"""The statements both Worlds use to forget ended runs (``Retention``).

A run is forgotten whole: its row and everything keyed by its id. Only a run that has ended
is ever touched, whatever ids a caller passes: the ended ones are picked again, under the
runs' locks, in the transaction that deletes them.
"""

from __future__ import annotations

import functools

from ._sql import Dialect

_ENDED = "('completed', 'failed', 'cancelled')"
# Every table keyed by a run's id, children before the run's own row.
_RUN_TABLES = ("events", "steps", "waits", "hooks", "stream_chunks", "streams")


@functools.cache
def expired(dialect: Dialect, statuses: int) -> str:
    """Runs in the given statuses (ended ones) that ended before a time, oldest first.
    Params: the statuses (``statuses`` of them), the time, the limit."""
    marks = ", ".join("?" for _ in range(statuses))
    return dialect.sql(
        f"SELECT run_id FROM runs WHERE status IN ({marks}) AND completed_at < ? "
        "ORDER BY completed_at LIMIT ?"
    )


@functools.cache
def ended(dialect: Dialect, lock: str = "") -> str:
    """Of the listed runs, those that have ended. Params: run ids."""
    return dialect.sql(
        f"SELECT run_id FROM runs WHERE run_id {dialect.in_list} AND status IN {_ENDED} "
        f"ORDER BY run_id{lock}"
    )


@functools.cache
def deletes(dialect: Dialect) -> tuple[str, ...]:
    """One DELETE per table, of the listed runs' rows. Params: run ids."""
    return tuple(
        dialect.sql(f"DELETE FROM {table} WHERE run_id {dialect.in_list}")
        for table in (*_RUN_TABLES, "runs")
    )


PURGE_RESPONSES = "DELETE FROM webhook_responses WHERE created_at < ?"
