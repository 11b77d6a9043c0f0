"""Entity ids: a four-letter prefix, an underscore and a ULID (time-sortable, 80 random bits)."""

from __future__ import annotations

import os
import time
from typing import Literal

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of base32 digits (10 bits), so a ULID takes 13 lookups rather than 26 steps.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_SHIFTS = range(120, -10, -10)

Prefix = Literal["wrun", "step", "hook", "wait", "evnt", "strm", "wrkr", "wrsp"]


def _value(now_ms: int | None) -> int:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return (ms & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")


def _text(value: int) -> str:
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 bits from the OS CSPRNG."""
    return _text(_value(now_ms))


def new_id(prefix: Prefix) -> str:
    return f"{prefix}_{ulid()}"


def new_ids(prefix: Prefix, count: int) -> list[str]:
    """``count`` ids in ascending order: one random draw, then consecutive values (the way a
    monotonic ULID generator numbers ids made within one millisecond)."""
    first = _value(None)
    low = first & 1023
    if low + count > 1024:  # the consecutive values would carry past the last two digits
        return [f"{prefix}_{_text(first + i)}" for i in range(count)]
    head = f"{prefix}_{_text(first)[:-2]}"
    return [head + _PAIRS[low + i] for i in range(count)]
