"""The dashboard's requests and the answers it builds.

A ``DashboardRequest`` is a request being routed inside the mounted dashboard: the path
below its mount point, the mount point itself (every link starts with it), parsed query
arguments and cookies. It is not ``workflowkit.Request``, which is what a webhook received
and is stored in a run's log; answers are ``workflowkit.Response``, as everywhere (see
``workflowkit._http``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from .._http import Scope, mount_point
from ..webhooks import Headers, Response

MAX_BODY = 1024 * 1024
HTML = "text/html; charset=utf-8"
JSON = "application/json"
_NO_STORE = ("cache-control", "no-store")


class HttpError(Exception):
    """Ends a request with ``status`` and a message saying what to fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class DashboardRequest:
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


def parse_request(scope: Scope, body: bytes) -> DashboardRequest:
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
    return DashboardRequest(
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


# -- answers -------------------------------------------------------------------------------


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, default=str).encode()
    return Response(status, (("content-type", JSON), _NO_STORE), body)


def html_response(text: str, status: int = 200) -> Response:
    return Response(status, (("content-type", HTML), _NO_STORE), text.encode())


def redirect(location: str, *headers: tuple[str, str]) -> Response:
    return Response(303, (("content-type", "text/plain"), ("location", location), *headers))


def with_headers(response: Response, *extra: tuple[str, str]) -> Response:
    return replace(response, headers=(*response.headers, *extra))


def cookie_header(
    name: str, value: str, path: str, *, max_age: int | None = None
) -> tuple[str, str]:
    attrs = f"{name}={value}; Path={path or '/'}; HttpOnly; SameSite=Strict"
    if max_age is not None:
        attrs += f"; Max-Age={max_age}"
    return ("set-cookie", attrs)


def safety_headers(response: Response) -> Headers:
    """The headers every answer carries, and the Content Security Policy of pages."""
    headers: Headers = (("x-content-type-options", "nosniff"), ("referrer-policy", "same-origin"))
    if response.header("content-type") == HTML:
        # Everything comes from the package itself; no inline script runs (bars place
        # themselves with style attributes, hence inline styles).
        policy = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        )
        headers += (("content-security-policy", policy),)
    return headers
