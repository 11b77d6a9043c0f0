"""``workflowkit.wsgi.app``: webhooks and health for WSGI servers (Flask, Django, gunicorn).

Mount it with werkzeug's ``DispatcherMiddleware`` or serve it on its own.

Request bodies: the length a request announces (``CONTENT_LENGTH``) is checked before
anything is read, and no read goes past it or past the limit. A chunked body has no length:
it is read (up to the limit) only when the server decoded it and says where it ends
(``wsgi.input_terminated``, as gunicorn, werkzeug and waitress do); a server that passes the
raw stream on (wsgiref) gets ``411 Length Required`` for it rather than a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from . import _http, _webhook_app
from .webhooks import Request, Response

__all__ = ["app"]

StartResponse = Callable[..., Any]
_READ_SIZE = 64 * 1024


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI counterpart of ``workflowkit.asgi.app``: the same routes and answers.

    It reads the full path (``SCRIPT_NAME`` + ``PATH_INFO``), so it works mounted under
    ``/.well-known/workflow/v1`` or at the root.
    """
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    _webhook_app.note_port(environ.get("SERVER_PORT"), path)
    target = _webhook_app.target(path)
    if target.kind == "health":
        return _reply(start_response, _webhook_app.HEALTHY)
    if target.kind == "missing":
        return _reply(start_response, _http.error(404, "not found"))
    return _reply(start_response, _webhook(environ, path, target.token))


def _webhook(environ: dict[str, Any], path: str, token: str) -> Response:
    limit = _webhook_app.body_limit()
    if isinstance(limit, Response):
        return limit
    terminated = bool(environ.get("wsgi.input_terminated"))
    if environ.get("HTTP_TRANSFER_ENCODING") and not terminated:
        return _http.error(
            411,
            "this server passes chunked request bodies on undecoded, so their end is unknown: "
            "send the body with a Content-Length",
        )
    length = _http.declared_length(environ.get("CONTENT_LENGTH") or None, limit)
    if isinstance(length, Response):
        return length
    runtime = _webhook_app.runtime()
    if isinstance(runtime, Response):
        return runtime
    hook = runtime.call(_webhook_app.find(token))
    if isinstance(hook, Response):
        return hook
    body = _read_body(environ["wsgi.input"], limit, length, terminated)
    if isinstance(body, Response):
        return body
    return runtime.call(_webhook_app.answer(_request(environ, path, body), hook))


def _read_body(stream: Any, limit: int, length: int | None, terminated: bool) -> bytes | Response:
    """The whole body, never reading past what was announced nor past ``limit`` + 1 bytes.

    Without ``wsgi.input_terminated`` the stream may be the connection itself: exactly
    ``length`` bytes are read, and no length means no body (PEP 3333).
    """
    # Reading one byte more than allowed shows an overrun; an unterminated stream is read
    # to its announced length only (past it, it would wait for the client's next request).
    allowed = limit if length is None else length
    bound = allowed + 1 if terminated else length or 0
    chunks: list[bytes] = []
    size = 0
    try:
        while size < bound:
            chunk = stream.read(min(_READ_SIZE, bound - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except Exception:  # the client went away; servers say so in their own ways
        _webhook_app.log.info("webhook request body could not be read", exc_info=True)
        return _http.error(400, "the request body could not be read to its end")
    if size > limit:
        return _http.too_large(limit)
    if length is not None and size != length:
        return _http.error(
            400, f"the body is {size} bytes, not the {length} its Content-Length says"
        )
    return b"".join(chunks)


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
