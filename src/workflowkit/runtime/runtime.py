"""The process's runtime: the World, and the embedded worker on a background event loop.

It starts on first use. The background loop also serves ``workflowkit.sync`` callers, so a
Flask view or a script never manages an event loop of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _settings, streams
from ..worlds import encrypted, open_world
from ..worlds.base import World
from .waiters import TerminalWaiters
from .worker import Worker

if TYPE_CHECKING:
    from ..encryption import EncryptionKeys

T = TypeVar("T")

log = logging.getLogger("workflowkit.worker")


class Runtime:
    """A World plus (unless disabled) an in-process worker executing runs."""

    def __init__(
        self,
        world: World | str | None = None,
        *,
        embedded_worker: bool | None = None,
        encryption: EncryptionKeys | None = None,
        **worker_options: Any,
    ) -> None:
        _settings.check_settings()  # a bad setting stops the start, before anything opens
        self.world: World
        if world is None or isinstance(world, str):
            self.world, self._owns_world = open_world(world, encryption=encryption), True
        else:
            self.world, self._owns_world = encrypted(world, encryption), False
        embedded = _settings.embedded_worker() if embedded_worker is None else embedded_worker
        self.worker = Worker(self.world, **worker_options) if embedded else None
        self.waiters = TerminalWaiters(self.world)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="workflowkit-runtime", daemon=True)
        self._worker_future: Any = None
        self._closed = False
        self._thread.start()
        if self.worker is not None:
            self._worker_future = asyncio.run_coroutine_threadsafe(self.worker.run(), self.loop)
            self._worker_future.add_done_callback(self._worker_ended)

    def _worker_ended(self, future: Any) -> None:
        """The embedded worker's loop ended: said loudly unless the runtime closed it, since
        from then on no run of this process is claimed, resumed or renewed."""
        if self._closed or future.cancelled() or (self.worker and self.worker.stopping):
            return
        error = future.exception()
        log.error(
            "the embedded worker stopped (%s): this process runs no more workflows until "
            "workflowkit is configured again",
            "no error" if error is None else f"{type(error).__name__}: {error}",
            exc_info=error,
        )

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def notify(self) -> None:
        if self.worker is not None:
            self.worker.notify()

    def schedules_changed(self) -> None:
        """This process changed a schedule: its worker looks at schedules again now, not at
        its next poll (thread-safe: it only sets a flag and wakes the worker)."""
        if self.worker is not None:
            self.worker.schedules.changed()
            self.worker.notify()

    async def declare_schedules(self) -> None:
        """Have this process's worker write the schedules its code declares, if it has not
        yet: a client call just after start (``trigger_schedule`` on a schedule declared in
        code, as examples/daily_digest.py makes) must find them, not race the worker's first
        pass. Usually nothing to write, and then no query. Callable from any event loop."""
        if self.worker is not None:
            await self.on_loop(self.worker.schedules.declare())

    async def on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the runtime's loop, from any event loop: the worker's state
        belongs to the loop it runs on."""
        if threading.current_thread() is self._thread:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the runtime's loop and block for its result (for sync callers)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("workflowkit.sync cannot be called from the runtime's own loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self, grace: float = 5.0) -> None:
        """Stop the worker (handing runs back), close the World, stop the loop."""
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            if self.worker is not None:
                await self.worker.stop(grace)
            if self._worker_future is not None:
                # How it ended is not the close's business (``_worker_ended`` said so).
                await asyncio.wait([asyncio.wrap_future(self._worker_future)])
            self.waiters.unsubscribe()  # a World we do not own lives on: stop listening to it
            if self._owns_world:
                await self.world.close()

        if self.loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(grace + 10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.loop.close()


class _Current:
    """Holds the process-wide runtime; created lazily, replaced by ``configure``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runtime: Runtime | None = None
        self.atexit_registered = False


_current = _Current()


def get_runtime() -> Runtime:
    with _current.lock:
        if _current.runtime is None:
            _current.runtime = Runtime()
            if not _current.atexit_registered:
                atexit.register(_close_current)
                _current.atexit_registered = True
        return _current.runtime


def configure(
    world: World | str | None = None,
    *,
    embedded_worker: bool | None = None,
    encryption: EncryptionKeys | None = None,
    **worker_options: Any,
) -> Runtime:
    """Replace the process-wide runtime (closing the old one); returns the new one.

    ``world`` is a World or a URL (``sqlite:///path.db``); ``worker_options`` go to
    ``Worker`` (``lease_seconds``, ``evict_after``, ``poll_interval``, ``retry``, ...).
    ``retry=Retry(...)`` is the project-wide default policy: it applies to every step that
    names neither ``retry=`` nor ``max_retries=``. ``encryption``: the keys payloads are
    encrypted at rest with (default: ``WORKFLOWKIT_ENCRYPTION_KEYS``, if set;
    ``docs/encryption.md``).
    """
    runtime = Runtime(
        world, embedded_worker=embedded_worker, encryption=encryption, **worker_options
    )
    with _current.lock:
        previous, _current.runtime = _current.runtime, runtime
        if not _current.atexit_registered:
            atexit.register(_close_current)
            _current.atexit_registered = True
    if previous is not None:
        previous.close()
    return runtime


def shutdown() -> None:
    """Close the process-wide runtime, if one was started."""
    with _current.lock:
        runtime, _current.runtime = _current.runtime, None
    if runtime is not None:
        runtime.close()


def _close_current() -> None:
    shutdown()


def _runtime_world() -> World:
    return get_runtime().world


# A Readable decoded outside a step (a step's return value read by a client) reads here.
streams.set_default_world(_runtime_world)
