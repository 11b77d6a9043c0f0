"""Pass-by-value: the copy a step receives of its arguments."""

from __future__ import annotations

from typing import TypeVar

from .decode import decode
from .encode import encode

T = TypeVar("T")


def copy_value(value: T, *, path: str = "value") -> T:
    """A deep copy made by encoding and decoding ``value``.

    Mutating the copy never changes ``value``, and the copy holds exactly what a step in
    another process would receive (so a value that only works in-process fails here too).
    """
    copied: T = decode(encode(value, path=path))
    return copied
