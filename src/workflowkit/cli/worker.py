"""``workflowkit worker MODULE...``: execute runs until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import os
import signal
import sys
import threading
from typing import Any

from .. import _settings
from ..logs import JsonFormatter
from ..runtime.worker import Worker
from ..worlds import open_world
from ..worlds.base import on_home_loop
from .common import seconds

log = logging.getLogger("workflowkit.cli")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("worker", help="execute workflow runs", description=__doc__)
    parser.add_argument("modules", nargs="+", help="modules defining workflows and steps")
    parser.add_argument(
        "--grace",
        type=seconds(zero=True),
        default=30.0,
        help="seconds running steps get to finish on shutdown before runs are handed back",
    )
    parser.add_argument(
        "--step-slots",
        type=int,
        default=None,
        metavar="N",
        help="steps run at once here; more go to other workers (default $WORKFLOWKIT_STEP_SLOTS "
        "or 256)",
    )
    parser.add_argument(
        "--max-runs",
        type=int,
        default=None,
        metavar="N",
        help="runs held in memory at once here (default $WORKFLOWKIT_MAX_RUNS or 2000)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object per log line, with each record's extra fields "
        "(run_id, step_id, workflow, ...)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    # A SIGTERM that arrives while modules are still importing must stop us cleanly too.
    early_stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: early_stop.set())
    sys.path.insert(0, os.getcwd())
    for name in args.modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            print(f"workflowkit worker: cannot import {name!r}: {exc}", file=sys.stderr)
            return 2
    for option in ("step_slots", "max_runs"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            flag = "--" + option.replace("_", "-")
            print(f"workflowkit worker: {flag} must be at least 1", file=sys.stderr)
            return 2
    _settings.check_settings()  # before the World opens: a bad setting stops the start
    tune_gc()
    asyncio.run(_serve(args, early_stop))
    return 0


# A worker holds many runs' objects at once (their loops, tasks, logs): with Python's default
# thresholds the collector walked them all again and again, a fifth of the worker's CPU in
# the PostgreSQL throughput bench (bench/README.md). Young cycles are still collected, once
# per 50,000 allocations rather than 700.
GC_THRESHOLDS = (50_000, 10, 10)
_PYTHON_DEFAULT_THRESHOLDS = (700, 10, 10)


def tune_gc() -> None:
    """Tune the collector for a worker process, unless the application set it itself: the
    imported code's objects are frozen out of its passes, and collections come less often."""
    if gc.get_threshold() != _PYTHON_DEFAULT_THRESHOLDS:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(args: argparse.Namespace, early_stop: threading.Event) -> None:
    world = open_world(args.world)
    worker = Worker(world, step_slots=args.step_slots, max_runs=args.max_runs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if early_stop.is_set():
        stop.set()
    # The worker runs where the World works, if it has a loop of its own: no thread hand-offs.
    task = asyncio.ensure_future(on_home_loop(world, worker.run()))
    log.info("worker %s started on %r", worker.worker_id, world)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    log.info(
        "worker %s stopping: finishing running steps (up to %s s)", worker.worker_id, args.grace
    )
    await on_home_loop(world, worker.stop(args.grace))
    await task
    await world.close()
    log.info("worker %s stopped", worker.worker_id)
