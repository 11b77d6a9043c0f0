"""Entity ids: a four-letter prefix, an underscore and a ULID (time-sortable, 80 random bits)."""

from __future__ import annotations

import base64
import os
import time
from typing import Literal

# ULIDs use Crockford's base32; translating the output of the C-coded RFC 4648 encoder is
# much faster than encoding digit by digit in Python.
_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

Prefix = Literal["wrun", "step", "hook", "wait", "evnt", "strm", "wrkr"]


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 bits from the OS CSPRNG."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    # 20 bytes = 160 bits = 32 base32 digits; the 128-bit ULID is the last 26 of them.
    raw = b"\0\0\0\0" + (ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + os.urandom(10)
    return base64.b32encode(raw)[6:].translate(_TO_CROCKFORD).decode()


def new_id(prefix: Prefix) -> str:
    return f"{prefix}_{ulid()}"
