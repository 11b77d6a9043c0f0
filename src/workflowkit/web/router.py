"""A tiny router: ``METHOD /path/{param}`` patterns to handlers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from ..webhooks import Response
from ..worlds.base import World
from .requests import DashboardRequest, HttpError

# (the World, the request, the path parameters) -> the response
Handler = Callable[[World, DashboardRequest, Mapping[str, str]], Awaitable[Response]]

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, template: str, handler: Handler) -> Route:
    """A route; ``{name}`` in ``template`` matches one path segment (no ``/``)."""
    regex = _PARAM.sub(
        lambda m: f"(?P<{m.group(1)}>[^/]+)",
        re.escape(template).replace(r"\{", "{").replace(r"\}", "}"),
    )
    return Route(method, re.compile(f"^{regex}$"), handler)


def resolve(routes: Sequence[Route], request: DashboardRequest) -> tuple[Handler, dict[str, str]]:
    """The handler for ``request`` and its path parameters; 404 or 405 otherwise."""
    allowed = []
    for candidate in routes:
        found = candidate.pattern.match(request.path)
        if found is None:
            continue
        method = "GET" if request.method == "HEAD" else request.method
        if candidate.method == method:
            return candidate.handler, found.groupdict()
        allowed.append(candidate.method)
    if allowed:
        raise HttpError(405, f"{request.method} is not allowed here; use {', '.join(allowed)}")
    raise HttpError(404, f"no page at {request.path}")
