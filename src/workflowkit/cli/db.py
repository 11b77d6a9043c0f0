"""``workflowkit db migrate``: create the World's schema, or bring it up to date."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from ..worlds.base import World
from .common import (
    add_json_flag,
    open_world_or_fail,
    print_json,
    resolved_url,
    world_url,
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("db", help="manage the World's database", description=__doc__)
    sub = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    migrate = sub.add_parser(
        "migrate",
        help="create or upgrade the schema",
        description="Create the World's schema, or apply the migrations it lacks.",
    )
    add_json_flag(migrate)
    migrate.set_defaults(handler=run_migrate)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_migrate(args: argparse.Namespace) -> int:
    url = resolved_url(world_url(args))
    # Opening a World applies the migrations it lacks, and logs each: collect those records.
    collect = _Collect()
    logger = logging.getLogger("workflowkit.worlds")
    saved = logger.level, logger.propagate
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        world = open_world_or_fail(url)
    finally:
        logger.removeHandler(collect)
        logger.level, logger.propagate = saved
    applied = [
        "applied migration " + m.removeprefix("applying migration ").split(" to ")[0]
        for m in collect.messages
        if m.startswith("applying migration ")
    ]
    version = getattr(world, "schema_version", None)
    _close(world)
    if args.json:
        print_json({"world": repr(world), "schema_version": version, "applied": applied})
        return 0
    if applied:
        for line in applied:
            print(f"{world!r}: {line}")
    else:
        print(f"{world!r}: schema version {version}, up to date")
    return 0


def _close(world: World) -> None:
    asyncio.run(world.close())
