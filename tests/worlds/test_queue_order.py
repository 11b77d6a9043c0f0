"""What a claim reads does not grow with the runs waiting in a queue, on both Worlds.

A queued claim reads a queue's waiting runs in aged-priority order through an index
(``runs_queue_order``): it sorted the queue's whole backlog on each claim (100,000 runs
waiting: ~100 ms a claim on PostgreSQL, with claims of one queue taking turns). The tests
also check that the order is still aged priority, then the time each run became due, then
its id. And the claim of runs in no queue, which every claim makes first, reads
``runs_due_queue``: reading ``runs_due``, it passed over every run waiting in a queue
(100,000 waiting: ~65 ms a claim on PostgreSQL)."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from workflowkit.ids import new_id
from workflowkit.worlds import _queue_sql
from workflowkit.worlds.limits import AGING_SECONDS
from workflowkit.worlds.postgres import PostgresWorld
from workflowkit.worlds.postgres._dialect import DIALECT as PG
from workflowkit.worlds.postgres._scheduling import _CLAIM_DUE
from workflowkit.worlds.records import WorkerInfo
from workflowkit.worlds.sqlite import SQLiteWorld
from workflowkit.worlds.sqlite import _jobs as sqlite_jobs
from workflowkit.worlds.sqlite._jobs import DIALECT as SQLITE

# The ``vm_work`` fixture (tests/worlds/conftest.py).
VmWork = Callable[[sqlite3.Connection, Callable[[], object]], int]

OFFER = 72  # what a claim with room for one run reads (limits.offer_size)


def priority_of(n: int) -> int:
    """0, 1 or 2, in runs of 7, so that aged priorities tie now and then."""
    return (n // 7) % 3


def test_sqlite_reads_a_queue_s_waiting_runs_through_its_index(
    tmp_path: Path, vm_work: VmWork
) -> None:
    path = tmp_path / "w.db"
    asyncio.run(SQLiteWorld(path).close())  # create the file and its tables
    conn = sqlite3.connect(path)
    now = float(int(time.time()))  # whole seconds: every rank below is exact
    conn.execute("INSERT INTO queues (name, updated_at) VALUES ('q', ?)", (now,))
    added = 0

    def add(count: int) -> None:
        """``count`` due runs waiting in the queue, two more held by another worker, and five
        asleep with a high priority (their turn comes after they wake)."""
        nonlocal added
        rows = [
            (f"wrun_{added + n:08d}", "pending", now - (added + n), priority_of(added + n))
            for n in range(count)
        ]
        rows += [(f"wrun_z{added}{n}", "running", now + 3600, 9) for n in range(5)]
        added += count
        with conn:
            conn.executemany(
                "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, "
                "wake_at, queue, priority) VALUES (?, 'wf', ?, ?, ?, ?, 'q', ?)",
                [(run_id, status, now, now, wake, prio) for run_id, status, wake, prio in rows],
            )
            conn.execute(
                "UPDATE runs SET owner = 'wrkr_other', lease_until = ? WHERE run_id IN "
                "(SELECT run_id FROM runs WHERE owner IS NULL AND status = 'pending' "
                "ORDER BY run_id LIMIT 2)",
                (now + 60,),
            )

    work = functools.partial(vm_work, conn)

    names = SQLITE.list_param(["wf"])
    candidates = _queue_sql.candidates(SQLITE)
    places = _queue_sql.places(SQLITE, False)
    offer = ("q", now, now, names, OFFER)
    plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + candidates, offer))
    assert "runs_queue_order" in plan and "ORDER BY" not in plan, plan  # no sort
    costs = []
    for rounds, waiting in enumerate((100, 3000), 1):
        add(waiting)
        due = conn.execute(
            "SELECT run_id, wake_at, priority FROM runs WHERE queue = 'q' AND owner IS NULL "
            "AND wake_at <= ?",
            (now,),
        ).fetchall()
        due.sort(key=lambda r: (r[1] - AGING_SECONDS * r[2], r[1], r[0]))
        assert [row[0] for row in conn.execute(candidates, offer)] == [r[0] for r in due[:OFFER]]
        held = conn.execute(places, ("wrkr_me", "q", now)).fetchall()
        assert held == [(None, 2 * rounds, 0)]  # by key (none), all, mine
        costs.append(
            (
                work(lambda: conn.execute(candidates, offer).fetchall()),
                work(lambda: conn.execute(places, ("wrkr_me", "q", now)).fetchall()),
            )
        )
    conn.close()
    few, many = costs
    assert all(m < 2 * f + 10 for f, m in zip(few, many, strict=True)), costs


def test_postgres_reads_a_queue_s_waiting_runs_through_its_index(
    pg_url: str, pg_schema: str
) -> None:
    asyncio.run(PostgresWorld(pg_url, schema=pg_schema).close())  # the schema and tables
    now = datetime.fromtimestamp(int(time.time()), UTC)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg_schema)))
        conn.execute("INSERT INTO queues (name, updated_at) VALUES ('q', now())")
        conn.execute(
            "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, wake_at, "
            "queue, priority) SELECT 'wrun_' || lpad(g::text, 8, '0'), 'wf', 'pending', "
            "now(), now(), %s - g * interval '1 second', 'q', (g / 7) %% 3 "
            "FROM generate_series(1, 20000) g",
            (now,),
        )
        conn.execute("ANALYZE runs")
        candidates = _queue_sql.candidates(PG)
        offer = ("q", now, now, ["wf"], OFFER)
        # The order as aged priority spells it, computed exactly (numeric), to compare.
        aged = conn.execute(
            "SELECT run_id FROM runs WHERE queue = 'q' ORDER BY priority + "
            f"extract(epoch FROM (%s - wake_at)) / {AGING_SECONDS} DESC, wake_at, run_id "
            "LIMIT %s",
            (now, OFFER),
        ).fetchall()
        assert conn.execute(candidates, offer).fetchall() == [
            (row[0], None, True, "pending", None, "wf") for row in aged
        ]
        plan = conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + candidates.encode(), offer)
        assert_read_in_order(plan.fetchone()[0][0]["Plan"])  # type: ignore[index]
        # A statement prepared by psycopg may be planned once for any parameters.
        numbers = iter(range(1, 10))
        generic = re.sub("%s", lambda _: f"${next(numbers)}", candidates)
        conn.execute("PREPARE offer (text, timestamptz, timestamptz, text[], bigint) AS " + generic)
        conn.execute("SET plan_cache_mode = force_generic_plan")
        cursor = psycopg.ClientCursor(conn)
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE offer (%s, %s, %s, %s, %s)", offer)
        assert_read_in_order(cursor.fetchone()[0][0]["Plan"])  # type: ignore[index]


def assert_read_in_order(tree: dict[str, Any]) -> None:
    """The plan reads the queue's runs from ``runs_queue_order`` and stops at the offer."""

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]

    found = nodes(tree)
    assert not [n for n in found if n["Node Type"] in ("Sort", "Incremental Sort")], tree
    assert any(n.get("Index Name") == "runs_queue_order" for n in found), tree
    scans = [n for n in found if n.get("Relation Name") == "runs"]
    read = sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in scans)
    assert read <= 2 * OFFER, tree


