"""``workflowkit gc``: delete runs that ended long ago, with everything recorded for them."""

from __future__ import annotations

import argparse
from typing import Any

from .. import _retention
from ..durations import parse_duration
from ..inspection import iso, span_text
from ..worlds.records import RunStatus
from .common import EXIT_USAGE, CliError, add_json_flag, print_json, with_world


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "gc",
        help="delete runs that ended long ago",
        description="Delete runs that ended more than --older-than ago (their events, steps, "
        "sleeps, hooks and streams too), in small batches while workers go on. Runs that have "
        "not ended are never deleted. Workers do this by themselves when "
        "WORKFLOWKIT_RETENTION is set.",
    )
    parser.add_argument(
        "--older-than",
        required=True,
        metavar="DURATION",
        help="how long ago a run must have ended, e.g. 30d or 12h",
    )
    parser.add_argument(
        "--status",
        default="completed,failed,cancelled",
        metavar="LIST",
        help="which ended runs, comma-separated (default: completed,failed,cancelled)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.1,
        metavar="SHARE",
        help="the share of time spent deleting, between 0 and 1 (default 0.1: workers keep "
        "most of the database; 1: as fast as it goes)",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=run_gc)


def run_gc(args: argparse.Namespace) -> int:
    try:
        older_than = parse_duration(args.older_than)
    except (TypeError, ValueError) as exc:
        raise CliError(f"--older-than: {exc}", EXIT_USAGE) from None
    if not 0 < args.pace <= 1:
        raise CliError(f"--pace: give a share above 0 and at most 1, not {args.pace}", EXIT_USAGE)
    statuses = _statuses(args.status)
    done = with_world(
        args,
        lambda world: _retention.collect(
            world, older_than, statuses, dry_run=args.dry_run, share=args.pace
        ),
    )
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "runs": done.runs,
                "webhook_responses": done.webhook_responses,
                "ended_before": iso(done.cutoff),
                "statuses": [str(s) for s in statuses],
            }
        )
        return 0
    what = "would delete" if args.dry_run else "deleted"
    age = span_text(older_than)
    print(f"{what} {done.runs} run(s) that ended more than {age} ago")
    return 0


def _statuses(text: str) -> list[RunStatus]:
    ended = [str(s) for s in _retention.ENDED]
    found: list[RunStatus] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part not in ended:
            raise CliError(
                f"--status: {part!r} is not an ended status; use {', '.join(ended)}", EXIT_USAGE
            )
        found.append(RunStatus(part))
    if not found:
        raise CliError("--status: give at least one status", EXIT_USAGE)
    return found
