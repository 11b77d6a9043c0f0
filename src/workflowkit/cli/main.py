"""Entry point of the ``workflowkit`` command: parses arguments, dispatches to a command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from . import control, db, gc, health, inspect, reencrypt, replay, schedules, web, worker
from .common import CliError, describe


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
    parser.add_argument(
        "--no-color",
        action="store_true",
        help="no colours in tables (also off when NO_COLOR is set or stdout is not a terminal)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    worker.add_parser(commands)
    inspect.add_parser(commands)
    control.add_parser(commands)
    schedules.add_parser(commands)
    health.add_parser(commands)
    db.add_parser(commands)
    gc.add_parser(commands)
    reencrypt.add_parser(commands)
    replay.add_parser(commands)
    web.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = logging.INFO if args.command == "worker" else logging.WARNING
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else quiet,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result: int = args.handler(args)
    except CliError as exc:
        print(f"workflowkit {args.command}: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, like other command-line tools.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter exit quiet
        return 0
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"workflowkit {args.command}: error: {describe(exc)} (run with -v for details)",
            file=sys.stderr,
        )
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
