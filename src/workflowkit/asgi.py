"""``workflowkit.asgi.app``: webhooks and health for any ASGI server or framework.

Run it on its own (``uvicorn workflowkit.asgi:app``) or mount it:
``fastapi_app.mount("/.well-known/workflow/v1", workflowkit.asgi.app)`` (or at "/").
"""

from __future__ import annotations

from . import _http, _settings, _webhook_app
from .webhooks import Request, Response

__all__ = ["app"]


async def app(scope: _http.Scope, receive: _http.Receive, send: _http.Send) -> None:
    """The ASGI app: ``/.well-known/workflow/v1/webhook/{token}`` (any method) and ``/health``.

    A webhook request is delivered as ``workflowkit.api.resume_webhook`` does; the caller gets
    ``202``, the webhook's static response, or a manual webhook's response. Unknown tokens
    get ``404`` (before the body is read), bodies over ``WORKFLOWKIT_MAX_WEBHOOK_BODY``
    (1 MiB) ``413``, an invalid ``Content-Length`` ``400``, all as JSON; a body cut off by a
    disconnect is dropped. At the server's startup (lifespan) the settings are checked: a
    bad one stops the server with its message.
    """
    if scope["type"] == "lifespan":
        await _http.serve_lifespan(receive, send, on_startup=_settings.check)
        return
    if scope["type"] != "http":
        return
    path = "".join(_http.mount_point(scope))
    server = scope.get("server")
    if server:
        _webhook_app.note_port(server[1], path)
    target = _webhook_app.target(path)
    if target.kind == "health":
        await _http.send_response(send, _webhook_app.HEALTHY)
        return
    if target.kind == "missing":
        await _http.send_response(send, _http.error(404, "not found"))
        return
    response = await _webhook(scope, receive, path, target.token)
    if response is not None:
        await _http.send_response(send, response)


async def _webhook(
    scope: _http.Scope, receive: _http.Receive, path: str, token: str
) -> Response | None:
    """The answer to a webhook request; None when the client left before its body ended."""
    limit = _webhook_app.body_limit()
    if isinstance(limit, Response):
        return limit
    lengths = [
        v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"content-length"
    ]
    length = _http.declared_length(", ".join(lengths) if lengths else None, limit)
    if isinstance(length, Response):
        return length
    hook = await _webhook_app.find(token)
    if isinstance(hook, Response):
        return hook
    body = await _http.read_body(receive, limit, length)
    if body is None or isinstance(body, Response):
        return body
    return await _webhook_app.answer(_request(scope, path, body), hook)


def _request(scope: _http.Scope, path: str, body: bytes) -> Request:
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", []))
    host = next((v for k, v in headers if k.lower() == "host"), None)
    scheme = scope.get("scheme", "http")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    query = scope.get("query_string", b"").decode("latin-1")
    url = f"{scheme}://{host}{path}"
    return Request(scope["method"], f"{url}?{query}" if query else url, headers, body)
