"""``workflowkit start``, ``cancel``, ``wake-up``, ``resume-hook``: act on runs from outside.

These write to the World directly (the same events the client API appends); a worker
serving that World picks the change up. No worker is started here.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from .. import serde
from ..errors import HookNotFoundError
from ..ids import new_id
from ..runtime.executor import encode_input
from ..worlds.base import EventType, NewEvent, RunRecord, RunStatus, World
from .common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    add_json_flag,
    describe,
    print_json,
    require_run,
    run_json,
    with_world,
)

_ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING)


def add_parser(commands: Any) -> None:
    begin = commands.add_parser(
        "start",
        help="start a run of a workflow by its durable name",
        description="Start a run by durable name (module:qualname, or the name= it was given); "
        "a worker that has imported the workflow executes it.",
    )
    begin.add_argument("name", metavar="NAME")
    begin.add_argument(
        "--args",
        default="[]",
        metavar="JSON",
        help="positional arguments as a JSON array (default []), e.g. '[\"o-1\", 500]'",
    )
    begin.add_argument(
        "--kwargs", default="{}", metavar="JSON", help="keyword arguments as a JSON object"
    )
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
        choices=[str(s) for s in _ACTIVE],
        help="bulk: only runs in this status (default: pending and running)",
    )
    cancel.add_argument("--workflow", metavar="NAME", help="bulk: only runs of this workflow")
    cancel.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    add_json_flag(cancel)
    cancel.set_defaults(handler=run_cancel)

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

    resume = commands.add_parser(
        "resume-hook",
        help="deliver a JSON payload to the hook holding TOKEN",
        description="Deliver a payload to a hook, as workflowkit.api.resume_hook does.",
    )
    resume.add_argument("token", metavar="TOKEN")
    resume.add_argument(
        "--json",
        dest="payload",
        required=True,
        metavar="PAYLOAD",
        help="the payload as JSON text ('-' reads it from stdin)",
    )
    resume.set_defaults(handler=run_resume_hook)


# -- cancel --------------------------------------------------------------------------------


@dataclass
class CancelOutcome:
    cancelled: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


async def cancel_runs(world: World, records: list[RunRecord]) -> CancelOutcome:
    outcome = CancelOutcome()
    for record in records:
        if record.status.terminal:
            outcome.skipped.append({"run_id": record.run_id, "status": str(record.status)})
            continue
        result = await world.append(record.run_id, [NewEvent(EventType.RUN_CANCELLED)])
        if result.events:
            outcome.cancelled.append(record.run_id)
        else:  # it ended in the meantime
            outcome.skipped.append({"run_id": record.run_id, "status": str(result.run_status)})
    return outcome


async def matching_runs(
    world: World, statuses: tuple[RunStatus, ...], workflow: str | None
) -> list[RunRecord]:
    found: list[RunRecord] = []
    for status in statuses:
        before: str | None = None
        while True:
            page = await world.list_runs(
                workflow_name=workflow, status=status, limit=500, before=before
            )
            found.extend(page)
            if len(page) < 500:
                break
            before = page[-1].run_id
    found.sort(key=lambda r: r.run_id, reverse=True)
    return found


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

        async def by_id(world: World) -> CancelOutcome:
            records = [await require_run(world, run_id) for run_id in args.run_ids]
            return await cancel_runs(world, records)

        outcome = with_world(args, by_id)
    else:
        statuses = (RunStatus(args.status),) if args.status else _ACTIVE

        async def select(world: World) -> list[RunRecord]:
            return await matching_runs(world, statuses, args.workflow)

        records = with_world(args, select)
        if records and not args.yes:
            what = f"{len(records)} run(s)" + (
                f" of workflow {args.workflow!r}" if args.workflow else ""
            )
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
            if not confirm(f"Cancel {what}?"):
                print("nothing cancelled", file=sys.stderr)
                return EXIT_FAILURE

        async def cancel_them(world: World) -> CancelOutcome:
            return await cancel_runs(world, records)

        outcome = with_world(args, cancel_them) if records else CancelOutcome()

    if args.json:
        print_json({"cancelled": outcome.cancelled, "skipped": outcome.skipped})
        return 0
    for run_id in outcome.cancelled:
        print(f"cancelled {run_id}")
    for skipped in outcome.skipped:
        print(f"{skipped['run_id']} is already {skipped['status']}: not cancelled")
    if not outcome.cancelled and not outcome.skipped:
        print("no matching runs")
    return 0


# -- wake-up -------------------------------------------------------------------------------


def run_wake_up(args: argparse.Namespace) -> int:
    async def action(world: World) -> tuple[RunRecord, list[str], list[str]]:
        record = await require_run(world, args.run_id)
        pending = [w.wait_id for w in await world.list_waits(record.run_id) if not w.completed_at]
        wanted = pending if args.wait_ids is None else [w for w in pending if w in args.wait_ids]
        missing = [] if args.wait_ids is None else [w for w in args.wait_ids if w not in pending]
        if not wanted or record.status.terminal:
            return record, [], missing
        events = [NewEvent(EventType.WAIT_COMPLETED, wait_id) for wait_id in wanted]
        result = await world.append(record.run_id, events)
        woken = [str(e.correlation_id) for e in result.events]
        return record, woken, missing + [w for w in wanted if w not in woken]

    record, woken, missing = with_world(args, action)
    code = EXIT_FAILURE if missing else 0
    if args.json:
        print_json({"run_id": record.run_id, "woken": woken, "not_pending": missing})
        return code
    for wait_id in woken:
        print(f"woke {wait_id}")
    if missing:
        print(f"not pending in run {record.run_id}: {', '.join(missing)}", file=sys.stderr)
    elif not woken:
        print(f"run {record.run_id} ({record.status}) has no pending sleeps")
    return code


# -- resume-hook ---------------------------------------------------------------------------


def run_resume_hook(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.payload == "-" else args.payload
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--json: invalid JSON payload: {exc}", EXIT_USAGE) from None
    try:
        encoded = serde.encode(payload, path="payload")
    except Exception as exc:  # e.g. nested too deep
        raise CliError(f"--json: cannot store this payload: {describe(exc)}", EXIT_USAGE) from None

    async def action(world: World) -> tuple[str, str]:
        hook = await world.get_hook_by_token(args.token)
        if hook is None:
            raise CliError(str(HookNotFoundError(args.token)))
        if hook.is_webhook:
            raise CliError(
                f"token {args.token!r} belongs to a webhook: send an HTTP request to it instead"
            )
        result = await world.append(
            hook.run_id, [NewEvent(EventType.HOOK_RECEIVED, hook.hook_id, encoded)]
        )
        if not result.events:  # disposed, or its run ended, in the meantime
            raise CliError(str(HookNotFoundError(args.token)))
        return hook.hook_id, hook.run_id

    hook_id, run_id = with_world(args, action)
    print(f"delivered to hook {hook_id} of run {run_id}")
    return 0


def run_start(args: argparse.Namespace) -> int:
    positional, keywords = _json_arg(args.args, "--args"), _json_arg(args.kwargs, "--kwargs")
    if not isinstance(positional, list):
        raise CliError("--args must be a JSON array", EXIT_USAGE)
    if not isinstance(keywords, dict):
        raise CliError("--kwargs must be a JSON object", EXIT_USAGE)
    payload = encode_input(tuple(positional), keywords, what=f"workflow {args.name}")
    run_id = new_id("wrun")

    async def action(world: World) -> RunRecord:
        return await world.create_run(run_id, args.name, payload, {"name": args.name})

    record = with_world(args, action, create=True)
    if args.json:
        print_json(run_json(record))
    else:
        print(f"started {record.run_id} ({args.name})")
    return 0


def _json_arg(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{option}: invalid JSON: {exc}", EXIT_USAGE) from None
