"""The JSON endpoints: the runs list and a run (what live updates poll), and the actions.

Shapes are those of ``workflowkit inspect --json`` (docs/cli.md), so scripts can use either.
Actions are POSTs (CSRF-checked in ``auth``) that call ``workflowkit._operations`` and
``workflowkit._schedule_ops`` on the dashboard's World, as the CLI and the client API do on
theirs; ``app`` turns the errors they raise into 404, 409 and 400 answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .. import _operations, _schedule_ops
from ..errors import ForkError, ScheduleAlreadyExistsError, SerializationError
from ..inspection import (
    describe,
    event_json,
    failure_json,
    hook_json,
    iso,
    queue_json,
    run_json,
    schedule_json,
    shown,
    step_json,
    stream_json,
    wait_json,
)
from ..webhooks import Response
from ..worlds.base import World
from ..worlds.records import utcnow
from . import data
from .new_schedule import NewSchedule, check_workflow
from .requests import DashboardRequest, HttpError, json_response
from .timeline import Bar


async def list_runs(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    """The runs list; with ``only=version``, only its version and cursor: what the list page
    polls every second, so no payload is decoded and nothing is explained for it."""
    only_version = request.arg("only") == "version"
    wanted = data.RunFilter.from_request(request)
    view = await data.runs_page(world, wanted, suggestions=False, explain=not only_version)
    if only_version:
        return json_response({"next_cursor": view.next_cursor, "version": view.version})
    return json_response(
        {
            "runs": [run_json(r, w) for r, w in zip(view.runs, view.waiting, strict=True)],
            "next_cursor": view.next_cursor,
            "version": view.version,
        }
    )


async def list_queues(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    now = utcnow()
    return json_response({"queues": [queue_json(q, now) for q in await world.list_queues()]})


async def get_run(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    view = await data.run_view(world, params["run_id"], utcnow())
    return json_response(
        {
            "run": run_json(view.run, view.waiting_for),
            "failure": failure_json(view.failure),
            "steps": [step_json(s) for s in view.steps],
            "sleeps": [wait_json(w) for w in view.waits],
            "hooks": [hook_json(h) for h in view.hooks],
            "events": [event_json(e) for e in view.events],
            "timeline": [_bar_json(b) for b in view.timeline.bars],
            "streams": [
                {**stream_json(s.info), "tail": [{"index": i, "value": v} for i, v in s.tail]}
                for s in view.streams
            ],
            "version": view.version,
        }
    )


async def run_state(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    """What a run page polls: cheap, and its ``version`` changes whenever the run does."""
    record = await _operations.require_run(world, params["run_id"])
    streams = await world.list_streams(record.run_id)
    return json_response(
        {
            "run_id": record.run_id,
            "status": str(record.status),
            "last_seq": record.last_seq,
            "version": data.run_version(record, streams),
        }
    )


def _bar_json(bar: Bar) -> dict[str, Any]:
    return {
        "item_id": bar.item_id,
        "kind": bar.kind,
        "label": bar.label,
        "state": bar.state,
        "attempt": bar.attempt,
        "correlation_id": bar.correlation_id,
        "start": iso(bar.start),
        "end": iso(bar.end),
        "facts": dict(bar.facts),
        "payloads": [{"label": p.label, "value": shown(p.data)} for p in bar.payloads],
    }


# -- actions -------------------------------------------------------------------------------


async def cancel_many(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    body = _object(request)
    ids = body.get("run_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise HttpError(400, 'send {"run_ids": ["wrun_...", ...]}: a non-empty list of run ids')
    return _cancelled(await _operations.cancel(world, ids))


async def cancel_one(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    return _cancelled(await _operations.cancel(world, [params["run_id"]]))


def _cancelled(outcome: _operations.CancelOutcome) -> Response:
    return _ended("cancelled", outcome.cancelled, outcome.skipped)


async def fail_one(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    """End the run as failed, as ``workflowkit fail`` does: ``{"reason": text}`` optional."""
    reason = _object(request).get("reason")
    if reason is not None and not isinstance(reason, str):
        raise HttpError(400, '"reason" must be a string: why the run is failed (or left out)')
    outcome = await _operations.fail(world, [params["run_id"]], reason)
    return _ended("failed", outcome.failed, outcome.skipped)


def _ended(verb: str, ended: tuple[str, ...], skipped: tuple[_operations.Skipped, ...]) -> Response:
    """Which runs ``verb`` (cancelled, failed) ended, and those left as they were."""
    return json_response(
        {verb: list(ended), "skipped": [{"run_id": s.run_id, "status": s.status} for s in skipped]}
    )


async def wake_up(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    body = _object(request)
    wait_ids = body.get("wait_ids")
    if wait_ids is not None and (
        not isinstance(wait_ids, list) or not all(isinstance(w, str) for w in wait_ids)
    ):
        raise HttpError(400, '"wait_ids" must be a list of sleep ids (or left out for all)')
    outcome = await _operations.wake_up(world, params["run_id"], wait_ids)
    return json_response(
        {
            "run_id": outcome.run.run_id,
            "woken": list(outcome.woken),
            "not_pending": list(outcome.not_pending),
            "started": outcome.started,
        }
    )


async def rerun(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    record = await _operations.rerun(world, params["run_id"])
    return json_response({"run": run_json(record)}, status=201)


async def fork(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    """A fork reusing the run's first steps: ``{"from_step": n}`` (or ``?from_step=n``)."""
    wanted = _object(request).get("from_step", request.arg("from_step"))
    if isinstance(wanted, str) and wanted.isdigit():
        wanted = int(wanted)
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
        raise HttpError(400, '"from_step" must be how many steps to reuse: 0 or more')
    try:
        record = await _operations.fork(world, params["run_id"], wanted)
    except ForkError as exc:
        raise HttpError(400, str(exc)) from None
    return json_response({"run": run_json(record)}, status=201)


