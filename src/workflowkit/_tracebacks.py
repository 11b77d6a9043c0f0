"""Tracebacks for people: the frames of workflowkit's own code left out.

One rule says which frames are machinery (``is_internal``): workflowkit's own (a file
inside this installed package, or inside any ``site-packages/workflowkit/`` or
``dist-packages``), and asyncio's and concurrent.futures' around a step. It applies twice:
to a live traceback when a step's error is stored (``without_internal``), and to stored
text, possibly written on another machine, when it is shown (``user_frames``, which
recognises frames by their ``File "..."`` line). What the user's code did, and the
exception lines, are kept as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType

_FRAME = re.compile(r'^  File "(?P<path>[^"]+)", line \d+')
_INSTALLED = re.compile(r"[/\\](?:site|dist)-packages[/\\]workflowkit[/\\]")
_STDLIB = re.compile(r"[/\\]python3\.\d+[/\\](?:asyncio|concurrent)[/\\]")
_PACKAGE = str(Path(__file__).resolve().parent)


def is_internal(path: str) -> bool:
    """Whether a traceback's file is machinery: workflowkit's, or asyncio's around it."""
    if _INSTALLED.search(path) or _STDLIB.search(path):
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


def without_internal(tb: TracebackType | None) -> TracebackType | None:
    """A live traceback without its internal frames; ``tb`` itself if nothing else remains
    (an error of workflowkit itself, which its frames explain)."""
    kept: list[TracebackType] = []
    entry = tb
    while entry is not None:
        if not is_internal(entry.tb_frame.f_code.co_filename):
            kept.append(entry)
        entry = entry.tb_next
    if not kept:
        return tb
    rebuilt: TracebackType | None = None
    for frame in reversed(kept):
        rebuilt = TracebackType(rebuilt, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return rebuilt
