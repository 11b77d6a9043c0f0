"""How the shared statements (``worlds._sql``) are written for PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from .. import _sql
from ..limits import AGING_SECONDS


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
    # As migration 0013. In UTC: timestamptz arithmetic with an interval depends on the
    # session's time zone, so an index may not hold it; timestamp arithmetic does not.
    queue_rank=(
        f"((r.wake_at AT TIME ZONE 'UTC') - r.priority * interval '{AGING_SECONDS:g} seconds')"
    ),
    by_code_point='({} COLLATE "C")',  # as the index runs_id_prefix (migration 0013)
)
ACTIVE = "('pending', 'running')"
