"""Cron expressions: checking them, and the ticks they name in a time zone.

Parsing and the next-tick arithmetic are cronsim's (a small, pure-Python, typed library by
the author of healthchecks.io that follows Debian's cron, daylight-saving quirks included);
this module only adds the ``@daily``-style nicknames cronsim leaves out, the time zone, and
errors of our own. Why cronsim and not croniter: docs/schedules.md.

Daylight saving, as Debian's cron does it (and so cronsim): a job at a fixed time of day
that falls in the hour skipped in spring runs when the clocks have moved on (02:30 -> 03:00);
one in the hour repeated in autumn runs once. Jobs that run every hour or more often run by
elapsed time: none in the skipped hour, both passes of the repeated one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import InvalidScheduleError

# Cron's nicknames, which cronsim does not read (``@reboot`` has no meaning here).
NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Past this many ticks, a catch-up scan walks back from now instead of forward from the
# first missed tick: a per-second schedule down for a day would be 86,400 steps.
_FORWARD_SCAN = 2_000
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Cron:
    """A checked cron expression (as written) in a time zone (an IANA name)."""

    expression: str
    timezone: str

    @property
    def fields(self) -> str:
        """The expression with nicknames spelled out: what cronsim reads."""
        text = " ".join(self.expression.split())
        return NICKNAMES.get(text.lower(), text)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first tick strictly after ``moment`` (an aware datetime), in UTC; None if
        there is none within cronsim's horizon of 50 years."""
        ticks = CronSim(self.fields, moment.astimezone(self.zone))
        for tick in ticks:
            # A fixed-time job's tick is computed on the wall clock: in the hour repeated
            # in autumn it may lie before ``moment``. The next one does not.
            if tick > moment:
                return tick.astimezone(UTC)
        return None

    def ticks(self, first: datetime, until: datetime, keep: int) -> list[datetime]:
        """The ticks in ``[first, until]``, oldest first, at most the latest ``keep``.

        ``first`` is a tick itself (a schedule's next tick).
        """
        latest: deque[datetime] = deque(maxlen=keep)
        tick: datetime | None = first
        for _ in range(_FORWARD_SCAN):
            if tick is None or tick > until:
                return list(latest)
            latest.append(tick)
            tick = self.next_after(tick)
        return self._latest_before(first, until, keep)

    def _latest_before(self, first: datetime, until: datetime, keep: int) -> list[datetime]:
        # cronsim's reverse walk counts a start with microseconds as a tick of its own,
        # so ``until`` itself, if it is a tick, is found.
        walk = CronSim(self.fields, (until + _MICROSECOND).astimezone(self.zone), reverse=True)
        found: list[datetime] = []
        for tick in walk:
            if tick < first or len(found) == keep:
                break
            found.append(tick.astimezone(UTC))
        return sorted(set(found))


def parse_cron(expression: object, timezone: object = "UTC") -> Cron:
    """``expression`` checked in ``timezone``; ``InvalidScheduleError`` saying what is wrong.

    Five fields (minute hour day-of-month month day-of-week), or six with seconds first
    (``*/5 * * * * *``), or a nickname (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``,
    ``@yearly``).
    """
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidScheduleError(f"a cron expression must be a non-empty str, not {expression!r}")
    zone = _zone(timezone)
    cron = Cron(" ".join(expression.split()), zone)
    if cron.fields.startswith("@"):
        raise InvalidScheduleError(
            f"unknown cron nickname {expression!r}: use one of {', '.join(NICKNAMES)}"
        )
    try:
        first = cron.next_after(datetime.now(UTC))
    except CronSimError as exc:
        raise InvalidScheduleError(
            f"invalid cron expression {expression!r}: {exc} (write five fields, minute hour "
            "day-of-month month day-of-week, or six with seconds first)"
        ) from None
    if first is None:
        raise InvalidScheduleError(f"cron expression {expression!r} never fires")
    return cron


def _zone(timezone: object) -> str:
    if not isinstance(timezone, str) or not timezone:
        raise InvalidScheduleError(f"timezone must be an IANA name like 'UTC', not {timezone!r}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleError(
            f"unknown time zone {timezone!r}: use an IANA name like 'Europe/Berlin' (where the "
            "system has no time zone database, install the tzdata package)"
        ) from None
    return timezone
