"""A schedule created from the dashboard: the request's fields, and the workflow it names.

The body is what ``workflowkit.api.create_schedule`` takes, as JSON: ``schedule_id``,
``workflow`` (its name), ``cron``, then optionally ``args`` (a list) or ``args_json`` (its
text, as the page's form sends it), ``kwargs`` or ``kwargs_json``, ``timezone``,
``catch_up``, ``overlap``, ``start_at`` and ``end_at`` (ISO 8601; UTC without an offset).
Only the shape is checked here; the values are checked where every schedule's are
(``_schedule_spec``), so the dashboard refuses what the API refuses, with the same words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._schedule_spec import DEFAULT_CATCH_UP, DEFAULT_OVERLAP
from ..worlds.base import World
from .data import workflow_names
from .requests import HttpError

_KNOWN_SHOWN = 20  # workflow names an "unknown workflow" answer lists


@dataclass(frozen=True, slots=True)
class NewSchedule:
    schedule_id: str
    workflow: str
    cron: str
    args: list[Any]
    kwargs: dict[str, Any]
    timezone: str
    catch_up: str
    overlap: str
    start_at: datetime | None
    end_at: datetime | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> NewSchedule:
        return cls(
            _required(body, "schedule_id", "an id such as nightly-report"),
            _required(body, "workflow", "the name of a @workflow"),
            _required(body, "cron", "a cron expression such as 0 9 * * MON-FRI"),
            _json(body, "args", list, 'a JSON list such as ["ops", 3]'),
            _json(body, "kwargs", dict, 'a JSON object such as {"team": "ops"}'),
            _text(body, "timezone") or "UTC",
            _text(body, "catch_up") or DEFAULT_CATCH_UP,
            _text(body, "overlap") or DEFAULT_OVERLAP,
            _moment(body, "start_at"),
            _moment(body, "end_at"),
        )


def _text(body: Mapping[str, Any], name: str) -> str | None:
    """A string field; left out, null and "" (an empty form field) are all None."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HttpError(400, f'"{name}" must be a string, not {type(value).__name__}')
    return value.strip() or None


def _required(body: Mapping[str, Any], name: str, what: str) -> str:
    value = _text(body, name)
    if value is None:
        raise HttpError(400, f'"{name}" is required: {what}')
    return value


def _json(body: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    """``name`` as a JSON value, or ``name_json`` as its text (a form's textarea)."""
    text_name = f"{name}_json"
    if name in body and text_name in body:
        raise HttpError(400, f'send "{name}" or "{text_name}", not both')
    value = body.get(name)
    text = _text(body, text_name)
    if text is not None:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise HttpError(400, f"{name} is not valid JSON ({exc}): write {what}") from None
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise HttpError(400, f"{name} must be {what}, not {json.dumps(value)[:60]}")
    return value


def _moment(body: Mapping[str, Any], name: str) -> datetime | None:
    """An ISO 8601 time; one without an offset is UTC, as ``workflowkit schedules create``
    reads it."""
    text = _text(body, name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise HttpError(
            400,
            f'"{name}" must be an ISO 8601 time such as 2030-01-01T09:00:00+01:00 '
            f"(without an offset: UTC), not {text[:60]!r}",
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def check_workflow(world: World, name: str) -> None:
    """Refuse a workflow neither this process nor any worker of the World has: no tick of
    its schedule would ever start a run. ``workflowkit web`` runs without the workflows'
    code, so the workers' registrations count as well as this process's registry."""
    known = await workflow_names(world)
    if name in known:
        return
    listed = ", ".join(known[:_KNOWN_SHOWN]) or "none"
    raise HttpError(
        400,
        f"unknown workflow {name[:100]!r}: no worker of this World and no code in the "
        f"dashboard's process has it (known: {listed})",
    )
