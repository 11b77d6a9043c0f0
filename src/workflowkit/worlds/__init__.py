"""Storage backends ("Worlds") and choosing one from a URL."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from .._settings import WORLD, encryption_keys, redact_url
from ..errors import ConfigurationError
from .base import World

if TYPE_CHECKING:
    from ..encryption import EncryptionKeys
from .sqlite import SQLiteWorld, path_from_url

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")  # one letter is a Windows drive: a path
_POSTGRES = frozenset({"postgresql", "postgres"})


def open_world(url: str | None = None, *, encryption: EncryptionKeys | None = None) -> World:
    """The World a URL names; ``WORKFLOWKIT_WORLD`` when no URL is given, else SQLite.

    ``sqlite:///path.db`` (or a plain path) opens the embedded SQLite World;
    ``postgresql://user@host/db?schema=name`` (or ``postgres://``) the PostgreSQL World,
    which needs the ``postgres`` extra. Anything else, a malformed URL included, is a
    ``ConfigurationError`` (with the password redacted): never a file named after it.

    Payloads are encrypted at rest with ``encryption``, else the keys in
    ``WORKFLOWKIT_ENCRYPTION_KEYS`` if it is set (``docs/encryption.md``).
    """
    keys = encryption or encryption_keys()  # a bad key fails before anything is opened
    setting = None if url else WORLD
    url = url or os.environ.get(WORLD) or None
    world: World
    if url is None or check_url(url, setting) == "sqlite":
        world = SQLiteWorld(path_from_url(url))
    else:
        from .postgres import PostgresWorld  # psycopg is an optional dependency

        world = PostgresWorld(url)
    return encrypted(world, keys)


def encrypted(world: World, keys: EncryptionKeys | None = None) -> World:
    """``world`` encrypting the payloads it stores with ``keys``, else with the keys in
    ``WORKFLOWKIT_ENCRYPTION_KEYS``; ``world`` itself when there are none (or it encrypts
    already)."""
    keys = keys or encryption_keys()
    if keys is None:
        return world
    from ._encrypted import encrypted as wrap  # imports the cryptography package

    return wrap(world, keys)


def check_url(url: str | None, setting: str | None = None) -> str:
    """Which World ``url`` names, ``"sqlite"`` or ``"postgresql"``, checking its form only.

    Nothing is opened or created; ``ConfigurationError`` if the URL is not one a World takes
    (its message starts with ``setting``, the variable the URL came from, if given).
    """
    try:
        return _kind(url)
    except ConfigurationError as exc:
        if setting is None:
            raise
        raise ConfigurationError(f"{setting}: {exc}") from None


def _kind(url: str | None) -> str:
    match = _SCHEME.match(url) if url else None
    if url is None or match is None:
        return "sqlite"  # the default file, or a plain path
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        path_from_url(url)
        return "sqlite"
    if scheme in _POSTGRES:
        # Without the extra this is an ImportError that names it: not a wrong setting.
        from .postgres._schema import parse_url

        parse_url(url)
        return "postgresql"
    raise ConfigurationError(
        f"unknown world URL scheme {scheme!r} in {redact_url(url)!r}: "
        "use sqlite:///path/to/file.db or postgresql://user@host/database"
    )


__all__ = ["SQLiteWorld", "World", "check_url", "encrypted", "open_world"]
