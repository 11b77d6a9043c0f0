"""What the ASGI and WSGI webhook apps share: routing, the body limit, and the answers.

Every outcome is a small JSON or webhook response; nothing a client sends can produce a
500 or a traceback in the response. A request goes through the same steps in both apps,
each refusing it as early and as cheaply as it can:

1. the path: the health check, a webhook token, or 404;
2. the settings (``WORKFLOWKIT_MAX_WEBHOOK_BODY``): a bad one is a 500 saying the server is
   misconfigured (the log says how), never the client's fault;
3. the framing, from the headers alone: a ``Content-Length`` that is not a number is 400,
   one over the limit 413, a body the server cannot frame 411 (WSGI only);
4. the token (``require_webhook``): unknown is 404, before a byte of the body is read;
5. the body, read up to the limit: over it 413, shorter than announced 400 (ASGI: nothing
   is answered to a client that went away), never handed on in part;
6. the delivery (``answer``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote

from . import _operations, _settings, urls
from ._http import error
from .errors import (
    ConfigurationError,
    HookNotFoundError,
    SerializationError,
    WebhookResponseNotSentError,
    with_docs_link,
)
from .runtime.runtime import Runtime, get_runtime
from .webhooks import Request, Response
from .worlds.records import HookRecord

log = logging.getLogger("workflowkit.http")  # its name before the module was renamed
PREFIX = "/.well-known/workflow/v1/"
HEALTHY = Response.json_body({"ok": True})
MISCONFIGURED = "workflowkit is misconfigured; see the server log"


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


def note_port(port: object, path: str) -> None:
    """Learn where this app is served (``urls.served_at``): a webhook's default URL."""
    if isinstance(port, int | str) and str(port).isdigit():
        index = path.find(PREFIX)
        urls.served_at(int(port), path[:index] if index > 0 else "")


def misconfigured(exc: ConfigurationError) -> Response:
    """The answer when a setting is bad: the log says which; the client only that it is."""
    log.error("webhook request refused: %s", with_docs_link(exc))
    return error(500, MISCONFIGURED)


def body_limit() -> int | Response:
    """The largest body accepted (``WORKFLOWKIT_MAX_WEBHOOK_BODY``), or the 500 answer."""
    try:
        return _settings.max_webhook_body()
    except ConfigurationError as exc:
        return misconfigured(exc)


def runtime() -> Runtime | Response:
    """The process's runtime (started on first use), or the answer when it cannot start."""
    try:
        return get_runtime()
    except ConfigurationError as exc:
        return misconfigured(exc)
    except Exception:
        log.exception("webhook request refused: workflowkit cannot start")
        return error(503, "the webhook could not be delivered; try again")


async def find(token: str) -> HookRecord | Response:
    """The webhook holding ``token``, or the answer when there is none (or no World)."""
    try:
        return await _operations.require_webhook(get_runtime().world, token)
    except HookNotFoundError:
        return error(404, f"no active webhook with token {token!r}")
    except ConfigurationError as exc:
        return misconfigured(exc)
    except Exception:
        log.exception("webhook %s: the World cannot be reached", token)
        return error(503, "the webhook could not be delivered; try again")


async def answer(request: Request, hook: HookRecord) -> Response:
    """Deliver ``request`` to ``hook`` (found by ``find``); what its caller gets."""
    try:
        return await _operations.deliver_to_webhook(get_runtime().world, hook, request)
    except HookNotFoundError:  # disposed, or its run ended, since it was found
        return error(404, f"no active webhook with token {hook.token!r}")
    except WebhookResponseNotSentError as exc:
        return error(504, str(exc))
    except SerializationError as exc:
        return error(400, f"the request cannot be stored: {exc}")
    except ConfigurationError as exc:
        return misconfigured(exc)
    except Exception:
        log.exception("webhook %s failed", hook.token)
        return error(503, "the webhook could not be delivered; try again")
