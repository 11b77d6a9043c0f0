"""How a run is started, besides its arguments: ``workflow.options(...)``, checked once.

``Workflow.options`` builds a ``StartOptions`` and binds it to a copy of the workflow, so
``start(send_invoice.options(run_id=...), order_id)`` keeps the workflow's typed signature.
Every value is checked here, when the options are made, with an error that says what to
fix; the World only stores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .durations import Duration, parse_duration
from .errors import StartOptionsError

OnConflict = Literal["return", "error"]

# What a run id of the user's own may hold: the id is shown as given everywhere (CLI,
# dashboard URLs, logs), so it keeps to characters that need no quoting there.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]*")
_RUN_ID_MAX = 200
_NAME_MAX = 200


@dataclass(frozen=True, slots=True)
class StartOptions:
    """Start options of a run (see ``Workflow.options``); all optional."""

    run_id: str | None = None
    on_conflict: OnConflict = "return"
    queue: str | None = None
    key: str | None = None
    priority: int = 0
    delay: float | None = None  # seconds from the start call
    start_at: datetime | None = None
    timeout: float | None = None  # seconds from the start call
    detached: bool = False

    def start_time(self, now: float) -> float | None:
        """When the run may start (Unix seconds on the World's clock); None: at once."""
        if self.start_at is not None:
            return self.start_at.timestamp()
        return None if self.delay is None else now + self.delay

    def deadline(self, now: float) -> float | None:
        return None if self.timeout is None else now + self.timeout


NO_START_OPTIONS = StartOptions()


def make_options(
    *,
    run_id: str | None = None,
    on_conflict: OnConflict = "return",
    queue: str | None = None,
    key: str | None = None,
    priority: int = 0,
    delay: Duration | None = None,
    start_at: datetime | None = None,
    timeout: Duration | None = None,
    detached: bool = False,
) -> StartOptions:
    """``StartOptions`` from what a user wrote; ``StartOptionsError`` for a bad value."""
    if run_id is not None:
        check_run_id(run_id)
    if on_conflict not in ("return", "error"):
        raise StartOptionsError(f"on_conflict must be 'return' or 'error', not {on_conflict!r}")
    _check_name("queue", queue)
    _check_name("key", key)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise StartOptionsError(f"priority must be an int, not {priority!r}")
    if delay is not None and start_at is not None:
        raise StartOptionsError("give delay or start_at, not both")
    if start_at is not None and (not isinstance(start_at, datetime) or start_at.tzinfo is None):
        raise StartOptionsError(
            f"start_at must be an aware datetime (with a timezone), not {start_at!r}"
        )
    if not isinstance(detached, bool):
        raise StartOptionsError(f"detached must be a bool, not {detached!r}")
    return StartOptions(
        run_id,
        on_conflict,
        queue,
        key,
        priority,
        _seconds("delay", delay),
        start_at,
        _positive("timeout", _seconds("timeout", timeout)),
        detached,
    )


def check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str):
        raise StartOptionsError(f"run_id must be a str, not {type(run_id).__name__}")
    if len(run_id) > _RUN_ID_MAX or not _RUN_ID.fullmatch(run_id):
        raise StartOptionsError(
            f"invalid run_id {run_id[:60]!r}: use 1 to {_RUN_ID_MAX} letters, digits and "
            "._:@+=- (starting with a letter or digit)"
        )
    return run_id


def _check_name(what: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value or len(value) > _NAME_MAX:
        raise StartOptionsError(f"{what} must be a non-empty str of at most {_NAME_MAX} chars")


def _seconds(what: str, value: Duration | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except (TypeError, ValueError) as exc:
        raise StartOptionsError(f"{what}: {exc}") from None


def _positive(what: str, seconds: float | None) -> float | None:
    if seconds is not None and seconds <= 0:
        raise StartOptionsError(f"{what} must be more than zero")
    return seconds
