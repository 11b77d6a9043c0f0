"""``workflowkit schedules list|show|create|pause|resume|trigger|delete``: see and operate
schedules.

Writes go through ``workflowkit._schedule_ops``, as the client API's do; a worker of the
schedule's workflow notices them at its next poll (within a second by default).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from .. import _schedule_ops
from ..inspection import has_worker, iso, relative, run_json, schedule_json, shown
from ..worlds.base import World
from ..worlds.records import RunRecord, ScheduleRecord, WorkerRecord
from .common import (
    add_json_flag,
    one_line,
    print_fields,
    print_json,
    print_table,
    use_color,
    with_world,
)
from .control import add_call_arguments, call_arguments, confirm, interactive

RECENT_RUNS = 10


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "schedules",
        help="list, show, create, pause, resume, trigger or delete schedules",
        description="Schedules start a workflow on a cron expression; see docs/schedules.md.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every schedule, with its next tick")
    add_json_flag(listing)
    listing.set_defaults(handler=run_list)
    _add_create(actions)
    for name, handler, text in (
        ("show", run_show, "a schedule and its latest runs"),
        ("pause", run_pause, "fire no tick until resumed"),
        ("resume", run_resume, "fire again, from the next tick after now"),
        ("trigger", run_trigger, "start one run now"),
        ("delete", run_delete, "delete a schedule (its runs stay)"),
    ):
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("schedule_id", metavar="SCHEDULE_ID")
        add_json_flag(action)
        if name == "delete":
            action.add_argument("-y", "--yes", action="store_true", help="do not ask")
        action.set_defaults(handler=handler)


def _add_create(actions: Any) -> None:
    create = actions.add_parser(
        "create",
        help="start a workflow on a cron schedule",
        description="Create a schedule of a workflow by its durable name; a worker that has "
        "imported the workflow fires its ticks. Each tick's run gets the tick's time first, "
        "then --args and --kwargs.",
    )
    create.add_argument("schedule_id", metavar="SCHEDULE_ID")
    create.add_argument("workflow", metavar="WORKFLOW", help="the workflow's durable name")
    create.add_argument(
        "--cron", required=True, help="five fields, six with seconds first, or @hourly, @daily..."
    )
    add_call_arguments(create)
    create.add_argument("--timezone", default="UTC", help="IANA name the cron is read in")
    create.add_argument(
        "--catch-up", default="none", choices=("none", "latest", "all"), help="missed ticks"
    )
    create.add_argument(
        "--overlap",
        default="skip",
        choices=("skip", "allow", "buffer_one"),
        help="a tick while the last run is active",
    )
    for flag, text in (("--start-at", "no tick before"), ("--end-at", "no tick after")):
        create.add_argument(
            flag, type=_moment, metavar="ISO", help=f"{text} this time (naive: UTC)"
        )
    add_json_flag(create)
    create.set_defaults(handler=run_create)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid ISO datetime {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def run_create(args: argparse.Namespace) -> int:
    positional, keywords = call_arguments(args)

    async def action(world: World) -> tuple[ScheduleRecord, list[WorkerRecord]]:
        record = await _schedule_ops.create(
            world,
            args.schedule_id,
            args.workflow,
            cron=args.cron,
            args=positional,
            kwargs=keywords,
            timezone=args.timezone,
            catch_up=args.catch_up,
            overlap=args.overlap,
            start_at=args.start_at,
            end_at=args.end_at,
        )
        return record, await world.list_workers()

    record, workers = with_world(args, action, create=True)
    if not has_worker(args.workflow, workers, datetime.now(UTC)):
        # Created all the same, as ``start`` does: a worker that has it may come.
        print(
            f"warning: no live worker has registered workflow {args.workflow!r}; its ticks "
            "start runs once one that imports it runs (workflowkit worker MODULE)",
            file=sys.stderr,
        )
    if args.json:
        print_json(schedule_json(record))
    else:
        upcoming = "-" if record.next_tick is None else iso(record.next_tick)
        print(
            f"created schedule {record.schedule_id} ({record.workflow_name}); next tick {upcoming}"
        )
    return 0


def _row(record: ScheduleRecord, now: datetime) -> list[str]:
    state = "paused" if record.paused else ("ended" if record.next_tick is None else "active")
    upcoming = "-" if record.paused or record.next_tick is None else relative(record.next_tick, now)
    return [
        record.schedule_id,
        record.workflow_name,
        f"{record.cron} ({record.timezone})",
        state,
        upcoming,
        record.last_run_id or "-",
    ]


def run_list(args: argparse.Namespace) -> int:
    records: list[ScheduleRecord] = with_world(args, lambda world: world.list_schedules())
    if args.json:
        print_json([schedule_json(r) for r in records])
        return 0
    if not records:
        print("no schedules")
        return 0
    now = datetime.now(UTC)
    headers = ["SCHEDULE", "WORKFLOW", "CRON", "STATE", "NEXT TICK", "LAST RUN"]
    print_table(headers, [_row(r, now) for r in records], color=use_color(args))
    return 0


def run_show(args: argparse.Namespace) -> int:
    async def action(world: World) -> tuple[ScheduleRecord, list[RunRecord]]:
        record = await _schedule_ops.require_schedule(world, args.schedule_id)
        runs = await world.list_runs(id_prefix=f"{record.schedule_id}@", limit=RECENT_RUNS)
        return record, runs

    record, runs = with_world(args, action)
    if args.json:
        print_json({**schedule_json(record), "recent_runs": [run_json(r) for r in runs]})
        return 0
    now = datetime.now(UTC)
    print_fields(
        [
            ("schedule", record.schedule_id),
            ("workflow", record.workflow_name),
            ("cron", f"{record.cron} ({record.timezone})"),
            ("arguments", one_line(shown(record.input))),
            ("state", _row(record, now)[3]),
            ("next tick", _when(record.next_tick, now)),
            ("last tick", _when(record.last_tick, now)),
            ("buffered tick", _when(record.buffered_tick, now)),
            ("catch up", str(record.catch_up)),
            ("overlap", str(record.overlap)),
            ("window", f"{iso(record.start_at) or '-'} to {iso(record.end_at) or '-'}"),
            ("declared in code", "yes" if record.static else "no"),
        ]
    )
    if runs:
        print()
        rows = [[r.run_id, str(r.status), relative(r.created_at, now)] for r in runs]
        print_table(["RUN", "STATUS", "CREATED"], rows, color=use_color(args))
    return 0


def _when(moment: datetime | None, now: datetime) -> str:
    return "-" if moment is None else f"{iso(moment)} ({relative(moment, now)})"


def _changed(args: argparse.Namespace, record: ScheduleRecord, did: str) -> int:
    if args.json:
        print_json(schedule_json(record))
    else:
        print(f"{did} schedule {record.schedule_id}")
    return 0


def run_pause(args: argparse.Namespace) -> int:
    record = with_world(args, lambda w: _schedule_ops.set_paused(w, args.schedule_id, True))
    return _changed(args, record, "paused")


def run_resume(args: argparse.Namespace) -> int:
    record = with_world(args, lambda w: _schedule_ops.set_paused(w, args.schedule_id, False))
    return _changed(args, record, "resumed")


def run_trigger(args: argparse.Namespace) -> int:
    created = with_world(args, lambda w: _schedule_ops.trigger(w, args.schedule_id))
    if args.json:
        print_json(run_json(created.record))
    else:
        print(f"started run {created.record.run_id}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    if not args.yes and interactive() and not confirm(f"delete schedule {args.schedule_id}?"):
        print("nothing deleted", file=sys.stderr)
        return 1
    with_world(args, lambda w: _schedule_ops.delete(w, args.schedule_id))
    if args.json:
        print_json({"deleted": args.schedule_id})
    else:
        print(f"deleted schedule {args.schedule_id}")
    return 0
