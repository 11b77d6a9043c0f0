"""The public URLs workflowkit hands out, built from ``WORKFLOWKIT_BASE_URL``.

Unset, the base is ``http://127.0.0.1:<port>`` of the app serving webhooks in this process
once it has answered a request (it learns its port from the server then), else
``http://127.0.0.1:8000``. A worker in another process never learns it: set the variable.
"""

from __future__ import annotations

import os

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
WEBHOOK_PATH = "/.well-known/workflow/v1/webhook/"

_served_at: str | None = None


def base_url() -> str:
    """Where the app serving ``workflowkit.asgi.app`` (or ``.wsgi.app``) is reachable."""
    configured = os.environ.get("WORKFLOWKIT_BASE_URL")
    if configured:
        return configured.rstrip("/")
    return _served_at or DEFAULT_BASE_URL


def served_at(port: int, mount: str = "") -> None:
    """The webhook app of this process answered on ``port``, mounted at ``mount``."""
    global _served_at
    _served_at = f"http://127.0.0.1:{port}{mount.rstrip('/')}"


def webhook_url(token: str) -> str:
    return f"{base_url()}{WEBHOOK_PATH}{token}"
