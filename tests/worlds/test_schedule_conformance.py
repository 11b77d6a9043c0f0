"""The World's schedules: edits under a lock, and firing ticks exactly once (every World)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from workflowkit._schedule_spec import ScheduleUpdate, make_spec
from workflowkit.errors import (
    InvalidScheduleError,
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
    StaticScheduleError,
)
from workflowkit.worlds import schedule_rules as rules
from workflowkit.worlds.base import World
from workflowkit.worlds.records import RunStatus, ScheduleRecord

EVERY_SECOND = "* * * * * *"


def spec(schedule_id: str = "s1", cron: str = EVERY_SECOND, **options: object) -> object:
    return make_spec(schedule_id, "wf", cron, input=b"args", **options)  # type: ignore[arg-type]


def input_for(record: ScheduleRecord, tick: datetime) -> bytes:
    return f"{record.schedule_id}@{tick.isoformat()}".encode()


async def create(world: World, schedule_id: str = "s1", **options: object) -> ScheduleRecord:
    record = await world.change_schedule(schedule_id, rules.create(spec(schedule_id, **options)))  # type: ignore[arg-type]
    assert record is not None
    return record


async def test_a_created_schedule_is_stored_with_its_first_tick(world: World) -> None:
    before = world.now()
    record = await create(world, cron="0 9 * * MON-FRI", timezone="Europe/Berlin")
    assert record == await world.get_schedule("s1")
    assert record.cron == "0 9 * * MON-FRI" and record.timezone == "Europe/Berlin"
    assert record.next_tick is not None and record.next_tick.timestamp() > before
    local = record.next_tick.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    assert [s.schedule_id for s in await world.list_schedules()] == ["s1"]
    assert await world.get_schedule("nope") is None


async def test_creating_a_taken_id_is_refused_and_changes_nothing(world: World) -> None:
    first = await create(world)
    with pytest.raises(ScheduleAlreadyExistsError):
        await create(world, cron="@daily")
    assert await world.get_schedule("s1") == first


async def test_pause_resume_update_and_delete(world: World) -> None:
    await create(world, cron="@hourly")
    paused = await world.change_schedule("s1", rules.set_paused("s1", True))
    assert paused is not None and paused.paused
    resumed = await world.change_schedule("s1", rules.set_paused("s1", False))
    assert resumed is not None and not resumed.paused
    changed = await world.change_schedule(
        "s1", rules.update("s1", ScheduleUpdate(cron="@daily", overlap="allow").apply)
    )
    assert changed is not None and changed.cron == "@daily" and changed.overlap == "allow"
    assert changed.next_tick is not None and changed.next_tick.hour == 0
    with pytest.raises(InvalidScheduleError):
        await world.change_schedule(
            "s1", rules.update("s1", ScheduleUpdate(cron="61 * * * *").apply)
        )
    assert await world.get_schedule("s1") == changed
    assert await world.change_schedule("s1", rules.delete("s1")) is None
    assert await world.get_schedule("s1") is None
    with pytest.raises(ScheduleNotFoundError):
        await world.change_schedule("s1", rules.delete("s1"))


async def test_a_schedule_declared_in_code_is_changed_only_by_code(world: World) -> None:
    declared = make_spec("static", "wf", "@daily", input=b"", static=True)
    first = await world.change_schedule("static", rules.declare(declared))
    assert first is not None and first.static
    assert await world.change_schedule("static", rules.declare(declared)) == first
    with pytest.raises(StaticScheduleError):
        await world.change_schedule("static", rules.delete("static"))
    with pytest.raises(StaticScheduleError):
        await world.change_schedule("static", rules.update("static", ScheduleUpdate().apply))
    paused = await world.change_schedule("static", rules.set_paused("static", True))
    again = await world.change_schedule("static", rules.declare(declared))
    assert again == paused and again is not None and again.paused  # pausing outlives deploys
    assert await world.change_schedule("static", rules.delete("static", static=True)) is None


async def test_a_due_tick_starts_one_run_whose_id_names_the_tick(world: World) -> None:
    record = await create(world, overlap="allow")
    assert record.next_tick is not None
    tick = record.next_tick
    fired = await world.fire_schedules(["wf"], input_for, now=tick.timestamp())
    assert [(f.schedule_id, f.tick, f.created) for f in fired] == [("s1", tick, True)]
    run = await world.get_run(fired[0].run_id)
    assert run is not None and run.workflow_name == "wf" and run.status is RunStatus.PENDING
    assert fired[0].run_id == f"s1@{tick:%Y-%m-%dT%H:%M:%SZ}"
    assert run.input == input_for(record, tick)
    event = (await world.get_events(run.run_id))[0]
    assert event.attrs["schedule_id"] == "s1"
    assert event.attrs["scheduled_at"] == tick.isoformat()
    # Claimable now, on the World's clock.
    assert run.wake_at is not None and run.wake_at.timestamp() <= world.now()
    after = await world.get_schedule("s1")
    assert after is not None and after.next_tick == tick + timedelta(seconds=1)
    assert after.last_tick == tick and after.last_run_id == fired[0].run_id
    # Nothing is due again at the same moment.
    assert await world.fire_schedules(["wf"], input_for, now=tick.timestamp()) == []


async def test_only_schedules_of_the_named_workflows_fire(world: World) -> None:
    record = await create(world)
    assert record.next_tick is not None
    at = record.next_tick.timestamp()
    assert await world.fire_schedules(["other"], input_for, now=at) == []
    due = await world.schedules_due(["wf"])
    assert due.next_tick == record.next_tick and not due.buffered
    assert (await world.schedules_due(["other"])).next_tick is None


async def test_workers_firing_at_once_start_each_tick_once(world: World) -> None:
    record = await create(world, overlap="allow", catch_up="all")
    assert record.next_tick is not None
    at = record.next_tick.timestamp() + 4.5  # five ticks due
    results = await asyncio.gather(
        *(world.fire_schedules(["wf"], input_for, now=at) for _ in range(5))
    )
    fired = [f for result in results for f in result]
    assert sorted(f.tick for f in fired) == [
        record.next_tick + timedelta(seconds=i) for i in range(5)
    ]
    runs = await world.list_runs(id_prefix="s1@")
    assert len(runs) == 5


async def test_catch_up_policies_after_downtime(world: World) -> None:
    for policy in ("none", "latest", "all"):
        record = await create(world, f"c-{policy}", catch_up=policy, overlap="allow")
        assert record.next_tick is not None
        # A minute missed, and now sits between two ticks past the grace period.
        at = record.next_tick.timestamp() + 59.5 + rules.GRACE_SECONDS
        fired = await world.fire_schedules(["wf"], input_for, now=at)
        ticks = [f.tick for f in fired if f.schedule_id == f"c-{policy}"]
        on_time = [t for t in ticks if at - t.timestamp() <= rules.GRACE_SECONDS]
        assert len(on_time) == 10  # the ticks within the grace period run whatever the policy
        missed = len(ticks) - len(on_time)
        assert missed == {"none": 0, "latest": 1, "all": 60}[policy]
        after = await world.get_schedule(f"c-{policy}")
        assert after is not None and after.next_tick is not None
        assert after.next_tick.timestamp() > at


async def test_catch_up_all_is_bounded(world: World) -> None:
    record = await create(world, catch_up="all", overlap="allow")
    assert record.next_tick is not None
    at = record.next_tick.timestamp() + 86_400  # a day of per-second ticks
    fired = await world.fire_schedules(["wf"], input_for, now=at)
    assert len(fired) == rules.CATCH_UP_LIMIT
    assert max(f.tick for f in fired).timestamp() == pytest.approx(at)


async def test_overlap_skip_starts_nothing_while_the_last_run_is_active(world: World) -> None:
    record = await create(world)  # overlap="skip" by default
    assert record.next_tick is not None
    first = await world.fire_schedules(["wf"], input_for, now=record.next_tick.timestamp())
    assert len(first) == 1
    later = record.next_tick.timestamp() + 3
    assert await world.fire_schedules(["wf"], input_for, now=later) == []
    after = await world.get_schedule("s1")
    assert after is not None and after.last_run_id == first[0].run_id
    assert after.next_tick is not None and after.next_tick.timestamp() > later


async def test_overlap_allow_starts_a_tick_while_the_last_run_is_active(world: World) -> None:
    record = await create(world, overlap="allow")
    assert record.next_tick is not None
    at = record.next_tick.timestamp()
    (first,) = await world.fire_schedules(["wf"], input_for, now=at)
    (second,) = await world.fire_schedules(["wf"], input_for, now=at + 1)
    assert second.tick == record.next_tick + timedelta(seconds=1)
    statuses = [(await world.get_run(f.run_id)).status for f in (first, second)]  # type: ignore[union-attr]
    assert statuses == [RunStatus.PENDING, RunStatus.PENDING]  # the first still active
    after = await world.get_schedule("s1")
    assert after is not None and after.last_run_id == second.run_id


async def test_overlap_buffer_one_starts_the_held_tick_when_the_run_ends(world: World) -> None:
    from workflowkit.worlds.records import EventType, NewEvent

    record = await create(world, overlap="buffer_one")
    assert record.next_tick is not None
    at = record.next_tick.timestamp()
    (first,) = await world.fire_schedules(["wf"], input_for, now=at)
    assert await world.fire_schedules(["wf"], input_for, now=at + 2) == []
    held = await world.get_schedule("s1")
    assert held is not None and held.buffered_tick == record.next_tick + timedelta(seconds=2)
    assert (await world.schedules_due(["wf"])).buffered
    await world.append(first.run_id, [NewEvent(EventType.RUN_CANCELLED)])
    (second,) = await world.fire_schedules(["wf"], input_for, now=at + 2.5)
    assert second.tick == held.buffered_tick
    after = await world.get_schedule("s1")
    assert after is not None and after.buffered_tick is None
    assert after.last_run_id == second.run_id


async def test_a_paused_schedule_does_not_fire_and_resumes_from_now(world: World) -> None:
    record = await create(world, overlap="allow", catch_up="all")
    assert record.next_tick is not None
    await world.change_schedule("s1", rules.set_paused("s1", True))
    at = record.next_tick.timestamp() + 5
    assert await world.fire_schedules(["wf"], input_for, now=at) == []
    assert (await world.schedules_due(["wf"])).next_tick is None


async def test_resuming_drops_a_tick_held_before_the_pause(world: World) -> None:
    """Resuming starts from the next tick after now: a tick ``buffer_one`` held before the
    pause is as stale as the ticks that fell while paused, and does not start."""
    from workflowkit.worlds.records import EventType, NewEvent

    record = await create(world, overlap="buffer_one")
    assert record.next_tick is not None
    at = record.next_tick.timestamp()
    (first,) = await world.fire_schedules(["wf"], input_for, now=at)
    assert await world.fire_schedules(["wf"], input_for, now=at + 1) == []  # held
    await world.change_schedule("s1", rules.set_paused("s1", True))
    await world.append(first.run_id, [NewEvent(EventType.RUN_CANCELLED)])
    resumed = await world.change_schedule("s1", rules.set_paused("s1", False))
    assert resumed is not None and resumed.buffered_tick is None
    assert not (await world.schedules_due(["wf"])).buffered
    later = await world.fire_schedules(["wf"], input_for, now=world.now())
    assert all(f.tick.timestamp() > at + 1 for f in later), later


async def test_a_schedule_ends_at_its_end(world: World) -> None:
    now = datetime.fromtimestamp(world.now(), UTC)
    record = await create(world, overlap="allow", catch_up="all", end_at=now + timedelta(seconds=3))
    assert record.next_tick is not None
    fired = await world.fire_schedules(["wf"], input_for, now=now.timestamp() + 60)
    assert 2 <= len(fired) <= 3
    after = await world.get_schedule("s1")
    assert after is not None and after.next_tick is None
