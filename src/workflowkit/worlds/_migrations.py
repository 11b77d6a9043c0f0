"""Schema migrations: versioned ``.sql`` files, applied the same way by every World.

Each World package has a ``migrations/`` folder of ``NNNN_name.sql`` files. A database
records in its ``migrations`` table which versions it has; opening it applies the missing
ones, in order, in one transaction that also holds the World's migration lock, so processes
starting together apply each exactly once. Never edit a released file: add the next one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

from ..errors import CorruptDataError

log = logging.getLogger("workflowkit.worlds")
_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

# Both Worlds keep the versions applied in a ``migrations`` table of this shape.
RECORD = "INSERT INTO migrations (version, name) VALUES (?, ?)"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load(package: str) -> tuple[Migration, ...]:
    """The migrations of a World package, in order (versions 1, 2, 3, ... with no gap)."""
    found = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        match = _FILE.fullmatch(entry.name)
        if match is not None:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{package}: migration files must be numbered 1, 2, 3, ...")
    return tuple(found)


def to_apply(migrations: tuple[Migration, ...], applied: int, where: str) -> list[Migration]:
    """Those not applied yet to a database at version ``applied`` (``where`` names it)."""
    latest = migrations[-1].version
    if applied > latest:
        raise CorruptDataError(
            f"{where} was migrated by a newer workflowkit (schema version {applied}; this "
            f"version knows {latest}): upgrade workflowkit"
        )
    return [m for m in migrations if m.version > applied]


def note(migration: Migration, where: str) -> None:
    """Log that ``migration`` is being applied (``workflowkit db migrate`` reports these)."""
    log.info("applying migration %04d_%s to %s", migration.version, migration.name, where)
