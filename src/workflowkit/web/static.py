"""The dashboard's one script and one stylesheet, served from the package (works offline)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

from ..webhooks import Response
from ..worlds.base import World
from .requests import DashboardRequest, HttpError

_TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css"}


async def asset(world: World, request: DashboardRequest, params: Mapping[str, str]) -> Response:
    name = params["name"]
    if name not in _TYPES:
        raise HttpError(404, f"no static file {name!r}")
    body = resources.files(__package__).joinpath("static", name).read_bytes()
    return Response(200, (("content-type", _TYPES[name]), ("cache-control", "no-cache")), body)
