"""Core engine benchmark: workflowkit next to DBOS (SQLite system database), case by case.

    python bench/core_bench.py                 # everything (about 5 minutes)
    python bench/core_bench.py --quick         # smaller counts, a smoke run
    python bench/core_bench.py --only a,b,floor --no-dbos

Each case runs in a fresh child process per engine (so peak RSS is the case's own) on a
fresh database file; engines never run at the same time. DBOS is installed only for this
benchmark, into ``bench/.venv-dbos`` (created on first use). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core_common import COLD_SLEEP_SECONDS, RESULT_PREFIX, Sizes

HERE = Path(__file__).resolve().parent
DBOS_VENV = HERE / ".venv-dbos"
DBOS_REQUIREMENT = "dbos>=3.4,<4"
CASE_ORDER = ("floor", "a", "b", "c", "d", "e", "f", "g", "h")
CHILD_TIMEOUT = 900.0


# -- what is printed for each case -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    case: str
    key: str
    label: str
    unit: str
    higher_is_better: bool = False
    digits: int = 1


def metrics(sizes: Sizes) -> list[Metric]:
    s = sizes
    return [
        Metric(
            "a",
            "p50_ms",
            f"(a) 1-step workflow, start→result, median of {s.latency_runs}",
            "ms",
            digits=2,
        ),
        Metric(
            "a",
            "p99_ms",
            f"(a) 1-step workflow, start→result, p99 of {s.latency_runs}",
            "ms",
            digits=2,
        ),
        Metric("b", "per_step_us", f"(b) per-step overhead, {s.chain_steps}-step chain", "µs"),
        Metric("b", "policy_per_step_us", "(b) the same, steps with Retry + timeout", "µs"),
        Metric(
            "c",
            "runs_per_s",
            f"(c) {s.fanout_runs} wf x {s.fanout_steps} steps at once: runs/s",
            "runs/s",
            higher_is_better=True,
        ),
        Metric(
            "c",
            "steps_per_s",
            f"(c) {s.fanout_runs} wf x {s.fanout_steps} steps at once: steps/s",
            "steps/s",
            higher_is_better=True,
            digits=0,
        ),
        Metric(
            "d", "total_ms", f"(d) 1 wf with {s.parallel_steps} parallel steps, start→result", "ms"
        ),
        Metric(
            "e",
            "wall_s",
            f"(e) {s.sleep_runs} runs sleeping {s.sleep_seconds:g} s: wall to all done",
            "s",
            digits=2,
        ),
        Metric(
            "e", "peak_rss_mib", f"(e) {s.sleep_runs} runs sleeping: peak RSS of the process", "MiB"
        ),
        Metric(
            "e",
            "rss_growth_mib",
            f"(e) {s.sleep_runs} runs sleeping: peak RSS minus RSS before starting them",
            "MiB",
        ),
        Metric(
            "f",
            "resume_ms",
            f"(f) cold resume, {s.cold_steps:,} done steps → next step starts",
            "ms",
        ),
        Metric(
            "g",
            "first_runs_per_s",
            f"(g) {s.idem_runs} runs with chosen ids, all at once, first pass: runs/s",
            "runs/s",
            higher_is_better=True,
        ),
        Metric(
            "g",
            "again_us_per_start",
            f"(g) the same {s.idem_runs} ids again, all at once: time per start",
            "µs",
        ),
        Metric(
            "g",
            "again_total_ms",
            f"(g) the same {s.idem_runs} ids again, all at once: total time",
            "ms",
            digits=2,
        ),
        Metric(
            "g",
            "again_seq_p50_us",
            f"(g) the same {s.idem_runs} ids again, one at a time: median per start",
            "µs",
        ),
        Metric(
            "h",
            "total_ms",
            f"(h) 1 parent starting {s.children} child runs (1 step each), start→result",
            "ms",
        ),
    ]


# -- the raw SQLite append floor -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloorVariant:
    key: str
    label: str
    journal: str
    synchronous: str
    batch: int
    share: float  # of ``floor_appends``: the slow variants do fewer


FLOOR_VARIANTS = (
    FloorVariant(
        "wal_normal_1",
        "WAL, synchronous=NORMAL, 1 append per commit (THE FLOOR)",
        "wal",
        "NORMAL",
        1,
        1.0,
    ),
    FloorVariant(
        "wal_normal_group",
        "WAL, synchronous=NORMAL, group commit of {batch} appends",
        "wal",
        "NORMAL",
        0,
        1.0,
    ),
    FloorVariant(
        "wal_full_1",
        "WAL, synchronous=FULL, 1 append per commit (reference)",
        "wal",
        "FULL",
        1,
        0.2,
    ),
    FloorVariant(
        "delete_full_1",
        "rollback journal, synchronous=FULL, 1 per commit (DBOS's SQLite defaults)",
        "delete",
        "FULL",
        1,
        0.06,
    ),
)


def append_floor(workdir: Path, sizes: Sizes) -> dict[str, Any]:
    """Durable appends of an event-shaped row with plain sqlite3: µs per append, per variant."""
    payload = b"\x01" * 48  # about the size of a small encoded step result
    result: dict[str, Any] = {}
    for variant in FLOOR_VARIANTS:
        path = workdir / f"floor-{variant.key}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA journal_mode = {variant.journal}")
            conn.execute(f"PRAGMA synchronous = {variant.synchronous}")
            conn.execute(
                "CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, "
                "event_id TEXT NOT NULL, type TEXT NOT NULL, correlation_id TEXT, payload BLOB, "
                "attrs TEXT, created_at REAL NOT NULL, PRIMARY KEY (run_id, seq))"
            )
            batch = variant.batch or sizes.floor_batch
            total = max(batch, int(sizes.floor_appends * variant.share) // batch * batch)
            run_id = f"wrun_{uuid.uuid4().hex}"
            began = time.perf_counter()
            for first in range(0, total, batch):
                conn.execute("BEGIN IMMEDIATE")
                for seq in range(first, first + batch):
                    conn.execute(
                        "INSERT INTO events VALUES (?, ?, ?, 'step_completed', ?, ?, NULL, ?)",
                        (run_id, seq, uuid.uuid4().hex, f"step_{seq}", payload, time.time()),
                    )
                conn.execute("COMMIT")
            elapsed = time.perf_counter() - began
        finally:
            conn.close()
        result[variant.key] = {
            "label": variant.label.format(batch=batch),
            "us_per_append": elapsed / total * 1e6,
            "appends": total,
        }
    result["step_writes"] = step_writes(workdir, sizes.floor_appends)
    return result


def step_writes(workdir: Path, steps: int) -> dict[str, Any]:
    """What SQLite alone costs for the rows one chained step writes, one commit per step.

    Not a floor for the target: with the World alone (in case b) it shows how (b) splits into
    SQLite, the World's own Python and the runtime. Per step
    workflowkit records the step's result, the next step's creation and its start (three
    events, as the reference event model has them), inserts the next step's row and
    completes the previous one, in tables shaped like workflowkit's.
    """
    path = workdir / "step-writes.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = wal")
        conn.execute("PRAGMA synchronous = NORMAL")
        # As in the SQLite World, whose checkpoints run on a thread of their own.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(
            "CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "event_id TEXT NOT NULL, type TEXT NOT NULL, correlation_id TEXT, payload BLOB, "
            "attrs TEXT, created_at REAL NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE steps (run_id TEXT NOT NULL, step_id TEXT NOT NULL, "
            "step_name TEXT NOT NULL, status TEXT NOT NULL, attempt INTEGER NOT NULL, "
            "input_seq INTEGER, output_seq INTEGER, created_at REAL NOT NULL, "
            "started_at REAL, completed_at REAL, PRIMARY KEY (run_id, step_id)) WITHOUT ROWID"
        )
        run_id = f"wrun_{uuid.uuid4().hex}"
        events = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        seq, previous = 0, ""
        began = time.perf_counter()
        for n in range(steps):
            step_id, now = f"step_{n:026d}", time.time()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE steps SET status = 'completed', output_seq = ?, completed_at = ? "
                "WHERE run_id = ? AND step_id = ?",
                (seq + 1, now, run_id, previous),
            )
            conn.execute(
                "INSERT INTO steps (run_id, step_id, step_name, status, attempt, input_seq, "
                "created_at, started_at) VALUES (?, ?, 'bench.add_one', 'running', 1, ?, ?, ?)",
                (run_id, step_id, seq + 2, now, now),
            )
            conn.executemany(
                events,
                [
                    (
                        run_id,
                        seq + 1,
                        uuid.uuid4().hex,
                        "step_completed",
                        previous,
                        b"\x01" * 8,
                        None,
                        now,
                    ),
                    (
                        run_id,
                        seq + 2,
                        uuid.uuid4().hex,
                        "step_created",
                        step_id,
                        b"\x01" * 16,
                        '{"name":"bench.add_one","digest":"0123456789abcdef"}',
                        now,
                    ),
                    (
                        run_id,
                        seq + 3,
                        uuid.uuid4().hex,
                        "step_started",
                        step_id,
                        None,
                        '{"attempt":1}',
                        now,
                    ),
                ],
            )
            conn.execute("COMMIT")
            seq, previous = seq + 3, step_id
        elapsed = time.perf_counter() - began
    finally:
        conn.close()
    return {
        "label": "WAL, synchronous=NORMAL, the rows of one chained step per commit (reference)",
        "us_per_append": elapsed / steps * 1e6,
        "appends": steps,
    }


# -- child processes ----------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def run_child(argv: Sequence[str], timeout: float = CHILD_TIMEOUT) -> Outcome:
    began = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, cwd=HERE, env=env
        )
    except subprocess.TimeoutExpired:
        return Outcome(error=f"timed out after {timeout:.0f} s", seconds=timeout)
    seconds = time.perf_counter() - began
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return Outcome(json.loads(line[len(RESULT_PREFIX) :]), seconds=seconds)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
    return Outcome(error=f"exit {proc.returncode}: " + "\n".join(tail), seconds=seconds)


@dataclass(frozen=True, slots=True)
class Engine:
    name: str
    python: str
    script: str
    extra: tuple[str, ...]

    def argv(self, case: str, workdir: Path, sizes: Sizes) -> list[str]:
        return [
            self.python,
            str(HERE / self.script),
            case,
            "--workdir",
            str(workdir),
            "--sizes",
            sizes.to_json(),
            *self.extra,
        ]

    def run_case(self, case: str, root: Path, sizes: Sizes) -> Outcome:
        workdir = root / f"{case}-{self.name}"
        if case != "f":
            return run_child(self.argv(case, workdir, sizes))
        build = run_child(self.argv("f-build", workdir, sizes))
        if build.error is not None:
            return build
        # Resume only once the sleep is due, so the sleep is not part of what is timed.
        time.sleep(COLD_SLEEP_SECONDS + 0.5)
        resume = run_child(self.argv("f-resume", workdir, sizes))
        resume.values.update(
            {f"f_{k}": v for k, v in build.values.items() if k in ("build_s", "steps_recorded")}
        )
        resume.seconds += build.seconds
        return resume


def dbos_python(explicit: str | None) -> tuple[str | None, str]:
    """The DBOS venv's interpreter, created on first use; or (None, why there is none)."""
    if explicit:
        return explicit, ""
    python = DBOS_VENV / "bin" / "python"
    has_dbos = [str(python), "-c", "import dbos"]
    if python.exists() and subprocess.run(has_dbos, capture_output=True).returncode == 0:
        return str(python), ""
    log(f"installing {DBOS_REQUIREMENT} into {DBOS_VENV} (benchmark only) ...")
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(DBOS_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", DBOS_REQUIREMENT], check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"could not install DBOS ({exc}); rerun, or pass --no-dbos"
    return str(python), ""


# -- printing -----------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmt(value: Any, digits: int) -> str:
    if not isinstance(value, int | float):
        return "—"
    return f"{value:,.{digits}f}"


def advantage(metric: Metric, wk: Any, other: Any) -> float | None:
    """How many times better workflowkit is (>1: workflowkit is ahead)."""
    if not isinstance(wk, int | float) or not isinstance(other, int | float):
        return None
    if wk <= 0 or other <= 0:
        return None
    return wk / other if metric.higher_is_better else other / wk


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def cell(outcome: Outcome | None, metric: Metric) -> str:
    if outcome is None:
        return "not run"
    if outcome.error:
        return "error"
    return fmt(outcome.values.get(metric.key), metric.digits)


def report(
    sizes: Sizes,
    cases: Sequence[str],
    floor: dict[str, Any] | None,
    results: dict[str, dict[str, Outcome]],
    notes: Sequence[str],
) -> str:
    """The printed report; ``results`` maps an engine label to its outcomes by case."""
    out: list[str] = []
    wk = results.get(WK, {})
    others = [name for name in results if name != WK]
    for name, per in results.items():
        described = {o.values["engine"] for o in per.values() if "engine" in o.values}
        out.extend(f"{name}: {engine}" for engine in sorted(described))
    out.extend(notes)
    rows: list[list[str]] = []
    verdicts: list[tuple[str, bool, str]] = []
    for metric in metrics(sizes):
        if metric.case not in cases:
            continue
        w = wk.get(metric.case)
        wv = w.values.get(metric.key) if w and not w.error else None
        row = [metric.label, metric.unit, cell(w, metric)]
        versus: list[tuple[str, float]] = []
        for name in others:
            o = results[name].get(metric.case)
            ov = o.values.get(metric.key) if o and not o.error else None
            adv = advantage(metric, wv, ov)
            row += [cell(o, metric), "—" if adv is None else f"{adv:.2f}x"]
            if adv is not None:
                versus.append((name, adv))
        rows.append(row)
        if versus and metric.key != "rss_growth_mib":
            met = all(adv > 1 for _, adv in versus)
            value = ", ".join(f"{adv:.2f}x vs {name}" for name, adv in versus)
            verdicts.append((f"ahead on {metric.label}", met, value))
    if rows:
        headers = ["case", "unit", WK]
        for name in others:
            headers += [name, "wk adv."]
        out.append("")
        out.append(table(headers, rows, right=set(range(2, len(headers)))))
        if others:
            out.append(
                "wk adv. = how many times better workflowkit is: DBOS÷wk for times and memory, "
                "wk÷DBOS for rates; >1 means workflowkit is ahead."
            )
    floor_us: float | None = None
    if floor is not None:
        out.append("")
        out.append(
            "Raw SQLite durable-append floor (plain sqlite3, one event-shaped row per append):"
        )
        frows = [
            [v["label"], f"{v['us_per_append']:.1f}", f"{v['appends']:,}"] for v in floor.values()
        ]
        out.append(table(["variant", "µs/append", "appends"], frows, right={1, 2}))
        floor_us = floor["wal_normal_1"]["us_per_append"]
    per_step = wk["b"].values.get("per_step_us") if "b" in wk else None
    if floor_us and isinstance(per_step, int | float):
        ratio = per_step / floor_us
        out.append(
            f"(b) workflowkit per-step overhead ÷ floor: {ratio:.1f}x "
            f"({per_step:.0f} µs ÷ {floor_us:.1f} µs); for reference (the old ≤ 3x target is "
            "retired: bench/README.md)"
        )
        world_us = wk["b"].values.get("world_us_per_step")
        if isinstance(world_us, int | float):
            out.append(
                f"    of which the SQLite World recording a step: {world_us:.0f} µs "
                f"({world_us / floor_us:.1f}x the floor); the rest of the runtime: "
                f"{max(per_step - world_us, 0):.0f} µs"
            )
        writes = floor["step_writes"]["us_per_append"] if floor else None
        if isinstance(writes, int | float):
            out.append(
                f"    plain sqlite3 writing the same rows: {writes:.0f} µs "
                f"({writes / floor_us:.1f}x the floor)"
            )
    resume = wk["f"].values.get("resume_ms") if "f" in wk else None
    if isinstance(resume, int | float):
        verdicts.append(("(f) cold resume under 1 s", resume < 1000, f"{resume:.0f} ms"))
    if verdicts:
        out.append("")
        out.append("Targets (from the issue; a report, not a test):")
        for what, met, value in verdicts:
            out.append(f"  [{'met' if met else 'MISSED'}] {what} ({value})")
    details: list[str] = []
    for case in cases:
        for name, per in results.items():
            outcome = per.get(case)
            if outcome is None:
                continue
            if outcome.error:
                details.append(f"  ({case}) {name}: ERROR {outcome.error}")
                continue
            extras = ", ".join(
                f"{k}={v:,.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in outcome.values.items()
                if k != "engine"
            )
            details.append(f"  ({case}) {name} [{outcome.seconds:.1f} s]: {extras}")
    if details:
        out.append("")
        out.append("Details (every number each child reported; [its wall time]):")
        out.extend(details)
    return "\n".join(out)


# -- main ---------------------------------------------------------------------------------------

WK = "workflowkit"
DBOS_LABELS = {"default": "DBOS", "wal": "DBOS WAL"}


def parse_cases(text: str | None) -> list[str]:
    if not text:
        return list(CASE_ORDER)
    wanted = {c.strip().lower() for c in text.split(",") if c.strip()}
    unknown = wanted - set(CASE_ORDER)
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}; pick from {','.join(CASE_ORDER)}")
    return [c for c in CASE_ORDER if c in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="workflowkit vs DBOS (SQLite) core engine benchmark; see bench/README.md"
    )
    parser.add_argument("--only", help=f"comma-separated cases among {','.join(CASE_ORDER)}")
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument("--no-dbos", action="store_true", help="run workflowkit only")
    parser.add_argument(
        "--dbos-sqlite",
        choices=["default", "wal", "both"],
        default="both",
        help="DBOS with its own SQLite settings (rollback journal, synchronous=FULL), with "
        "WAL + synchronous=NORMAL like workflowkit, or both (default)",
    )
    parser.add_argument(
        "--dbos-style",
        choices=["async", "sync"],
        default="async",
        help="DBOS workflows and steps as async def (default) or def",
    )
    parser.add_argument(
        "--wk-steps",
        choices=["async", "sync"],
        default="async",
        help="workflowkit steps as async def (default) or def (run in the thread pool)",
    )
    parser.add_argument("--dbos-python", help="an interpreter that has dbos installed")
    parser.add_argument("--workdir", type=Path, help="where the databases go (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--json", type=Path, help="also write every raw number to this file")
    args = parser.parse_args(argv)

    cases = parse_cases(args.only)
    sizes = Sizes.quick() if args.quick else Sizes()
    root = (args.workdir or Path(tempfile.mkdtemp(prefix="workflowkit-bench-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)

    engines: list[tuple[str, Engine]] = [
        (WK, Engine("wk", sys.executable, "core_cases.py", ("--steps", args.wk_steps)))
    ]
    notes: list[str] = []
    if args.no_dbos:
        notes.append("DBOS: not run (--no-dbos)")
    elif any(c != "floor" for c in cases):
        python, why = dbos_python(args.dbos_python)
        if python is None:
            notes.append(f"DBOS: {why}")
        else:
            modes = ["default", "wal"] if args.dbos_sqlite == "both" else [args.dbos_sqlite]
            for mode in modes:
                extra = ("--style", args.dbos_style, "--sqlite", mode)
                engines.append(
                    (DBOS_LABELS[mode], Engine(f"dbos-{mode}", python, "dbos_cases.py", extra))
                )
    if any(name != WK for name, _ in engines) and "d" in cases and args.dbos_style == "sync":
        notes.append("(d) runs DBOS async in any case: a sync DBOS workflow has no parallel steps")

    began = time.perf_counter()
    floor: dict[str, Any] | None = None
    results: dict[str, dict[str, Outcome]] = {name: {} for name, _ in engines}
    try:
        for case in cases:
            if case == "floor":
                log("[floor] raw SQLite appends ...")
                floor_dir = root / "floor"
                floor_dir.mkdir(exist_ok=True)
                floor = append_floor(floor_dir, sizes)
                continue
            for name, engine in engines:
                log(f"[{case}] {name} ...")
                outcome = engine.run_case(case, root, sizes)
                status = f"error: {outcome.error.splitlines()[0]}" if outcome.error else "ok"
                log(f"[{case}] {name}: {status} ({outcome.seconds:.1f} s)")
                results[name][case] = outcome
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)

    print(report(sizes, cases, floor, results, notes))
    kept = f"; databases kept in {root}" if args.keep or args.workdir else ""
    print(f"\nTotal benchmark time: {time.perf_counter() - began:.0f} s{kept}")
    if args.json is not None:
        raw = {
            "sizes": json.loads(sizes.to_json()),
            "floor": floor,
            "results": {
                name: {
                    case: {"values": o.values, "error": o.error, "seconds": o.seconds}
                    for case, o in per.items()
                }
                for name, per in results.items()
            },
        }
        args.json.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    failed = any(o.error for per in results.values() for o in per.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
