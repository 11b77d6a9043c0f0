"""The dashboard served in-process through httpx's ASGI transport, and the CSRF header its
POSTs need: what the tests of its HTTP answers share."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx

from workflowkit.web import Dashboard, create_app

HTML = {"accept": "text/html"}


@contextlib.asynccontextmanager
async def dashboard_client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    app: Dashboard = create_app(url)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            yield client
    finally:
        await app.close()


async def csrf(client: httpx.AsyncClient, page: str = "/") -> dict[str, str]:
    """The header a page's script sends with a POST (after the page set the cookie)."""
    answer = await client.get(page, headers=HTML)
    token = re.search(r'name="workflowkit-csrf" content="([^"]+)"', answer.text)
    assert token is not None and client.cookies["workflowkit_csrf"] == token.group(1)
    return {"x-workflowkit-csrf": token.group(1)}
