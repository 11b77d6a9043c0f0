"""The HTML pages: the runs list, a run and the schedules (whole, or only their live part)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from ..webhooks import Response
from ..worlds.base import World
from ..worlds.records import utcnow
from . import data
from .auth import csrf_token
from .html import Markup
from .layout import page
from .list_page import runs_body, runs_live
from .queues_page import queues_body
from .requests import DashboardRequest, HttpError, html_response, with_headers
from .run_page import run_body, run_live
from .schedules_page import schedules_body, schedules_live


async def runs(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    wanted = data.RunFilter.from_request(request)
    live_only = request.arg("fragment") is not None
    view = await data.runs_page(world, wanted, suggestions=not live_only)
    now = utcnow()
    if live_only:
        return html_response(runs_live(request.base, view, now))
    return _page(request, "Runs", runs_body(request.base, view, now))


async def run(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    view = await data.run_view(world, params["run_id"], utcnow())
    view = view.select(request.arg("item"))
    window = _window(request)
    if window is not None:
        view = replace(view, timeline=view.timeline.zoom(*window))
    if request.arg("fragment") is not None:
        return html_response(run_live(request.base, view))
    return _page(
        request, f"{view.run.workflow_name} {view.run.run_id}", run_body(request.base, view)
    )


async def queues(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    return _page(request, "Queues", queues_body(request.base, await world.list_queues(), utcnow()))


async def schedules(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    view = await data.schedules_view(world)
    now = utcnow()
    if request.arg("fragment") is not None:
        return html_response(schedules_live(request.base, view, now))
    workflows = await data.workflow_names(world)
    return _page(request, "Schedules", schedules_body(request.base, view, now, workflows))


def _window(request: DashboardRequest) -> tuple[float, float] | None:
    """The timeline's zoom: ``from`` and ``to``, seconds after the run was created."""
    start, end = request.arg("from"), request.arg("to")
    if start is None and end is None:
        return None
    try:
        first, last = float(start or 0), float(end if end is not None else "inf")
    except ValueError:
        raise HttpError(400, "from and to must be seconds after the run's creation") from None
    if not (math.isfinite(first) and first >= 0 and last > first):
        raise HttpError(400, "from must be 0 or more and to greater than from (seconds)")
    return first, last


def _page(request: DashboardRequest, title: str, body: Markup) -> Response:
    token, cookies = csrf_token(request)
    return with_headers(html_response(page(request.base, title, token, body)), *cookies)
