"""What only the SQLite World promises: the file, its URL forms, many processes, bad rows."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from workflowkit.errors import CorruptDataError
from workflowkit.ids import new_id
from workflowkit.worlds import _sql, open_world
from workflowkit.worlds.records import EventType, NewEvent, RunChange, StepStatus, WorkerInfo
from workflowkit.worlds.sqlite import DEFAULT_PATH, SQLiteWorld, path_from_url
from workflowkit.worlds.sqlite import _jobs as sqlite_jobs
from workflowkit.worlds.sqlite import _schema as sqlite_schema
from workflowkit.worlds.sqlite import _threads as sqlite_threads

# The ``vm_work`` fixture (tests/worlds/conftest.py).
VmWork = Callable[[sqlite3.Connection, Callable[[], object]], int]

SRC = Path(__file__).parents[2] / "src"


def test_url_forms() -> None:
    assert path_from_url(None) == DEFAULT_PATH == Path(".workflowkit/workflowkit.db")
    assert path_from_url("sqlite:///rel/x.db") == Path("rel/x.db")
    assert path_from_url("sqlite:////abs/x.db") == Path("/abs/x.db")
    assert path_from_url("plain/path.db") == Path("plain/path.db")


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown world URL scheme 'mysql'"):
        open_world("mysql://localhost/db")


async def test_default_file_is_under_dot_workflowkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKFLOWKIT_WORLD", raising=False)
    world = open_world()
    try:
        assert isinstance(world, SQLiteWorld)
        assert (tmp_path / ".workflowkit" / "workflowkit.db").exists()
        mode = (
            sqlite3.connect(tmp_path / ".workflowkit" / "workflowkit.db")
            .execute("PRAGMA journal_mode")
            .fetchone()[0]
        )
        assert mode == "wal"
    finally:
        await world.close()


async def test_corrupt_row_is_a_typed_error(tmp_path: Path) -> None:
    world = SQLiteWorld(tmp_path / "w.db")
    try:
        run_id = new_id("wrun")
        await world.create_run(run_id, "wf", b"", {})
        conn = sqlite3.connect(tmp_path / "w.db")
        conn.execute("UPDATE runs SET status = 'exploded' WHERE run_id = ?", (run_id,))
        conn.execute("UPDATE events SET type = 'nonsense' WHERE run_id = ?", (run_id,))
        conn.commit()
        with pytest.raises(CorruptDataError, match="exploded"):
            await world.get_run(run_id)
        with pytest.raises(CorruptDataError, match="nonsense"):
            await world.get_events(run_id)
    finally:
        await world.close()


WRITER = """
import asyncio, sys
sys.path.insert(0, {src!r})
from workflowkit.ids import new_id
from workflowkit.worlds.records import EventType, NewEvent
from workflowkit.worlds.sqlite import SQLiteWorld

async def main():
    world = SQLiteWorld({db!r})
    runs = []
    for _ in range(20):
        run_id = new_id("wrun")
        await world.create_run(run_id, "wf", b"x" * 100, {{}})
        runs.append(run_id)
    async def write(run_id):
        await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
        for _ in range(25):
            sid = new_id("step")
            await world.append(run_id, [
                NewEvent(EventType.STEP_CREATED, sid, b"a" * 200, {{"name": "s"}}),
                NewEvent(EventType.STEP_STARTED, sid, None, {{"attempt": 1}}),
                NewEvent(EventType.STEP_COMPLETED, sid, b"r" * 200),
            ])
    await asyncio.gather(*(write(r) for r in runs))
    await world.close()
    print("ok")

