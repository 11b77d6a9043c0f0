"""``workflowkit inspect ...``: read runs, steps, events, hooks, sleeps and streams."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from .._operations import require_run
from ..inspection import (
    Failure,
    Holdups,
    attrs_json,
    children_of,
    event_json,
    failure_json,
    failure_of,
    find_runs,
    holdups,
    hook_json,
    iso,
    limits_text,
    open_work,
    queue_json,
    run_json,
    schedule_of,
    shown,
    step_end_reason,
    step_json,
    wait_json,
    waiting_for,
)
from ..serde.exceptions import type_name_of
from ..worlds.base import World
from ..worlds.records import (
    HookRecord,
    OpenWork,
    RunRecord,
    RunStatus,
    StepRecord,
    WaitRecord,
)
from . import streams
from .common import (
    add_json_flag,
    add_run_id,
    duration,
    one_line,
    parse_moment,
    print_fields,
    print_json,
    print_table,
    relative,
    use_color,
    with_world,
)

T = TypeVar("T")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "inspect", help="show runs, steps, events, hooks, sleeps and streams", description=__doc__
    )
    sub = parser.add_subparsers(dest="inspect_command", required=True, metavar="WHAT")

    runs = sub.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    runs.add_argument(
        "--status", choices=[str(s) for s in RunStatus], help="only runs in this status"
    )
    runs.add_argument("--limit", type=_positive, default=20, help="at most N runs (default 20)")
    runs.add_argument(
        "--cursor", metavar="RUN_ID", help="page on: only runs older than this run id"
    )
    runs.add_argument(
        "--since",
        type=parse_moment,
        metavar="WHEN",
        help="only runs created at or after WHEN (ISO datetime, or a duration: '1h' = 1h ago)",
    )
    runs.add_argument(
        "--until", type=parse_moment, metavar="WHEN", help="only runs created before WHEN"
    )
    runs.add_argument(
        "--diverged", action="store_true", help="only runs parked because their code changed"
    )
    runs.add_argument("--queue", metavar="NAME", help="only runs in this queue")
    runs.add_argument("--key", metavar="KEY", help="only runs with this queue key")
    add_json_flag(runs)
    runs.set_defaults(handler=inspect_runs)

    run = sub.add_parser("run", help="show one run")
    run.add_argument("run_id", metavar="RUN_ID")
    add_json_flag(run)
    run.set_defaults(handler=inspect_run)

    for name, help_text, handler in (
        ("steps", "list a run's steps", inspect_steps),
        ("events", "show a run's event log", inspect_events),
        ("sleeps", "list a run's sleeps (waits)", inspect_sleeps),
    ):
        cmd = sub.add_parser(name, help=help_text)
        add_run_id(cmd)
        add_json_flag(cmd)
        cmd.set_defaults(handler=handler)

    queues = sub.add_parser("queues", help="list queues: limits, running and waiting runs")
    add_json_flag(queues)
    queues.set_defaults(handler=inspect_queues)

    hooks = sub.add_parser("hooks", help="list active hooks (of all runs, or of one)")
    add_run_id(hooks, required=False)
    add_json_flag(hooks)
    hooks.set_defaults(handler=inspect_hooks)

    streams.add_parser(sub)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# -- runs ----------------------------------------------------------------------------------


def inspect_runs(args: argparse.Namespace) -> int:
    status = RunStatus(args.status) if args.status else None

    async def action(
        world: World,
    ) -> tuple[list[RunRecord], str | None, Holdups, OpenWork]:
        runs, cursor = await find_runs(
            world,
            workflow=args.workflow,
            status=status,
            limit=args.limit,
            cursor=args.cursor,
            since=args.since,
            until=args.until,
            queue=args.queue,
            key=args.key,
            diverged=True if args.diverged else None,
        )
        return runs, cursor, await holdups(world, runs), await open_work(world, runs)

    runs, next_cursor, held, work = with_world(args, action)
    now = datetime.now(UTC)
    waits = [waiting_for(r, held, now, work) for r in runs]
    if args.json:
        shapes = [run_json(r, w) for r, w in zip(runs, waits, strict=True)]
        print_json({"runs": shapes, "next_cursor": next_cursor})
        return 0
    if not runs:
        print("no runs")
        return 0
    header = ["RUN ID", "WORKFLOW", "STATUS", "CREATED", "DURATION"]
    rows = [
        [
            r.run_id,
            r.workflow_name,
            str(r.status),
            relative(r.created_at, now),
            duration(r.started_at, r.completed_at or (None if r.status.terminal else now)),
        ]
        for r in runs
    ]
    if any(r.options.queue for r in runs):
        header += ["QUEUE", "KEY"]
        for row, r in zip(rows, runs, strict=True):
            row += [r.options.queue or "", r.options.key or ""]
    if any(waits):
        header.append("WAITING FOR")
        for row, wait in zip(rows, waits, strict=True):
            row.append(wait or "")
    print_table(header, rows, color=use_color(args))
    if next_cursor is not None:
        print(f"\nmore: --cursor {next_cursor}")
    return 0


def inspect_queues(args: argparse.Namespace) -> int:
    infos = with_world(args, lambda world: world.list_queues())
    now = datetime.now(UTC)
    shapes = [queue_json(info, now) for info in infos]
    if args.json:
        print_json({"queues": shapes})
        return 0
    if not infos:
        print("no queues (workers register the queues they import when they start)")
        return 0
    header = ["QUEUE", "LIMITS", "RUNNING", "WAITING", "OLDEST WAITING"]
    rows = [
        [
            info.limits.name,
            limits_text(info.limits),
            str(info.running),
            str(info.waiting),
            "" if info.oldest_waiting is None else relative(info.oldest_waiting, now),
        ]
        for info in infos
    ]
    print_table(header, rows, color=use_color(args))
    return 0


def inspect_run(args: argparse.Namespace) -> int:
    async def action(world: World) -> RunDetails:
        record = await require_run(world, args.run_id)
        return RunDetails(
            record,
            await world.list_steps(record.run_id),
            await world.list_waits(record.run_id),
            await holdups(world, [record]),
            await open_work(world, [record]),
            await children_of(world, record.run_id),
            [r.run_id for r in await world.list_runs(forked_from=record.run_id, limit=100)],
            await _schedule_of(world, record.run_id),
        )

    details = with_world(args, action)
    record, steps, waits = details.run, details.steps, details.waits
    now = datetime.now(UTC)
    data = run_json(record, waiting_for(record, details.holdups, now, details.work))
    failure = failure_of(record, steps)
    children = [c.run_id for c in details.children]
    schedule_id, tick = details.schedule or (None, None)
    if args.json:
        extra = {"forks": details.forks, "schedule_id": schedule_id, "scheduled_at": tick}
        print_json({**data, "children": children, **extra, "failure": failure_json(failure)})
        return 0
    # An ended run's sleeps are over, completed or not.
    pending_waits = [] if record.status.terminal else [w for w in waits if w.completed_at is None]
    fields = [
        ("run", record.run_id),
        ("workflow", record.workflow_name),
        ("status", str(record.status)),
        ("waiting for", data["waiting_for"] or "-"),
        ("parent", record.options.parent_run_id or "-"),
        ("children", ", ".join(children) or "-"),
        ("forked from", record.options.forked_from or "-"),
        ("forks", ", ".join(details.forks) or "-"),
        ("code version", record.code_version or "-"),
        ("schedule", f"{schedule_id} (tick {tick})" if schedule_id else "-"),
        ("deadline", relative(record.options.deadline, now)),
        ("created", f"{relative(record.created_at, now)} ({iso(record.created_at)})"),
        ("started", relative(record.started_at, now)),
        ("completed", relative(record.completed_at, now)),
        ("duration", duration(record.started_at, record.completed_at)),
        ("steps", f"{len(steps)} ({_count_by(s.status for s in steps)})" if steps else "0"),
        ("sleeping", ", ".join(_until(w, now) for w in pending_waits) or "-"),
        ("input", one_line(data["input"])),
        ("output", one_line(data["output"])),
    ]
    if failure is None:
        fields.append(("error", one_line(data["error"])))
    print_fields(fields, color=use_color(args))
    if failure is not None:
        _print_failure(failure)
    return 0


def _print_failure(failure: Failure) -> None:
    """The whole error and its traceback (workflowkit's frames left out), after the fields."""
    print("\nerror:")
    print(_indented(failure.error))
    if failure.traceback:
        print("\ntraceback:")
        print(_indented(failure.traceback))
    step = failure.step
    if step is not None:
        print(f"\nlast failed step attempt: {step.step_name} ({step.step_id}) #{step.attempt}")
        print(_indented(step.error))
        if step.traceback:
            print(_indented(step.traceback))


def _indented(text: str) -> str:
    return "\n".join("  " + line if line else "" for line in text.rstrip("\n").splitlines())


@dataclass(frozen=True, slots=True)
class RunDetails:
    run: RunRecord
    steps: list[StepRecord]
    waits: list[WaitRecord]
    holdups: Holdups
    work: OpenWork
    children: list[RunRecord]
    forks: list[str]
    schedule: tuple[str, str] | None  # the schedule and tick it ran for


async def _schedule_of(world: World, run_id: str) -> tuple[str, str] | None:
    created = await world.get_events(run_id)
    return schedule_of(created[0]) if created else None


def _count_by(statuses: Any) -> str:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _until(wait: WaitRecord, now: datetime) -> str:
    return f"{wait.wait_id} resumes {relative(wait.resume_at, now)}"


# -- steps, events, sleeps, hooks ----------------------------------------------------------


def _items_of_run(
    args: argparse.Namespace, fetch: Callable[[World, str], Awaitable[list[T]]]
) -> list[T]:
    """What ``fetch`` lists for ``args.run_id``, after checking that the run exists."""

    async def action(world: World) -> list[T]:
        await require_run(world, args.run_id)
        return await fetch(world, args.run_id)

    return with_world(args, action)


def inspect_steps(args: argparse.Namespace) -> int:
    steps = _items_of_run(args, lambda world, run_id: world.list_steps(run_id))
    if args.json:
        print_json({"run_id": args.run_id, "steps": [step_json(s) for s in steps]})
        return 0
    if not steps:
        print("no steps")
        return 0
    now = datetime.now(UTC)
    rows = []
    for s in steps:
        data = step_json(s)
        # A completed step keeps the error of its last failed attempt; show its output.
        failed = s.status != "completed" and s.error is not None
        result = data["error"] if failed else data["output"]
        rows.append(
            [
                s.step_id,
                s.step_name,
                str(s.status),
                str(s.attempt),
                relative(s.created_at, now),
                duration(s.started_at, s.completed_at),
                one_line(result, 60),
            ]
        )
    print_table(
        ["STEP ID", "NAME", "STATUS", "ATTEMPT", "CREATED", "DURATION", "OUTPUT/ERROR"],
        rows,
        color=use_color(args),
    )
    for s in steps:
        _print_step_ending(s)
    return 0


def _print_step_ending(s: StepRecord) -> None:
    """Below the table: why a step ended with its run, and the last error of a step not
    completed, with its type and the traceback of the step's own code."""
    reason = step_end_reason(s)
    error = shown(s.error) if s.status != "completed" and s.error is not None else None
    if reason is None and error is None:
        return
    print(f"\n{s.step_id} {s.step_name} ({s.status}, attempt {s.attempt})")
    if reason is not None:
        print(f"  ended: {reason}")
    if isinstance(error, dict) and "$error" in error:
        kind = type_name_of(str(error.get("$type", "Error")))
        print(f"  last error: {kind}: {error['$error']}")
        trace = str(error.get("traceback") or "").rstrip()
        if trace:
            print("  " + trace.replace("\n", "\n  "))


def inspect_events(args: argparse.Namespace) -> int:
    events = _items_of_run(args, lambda world, run_id: world.get_events(run_id))
    if args.json:
        print_json({"run_id": args.run_id, "events": [event_json(e) for e in events]})
        return 0
    now = datetime.now(UTC)
    rows = []
    for e in events:
        detail = one_line(shown(e.payload), 60) if e.payload is not None else ""
        if e.attrs:
            attrs = one_line(attrs_json(e.attrs), 40)
            detail = f"{detail} {attrs}".strip()
        rows.append(
            [str(e.seq), str(e.type), e.correlation_id or "-", relative(e.created_at, now), detail]
        )
    print_table(["SEQ", "TYPE", "CORRELATION ID", "AT", "DETAIL"], rows, color=use_color(args))
    return 0


def inspect_sleeps(args: argparse.Namespace) -> int:
    waits = _items_of_run(args, lambda world, run_id: world.list_waits(run_id))
    if args.json:
        print_json({"run_id": args.run_id, "sleeps": [wait_json(w) for w in waits]})
        return 0
    if not waits:
        print("no sleeps")
        return 0
    now = datetime.now(UTC)
    print_table(
        ["WAIT ID", "STATUS", "RESUME AT", "CREATED", "COMPLETED"],
        [
            [
                w.wait_id,
                "waiting" if w.completed_at is None else "completed",
                f"{relative(w.resume_at, now)} ({iso(w.resume_at)})",
                relative(w.created_at, now),
                relative(w.completed_at, now),
            ]
            for w in waits
        ],
        color=use_color(args),
    )
    return 0


def inspect_hooks(args: argparse.Namespace) -> int:
    async def action(world: World) -> list[HookRecord]:
        if args.run_id is not None:
            await require_run(world, args.run_id)
        return await world.list_hooks(args.run_id)

    hooks = with_world(args, action)
    if args.json:
        print_json({"hooks": [hook_json(h) for h in hooks]})
        return 0
    if not hooks:
        print("no active hooks")
        return 0
    now = datetime.now(UTC)
    print_table(
        ["HOOK ID", "RUN ID", "TOKEN", "KIND", "CREATED", "METADATA"],
        [
            [
                h.hook_id,
                h.run_id,
                h.token,
                "webhook" if h.is_webhook else "hook",
                relative(h.created_at, now),
                one_line(shown(h.metadata), 50),
            ]
            for h in hooks
        ],
        color=use_color(args),
    )
    return 0
