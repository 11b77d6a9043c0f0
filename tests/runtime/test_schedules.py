"""Schedules as users rely on them: defined in code or at run time, fired by workers."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import workflowkit
from workflowkit import create_hook, sync, workflow
from workflowkit.api import (
    create_schedule,
    delete_schedule,
    get_run,
    get_schedule,
    list_schedules,
    pause_schedule,
    resume_hook,
    resume_schedule,
    trigger_schedule,
    update_schedule,
)
from workflowkit.errors import (
    ClientCallInWorkflowError,
    InvalidScheduleError,
    InvalidWorkflowFunctionError,
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
    StaticScheduleError,
)
from workflowkit.registry import REGISTRY
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import advance_schedules

SEEN: list[tuple[datetime, str]] = []


@workflow(name="sched.record")
async def record_tick(scheduled_at: datetime, label: str = "") -> str:
    SEEN.append((scheduled_at, label))
    return scheduled_at.isoformat()


@workflow(name="sched.wait")
async def wait_for_go(scheduled_at: datetime) -> None:
    await create_hook(token=f"go:{scheduled_at.astimezone(UTC):%H%M%S}")


# A static schedule that does not fire while the tests run (every worker of this process
# writes it to its World: the registry is process-wide).
@workflow(name="sched.new_year", schedule=["0 0 1 1 *", "@yearly"], timezone="Europe/Berlin")
async def new_year(scheduled_at: datetime) -> None: ...


@pytest.fixture(autouse=True)
def clear_seen() -> Iterator[None]:
    SEEN.clear()
    yield


async def runs_of(schedule_id: str) -> list[str]:
    runs = await workflowkit_runtime().world.list_runs(id_prefix=f"{schedule_id}@")
    return sorted(r.run_id for r in runs)


def workflowkit_runtime() -> Runtime:
    from workflowkit.runtime.runtime import get_runtime

    return get_runtime()


async def until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_each_tick_starts_a_run_that_gets_the_tick_time(cached_runtime: Runtime) -> None:
    info = await create_schedule(
        "every-second",
        record_tick,
        cron="* * * * * *",
        kwargs={"label": "x"},
        timezone="Europe/Berlin",
    )
    assert info.next_tick is not None and info.kwargs == {"label": "x"}

    async def three_done() -> bool:
        return len(SEEN) >= 3

    await until(three_done)
    await pause_schedule("every-second")
    ticks = sorted(t for t, _ in SEEN)
    # Aware, in the schedule's zone (not a fixed offset: this holds in summer and winter).
    assert all(isinstance(t.tzinfo, ZoneInfo) and t.tzinfo.key == "Europe/Berlin" for t in ticks)
    # Whole seconds apart (a loaded machine may skip a tick: catch_up="latest").
    assert all(
        b > a and (b - a) % timedelta(seconds=1) == timedelta(0)
        for a, b in itertools.pairwise(ticks)
    )
    assert {label for _, label in SEEN} == {"x"}
    run_ids = await runs_of("every-second")
    first = ticks[0].astimezone(UTC)
    assert f"every-second@{first:%Y-%m-%dT%H:%M:%SZ}" in run_ids
    assert await get_run(run_ids[0]).return_value(timeout=5) == min(ticks).isoformat()
    after = await get_schedule("every-second")
    assert after.paused and after.last_run_id in run_ids


async def test_a_schedule_declared_in_code_is_written_by_the_worker(
    cached_runtime: Runtime,
) -> None:
    async def declared() -> bool:
        ids = {s.schedule_id for s in await list_schedules()}
        return {"sched.new_year", "sched.new_year+1"} <= ids

    cached_runtime.schedules_changed()
    await until(declared)
    info = await get_schedule("sched.new_year")
    assert info.declared_in_code and info.timezone == "Europe/Berlin"
    assert info.next_tick is not None
    assert info.next_tick.astimezone(UTC) == datetime(info.next_tick.year, 12, 31, 23, tzinfo=UTC)
    with pytest.raises(StaticScheduleError):
        await delete_schedule("sched.new_year")
    with pytest.raises(StaticScheduleError):
        await update_schedule("sched.new_year", cron="@daily")
    paused = await pause_schedule("sched.new_year")
    assert paused.paused and (await resume_schedule("sched.new_year")).next_tick == info.next_tick


async def test_trigger_runs_one_now_with_now_as_its_tick(cached_runtime: Runtime) -> None:
    await create_schedule("later", record_tick, cron="0 0 1 1 *", args=["manual"])
    before = datetime.now(UTC)
    run = await trigger_schedule("later")
    assert run.run_id.startswith("later@manual-")
    await run.return_value(timeout=10)
    ((tick, label),) = SEEN
    assert label == "manual" and abs((tick - before).total_seconds()) < 5
    events = await cached_runtime.world.get_events(run.run_id)
    assert events[0].attrs["schedule_id"] == "later" and events[0].attrs["manual"] is True


async def test_edits_and_their_errors(cached_runtime: Runtime) -> None:
    await create_schedule("edit-me", record_tick, cron="@hourly")
    with pytest.raises(ScheduleAlreadyExistsError):
        await create_schedule("edit-me", record_tick, cron="@daily")
    updated = await update_schedule("edit-me", cron="30 6 * * *", args=["new"], overlap="allow")
    assert updated.cron == "30 6 * * *" and updated.args == ("new",) and updated.overlap == "allow"
    assert updated.next_tick is not None and (updated.next_tick.hour, updated.next_tick.minute) == (
        6,
        30,
    )
    with pytest.raises(InvalidScheduleError):
        await update_schedule("edit-me", timezone="Mars/Olympus")
    await delete_schedule("edit-me")
    for call in (get_schedule, pause_schedule, resume_schedule, delete_schedule, trigger_schedule):
        with pytest.raises(ScheduleNotFoundError):
            await call("edit-me")  # type: ignore[operator]
    with pytest.raises(InvalidScheduleError):
        await create_schedule("bad id!", record_tick, cron="@daily")
    with pytest.raises(InvalidScheduleError):
        await create_schedule("x", record_tick, cron="@daily", catch_up="some")  # type: ignore[arg-type]
    with pytest.raises(InvalidWorkflowFunctionError, match="decorated with @workflow"):
        await create_schedule("x", print, cron="@daily")  # type: ignore[arg-type]


async def test_an_update_keeps_the_window_unless_told_and_none_removes_a_bound(
    cached_runtime: Runtime,
) -> None:
    start, end = datetime(2030, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)
    await create_schedule("windowed", record_tick, cron="@daily", start_at=start, end_at=end)
    kept = await update_schedule("windowed", cron="@hourly")
    assert (kept.start_at, kept.end_at) == (start, end)
    assert kept.next_tick == start
    opened = await update_schedule("windowed", start_at=None)
    assert (opened.start_at, opened.end_at) == (None, end)
    assert opened.next_tick is not None and opened.next_tick < start
    endless = await update_schedule("windowed", end_at=None)
    assert (endless.start_at, endless.end_at) == (None, None)
    await delete_schedule("windowed")


async def test_overlap_skip_fires_nothing_while_the_last_run_waits(
    cached_runtime: Runtime,
) -> None:
    await create_schedule("waits", wait_for_go, cron="* * * * * *")  # overlap="skip"

    async def started() -> bool:
        return len(await runs_of("waits")) >= 1

    await until(started)
    await asyncio.sleep(2.5)  # two or three more ticks, all skipped
    (run_id,) = await runs_of("waits")
    assert await get_run(run_id).status() == "running"
    await pause_schedule("waits")
    await get_run(run_id).cancel()


async def test_overlap_allow_starts_each_tick_while_the_last_run_waits(
    cached_runtime: Runtime,
) -> None:
    await create_schedule("overlaps", wait_for_go, cron="* * * * * *", overlap="allow")

    async def three_started() -> bool:
        return len(await runs_of("overlaps")) >= 3

    await until(three_started)
    await pause_schedule("overlaps")
    runs = await runs_of("overlaps")
    statuses = [await get_run(run_id).status() for run_id in runs]
    # None ended (each waits on its hook), yet each tick started a run; the newest may not
    # have been picked up yet.
    assert all(status in ("pending", "running") for status in statuses), statuses
    for run_id in runs:
        await get_run(run_id).cancel()


async def test_overlap_buffer_one_starts_one_held_tick_after_the_run_ends(
    cached_runtime: Runtime,
) -> None:
    await create_schedule("buffered", wait_for_go, cron="* * * * * *", overlap="buffer_one")

    async def started() -> bool:
        return len(await runs_of("buffered")) >= 1

    await until(started)
    await asyncio.sleep(2.5)
    (first,) = await runs_of("buffered")
    held = await get_schedule("buffered")
    assert held.buffered_tick is not None
    tick = first.split("@", 1)[1]
    await resume_hook(f"go:{tick[11:13]}{tick[14:16]}{tick[17:19]}", None)

    async def second() -> bool:
        return len(await runs_of("buffered")) >= 2

    await until(second)
    await pause_schedule("buffered")
    runs = await runs_of("buffered")
    assert len(runs) == 2, runs  # the second waits on its hook: later ticks are held
    # The tick held when the first run ended (a later tick may have replaced the one read).
    assert runs[1] >= f"buffered@{held.buffered_tick:%Y-%m-%dT%H:%M:%SZ}", (runs, held)
    for run_id in runs:
        await get_run(run_id).cancel()


@pytest.mark.workflowkit(virtual_clock=True)
async def test_a_week_of_hourly_ticks_on_the_virtual_clock(workflow_runtime: Runtime) -> None:
    await create_schedule("hourly", record_tick, cron="@hourly", timezone="UTC")
    started = time.monotonic()
    runs = await advance_schedules("7 days")
    elapsed = time.monotonic() - started
    assert len(runs) in (168, 169)  # 7 * 24 hours, and the hour now is in, or not
    ticks = sorted(t for t, _ in SEEN)
    assert len(ticks) == len(runs)
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(ticks))
    assert [await get_run(r.run_id).status() for r in runs[-3:]] == ["completed"] * 3
    print(f"{len(runs)} hourly ticks in {elapsed:.3f} s")
    assert elapsed < 5, elapsed  # "well under a second" on an idle machine; CI shares cores
    info = await get_schedule("hourly")
    assert info.next_tick is not None and info.next_tick > datetime.now(UTC) + timedelta(days=6)


async def test_advance_schedules_needs_the_virtual_clock(workflow_runtime: Runtime) -> None:
    with pytest.raises(RuntimeError, match="virtual"):
        await advance_schedules("1 hour")


async def test_schedules_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wk.db'}"
    workflowkit.configure(url, poll_interval=0.2)
    try:
        await create_schedule("durable", record_tick, cron="* * * * * *", args=["kept"])
        workflowkit.shutdown()
        SEEN.clear()
        workflowkit.configure(url, poll_interval=0.2)

        async def fired() -> bool:
            return len(SEEN) >= 1

        await until(fired)
        await pause_schedule("durable")
        assert SEEN[0][1] == "kept"
    finally:
        workflowkit.shutdown()


async def test_a_schedule_declared_in_code_is_there_for_the_first_call(tmp_path: Path) -> None:
    """A script that triggers its declared schedule right after start (examples/daily_digest.py
    does) finds it on a fresh World: it does not race the worker's first pass."""
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", poll_interval=0.2)
    try:
        info = await get_schedule("sched.new_year+1")
        assert info.declared_in_code and info.cron == "@yearly"
        run = await trigger_schedule("sched.new_year")
        assert await run.status() in {"pending", "running", "completed"}
    finally:
        workflowkit.shutdown()


