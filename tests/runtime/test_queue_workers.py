"""Queue limits across worker processes: several workers on one PostgreSQL database, two on
one SQLite file, each test on both. The limits must hold however the claims interleave, runs
must start by priority, and a killed worker's places must come back."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from pg_procs import WorkerProc, spawn, stop

import workflowkit
from workflowkit.api import Run, start

HERE = Path(__file__).parent


@pytest.fixture
def app_path() -> Iterator[None]:
    sys.path.insert(0, str(HERE))
    yield
    workflowkit.shutdown()
    sys.path.remove(str(HERE))


def intervals(directory: Path, prefix: str = "") -> list[tuple[float, float]]:
    found = []
    for path in directory.glob(f"ran.{prefix}*"):
        began, ended = path.read_text().split()
        found.append((float(began), float(ended)))
    return found


def most_at_once(spans: Sequence[tuple[float, float]]) -> int:
    edges = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def workers(url: str, count: int, tmp_path: Path, lease: float = 30) -> list[WorkerProc]:
    return [
        spawn(url, ["queue_app"], tmp_path / f"worker{n}.log", lease=lease) for n in range(count)
    ]


async def run_all(
    url: str, runs: Sequence[tuple[str, str, dict[str, object]]], directory: Path
) -> None:
    """Start ``(tag, queue, options)`` runs of qa.job from here (no worker), wait for all."""
    import queue_app

    workflowkit.configure(url, embedded_worker=False)
    handles: list[Run[str]] = []
    for tag, queue, options in runs:
        bound = queue_app.job.options(queue=queue, **options)  # type: ignore[arg-type]
        handles.append(await start(bound, str(directory), tag, 0.02))
    for handle in handles:
        await handle.return_value(timeout=180)


@pytest.fixture(params=["postgres", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The World the workers share: a fresh PostgreSQL schema, or one SQLite file."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wk.db'}"
    pg_url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    return f"{pg_url}?schema={schema}"


def processes(url: str, on_postgres: int) -> int:
    """How many worker processes a test runs: ``on_postgres``, or two on one SQLite file."""
    return 2 if url.startswith("sqlite") else on_postgres


def first_starts(url: str, queue: str) -> list[float]:
    """When each run of ``queue`` first started from it (Unix seconds), in order."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            rows = db.execute("SELECT dequeued_at FROM runs WHERE queue = ?", (queue,))
            return sorted(float(row[0]) for row in rows)
    base, schema = url.split("?schema=")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        cur = conn.execute(
            "SELECT extract(epoch FROM dequeued_at) FROM runs WHERE queue = %s", (queue,)
        )
        return sorted(float(row[0]) for row in cur.fetchall())


@pytest.mark.slow
async def test_workers_keep_a_concurrency_of_three(
    app_path: None, url: str, tmp_path: Path
) -> None:
    procs = workers(url, processes(url, 4), tmp_path)
    try:
        await run_all(url, [(f"c{n}", "qa.three", {}) for n in range(300)], tmp_path)
    finally:
        stop(procs)
    spans = intervals(tmp_path)
    assert len(spans) == 300
    assert most_at_once(spans) == 3


@pytest.mark.slow
async def test_one_run_per_key_across_workers(app_path: None, url: str, tmp_path: Path) -> None:
    procs = workers(url, processes(url, 3), tmp_path)
    runs = [(f"k{n % 10}-{n}", "qa.per-key", {"key": f"k{n % 10}"}) for n in range(100)]
    try:
        await run_all(url, runs, tmp_path)
    finally:
        stop(procs)
    for key in range(10):
        assert most_at_once(intervals(tmp_path, f"k{key}-")) == 1
    assert most_at_once(intervals(tmp_path)) > 1  # different keys did run side by side


@pytest.mark.slow
async def test_a_rate_limit_holds_over_300_starts(app_path: None, url: str, tmp_path: Path) -> None:
    procs = workers(url, 2, tmp_path)
    try:
        await run_all(url, [(f"r{n}", "qa.rate", {}) for n in range(300)], tmp_path)
    finally:
        stop(procs)
    starts = first_starts(url, "qa.rate")
    assert len(starts) == 300
    busiest = max(sum(1 for t in starts[i:] if t < s + 1.0) for i, s in enumerate(starts))
    assert busiest <= 20
    assert starts[-1] - starts[0] >= 14.0  # 300 starts at 20 a second take 15 s at least


@pytest.mark.slow
async def test_runs_start_by_priority_across_workers(
    app_path: None, url: str, tmp_path: Path
) -> None:
    """One place, held while runs of two priorities queue behind it: when it frees, the
    workers start every high-priority run before any low one, each lane in start order."""
    import queue_app

    procs = workers(url, processes(url, 3), tmp_path)
    try:
        workflowkit.configure(url, embedded_worker=False)
        d = str(tmp_path)
        gate = await start(queue_app.job.options(queue="qa.one"), d, "gate", 0.0, False, True)
        while not (tmp_path / "gated.gate").exists():
            await asyncio.sleep(0.02)
        runs = []
        for tag, priority in [
            *((f"low{n}", 0) for n in range(4)),
            *((f"high{n}", 5) for n in range(4)),
        ]:
            bound = queue_app.job.options(queue="qa.one", priority=priority)
            runs.append(await start(bound, d, tag))
        await asyncio.sleep(0.5)
        assert {await run.status() for run in runs} == {"pending"}  # the place is taken
        (tmp_path / "open").write_text("x")
        for run in [gate, *runs]:
            await run.return_value(timeout=60)
    finally:
        stop(procs)
    began = {p.name.split(".")[1]: float(p.read_text().split()[0]) for p in tmp_path.glob("ran.*")}
    order = sorted(began, key=began.__getitem__)
    assert order == ["gate", *(f"high{n}" for n in range(4)), *(f"low{n}" for n in range(4))]
    assert most_at_once(intervals(tmp_path)) == 1


@pytest.mark.slow
async def test_a_killed_worker_s_places_come_back(app_path: None, url: str, tmp_path: Path) -> None:
    import queue_app

    (first,) = workers(url, 1, tmp_path, lease=5)
    workflowkit.configure(url, embedded_worker=False)
    job, d = queue_app.job.options(queue="qa.two"), str(tmp_path)
    blocked = [await start(job, d, f"b{n}", 0.0, True) for n in range(2)]
    others = [await start(job, d, f"o{n}") for n in range(3)]
    for n in range(2):
        while not (tmp_path / f"blocking.b{n}").exists():
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    assert {await run.status() for run in others} == {"pending"}  # the two places are taken
    first.signal(signal.SIGKILL)
    first.proc.wait()
    (tmp_path / "killed").write_text("x")
    (second,) = workers(url, 1, tmp_path, lease=5)
    try:
        for run in [*blocked, *others]:
            await run.return_value(timeout=60)
    finally:
        stop([second])
    assert most_at_once(intervals(tmp_path)) <= 2
