"""PostgreSQL benchmark: workflowkit worker processes next to DBOS, on one PostgreSQL server.

    python bench/pg_bench.py                    # private server, every case, both engines
    python bench/pg_bench.py --quick --no-dbos  # a smoke run
    python bench/pg_bench.py --url postgresql://postgres@127.0.0.1:5432/postgres

Cases: throughput (runs/s, steps/s) with 1, 2 and 4 worker processes; wake-up latency after
``resume_hook`` (DBOS: ``send``) and after a sleep is due (median, p99); and the queue case:
the throughput runs in a queue of 50 at once next to the same runs in no queue (and, for
workflowkit, in a queue with no limit), with 1 and 2 worker processes, and the overhead of
the limit. For each throughput and queue case it also reports where the time goes: CPU of
the workers, of the PostgreSQL backends serving them and of the client, commits, and the
statements that took the most server time (``pg_stat_statements``). With the hook case it
also times that path's floor with psycopg alone (``pg_floor.py``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from core_bench import dbos_python, table
from core_common import RESULT_PREFIX
from pg_common import BEGIN_LINE, QUEUE_LIMIT, QUEUE_VARIANTS, WORKER_READY, PgSizes
from pg_floor import hook_floor
from psycopg import sql

HERE = Path(__file__).resolve().parent
CLIENT_TIMEOUT = 900.0
TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def private_server() -> Iterator[str]:
    """A throwaway PostgreSQL with default durability and pg_stat_statements; its admin URL."""
    pg_ctl = shutil.which("pg_ctl") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)),
        None,
    )
    if pg_ctl is None:
        raise SystemExit("no PostgreSQL server binaries (pg_ctl); pass --url to use a server")
    bindir = Path(pg_ctl).parent
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="wk-pgbench-"))
    data, port = root / "data", _free_port()
    if as_owner:
        shutil.chown(root, "postgres", "postgres")
    ctl = [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    try:
        subprocess.run(
            [*as_owner, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=300 "
            "-c shared_buffers=256MB -c shared_preload_libraries=pg_stat_statements "
            "-c pg_stat_statements.track=all"
        )
        subprocess.run(
            [*ctl, "start", "-o", options, "-l", str(root / "server.log")],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "stop", "-m", "fast"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def with_database(url: str, dbname: str, query: str = "") -> str:
    base, _, _ = url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{dbname}{'?' + query if query else ''}"


class Admin:
    """A connection to the server for creating databases and reading statistics."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.statements = self._has_statements()

    def _has_statements(self) -> bool:
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
        except psycopg.Error:
            return False
        return True

    def recreate(self, dbname: str) -> None:
        self.drop(dbname)
        self.conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))

    def drop(self, dbname: str) -> None:
        self.conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )

    def backends(self, dbname: str) -> list[int]:
        cur = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
        return [int(row[0]) for row in cur.fetchall()]

    def commits(self, dbname: str) -> int:
        cur = self.conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (dbname,)
        )
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def statement_times(self, dbname: str) -> dict[int, tuple[int, float, str]]:
        if not self.statements:
            return {}
        cur = self.conn.execute(
            "SELECT queryid, calls, total_exec_time, query FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s)",
            (dbname,),
        )
        return {int(r[0]): (int(r[1]), float(r[2]), str(r[3])) for r in cur.fetchall()}


# -- measuring CPU ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@dataclass(slots=True)
class Sample:
    at: float
    workers: dict[int, float]
    backends: dict[int, float]
    client: float
    commits: int
    statements: dict[int, tuple[int, float, str]]


def sample(admin: Admin, dbname: str, workers: Sequence[int], client: int) -> Sample:
    def cpu(pids: Sequence[int]) -> dict[int, float]:
        return {p: c for p in pids if (c := cpu_seconds(p)) is not None}

    return Sample(
        time.perf_counter(),
        cpu(workers),
        cpu(admin.backends(dbname)),
        cpu_seconds(client) or 0.0,
        admin.commits(dbname),
        admin.statement_times(dbname),
    )


