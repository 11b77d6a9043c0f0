"""A JSON-compatible rendering of a stored payload, for the CLI and the dashboard.

It reads the tagged tree without rebuilding anything: no class is looked up or constructed,
so it works for payloads whose classes are not importable where they are shown.

Renderings: JSON values as themselves; tuples as lists; datetimes, dates and times as ISO
strings; Decimal, UUID, paths, time zones and timedeltas as strings; NaN and infinities as
``"NaN"``/``"Infinity"``/``"-Infinity"``; bytes as ``{"$bytes": size, "preview": "b'...'"}``;
sets as ``{"$type": "set", "items": [...]}``; dicts with non-str keys as
``{"$type": "dict", "items": [[key, value], ...]}``; objects (dataclasses, NamedTuples,
pydantic models) as their fields plus ``"$type": class id``; enums as
``{"$type": class id, "name": ...}``; exceptions as ``{"$type": class id, "$error": message,
"args", "attrs", "traceback", "cause"}``. A shared object carries ``"$id"`` where it is first
shown and later references show as ``{"$ref": id}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from workflowkit import _envelope
from workflowkit.errors import SerializationError

from . import tags
from .classes import REGISTRY
from .decode import read_frame, too_deep
from .tags import TAG, Json, get_dict, get_int, get_list, get_str, malformed

_PREVIEW: Final = 32
_LONG: Final = 80
_FLOATS: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


class Display:
    def __init__(self, blob: memoryview, max_depth: int) -> None:
        self.blob = blob
        self.max_depth = max_depth

    def show(self, node: Json, depth: int) -> Json:
        t = type(node)
        if t is not dict and t is not list:
            return node
        if depth > self.max_depth:
            raise too_deep(self.max_depth)
        child = depth + 1
        if t is list:
            return [self.show(item, child) for item in node]
        if TAG not in node:
            return {key: self.show(item, child) for key, item in node.items()}
        tag = node[TAG]
        handler = _HANDLERS.get(tag) if type(tag) is str else None
        try:
            shown = (handler or Display.extension)(self, node, depth)
        except SerializationError:
            raise
        except Exception as exc:
            raise malformed(str(tag), f"{type(exc).__name__}: {exc}") from None
        if "id" in node and tag != tags.REF:
            ref = get_int(node, "id", str(tag))
            shown = {"$id": ref, **shown} if type(shown) is dict else {"$id": ref, "items": shown}
        return shown

    def items(self, node: dict[str, Json], depth: int, key: str = "v") -> list[Json]:
        child = depth + 1
        return [self.show(item, child) for item in get_list(node, key, node[TAG])]

    def fields(self, node: dict[str, Json], depth: int, key: str = "v") -> dict[str, Json]:
        child = depth + 1
        return {
            name: self.show(item, child) for name, item in get_dict(node, key, node[TAG]).items()
        }

    def ref(self, node: dict[str, Json], depth: int) -> Json:
        return {"$ref": get_int(node, "id", tags.REF)}

    def sequence(self, node: dict[str, Json], depth: int) -> Json:
        return self.items(node, depth)

    def mapping(self, node: dict[str, Json], depth: int) -> Json:
        return self.fields(node, depth)

    def map_(self, node: dict[str, Json], depth: int) -> Json:
        flat = self.items(node, depth)
        pairs = [[flat[i], flat[i + 1]] for i in range(0, len(flat) - 1, 2)]
        if all(type(key) is str for key, _ in pairs):
            return {key: value for key, value in pairs}
        return {"$type": "dict", "items": pairs}

    def set_(self, node: dict[str, Json], depth: int) -> Json:
        return {"$type": node[TAG], "items": self.items(node, depth)}

    def bytes_(self, node: dict[str, Json], depth: int) -> Json:
        tag = node[TAG]
        offset, size = get_int(node, "o", tag), get_int(node, "n", tag)
        if offset < 0 or size < 0 or offset + size > len(self.blob):
            raise SerializationError("malformed payload: truncated binary segment")
        preview = repr(bytes(self.blob[offset : offset + min(size, _PREVIEW)]))
        if size > _PREVIEW:
            preview += "…"
        shown: dict[str, Json] = {"$bytes": size, "preview": preview}
        if tag == tags.BYTEARRAY:
            shown["$type"] = "bytearray"
        return shown

    def int_(self, node: dict[str, Json], depth: int) -> Json:
        text = get_str(node, "v", tags.INT)
        return {"$type": "int", "hex": text if len(text) <= _LONG else text[:_LONG] + "…"}

    def float_(self, node: dict[str, Json], depth: int) -> Json:
        return _FLOATS.get(get_str(node, "v", tags.FLOAT), "NaN")

    def leaf(self, node: dict[str, Json], depth: int) -> Json:
        return tags.LEAVES_BY_TAG[node[TAG]].display(node)

    def datetime_(self, node: dict[str, Json], depth: int) -> Json:
        return tags.datetime_display(node)

    def pattern(self, node: dict[str, Json], depth: int) -> Json:
        return {
            "$type": "re.Pattern",
            "pattern": self.show(node.get("v"), depth + 1),
            "flags": get_int(node, "flags", tags.PATTERN),
        }

    def enum(self, node: dict[str, Json], depth: int) -> Json:
        shown: dict[str, Json] = {"$type": get_str(node, "t", tags.ENUM)}
        if "name" in node:
            shown["name"] = get_str(node, "name", tags.ENUM)
        else:
            shown["value"] = get_int(node, "v", tags.ENUM)
        return shown

    def object_(self, node: dict[str, Json], depth: int) -> Json:
        shown: dict[str, Json] = {"$type": get_str(node, "t", node[TAG])}
        shown.update(self.fields(node, depth))
        if "extra" in node:
            extra = self.show(node["extra"], depth + 1)
            if type(extra) is dict:
                shown.update(extra)
        if "private" in node:
            shown["$private"] = self.fields(node, depth, "private")
        return shown

    def custom(self, node: dict[str, Json], depth: int) -> Json:
        return {
            "$type": get_str(node, "t", tags.CUSTOM),
            "state": self.show(node.get("v"), depth + 1),
        }

    def exception(self, node: dict[str, Json], depth: int) -> Json:
        shown: dict[str, Json] = {
            "$type": get_str(node, "t", tags.EXCEPTION),
            "$error": get_str(node, "msg", tags.EXCEPTION),
            "args": self.items(node, depth, "args"),
        }
        if "attrs" in node:
            shown["attrs"] = self.fields(node, depth, "attrs")
        if "tb" in node:
            shown["traceback"] = get_str(node, "tb", tags.EXCEPTION)
        if "cause" in node:
            shown["cause"] = self.show(node["cause"], depth + 1)
        return shown

    def extension(self, node: dict[str, Json], depth: int) -> Json:
        tag = str(node[TAG])
        state = self.show(node.get("v"), depth + 1)
        entry = REGISTRY.tag_entry(tag)
        if entry is not None and entry.display is not None:
            return entry.display(state)
        return {"$type": tag, "state": state}


_HANDLERS: Final[dict[str, Callable[[Display, dict[str, Json], int], Json]]] = {
    tags.REF: Display.ref,
    tags.LIST: Display.sequence,
    tags.TUPLE: Display.sequence,
    tags.DICT: Display.mapping,
    tags.MAP: Display.map_,
    tags.SET: Display.set_,
    tags.FROZENSET: Display.set_,
    tags.BYTES: Display.bytes_,
    tags.BYTEARRAY: Display.bytes_,
    tags.INT: Display.int_,
    tags.FLOAT: Display.float_,
    tags.DATETIME: Display.datetime_,
    tags.TIME: Display.datetime_,
    tags.PATTERN: Display.pattern,
    tags.ENUM: Display.enum,
    tags.DATACLASS: Display.object_,
    tags.NAMEDTUPLE: Display.object_,
    tags.PYDANTIC: Display.object_,
    tags.CUSTOM: Display.custom,
    tags.EXCEPTION: Display.exception,
    **{tag: Display.leaf for tag in tags.LEAVES_BY_TAG},
}


def display(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int | None = None,
    max_depth: int | None = None,
) -> Any:
    """A JSON-compatible (``json.dumps``-able) rendering of an encoded payload.

    A payload encrypted at rest that could not be decrypted (no key, or altered) shows as
    ``{"$encrypted": key id}`` (with ``"$undecryptable": why`` if it failed authentication).
    """
    if bytes(data[:3]) == _envelope.MAGIC:
        return _envelope.display(bytes(data))
    frame = read_frame(data, max_size, max_depth)
    if frame.plain:
        return frame.root
    return Display(frame.blob, frame.depth_limit).show(frame.root, 1)
