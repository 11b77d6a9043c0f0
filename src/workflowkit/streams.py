"""Streams: live output from a running workflow, stored durably outside the event log.

A step writes chunks with ``get_writable(namespace)``; clients read them with
``run.get_readable(namespace, start_index)``. Writes are buffered and flushed in the
background (one storage write carries every chunk queued meanwhile), and everything a step
wrote is durable before its result is recorded. Chunks written by a step attempt that fails,
or whose worker died, are hidden from readers that reach them afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from . import serde
from .context import current_executor, current_step, in_workflow
from .errors import NotInWorkflowError, SerializationError, StreamClosedError, StreamError
from .worlds.base import World
from .worlds.records import ChunkKind, ChunkWriter, NewChunk, RunChange, StreamChange, StreamChunk

# A writer waits for its flush once this much is queued, so a fast producer cannot
# outrun storage without bound.
MAX_BUFFERED_CHUNKS = 1000
MAX_BUFFERED_BYTES = 1 << 20
READ_PAGE = 500
# Readers are woken by change notifications; this poll only covers a missed one.
FALLBACK_POLL = 2.0


def get_writable(namespace: str | None = None) -> Writable:
    """The run's stream ``namespace`` (the default stream when None).

    In workflow code this gives a handle to pass to steps; workflow code itself cannot
    write (the write would not be replayable). In a step it is the same stream, ready to
    write.
    """
    executor = current_executor()
    if executor is not None:
        return Writable(executor.metadata.workflow_run_id, namespace)
    step = current_step()
    if step is None:
        raise NotInWorkflowError(
            "get_writable() works only in workflow code or in a step of a run; outside a "
            "run, read a stream with run.get_readable()"
        )
    return Writable(step.workflow.workflow_run_id, namespace)


def _stream_name(namespace: str | None) -> str:
    if namespace is None:
        return ""
    if not isinstance(namespace, str) or not namespace:
        raise ValueError(f"a stream namespace is a non-empty string or None, got {namespace!r}")
    return namespace


class Writable:
    """A handle on one stream of one run; it can be passed to steps as an argument.

    ``await w.write(chunk)`` queues a chunk (any serializable value; ``str`` and ``bytes``
    are stored as they are), ``await w.flush()`` waits until everything queued is stored,
    ``await w.close()`` flushes and ends the stream for every reader. ``async with`` (or
    ``with`` in a synchronous step) closes it on exit. In a synchronous step call the
    methods without ``await``.
    """

    __slots__ = ("name", "run_id")

    def __init__(self, run_id: str, namespace: str | None = None) -> None:
        self.run_id = run_id
        self.name = _stream_name(namespace)

    @property
    def namespace(self) -> str | None:
        return self.name or None

    def __repr__(self) -> str:
        return f"Writable(run_id={self.run_id!r}, namespace={self.namespace!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Writable) and (other.run_id, other.name) == (
            self.run_id,
            self.name,
        )

    def __hash__(self) -> int:
        return hash((self.run_id, self.name))

    def write(self, chunk: object) -> Awaitable[None]:
        """Queue ``chunk``; waits only when a large backlog is still being stored."""
        return self._buffer().add(encode_chunk(chunk), close=False)

    def flush(self) -> Awaitable[None]:
        """Wait until every chunk queued so far is stored."""
        return self._buffer().add(None, close=False, wait=True)

    def close(self) -> Awaitable[None]:
        """Store what is queued and close the stream; later writes raise StreamClosedError."""
        return self._buffer().add(None, close=True, wait=True)

    async def __aenter__(self) -> Writable:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __enter__(self) -> Writable:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _buffer(self) -> _Buffer:
        if in_workflow():
            raise StreamError(
                "workflow code cannot write to a stream (a write would not replay): pass the "
                "handle from get_writable() to a step and write there"
            )
        streams = _attempt_streams.get()
        if streams is None:
            raise StreamError("a stream can be written only inside a step of a workflow run")
        return streams.buffer(self.run_id, self.name)


def encode_chunk(chunk: object) -> NewChunk:
    if isinstance(chunk, bytes | bytearray | memoryview):
        return NewChunk(ChunkKind.BYTES, bytes(chunk))
    if isinstance(chunk, str):
        return NewChunk(ChunkKind.TEXT, chunk.encode("utf-8", "surrogatepass"))
    return NewChunk(ChunkKind.VALUE, serde.encode(chunk, path="stream chunk"))


def decode_chunk(chunk: StreamChunk) -> Any:
    if chunk.kind is ChunkKind.BYTES:
        return chunk.data
    if chunk.kind is ChunkKind.TEXT:
        return chunk.data.decode("utf-8", "surrogatepass")
    return serde.decode(chunk.data)


def chunk_json(chunk: StreamChunk) -> Any:
    """A chunk as JSON-compatible data, read without constructing any class (for HTTP,
    the CLI and the dashboard): text as a string, bytes as ``{"$base64": ...}``, values as
    the codec's display rendering."""
    if chunk.kind is ChunkKind.TEXT:
        return chunk.data.decode("utf-8", "replace")
    if chunk.kind is ChunkKind.BYTES:
        return {"$base64": base64.b64encode(chunk.data).decode()}
    try:
        return serde.display(chunk.data)
    except SerializationError as exc:  # one corrupt chunk must not break a listing
        return {"$undisplayable": str(exc), "$bytes": len(chunk.data)}