def test_sqlite_claim_does_not_pass_over_every_run_waiting_in_a_queue(
    tmp_path: Path, vm_work: VmWork
) -> None:
    """A queue at its limit with runs waiting: a claim takes the runs in no queue and in a
    queue no worker registered, and its work does not grow with the queue's backlog."""
    path = tmp_path / "w.db"
    asyncio.run(SQLiteWorld(path).close())  # create the file and its tables
    me = WorkerInfo(new_id("wrkr"), "here", os.getpid())
    conn = sqlite3.connect(path)
    now = float(int(time.time()))
    conn.execute("INSERT INTO queues (name, concurrency, updated_at) VALUES ('q', 1, ?)", (now,))
    insert = (
        "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, wake_at, "
        "queue, owner, lease_until) VALUES (?, 'wf', 'pending', ?, ?, ?, ?, ?, ?)"
    )
    with conn:  # the queue's one place, held by another worker
        conn.execute(insert, ("wrun_held", now, now, now - 1, "q", "wrkr_other", now + 60))

    def claim() -> list[str]:
        with conn:
            return [r.run_id for r in sqlite_jobs.claim_runs(conn, me, '["wf"]', 10, 60.0, now)]

    def work() -> int:
        found: list[list[str]] = []
        counted = vm_work(conn, lambda: found.append(claim()))
        assert found == [[]]
        return counted

    costs = []
    for waiting in (100, 3000):
        rows = [
            (f"wrun_q{waiting}_{n}", now, now, now - n, "q", None, None) for n in range(waiting)
        ]
        rows += [(f"wrun_free{waiting}", now, now, now - 2, None, None, None)]
        rows += [(f"wrun_adhoc{waiting}", now, now, now - 3, "adhoc", None, None)]
        with conn:
            conn.executemany(insert, rows)
        assert claim() == [f"wrun_adhoc{waiting}", f"wrun_free{waiting}"]  # earliest due first
        costs.append(work())
    conn.close()
    few, many = costs
    assert many < 2 * few + 10, costs


def test_postgres_claim_does_not_pass_over_every_run_waiting_in_a_queue(
    pg_url: str, pg_schema: str
) -> None:
    asyncio.run(PostgresWorld(pg_url, schema=pg_schema).close())  # the schema and tables
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg_schema)))
        conn.execute("INSERT INTO queues (name, updated_at) VALUES ('q', now())")
        conn.execute(
            "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, wake_at, "
            "queue) SELECT 'wrun_' || g, 'wf', 'pending', now(), now(), "
            "now() - g * interval '1 ms', 'q' FROM generate_series(1, 20000) g"
        )
        conn.execute("ANALYZE runs")
        params = (["wf"], 10, ["wf"], 10, 10, 10, "wrkr_x", 30.0)
        with conn.transaction(force_rollback=True):
            plan = conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + _CLAIM_DUE.encode(), params)
            tree = plan.fetchone()[0][0]["Plan"]  # type: ignore[index]

    def rows_read(node: dict[str, Any]) -> int:
        own = 0
        if node.get("Relation Name") == "runs" and "Scan" in node["Node Type"]:
            own = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        return own + sum(rows_read(child) for child in node.get("Plans", []))

    assert rows_read(tree) < 100, tree  # nothing to claim: a few index entries, not 20,000
