"""``workflowkit inspect streams RUN_ID``: a run's streams, and the chunks of one."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from .._operations import require_run
from ..inspection import stream_json
from ..streams import Readable, chunk_json
from ..worlds.base import World
from ..worlds.records import StreamChunk, StreamInfo
from .common import (
    add_json_flag,
    add_run_id,
    one_line,
    print_json,
    print_table,
    relative,
    with_world,
)


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "streams",
        help="list a run's streams, or print one's chunks (--namespace, --default)",
    )
    add_run_id(cmd)
    which = cmd.add_mutually_exclusive_group()
    which.add_argument("--namespace", metavar="NAME", help="print the chunks of this stream")
    which.add_argument(
        "--default", action="store_true", help="print the chunks of the default stream"
    )
    cmd.add_argument(
        "--start", type=int, default=0, metavar="INDEX", help="first chunk (negative: from end)"
    )
    cmd.add_argument(
        "--follow", action="store_true", help="keep printing new chunks until the stream ends"
    )
    add_json_flag(cmd)
    cmd.set_defaults(handler=inspect_streams)


def inspect_streams(args: argparse.Namespace) -> int:
    if args.namespace is not None or args.default:
        return _print_chunks(args)

    async def action(world: World) -> list[StreamInfo]:
        await require_run(world, args.run_id)
        return await world.list_streams(args.run_id)

    infos = with_world(args, action)
    if args.json:
        print_json({"run_id": args.run_id, "streams": [stream_json(i) for i in infos]})
        return 0
    if not infos:
        print("no streams")
        return 0
    now = datetime.now(UTC)
    print_table(
        ["NAMESPACE", "CHUNKS", "STATE", "CREATED", "UPDATED"],
        [
            [
                i.name or "(default)",
                str(i.length),
                "closed" if i.closed else "open",
                relative(i.created_at, now),
                relative(i.updated_at, now),
            ]
            for i in infos
        ],
    )
    return 0


def _print_chunks(args: argparse.Namespace) -> int:
    namespace = None if args.default else args.namespace
    if args.follow and not args.json:
        try:
            with_world(args, lambda world: _follow(world, args.run_id, namespace, args.start))
        except KeyboardInterrupt:
            return 130
        return 0

    async def action(world: World) -> tuple[list[tuple[int, Any]], int]:
        await require_run(world, args.run_id)
        if args.follow:  # --json --follow: everything, once the stream has ended
            reader = Readable(world, args.run_id, namespace, args.start, decode=_indexed)
            return [item async for item in reader], reader.index
        return await _read_now(world, args.run_id, namespace, args.start)

    chunks, next_index = with_world(args, action)
    if args.json:
        print_json(
            {
                "run_id": args.run_id,
                "namespace": namespace,
                "chunks": [{"index": i, "value": v} for i, v in chunks],
                "next_index": next_index,
            }
        )
        return 0
    for item in chunks:
        _print_chunk(item)
    return 0


async def _read_now(
    world: World, run_id: str, namespace: str | None, start: int
) -> tuple[list[tuple[int, Any]], int]:
    """The chunks stored so far."""
    name, index = namespace or "", start
    chunks: list[tuple[int, Any]] = []
    while True:
        page = await world.read_stream(run_id, name, index)
        chunks.extend(_indexed(c) for c in page.chunks)
        if page.next_index == index or page.done:
            return chunks, page.next_index
        index = page.next_index


async def _follow(world: World, run_id: str, namespace: str | None, start: int) -> None:
    await require_run(world, run_id)
    async for item in Readable(world, run_id, namespace, start, decode=_indexed):
        _print_chunk(item)


def _indexed(chunk: StreamChunk) -> tuple[int, Any]:
    return chunk.index, chunk_json(chunk)


def _print_chunk(item: tuple[int, Any]) -> None:
    index, value = item
    text = value if isinstance(value, str) else one_line(value, 200)
    print(f"{index:>6}  {text}", flush=True)
