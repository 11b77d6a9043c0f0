"""A World that encrypts every payload on its way into another World, and decrypts it on its
way out: the one place encryption at rest happens (``docs/encryption.md``).

Like a Temporal payload codec, it sits between the codec's bytes and the store, so the
runtime, the client API, the CLI and the dashboard are unchanged, and so is every backend:
what they store is opaque bytes either way. Payloads are sealed (``workflowkit.encryption``)
bound to the run they belong to (``schedule:ID`` for a schedule's input, ``reply:ID`` for a
webhook response), so a payload moved to another run fails authentication.

The store itself copies two payloads between runs, inside its transactions: a child run's
input (written by its parent, so bound to the parent) and a child's result (delivered to the
parent as ``child_completed``, bound to the child). Reading accepts those bindings there.

Reading never fails for want of a key: a payload this World cannot decrypt is handed on
sealed (no key: ``PayloadKeyMissingError`` when decoded, ``{"$encrypted": id}`` when shown)
or marked damaged (failed authentication: ``PayloadDecryptionError``), so listings, the CLI
and the dashboard work on what they can read. Each failure is logged once per key id and
kind, with no key material.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .. import _envelope
from ..encryption import EncryptionKeys
from ..errors import PayloadDecryptionError, PayloadKeyMissingError
from .base import ChangeListener, StreamListener, World
from .records import (
    NO_OPTIONS,
    AppendAfter,
    AppendResult,
    ChunkKind,
    ChunkWriter,
    CreatedRun,
    Divergence,
    Event,
    EventType,
    FiredTick,
    HookRecord,
    Lease,
    NewChunk,
    NewEvent,
    OpenWork,
    QueueInfo,
    QueueLimits,
    QueueUsage,
    Rejected,
    RunChange,
    RunOptions,
    RunRecord,
    RunStatus,
    ScheduleChange,
    ScheduleRecord,
    SchedulesDue,
    StepClaim,
    StepRecord,
    StreamChunk,
    StreamInfo,
    StreamPage,
    WaitRecord,
    WorkerInfo,
    WorkerRecord,
)
from .schedule_rules import Decision, TickInput, tick_run_id

log = logging.getLogger("workflowkit.encryption")

_MAGIC = _envelope.MAGIC
_KINDS = {kind.value.encode(): kind for kind in ChunkKind if kind is not ChunkKind.ENCRYPTED}


def schedule_binding(schedule_id: str) -> str:
    return f"schedule:{schedule_id}"


def reply_binding(reply_to: str) -> str:
    return f"reply:{reply_to}"


class EncryptedWorld:
    """``inner`` with every payload encrypted by ``keys`` (see the module's docstring)."""

    def __init__(self, inner: World, keys: EncryptionKeys) -> None:
        self.inner = inner
        self.keys = keys
        self._warned: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"EncryptedWorld({self.inner!r}, {self.keys!r})"

    def __getattr__(self, name: str) -> Any:
        # What a backend has beyond the contract (``schema_version``, ``path``): its own.
        if name == "inner":  # not set yet (a copy being made): never look it up in itself
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- one payload -----------------------------------------------------------------------

    def seal(self, data: bytes, binding: str) -> bytes:
        if data[:3] == _MAGIC:
            return data  # sealed already (a payload copied as it was read, undecrypted)
        return self.keys.seal(data, binding)

    def _seal(self, data: bytes | None, binding: str) -> bytes | None:
        return None if data is None else self.seal(data, binding)

    def open(self, data: bytes, *bindings: str | None) -> bytes:
        if data[:3] != _MAGIC:
            return data  # written before encryption was turned on
        if data[:4] == _envelope.DAMAGED:
            return data
        try:
            return self.keys.open(data, bindings)
        except PayloadKeyMissingError as exc:
            self._warn("missing", exc.key_id, f"{exc} (read for {bindings[0]})")
            return data
        except PayloadDecryptionError as exc:
            self._warn("damaged", exc.key_id, f"{exc} (read for {bindings[0]})")
            reason = _envelope.MOVED if exc.reason == _envelope.REASONS[_envelope.MOVED] else None
            if reason is None:
                malformed = exc.reason == _envelope.REASONS[_envelope.MALFORMED]
                reason = _envelope.MALFORMED if malformed else _envelope.ALTERED
            return _envelope.damaged(reason, data)

    def _open(self, data: bytes | None, *bindings: str | None) -> bytes | None:
        return None if data is None else self.open(data, *bindings)

    def _warn(self, kind: str, key_id: str, message: str) -> None:
        if (kind, key_id) not in self._warned:
            self._warned.add((kind, key_id))
            log.warning("%s", message)

    # -- records -----------------------------------------------------------------------------

    def _run(self, record: RunRecord) -> RunRecord:
        own = record.run_id
        return dataclasses.replace(
            record,
            input=self.open(record.input, own, record.options.parent_run_id),
            output=self._open(record.output, own),
            error=self._open(record.error, own),
        )

    def _event(self, event: Event, parent: Callable[[], str | None]) -> Event:
        payload = event.payload
        if payload is None or payload[:3] != _MAGIC:
            return event
        own = event.run_id
        if event.type is EventType.CHILD_COMPLETED:
            opened = self.open(payload, own, event.correlation_id)
        elif event.type is EventType.RUN_CREATED and _envelope.parse_binding(payload) != own:
            opened = self.open(payload, own, parent())
        else:
            opened = self.open(payload, own)
        e = event  # built by hand, not dataclasses.replace: replaying reads every event
        return Event(e.run_id, e.seq, e.event_id, e.type, e.correlation_id, opened, e.attrs,
                     e.created_at)  # fmt: skip

    def _step(self, record: StepRecord) -> StepRecord:
        own = record.run_id
        return dataclasses.replace(
            record,
            input=self._open(record.input, own),
            output=self._open(record.output, own),
            error=self._open(record.error, own),
        )

    def _hook(self, record: HookRecord | None) -> HookRecord | None:
        if record is None or record.metadata is None:
            return record
        return dataclasses.replace(record, metadata=self.open(record.metadata, record.run_id))

    def _schedule(self, record: ScheduleRecord | None) -> ScheduleRecord | None:
        if record is None:
            return None
        binding = schedule_binding(record.schedule_id)
        return dataclasses.replace(record, input=self.open(record.input, binding))

    def _sealed_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        binding = schedule_binding(record.schedule_id)
        return dataclasses.replace(record, input=self.seal(record.input, binding))

    def _chunk(self, run_id: str, chunk: StreamChunk) -> StreamChunk:
        if chunk.kind is not ChunkKind.ENCRYPTED:
            return chunk
        opened = self.open(chunk.data, run_id)
        kind = _KINDS.get(opened[:1]) if opened[:3] != _MAGIC else None
        if kind is None:
            return chunk if opened is chunk.data else StreamChunk(chunk.index, chunk.kind, opened)
        return StreamChunk(chunk.index, kind, opened[1:])

    # -- the event log -----------------------------------------------------------------------

    async def create_run(
        self,
        run_id: str,
        workflow_name: str,
        input: bytes,
        attrs: Any,
        options: RunOptions = NO_OPTIONS,
        *,
        start_at: datetime | None = None,
        lease: Lease | None = None,
    ) -> CreatedRun:
        sealed = self.seal(input, run_id)
        created = await self.inner.create_run(
            run_id, workflow_name, sealed, attrs, options, start_at=start_at, lease=lease
        )
        record = self._run(created.record)
        event = created.event
        if event is not None:  # its payload is the run's input
            event = dataclasses.replace(event, payload=record.input)
        return CreatedRun(record, created.created, event)

    async def append(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        *,
        owner: str | None = None,
        after: AppendAfter | None = None,
    ) -> AppendResult:
        # Built by hand, not dataclasses.replace: this is the hot path (twice per step).
        sealed: list[NewEvent] = []
        originals: dict[int, NewEvent] = {}
        plain: dict[bytes, bytes] = {}
        for event in events:
            payload = event.payload
            if payload is None:
                sealed.append(event)
                continue
            data = self.seal(payload, run_id)
            plain[data] = payload
            copy = NewEvent(event.type, event.correlation_id, data, event.attrs, event.created_at)
            originals[id(copy)] = event
            sealed.append(copy)
        result = await self.inner.append(run_id, sealed, owner=owner, after=after)
        stored: list[Event] = []
        for e in result.events:
            known = None if e.payload is None else plain.get(e.payload)
            if known is not None:
                e = Event(e.run_id, e.seq, e.event_id, e.type, e.correlation_id, known, e.attrs,
                          e.created_at)  # fmt: skip
            elif e.payload is not None:
                e = self._event(e, _Parent(self.inner, run_id).sync)
            stored.append(e)
        # The caller tells its refused events by identity: hand back its own objects.
        rejected = [
            Rejected(originals.get(id(r.event), r.event), r.reason) for r in result.rejected
        ]
        return dataclasses.replace(result, events=stored, rejected=rejected)

    async def get_run(self, run_id: str) -> RunRecord | None:
        record = await self.inner.get_run(run_id)
        return None if record is None else self._run(record)

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
        records = await self.inner.list_runs(
            workflow_name=workflow_name,
            status=status,
            limit=limit,
            before=before,
            parent_run_id=parent_run_id,
            since=since,
            until=until,
            id_prefix=id_prefix,
            queue=queue,
            key=key,
            diverged=diverged,
            forked_from=forked_from,
        )
        return [self._run(r) for r in records]

    async def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        return await self._opened(run_id, await self.inner.get_events(run_id, after_seq))

    async def get_logs(self, run_ids: Sequence[str]) -> dict[str, list[Event]]:
        logs = await self.inner.get_logs(run_ids)
        return {run_id: await self._opened(run_id, events) for run_id, events in logs.items()}

    async def _opened(self, run_id: str, events: list[Event]) -> list[Event]:
        """The run's events with their payloads decrypted (each as ``_event`` opens it)."""
        if not any(e.payload is not None and e.payload[:3] == _MAGIC for e in events):
            return events
        parent = _Parent(self.inner, run_id)
        if any(
            e.type is EventType.RUN_CREATED
            and e.payload is not None
            and e.payload[:4] == _envelope.SEALED
            and _envelope.parse_binding(e.payload) != run_id
            for e in events
        ):
            await parent.load()
        return [self._event(e, parent.sync) for e in events]

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        return [self._step(s) for s in await self.inner.list_steps(run_id)]

    async def list_waits(self, run_id: str) -> list[WaitRecord]:
        return await self.inner.list_waits(run_id)

    async def get_hook_by_token(self, token: str) -> HookRecord | None:
        return self._hook(await self.inner.get_hook_by_token(token))

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        hooks = await self.inner.list_hooks(run_id)
        return [h for h in map(self._hook, hooks) if h is not None]

    async def open_work(self, run_ids: Sequence[str]) -> OpenWork:
        work = await self.inner.open_work(run_ids)
        hooks = tuple(h for h in map(self._hook, work.hooks) if h is not None)
        return dataclasses.replace(work, hooks=hooks)

    async def put_webhook_response(self, reply_to: str, payload: bytes) -> bool:
        sealed = self.seal(payload, reply_binding(reply_to))
        return await self.inner.put_webhook_response(reply_to, sealed)

    async def get_webhook_response(self, reply_to: str) -> bytes | None:
        stored = await self.inner.get_webhook_response(reply_to)
        return self._open(stored, reply_binding(reply_to))

    # -- leases ------------------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        await self.inner.register_worker(info)

    async def unregister_worker(self, worker_id: str) -> None:
        await self.inner.unregister_worker(worker_id)

    async def claim_runs(
        self,
        worker: WorkerInfo,
        workflow_names: Sequence[str],
        *,
        limit: int,
        lease_seconds: float,
    ) -> list[RunRecord]:
        claimed = await self.inner.claim_runs(
            worker, workflow_names, limit=limit, lease_seconds=lease_seconds
        )
        return [self._run(r) for r in claimed]

    async def renew_leases(
        self,
        worker_id: str,
        run_ids: Sequence[str],
        step_ids: Sequence[str],
        lease_seconds: float,
    ) -> None:
        await self.inner.renew_leases(worker_id, run_ids, step_ids, lease_seconds)

    async def release_run(
        self, run_id: str, owner: str, wake_at: datetime | None, known_seq: int | None = None
    ) -> None:
        await self.inner.release_run(run_id, owner, wake_at, known_seq)

    async def list_workers(self) -> list[WorkerRecord]:
        return await self.inner.list_workers()

    async def wake_run(self, run_id: str) -> bool:
        return await self.inner.wake_run(run_id)

    async def park_run(self, run_id: str, owner: str, divergence: Divergence) -> bool:
        return await self.inner.park_run(run_id, owner, divergence)

    async def resume_diverged(self, versions: Mapping[str, str]) -> list[str]:
        return await self.inner.resume_diverged(versions)

    async def next_wake_at(self, workflow_names: Sequence[str]) -> datetime | None:
        return await self.inner.next_wake_at(workflow_names)

    def now(self) -> float:
        return self.inner.now()

    # -- the step queue ----------------------------------------------------------------------

    async def queue_steps(
        self, run_id: str, step_ids: Sequence[str], *, owner: str, delay: float = 0.0
    ) -> None:
        await self.inner.queue_steps(run_id, step_ids, owner=owner, delay=delay)

    async def claim_steps(
        self, worker: WorkerInfo, step_names: Sequence[str], *, limit: int, lease_seconds: float
    ) -> list[StepClaim]:
        claims = await self.inner.claim_steps(
            worker, step_names, limit=limit, lease_seconds=lease_seconds
        )
        return [dataclasses.replace(c, input=self.open(c.input, c.run_id)) for c in claims]

    async def finish_step(
        self, run_id: str, outcome: NewEvent, *, claimer: str, retry_after: float | None = None
    ) -> bool:
        sealed = dataclasses.replace(outcome, payload=self._seal(outcome.payload, run_id))
        return await self.inner.finish_step(
            run_id, sealed, claimer=claimer, retry_after=retry_after
        )

    # -- streams -----------------------------------------------------------------------------

    async def write_stream(
        self,
        run_id: str,
        name: str,
        chunks: Sequence[NewChunk],
        *,
        writer: ChunkWriter | None = None,
        close: bool = False,
    ) -> int:
        # The chunk's kind goes inside the ciphertext: raw bytes and text are data too.
        sealed = [
            NewChunk(ChunkKind.ENCRYPTED, self.keys.seal(str(c.kind).encode() + c.data, run_id))
            for c in chunks
        ]
        return await self.inner.write_stream(run_id, name, sealed, writer=writer, close=close)

    async def read_stream(
        self, run_id: str, name: str, start_index: int, limit: int = 1000
    ) -> StreamPage:
        page = await self.inner.read_stream(run_id, name, start_index, limit)
        chunks = [self._chunk(run_id, c) for c in page.chunks]
        return StreamPage(chunks, page.next_index, page.done)

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        return await self.inner.list_streams(run_id)

    # -- queues, retention -------------------------------------------------------------------

    async def register_queues(self, queues: Sequence[QueueLimits]) -> None:
        await self.inner.register_queues(queues)

    async def list_queues(self) -> list[QueueInfo]:
        return await self.inner.list_queues()

    async def queue_usage(self, name: str) -> QueueUsage | None:
        return await self.inner.queue_usage(name)

    async def expired_runs(
        self, ended_before: datetime, statuses: Sequence[RunStatus], limit: int
    ) -> list[str]:
        return await self.inner.expired_runs(ended_before, statuses, limit)

    async def delete_runs(self, run_ids: Sequence[str]) -> list[str]:
        return await self.inner.delete_runs(run_ids)

    async def purge_webhook_responses(self, before: datetime) -> int:
        return await self.inner.purge_webhook_responses(before)

    # -- schedules ---------------------------------------------------------------------------

    async def change_schedule(self, schedule_id: str, decide: Decision) -> ScheduleRecord | None:
        def decide_sealed(record: ScheduleRecord | None, now: float) -> ScheduleChange | None:
            change = decide(self._schedule(record), now)
            if change is None or change.record is None:
                return change
            return ScheduleChange(self._sealed_schedule(change.record))

        return self._schedule(await self.inner.change_schedule(schedule_id, decide_sealed))

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        return self._schedule(await self.inner.get_schedule(schedule_id))

    async def list_schedules(self) -> list[ScheduleRecord]:
        found = [self._schedule(s) for s in await self.inner.list_schedules()]
        return [s for s in found if s is not None]

    async def fire_schedules(
        self,
        workflow_names: Sequence[str],
        input_for: TickInput,
        *,
        now: float | None = None,
        limit: int = 32,
    ) -> list[FiredTick]:
        def sealed_input(record: ScheduleRecord, tick: datetime) -> bytes:
            opened = self._schedule(record)
            assert opened is not None
            return self.seal(input_for(opened, tick), tick_run_id(record.schedule_id, tick))

        return await self.inner.fire_schedules(workflow_names, sealed_input, now=now, limit=limit)

    async def schedules_due(self, workflow_names: Sequence[str]) -> SchedulesDue:
        return await self.inner.schedules_due(workflow_names)

    # -- change feed -------------------------------------------------------------------------

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        def told(changes: Sequence[RunChange]) -> None:
            listener([_unsealed(change) for change in changes])

        return self.inner.subscribe(told)

    def subscribe_streams(self, listener: StreamListener) -> Callable[[], None]:
        return self.inner.subscribe_streams(listener)

    async def close(self) -> None:
        await self.inner.close()


def _unsealed(change: RunChange) -> RunChange:
    """``change`` without the events it carries if one is sealed: those are read from the
    log, decrypted there (a child's result needs its parent's id, a read)."""
    if any(e.payload is not None and e.payload[:3] == _MAGIC for e in change.events):
        return dataclasses.replace(change, events=())
    return change


class _Parent:
    """A run's parent id, read only if a payload bound elsewhere needs it."""

    def __init__(self, world: World, run_id: str) -> None:
        self.world = world
        self.run_id = run_id
        self.value: str | None = None

    async def load(self) -> None:
        record = await self.world.get_run(self.run_id)
        self.value = None if record is None else record.options.parent_run_id

    def sync(self) -> str | None:
        return self.value


def encrypted(world: World, keys: EncryptionKeys | None) -> World:
    """``world`` encrypting its payloads with ``keys`` (as it is when None, or already so)."""
    if keys is None or isinstance(world, EncryptedWorld):
        return world
    return EncryptedWorld(world, keys)
