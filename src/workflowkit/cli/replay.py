"""``workflowkit replay MODULE...``: replay recorded runs against the code in MODULE, writing
nothing; exit status 1 if any run no longer replays (a check to run before a deploy)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from .._replay import REPLAYED, Replayed, replay_runs
from ..errors import WorkflowNotRegisteredError
from ..worlds.records import RunStatus
from .common import EXIT_FAILURE, EXIT_USAGE, CliError, add_json_flag, print_json, with_world


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "replay",
        help="check recorded runs against changed code (writes nothing)",
        description=__doc__,
    )
    parser.add_argument("modules", nargs="+", metavar="MODULE", help="modules to import")
    parser.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    parser.add_argument(
        "--status",
        default=",".join(str(s) for s in REPLAYED),
        metavar="LIST",
        help="which runs, comma-separated (default: running and ended ones)",
    )
    parser.add_argument("--limit", type=int, default=200, help="at most N runs (default 200)")
    add_json_flag(parser)
    parser.set_defaults(handler=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    statuses = _statuses(args.status)
    if args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    sys.path.insert(0, os.getcwd())
    for name in args.modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise CliError(f"cannot import {name!r}: {exc}", EXIT_USAGE) from None
    try:
        report = with_world(
            args,
            lambda world: replay_runs(
                world, workflow=args.workflow, statuses=statuses, limit=args.limit
            ),
        )
    except WorkflowNotRegisteredError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.json:
        print_json({"ok": report.ok, "runs": [_json(r) for r in report.runs]})
    else:
        replayed = [r for r in report.runs if r.skipped is None]
        print(f"replayed {len(replayed)} run(s): {len(report.diverged)} diverged")
        for run in report.diverged:
            # The line begins with the run id: the message need not say it again.
            message = str(run.divergence).removeprefix(f"run {run.run_id}: ")
            print(f"  {run.run_id} ({run.workflow_name}, {run.status}): {message}")
        skipped = len(report.runs) - len(replayed)
        if skipped:
            print(f"skipped {skipped} run(s) of workflows these modules do not define")
    return 0 if report.ok else EXIT_FAILURE


def _json(run: Replayed) -> dict[str, Any]:
    divergence = run.divergence
    return {
        "run_id": run.run_id,
        "workflow_name": run.workflow_name,
        "status": str(run.status),
        "skipped": run.skipped,
        "diverged": None
        if divergence is None
        else {
            "position": divergence.position,
            "expected": divergence.expected,
            "actual": divergence.actual,
            "message": str(divergence),
        },
    }


def _statuses(text: str) -> list[RunStatus]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    valid = {str(s) for s in RunStatus}
    wrong = [n for n in names if n not in valid]
    if wrong or not names:
        raise CliError(f"--status takes statuses from {', '.join(sorted(valid))}", EXIT_USAGE)
    return [RunStatus(n) for n in names]