def usage(before: Sample, after: Sample) -> dict[str, Any]:
    """Where the time went between two samples: CPU per party, commits, top statements."""
    wall = after.at - before.at

    def spent(start: dict[int, float], end: dict[int, float]) -> float:
        return sum(value - start.get(pid, 0.0) for pid, value in end.items())

    statements = []
    for queryid, (calls, total, text) in after.statements.items():
        calls0, total0, _ = before.statements.get(queryid, (0, 0.0, ""))
        if calls > calls0:
            statements.append((total - total0, calls - calls0, " ".join(text.split())))
    statements.sort(reverse=True)
    return {
        "wall_s": wall,
        "workers_cpu_s": spent(before.workers, after.workers),
        "postgres_cpu_s": spent(before.backends, after.backends),
        "client_cpu_s": after.client - before.client,
        "commits": after.commits - before.commits,
        "statement_ms": sum(s[0] for s in statements),
        "top_statements": [
            {"ms": round(ms, 1), "calls": calls, "query": query[:160]}
            for ms, calls, query in statements[:6]
        ],
    }


# -- engines ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Engine:
    """How to start one engine's worker processes and its client."""

    label: str  # in the report
    key: str  # in database and file names
    python: str
    client: str  # the script holding the client cases
    worker_args: tuple[str, ...]  # after the interpreter; {url} and {index} filled in
    ready: str  # what a worker's log says once it executes runs
    url_query: str = ""  # appended to the database URL (workflowkit: its schema)
    queue_args: tuple[str, ...] = ()  # added to worker_args for the queue case
    queue_variants: tuple[str, ...] = QUEUE_VARIANTS  # which queue-* client cases it has

    def worker_argv(self, url: str, index: int, queues: bool = False) -> list[str]:
        args = (*self.worker_args, *self.queue_args) if queues else self.worker_args
        return [self.python, *(a.format(url=url, index=index) for a in args)]

    def client_argv(self, case: str, url: str, workdir: Path, sizes: PgSizes) -> list[str]:
        script = str(HERE / self.client)
        paths = ["--url", url, "--workdir", str(workdir)]
        return [self.python, script, case, *paths, *sizes.as_args()]


def workflowkit_engine() -> Engine:
    return Engine(
        "workflowkit",
        "wk",
        sys.executable,
        "pg_wk_cases.py",
        ("-m", "workflowkit", "--world", "{url}", "worker", "pg_wk_cases"),
        "started on",
        "schema=bench",
        ("pg_wk_queues",),  # the queue case's workers also import (so register) its queues
    )


def dbos_engine(python: str) -> Engine:
    return Engine(
        "DBOS",
        "dbos",
        python,
        "pg_dbos_cases.py",
        ("pg_dbos_cases.py", "worker", "--url", "{url}", "--executor", "bench-{index}"),
        WORKER_READY,
        queue_args=("--queues",),
        queue_variants=("none", "limit"),  # every DBOS run is in a queue: no "open" to add
    )


@dataclass(slots=True)
class Outcome:
    values: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def start_workers(
    engine: Engine, url: str, count: int, logs: Path, queues: bool = False
) -> list[subprocess.Popen[bytes]]:
    procs: list[subprocess.Popen[bytes]] = []
    for index in range(count):
        path = logs / f"{engine.key}-worker{index}.log"
        with path.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    engine.worker_argv(url, index, queues), cwd=HERE, stderr=out, stdout=out
                )
            )
        deadline = time.monotonic() + 120
        while engine.ready not in path.read_text(errors="replace"):
            if procs[-1].poll() is not None or time.monotonic() > deadline:
                stop_workers(procs)
                raise RuntimeError(f"worker did not start:\n{path.read_text(errors='replace')}")
            time.sleep(0.05)
    return procs


