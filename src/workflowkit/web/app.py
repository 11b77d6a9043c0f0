"""The dashboard as an ASGI application: auth, routing, errors, and the World's lifetime.

Its actions call ``workflowkit._operations``, as the client API and the CLI do; their
errors become answers here: an unknown run, schedule or hook token is a 404, a hook payload sent to
a webhook's token or a schedule that cannot be defined a 400, a change to a schedule declared
in code a 409 (only its code changes it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .. import _http
from ..errors import (
    HookNotFoundError,
    InvalidScheduleError,
    ScheduleNotFoundError,
    StaticScheduleError,
    WebhookTokenError,
    WorkflowRunNotFoundError,
)
from ..webhooks import Response
from ..worlds import open_world
from ..worlds.base import World
from . import endpoints, pages, static
from .auth import Guard, csrf_token
from .layout import error_page
from .requests import (
    MAX_BODY,
    DashboardRequest,
    HttpError,
    html_response,
    json_response,
    parse_request,
    safety_headers,
    with_headers,
)
from .router import Route, resolve, route

log = logging.getLogger("workflowkit.web")

ROUTES: tuple[Route, ...] = (
    route("GET", "/", pages.runs),
    route("GET", "/runs/{run_id}", pages.run),
    route("GET", "/queues", pages.queues),
    route("GET", "/static/{name}", static.asset),
    route("GET", "/api/runs", endpoints.list_runs),
    route("GET", "/api/queues", endpoints.list_queues),
    route("POST", "/api/runs/cancel", endpoints.cancel_many),
    route("GET", "/api/runs/{run_id}", endpoints.get_run),
    route("GET", "/api/runs/{run_id}/state", endpoints.run_state),
    route("POST", "/api/runs/{run_id}/cancel", endpoints.cancel_one),
    route("POST", "/api/runs/{run_id}/fail", endpoints.fail_one),
    route("POST", "/api/runs/{run_id}/wake-up", endpoints.wake_up),
    route("POST", "/api/runs/{run_id}/rerun", endpoints.rerun),
    route("POST", "/api/runs/{run_id}/fork", endpoints.fork),
    route("POST", "/api/hooks/resume", endpoints.resume_hook),
    route("GET", "/schedules", pages.schedules),
    route("GET", "/api/schedules", endpoints.list_schedules),
    route("POST", "/api/schedules", endpoints.create_schedule),
    route("POST", "/api/schedules/{schedule_id}/pause", endpoints.pause_schedule),
    route("POST", "/api/schedules/{schedule_id}/resume", endpoints.resume_schedule),
    route("POST", "/api/schedules/{schedule_id}/trigger", endpoints.trigger_schedule),
    route("POST", "/api/schedules/{schedule_id}/delete", endpoints.delete_schedule),
)


class Dashboard:
    """The ASGI app ``create_app`` returns; ``await close()`` when mounted elsewhere."""

    def __init__(
        self,
        world: World | str | None = None,
        *,
        token: str | None = None,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("token must not be empty (pass None for no token)")
        self._url = world if not isinstance(world, World) else None
        self._world = world if isinstance(world, World) else None
        self._owns_world = self._world is None
        hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        self.guard = Guard(token, hosts)

    @property
    def world(self) -> World:
        if self._world is None:  # opened on first use, on the serving event loop
            self._world = open_world(self._url)
        return self._world

    async def close(self) -> None:
        if self._owns_world and self._world is not None:
            world, self._world = self._world, None
            await world.close()

    async def __call__(self, scope: _http.Scope, receive: _http.Receive, send: _http.Send) -> None:
        if scope["type"] == "lifespan":
            await _http.serve_lifespan(receive, send, self.close)
            return
        if scope["type"] != "http":
            return
        body = await _http.read_body(receive, MAX_BODY)
        if body is None:
            return  # the client left before its request ended: nothing to act on
        if isinstance(body, Response):
            response = body
        else:
            response = await self.handle(parse_request(scope, body))
        await _http.send_response(send, response, safety_headers(response))

    async def handle(self, request: DashboardRequest) -> Response:
        try:
            early = self.guard.admit(request)
            if early is not None:
                return early
            handler, params = resolve(ROUTES, request)
            return await handler(self.world, request, params)
        except HttpError as exc:
            return _error(request, exc.status, exc.message)
        except (WorkflowRunNotFoundError, HookNotFoundError, ScheduleNotFoundError) as exc:
            return _error(request, 404, str(exc))
        except StaticScheduleError as exc:
            return _error(request, 409, str(exc))
        except (WebhookTokenError, InvalidScheduleError) as exc:
            return _error(request, 400, str(exc))
        except Exception:
            log.exception("dashboard: %s %s failed", request.method, request.path)
            return _error(request, 500, "the dashboard failed to answer; see its log")


def _error(request: DashboardRequest, status: int, message: str) -> Response:
    if request.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return json_response({"error": message}, status)
    token, cookies = csrf_token(request)
    page = error_page(request.base, token, status, message)
    return with_headers(html_response(page, status), *cookies)


def create_app(
    world: World | str | None = None,
    *,
    token: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
) -> Dashboard:
    """The web dashboard as an ASGI app.

    ``world`` is a World or its URL (default: ``$WORKFLOWKIT_WORLD``, else the SQLite file
    under ``.workflowkit/``); a World opened here is closed at lifespan shutdown or by
    ``await app.close()``. With ``token``, every request must carry it (see docs/dashboard.md).
    ``allowed_hosts`` (host names without port) refuses requests for any other ``Host``.
    """
    return Dashboard(world, token=token, allowed_hosts=allowed_hosts)
