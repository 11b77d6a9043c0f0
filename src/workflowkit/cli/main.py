"""Entry point of the ``workflowkit`` command: parses arguments, dispatches to a command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from . import worker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflowkit", description="Durable workflows for Python."
    )
    parser.add_argument("--version", action="version", version=f"workflowkit {__version__}")
    parser.add_argument(
        "--world",
        help="World URL (default: $WORKFLOWKIT_WORLD, else .workflowkit/workflowkit.db)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)
    worker.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
