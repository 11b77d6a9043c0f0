"""The scale-out World on PostgreSQL: ``PostgresWorld`` (``WORKFLOWKIT_WORLD=postgresql://...``).

Needs the ``postgres`` extra (psycopg 3 and its pool) or ``postgres-binary``.
"""

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the PostgreSQL World needs psycopg 3 and libpq: pip install 'workflowkit[postgres]' "
        f"(libpq from your system) or 'workflowkit[postgres-binary]' (libpq bundled); {exc}"
    ) from exc

from ._schema import DEFAULT_SCHEMA, parse_url
from ._world import PostgresWorld

__all__ = ["DEFAULT_SCHEMA", "PostgresWorld", "parse_url"]