def stop_workers(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_case(
    admin: Admin,
    engine: Engine,
    dbname: str,
    url: str,
    case: str,
    workers: int,
    sizes: PgSizes,
    workdir: Path,
) -> Outcome:
    """Start ``workers`` worker processes, run the client, sample CPU around its timed part."""
    workdir.mkdir(parents=True, exist_ok=True)
    procs = start_workers(engine, url, workers, workdir, queues=case.startswith("queue-"))
    pids = [p.pid for p in procs]
    outcome = Outcome()
    try:
        client = subprocess.Popen(
            engine.client_argv(case, url, workdir / "files", sizes),
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=(workdir / f"{engine.key}-client.log").open("wb"),
            text=True,
        )
        assert client.stdout is not None
        before: Sample | None = None
        deadline = time.monotonic() + CLIENT_TIMEOUT
        for line in client.stdout:
            if line.startswith(BEGIN_LINE):
                before = sample(admin, dbname, pids, client.pid)
            elif line.startswith(RESULT_PREFIX):
                if before is not None:
                    outcome.usage = usage(before, sample(admin, dbname, pids, client.pid))
                outcome.values = json.loads(line[len(RESULT_PREFIX) :])
            if time.monotonic() > deadline:
                client.kill()
        client.wait()
        if not outcome.values:
            tail = (workdir / f"{engine.key}-client.log").read_text(errors="replace")
            outcome.error = f"exit {client.returncode}: " + "\n".join(tail.splitlines()[-8:])
    finally:
        stop_workers(procs)
    return outcome


# -- the run ------------------------------------------------------------------------------------

CASES = ("throughput", "hook", "sleep", "queue")


def queue_key(variant: str, workers: int, round_: int) -> str:
    return f"queue-{variant}-{workers}-r{round_}"


def files_root(where: Path | None) -> Path:
    """A new directory for the cases' files: logs, and the probes the wake-up cases' steps
    write (``pg_common.note``). By default on a tmpfs (``/dev/shm``) when there is one. A
    probe is a file created by the step being timed, on the worker's event loop: on the disk
    the server fsyncs its commits to, each create waited for the journal (about 1 ms, up to
    several under load), holding up the worker's loop, so every run woken after it, in
    either engine."""
    if where is None:
        shm = Path("/dev/shm")
        where = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="wk-pgbench-files-", dir=where))


def run_engine(
    admin: Admin,
    server: str,
    engine: Engine,
    cases: Sequence[str],
    workers: Sequence[int],
    sizes: PgSizes,
    root: Path,
    queue_workers: Sequence[int] = (1, 2),
    rounds: int = 1,
) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    plan = [(f"throughput-{n}", "throughput", n) for n in workers]
    plan += [("hook", "hook", 1), ("sleep", "sleep", 1)]
    plan = [item for item in plan if item[1] in cases]
    if "queue" in cases:  # the variants alternate, so a slow spell hits them alike
        plan += [
            (queue_key(variant, n, r), f"queue-{variant}", n)
            for n in queue_workers
            for r in range(rounds)
            for variant in engine.queue_variants
        ]
    for key, case, count in plan:
        dbname = f"wkbench_{engine.key}_{key.replace('-', '_')}"
        admin.recreate(dbname)
        url = with_database(server, dbname, engine.url_query)
        log(f"[{key}] {engine.label} ...")
        began = time.perf_counter()
        try:
            workdir = root / engine.key / key
            outcome = run_case(admin, engine, dbname, url, case, count, sizes, workdir)
        except Exception as exc:  # a crashed case is reported, the others still run
            outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
        finally:
            admin.drop(dbname)
        status = f"error: {outcome.error.splitlines()[0]}" if outcome.error else "ok"
        log(f"[{key}] {engine.label}: {status} ({time.perf_counter() - began:.1f} s)")
        results[key] = outcome
    return results


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    value: str
    label: str
    unit: str
    higher_is_better: bool
    digits: int


def metrics(workers: Sequence[int], sizes: PgSizes) -> list[Metric]:
    out: list[Metric] = []
    for n in workers:
        what = f"{sizes.runs} runs x {sizes.steps} steps, {n} worker process{'es' if n > 1 else ''}"
        out.append(Metric(f"throughput-{n}", "runs_per_s", what, "runs/s", True, 0))
        out.append(Metric(f"throughput-{n}", "steps_per_s", what, "steps/s", True, 0))
    hook = f"resume_hook → next step starts ({sizes.hook_samples} one at a time)"
    out.append(Metric("hook", "p50_ms", hook + ", median", "ms", False, 1))
    out.append(Metric("hook", "p99_ms", hook + ", p99", "ms", False, 1))
    slept = (
        f"sleep due → next step starts ({sizes.sleepers} runs sleeping {sizes.sleep_seconds:g} s)"
    )
    out.append(Metric("sleep", "p50_ms", slept + ", median", "ms", False, 1))
    out.append(Metric("sleep", "p99_ms", slept + ", p99", "ms", False, 1))
    return out


