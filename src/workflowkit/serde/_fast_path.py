"""The encoder's fast path: whether a value is a small JSON tree, written as it is."""

from __future__ import annotations

from typing import Any

from .tags import BIG_INT, TAG


def small_plain(value: object, depth: int, seen: list[int]) -> bool:
    """Whether ``value`` is a small tree of JSON values that ``run`` would write plain.

    Small means at most 3 levels and 16 items per container, so the check costs less than
    the encoder it skips; anything else (and any doubt) takes the general path.
    """
    t = type(value)
    if t is list:
        items: Any = value
    elif t is dict:
        items = value
        if TAG in items:
            return False
        for key in items:
            if type(key) is not str:
                return False
        items = items.values()
    else:
        return (
            t is str
            or t is bool
            or value is None
            or (
                (t is int or t is float) and -BIG_INT < value < BIG_INT  # type: ignore[operator]
            )
        )
    if depth >= 3 or len(value) > 16 or id(value) in seen:  # type: ignore[arg-type]
        return False  # big, or shared: shared containers need references
    seen.append(id(value))
    for item in items:
        k = type(item)
        if k is str or k is bool or item is None:
            continue
        if (k is int or k is float) and -BIG_INT < item < BIG_INT:
            continue
        if not small_plain(item, depth + 1, seen):
            return False
    return True
