"""Listing runs: filters, the page cursor an index serves, and id prefixes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._sql import RUN_COLUMNS, Dialect
from .records import RunQuery


def list_runs(
    dialect: Dialect, query: RunQuery, *, few_prefixed: bool = True
) -> tuple[str, tuple[Any, ...]]:
    """Runs newest first (by creation time, then id), filtered, paged after ``before``.

    The page cursor is a range an index serves (with a million runs, a page deep down reads
    about a page of index entries, not every run above it): "created at or before the
    cursor run, and not after it among runs created at the same time". So is an id prefix
    that ``few_prefixed`` ids have (``PREFIX_PROBE`` tells): ``prefix <= id < next(prefix)``,
    the few sorted by time; a prefix many ids have is instead checked on the runs read in
    time order, as a page of them comes soon.
    """
    clauses: list[str] = []
    params: list[Any] = []
    low, high = _prefix_range(query.id_prefix) if few_prefixed else (None, None)
    run_id = dialect.by_code_point.format("r.run_id")
    for clause, value in (
        ("r.workflow_name = ?", query.workflow_name),
        ("r.status = ?", None if query.status is None else str(query.status)),
        ("r.parent_run_id = ?", query.parent_run_id),
        ("r.created_at >= ?", _when(dialect, query.since)),
        ("r.created_at < ?", _when(dialect, query.until)),
        (f"{run_id} >= ?", low),
        (f"{run_id} < ?", high),
        ("substr(r.run_id, 1, length(?)) = ?", query.id_prefix if not high else None),
        ("r.queue = ?", query.queue),
        ("r.queue_key = ?", query.key),
        ("r.forked_from = ?", query.forked_from),
        # Parked: diverged and not ended (a run cancelled while parked keeps its mark).
        (f"r.diverged IS NOT NULL AND r.status IN {_ACTIVE}", True if query.diverged else None),
        (
            f"(r.diverged IS NULL OR r.status NOT IN {_ACTIVE})",
            True if query.diverged is False else None,
        ),
        (
            f"r.created_at <= ({_CURSOR_TIME}) AND (r.created_at < ({_CURSOR_TIME}) "
            "OR r.run_id < ?)",
            query.before,
        ),
    ):
        if value is not None:
            clauses.append(clause)
            params.extend([value] * clause.count("?"))  # none for a test without parameters
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    order = "ORDER BY r.created_at DESC, r.run_id DESC"
    if query.id_prefix and not few_prefixed:
        # Ids first, from the index alone (the prefix is checked on each entry read), then
        # the page's rows: reading every row on the way was 5 times slower.
        ids = f"SELECT r.run_id FROM runs r {where}{order} LIMIT ?"
        sql = f"SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_id IN ({ids}) {order}"
    else:
        sql = f"SELECT {RUN_COLUMNS} FROM runs r {where}{order} LIMIT ?"
    return dialect.sql(sql), (*params, query.limit)


_ACTIVE = "('pending', 'running')"
_CURSOR_TIME = "SELECT b.created_at FROM runs b WHERE b.run_id = ?"

# How many ids with a prefix are "few": sorting that many by time is quick.
FEW_PREFIXED = 1000


def prefix_probe(dialect: Dialect) -> str:
    """Counts ids in a prefix's range, up to ``FEW_PREFIXED`` (params: ``prefix_range``)."""
    run_id = dialect.by_code_point.format("run_id")
    return dialect.sql(
        f"SELECT count(*) FROM (SELECT 1 FROM runs WHERE {run_id} >= ? AND {run_id} < ? "
        f"LIMIT {FEW_PREFIXED}) AS prefixed"
    )


def prefix_range(prefix: str | None) -> tuple[str, str] | None:
    """``PREFIX_PROBE``'s parameters for ``prefix``; None if there is nothing to probe."""
    low, high = _prefix_range(prefix)
    return None if low is None or high is None else (low, high)


def _prefix_range(prefix: str | None) -> tuple[str | None, str | None]:
    """The ids starting with ``prefix``, as ``low <= id < high`` in code point order
    (``high`` None: no upper bound, for a prefix whose last character cannot grow; the
    prefix is then compared too)."""
    if prefix is None:
        return None, None
    if not prefix:
        return "", None
    last = ord(prefix[-1]) + 1
    if last > 0x10FFFF or 0xD800 <= last <= 0xDFFF:
        return prefix, None
    return prefix, prefix[:-1] + chr(last)


def _when(dialect: Dialect, moment: datetime | None) -> Any:
    return None if moment is None else dialect.time(moment.timestamp())
