"""Who may use the dashboard: the access token, the Host check, and CSRF protection.

- Token (optional): every request carries it as ``Authorization: Bearer T``, or in the
  HttpOnly cookie set after one visit to any page with ``?token=T``.
- Host check (optional, on by default for ``workflowkit web`` without a token): a request
  whose ``Host`` is not one of ours is refused, so a web page that re-points its own domain
  at 127.0.0.1 (DNS rebinding) cannot read the dashboard.
- CSRF: a POST must carry the ``X-Workflowkit-CSRF`` header equal to the ``workflowkit_csrf``
  cookie (both set by the pages, unreadable cross-site), and an ``Origin`` header, when
  sent, must be the dashboard's own.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from ..webhooks import Response
from .requests import DashboardRequest, HttpError, cookie_header, redirect

TOKEN_COOKIE = "workflowkit_token"
CSRF_COOKIE = "workflowkit_csrf"
CSRF_HEADER = "x-workflowkit-csrf"
_YEAR = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Guard:
    token: str | None = None
    allowed_hosts: frozenset[str] | None = None  # host names, lower-case, no port

    def admit(self, request: DashboardRequest) -> Response | None:
        """None to go on; else the answer (a redirect that stores the token in a cookie).

        Raises ``HttpError`` (400 bad Host, 401 missing or wrong token, 403 CSRF).
        """
        self._check_host(request)
        if self.token is not None:
            given = request.query.get("token")
            if given is not None and request.method == "GET" and _same(given, self.token):
                return self._store_token(request)
            if not self._authenticated(request):
                raise HttpError(
                    401,
                    "this dashboard needs its access token: open it once with ?token=TOKEN, "
                    "or send the header 'Authorization: Bearer TOKEN'",
                )
        if request.method not in ("GET", "HEAD"):
            self._check_csrf(request)
        return None

    def _check_host(self, request: DashboardRequest) -> None:
        if self.allowed_hosts is None:
            return
        name = host_name(request.host)
        if name not in self.allowed_hosts:
            raise HttpError(
                400,
                f"unexpected Host header {request.host!r}: open the dashboard at the address "
                "it was started on (or start it with --token to serve other host names)",
            )

    def _authenticated(self, request: DashboardRequest) -> bool:
        assert self.token is not None
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and _same(value.strip(), self.token):
            return True
        return _same(request.cookies.get(TOKEN_COOKIE, ""), self.token)

    def _store_token(self, request: DashboardRequest) -> Response:
        assert self.token is not None
        rest = {k: v for k, v in request.query.items() if k != "token"}
        location = request.base + request.path + (f"?{urlencode(rest)}" if rest else "")
        return redirect(
            location, cookie_header(TOKEN_COOKIE, self.token, request.base, max_age=_YEAR)
        )

    def _check_csrf(self, request: DashboardRequest) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            parts = urlsplit(origin)
            if parts.netloc.lower() != request.host.lower():
                raise HttpError(403, f"cross-site request refused (Origin {origin})")
        elif origin == "null":
            raise HttpError(403, "cross-site request refused (Origin null)")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        header = request.headers.get(CSRF_HEADER, "")
        if not cookie or not _same(cookie, header):
            raise HttpError(
                403,
                f"missing or wrong CSRF token: send the {CSRF_HEADER} header with the value of "
                f"the {CSRF_COOKIE} cookie (the dashboard's pages do this)",
            )


def csrf_token(request: DashboardRequest) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The request's CSRF token and, when it had none, the header that sets a new one."""
    known = request.cookies.get(CSRF_COOKIE, "")
    if known:
        return known, ()
    fresh = secrets.token_urlsafe(24)
    return fresh, (cookie_header(CSRF_COOKIE, fresh, request.base),)


def host_name(host: str) -> str:
    """``"127.0.0.1:3456"`` -> ``"127.0.0.1"``; ``"[::1]:80"`` -> ``"[::1]"``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def loopback_hosts(extra: Sequence[str] = ()) -> frozenset[str]:
    return frozenset({"127.0.0.1", "localhost", "[::1]", *(h.lower() for h in extra)})


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
