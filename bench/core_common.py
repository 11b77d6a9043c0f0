"""Shared pieces of the core benchmark: workload sizes, step bodies, result reporting.

Standard library only: it is imported both by the workflowkit cases (project venv) and by
the DBOS cases (their own venv, without workflowkit installed). Each case runs in a child
process that prints exactly one ``BENCH_RESULT {json}`` line on stdout.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "

# The sleep between the 10,000th step and the marker step in case (f); the resume process is
# started only once it is due, so the sleep itself is not part of what is measured.
COLD_SLEEP_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each case is; ``quick`` shrinks them for a smoke run."""

    latency_runs: int = 200  # (a) sequential 1-step runs
    latency_warmup: int = 10  # (a) runs before measuring, not counted
    chain_steps: int = 1000  # (b) steps in one chain
    chain_repeats: int = 3  # (b) chains timed; the median is reported
    fanout_runs: int = 1000  # (c) workflows started at once
    fanout_steps: int = 10  # (c) steps in each of them
    parallel_steps: int = 100  # (d) parallel steps in one workflow
    parallel_repeats: int = 5  # (d) workflows timed; the median is reported
    sleep_runs: int = 1000  # (e) runs each sleeping ``sleep_seconds``
    sleep_seconds: float = 1.0  # (e)
    cold_steps: int = 10_000  # (f) completed steps before the cold resume
    idem_runs: int = 1000  # (g) runs with chosen ids, then started again with the same ids
    children: int = 100  # (h) child runs a parent starts and awaits
    children_repeats: int = 5  # (h) parents timed; the median is reported
    floor_appends: int = 5000  # floor: single-append transactions
    floor_batch: int = 100  # floor: appends per group-commit transaction

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            latency_runs=50,
            latency_warmup=5,
            chain_steps=200,
            chain_repeats=1,
            fanout_runs=100,
            parallel_repeats=3,
            sleep_runs=100,
            cold_steps=1000,
            idem_runs=200,
            children_repeats=3,
            floor_appends=1000,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Sizes:
        return cls(**json.loads(text))


# -- the step bodies both engines run (identical work on both sides) ------------------------


def step_body(x: int) -> int:
    """The body of every compute step: trivial, so the engine's overhead is what is timed."""
    return x + 1


def marker_body(path: str) -> float:
    """The body of case (f)'s first step after the resume: note when it started."""
    now = time.time()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(repr(now))
    return now


# -- measuring and reporting ----------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM), in MiB."""
    kib = _status_kib("VmHWM")
    if kib is None:  # not Linux: ru_maxrss is KiB on Linux, bytes on macOS
        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kib = raw // 1024 if sys.platform == "darwin" else raw
    return kib / 1024


def current_rss_mib() -> float:
    kib = _status_kib("VmRSS")
    return peak_rss_mib() if kib is None else kib / 1024


def io_counters() -> dict[str, int]:
    """This process's ``/proc/self/io`` counters (``wchar``: bytes passed to write calls,
    ``syscw``: write calls); empty where there is no such file."""
    try:
        with open("/proc/self/io", encoding="ascii") as handle:
            return {key: int(value) for key, value in (line.split(":") for line in handle)}
    except OSError:
        return {}


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def emit(result: dict[str, Any]) -> None:
    """Hand the case's numbers to the parent process."""
    result.setdefault("peak_rss_mib", round(peak_rss_mib(), 1))
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def read_marker(path: str) -> float | None:
    """The start time ``marker_body`` wrote to ``path``, if it ran."""
    try:
        with open(path, encoding="utf-8") as handle:
            return float(handle.read().strip())
    except (OSError, ValueError):
        return None


def table_fingerprints(path: str, tables: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Each table's row count and a digest of all its rows, read on a connection of its own.

    Case (g) takes these before and after starting existing run ids again: equal
    fingerprints mean the second pass wrote nothing to these tables (no row added, none
    changed). Rows are sorted, so the order SQLite returns them in does not matter.
    """
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        result: dict[str, tuple[int, str]] = {}
        for table in tables:
            rows = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{table}"'))
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]
            result[table] = (len(rows), digest)
        return result
    finally:
        conn.close()


def unchanged_or_raise(
    before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]], what: str
) -> None:
    """Raise if ``after`` differs from ``before`` in any table (see ``table_fingerprints``)."""
    changed = {
        table: (before[table], after.get(table))
        for table in before
        if after.get(table) != before[table]
    }
    if changed:
        detail = "; ".join(
            f"{t}: {b[0]} rows -> {a[0] if a else '?'} rows" for t, (b, a) in changed.items()
        )
        raise AssertionError(f"{what} wrote to the database: {detail}")
