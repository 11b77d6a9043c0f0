"""Helpers every backend uses to turn stored columns into records, and back."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ..errors import CorruptDataError
from .records import Event, RunStatus

# One encoder for every call: json.dumps with options builds a new one each time.
_ATTRS_ENCODER = json.JSONEncoder(separators=(",", ":"))


# The SQL condition (on stream_chunks aliased ``c``) for a chunk readers may see: written
# outside a step, or by the step's latest attempt while it runs or after it completed.
# Both Worlds use it, so chunks of failed or abandoned attempts stay hidden alike.
VISIBLE_CHUNK = (
    "(c.step_id IS NULL OR EXISTS (SELECT 1 FROM steps s WHERE s.run_id = c.run_id "
    "AND s.step_id = c.step_id AND s.attempt = c.attempt "
    "AND s.status IN ('running', 'completed')))"
)


def dump_attrs(attrs: Mapping[str, Any]) -> str | None:
    return _ATTRS_ENCODER.encode(attrs) if attrs else None


def event_row(event: Event, created_at: Any) -> tuple[Any, ...]:
    """The ``events`` columns in table order; ``created_at`` in the World's own time type."""
    return (
        event.run_id,
        event.seq,
        event.event_id,
        str(event.type),
        event.correlation_id,
        event.payload,
        dump_attrs(event.attrs),
        created_at,
    )


def load_attrs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CorruptDataError(f"stored event attributes are not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CorruptDataError("stored event attributes are not a JSON object")
    return value


def run_status(value: str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError as exc:
        raise CorruptDataError(f"unknown run status {value!r} in the store") from exc


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs (so its worker's leases must be waited out)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
