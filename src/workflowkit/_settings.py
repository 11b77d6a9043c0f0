"""Settings read from the environment: parsed here, checked at start-up, shown safely.

Each ``WORKFLOWKIT_*`` setting has a function here that parses it, so a value is understood
the same way wherever it is used, and a value that makes no sense is a
``ConfigurationError`` naming the variable, what it holds and what it takes (never a
``ValueError`` from ``int()`` deep in a request, nor a silent fallback). Three are read
where they are used and only checked here: the World URL (``worlds.open_world``), the
base URL (``urls.base_url``) and the serde limits (read when ``workflowkit.serde`` is
imported, which warns and falls back).

``check_settings()`` reads them all when a process starts using workflowkit: a runtime is
created (``configure()``, the first ``start()``) or ``workflowkit worker`` starts, each of
which then opens the World its URL names (``open_world`` refuses a malformed one). An ASGI
server starting ``workflowkit.asgi.app`` runs ``check()`` (its lifespan startup): the same,
and the form of ``WORKFLOWKIT_WORLD``. So a mistake stops the process at once instead of
failing every request. The webhook apps read their settings again for each request (a
test may change them), with the same functions.

``redact_url`` is the one way a World URL is shown, in messages and logs alike.
"""

from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._retry_policy import Retry
from .errors import ConfigurationError, StepOptionsError

if TYPE_CHECKING:
    from .encryption import EncryptionKeys

WORLD = "WORKFLOWKIT_WORLD"
BASE_URL = "WORKFLOWKIT_BASE_URL"
MAX_WEBHOOK_BODY = "WORKFLOWKIT_MAX_WEBHOOK_BODY"
WEBHOOK_RESPONSE_TIMEOUT = "WORKFLOWKIT_WEBHOOK_RESPONSE_TIMEOUT"
EMBEDDED_WORKER = "WORKFLOWKIT_EMBEDDED_WORKER"
RUN_CACHE = "WORKFLOWKIT_RUN_CACHE"
LEASE_SECONDS = "WORKFLOWKIT_LEASE_SECONDS"
STEP_SLOTS = "WORKFLOWKIT_STEP_SLOTS"
MAX_RUNS = "WORKFLOWKIT_MAX_RUNS"
SERDE_MAX_SIZE = "WORKFLOWKIT_SERDE_MAX_SIZE"
SERDE_MAX_DEPTH = "WORKFLOWKIT_SERDE_MAX_DEPTH"
RETENTION = "WORKFLOWKIT_RETENTION"
DEPLOYMENT = "WORKFLOWKIT_DEPLOYMENT"
ENCRYPTION_KEYS = "WORKFLOWKIT_ENCRYPTION_KEYS"
RETRY = "WORKFLOWKIT_RETRY"

DEFAULT_MAX_WEBHOOK_BODY = 1024 * 1024

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_INTEGER = re.compile(r"[0-9]+")


def _raw(name: str) -> str | None:
    """The variable's value, or None when it is unset or blank (the default applies)."""
    value = os.environ.get(name)
    return value if value is not None and value.strip() else None


def _refuse(name: str, raw: str, wanted: str) -> ConfigurationError:
    return ConfigurationError(f"{name}={raw!r} is not valid: it takes {wanted}")


def integer(name: str, default: int, *, minimum: int) -> int:
    """A whole number at least ``minimum`` (digits only: no sign, underscore or exponent)."""
    raw = _raw(name)
    if raw is None:
        return default
    text = raw.strip()
    if not _INTEGER.fullmatch(text) or len(text) > 18 or int(text) < minimum:
        raise _refuse(name, raw, f"a whole number of at least {minimum}")
    return int(text)


