"""What the ASGI and WSGI apps share: routing, limits, and turning a request into a reply.

Every outcome is a small JSON or webhook response; nothing a client sends can produce a
500 or a traceback in the response.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import HookNotFoundError, SerializationError, WebhookResponseNotSentError
from .webhooks import Request, Response

log = logging.getLogger("workflowkit.http")
PREFIX = "/.well-known/workflow/v1/"
DEFAULT_MAX_BODY = 1024 * 1024


def max_body() -> int:
    return int(os.environ.get("WORKFLOWKIT_MAX_WEBHOOK_BODY", DEFAULT_MAX_BODY))


def error(status: int, message: str) -> Response:
    return Response.json_body({"error": message}, status=status)


@dataclass(frozen=True)
class Route:
    kind: str  # "health" | "webhook" | "missing"
    token: str = ""


def route(path: str) -> Route:
    """Route a request path, whether the app is mounted at the root or under the prefix."""
    index = path.find(PREFIX)
    rest = path[index + len(PREFIX) :] if index >= 0 else path.lstrip("/")
    if rest in ("health", "health/"):
        return Route("health")
    if rest.startswith("webhook/") and len(rest) > len("webhook/"):
        return Route("webhook", unquote(rest[len("webhook/") :]))
    return Route("missing")


HEALTHY = Response.json_body({"ok": True})


async def answer(
    request: Request, token: str, resume: Callable[[str, Request], Awaitable[Response]]
) -> Response:
    try:
        return await resume(token, request)
    except HookNotFoundError:
        return error(404, f"no active webhook with token {token!r}")
    except WebhookResponseNotSentError as exc:
        return error(504, str(exc))
    except SerializationError as exc:
        return error(400, f"the request cannot be stored: {exc}")
    except Exception:
        log.exception("webhook %s failed", token)
        return error(503, "the webhook could not be delivered; try again")


def too_large(limit: int) -> Response:
    return error(413, f"request body over the {limit} byte limit")
