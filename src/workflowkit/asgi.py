"""``workflowkit.asgi.app``: webhooks and health for any ASGI server or framework.

Run it on its own (``uvicorn workflowkit.asgi:app``) or mount it:
``fastapi_app.mount("/.well-known/workflow/v1", workflowkit.asgi.app)`` (or at "/").
"""

from __future__ import annotations

from . import _http, _webhook_app
from .webhooks import Request

__all__ = ["app"]


async def app(scope: _http.Scope, receive: _http.Receive, send: _http.Send) -> None:
    """The ASGI app: ``/.well-known/workflow/v1/webhook/{token}`` (any method) and ``/health``.

    A webhook request is delivered as ``workflowkit.api.resume_webhook`` does; the caller gets
    ``202``, the webhook's static response, or a manual webhook's response. Unknown tokens
    get ``404``, bodies over ``WORKFLOWKIT_MAX_WEBHOOK_BODY`` (1 MiB) ``413``, both as JSON.
    """
    if scope["type"] == "lifespan":
        await _http.serve_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = "".join(_http.mount_point(scope))
    target = _webhook_app.target(path)
    if target.kind == "health":
        await _http.send_response(send, _webhook_app.HEALTHY)
        return
    if target.kind == "missing":
        await _http.send_response(send, _http.error(404, "not found"))
        return
    limit = _webhook_app.max_body()
    body = await _http.read_body(receive, limit)
    if body is None:
        await _http.send_response(send, _http.too_large(limit))
        return
    request = _request(scope, path, body)
    await _http.send_response(send, await _webhook_app.answer(request, target.token))


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
