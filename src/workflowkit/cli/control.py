"""``workflowkit start``, ``cancel``, ``fail``, ``wake-up``, ``resume-hook``, ``fork``: act on
runs from outside.

These call ``workflowkit._operations`` on the World, as the client API does, so they follow
the same rules; a worker serving that World picks the change up. No worker is started here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .. import _operations
from .._operations import CancelOutcome, Skipped
from .._start_options import make_options
from ..errors import ForkError, SerializationError, StartOptionsError
from ..inspection import Holdups, has_worker, holdups, matching_runs, run_json, waiting_for
from ..worlds.base import World
from ..worlds.records import CreatedRun, RunRecord, RunStatus
from .common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    add_json_flag,
    describe,
    print_json,
    with_world,
)

ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING)  # what bulk cancel may select


def add_parser(commands: Any) -> None:
    begin = commands.add_parser(
        "start",
        help="start a run of a workflow by its durable name",
        description="Start a run by durable name (module:qualname, or the name= it was given); "
        "a worker that has imported the workflow executes it.",
    )
    begin.add_argument("name", metavar="NAME")
    add_call_arguments(begin)
    begin.add_argument(
        "--run-id",
        metavar="ID",
        help="the run's id: if a run has it already, that run is shown and nothing starts",
    )
    begin.add_argument("--delay", metavar="DURATION", help="start no sooner than this, e.g. 10m")
    begin.add_argument(
        "--timeout", metavar="DURATION", help="fail the run if it has not ended by then"
    )
    begin.add_argument("--queue", metavar="NAME", help="the queue the run waits in")
    begin.add_argument("--key", metavar="KEY", help="its key within the queue")
    begin.add_argument("--priority", type=int, default=0, help="higher starts sooner (default 0)")
    add_json_flag(begin)
    begin.set_defaults(handler=run_start)

    cancel = commands.add_parser(
        "cancel",
        help="cancel runs (one by id, or all matching --status/--workflow)",
        description="Cancel a run by id, or every pending/running run matching the filters "
        "(asks for confirmation unless --yes).",
    )
    cancel.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    cancel.add_argument(
        "--status",
        choices=[str(s) for s in ACTIVE],
        help="bulk: only runs in this status (default: pending and running)",
    )
    cancel.add_argument("--workflow", metavar="NAME", help="bulk: only runs of this workflow")
    cancel.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    add_json_flag(cancel)
    cancel.set_defaults(handler=run_cancel)

    fail = commands.add_parser(
        "fail",
        help="end runs as failed (by id), with an optional reason",
        description="End each run that has not ended as failed: its error is a "
        "RunFailedByOperatorError carrying --reason. Runs that already ended are left alone.",
    )
    fail.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="the runs to fail")
    fail.add_argument("--reason", metavar="TEXT", help="why: recorded in the runs' error")
    add_json_flag(fail)
    fail.set_defaults(handler=run_fail)

    wake = commands.add_parser(
        "wake-up", help="end a run's pending sleeps now", description="End sleeps early."
    )
    wake.add_argument("run_id", metavar="RUN_ID")
    wake.add_argument(
        "--id",
        dest="wait_ids",
        action="append",
        metavar="WAIT_ID",
        help="only this sleep (repeatable; default: all pending sleeps)",
    )
    add_json_flag(wake)
    wake.set_defaults(handler=run_wake_up)

    fork = commands.add_parser(
        "fork",
        help="start a new run reusing a run's first steps",
        description="Start a new run of the run's workflow and input whose log begins with "
        "the run's first N steps (their results reused); the code runs again from step N+1.",
    )
    fork.add_argument("run_id", metavar="RUN_ID")
    fork.add_argument(
        "--from-step", type=int, required=True, metavar="N", help="how many steps to reuse"
    )
    add_json_flag(fork)
    fork.set_defaults(handler=run_fork)

    resume = commands.add_parser(
        "resume-hook",
        help="deliver a JSON payload to the hook holding TOKEN",
        description="Deliver a payload to a hook, as workflowkit.api.resume_hook does.",
    )
    resume.add_argument("token", metavar="TOKEN")
    resume.add_argument(
        "--payload",
        required=True,
        metavar="JSON",
        help="the payload as JSON text ('-' reads it from stdin)",
    )
    add_json_flag(resume)
    resume.set_defaults(handler=run_resume_hook)


# -- cancel --------------------------------------------------------------------------------


def interactive() -> bool:
    """Whether we can ask the user (stdin is a terminal)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):
        return False


def confirm(question: str) -> bool:
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


def run_cancel(args: argparse.Namespace) -> int:
    bulk = args.status is not None or args.workflow is not None
    if args.run_ids and bulk:
        raise CliError("give run ids or --status/--workflow, not both", EXIT_USAGE)
    if not args.run_ids and not bulk:
        raise CliError(
            "cancel what? give a RUN_ID, or --status/--workflow to cancel matching runs",
            EXIT_USAGE,
        )
    if args.run_ids:
        outcome = with_world(args, lambda world: _operations.cancel(world, args.run_ids))
    else:
        statuses = (RunStatus(args.status),) if args.status else ACTIVE
        records = with_world(args, lambda world: matching_runs(world, statuses, args.workflow))
        if records and not args.yes and not _confirmed(args, records):
            print("nothing cancelled", file=sys.stderr)
            return EXIT_FAILURE
        outcome = CancelOutcome()
        if records:
            outcome = with_world(args, lambda world: _operations.cancel_runs(world, records))
    _print_cancelled(args, outcome)
    return 0


