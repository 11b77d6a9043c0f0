"""Status colours for the CLI's human output: plain ANSI codes, only where they help.

Colour is used when stdout is a terminal, ``NO_COLOR`` is unset or empty (no-color.org) and
``--no-color`` was not given. ``--json`` output never goes through here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Final, TextIO

_RESET: Final = "\033[0m"
_GREEN: Final = "\033[32m"
_RED: Final = "\033[31m"
_YELLOW: Final = "\033[33m"
_GREY: Final = "\033[90m"

STATUS_COLORS: Final[Mapping[str, str]] = {
    "completed": _GREEN,
    "failed": _RED,
    "running": _YELLOW,
    "pending": _YELLOW,
    "waiting": _YELLOW,
    "cancelled": _GREY,
    "abandoned": _GREY,
}


def wanted(args: argparse.Namespace, out: TextIO) -> bool:
    """Whether to colour what goes to ``out`` for a command parsed into ``args``."""
    if getattr(args, "no_color", False) or os.environ.get("NO_COLOR", ""):
        return False
    try:
        return out.isatty()
    except (OSError, ValueError):  # a closed or detached stream
        return False


def status(text: str) -> str:
    """``text`` (a status) wrapped in its colour; unknown statuses are left plain."""
    code = STATUS_COLORS.get(text)
    return f"{code}{text}{_RESET}" if code else text
