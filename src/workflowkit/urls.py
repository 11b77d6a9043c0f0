"""The public URLs workflowkit hands out, built from ``WORKFLOWKIT_BASE_URL``."""

from __future__ import annotations

import os

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
WEBHOOK_PATH = "/.well-known/workflow/v1/webhook/"


def base_url() -> str:
    """Where the app serving ``workflowkit.asgi.app`` (or ``.wsgi.app``) is reachable."""
    return os.environ.get("WORKFLOWKIT_BASE_URL", DEFAULT_BASE_URL).rstrip("/")


def webhook_url(token: str) -> str:
    return f"{base_url()}{WEBHOOK_PATH}{token}"