async def resume_hook(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    """Deliver a payload: ``{"token": ..., "payload": value}`` or ``"payload_json": text``."""
    body = _object(request)
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise HttpError(400, '"token" is required: the token of the hook to resume')
    if ("payload" in body) == ("payload_json" in body):
        raise HttpError(400, 'send the payload as "payload" (a JSON value) or "payload_json"')
    value = body.get("payload")
    if "payload_json" in body:
        text = body["payload_json"]
        if not isinstance(text, str):
            raise HttpError(400, '"payload_json" must be a string of JSON text')
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise HttpError(400, f"the payload is not valid JSON: {exc}") from None
    try:
        hook = await _operations.resume_hook(world, token, value)
    except SerializationError as exc:
        raise HttpError(400, f"cannot store this payload: {describe(exc)}") from None
    return json_response({"hook_id": hook.hook_id, "run_id": hook.run_id})


def _object(request: DashboardRequest) -> dict[str, Any]:
    body = request.json()
    if not isinstance(body, dict):
        raise HttpError(400, "the request body must be a JSON object")
    return body


# -- schedules -------------------------------------------------------------------------------


async def list_schedules(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    view = await data.schedules_view(world)
    return json_response(
        {"version": view.version, "schedules": [schedule_json(r.record) for r in view.rows]}
    )


async def pause_schedule(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    record = await _schedule_ops.set_paused(world, params["schedule_id"], True)
    return json_response({"schedule": schedule_json(record)})


async def resume_schedule(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    record = await _schedule_ops.set_paused(world, params["schedule_id"], False)
    return json_response({"schedule": schedule_json(record)})


async def trigger_schedule(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    created = await _schedule_ops.trigger(world, params["schedule_id"])
    return json_response({"run": run_json(created.record)})


async def create_schedule(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    """A new schedule, from the fields ``new_schedule`` reads: ``201 {"schedule": ...}``."""
    new = NewSchedule.from_body(_object(request))
    await check_workflow(world, new.workflow)
    try:
        # By name, as the CLI does: the dashboard has no workflow code to hand to create().
        record = await _schedule_ops.create(
            world,
            new.schedule_id,
            new.workflow,
            cron=new.cron,
            args=new.args,
            kwargs=new.kwargs,
            timezone=new.timezone,
            catch_up=new.catch_up,
            overlap=new.overlap,
            start_at=new.start_at,
            end_at=new.end_at,
        )
    except ScheduleAlreadyExistsError:
        raise HttpError(
            409,
            f"a schedule with id {new.schedule_id!r} exists already: choose another id, "
            "or delete that schedule first",
        ) from None
    except SerializationError as exc:
        raise HttpError(400, f"cannot store these arguments: {describe(exc)}") from None
    return json_response({"schedule": schedule_json(record)}, status=201)


async def delete_schedule(
    world: World, request: DashboardRequest, params: Mapping[str, str]
) -> Response:
    await _schedule_ops.delete(world, params["schedule_id"])
    return json_response({"deleted": params["schedule_id"]})
