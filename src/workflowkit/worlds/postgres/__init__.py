"""The scale-out World on PostgreSQL: ``PostgresWorld`` (``WORKFLOWKIT_WORLD=postgresql://...``).

Needs the ``postgres`` extra (psycopg 3 and its pool).
"""

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the PostgreSQL World needs psycopg 3: pip install 'workflowkit[postgres]'"
    ) from exc

from ._schema import DEFAULT_SCHEMA, parse_url
from ._world import PostgresWorld

__all__ = ["DEFAULT_SCHEMA", "PostgresWorld", "parse_url"]
