"""The deterministic event loop each run's workflow code executes on.

It has no I/O and no clock of its own: ``time()`` is the run's virtual time (the timestamp of
the last event delivered), timers become durable waits owned by the run, and callbacks run
in FIFO order only when the runtime steps the loop. Ordinary asyncio (``gather``,
``TaskGroup``, ``wait``, ``timeout``, ``asyncio.sleep``) works on it unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Protocol, TypeVar

from ..errors import WorkflowIOError

T = TypeVar("T")
log = logging.getLogger("workflowkit.loop")

_IO_HINT = (
    "workflow code must be deterministic and cannot do {what}; move it into a @step "
    "(or use workflowkit.fetch for HTTP)"
)


class TimerHost(Protocol):
    def schedule_timer(self, handle: asyncio.TimerHandle) -> None: ...

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None: ...


class WorkflowLoop(asyncio.AbstractEventLoop):
    def __init__(self, host: TimerHost, now: float) -> None:
        self._host = host
        self._now = now
        self._ready: deque[asyncio.Handle] = deque()
        self._running = False
        self._closed = False
        self.discarding = False
        # Our own record of this loop's tasks: asyncio.all_tasks() would walk every task
        # of every run in the process. With each its context (Task.get_context() is 3.12+),
        # for close_task.
        self.tasks: weakref.WeakKeyDictionary[asyncio.Task[Any], contextvars.Context] = (
            weakref.WeakKeyDictionary()
        )

    # -- driving -------------------------------------------------------------------------

    def set_time(self, now: float) -> None:
        # Virtual time never runs backwards, even if the log's clocks disagree.
        self._now = max(self._now, now)

    def run_ready(self) -> None:
        """Run callbacks until none are left (workflow code has nothing more to do)."""
        previous = asyncio._get_running_loop()
        asyncio._set_running_loop(self)
        self._running = True
        try:
            ready = self._ready
            while ready:
                handle = ready.popleft()
                if not handle._cancelled:
                    # Workflow code that calls sys.exit() (or the like): its task holds the
                    # exception and fails the run; it must not end the worker. (A try costs
                    # nothing here; contextlib.suppress would cost a call per callback.)
                    try:  # noqa: SIM105
                        handle._run()
                    except (SystemExit, KeyboardInterrupt):
                        pass
        finally:
            self._running = False
            asyncio._set_running_loop(previous)

    def close_task(self, task: asyncio.Task[Any]) -> None:
        """Close a task's coroutine (a run dropped from memory) as if from inside the task.

        In its own context and as this loop's current task, so that cleanup code finds what
        it entered: context variable tokens (reset in another context they raise
        ``ValueError``) and anyio's cancel scopes (exited in another task they raise
        ``RuntimeError``), as pydantic-ai's agent graph uses.
        """
        coro = task.get_coro()
        context = self.tasks.get(task)
        if coro is None or task.done():
            return
        if context is None or asyncio.current_task(self) is not None:
            coro.close()  # a task of this loop is running: we cannot enter another one
            return
        previous = asyncio._get_running_loop()
        asyncio._set_running_loop(self)
        asyncio.tasks._enter_task(self, task)
        try:
            context.run(coro.close)
        finally:
            asyncio.tasks._leave_task(self, task)
            asyncio._set_running_loop(previous)

    def fire(self, handle: asyncio.TimerHandle) -> None:
        if not handle.cancelled():
            self._ready.append(handle)

    # -- the asyncio loop interface ------------------------------------------------------

    def time(self) -> float:
        return self._now

    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self._now + delay, callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        self._host.schedule_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        self._host.cancel_timer(handle)

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, T] | Generator[Any, None, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        if context is None:
            context = contextvars.copy_context()  # what the task would copy itself
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self.tasks[task] = context
        return task

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    def get_task_factory(self) -> None:
        return None

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self.discarding or self._closed:
            return  # tasks of a run evicted from memory are dropped on purpose
        log.error(
            "unhandled error in workflow code: %s",
            context.get("message"),
            exc_info=context.get("exception"),
        )

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    async def shutdown_asyncgens(self) -> None:
        pass

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        pass

    # -- everything that would be I/O or threads -----------------------------------------

    def call_soon_threadsafe(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> asyncio.Handle:
        raise WorkflowIOError(_IO_HINT.format(what="hand work to other threads"))

    def run_in_executor(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise WorkflowIOError(_IO_HINT.format(what="run code in a thread pool"))

    async def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkflowIOError(_IO_HINT.format(what="resolve host names"))

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkflowIOError(_IO_HINT.format(what="open network connections"))

    async def create_server(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkflowIOError(_IO_HINT.format(what="start servers"))

    async def subprocess_exec(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkflowIOError(_IO_HINT.format(what="start subprocesses"))

    async def subprocess_shell(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkflowIOError(_IO_HINT.format(what="start subprocesses"))

    def run_forever(self) -> None:
        raise RuntimeError("a workflow loop is driven by the workflowkit runtime")

    def run_until_complete(self, future: Any) -> Any:
        raise RuntimeError("a workflow loop is driven by the workflowkit runtime")
