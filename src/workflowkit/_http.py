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
a body up to a limit, sending a ``Response``, the lifespan protocol), the check of a
declared ``Content-Length`` and the JSON error answer (``{"error": message}``) that the WSGI
webhook app uses too.

Failure model of a request body: it is handed on whole or not at all. A body over the limit
is refused as soon as that is known (from its ``Content-Length``, else while reading) and
the rest is not read; a body shorter than it said, or cut off by a disconnect, is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import with_docs_link
from .webhooks import Headers, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Body = bytes | Response | None  # what read_body found: the body, a refusal, or nobody there


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


_DIGITS = re.compile(r"[0-9]+")


def declared_length(raw: str | None, limit: int) -> int | Response | None:
    """The body length a request announces (``Content-Length``), checked before any reading.

    None when it announces none. The answer refusing the request when the value is not a
    whole number of bytes (400: a sign, a list, hex, spaces inside) or is over ``limit``
    (413: nothing of the body is read).
    """
    if raw is None:
        return None
    text = raw.strip(" \t")
    if not _DIGITS.fullmatch(text):
        return error(400, f"invalid Content-Length {raw[:40]!r}: it must be a number of bytes")
    if len(text.lstrip("0")) > len(str(limit)) or int(text) > limit:
        return too_large(limit)
    return int(text)


async def read_body(receive: Receive, limit: int, length: int | None = None) -> Body:
    """The whole request body, up to ``limit`` bytes (``length``: what it announced).

    A ``Response`` refusing it when it grows over ``limit`` (413; the rest is not read) or
    does not match ``length`` (400). None when the client disconnected before the body
    ended: a part of a body is never handed on, and nobody is left to answer.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if length is not None and size != length:
        return error(400, f"the body is {size} bytes, not the {length} its Content-Length says")
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
    receive: Receive,
    send: Send,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    on_startup: Callable[[], None] | None = None,
) -> None:
    """Answer the server's startup and shutdown messages.

    ``on_startup`` runs first at startup; if it raises, the startup fails with its message
    (the server logs it and does not start). ``on_shutdown`` runs first at shutdown.
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                if on_startup is not None:
                    on_startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": with_docs_link(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
