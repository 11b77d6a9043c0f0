"""What the ASGI and WSGI webhook apps share: routing, the body limit, and the answers.

Every outcome is a small JSON or webhook response; nothing a client sends can produce a
500 or a traceback in the response.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from urllib.parse import unquote

from . import _operations
from ._http import error
from .errors import HookNotFoundError, SerializationError, WebhookResponseNotSentError
from .runtime.runtime import get_runtime
from .webhooks import Request, Response

log = logging.getLogger("workflowkit.http")  # its name before the module was renamed
PREFIX = "/.well-known/workflow/v1/"
DEFAULT_MAX_BODY = 1024 * 1024
HEALTHY = Response.json_body({"ok": True})


def max_body() -> int:
    return int(os.environ.get("WORKFLOWKIT_MAX_WEBHOOK_BODY", DEFAULT_MAX_BODY))


@dataclass(frozen=True, slots=True)
class Target:
    """What a request path names: the health check, a webhook (by token), or nothing."""

    kind: str  # "health" | "webhook" | "missing"
    token: str = ""


def target(path: str) -> Target:
    """The target of a request path, whether the app is mounted at the root or under the prefix."""
    index = path.find(PREFIX)
    rest = path[index + len(PREFIX) :] if index >= 0 else path.lstrip("/")
    if rest in ("health", "health/"):
        return Target("health")
    if rest.startswith("webhook/") and len(rest) > len("webhook/"):
        return Target("webhook", unquote(rest[len("webhook/") :]))
    return Target("missing")


async def answer(request: Request, token: str) -> Response:
    """Deliver ``request`` to the webhook holding ``token``; what its caller gets."""
    try:
        return await _operations.resume_webhook(get_runtime().world, token, request)
    except HookNotFoundError:
        return error(404, f"no active webhook with token {token!r}")
    except WebhookResponseNotSentError as exc:
        return error(504, str(exc))
    except SerializationError as exc:
        return error(400, f"the request cannot be stored: {exc}")
    except Exception:
        log.exception("webhook %s failed", token)
        return error(503, "the webhook could not be delivered; try again")