def _encode_handle(handle: Writable) -> list[str]:
    return [handle.run_id, handle.name]


def _decode_handle(state: Any) -> Writable:
    if (
        not isinstance(state, list)
        or len(state) != 2
        or not all(isinstance(part, str) for part in state)
    ):
        raise SerializationError(f"malformed payload: bad stream handle {state!r}")
    return Writable(state[0], state[1] or None)


serde.register_tag("stream", Writable, encode=_encode_handle, decode=_decode_handle)


# -- the writing side, per step attempt --------------------------------------------------


class _Done:
    """An awaitable that is already complete (a write that did not need to wait)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


class _Waiting:
    """Awaitable in async code; in a synchronous step the wait already happened."""

    __slots__ = ("future",)

    def __init__(self, future: concurrent.futures.Future[None]) -> None:
        self.future = future

    def __await__(self) -> Generator[Any, None, None]:
        return (yield from asyncio.wrap_future(self.future).__await__())


_DONE = _Done()


class StepStreams:
    """The streams one step attempt writes to; the runtime settles them when it ends.

    The runtime makes them the attempt's own with ``set_step_streams`` in the step's context.
    """

    def __init__(
        self, world: World, loop: asyncio.AbstractEventLoop, run_id: str, step_id: str, attempt: int
    ) -> None:
        self.world = world
        self.loop = loop
        self.run_id = run_id
        self.step_id = step_id
        self.attempt = attempt
        self._buffers: dict[tuple[str, str], _Buffer] = {}
        self._lock = threading.Lock()

    @property
    def written(self) -> bool:
        """Whether the attempt wrote to a stream (most steps do not: nothing to settle)."""
        return bool(self._buffers)

    def buffer(self, run_id: str, name: str) -> _Buffer:
        with self._lock:
            found = self._buffers.get((run_id, name))
            if found is None:
                # Chunks count as this attempt's only in its own run's streams.
                mine = run_id == self.run_id
                writer = ChunkWriter(self.step_id, self.attempt) if mine else None
                found = self._buffers[run_id, name] = _Buffer(self, run_id, name, writer)
            return found

    async def finish(self, succeeded: bool) -> None:
        """Store what the attempt queued (or, if it failed, drop it); raise a write error."""
        with self._lock:
            buffers = list(self._buffers.values())
        waits = [b.settle(keep=succeeded) for b in buffers]
        for future in waits:
            if future is not None:
                await asyncio.wrap_future(future)


class _Buffer:
    """Chunks queued for one stream, flushed by one background task at a time."""

    def __init__(
        self, owner: StepStreams, run_id: str, name: str, writer: ChunkWriter | None
    ) -> None:
        self._owner = owner
        self._run_id = run_id
        self._name = name
        self._writer = writer
        self._lock = threading.Lock()
        self._queued: list[NewChunk] = []
        self._queued_bytes = 0
        self._close_queued = False
        self._closed = False
        self._flushing = False
        self._error: BaseException | None = None
        self._idle: list[concurrent.futures.Future[None]] = []

    def add(self, chunk: NewChunk | None, *, close: bool, wait: bool = False) -> Awaitable[None]:
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._closed:
                if chunk is None:
                    wait = True  # flushing or closing a closed stream: wait for the close
                else:
                    raise StreamClosedError(self._run_id, self._name)
            if chunk is not None:
                self._queued.append(chunk)
                self._queued_bytes += len(chunk.data)
            if close:
                self._closed = self._close_queued = True
            if not self._flushing and (self._queued or self._close_queued):
                self._flushing = True
                self._kick()
            backlog = (
                len(self._queued) >= MAX_BUFFERED_CHUNKS or self._queued_bytes >= MAX_BUFFERED_BYTES
            )
            if not (wait or backlog) or not self._flushing:
                return _DONE
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._idle.append(future)
        return self._wait(future)

    def _wait(self, future: concurrent.futures.Future[None]) -> Awaitable[None]:
        if _on_loop(self._owner.loop):
            return _Waiting(future)
        future.result()  # a synchronous step, on a thread of its own: block here
        return _DONE

    def settle(self, *, keep: bool) -> concurrent.futures.Future[None] | None:
        with self._lock:
            if not keep:
                self._queued.clear()
                self._queued_bytes = 0
                self._close_queued = False
            if self._error is not None and keep:
                failed: concurrent.futures.Future[None] = concurrent.futures.Future()
                failed.set_exception(self._error)
                return failed
            if not self._flushing:
                return None
            future: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._idle.append(future)
            return future

    def _kick(self) -> None:
        loop = self._owner.loop
        if _on_loop(loop):
            loop.create_task(self._flush())
        else:
            loop.call_soon_threadsafe(self._start_on_loop)

    def _start_on_loop(self) -> None:
        self._owner.loop.create_task(self._flush())

    async def _flush(self) -> None:
        idle: list[concurrent.futures.Future[None]] = []
        try:
            while True:
                with self._lock:
                    batch, close = self._queued, self._close_queued
                    self._queued, self._queued_bytes, self._close_queued = [], 0, False
                    if not batch and not close:
                        self._flushing = False
                        idle, self._idle = self._idle, []
                        return
                try:
                    await self._owner.world.write_stream(
                        self._run_id, self._name, batch, writer=self._writer, close=close
                    )
                except Exception as exc:  # surfaces at the next write and when the step ends
                    with self._lock:
                        self._error = exc
                        self._queued.clear()
                        self._close_queued = False
        finally:
            with self._lock:
                if self._flushing:  # cancelled while writing: the worker is shutting down
                    self._flushing = False
                    self._error = self._error or StreamError("the stream's writer was stopped")
                    idle, self._idle = self._idle, []
                error = self._error
            for future in idle:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)


_attempt_streams: ContextVar[StepStreams | None] = ContextVar(
    "workflowkit_step_streams", default=None
)


def set_step_streams(streams: StepStreams | None) -> None:
    """The streams the running step attempt writes to (set in the step's own context)."""
    _attempt_streams.set(streams)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# -- the reading side -----------------------------------------------------------------------


class Readable:
    """Async iterator over a stream's chunks, live until the stream closes or its run ends.

    ``index`` is where a reader that stops now should start again to miss nothing and see
    nothing twice.
    """

    def __init__(
        self,
        world: World | None,
        run_id: str,
        namespace: str | None,
        start_index: int,
        decode: Callable[[StreamChunk], Any] = decode_chunk,
    ) -> None:
        self.run_id = run_id
        self.name = _stream_name(namespace)
        self.index = start_index
        self._world = world
        self._decode = decode
        self._iterator: AsyncGenerator[Any, None] | None = None

    def __repr__(self) -> str:
        namespace = self.name or None
        return f"Readable(run_id={self.run_id!r}, namespace={namespace!r}, index={self.index})"

    def __aiter__(self) -> Readable:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._chunks()
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()

    async def _chunks(self) -> AsyncGenerator[Any, None]:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake(changes: Sequence[StreamChange] | Sequence[RunChange]) -> None:
            for change in changes:
                # Of the run's own changes only its end matters: it closes every stream.
                if change.run_id == self.run_id and (
                    isinstance(change, StreamChange) or change.status.terminal
                ):
                    loop.call_soon_threadsafe(woken.set)
                    return

        world = self._world or _current_world()
        unsubscribe = (world.subscribe_streams(wake), world.subscribe(wake))
        try:
            while True:
                woken.clear()
                before = self.index
                page = await world.read_stream(self.run_id, self.name, self.index, READ_PAGE)
                for chunk in page.chunks:
                    value = self._decode(chunk)
                    self.index = chunk.index + 1
                    yield value
                self.index = page.next_index
                if page.done:
                    return
                if self.index == before:  # nothing new: wait to be told, or poll
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), FALLBACK_POLL)
        finally:
            for stop in unsubscribe:
                stop()


