"""Runs ``workflowkit worker`` with the knobs the chaos suite turns, set from the environment:

- ``CHAOS_RETRY_FOR``: how long the PostgreSQL World retries before it gives up (default 30 s;
  the suite makes it short, so an outage outlasts it in seconds, not minutes);
- ``CHAOS_CRASH_AT=KIND:WHEN:N``: the process kills itself (``os._exit``, as SIGKILL would)
  just ``before`` or ``after`` the N-th SQLite commit of KIND, where KIND is the World method
  that wrote (``claim_runs``, ``release_run``...) or, for ``append``, an event type it
  appended (``step_started``, ``step_completed``, ``wait_completed``, ``run_completed``...).

    python chaos_worker.py worker MODULE...
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

CRASHED_EXIT = 86  # what the injected crash exits with, told apart from a real failure


def _short_retries() -> None:
    from workflowkit.worlds.postgres import PostgresWorld

    defaults = PostgresWorld.__init__.__kwdefaults__
    assert defaults is not None
    defaults["retry_for"] = float(os.environ["CHAOS_RETRY_FOR"])


def _crash_at(spec: str) -> None:
    """Patch the SQLite World so that the chosen commit is the process's last act."""
    from workflowkit.worlds.sqlite import _world, _writer

    kind, when, count = spec.split(":")
    left = [int(count)]
    armed = [False]  # the transaction under way is the chosen one
    real_write = _world.SQLiteWorld._write
    real_busy = _writer._busy_retried

    def kinds_of(frame_locals: dict[str, Any], method: str) -> set[str]:
        if method != "append":
            return {method}
        return {str(event.type) for event in frame_locals.get("events", ())}

    async def write(self: Any, fn: Callable[..., Any], *, worker: bool = False) -> Any:
        caller = sys._getframe(1)
        if kind in kinds_of(caller.f_locals, caller.f_code.co_name):
            left[0] -= 1
            if left[0] == 0:

                def chosen(conn: Any) -> Any:
                    result = fn(conn)
                    armed[0] = True
                    return result

                return await real_write(self, chosen, worker=worker)
        return await real_write(self, fn, worker=worker)

    def busy(conn: Any, sql: str) -> None:
        if sql == "COMMIT" and armed[0] and when == "before":
            os._exit(CRASHED_EXIT)
        real_busy(conn, sql)
        if sql == "COMMIT" and armed[0]:
            os._exit(CRASHED_EXIT)

    _world.SQLiteWorld._write = write  # type: ignore[method-assign]
    _writer._busy_retried = busy


if __name__ == "__main__":
    import workflowkit.cli.main

    if "CHAOS_RETRY_FOR" in os.environ:
        _short_retries()
    if "CHAOS_CRASH_AT" in os.environ:
        _crash_at(os.environ["CHAOS_CRASH_AT"])
    sys.exit(workflowkit.cli.main.main(sys.argv[1:]))
