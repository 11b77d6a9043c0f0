"""Entity ids: a four-letter prefix, an underscore and a ULID (time-sortable, 80 random bits)."""

from __future__ import annotations

import os
import time
from typing import Literal

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

Prefix = Literal["wrun", "step", "hook", "wait", "evnt", "strm", "wrkr"]


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 bits from the OS CSPRNG."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: Prefix) -> str:
    return f"{prefix}_{ulid()}"
