"""The HTTP core under workflowkit's web apps: the webhook apps and the dashboard.

One word per concept. An HTTP response is ``workflowkit.Response`` everywhere: what a
webhook answers, what ``fetch`` returns, every page and JSON answer of the dashboard. There
are two request types because there are two different things: ``workflowkit.Request`` is
what a webhook received, recorded in the run's log and handed to workflow code (so it is
serializable and holds nothing but the message), while ``web.requests.DashboardRequest`` is
a request being routed inside the mounted dashboard (the path below the mount point,
cookies, query arguments) and is never stored. Routing is each app's own, under its own
name: the dashboard has a table of ``web.router.Route`` (method, path pattern, handler); the
webhook apps ask ``_webhook_app.target(path)`` what a path names.

What is here is written once for both: the ASGI plumbing (where an app is mounted, reading
a body up to a limit, sending a ``Response``, the lifespan protocol) and the JSON error
answer (``{"error": message}``) that the WSGI webhook app sends too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .webhooks import Headers, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def mount_point(scope: Scope) -> tuple[str, str]:
    """``(base, path)``: where the app is mounted ("" at the root) and the path below it.

    Servers and frameworks disagree on whether ``path`` still holds the ``root_path``.
    """
    root = str(scope.get("root_path", "")).rstrip("/")
    path = str(scope.get("path", "/"))
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return root, path or "/"


def error(status: int, message: str) -> Response:
    """The JSON error both apps answer with: ``{"error": message}``."""
    return Response.json_body({"error": message}, status=status)


def too_large(limit: int) -> Response:
    return error(413, f"request body over the {limit} byte limit")


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body; None once it grows over ``limit`` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_response(send: Send, response: Response, extra: Headers = ()) -> None:
    """Send ``response`` with the ``extra`` headers; ``content-length`` is added if missing."""
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (*response.headers, *extra)
    ]
    if not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def serve_lifespan(
    receive: Receive, send: Send, on_shutdown: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Answer the server's startup and shutdown messages (calling ``on_shutdown`` first)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
