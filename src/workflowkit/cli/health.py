"""``workflowkit health``: can the World be opened and read? Exit 0 if so, 1 if not."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from ..worlds import open_world
from ..worlds.base import World
from .common import (
    EXIT_FAILURE,
    CliError,
    add_json_flag,
    describe,
    is_sqlite,
    open_existing,
    print_json,
    resolved_url,
    safe_url,
    seconds,
    world_url,
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "health", help="check that the World is reachable", description=__doc__
    )
    parser.add_argument(
        "--timeout",
        type=seconds(zero=False),
        default=10.0,
        metavar="SECONDS",
        help="give up after this long (default 10)",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=run)


def _open(url: str | None, timeout: float) -> World:
    if is_sqlite(url):
        return open_existing(url)
    assert url is not None
    if url.split("://", 1)[0] in {"postgresql", "postgres"}:
        from ..worlds.postgres import PostgresWorld

        return PostgresWorld(url, retry_for=timeout, min_size=1, max_size=1)
    return open_world(url)


def run(args: argparse.Namespace) -> int:
    url = resolved_url(world_url(args))
    started = time.monotonic()
    try:
        world = _open(url, args.timeout)
    except CliError as exc:
        return _report(args, url, None, exc.message)
    except Exception as exc:
        return _report(args, url, None, describe(exc))

    async def check() -> None:
        try:
            await asyncio.wait_for(world.list_runs(limit=1), args.timeout)
        finally:
            await world.close()

    try:
        asyncio.run(check())
    except TimeoutError:
        return _report(args, url, world, f"no answer within {args.timeout:g} s")
    except Exception as exc:
        return _report(args, url, world, describe(exc))
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    if args.json:
        print_json({"ok": True, "world": repr(world), "elapsed_ms": elapsed_ms})
    else:
        print(f"ok {world!r} ({elapsed_ms:g} ms)")
    return 0


def _report(args: argparse.Namespace, url: str | None, world: World | None, error: str) -> int:
    name = repr(world) if world is not None else safe_url(url)
    if args.json:
        print_json({"ok": False, "world": name, "error": error})
    else:
        print(f"workflowkit health: {name} is unreachable: {error}", file=sys.stderr)
    return EXIT_FAILURE
