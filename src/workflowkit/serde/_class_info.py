"""How instances of one non-builtin class are written: its kind, id, fields, or why not."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from . import tags
from ._refusals import type_label, unsupported
from .classes import (
    REGISTRY,
    SERIALIZE_METHOD,
    default_class_id,
    findable,
    has_protocol,
    natural_kind,
)


@dataclass(frozen=True, slots=True)
class ClassInfo:
    """How instances of one non-builtin class are written (computed once per call)."""

    kind: str
    class_id: str = ""
    fields: tuple[str, ...] = ()
    encode: Callable[[Any], object] | None = None
    problem: tuple[str, str] | None = None


_MISSING: Final = object()


def field_values(obj: Any, info: ClassInfo) -> list[tuple[str, object]]:
    """Field names and values of a dataclass (skipping fields never set) or NamedTuple."""
    if info.kind == tags.NAMEDTUPLE:
        return list(zip(info.fields, obj, strict=False))
    return [
        (name, value)
        for name in info.fields
        if (value := getattr(obj, name, _MISSING)) is not _MISSING
    ]


def class_info(cls: type) -> ClassInfo:
    tag_entry = REGISTRY.tag_for_class(cls)
    if tag_entry is not None:
        return ClassInfo(tag_entry.tag, tag_entry.tag, encode=tag_entry.encode)
    entry = REGISTRY.entry_for_class(cls)
    if entry is not None and entry.encode is not None:
        return ClassInfo(tags.CUSTOM, entry.class_id, encode=entry.encode)
    kind = natural_kind(cls)
    if entry is None and has_protocol(cls) and kind != tags.EXCEPTION:
        return ClassInfo(
            "",
            problem=(
                f"{type_label(cls)} defines {SERIALIZE_METHOD} but is not registered, so "
                "no decoder would trust it",
                "Decorate the class with @workflowkit.serde.serializable (or call "
                "workflowkit.serde.register_serializer(cls)) where it is defined",
            ),
        )
    if kind is None:
        return ClassInfo("", problem=unsupported(cls))
    class_id = entry.class_id if entry is not None else default_class_id(cls)
    if kind != tags.EXCEPTION and not findable(cls, class_id):
        return ClassInfo(
            "",
            problem=(
                f"{type_label(cls)} cannot be found again by its id {class_id!r} (defined "
                "inside a function, created dynamically, or replaced after definition)",
                "Define the class at module level, or register it with "
                "workflowkit.serde.register_serializer(cls, class_id=...)",
            ),
        )
    fields: tuple[str, ...] = ()
    if kind == tags.DATACLASS:
        fields = tuple(field.name for field in dataclasses.fields(cls))
    elif kind == tags.NAMEDTUPLE:
        fields = tuple(cls._fields)  # type: ignore[attr-defined]
    return ClassInfo(kind, class_id, fields)
