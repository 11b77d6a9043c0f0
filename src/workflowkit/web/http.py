"""The dashboard's view of HTTP: a parsed request, a response, and the raw ASGI plumbing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 1024 * 1024
HTML = "text/html; charset=utf-8"
JSON = "application/json"


class HttpError(Exception):
    """Ends a request with ``status`` and a message saying what to fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # below the mount point: "/", "/runs/wrun_..."
    base: str  # the mount point ("" at the root): every link starts with it
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    cookies: Mapping[str, str]
    scheme: str
    body: bytes = b""
    query_string: str = ""

    def arg(self, name: str) -> str | None:
        value = self.query.get(name, "").strip()
        return value or None

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the request body is not valid JSON: {exc}") from None

    @property
    def host(self) -> str:
        return self.headers.get("host", "")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = HTML
    headers: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def with_headers(self, *extra: tuple[str, str]) -> Response:
        return Response(self.status, self.body, self.content_type, (*self.headers, *extra))


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, default=str).encode()
    return Response(status, body, JSON, (("cache-control", "no-store"),))


def html_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode(), HTML, (("cache-control", "no-store"),))


def redirect(location: str, *headers: tuple[str, str]) -> Response:
    return Response(303, b"", "text/plain", (("location", location), *headers))


def cookie_header(
    name: str, value: str, path: str, *, max_age: int | None = None
) -> tuple[str, str]:
    attrs = f"{name}={value}; Path={path or '/'}; HttpOnly; SameSite=Strict"
    if max_age is not None:
        attrs += f"; Max-Age={max_age}"
    return ("set-cookie", attrs)


# -- ASGI ----------------------------------------------------------------------------------


def mount_point(scope: Scope) -> tuple[str, str]:
    """``(base, path)``: where the app is mounted and the path below it.

    Servers and frameworks disagree on whether ``path`` still holds the ``root_path``.
    """
    root = str(scope.get("root_path", "")).rstrip("/")
    path = str(scope.get("path", "/"))
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    return root, path or "/"


def parse_request(scope: Scope, body: bytes) -> Request:
    headers: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        headers[key.decode("latin-1").lower()] = value.decode("latin-1")
    cookies: dict[str, str] = {}
    if "cookie" in headers:
        jar: SimpleCookie = SimpleCookie()
        # A malformed cookie header (another app on this host) is ignored, not fatal.
        with contextlib.suppress(CookieError):
            jar.load(headers["cookie"])
        cookies = {name: morsel.value for name, morsel in jar.items()}
    query_string = scope.get("query_string", b"").decode("latin-1")
    query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
    base, path = mount_point(scope)
    return Request(
        method=str(scope.get("method", "GET")).upper(),
        path=path,
        base=base,
        query=query,
        headers=headers,
        cookies=cookies,
        scheme=str(scope.get("scheme", "http")),
        body=body,
        query_string=query_string,
    )


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"request body over the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def send_response(send: Send, response: Response) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    ]
    if response.content_type == HTML:
        # Everything comes from the package itself; no inline script runs (bars place
        # themselves with style attributes, hence inline styles).
        headers.append(
            (
                b"content-security-policy",
                b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                b"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
                b"form-action 'self'",
            )
        )
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
