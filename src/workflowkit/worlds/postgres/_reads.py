"""The PostgreSQL World's reads: runs, their logs, steps, waits, hooks, workers, queues,
schedules and streams, as inspection and workers see them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .. import _sql
from ..records import (
    Event,
    HookRecord,
    OpenWork,
    QueueInfo,
    QueueUsage,
    RunQuery,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    SchedulesDue,
    StepRecord,
    StreamInfo,
    StreamPage,
    WaitRecord,
    WorkerRecord,
)
from . import _jobs, _queues, _schedules, _streams
from . import _scheduling as sched
from ._dialect import DIALECT
from ._parts import WorldParts
from ._transactions import Conn


class WorldReads(WorldParts):
    """The World's reads, each a read-only transaction on its loop."""

    async def get_run(self, run_id: str) -> RunRecord | None:
        result: RunRecord | None = await self._read(lambda c: _jobs.get_run(c, run_id), "get_run")
        return result

    async def list_runs(
        self,
        *,
        workflow_name: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
        before: str | None = None,
        parent_run_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        id_prefix: str | None = None,
        queue: str | None = None,
        key: str | None = None,
        diverged: bool | None = None,
        forked_from: str | None = None,
    ) -> list[RunRecord]:
        query = RunQuery(
            workflow_name,
            status,
            parent_run_id,
            since,
            until,
            id_prefix,
            before,
            limit,
            queue,
            key,
            diverged,
            forked_from,
        )
        result: list[RunRecord] = await self._read(lambda c: _jobs.list_runs(c, query), "list_runs")
        return result

    async def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        result: list[Event] = await self._read(
            lambda c: _jobs.get_events(c, run_id, after_seq), "get_events"
        )
        return result

    async def get_logs(self, run_ids: Sequence[str]) -> dict[str, list[Event]]:
        result: dict[str, list[Event]] = await self._read(
            lambda c: _jobs.get_logs(c, run_ids), "get_logs"
        )
        return result

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        result: list[StepRecord] = await self._read(
            lambda c: _jobs.list_steps(c, run_id), "list_steps"
        )
        return result

    async def list_waits(self, run_id: str) -> list[WaitRecord]:
        result: list[WaitRecord] = await self._read(
            lambda c: _jobs.list_waits(c, run_id), "list_waits"
        )
        return result

    async def recent_workflows(self, runs: int) -> list[str]:
        async def read(conn: Conn) -> list[str]:
            cur = await conn.execute(DIALECT.sql(_sql.RECENT_WORKFLOWS), (runs,))
            return [row[0] for row in await cur.fetchall()]

        result: list[str] = await self._read(read, "recent_workflows")
        return result

    async def open_work(self, run_ids: Sequence[str]) -> OpenWork:
        if not run_ids:
            return OpenWork()
        result: OpenWork = await self._read(lambda c: _jobs.open_work(c, run_ids), "open_work")
        return result

    async def get_hook_by_token(self, token: str) -> HookRecord | None:
        hooks: list[HookRecord] = await self._read(
            lambda c: _jobs.list_hooks(c, "h.token = ?", (token,)), "get_hook_by_token"
        )
        return hooks[0] if hooks else None

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        where, params = ("h.run_id = ?", (run_id,)) if run_id else ("true", ())
        result: list[HookRecord] = await self._read(
            lambda c: _jobs.list_hooks(c, where, params), "list_hooks"
        )
        return result

    async def get_webhook_response(self, reply_to: str) -> bytes | None:
        result: bytes | None = await self._read(
            lambda c: _jobs.webhook_response(c, reply_to), "get_webhook_response"
        )
        return result

    async def count_active_runs(self) -> dict[RunStatus, int]:
        async def count(conn: Conn) -> list[tuple[str, int]]:
            cur = await conn.execute(_sql.COUNT_ACTIVE_RUNS)
            return list(await cur.fetchall())

        rows = await self._read(count, "count_active_runs")
        return {RunStatus(status): int(n) for status, n in rows}

    async def list_workers(self) -> list[WorkerRecord]:
        result: list[WorkerRecord] = await self._read(sched.list_workers, "list_workers")
        return result

    async def list_queues(self) -> list[QueueInfo]:
        now = self.now()
        result: list[QueueInfo] = await self._read(
            lambda c: _queues.list_queues(c, now), "list_queues"
        )
        return result

    async def queue_usage(self, name: str) -> QueueUsage | None:
        now = self.now()
        result: QueueUsage | None = await self._read(
            lambda c: _queues.usage(c, name, now), "queue_usage"
        )
        return result

    async def next_wake_at(self, workflow_names: Sequence[str]) -> datetime | None:
        result: datetime | None = await self._read(
            lambda c: sched.next_wake_at(c, workflow_names), "next_wake_at"
        )
        return result

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        found: ScheduleRecord | None = await self._read(
            lambda c: _schedules.read(c, schedule_id), "get_schedule"
        )
        return found

    async def list_schedules(self) -> list[ScheduleRecord]:
        found: list[ScheduleRecord] = await self._read(_schedules.read_all, "list_schedules")
        return found

    async def schedules_due(self, workflow_names: Sequence[str]) -> SchedulesDue:
        found: SchedulesDue = await self._read(
            lambda c: _schedules.due(c, workflow_names), "schedules_due"
        )
        return found

    async def read_stream(
        self, run_id: str, name: str, start_index: int, limit: int = 1000
    ) -> StreamPage:
        page: StreamPage = await self._read(
            lambda c: _streams.read(c, run_id, name, start_index, limit), "read_stream"
        )
        return page

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        found: list[StreamInfo] = await self._read(
            lambda c: _streams.list_streams(c, run_id), "list_streams"
        )
        return found
