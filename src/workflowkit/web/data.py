"""What the pages and JSON endpoints show, read from the World.

Queries only: filtering and paging the runs list, and everything about one run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from .._operations import require_run
from ..inspection import (
    Failure,
    children_of,
    failure_of,
    find_runs,
    holdups,
    open_work,
    waiting_for,
)
from ..registry import REGISTRY
from ..streams import chunk_json
from ..worlds.base import World
from ..worlds.records import (
    Event,
    HookRecord,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepRecord,
    StreamInfo,
    WaitRecord,
    utcnow,
)
from . import timeline
from .requests import DashboardRequest, HttpError

DEFAULT_LIMIT = 25
MAX_LIMIT = 200
_ID_PREFIX = "wrun_"
_RECENT = 500  # how many recent runs the workflow filter's suggestions come from
STREAM_TAIL = 50  # the run page shows this many of each stream's latest chunks


@dataclass(frozen=True, slots=True)
class RunFilter:
    workflow: str | None = None
    status: RunStatus | None = None
    search: str | None = None  # a run id or the start of one
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT
    queue: str | None = None
    key: str | None = None
    diverged: bool = False  # only runs parked because their code changed

    @classmethod
    def from_request(cls, request: DashboardRequest) -> RunFilter:
        status_text = request.arg("status")
        status = None
        if status_text is not None:
            try:
                status = RunStatus(status_text)
            except ValueError:
                choices = ", ".join(str(s) for s in RunStatus)
                raise HttpError(400, f"status must be one of {choices}") from None
        limit_text = request.arg("limit")
        limit = DEFAULT_LIMIT
        if limit_text is not None:
            if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
                raise HttpError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
            limit = int(limit_text)
        return cls(
            request.arg("workflow"),
            status,
            request.arg("q"),
            request.arg("cursor"),
            limit,
            request.arg("queue"),
            request.arg("key"),
            request.arg("diverged") is not None,
        )

    def query(self, **changes: str | None) -> str:
        """This filter as a query string, with ``changes`` (None drops a parameter)."""
        values: dict[str, str | None] = {
            "q": self.search,
            "workflow": self.workflow,
            "status": None if self.status is None else str(self.status),
            "queue": self.queue,
            "key": self.key,
            "diverged": "1" if self.diverged else None,
            "limit": None if self.limit == DEFAULT_LIMIT else str(self.limit),
            "cursor": self.cursor,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def active(self) -> bool:
        return any((self.workflow, self.status, self.search, self.queue, self.key, self.diverged))


@dataclass(frozen=True, slots=True)
class RunsPage:
    filter: RunFilter
    runs: tuple[RunRecord, ...]
    next_cursor: str | None
    workflows: tuple[str, ...]  # names of recent runs' workflows, for the filter
    waiting: tuple[str | None, ...] = ()  # what each run waits for (if explained)

    @property
    def version(self) -> str:
        """Changes whenever a run on this page changes (what live updates poll for)."""
        digest = hashlib.sha256()
        for r in self.runs:
            digest.update(f"{r.run_id}:{r.status}:{r.last_seq};".encode())
        return digest.hexdigest()[:16]


async def runs_page(
    world: World, wanted: RunFilter, *, suggestions: bool = True, explain: bool = True
) -> RunsPage:
    """The runs ``wanted`` asks for; with ``explain``, what each waits for (three more
    queries for the page, whatever its size: what the version poll does without)."""
    if wanted.search is not None:
        runs, next_cursor = await _search(world, wanted)
    else:
        runs, next_cursor = await find_runs(
            world,
            workflow=wanted.workflow,
            status=wanted.status,
            limit=wanted.limit,
            cursor=wanted.cursor,
            queue=wanted.queue,
            key=wanted.key,
            diverged=True if wanted.diverged else None,
        )
    names: tuple[str, ...] = ()
    if suggestions:
        names = tuple(await world.recent_workflows(_RECENT))
    waiting: tuple[str | None, ...] = ()
    if explain:
        held, work, now = await holdups(world, runs), await open_work(world, runs), utcnow()
        waiting = tuple(waiting_for(r, held, now, work) for r in runs)
    return RunsPage(wanted, tuple(runs), next_cursor, names, waiting)


def search_prefixes(text: str) -> list[str]:
    """The id prefixes a search means: the text as typed, and, when it could be part of a
    generated id (``wrun_`` and an upper-case ULID), that id's spelling (``"01j8"`` ->
    ``"wrun_01J8"``)."""
    text = text.strip()
    rest = text[len(_ID_PREFIX) :] if text.lower().startswith(_ID_PREFIX) else text
    generated = _ID_PREFIX + rest.upper()
    if not rest.isalnum() or generated == text:
        return [text]
    return [text, generated]


async def _search(world: World, wanted: RunFilter) -> tuple[list[RunRecord], str | None]:
    """Runs whose id starts with the search text (all of an id finds that one run)."""
    assert wanted.search is not None
    page: list[RunRecord] = []
    for prefix in search_prefixes(wanted.search):
        page = await world.list_runs(
            workflow_name=wanted.workflow,
            status=wanted.status,
            id_prefix=prefix,
            limit=wanted.limit + 1,
            before=wanted.cursor,
        )
        if page:
            break
    if len(page) > wanted.limit:
        return page[: wanted.limit], page[wanted.limit - 1].run_id
    return page, None


@dataclass(frozen=True, slots=True)
class RunView:
    """One run and everything recorded about it, as of ``now``."""

    run: RunRecord
    steps: tuple[StepRecord, ...]
    waits: tuple[WaitRecord, ...]
    hooks: tuple[HookRecord, ...]
    events: tuple[Event, ...]
    timeline: timeline.Timeline
    now: datetime
    streams: tuple[StreamView, ...] = ()
    selected: str | None = None  # the timeline item whose details are open
    waiting_for: str | None = None  # why nothing goes on, if something holds it up
    children: tuple[RunRecord, ...] = ()
    forks: tuple[RunRecord, ...] = ()
    failure: Failure | None = None  # why it failed, error first

    @property
    def version(self) -> str:
        return run_version(self.run, [s.info for s in self.streams])

    @property
    def pending_waits(self) -> tuple[WaitRecord, ...]:
        return tuple(w for w in self.waits if w.completed_at is None)

    def select(self, item: str | None) -> RunView:
        known = {bar.item_id for bar in self.timeline.bars}
        return replace(self, selected=item if item in known else None)


@dataclass(frozen=True, slots=True)
class StreamView:
    """A stream of the run and its latest chunks (index, JSON rendering)."""

    info: StreamInfo
    tail: tuple[tuple[int, Any], ...]


def run_version(record: RunRecord, streams: Sequence[StreamInfo]) -> str:
    """Changes whenever the run's log or one of its streams does."""
    return f"{record.status}:{record.last_seq}:{sum(s.length for s in streams)}"


