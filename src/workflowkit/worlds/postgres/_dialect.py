"""How the shared statements (``worlds._sql``) are written for PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from .. import _sql


def moment(value: datetime) -> datetime:
    return value.astimezone(UTC)


DIALECT = _sql.Dialect(
    placeholder="%s",
    time=lambda value: datetime.fromtimestamp(value, UTC),
    stamp=lambda value: value,
    moment=moment,
    in_list="= ANY(?)",
    list_param=list,
    elapsed="extract(epoch FROM (? - {}))",
    by_code_point='({} COLLATE "C")',  # as the index runs_id_prefix (migration 0013)
)
ACTIVE = "('pending', 'running')"