def test_the_sync_api_mirrors_the_async_one(tmp_path: Path) -> None:
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", poll_interval=0.2)
    try:
        info = sync.create_schedule("s", record_tick, cron="@daily", args=["sync"])
        assert sync.get_schedule("s") == info
        assert [s.schedule_id for s in sync.list_schedules()] == ["s"] or "s" in {
            s.schedule_id for s in sync.list_schedules()
        }
        assert sync.pause_schedule("s").paused
        assert not sync.resume_schedule("s").paused
        assert sync.update_schedule("s", cron="@hourly").cron == "@hourly"
        run = sync.trigger_schedule("s")
        assert run.return_value(timeout=10).startswith(str(datetime.now(UTC).year))
        sync.delete_schedule("s")
        with pytest.raises(ScheduleNotFoundError):
            sync.get_schedule("s")
    finally:
        workflowkit.shutdown()


def test_bad_schedules_are_refused_where_they_are_declared() -> None:
    bad: list[dict[str, object]] = [
        {"schedule": "61 * * * *"},
        {"schedule": "* * * *"},
        {"schedule": "@reboot"},
        {"schedule": "0 0 30 2 *"},
        {"schedule": []},
        {"schedule": "@daily", "timezone": "Mars/Olympus"},
        {"schedule": "@daily", "catch_up": "sometimes"},
        {"schedule": "@daily", "overlap": "queue"},
    ]
    for options in bad:
        with pytest.raises(InvalidScheduleError):

            @workflow(name="sched.bad", **options)  # type: ignore[call-overload]
            async def bad_one(scheduled_at: datetime) -> None: ...

    with pytest.raises(InvalidScheduleError, match="name="):

        def make() -> None:
            @workflow(schedule="@daily")
            async def nested(scheduled_at: datetime) -> None: ...

        make()
    assert "sched.bad" not in REGISTRY.workflows


def test_nicknames_and_lists_make_schedules_with_ids_of_their_own() -> None:
    ids = [s.schedule_id for s in new_year.schedules]
    assert ids == ["sched.new_year", "sched.new_year+1"]
    assert [s.cron.fields for s in new_year.schedules] == ["0 0 1 1 *", "0 0 1 1 *"]


async def test_schedule_calls_are_refused_in_workflow_code(cached_runtime: Runtime) -> None:
    @workflow(name="sched.misuse")
    async def misuse() -> str:
        try:
            await list_schedules()
        except ClientCallInWorkflowError:
            return "refused"
        return "allowed"

    try:
        run = await workflowkit.api.start(misuse)
        assert await run.return_value(timeout=10) == "refused"
    finally:
        REGISTRY.workflows.pop("sched.misuse", None)
