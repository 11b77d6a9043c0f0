"""``workflowkit.asgi.app``: webhooks and health for any ASGI server or framework.

Run it on its own (``uvicorn workflowkit.asgi:app``) or mount it:
``fastapi_app.mount("/.well-known/workflow/v1", workflowkit.asgi.app)`` (or at "/").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import api, http
from .webhooks import Request, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app: ``/.well-known/workflow/v1/webhook/{token}`` (any method) and ``/health``.

    A webhook request is delivered with ``workflowkit.api.resume_webhook``; the caller gets
    ``202``, the webhook's static response, or a manual webhook's response. Unknown tokens
    get ``404``, bodies over ``WORKFLOWKIT_MAX_WEBHOOK_BODY`` (1 MiB) ``413``, both as JSON.
    """
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    target = http.route(_full_path(scope))
    if target.kind == "health":
        await _send(send, http.HEALTHY)
        return
    if target.kind == "missing":
        await _send(send, http.error(404, "not found"))
        return
    limit = http.max_body()
    body = await _read_body(receive, limit)
    if body is None:
        await _send(send, http.too_large(limit))
        return
    await _send(send, await http.answer(_request(scope, body), target.token, api.resume_webhook))


async def _read_body(receive: Receive, limit: int) -> bytes | None:
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


def _request(scope: Scope, body: bytes) -> Request:
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", []))
    host = next((v for k, v in headers if k.lower() == "host"), None)
    scheme = scope.get("scheme", "http")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    query = scope.get("query_string", b"").decode("latin-1")
    url = f"{scheme}://{host}{_full_path(scope)}"
    return Request(scope["method"], f"{url}?{query}" if query else url, headers, body)


def _full_path(scope: Scope) -> str:
    # Servers and frameworks disagree on whether a mount prefix stays in "path".
    root, path = str(scope.get("root_path", "")), str(scope["path"])
    return path if not root or path.startswith(root) else root + path


async def _send(send: Send, response: Response) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