QUEUE_LABELS = {
    "none": "in no queue",
    "limit": f"in a queue of {QUEUE_LIMIT} at once",
    "open": "in a queue with no limit",
}


def queue_metrics(queue_workers: Sequence[int], sizes: PgSizes) -> list[Metric]:
    """The queue case's rows: runs/s of the median round (key ``queue-VARIANT-N``)."""
    out = []
    for n in queue_workers:
        for variant, label in QUEUE_LABELS.items():
            what = f"{sizes.runs} runs x {sizes.steps} steps {label}, {n} worker(s)"
            out.append(Metric(f"queue-{variant}-{n}", "runs_per_s", what, "runs/s", True, 0))
    return out


def queue_rounds(per: dict[str, Outcome], variant: str, n: int) -> list[tuple[float, Outcome]]:
    """(runs/s, outcome) of every round of one queue variant, in round order."""
    found = []
    prefix = f"queue-{variant}-{n}-r"
    for key, outcome in per.items():
        value = outcome.values.get("runs_per_s") if not outcome.error else None
        if key.startswith(prefix) and isinstance(value, int | float):
            found.append((float(value), outcome))
    return found


def queue_median(per: dict[str, Outcome], variant: str, n: int) -> tuple[float, Outcome] | None:
    """The round with the median runs/s (the lower middle one of an even count)."""
    found = sorted(queue_rounds(per, variant, n), key=lambda item: item[0])
    return found[(len(found) - 1) // 2] if found else None


def add_queue_medians(results: dict[str, dict[str, Outcome]], queue_workers: Sequence[int]) -> None:
    """Put each queue variant's median round under ``queue-VARIANT-N`` for the report."""
    for per in results.values():
        for n in queue_workers:
            for variant in QUEUE_VARIANTS:
                middle = queue_median(per, variant, n)
                if middle is not None:
                    per[f"queue-{variant}-{n}"] = middle[1]
                elif any(k.startswith(f"queue-{variant}-{n}-r") for k in per):
                    per[f"queue-{variant}-{n}"] = Outcome(error="every round failed")


def _every(per: dict[str, Outcome], variant: str, n: int) -> str:
    return ", ".join(f"{v:.0f}" for v, _ in queue_rounds(per, variant, n)) or "—"


def _overhead(none: tuple[float, Outcome] | None, queued: tuple[float, Outcome] | None) -> str:
    if none is None or queued is None:
        return "—"
    return f"{(none[0] - queued[0]) / none[0] * 100:+.1f} %"


def queue_report(
    results: dict[str, dict[str, Outcome]], queue_workers: Sequence[int], rounds: int
) -> list[str]:
    """The queue case: runs/s per variant and the overhead of the limit, per engine."""
    rows = []
    for name, per in results.items():
        for n in queue_workers:
            none, limit, open_ = (queue_median(per, v, n) for v in QUEUE_VARIANTS)
            if none is None and limit is None:
                continue
            rows.append(
                [
                    name,
                    str(n),
                    _every(per, "none", n),
                    _every(per, "limit", n),
                    _overhead(none, limit),
                    _every(per, "open", n),
                    _overhead(none, open_),
                ]
            )
    if not rows:
        return []
    headers = [
        "engine",
        "workers",
        "no queue: runs/s",
        f"queue of {QUEUE_LIMIT}: runs/s",
        "overhead",
        "queue, no limit: runs/s",
        "overhead",
    ]
    out = ["", f"Queue case, runs/s of each round ({rounds} per variant):"]
    out.append(table(headers, rows, right=set(range(1, len(headers)))))
    out.append(
        "overhead = (no queue - queued) / no queue, of the median rounds; target: <= 10 % for "
        f"the queue of {QUEUE_LIMIT}. DBOS starts every run from a queue: its 'no queue' is "
        "the throughput case's queue (no global limit, 100 per worker)."
    )
    if rounds < 3:
        out.append("With fewer than 3 rounds, an overhead within ±20 % is this machine's noise.")
    return out


def report(
    results: dict[str, dict[str, Outcome]],
    workers: Sequence[int],
    sizes: PgSizes,
    cores: int,
    queue_workers: Sequence[int] = (),
    rounds: int = 1,
) -> str:
    out: list[str] = []
    names = list(results)
    for name in names:
        engines = {o.values.get("engine") for o in results[name].values() if o.values}
        out.extend(f"{name}: {e}" for e in sorted(filter(None, engines)))
    add_queue_medians(results, queue_workers)
    rows = []
    for m in [*metrics(workers, sizes), *queue_metrics(queue_workers, sizes)]:
        if not any(m.key in per for per in results.values()):
            continue
        row = [m.label, m.unit]
        values = []
        for name in names:
            outcome = results[name].get(m.key)
            value = outcome.values.get(m.value) if outcome and not outcome.error else None
            values.append(value)
            row.append("error" if outcome and outcome.error else _fmt(value, m.digits))
        if len(names) == 2:
            wk, other = values
            if isinstance(wk, int | float) and isinstance(other, int | float) and wk and other:
                ratio = wk / other if m.higher_is_better else other / wk
                row.append(f"{ratio:.2f}x")
            else:
                row.append("—")
        rows.append(row)
    headers = ["case", "unit", *names] + (["wk adv."] if len(names) == 2 else [])
    out += ["", table(headers, rows, right=set(range(2, len(headers))))]
    if len(names) == 2:
        out.append("wk adv. = DBOS÷wk for latencies, wk÷DBOS for rates; >1: workflowkit ahead.")
    out += queue_report(results, queue_workers, rounds)
    out += ["", f"Where the time goes during each throughput case ({cores} cores; % of one core):"]
    urows = []
    usage_keys = [(f"throughput-{n}", str(n)) for n in workers]
    usage_keys += [
        (f"queue-{v}-{n}", f"{n}, queue-{v}") for n in queue_workers for v in QUEUE_VARIANTS
    ]
    for name in names:
        for key, what in usage_keys:
            u = results[name].get(key, Outcome()).usage
            if not u:
                continue
            wall = u["wall_s"]
            steps = sizes.runs * sizes.steps  # every case here runs them all while timed
            urows.append(
                [
                    name,
                    what,
                    f"{u['workers_cpu_s'] / wall * 100:.0f}",
                    f"{u['workers_cpu_s'] / steps * 1e6:.0f}",
                    f"{u['postgres_cpu_s'] / wall * 100:.0f}",
                    f"{u['postgres_cpu_s'] / steps * 1e6:.0f}",
                    f"{u['client_cpu_s'] / wall * 100:.0f}",
                    f"{u['commits'] / wall:,.0f}",
                    f"{u['statement_ms'] / 1e3 / wall * 100:.0f}",
                ]
            )
    if urows:
        headers = [
            "engine",
            "workers",
            "workers CPU %",
            "µs/step",
            "postgres CPU %",
            "µs/step",
            "client CPU %",
            "commits/s",
            "statement time %",
        ]
        out.append(table(headers, urows, right=set(range(1, 9))))
        out.append(
            "postgres CPU = the backends serving this database; µs/step = that CPU time over "
            "the case's steps; statement time = server time inside statements "
            "(pg_stat_statements), as % of one core."
        )
    top = [(f"throughput-{n}", f"{n} worker process(es)") for n in workers[-1:]]
    top += [
        (f"queue-{v}-{n}", f"{n} worker process(es), queue-{v}")
        for n in queue_workers[-1:]
        for v in ("none", "limit")
    ]
    for name in names:
        for key, what in top:
            u = results[name].get(key, Outcome()).usage
            if u.get("top_statements"):
                out += ["", f"{name}, {what}: statements by server time"]
                out += [
                    f"  {s['ms']:>9,.0f} ms {s['calls']:>8,} calls  {s['query']}"
                    for s in u["top_statements"]
                ]
    errors = [
        f"  {name} {key}: {o.error}"
        for name, per in results.items()
        for key, o in per.items()
        if o.error and o.error != "every round failed"  # each round's error is listed
    ]
    if errors:
        out += ["", "Errors:", *errors]
    return "\n".join(out)


def hook_floor_case(admin: Admin, server: str, sizes: PgSizes) -> dict[str, float] | str:
    """The hook path's floor on this server (``pg_floor``), or why it could not be timed."""
    dbname = "wkbench_floor"
    admin.recreate(dbname)
    try:
        return hook_floor(with_database(server, dbname), sizes.hook_samples, sizes.hook_warmup)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        admin.drop(dbname)


def floor_line(floor: dict[str, float] | str) -> str:
    if isinstance(floor, str):
        return f"\nresume_hook floor (pg_floor.py): error: {floor}"
    return (
        f"\nresume_hook floor, psycopg alone (commit + NOTIFY → listener → commit; "
        f"pg_floor.py): median {floor['p50_ms']:.1f} ms, p99 {floor['p99_ms']:.1f} ms"
    )


def _fmt(value: Any, digits: int) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "—"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="use this server (an admin URL) instead of a private one")
    parser.add_argument(
        "--only", default=",".join(CASES), help=f"comma-separated cases among {','.join(CASES)}"
    )
    parser.add_argument("--workers", default="1,2,4", help="worker process counts (default 1,2,4)")
    parser.add_argument(
        "--queue-workers", default="1,2", help="worker process counts of the queue case (1,2)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of each queue variant (median reported)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument("--no-dbos", action="store_true", help="workflowkit only")
    parser.add_argument("--dbos-python", help="an interpreter that has dbos installed")
    parser.add_argument("--json", type=Path, help="also write every raw number to this file")
    parser.add_argument(
        "--files-dir",
        type=Path,
        help="where the cases' files go (default: /dev/shm if writable, else the temp dir)",
    )
    args = parser.parse_args(argv)
    sizes = PgSizes.quick() if args.quick else PgSizes()
    workers = [int(n) for n in args.workers.split(",")]
    queue_workers = [int(n) for n in args.queue_workers.split(",")]
    rounds = max(1, args.rounds)
    cases = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}; pick from {','.join(CASES)}")

    engines: list[Engine] = [workflowkit_engine()]
    if not args.no_dbos:
        python, why = dbos_python(args.dbos_python)
        if python is None:
            log(f"DBOS: {why}")
        else:
            engines.append(dbos_engine(python))
    began = time.perf_counter()
    root = files_root(args.files_dir)
    server_cm = contextlib.nullcontext(args.url) if args.url else private_server()
    results: dict[str, dict[str, Outcome]] = {}
    try:
        with server_cm as server:
            admin = Admin(server)
            if not admin.statements:
                log("pg_stat_statements is not loaded in this server: no statement times")
            for engine in engines:
                results[engine.label] = run_engine(
                    admin, server, engine, cases, workers, sizes, root, queue_workers, rounds
                )
            if "hook" in cases:
                floor = hook_floor_case(admin, server, sizes)
            admin.conn.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    shown_workers = workers if "throughput" in cases else []
    shown_queues = queue_workers if "queue" in cases else []
    print(report(results, shown_workers, sizes, os.cpu_count() or 1, shown_queues, rounds))
    if "hook" in cases:
        print(floor_line(floor))
    print(f"\nTotal benchmark time: {time.perf_counter() - began:.0f} s")
    if args.json is not None:
        raw = {
            name: {
                k: {"values": o.values, "usage": o.usage, "error": o.error} for k, o in per.items()
            }
            for name, per in results.items()
        }
        args.json.write_text(json.dumps({"sizes": asdict(sizes), "results": raw}, indent=2))
    return 1 if any(o.error for per in results.values() for o in per.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
