"""Encoding: a checking pass over the value, then (unless the value is plain JSON) a pass
that builds the tagged JSON tree.

The first pass (``scan``) refuses unsupported values with the path where they sit, enforces
the depth limit, counts how often each container or object is reached (to give ids only to
those reached more than once), caches what user code returns (custom ``encode`` functions,
exception reductions) so it runs once, and notes whether the value is *plain*: JSON-shaped,
acyclic and unshared, in which case it is written by the C JSON encoder as is.

The second pass (``emit``) builds the tagged tree. Containers that can be created empty
and filled later (list, dict, set) get their id before their contents, so cycles through
them decode naturally. Everything else is built from its contents (tuples, dataclasses,
...): a cycle that reaches such an object again while it is still being written writes it
once more at the inner position, and the decoder keeps whichever copy it finishes first
under that id (the same trick as pickle's), so the graph still decodes to the same shape.
For that to end, the lists, dicts and sets on such a cycle get ids even when reached once
(``_mark_cycles``); a cycle of dataclasses or exceptions alone is written create-first.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any

from workflowkit.errors import SerializationError

from . import tags
from ._class_info import ClassInfo, field_values
from ._fast_path import small_plain
from ._refusals import Refusal
from ._scan import Scanner
from .exceptions import ExceptionState
from .format import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    HEAD_END,
    PLAIN_PREFIX,
    TAGGED_PREFIX,
    check_size,
    dump_head,
)
from .tags import BIG_INT, LEAVES, TAG, Json


class Encoder(Scanner):
    """One encoding run; see the module docstring for the two passes."""

    # -- entry point ----------------------------------------------------------------------

    def run(self, value: object) -> bytes:
        self.scan(value, 1)
        if self.plain:
            return PLAIN_PREFIX + dump_head(value)
        if self.built_cycle:
            self._mark_cycles(value)
        self.shared = {oid for oid, count in self.counts.items() if count > 1}
        tree = self.emit(value, 1)
        head = dump_head(tree)
        if not self.segments:
            return TAGGED_PREFIX + head
        return b"".join((TAGGED_PREFIX, head, HEAD_END, *self.segments))

    # -- pass 2: build the tagged tree ----------------------------------------------------

    def emit(self, obj: Any, depth: int) -> Json:
        t = type(obj)
        if t is str or t is bool or obj is None:
            return obj
        if t is int or t is float:
            if -BIG_INT < obj < BIG_INT:
                return obj
            if depth > self.max_depth:
                raise self._too_deep()
            return tags.int_node(obj) if t is int else tags.float_node(obj)
        if depth > self.max_depth:
            raise self._too_deep()
        if t is list:
            return self._emit_list(obj, depth)
        if t is dict:
            return self._emit_dict(obj, depth)
        return self._emit_other(obj, t, depth)

    def _shell(self, obj: object, tag: str) -> dict[str, Json]:
        """Node of a shared container that is created before its contents."""
        oid = id(obj)
        ref = self.ref_ids.get(oid)
        if ref is not None:
            return {TAG: tags.REF, "id": ref}
        ref = self.ref_ids[oid] = len(self.ref_ids) + 1
        return {TAG: tag, "id": ref}

    def _open(self, obj: object, tag: str) -> dict[str, Json]:
        """Node of an object built from its contents (see the module docstring)."""
        oid = id(obj)
        if oid not in self.shared:
            return {TAG: tag}
        ref = self.ref_ids.get(oid)
        if ref is None:
            ref = self.ref_ids[oid] = len(self.ref_ids) + 1
        elif oid in self.done:
            return {TAG: tags.REF, "id": ref}
        return {TAG: tag, "id": ref}

    def _close(self, obj: object) -> None:
        oid = id(obj)
        if oid in self.shared:
            self.done.add(oid)

    def _emit_list(self, items: list[Any], depth: int) -> Json:
        child = depth + 1
        emit = self.emit
        if id(items) in self.shared:
            node = self._shell(items, tags.LIST)
            if node[TAG] == tags.REF:
                return node
            out: list[Json] = []
            node["v"] = out
            for item in items:
                out.append(emit(item, child))
            return node
        out = []
        for item in items:
            t = type(item)
            if (
                t is str
                or t is bool
                or item is None
                or ((t is int or t is float) and -BIG_INT < item < BIG_INT)
            ):
                out.append(item)
            else:
                out.append(emit(item, child))
        return out

    def _emit_dict(self, mapping: dict[Any, Any], depth: int) -> Json:
        child = depth + 1
        emit = self.emit
        shared = id(mapping) in self.shared
        if id(mapping) not in self.maps:
            out: dict[str, Json] = {}
            node: dict[str, Json] = out
            if shared:
                node = self._shell(mapping, tags.DICT)
                if node[TAG] == tags.REF:
                    return node
                node["v"] = out
            for key, value in mapping.items():
                t = type(value)
                if (
                    t is str
                    or t is bool
                    or value is None
                    or ((t is int or t is float) and -BIG_INT < value < BIG_INT)
                ):
                    out[key] = value
                else:
                    out[key] = emit(value, child)
            return node
        node = self._shell(mapping, tags.MAP) if shared else {TAG: tags.MAP}
        if node[TAG] == tags.REF:
            return node
        flat: list[Json] = []
        node["v"] = flat
        for key, value in mapping.items():
            flat.append(emit(key, child))
            flat.append(emit(value, child))
        return node

    def _emit_other(self, obj: Any, t: type, depth: int) -> Json:
        leaf = LEAVES.get(t)
        if leaf is not None:
            return leaf.encode(obj)
        child = depth + 1
        if t is tuple or t is frozenset:
            node = self._open(obj, tags.TUPLE if t is tuple else tags.FROZENSET)
            if node[TAG] != tags.REF:
                items = obj if t is tuple else self._sorted(obj)
                node["v"] = [self.emit(item, child) for item in items]
                self._close(obj)
            return node
        if t is set:
            node = self._shell(obj, tags.SET) if id(obj) in self.shared else {TAG: tags.SET}
            if node[TAG] != tags.REF:
                node["v"] = out = []
                for item in self._sorted(obj):
                    out.append(self.emit(item, child))
            return node
        if t is bytes or t is bytearray:
            node = self._open(obj, tags.BYTES if t is bytes else tags.BYTEARRAY)
            if node[TAG] != tags.REF:
                node["o"] = self.blob_size
                node["n"] = len(obj)
                self.segments.append(obj)
                self.blob_size += len(obj)
                self._close(obj)
            return node
        if t is datetime or t is time:
            node = tags.datetime_node(obj)
            if obj.tzinfo is not None:
                node["tz"] = self.emit(obj.tzinfo, child)
            return node
        if t is re.Pattern:
            return {TAG: tags.PATTERN, "v": self.emit(obj.pattern, child), "flags": obj.flags}
        return self._emit_object(obj, self._info(t), child)

    def _emit_object(self, obj: Any, info: ClassInfo, child: int) -> Json:
        kind = info.kind
        if kind == tags.ENUM:
            return {TAG: tags.ENUM, "t": info.class_id, **self._enum_fields(obj)}
        created_first = id(obj) in self.created_first
        node = self._shell(obj, kind) if created_first else self._open(obj, kind)
        if node[TAG] == tags.REF:
            return node
        if created_first:
            node["new"] = 1
        emit = self.emit
        if kind == tags.DATACLASS or kind == tags.NAMEDTUPLE:
            node["t"] = info.class_id
            node["v"] = {name: emit(value, child) for name, value in field_values(obj, info)}
        elif kind == tags.PYDANTIC:
            values, extra, private, unset = self._reduce_pydantic(obj)
            node["t"] = info.class_id
            node["v"] = {name: emit(value, child) for name, value in values.items()}
            if extra:
                node["extra"] = emit(extra, child)
            if private:
                node["private"] = {name: emit(value, child) for name, value in private.items()}
            if unset:
                node["unset"] = list(unset)
        elif kind == tags.EXCEPTION:
            self._fill_exception(node, self._reduce_exception(obj, child - 1), child)
        elif kind == tags.CUSTOM:
            node["t"] = info.class_id
            node["v"] = emit(self._reduce_custom(obj, info), child)
        else:  # an extension tag
            node["v"] = emit(self._reduce_custom(obj, info), child)
        self._close(obj)
        return node

    def _fill_exception(self, node: dict[str, Json], state: ExceptionState, child: int) -> None:
        emit = self.emit
        node["t"] = state.class_id
        node["msg"] = state.message
        node["args"] = [emit(arg, child) for arg in state.args]
        if state.attrs:
            node["attrs"] = {name: emit(value, child) for name, value in state.attrs.items()}
        if state.traceback:
            node["tb"] = state.traceback
        if state.cause is not None:
            node["cause"] = emit(state.cause, child)

    def _sorted(self, items: set[Any] | frozenset[Any]) -> list[Any]:
        # Set iteration order depends on string hashing, which differs between processes;
        # sorting by encoded form makes the bytes (and so the digest) of equal values equal.
        if len(items) < 2:
            return list(items)
        kinds = {type(item) for item in items}
        if len(kinds) == 1 and kinds <= {str, int, bytes}:
            return sorted(items)
        return sorted(items, key=self._sort_key)

    def _sort_key(self, item: object) -> bytes:
        # Keys are memoized for the whole encode call, so sets nested in set elements are
        # not encoded over and over. An element whose key is needed while it is being
        # computed (a set on a cycle) gets an empty key: its order then follows the set.
        oid = id(item)
        key = self.sort_keys.get(oid)
        if key is None:
            if oid in self.sorting:
                return b""
            self.sorting.add(oid)
            try:
                key = Encoder(self.max_depth, self.sort_keys, self.sorting).run(item)
            finally:
                self.sorting.discard(oid)
            self.sort_keys[oid] = key
        return key


def encode(
    value: object,
    *,
    path: str = "value",
    max_size: int | None = None,
    max_depth: int | None = None,
) -> bytes:
    """Encode ``value`` to bytes, or raise ``SerializationError`` naming where ``value``
    holds something that cannot be encoded (``path`` names ``value`` itself)."""
    if max_size is None and max_depth is None and small_plain(value, 0, []):
        return PLAIN_PREFIX + dump_head(value)  # the hot path: small JSON-shaped values
    encoder = Encoder(DEFAULT_MAX_DEPTH if max_depth is None else max_depth)
    try:
        data = encoder.run(value)
    except Refusal as refusal:
        raise refusal.error(path) from None
    except RecursionError:
        raise SerializationError(
            f"cannot serialize {path}: nested too deeply for the Python stack"
        ) from None
    check_size(len(data), DEFAULT_MAX_SIZE if max_size is None else max_size)
    return data
