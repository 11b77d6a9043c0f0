"""Runs the ``workflowkit`` command in a process whose wall clock is off by SKEW seconds.

    python skewed_worker.py SKEW worker MODULE...

It plays a machine with a wrong clock: ``time.time`` and ``time.time_ns`` are shifted before
anything else is imported, and ``datetime.now``/``utcnow``/``today`` wherever workflowkit's
own modules read them (C methods cannot be patched on the ``datetime`` class itself, and
replacing the class for the codec or psycopg would change what they encode). Monotonic
clocks stay as they are, as on a real machine, and so does the database's clock.
"""

from __future__ import annotations

import datetime as _datetime
import sys
import time
from typing import Any

SKEW = float(sys.argv[1])
_real_time, _real_time_ns = time.time, time.time_ns
time.time = lambda: _real_time() + SKEW
time.time_ns = lambda: _real_time_ns() + int(SKEW * 1_000_000_000)

_Real = _datetime.datetime


class _Meta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, _Real)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _Real)


class SkewedDatetime(_Real, metaclass=_Meta):
    """``datetime`` whose clock readings are skewed; the objects it makes are plain datetimes."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Real:  # type: ignore[misc]
        return _Real(*args, **kwargs)

    @classmethod
    def now(cls, tz: _datetime.tzinfo | None = None) -> _Real:  # type: ignore[override]
        return _Real.fromtimestamp(time.time(), tz)

    @classmethod
    def utcnow(cls) -> _Real:  # type: ignore[override]
        return _Real.fromtimestamp(time.time(), _datetime.UTC).replace(tzinfo=None)

    @classmethod
    def today(cls) -> _Real:  # type: ignore[override]
        return cls.now()


def _skew_workflowkit_modules() -> None:
    # The codec compares types by identity, and the determinism shims hold the real class on
    # purpose; every other module of ours reads the skewed clock.
    for name, module in list(sys.modules.items()):
        if not name.startswith("workflowkit.") or name.startswith(
            ("workflowkit.serde", "workflowkit.runtime.determinism")
        ):
            continue
        for attr, value in list(vars(module).items()):
            if value is _Real:
                setattr(module, attr, SkewedDatetime)


if __name__ == "__main__":
    import workflowkit.cli.main
    import workflowkit.worlds.postgres  # loaded now so that it reads the skewed clock too

    _skew_workflowkit_modules()
    sys.exit(workflowkit.cli.main.main(sys.argv[2:]))