def seconds(name: str, default: float) -> float:
    """A positive, finite number of seconds."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise _refuse(name, raw, "a positive number of seconds, like 30 or 2.5")
    return value


def flag(name: str, default: bool) -> bool:
    """On (1, true, yes, on) or off (0, false, no, off), in any case."""
    raw = _raw(name)
    if raw is None:
        return default
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _refuse(name, raw, "1, true, yes or on to turn it on; 0, false, no or off for off")


# -- the settings ---------------------------------------------------------------------------


def max_webhook_body() -> int:
    """The largest webhook request body accepted, in bytes (413 above it)."""
    return integer(MAX_WEBHOOK_BODY, DEFAULT_MAX_WEBHOOK_BODY, minimum=0)


def webhook_response_timeout() -> float:
    """How long a manual webhook's caller waits for a step's response, in seconds."""
    return seconds(WEBHOOK_RESPONSE_TIMEOUT, 30.0)


def embedded_worker() -> bool:
    return flag(EMBEDDED_WORKER, True)


def run_cache() -> bool:
    return flag(RUN_CACHE, True)


def lease_seconds() -> float:
    return seconds(LEASE_SECONDS, 30.0)


def step_slots() -> int:
    return integer(STEP_SLOTS, 256, minimum=1)


def max_runs() -> int:
    """How many runs a worker holds in memory at once (see docs/workers.md)."""
    return integer(MAX_RUNS, 2000, minimum=1)


def retention() -> float | None:
    """How long ended runs are kept before workers delete them (None: forever)."""
    raw = _raw(RETENTION)
    if raw is None:
        return None
    from .durations import parse_duration

    try:
        value = parse_duration(raw.strip())
    except (TypeError, ValueError):
        value = 0.0
    if value <= 0:
        raise _refuse(RETENTION, raw, "a duration like 30d or 12h (unset: keep runs forever)")
    return value


def deployment() -> str | None:
    """The name of the deployed code (recorded on runs, compared to retry parked ones)."""
    raw = _raw(DEPLOYMENT)
    if raw is None:
        return None
    text = raw.strip()
    if len(text) > 100 or not text.isprintable():
        raise _refuse(DEPLOYMENT, raw, "a short printable name, like a git commit or a version")
    return text


def base_url() -> str | None:
    """``WORKFLOWKIT_BASE_URL`` checked: an absolute http(s) URL without query or fragment."""
    raw = _raw(BASE_URL)
    if raw is None:
        return None
    try:
        parts = urlsplit(raw.strip())
        valid = parts.scheme in {"http", "https"} and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid or parts.query or parts.fragment:
        raise _refuse(
            BASE_URL,
            raw,
            "the public address of the app serving the webhooks, like "
            "https://app.example.com or http://127.0.0.1:8000/prefix",
        )
    return raw


def encryption_keys() -> EncryptionKeys | None:
    """``WORKFLOWKIT_ENCRYPTION_KEYS`` parsed (None when unset: payloads stored as they are).

    Nothing is imported unless it is set: ``workflowkit.encryption`` needs the ``crypto``
    extra. A bad value is an ``EncryptionKeyError`` (a ``ConfigurationError``) that never
    shows key material.
    """
    if _raw(ENCRYPTION_KEYS) is None:
        return None
    from .encryption import EncryptionKeys

    return EncryptionKeys.from_env()


_RETRY_OPTIONS = ("attempts", "initial", "backoff", "max_interval", "jitter")
_RETRY_FORM = (
    "comma-separated options of workflowkit.Retry, like "
    "'attempts=6, initial=1s, backoff=2, max_interval=5m, jitter=0.5' (non_retryable can only "
    "be given in code)"
)


def default_retry() -> Retry | None:
    """``WORKFLOWKIT_RETRY``: the retry policy of steps that name none, for workers that
    are not configured in code (``workflowkit worker``); None when unset."""
    raw = _raw(RETRY)
    if raw is None:
        return None
    options: dict[str, Any] = {}
    for part in raw.split(","):
        name, sep, value = (text.strip() for text in part.partition("="))
        if not sep or name not in _RETRY_OPTIONS or not value or name in options:
            raise _refuse(RETRY, raw, _RETRY_FORM)
        options[name] = _retry_option(name, value, raw)
    try:
        return Retry(**options)
    except StepOptionsError as exc:
        raise ConfigurationError(f"{RETRY}={raw!r} is not valid: {exc}") from None


def _retry_option(name: str, value: str, raw: str) -> Any:
    try:
        if name == "attempts":
            return int(value)
        if name == "backoff":
            return float(value)
        if name == "jitter":
            lowered = value.lower()
            return lowered in _TRUE if lowered in _TRUE | _FALSE else float(value)
    except ValueError:
        raise _refuse(RETRY, raw, _RETRY_FORM) from None
    return value  # a duration: Retry parses and checks it


def world_url() -> str | None:
    """``WORKFLOWKIT_WORLD`` (None when unset: the default SQLite file)."""
    return os.environ.get(WORLD) or None


def check_settings() -> None:
    """Read every setting but the World URL; ``ConfigurationError`` for the first bad one."""
    max_webhook_body()
    webhook_response_timeout()
    embedded_worker()
    run_cache()
    lease_seconds()
    step_slots()
    max_runs()
    retention()
    deployment()
    base_url()
    encryption_keys()
    default_retry()
    integer(SERDE_MAX_SIZE, 1, minimum=1)
    integer(SERDE_MAX_DEPTH, 1, minimum=1)


def check() -> None:
    """``check_settings()``, and the form of ``WORKFLOWKIT_WORLD`` (nothing is opened)."""
    from .worlds import check_url  # the worlds package imports this module

    check_settings()
    check_url(world_url(), WORLD)


# -- showing URLs -----------------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def redact_url(url: str) -> str:
    """``url`` as messages and logs show it: passwords replaced by ``***``.

    Made to leak nothing rather than to be pretty: everything between the first ``:`` after
    the user name and the last ``@`` is hidden, even when the URL is malformed (a missing
    slash, a ``/`` or ``?`` inside the password), and so are ``password=`` parameters.
    """
    match = _SCHEME.match(url)
    if match is None:
        return url  # a plain path
    start = match.end()
    while url.startswith("/", start):
        start += 1
    head, rest = url[:start], url[start:]
    at = rest.rfind("@")
    if at >= 0:
        colon = rest.find(":", 0, at)
        if colon >= 0:
            rest = f"{rest[:colon]}:***{rest[at:]}"
    before, mark, query = rest.partition("?")
    if mark:
        query, hash_mark, fragment = query.partition("#")
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_PARAMETERS for key, _ in pairs):
            shown = [(k, "***" if k.lower() in _SECRET_PARAMETERS else v) for k, v in pairs]
            query = urlencode(shown, safe="*")
        rest = f"{before}?{query}{hash_mark}{fragment}"
    return head + rest
