"""``workflowkit.wsgi.app``: webhooks and health for WSGI servers (Flask, Django, gunicorn).

Mount it with werkzeug's ``DispatcherMiddleware`` or serve it on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from . import _http, _webhook_app
from .runtime.runtime import get_runtime
from .webhooks import Request, Response

__all__ = ["app"]

StartResponse = Callable[..., Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI counterpart of ``workflowkit.asgi.app``: the same routes and answers.

    It reads the full path (``SCRIPT_NAME`` + ``PATH_INFO``), so it works mounted under
    ``/.well-known/workflow/v1`` or at the root.
    """
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    target = _webhook_app.target(path)
    if target.kind == "health":
        return _reply(start_response, _webhook_app.HEALTHY)
    if target.kind == "missing":
        return _reply(start_response, _http.error(404, "not found"))
    limit = _webhook_app.max_body()
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _reply(start_response, _http.error(400, "malformed Content-Length"))
    if length > limit:
        return _reply(start_response, _http.too_large(limit))
    body = environ["wsgi.input"].read(length) if length else b""
    request = _request(environ, path, body)
    response = get_runtime().call(_webhook_app.answer(request, target.token))
    return _reply(start_response, response)


def _request(environ: dict[str, Any], path: str, body: bytes) -> Request:
    headers = [
        (key[5:].replace("_", "-").lower(), str(value))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    if environ.get("CONTENT_TYPE"):
        headers.append(("content-type", environ["CONTENT_TYPE"]))
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    query = environ.get("QUERY_STRING", "")
    url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path}"
    return Request(
        environ["REQUEST_METHOD"], f"{url}?{query}" if query else url, tuple(headers), body
    )


def _reply(start_response: StartResponse, response: Response) -> list[bytes]:
    phrase = (
        HTTPStatus(response.status).phrase
        if response.status in HTTPStatus._value2member_map_
        else ""
    )
    headers = list(response.headers)
    if not any(k.lower() == "content-length" for k, _ in headers):
        headers.append(("Content-Length", str(len(response.body))))
    start_response(f"{response.status} {phrase}".strip(), headers)
    return [response.body]