asyncio.run(main())
"""


@pytest.mark.slow
def test_many_processes_one_file_never_locked(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    asyncio.run(SQLiteWorld(db).close())  # create the schema once, like a first process would
    code = WRITER.format(src=str(SRC), db=db)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
        assert "locked" not in err
    conn = sqlite3.connect(db)
    assert (
        conn.execute("SELECT count(*) FROM steps WHERE status = 'completed'").fetchone()[0]
        == 4 * 20 * 25
    )
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 4 * 20 * (2 + 75)


async def test_worker_loop_appends_share_a_commit_or_commit_at_once(tmp_path: Path) -> None:
    """A worker's appends made in one turn of its loop share one transaction; an append
    with nothing else queued commits without waiting for the next turn."""
    world = SQLiteWorld(tmp_path / "w.db")
    me = WorkerInfo(new_id("wrkr"), "here", os.getpid())
    batches: list[list[RunChange]] = []
    unsubscribe = world.subscribe(lambda changes: batches.append(list(changes)))
    try:
        runs = [new_id("wrun") for _ in range(10)]
        for run_id in runs:
            await world.create_run(run_id, "wf", b"", {})
        await world.register_worker(me)
        assert len(await world.claim_runs(me, ["wf"], limit=10, lease_seconds=60)) == 10
        batches.clear()
        started = [NewEvent(EventType.RUN_STARTED)]
        owner = me.worker_id
        await asyncio.gather(*(world.append(run_id, started, owner=owner) for run_id in runs))
        assert [sorted(c.run_id for c in batch) for batch in batches] == [sorted(runs)]

        batches.clear()
        lone = world.append(runs[0], [NewEvent(EventType.RUN_CANCELLED)], owner=owner)
        with pytest.raises(StopIteration) as done:
            lone.send(None)  # finishes in this call: no suspension, no extra loop turn
        assert done.value.value.run_status.terminal
        assert len(batches) == 1
    finally:
        unsubscribe()
        await world.close()


async def test_a_lone_client_write_commits_in_the_call_and_a_burst_shares_commits(
    tmp_path: Path,
) -> None:
    """A start made alone commits on the caller's thread (no hand-off to the writer thread
    and back); starts made together still share the writer thread's commits."""
    world = SQLiteWorld(tmp_path / "w.db")
    batches: list[list[RunChange]] = []
    unsubscribe = world.subscribe(lambda changes: batches.append(list(changes)))
    try:
        lone = world.create_run(new_id("wrun"), "wf", b"", {})
        with pytest.raises(StopIteration) as done:
            lone.send(None)  # finishes in this call: no suspension
        assert done.value.value.created
        batches.clear()
        runs = [new_id("wrun") for _ in range(20)]
        await asyncio.gather(*(world.create_run(run_id, "wf", b"", {}) for run_id in runs))
        assert sorted(c.run_id for batch in batches for c in batch) == sorted(runs)
        assert len(batches) < 20  # not a commit each
    finally:
        unsubscribe()
        await world.close()


async def test_a_lone_write_waiting_for_another_process_does_not_block_the_loop(
    tmp_path: Path,
) -> None:
    """While another process holds SQLite's write lock, a client's write waits on the writer
    thread, not on the caller's event loop, and commits once the lock is free."""
    world = SQLiteWorld(tmp_path / "w.db")
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        run_id = new_id("wrun")
        began = time.monotonic()
        create = asyncio.ensure_future(world.create_run(run_id, "wf", b"", {}))
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert time.monotonic() - began < 2  # the loop went on (SQLite waits 5 s for a lock)
        assert not create.done()
        other.execute("COMMIT")
        assert (await create).created
        assert (await world.get_run(run_id)) is not None
    finally:
        other.close()
        await world.close()


def test_an_inline_connection_in_use_sends_others_elsewhere_at_once() -> None:
    """Short reads run on the caller's thread only while nobody else uses that connection:
    another thread never waits for it (it goes to the reader thread)."""
    inline = sqlite_threads.InlineConnection(sqlite3.connect(":memory:", check_same_thread=False))
    inside, leave = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> int:
        inside.set()
        leave.wait(5)
        return 1

    holder = threading.Thread(target=inline.try_run, args=(hold,))
    holder.start()
    assert inside.wait(5)
    began = time.monotonic()
    assert inline.try_run(lambda conn: conn.execute("SELECT 2").fetchone()[0]) == (False, None)
    assert time.monotonic() - began < 0.5
    leave.set()
    holder.join()
    assert inline.try_run(lambda conn: conn.execute("SELECT 2").fetchone()[0]) == (True, 2)
    inline.close()
    assert inline.try_run(lambda conn: 3) == (False, None)


