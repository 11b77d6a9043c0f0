"""Building HTML safely: every value is escaped unless it is already ``Markup``."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any


class Markup(str):
    """Text that is already HTML (built by these helpers); never wrap outside input in it."""

    __slots__ = ()


def esc(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def h(template: str, *values: object) -> Markup:
    """``template`` (trusted markup with ``{}`` fields) with each value escaped."""
    return Markup(template.format(*(esc(v) for v in values)))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    return Markup(sep.join(esc(p) for p in parts))


def attrs(**values: object) -> Markup:
    """`` name="value"`` pairs (``data_x`` becomes ``data-x``); None and False are left out."""
    out = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        key = name.rstrip("_").replace("_", "-")
        out.append(f" {key}" if value is True else f' {key}="{esc(value)}"')
    return Markup("".join(out))


def pretty(value: Any) -> str:
    """A decoded payload as indented JSON text (for a ``<pre>``, escaped by the caller)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
