"""When ticks fall: cron expressions in a time zone, daylight saving included, as cron users
expect (Debian's cron, which cronsim follows), and what firing after downtime starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from workflowkit import serde
from workflowkit._cron import parse_cron
from workflowkit._schedule_spec import make_spec
from workflowkit.errors import InvalidScheduleError
from workflowkit.runtime.executor import encode_input
from workflowkit.runtime.schedules import tick_input
from workflowkit.worlds import schedule_rules as rules
from workflowkit.worlds.records import ScheduleRecord

BERLIN = ZoneInfo("Europe/Berlin")


def fired(cron: str, since: datetime, until: datetime, tz: str = "Europe/Berlin") -> list[str]:
    """The local times of the ticks a schedule fires from ``since`` to ``until``, fired on
    time by a worker that is always up."""
    spec = make_spec("s", "wf", cron, input=b"", timezone=tz, overlap="allow")
    change = rules.create(spec)(None, since.timestamp())
    assert change is not None and change.record is not None
    record: ScheduleRecord = change.record
    seen: list[str] = []
    while record.next_tick is not None and record.next_tick <= until:
        plan = rules.plan_fire(record, False, record.next_tick.timestamp(), lambda r, t: b"")
        assert plan is not None
        seen += [s.tick.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M%z") for s in plan.starts]
        record = plan.record
    return seen


def test_a_daily_job_in_the_skipped_hour_runs_when_the_clocks_have_moved_on() -> None:
    assert fired("30 2 * * *", datetime(2026, 3, 27, 12, tzinfo=BERLIN),
                 datetime(2026, 3, 31, 0, tzinfo=BERLIN)) == [
        "03-28 02:30+0100",
        "03-29 03:00+0200",  # 02:30 does not exist that day
        "03-30 02:30+0200",
    ]  # fmt: skip


def test_a_daily_job_in_the_repeated_hour_runs_once() -> None:
    assert fired("30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=BERLIN),
                 datetime(2026, 10, 27, 0, tzinfo=BERLIN)) == [
        "10-24 02:30+0200",
        "10-25 02:30+0200",  # not again at 02:30+0100
        "10-26 02:30+0100",
    ]  # fmt: skip


def test_an_hourly_job_runs_by_elapsed_time_across_both_transitions() -> None:
    spring = fired("0 * * * *", datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN),
                   datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN))  # fmt: skip
    assert spring == ["03-29 01:00+0100", "03-29 03:00+0200", "03-29 04:00+0200"]
    autumn = fired("0 * * * *", datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN),
                   datetime(2026, 10, 25, 3, 0, tzinfo=BERLIN))  # fmt: skip
    assert autumn == [
        "10-25 01:00+0200", "10-25 02:00+0200", "10-25 02:00+0100", "10-25 03:00+0100",
    ]  # fmt: skip


def test_the_repeated_hour_reaches_the_workflow_as_two_distinct_times() -> None:
    """What the runs of the two 02:00 ticks of the autumn night get: 02:00 local both times,
    an hour apart (``fold`` survives encoding), not the same moment twice."""
    spec = make_spec("s", "wf", "0 * * * *", input=encode_input((), {}, what="s"),
                     timezone="Europe/Berlin", overlap="allow")  # fmt: skip
    change = rules.create(spec)(None, datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN).timestamp())
    assert change is not None and change.record is not None
    record, received = change.record, []
    first = datetime(2026, 10, 25, 0, tzinfo=UTC)  # 02:00+02:00
    for at in (first, first + timedelta(hours=1)):  # each fired on time
        plan = rules.plan_fire(record, False, at.timestamp(), tick_input)
        assert plan is not None
        received += [serde.decode(start.input)[0][0] for start in plan.starts]
        record = plan.record
    assert [t.astimezone(UTC) for t in received] == [first, first + timedelta(hours=1)]
    assert [(t.hour, t.utcoffset()) for t in received] == [
        (2, timedelta(hours=2)), (2, timedelta(hours=1)),
    ]  # fmt: skip
    assert all(isinstance(t.tzinfo, ZoneInfo) for t in received)


def test_working_days_at_nine_follow_the_local_clock() -> None:
    ticks = fired("0 9 * * MON-FRI", datetime(2026, 3, 26, 12, tzinfo=BERLIN),
                  datetime(2026, 4, 1, 0, tzinfo=BERLIN))  # fmt: skip
    assert ticks == [
        "03-27 09:00+0100", "03-30 09:00+0200", "03-31 09:00+0200",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("nickname", "fields"),
    [("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
     ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"),
     ("@annually", "0 0 1 1 *"), ("@DAILY", "0 0 * * *")],
)  # fmt: skip
def test_cron_nicknames(nickname: str, fields: str) -> None:
    assert parse_cron(nickname).fields == fields


@pytest.mark.parametrize(
    ("expression", "says"),
    [("61 * * * *", "Bad minute"), ("* * *", "Wrong number of fields"), ("", "non-empty"),
     ("@reboot", "nickname"), ("0 0 31 2 *", "Bad day-of-month"), ("*/0 * * * *", "Bad")],
)  # fmt: skip
def test_invalid_expressions_say_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(InvalidScheduleError, match=says):
        parse_cron(expression)


def test_seconds_come_first_in_six_fields() -> None:
    cron = parse_cron("*/15 * * * * *")
    start = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    assert cron.next_after(start) == start.replace(second=15)


def test_catch_up_after_a_weekend_down() -> None:
    """A worker down from Friday evening to Monday 09:00:05 Berlin."""
    expected = {"none": ["09:00"], "latest": ["08:00", "09:00"], "all": 63}
    for policy, wanted in expected.items():
        spec = make_spec("s", "wf", "@hourly", input=b"", timezone="Europe/Berlin",
                         catch_up=policy, overlap="allow")  # fmt: skip
        down = datetime(2026, 12, 4, 18, 30, tzinfo=BERLIN)
        change = rules.create(spec)(None, down.timestamp())
        assert change is not None and change.record is not None
        back = datetime(2026, 12, 7, 9, 0, 5, tzinfo=BERLIN)
        plan = rules.plan_fire(change.record, False, back.timestamp(), lambda r, t: b"")
        assert plan is not None
        ticks = [s.tick.astimezone(BERLIN).strftime("%H:%M") for s in plan.starts]
        assert (len(ticks) if isinstance(wanted, int) else ticks) == wanted
        assert plan.record.next_tick == datetime(2026, 12, 7, 10, tzinfo=BERLIN)


def test_overlap_decides_among_ticks_due_together() -> None:
    start = datetime(2026, 12, 7, 9, tzinfo=UTC)
    for overlap, active, starts, held in [
        ("allow", False, 3, None), ("allow", True, 3, None),
        ("skip", False, 1, 2), ("skip", True, 0, None),
        ("buffer_one", False, 1, 2), ("buffer_one", True, 0, 2),
    ]:  # fmt: skip
        spec = make_spec("s", "wf", "* * * * * *", input=b"", catch_up="all", overlap=overlap)
        change = rules.create(spec)(None, start.timestamp() - 0.5)
        assert change is not None and change.record is not None
        plan = rules.plan_fire(change.record, active, start.timestamp() + 2, lambda r, t: b"")
        assert plan is not None
        assert len(plan.starts) == starts, overlap
        if overlap == "skip" and starts:
            assert plan.starts[0].tick == start + timedelta(seconds=held or 0)  # the latest
        if overlap == "buffer_one":
            assert plan.record.buffered_tick == start + timedelta(seconds=2)
        else:
            assert plan.record.buffered_tick is None
