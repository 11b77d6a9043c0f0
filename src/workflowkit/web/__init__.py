"""The web dashboard: ``create_app()`` is an ASGI app; ``workflowkit web`` serves it.

Mount it in FastAPI or Starlette: ``app.mount("/workflows", create_app())``.
"""

from __future__ import annotations

from .app import Dashboard, create_app

__all__ = ["Dashboard", "create_app"]
