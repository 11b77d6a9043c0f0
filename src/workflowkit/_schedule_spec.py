"""A schedule as a user defines it, checked once: ``@workflow(schedule=...)`` and
``create_schedule``/``update_schedule`` build a ``ScheduleSpec`` here.

The spec is a plain record (``worlds.records.ScheduleSpec``); every value is checked when
it is made, with an error (``InvalidScheduleError``) that
says what to fix; the World only stores it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ._cron import Cron, parse_cron
from .errors import InvalidScheduleError
from .worlds.records import CatchUp, Overlap, ScheduleRecord, ScheduleSpec

CatchUpName = Literal["none", "latest", "all"]
OverlapName = Literal["allow", "skip", "buffer_one"]

DEFAULT_CATCH_UP: CatchUpName = "none"  # as cron: a tick missed while no worker ran is gone
DEFAULT_OVERLAP: OverlapName = "skip"

# A tick's run id is ``<schedule id>@<tick>`` and a run id holds at most 200 characters of
# ``[A-Za-z0-9._:@+=-]``: the schedule id keeps to those, with room for the suffix.
_SCHEDULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]*")
SCHEDULE_ID_MAX = 160


def make_spec(
    schedule_id: object,
    workflow_name: str,
    cron: object,
    *,
    input: bytes,
    timezone: object = "UTC",
    catch_up: object = DEFAULT_CATCH_UP,
    overlap: object = DEFAULT_OVERLAP,
    start_at: object = None,
    end_at: object = None,
    static: bool = False,
) -> ScheduleSpec:
    """A checked ``ScheduleSpec``; ``InvalidScheduleError`` for a bad value."""
    start, end = _moment("start_at", start_at), _moment("end_at", end_at)
    if start is not None and end is not None and end <= start:
        raise InvalidScheduleError("end_at must be after start_at")
    checked = parse_cron(cron, timezone)
    return ScheduleSpec(
        check_schedule_id(schedule_id),
        workflow_name,
        checked.expression,
        checked.timezone,
        catch_up_policy(catch_up),
        overlap_policy(overlap),
        input,
        start,
        end,
        static,
    )


def check_schedule_id(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidScheduleError(f"a schedule id must be a str, not {type(value).__name__}")
    if len(value) > SCHEDULE_ID_MAX or not _SCHEDULE_ID.fullmatch(value):
        raise InvalidScheduleError(
            f"invalid schedule id {value[:60]!r}: use 1 to {SCHEDULE_ID_MAX} letters, digits "
            "and ._:@+=- (starting with a letter or digit)"
        )
    return value


def catch_up_policy(value: object) -> CatchUp:
    found = _CATCH_UP.get(value) if isinstance(value, str) else None
    if found is None:
        raise InvalidScheduleError(f"catch_up must be 'none', 'latest' or 'all', not {value!r}")
    return found


def overlap_policy(value: object) -> Overlap:
    found = _OVERLAP.get(value) if isinstance(value, str) else None
    if found is None:
        raise InvalidScheduleError(
            f"overlap must be 'allow', 'skip' or 'buffer_one', not {value!r}"
        )
    return found


_CATCH_UP = {str(policy): policy for policy in CatchUp}
_OVERLAP = {str(policy): policy for policy in Overlap}


def _moment(what: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidScheduleError(f"{what} must be an aware datetime (with a timezone)")
    return value


@dataclass(frozen=True, slots=True)
class StaticSchedule:
    """A schedule declared with ``@workflow(schedule=...)``: its id is the workflow's name,
    ``+1``, ``+2``... for the second and later entries of a list."""

    schedule_id: str
    cron: Cron
    catch_up: CatchUp
    overlap: Overlap


def static_schedules(
    workflow_name: str,
    schedule: str | list[str] | tuple[str, ...] | None,
    timezone: object,
    catch_up: object,
    overlap: object,
) -> tuple[StaticSchedule, ...]:
    """The schedules a decorator declares, checked (``InvalidScheduleError``)."""
    if schedule is None:
        return ()
    expressions = [schedule] if isinstance(schedule, str) else list(schedule)
    if not expressions:
        raise InvalidScheduleError("schedule=[] declares no schedule: leave it out instead")
    try:
        check_schedule_id(workflow_name)
    except InvalidScheduleError:
        raise InvalidScheduleError(
            f"workflow {workflow_name!r} has a schedule, so its name becomes the schedule's "
            "id: give it a name of letters, digits and ._:@+=- with @workflow(name=...)"
        ) from None
    return tuple(
        StaticSchedule(
            check_schedule_id(workflow_name if i == 0 else f"{workflow_name}+{i}"),
            parse_cron(expression, timezone),
            catch_up_policy(catch_up),
            overlap_policy(overlap),
        )
        for i, expression in enumerate(expressions)
    )


class Unchanged(enum.Enum):
    """``update_schedule``'s default for the window's bounds, where None means "no bound"."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED
Bound = datetime | None | Unchanged


@dataclass(frozen=True, slots=True)
class ScheduleUpdate:
    """The fields ``update_schedule`` changes; None keeps a field as it is, except the
    window's bounds, which ``UNCHANGED`` keeps and None removes."""

    cron: str | None = None
    timezone: str | None = None
    input: bytes | None = None
    catch_up: str | None = None
    overlap: str | None = None
    start_at: Bound = UNCHANGED
    end_at: Bound = UNCHANGED

    def apply(self, record: ScheduleRecord) -> ScheduleSpec:
        """``record``'s definition with these changes, checked (``InvalidScheduleError``)."""
        return make_spec(
            record.schedule_id,
            record.workflow_name,
            self.cron or record.cron,
            input=record.input if self.input is None else self.input,
            timezone=self.timezone or record.timezone,
            catch_up=self.catch_up or record.catch_up,
            overlap=self.overlap or record.overlap,
            start_at=record.start_at if self.start_at is UNCHANGED else self.start_at,
            end_at=record.end_at if self.end_at is UNCHANGED else self.end_at,
        )
