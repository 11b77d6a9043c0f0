"""Entry point of the ``workflowkit`` command: parses arguments, dispatches to a command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from . import (
    completion,
    control,
    db,
    gc,
    health,
    inspect,
    reencrypt,
    replay,
    schedules,
    web,
    worker,
)
from .common import EXIT_INTERRUPTED, CliError, describe
from .legacy import modernise


class _Parser(argparse.ArgumentParser):
    """A usage error in one line on stderr, as every other error (not the usage block):
    ``workflowkit inspect runs: argument --limit: ... (see workflowkit inspect runs --help)``.
    Its commands' parsers are of this class too (``add_subparsers`` makes them so)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workflowkit", description="Durable workflows for Python.")
    parser.add_argument("--version", action="version", version=f"workflowkit {__version__}")
    _add_globals(parser, None)
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
    completion.add_parser(commands)
    for sub in _subparsers(parser):
        # Given before or after the command (``workflowkit inspect runs --world URL``): a
        # subcommand leaves them alone unless given there (SUPPRESS: no default of its own).
        _add_globals(sub, argparse.SUPPRESS)
    for each in (parser, *_subparsers(parser)):
        _plain_help(each)
    return parser


def _add_globals(parser: argparse.ArgumentParser, default: object) -> None:
    """The options every command takes; ``default`` None at the top, SUPPRESS below."""
    flag: object = False if default is None else default
    parser.add_argument(
        "--world",
        default=default,
        help="World URL (default: $WORKFLOWKIT_WORLD, else .workflowkit/workflowkit.db)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=flag, help="log more")
    parser.add_argument(
        "--no-color",
        action="store_true",
        default=flag,
        help="no colours in tables (also off when NO_COLOR is set or stdout is not a terminal)",
    )


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser under ``parser`` (commands, and their own commands), depth first."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found += [sub, *_subparsers(sub)]
    return found


_LITERAL = re.compile(r"``([^`]+)``")


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Help text without reST markup: the module docstrings used as descriptions mark code
    with double backticks, which a terminal shows as they are."""
    if parser.description:
        parser.description = _LITERAL.sub(r"\1", parser.description)
    for action in parser._actions:
        if isinstance(action.help, str):
            action.help = _LITERAL.sub(r"\1", action.help)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words, warnings = modernise(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    for warning in warnings:
        print(f"workflowkit: warning: {warning}", file=sys.stderr)
    quiet = logging.INFO if args.command == "worker" else logging.WARNING
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else quiet,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose and args.command != "worker":
        # A command that cannot reach PostgreSQL says so in its one-line error; the pool's
        # warnings about each attempt would only come first.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        result: int = args.handler(args)
    except CliError as exc:
        print(f"workflowkit {args.command}: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
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