def _confirmed(args: argparse.Namespace, records: list[RunRecord]) -> bool:
    """Whether the user agrees to cancel ``records`` (asked on the terminal)."""
    what = f"{len(records)} run(s)" + (f" of workflow {args.workflow!r}" if args.workflow else "")
    if not interactive():
        raise CliError(
            f"refusing to cancel {what} without confirmation: stdin is not a terminal; "
            "pass --yes to confirm",
            EXIT_USAGE,
        )
    for record in records[:20]:
        print(f"  {record.run_id}  {record.workflow_name}  {record.status}")
    if len(records) > 20:
        print(f"  ... and {len(records) - 20} more")
    return confirm(f"Cancel {what}?")


def _print_cancelled(args: argparse.Namespace, outcome: CancelOutcome) -> None:
    _print_ended(args, "cancelled", outcome.cancelled, outcome.skipped)
    if not outcome.cancelled and not outcome.skipped and not args.json:
        print("no matching runs")


def _print_ended(
    args: argparse.Namespace, verb: str, ended: Sequence[str], skipped: Sequence[Skipped]
) -> None:
    """What ``cancel`` or ``fail`` did: the runs ``verb`` (cancelled, failed), and those
    passed over because they had ended already."""
    if args.json:
        passed = [{"run_id": x.run_id, "status": x.status} for x in skipped]
        print_json({verb: list(ended), "skipped": passed})
        return
    for run_id in ended:
        print(f"{verb} {run_id}")
    for passed_over in skipped:
        print(f"{passed_over.run_id} is already {passed_over.status}: not {verb}")


# -- fail ----------------------------------------------------------------------------------


def run_fail(args: argparse.Namespace) -> int:
    outcome = with_world(args, lambda world: _operations.fail(world, args.run_ids, args.reason))
    _print_ended(args, "failed", outcome.failed, outcome.skipped)
    return 0


# -- wake-up -------------------------------------------------------------------------------


def run_wake_up(args: argparse.Namespace) -> int:
    outcome = with_world(args, lambda world: _operations.wake_up(world, args.run_id, args.wait_ids))
    record, woken, missing = outcome.run, outcome.woken, outcome.not_pending
    code = EXIT_FAILURE if missing else 0
    if args.json:
        print_json(
            {
                "run_id": record.run_id,
                "woken": list(woken),
                "not_pending": list(missing),
                "started": outcome.started,
            }
        )
        return code
    for wait_id in woken:
        print(f"woke {wait_id}")
    if outcome.started:
        print(f"run {record.run_id} starts now (it was waiting for its start time)")
    elif missing:
        print(f"not pending in run {record.run_id}: {', '.join(missing)}", file=sys.stderr)
    elif not woken:
        print(f"run {record.run_id} ({record.status}) has no pending sleeps")
    return code


# -- fork ------------------------------------------------------------------------------------


def run_fork(args: argparse.Namespace) -> int:
    try:
        record = with_world(
            args, lambda world: _operations.fork(world, args.run_id, args.from_step)
        )
    except ForkError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.json:
        print_json(run_json(record, None))
    else:
        print(f"started {record.run_id}, a fork of {args.run_id} reusing {args.from_step} step(s)")
    return 0


# -- resume-hook ---------------------------------------------------------------------------


def run_resume_hook(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.payload == "-" else args.payload
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--payload: invalid JSON: {exc}", EXIT_USAGE) from None
    try:
        hook = with_world(args, lambda world: _operations.resume_hook(world, args.token, payload))
    except SerializationError as exc:
        raise CliError(
            f"--payload: cannot store this payload: {describe(exc)}", EXIT_USAGE
        ) from None
    if args.json:
        print_json({"hook_id": hook.hook_id, "run_id": hook.run_id, "token": hook.token})
    else:
        print(f"delivered to hook {hook.hook_id} of run {hook.run_id}")
    return 0


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """``--args`` and ``--kwargs``: the workflow's arguments, as JSON (``call_arguments``)."""
    parser.add_argument(
        "--args",
        default="[]",
        metavar="JSON",
        help="positional arguments as a JSON array (default []), e.g. '[\"o-1\", 500]'",
    )
    parser.add_argument(
        "--kwargs", default="{}", metavar="JSON", help="keyword arguments as a JSON object"
    )


def call_arguments(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    positional, keywords = _json_arg(args.args, "--args"), _json_arg(args.kwargs, "--kwargs")
    if not isinstance(positional, list):
        raise CliError("--args must be a JSON array", EXIT_USAGE)
    if not isinstance(keywords, dict):
        raise CliError("--kwargs must be a JSON object", EXIT_USAGE)
    return positional, keywords


def run_start(args: argparse.Namespace) -> int:
    positional, keywords = call_arguments(args)
    try:
        options = make_options(
            run_id=args.run_id,
            queue=args.queue,
            key=args.key,
            priority=args.priority,
            delay=args.delay,
            timeout=args.timeout,
        )
    except StartOptionsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None

    async def action(world: World) -> tuple[CreatedRun, Holdups]:
        created = await _operations.start_by_name(world, args.name, positional, keywords, options)
        return created, await holdups(world, [created.record])

    created, held = with_world(args, action, create=True)
    record = created.record
    now = datetime.now(UTC)
    if created.created and not has_worker(args.name, held.workers, now):
        # Started all the same: a worker that has it may come (a deploy in progress).
        print(
            f"warning: no live worker has registered workflow {args.name!r}; the run stays "
            "pending until one that imports it starts (workflowkit worker MODULE)",
            file=sys.stderr,
        )
    if args.json:
        print_json(run_json(record, waiting_for(record, held, now)))
    elif created.created:
        print(f"started {record.run_id} ({args.name})")
    else:
        print(f"{record.run_id} exists already ({record.status}): nothing started")
    return 0


def _json_arg(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{option}: invalid JSON: {exc}", EXIT_USAGE) from None