async def test_wal_stays_bounded_under_steady_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passive checkpoint never catches up with a writer that never pauses; the WAL must
    still be truncated, or it grows with every write (and a restart pays for all of it)."""
    monkeypatch.setattr(sqlite_schema, "WAL_LIMIT_BYTES", 256 * 1024)
    world = SQLiteWorld(tmp_path / "w.db", checkpoint_interval=0.02)
    wal = tmp_path / "w.db-wal"
    try:
        run_id = new_id("wrun")
        await world.create_run(run_id, "wf", b"", {})
        await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
        largest = 0
        for _ in range(1500):
            step = NewEvent(EventType.STEP_CREATED, new_id("step"), b"x" * 4000, {"name": "s"})
            await world.append(run_id, [step])
            largest = max(largest, wal.stat().st_size)
        # Never truncated, these writes leave about 48 MB of WAL; truncated, a few MB (more
        # when a busy machine keeps the checkpointer from its turns: 25 MB was seen).
        assert largest < 32 * 1024 * 1024, f"WAL reached {largest} bytes"
    finally:
        await world.close()


def test_claims_and_the_next_wake_up_do_not_read_every_sleeping_run(
    tmp_path: Path, vm_work: VmWork
) -> None:
    """A worker claims due runs and queued steps, and asks when the next run is due each
    time it is idle. Each must find what it needs through its own index (``wake_at``, the
    step queue's) and stop there: reading every active run (or every due one) made a worker
    with 100,000 runs asleep, or waking at once, spend a tenth of a second on each."""
    path = tmp_path / "w.db"
    asyncio.run(SQLiteWorld(path).close())  # create the file and its tables
    me = WorkerInfo(new_id("wrkr"), "here", os.getpid())
    conn = sqlite3.connect(path)
    now = time.time()

    def add(count: int, status: str, wake_at: float) -> list[str]:
        """Runs that ran a step each and now sleep (or are due)."""
        ids = [new_id("wrun") for _ in range(count)]
        with conn:  # one transaction
            conn.executemany(
                "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, "
                "wake_at) VALUES (?, 'wf', ?, ?, ?, ?)",
                [(run_id, status, now, now, wake_at) for run_id in ids],
            )
            conn.executemany(
                "INSERT INTO steps (run_id, step_id, step_name, status, attempt, created_at) "
                "VALUES (?, ?, 'st', 'completed', 1, ?)",
                [(run_id, new_id("step"), now) for run_id in ids],
            )
        return ids

    work = functools.partial(vm_work, conn)

    next_wake = _sql.next_wake_at(sqlite_jobs.DIALECT)
    names = sqlite_jobs.DIALECT.list_param(["wf"])
    steps = sqlite_jobs.DIALECT.list_param(["st"])
    costs = []
    for count in (100, 3000):
        add(count, "running", now + 3600)  # asleep
        first = add(1, "pending", now - 2)
        assert conn.execute(next_wake, (names,)).fetchone()[0] == now - 2
        with conn:
            claimed = sqlite_jobs.claim_runs(conn, me, names, 1, 60.0, now)
        assert [record.run_id for record in claimed] == first
        add(count, "running", now - 1)  # due all at once: a claim takes 10 of them
        costs.append(
            (
                work(lambda: conn.execute(next_wake, (names,)).fetchall()),
                work(lambda: sqlite_jobs.claim_runs(conn, me, names, 10, 60.0, now)),
                work(lambda: sqlite_jobs.claim_steps(conn, me, steps, 10, 60.0, now)),
            )
        )
    conn.close()
    few, many = costs
    assert all(m < 2 * f + 10 for f, m in zip(few, many, strict=True)), costs


async def test_appends_of_steps_write_first_and_read_only_when_a_row_is_not_as_presumed(
    tmp_path: Path,
) -> None:
    """A worker's step events are planned on the rows they expect (``presume_rows``), with
    no step row read; a write that misses rolls its attempt back and the append is planned
    again from the rows read: the same refusals, each event recorded once, and the other
    appends of the same commit unharmed."""
    world = SQLiteWorld(tmp_path / "w.db")
    me = WorkerInfo(new_id("wrkr"), "here", os.getpid())
    statements: list[str] = []
    try:
        runs = [new_id("wrun"), new_id("wrun")]
        for run_id in runs:
            await world.create_run(run_id, "wf", b"", {})
        await world.register_worker(me)
        await world.claim_runs(me, ["wf"], limit=2, lease_seconds=60)
        owner, (run_id, other) = me.worker_id, runs
        for each in runs:
            await world.append(each, [NewEvent(EventType.RUN_STARTED)], owner=owner)
        pending, running = new_id("step"), new_id("step")
        await world.append(
            run_id,
            [
                NewEvent(EventType.STEP_CREATED, pending, None, {"name": "s"}),
                NewEvent(EventType.STEP_CREATED, running, None, {"name": "s"}),
                NewEvent(EventType.STEP_STARTED, running, None, {"attempt": 1}),
            ],
            owner=owner,
        )
        world._writer._conn.set_trace_callback(statements.append)

        # The hot path as presumed: no step row is read.
        fresh = new_id("step")
        hot = await world.append(
            run_id,
            [
                NewEvent(EventType.STEP_COMPLETED, running, b"r"),
                NewEvent(EventType.STEP_CREATED, fresh, None, {"name": "s"}),
                NewEvent(EventType.STEP_STARTED, fresh, None, {"attempt": 1}),
            ],
            owner=owner,
        )
        assert not hot.rejected and len(hot.events) == 3
        assert not [s for s in statements if s.startswith("SELECT") and "steps" in s]

        # Presumed running but pending; presumed absent but there: each write misses, in
        # one commit with another run's append, which is recorded once all the same.
        statements.clear()
        again = new_id("step")
        missed, created_twice, alongside = await asyncio.gather(
            world.append(
                run_id,
                [
                    NewEvent(EventType.STEP_COMPLETED, pending, b"r"),
                    NewEvent(EventType.STEP_CREATED, again, None, {"name": "s"}),
                ],
                owner=owner,
            ),
            world.append(
                run_id,
                [
                    NewEvent(EventType.STEP_CREATED, fresh, None, {"name": "s"}),
                    NewEvent(EventType.STEP_COMPLETED, fresh, b"r"),
                ],
                owner=owner,
            ),
            world.append(
                other, [NewEvent(EventType.STEP_CREATED, new_id("step"), None, {})], owner=owner
            ),
        )
        assert [r.reason for r in missed.rejected] == [
            f"step {pending} is pending, cannot apply step_completed"
        ]
        assert [e.type for e in missed.events] == [EventType.STEP_CREATED]
        assert [r.reason for r in created_twice.rejected] == [f"step {fresh} already exists"]
        assert [e.type for e in created_twice.events] == [EventType.STEP_COMPLETED]
        assert len(alongside.events) == 1
        assert any(s.startswith("SELECT") and "steps" in s for s in statements)  # read, then

        events = await world.get_events(run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert len({e.event_id for e in events}) == len(events)
        steps = {s.step_id: s.status for s in await world.list_steps(run_id)}
        assert steps == {
            pending: StepStatus.PENDING,
            running: StepStatus.COMPLETED,
            fresh: StepStatus.COMPLETED,
            again: StepStatus.PENDING,
        }
        assert len(await world.get_events(other)) == 3
    finally:
        world._writer._conn.set_trace_callback(None)
        await world.close()


async def test_a_wake_up_is_planned_on_the_wait_it_expects(tmp_path: Path) -> None:
    """A worker's wake-up (its wait completed, the next step created and started) reads no
    wait row; completing a wait that is no longer waiting misses, is planned again from the
    rows read, and is refused."""
    world = SQLiteWorld(tmp_path / "w.db")
    me = WorkerInfo(new_id("wrkr"), "here", os.getpid())
    statements: list[str] = []
    try:
        run_id, wait_id, step_id = new_id("wrun"), new_id("wait"), new_id("step")
        await world.create_run(run_id, "wf", b"", {})
        await world.register_worker(me)
        await world.claim_runs(me, ["wf"], limit=1, lease_seconds=60)
        sleeping = [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.WAIT_CREATED, wait_id, None, {"resume_at": time.time()}),
        ]
        await world.append(run_id, sleeping, owner=me.worker_id)
        world._writer._conn.set_trace_callback(statements.append)
        woken = await world.append(
            run_id,
            [
                NewEvent(EventType.WAIT_COMPLETED, wait_id),
                NewEvent(EventType.STEP_CREATED, step_id, None, {"name": "s"}),
                NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": 1}),
            ],
            owner=me.worker_id,
        )
        assert not woken.rejected and len(woken.events) == 3
        assert not [s for s in statements if s.startswith("SELECT") and "waits" in s]

        again = await world.append(
            run_id, [NewEvent(EventType.WAIT_COMPLETED, wait_id)], owner=me.worker_id
        )
        assert [r.reason for r in again.rejected] == [f"wait {wait_id} is not waiting"]
        assert any(s.startswith("SELECT") and "waits" in s for s in statements)
        (wait,) = await world.list_waits(run_id)
        assert wait.completed_at is not None
        logged = [e.type for e in await world.get_events(run_id)]
        assert logged.count(EventType.WAIT_COMPLETED) == 1
    finally:
        world._writer._conn.set_trace_callback(None)
        await world.close()


async def test_rows_of_workers_not_heard_from_for_a_day_are_forgotten(tmp_path: Path) -> None:
    """Every process has a new worker id and nobody asks a pid whether it lives, so a
    killed worker's row would stay for ever: a worker registering drops rows whose last
    heartbeat is over a day old, and keeps the others (live or not)."""
    world = SQLiteWorld(tmp_path / "w.db")
    try:
        gone, quiet = (WorkerInfo(new_id("wrkr"), "h", 1) for _ in range(2))
        await world.register_worker(gone)
        await world.register_worker(quiet)
        with sqlite3.connect(tmp_path / "w.db") as conn:
            conn.execute(
                "UPDATE workers SET heartbeat_at = heartbeat_at - ? WHERE worker_id = ?",
                (_sql.GONE_AFTER + 60, gone.worker_id),
            )
            conn.execute(
                "UPDATE workers SET heartbeat_at = heartbeat_at - 3600 WHERE worker_id = ?",
                (quiet.worker_id,),
            )
        me = WorkerInfo(new_id("wrkr"), "h", os.getpid())
        await world.register_worker(me)
        listed = {w.info.worker_id for w in await world.list_workers()}
        assert listed == {quiet.worker_id, me.worker_id}
    finally:
        await world.close()
