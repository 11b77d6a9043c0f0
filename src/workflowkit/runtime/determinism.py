"""Guard rails that keep workflow code deterministic across replays.

Inside workflow code (and only there) ``time.time``, ``datetime.now``, the ``random`` module
and ``uuid.uuid4`` answer from the run: time is the run's virtual time, randomness is seeded
by the run id. I/O (files, sockets, subprocesses, threads) and blocking in ``time.sleep``
raise ``WorkflowIOError``.
Outside workflow code every shim defers to the original at the cost of one attribute read.
"""

from __future__ import annotations

import datetime as _datetime
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, SupportsIndex

from ..context import current_executor
from ..errors import WorkflowIOError

_installed = threading.Event()
_original_time = time.time
_original_time_ns = time.time_ns
_original_sleep = time.sleep
_original_uuid4 = uuid.uuid4
_RealDatetime = _datetime.datetime

_IO_EVENTS = {
    "socket.connect": "use the network (connect a socket)",
    "socket.getaddrinfo": "use the network (resolve a host name)",
    "socket.bind": "use the network (bind a socket)",
    "subprocess.Popen": "start subprocesses",
    "os.system": "run shell commands",
    "os.exec": "replace the process",
    "os.fork": "fork the process",
    "os.posix_spawn": "start subprocesses",
    "_thread.start_new_thread": "start threads",
    "urllib.Request": "use the network (HTTP request)",
    "os.remove": "delete files",
    "os.rename": "rename files",
    "os.mkdir": "create directories",
}


def _time() -> float:
    executor = current_executor()
    return _original_time() if executor is None else executor.now()


def _time_ns() -> int:
    executor = current_executor()
    return _original_time_ns() if executor is None else int(executor.now() * 1_000_000_000)


def _sleep(seconds: float | SupportsIndex) -> None:
    if current_executor() is not None:
        # It would block the run's loop, and a replay would block again for nothing.
        raise WorkflowIOError(
            "workflow code cannot block in time.sleep(); workflow code must be deterministic, "
            "so wait with `await workflowkit.sleep(...)` or `await asyncio.sleep(...)` (a "
            "durable sleep), or move the blocking call into a @step"
        )
    _original_sleep(seconds)


def _uuid4() -> uuid.UUID:
    executor = current_executor()
    if executor is None:
        return _original_uuid4()
    return uuid.UUID(int=executor.random.getrandbits(128), version=4)


def _random_method(name: str) -> Callable[..., Any]:
    original = getattr(random, name)

    def shim(*args: Any, **kwargs: Any) -> Any:
        executor = current_executor()
        if executor is None:
            return original(*args, **kwargs)
        return getattr(executor.random, name)(*args, **kwargs)

    shim.__name__ = name
    shim.__doc__ = original.__doc__
    return shim


class _DatetimeMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, _RealDatetime)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _RealDatetime)


class WorkflowDatetime(_RealDatetime, metaclass=_DatetimeMeta):
    """Stands in for ``datetime.datetime`` in workflow modules: ``now()`` is the run's time.

    Instances it makes are plain ``datetime`` objects, and ``isinstance`` works both ways.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _RealDatetime:  # type: ignore[misc]
        return _RealDatetime(*args, **kwargs)

    @classmethod
    def now(cls, tz: _datetime.tzinfo | None = None) -> _RealDatetime:  # type: ignore[override]
        executor = current_executor()
        if executor is None:
            return _RealDatetime.now(tz)
        return _RealDatetime.fromtimestamp(executor.now(), tz)

    @classmethod
    def utcnow(cls) -> _RealDatetime:  # type: ignore[override]
        executor = current_executor()
        if executor is None:
            return _RealDatetime.now(_datetime.UTC).replace(tzinfo=None)
        stamp = _RealDatetime.fromtimestamp(executor.now(), _datetime.UTC)
        return stamp.replace(tzinfo=None)

    @classmethod
    def today(cls) -> _RealDatetime:  # type: ignore[override]
        return cls.now()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if current_executor() is None:
        return
    what = _IO_EVENTS.get(event)
    if what is None and event == "open" and _is_write_or_user_open(args):
        what = "open files"
    if what is not None:
        raise WorkflowIOError(
            f"workflow code cannot {what} ({event}); workflow code must be deterministic, "
            "so move this into a @step (for HTTP, await workflowkit.fetch(...))"
        )


def _is_write_or_user_open(args: tuple[Any, ...]) -> bool:
    # Imports read .py/.pyc files through "open" too; those stay allowed.
    path = str(args[0]) if args else ""
    return not path.endswith((".py", ".pyc", ".so", ".pth")) and "__pycache__" not in path


def install() -> None:
    """Install the shims once per process (idempotent)."""
    if _installed.is_set():
        return
    _installed.set()
    time.time = _time
    time.time_ns = _time_ns
    time.sleep = _sleep
    uuid.uuid4 = _uuid4
    for name in (
        "random",
        "randint",
        "randrange",
        "choice",
        "choices",
        "shuffle",
        "sample",
        "uniform",
        "getrandbits",
        "gauss",
        "randbytes",
        "triangular",
        "betavariate",
        "expovariate",
        "normalvariate",
        "lognormvariate",
    ):
        setattr(random, name, _random_method(name))
    sys.addaudithook(_audit)
    _guard_thread_start()


def _guard_thread_start() -> None:
    # Python 3.11 raises no audit event for new threads, so guard Thread.start itself.
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if current_executor() is not None:
            raise WorkflowIOError(
                "workflow code cannot start threads; workflow code must be deterministic, "
                "so move this into a @step"
            )
        original(self)

    threading.Thread.start = start  # type: ignore[method-assign]


def install_datetime_shim(fn: Callable[..., Any]) -> None:
    """Point the ``datetime`` class a workflow's module imported at the deterministic stand-in."""
    install()
    module_globals = getattr(fn, "__globals__", None)
    if not isinstance(module_globals, dict):
        return
    for name, value in list(module_globals.items()):
        if value is _RealDatetime:
            module_globals[name] = WorkflowDatetime
