"""What the CLI commands share: opening the World, errors, times, payloads, tables, JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO, TypeVar

from .._settings import redact_url
from ..durations import parse_duration
from ..errors import (
    HookNotFoundError,
    ScheduleError,
    WebhookTokenError,
    WorkflowRunAlreadyExistsError,
    WorkflowRunNotFoundError,
    with_docs_link,
)
from ..inspection import duration as duration
from ..inspection import one_line as one_line
from ..inspection import relative as relative
from ..inspection import span_text as span_text
from ..worlds import check_url, open_world
from ..worlds.base import World
from ..worlds.sqlite import DEFAULT_PATH, path_from_url
from .color import status as paint_status
from .color import wanted as color_wanted

T = TypeVar("T")

# Exit codes: 0 success, 1 failure (unknown run, unreachable World, ...), 2 bad usage.
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it

# What the user named that does not exist, or is the wrong kind of thing: one line, exit 1.
_NAMED_WRONG = (
    WorkflowRunNotFoundError,
    HookNotFoundError,
    WebhookTokenError,
    WorkflowRunAlreadyExistsError,
    ScheduleError,
)


class CliError(Exception):
    """A user-facing error: printed as one line on stderr, no traceback."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# -- the World -----------------------------------------------------------------------------


def world_url(args: argparse.Namespace) -> str | None:
    url: str | None = getattr(args, "world", None)
    return url


def is_sqlite(url: str | None) -> bool:
    """Whether ``url`` names a SQLite World (``ConfigurationError`` if it names none)."""
    return check_url(url) == "sqlite"


def resolved_url(url: str | None) -> str | None:
    """``url``, else ``$WORKFLOWKIT_WORLD`` (as ``open_world`` resolves it)."""
    return url or os.environ.get("WORKFLOWKIT_WORLD") or None


def open_existing(url: str | None) -> World:
    """Open the World for a read or a control command.

    A SQLite file that does not exist is not created (a typo in a path would otherwise
    silently show an empty database): that is ``workflowkit db migrate``'s job.
    """
    url = resolved_url(url)
    require_database(url)
    return open_world_or_fail(url)


def require_database(url: str | None) -> None:
    """Fail (``CliError``) if ``url`` names a SQLite file that does not exist."""
    if is_sqlite(url):
        path = path_from_url(url)
        if not path.exists():
            raise CliError(
                f"no workflowkit database at {path} (pass --world, set WORKFLOWKIT_WORLD, "
                "or create it with `workflowkit db migrate`)"
            )


def open_world_or_fail(url: str | None) -> World:
    try:
        return open_world(url)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"cannot open the World {safe_url(url)}: {describe(exc)}") from exc


def safe_url(url: str | None) -> str:
    """``url`` for messages: the password (if any) replaced by ``***``."""
    if url is None:
        return f"(default: sqlite:///{DEFAULT_PATH})"
    return redact_url(url)


def with_world(
    args: argparse.Namespace, action: Callable[[World], Awaitable[T]], *, create: bool = False
) -> T:
    """Open the World, run ``action`` on it in a fresh event loop, close it.

    An unknown run id or hook token, or a webhook's token given a hook payload, raised by
    ``workflowkit._operations``, ends the command with its message and docs link (exit 1).
    """
    url = world_url(args)
    world = open_world_or_fail(resolved_url(url)) if create else open_existing(url)

    async def go() -> T:
        try:
            return await action(world)
        except _NAMED_WRONG as exc:
            raise CliError(with_docs_link(exc)) from None
        finally:
            await world.close()

    return asyncio.run(go())


def describe(exc: BaseException) -> str:
    """One line for the terminal, with the link to the error's docs section."""
    text = with_docs_link(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- times ---------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def seconds(*, zero: bool) -> Callable[[str], float]:
    """An argparse type: a number of seconds, above zero (or zero too, with ``zero``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value >= 0 if zero else value > 0) or value == float("inf"):
            least = "0 or more" if zero else "more than 0"
            raise argparse.ArgumentTypeError(f"expected a number of seconds, {least}: {text!r}")
        return value

    return parse


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """An ISO datetime (naive means UTC) or a duration meaning that long ago (``1h``)."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if _ISO_DATE.match(text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"invalid ISO datetime {text!r}") from exc
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO datetime nor a duration like '30m' or '2 days'"
        ) from exc


# -- output --------------------------------------------------------------------------------


def print_json(data: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(data, out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    out: TextIO | None = None,
    *,
    color: bool = False,
) -> None:
    """Plain-text columns, left-aligned, two spaces apart; the last column is not padded.

    On a terminal (or with ``$COLUMNS`` set) the table fits its width: the widest column
    (not an id, not the status) is cut, ending in "…", until it fits. With ``color``, the cells of a
    ``STATUS`` column are coloured (after padding is worked out, so the escape codes do not
    upset the alignment).
    """
    out = out or sys.stdout
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    available = terminal_width(out)
    if available is not None:
        keep = [h.endswith("ID") or h == "STATUS" for h in headers]  # copied, or short
        widths = fit_widths(widths, available, keep)
    status_at = headers.index("STATUS") if color and "STATUS" in headers else -1
    for number, row in enumerate([headers, *rows]):
        row = [_cut(cell, widths[i]) for i, cell in enumerate(row)]
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        if number > 0 and status_at >= 0:
            cell = row[status_at]
            cells[status_at] = paint_status(cell) + cells[status_at][len(cell) :]
        out.write("  ".join(cells).rstrip() + "\n")


_GAP = 2  # spaces between columns
_NARROWEST = 8  # a cut column keeps at least this many characters


def terminal_width(out: TextIO) -> int | None:
    """How wide a table on ``out`` may be: ``$COLUMNS``, else the terminal's width; None
    when ``out`` is not a terminal (a pipe or a file gets whole cells)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        if not out.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns


def fit_widths(widths: Sequence[int], available: int, keep: Sequence[bool]) -> list[int]:
    """Column widths that fit ``available`` characters: the widest column not in ``keep``
    is cut first, as far as needed (down to ``_NARROWEST``), then the next widest."""
    fitted = list(widths)
    excess = sum(fitted) + _GAP * (len(fitted) - 1) - available
    for i in sorted(range(len(fitted)), key=lambda i: -fitted[i]):
        if excess <= 0:
            break
        if keep[i] or fitted[i] <= _NARROWEST:
            continue
        cut = min(excess, fitted[i] - _NARROWEST)
        fitted[i] -= cut
        excess -= cut
    return fitted


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: max(0, width - 1)] + "…"


def print_fields(
    fields: Sequence[tuple[str, str]], out: TextIO | None = None, *, color: bool = False
) -> None:
    """``name: value`` lines with the values aligned; with ``color``, ``status`` coloured."""
    out = out or sys.stdout
    width = max((len(name) for name, _ in fields), default=0) + 1
    for name, value in fields:
        shown_value = paint_status(value) if color and name == "status" else value
        out.write(f"{(name + ':').ljust(width)} {shown_value}\n")


def use_color(args: argparse.Namespace) -> bool:
    return color_wanted(args, sys.stdout)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (shapes in docs/cli.md)")


def add_run_id(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The run id, a positional argument (``--run RUN_ID`` still works: see ``legacy``)."""
    parser.add_argument(
        "run_id",
        metavar="RUN_ID",
        nargs=None if required else "?",
        help="the run's id" if required else "only this run's",
    )
