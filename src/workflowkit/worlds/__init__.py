"""Storage backends ("Worlds") and choosing one from a URL."""

from __future__ import annotations

import os

from .base import World
from .sqlite import SQLiteWorld, path_from_url


def open_world(url: str | None = None) -> World:
    """The World a URL names; ``WORKFLOWKIT_WORLD`` when no URL is given, else SQLite.

    ``sqlite:///path.db`` (or a plain path) opens the embedded SQLite World;
    ``postgresql://user@host/db?schema=name`` (or ``postgres://``) the PostgreSQL World,
    which needs the ``postgres`` extra.
    """
    url = url or os.environ.get("WORKFLOWKIT_WORLD") or None
    if url is None or url.startswith("sqlite:") or "://" not in url:
        return SQLiteWorld(path_from_url(url))
    scheme = url.split("://", 1)[0]
    if scheme in {"postgresql", "postgres"}:
        from .postgres import PostgresWorld  # psycopg is an optional dependency

        return PostgresWorld(url)
    raise ValueError(
        f"unknown world URL scheme {scheme!r} in {url!r}; use sqlite:///path/to/file.db "
        "or postgresql://user@host/database"
    )


__all__ = ["SQLiteWorld", "World", "open_world"]
