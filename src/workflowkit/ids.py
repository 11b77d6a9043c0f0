"""Entity ids: a four-letter prefix, an underscore and a ULID (time-sortable, 80 random bits).

Ids made by one process are strictly increasing, like a monotonic ULID generator's: within
one millisecond each id is the previous one plus one, so run ids sort in creation order.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from typing import Literal

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of base32 digits (10 bits), so a ULID takes 13 lookups rather than 26 steps.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_SHIFTS = range(120, -10, -10)
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1

Prefix = Literal["wrun", "step", "hook", "wait", "evnt", "strm", "wrkr", "wrsp"]


class _Source:
    """Ids' random bits, from the OS CSPRNG read in blocks, and the last id handed out.

    Reading ``os.urandom`` once per id is a system call per step, and one that releases the
    GIL: under load another thread takes it and the worker waits its turn to get it back.
    """

    _BLOCK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        # Also after fork: a child must neither reuse the parent's bytes nor follow its ids.
        self._pool = b""
        self._offset = 0
        self._last = 0

    def take(self, now_ms: int, count: int) -> int:
        """The first of ``count`` consecutive values, all above any value handed out before."""
        with self._lock:
            first = (now_ms & 0xFFFF_FFFF_FFFF) << _RANDOM_BITS | self._draw()
            if first <= self._last and (self._last & _RANDOM_MAX) + count <= _RANDOM_MAX:
                first = self._last + 1  # same millisecond (or a clock step back): count on
            self._last = first + count - 1
            return first

    def random(self) -> int:
        """80 random bits, outside the increasing sequence."""
        with self._lock:
            return self._draw()

    def _draw(self) -> int:
        if self._offset + 10 > len(self._pool):
            self._pool, self._offset = os.urandom(self._BLOCK), 0
        start, self._offset = self._offset, self._offset + 10
        return int.from_bytes(self._pool[start : start + 10], "big")


_SOURCE = _Source()
os.register_at_fork(after_in_child=_SOURCE.reset)


def _text(value: int) -> str:
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


def _now_ms() -> int:
    return int(time.time() * 1000)


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 bits from the OS CSPRNG.

    With ``now_ms`` (a fixed time, for range bounds and tests) the value is random and not
    part of the process's increasing sequence.
    """
    if now_ms is not None:
        return _text((now_ms & 0xFFFF_FFFF_FFFF) << _RANDOM_BITS | _SOURCE.random())
    return _text(_SOURCE.take(_now_ms(), 1))


def new_id(prefix: Prefix) -> str:
    return f"{prefix}_{_text(_SOURCE.take(_now_ms(), 1))}"


def new_ids(prefix: Prefix, count: int) -> list[str]:
    """``count`` ids in ascending order, from one draw."""
    first = _SOURCE.take(_now_ms(), count)
    low = first & 1023
    if low + count > 1024:  # the consecutive values would carry past the last two digits
        return [f"{prefix}_{_text(first + i)}" for i in range(count)]
    head = f"{prefix}_{_text(first)[:-2]}"
    return [head + _PAIRS[low + i] for i in range(count)]


def new_token() -> str:
    """A hook's default token: 192 random bits, URL-safe, and never starting with ``-``
    (``workflowkit resume-hook TOKEN`` would read it as an option)."""
    while True:
        token = secrets.token_urlsafe(24)
        if not token.startswith("-"):
            return token
