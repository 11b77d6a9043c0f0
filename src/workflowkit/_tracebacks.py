"""Tracebacks for people: the frames of workflowkit's own code left out.

A stored traceback is text, possibly written on another machine, so frames are recognised
by their ``File "..."`` line: a file inside this installed package, or inside any
``site-packages/workflowkit/`` (or ``dist-packages``), is workflowkit's. What the user's
code did, and the exception lines, are kept as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

_FRAME = re.compile(r'^  File "(?P<path>[^"]+)", line \d+')
_INSTALLED = re.compile(r"[/\\](?:site|dist)-packages[/\\]workflowkit[/\\]")
_PACKAGE = str(Path(__file__).resolve().parent)


def is_internal(path: str) -> bool:
    """Whether a traceback's file belongs to workflowkit itself."""
    if _INSTALLED.search(path):
        return True
    return path.startswith((_PACKAGE + "/", _PACKAGE + "\\"))


def user_frames(text: str) -> str:
    """``text`` (a formatted traceback, chained ones included) without workflowkit's frames.

    A frame is its ``File`` line and the indented lines under it (source, ``^^^`` markers).
    """
    kept: list[str] = []
    dropping = False
    for line in text.splitlines(keepends=True):
        frame = _FRAME.match(line)
        if frame is not None:
            dropping = is_internal(frame.group("path"))
        elif dropping and not line.startswith("    "):
            dropping = False  # the frame's body ended
        if not dropping:
            kept.append(line)
    return "".join(kept)
