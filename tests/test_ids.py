from __future__ import annotations

import re
import time

from workflowkit.ids import new_id, ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def decode_time(value: str) -> int:
    number = 0
    for char in value[:10]:
        number = number * 32 + CROCKFORD.index(char)
    return number


def test_ulid_shape_and_time() -> None:
    now = int(time.time() * 1000)
    value = ulid(now)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", value)
    assert decode_time(value) == now


def test_ulids_sort_by_time_and_are_unique() -> None:
    earlier, later = ulid(1_000_000), ulid(2_000_000)
    assert earlier < later
    assert len({ulid() for _ in range(10_000)}) == 10_000


def test_prefixed_ids() -> None:
    assert new_id("wrun").startswith("wrun_") and len(new_id("wrun")) == 31
