"""The floor of the ``resume_hook`` → next step path on a PostgreSQL server: psycopg alone.

What any engine that keeps the same promises must do at the least: the client commits the
payload with a NOTIFY (one round trip and an fsync); another process, listening, hears it
and commits the step's start (one more round trip and fsync) before the step may run. No
lookup, no locking read, no planning, no serialisation: each of those is the engine's own.
Timed like the engines' hook case: one payload at a time, 50 ms apart (so every hand-off
starts cold), from the client's ``time.time()`` just before its transaction to the moment
the listener's commit returns.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import psycopg

CHANNEL = "wk_floor"
PAUSE = 0.05


def _listen(url: str, samples: int, ready: Any, results: Any) -> None:
    listener = psycopg.connect(url, autocommit=True)
    writer = psycopg.connect(url)
    listener.execute(f"LISTEN {CHANNEL}")
    ready.set()
    latencies: list[float] = []
    for notify in listener.notifies():
        sent = float(notify.payload)
        with writer.transaction():
            writer.execute("INSERT INTO floor_started (sent) VALUES (%s)", (sent,))
        latencies.append((time.time() - sent) * 1e3)
        if len(latencies) == samples:
            break
    results.put(latencies)


def hook_floor(url: str, samples: int = 100, warmup: int = 5) -> dict[str, float]:
    """Median and p99 (ms) of the floor, on the database at ``url``."""
    with psycopg.connect(url, autocommit=True) as admin:
        for table in ("floor_received", "floor_started"):
            admin.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, sent float8)")
    context = multiprocessing.get_context("spawn")
    ready, results = context.Event(), context.Queue()
    total = samples + warmup
    process = context.Process(target=_listen, args=(url, total, ready, results), daemon=True)
    process.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the floor's listener did not start")
        with psycopg.connect(url) as client:
            for _ in range(total):
                time.sleep(PAUSE)
                sent = time.time()
                with client.transaction():
                    client.execute("INSERT INTO floor_received (sent) VALUES (%s)", (sent,))
                    client.execute("SELECT pg_notify(%s, %s)", (CHANNEL, repr(sent)))
        latencies = sorted(results.get(timeout=60)[warmup:])
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
    return {
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }
