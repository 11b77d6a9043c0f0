from __future__ import annotations

import os
import re
import time

from workflowkit.ids import new_id, new_ids, ulid

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


def test_ids_of_one_process_increase_even_within_a_millisecond() -> None:
    made = [new_id("wrun") for _ in range(2000)]  # far more than one per millisecond
    assert made == sorted(made) and len(set(made)) == len(made)
    batch = new_ids("evnt", 5)
    assert batch == sorted(batch) and len(set(batch)) == 5
    assert new_id("evnt") > batch[-1]


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    new_id("wrun")  # the parent has random bytes buffered
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write, "".join(new_id("wrun") for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    parent = "".join(new_id("wrun") for _ in range(3))
    assert {child[i : i + 31][-16:] for i in range(0, 93, 31)}.isdisjoint(
        {parent[i : i + 31][-16:] for i in range(0, 93, 31)}
    )