async def stream_views(world: World, run_id: str) -> tuple[StreamView, ...]:
    views = []
    for info in await world.list_streams(run_id):
        page = await world.read_stream(run_id, info.name, -STREAM_TAIL, STREAM_TAIL)
        tail = tuple((c.index, chunk_json(c)) for c in page.chunks)
        views.append(StreamView(info, tail))
    return tuple(views)


async def run_view(world: World, run_id: str, now: datetime) -> RunView:
    # The run is read first, so the log holds at least what its ``last_seq`` (the page's
    # version) says: a later poll that sees a newer version brings the rest.
    record = await require_run(world, run_id)  # WorkflowRunNotFoundError: a 404
    events = tuple(await world.get_events(run_id))
    steps = tuple(await world.list_steps(run_id))
    waits = tuple(await world.list_waits(run_id))
    hooks = tuple(await world.list_hooks(run_id))
    streams = await stream_views(world, run_id)
    line = timeline.build(record, events, now)
    work = await open_work(world, [record])
    holdup = waiting_for(record, await holdups(world, [record]), now, work)
    children = tuple(await children_of(world, run_id))
    forks = tuple(await world.list_runs(forked_from=run_id, limit=100))
    return RunView(
        record,
        steps,
        waits,
        hooks,
        events,
        line,
        now,
        streams,
        None,
        holdup,
        children,
        forks,
        failure_of(record, steps),
    )


# -- schedules -------------------------------------------------------------------------------

RECENT_RUNS = 5


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    record: ScheduleRecord
    recent: tuple[RunRecord, ...]  # its latest runs, newest first


@dataclass(frozen=True, slots=True)
class SchedulesView:
    rows: tuple[ScheduleRow, ...]

    @property
    def version(self) -> str:
        """Changes whenever a schedule or one of the runs shown does."""
        parts = [
            f"{r.record.schedule_id}:{r.record.updated_at.timestamp()}:{r.record.paused}:"
            + ",".join(f"{run.run_id}={run.status}" for run in r.recent)
            for r in self.rows
        ]
        return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


async def schedules_view(world: World) -> SchedulesView:
    rows = []
    for record in await world.list_schedules():
        recent = await world.list_runs(id_prefix=f"{record.schedule_id}@", limit=RECENT_RUNS)
        rows.append(ScheduleRow(record, tuple(recent)))
    return SchedulesView(tuple(rows))


async def workflow_names(world: World) -> tuple[str, ...]:
    """The workflows a new schedule may name: this process's and its World's workers'."""
    names = set(REGISTRY.workflows)
    for worker in await world.list_workers():
        names.update(worker.info.workflows)
    return tuple(sorted(names))
