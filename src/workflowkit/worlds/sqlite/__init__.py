"""The embedded World on one SQLite file: ``SQLiteWorld`` (``WORKFLOWKIT_WORLD=sqlite:///path``)."""

from ._world import DEFAULT_PATH, SQLiteWorld, path_from_url

__all__ = ["DEFAULT_PATH", "SQLiteWorld", "path_from_url"]
