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


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 bits from the OS CSPRNG."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


def new_id(prefix: Prefix) -> str:
    return f"{prefix}_{ulid()}"