# -- a reader as a value ------------------------------------------------------------------
# A Readable crosses durable boundaries as (run, stream, index): it is a position in a
# stream, not a connection. Decoded, it reads through the World of wherever it is iterated.

_default_world: Callable[[], World] | None = None


def set_default_world(resolver: Callable[[], World] | None) -> None:
    """Where a decoded ``Readable`` outside a step finds its World (the process's runtime)."""
    global _default_world
    _default_world = resolver


def _current_world() -> World:
    if in_workflow():
        raise StreamError(
            "workflow code cannot read a stream (a read would not replay): pass the Readable "
            "to a step and iterate it there"
        )
    step = current_step()
    if step is not None and step.world is not None:
        return step.world
    if _default_world is None:
        raise StreamError("this Readable has no World to read from: configure workflowkit first")
    return _default_world()


def _encode_reader(reader: Readable) -> list[Any]:
    if reader._decode is not decode_chunk:
        raise SerializationError(
            "only a Readable of decoded values (run.get_readable()) can be passed as a value"
        )
    return [reader.run_id, reader.name, reader.index]


def _decode_reader(state: Any) -> Readable:
    if (
        not isinstance(state, list)
        or len(state) != 3
        or not all(isinstance(part, str) for part in state[:2])
        or type(state[2]) is not int
        or state[2] < 0
    ):
        raise SerializationError(f"malformed payload: bad stream reader {state!r}")
    return Readable(None, state[0], state[1] or None, state[2])


serde.register_tag("readable", Readable, encode=_encode_reader, decode=_decode_reader)
