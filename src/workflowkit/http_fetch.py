"""``fetch``: an HTTP request as a built-in step.

In workflow code ``await fetch(url)`` is a durable step: retried like any step on a network
error, its ``Response`` recorded, so a replay never repeats the request. Outside a workflow
(in a step, in a test) it is a plain HTTP call. It uses httpx, which the ``http`` extra
installs (``pip install 'workflowkit[http]'``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import FatalError, MissingExtraError
from .registry import step
from .webhooks import Response

DEFAULT_TIMEOUT = 30.0
MAX_BODY = 32 * 1024 * 1024


@step(name="workflowkit.fetch")
async def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    params: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    body: bytes | str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Response:
    """Send an HTTP request; the ``Response`` (status, headers, url, content, json(), text).

    ``body`` is ``content`` under the web fetch's name. Any status is a result, not an
    error: raise in your own step to retry on a 5xx. Bodies over 32 MiB are refused, since
    every response is stored in the run's log.
    """
    if body is not None:
        if content is not None:
            # Fatal: a retry would make the same call.
            raise FatalError("fetch() takes body= or content= (the same thing), not both")
        content = body
    try:
        import httpx
    except ImportError:
        # Fatal, so the step fails at once: no retry installs the package.
        raise MissingExtraError("workflowkit.fetch", "http", "httpx") from None
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
        reply = await client.request(
            method, url, headers=headers, params=params, json=json, content=content
        )
    if len(reply.content) > MAX_BODY:
        raise ValueError(f"response of {len(reply.content)} bytes from {url} is over 32 MiB")
    return Response(
        reply.status_code, tuple(reply.headers.multi_items()), reply.content, str(reply.url)
    )
