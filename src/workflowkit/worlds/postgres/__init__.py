"""The scale-out World on PostgreSQL: ``PostgresWorld`` (``WORKFLOWKIT_WORLD=postgresql://...``).

Needs the ``postgres`` extra (psycopg 3 and its pool).
"""

from ._world import DEFAULT_SCHEMA, PostgresWorld, parse_url

__all__ = ["DEFAULT_SCHEMA", "PostgresWorld", "parse_url"]
