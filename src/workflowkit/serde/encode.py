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
from collections.abc import Iterable
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from workflowkit.errors import SerializationError

from . import tags
from ._class_info import ClassInfo, class_info, field_values
from ._cycles import cyclic_components, has_cycle
from ._fast_path import small_plain
from ._refusals import DEPTH_HINT, REGISTER_HINT, Refusal, index_of, short_repr, type_label
from .exceptions import ExceptionState, reduce_exception
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


class Encoder:
    """One encoding run; see the module docstring for the two passes."""

    def __init__(
        self,
        max_depth: int,
        sort_keys: dict[int, bytes] | None = None,
        sorting: set[int] | None = None,
        outer: frozenset[int] = frozenset(),
    ) -> None:
        self.max_depth = max_depth
        self.outer = outer
        self.sort_keys = {} if sort_keys is None else sort_keys
        self.sorting = set() if sorting is None else sorting
        self.plain = True
        self.counts: dict[int, int] = {}
        self.reductions: dict[int, Any] = {}
        self.infos: dict[type, ClassInfo] = {}
        self.maps: set[int] = set()  # dicts written as "map" nodes: non-str or "$" keys
        self.building: set[int] = set()
        self.built_cycle = False
        self.created_first: set[int] = set()
        self.shared: set[int] = set()
        self.ref_ids: dict[int, int] = {}
        self.done: set[int] = set()
        self.segments: list[bytes | bytearray] = []
        self.blob_size = 0

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

    def _too_deep(self) -> Refusal:
        return Refusal(f"nested more than {self.max_depth} levels deep", DEPTH_HINT)

    # -- pass 1: check, count, cache ------------------------------------------------------

    def scan(self, obj: object, depth: int) -> None:
        t = type(obj)
        if t is str or t is bool or obj is None:
            return
        if t is dict:
            self._scan_dict(obj, depth)  # type: ignore[arg-type]
        elif t is list:
            self._scan_list(obj, depth)  # type: ignore[arg-type]
        elif (t is int or t is float) and -BIG_INT < obj < BIG_INT:  # type: ignore[operator]
            return
        else:
            if depth > self.max_depth:
                raise self._too_deep()
            self.plain = False  # nan, inf, huge ints and everything but JSON need tags
            if t is not int and t is not float:
                self._scan_other(obj, t, depth)

    def _first_visit(self, obj: object) -> bool:
        counts = self.counts
        oid = id(obj)
        count = counts.get(oid)
        if count is None:
            counts[oid] = 1
            return True
        counts[oid] = count + 1
        self.plain = False
        return False

    # _scan_list and _scan_dict are the hot path for JSON-shaped data: they dispatch
    # nested lists and dicts directly and skip plain scalars inline.

    def _scan_list(self, items: list[Any], depth: int) -> None:
        if depth > self.max_depth:
            raise self._too_deep()
        counts = self.counts
        oid = id(items)
        if oid in counts:
            counts[oid] += 1
            self.plain = False
            return
        counts[oid] = 1
        child = depth + 1
        item: object = None
        try:
            for item in items:
                t = type(item)
                if t is str or t is bool or item is None:
                    continue
                if t is dict:
                    self._scan_dict(item, child)  # type: ignore[arg-type]
                elif t is list:
                    self._scan_list(item, child)  # type: ignore[arg-type]
                elif not ((t is int or t is float) and -BIG_INT < item < BIG_INT):  # type: ignore[operator]
                    self.scan(item, child)
        except Refusal as refusal:
            refusal.segments.append(f"[{index_of(items, item)}]")
            raise

    def _scan_dict(self, mapping: dict[Any, Any], depth: int) -> None:
        if depth > self.max_depth:
            raise self._too_deep()
        counts = self.counts
        oid = id(mapping)
        if oid in counts:
            counts[oid] += 1
            self.plain = False
            return
        counts[oid] = 1
        child = depth + 1
        str_keys = TAG not in mapping
        key: object = None
        try:
            for key, value in mapping.items():
                if type(key) is not str:
                    str_keys = False
                    self._scan_key(key, child)
                t = type(value)
                if t is str or t is bool or value is None:
                    continue
                if t is dict:
                    self._scan_dict(value, child)
                elif t is list:
                    self._scan_list(value, child)
                elif not ((t is int or t is float) and -BIG_INT < value < BIG_INT):
                    self.scan(value, child)
        except Refusal as refusal:
            if refusal.key_done:
                refusal.key_done = False
            else:
                refusal.segments.append(f"[{short_repr(key)}]")
            raise
        if not str_keys:
            self.plain = False
            self.maps.add(oid)

    def _scan_key(self, key: object, depth: int) -> None:
        try:
            self.scan(key, depth)
        except Refusal as refusal:
            refusal.segments.append(f"<key {short_repr(key)}>")
            refusal.key_done = True
            raise

    def _scan_child(self, segment: str, value: object, depth: int) -> None:
        try:
            self.scan(value, depth)
        except Refusal as refusal:
            refusal.segments.append(segment)
            raise

    def _scan_other(self, obj: Any, t: type, depth: int) -> None:
        child = depth + 1
        if t in LEAVES:
            if t is ZoneInfo and obj.key is None:
                raise Refusal("a ZoneInfo loaded from a file has no key", REGISTER_HINT)
            return
        if t is set:
            if self._first_visit(obj):
                self._scan_items(obj, child, "<set element>")
            return
        if t is tuple or t is frozenset:
            if self._enter_built(obj):
                self._scan_items(obj, child, "" if t is tuple else "<set element>")
                self.building.discard(id(obj))
            return
        if t is bytes or t is bytearray:
            self._first_visit(obj)
            return
        if t is datetime or t is time:
            if obj.tzinfo is not None:
                self._scan_child(".tzinfo", obj.tzinfo, child)
            return
        if t is re.Pattern:
            self._scan_child(".pattern", obj.pattern, child)
            return
        info = self._info(t)
        if info.problem is not None:
            raise Refusal(*info.problem)
        if info.kind == tags.ENUM:
            self._enum_fields(obj)
            return
        if self._enter_built(obj):
            for segment, value in self._children(obj, info, depth):
                self._scan_child(segment, value, child)
            self.building.discard(id(obj))

    def _enter_built(self, obj: object) -> bool:
        """First visit of an object built from its contents; notes cycles back into it."""
        if id(obj) in self.outer:
            return False  # a trial run reached an object its caller is already checking
        if self._first_visit(obj):
            self.building.add(id(obj))
            return True
        if id(obj) in self.building:
            self.built_cycle = True
        return False

    def _scan_items(self, items: Iterable[object], depth: int, segment: str) -> None:
        item: object = None
        try:
            for item in items:
                self.scan(item, depth)
        except Refusal as refusal:
            refusal.segments.append(segment or f"[{index_of(items, item)}]")
            raise

    def _graph_children(self, obj: Any) -> list[object]:
        """What ``obj`` holds that the scan counted, in the scan's order (so a search over
        these edges goes no deeper than the scan did)."""
        t = type(obj)
        if t is list or t is tuple or t is set or t is frozenset:
            found: list[object] = list(obj)
        elif t is dict:
            found = [item for pair in obj.items() for item in pair]
        elif t in self.infos:
            found = [value for _, value in self._children(obj, self.infos[t], 0)]
        else:
            return []
        counts = self.counts
        return [item for item in found if id(item) in counts]

    def _mark_cycles(self, root: object) -> None:
        """Prepare the cycles that pass through objects built from their contents.

        On every such cycle (a strongly connected component over the objects the scan
        counted) the lists, dicts and sets get an id, so writing a built object again inside
        the cycle ends at a reference. A cycle made only of built objects (two dataclasses
        pointing at each other, an exception whose args hold itself) has no such container:
        its dataclasses and exceptions are then written to be created first and filled
        afterwards.
        """
        if id(root) not in self.counts:
            return
        for members in cyclic_components(root, self._graph_children):
            self._mark_component(members)

    def _mark_component(self, members: list[object]) -> None:
        built: dict[int, object] = {}
        for member in members:
            if type(member) in (list, dict, set):
                self.counts[id(member)] = 2
            else:
                built[id(member)] = member
        if not has_cycle(built, self._graph_children):
            return
        for oid, member in built.items():
            info = self.infos.get(type(member))
            if info is not None and info.kind in (tags.DATACLASS, tags.EXCEPTION):
                self.counts[oid] = 2
                self.created_first.add(oid)

    def _children(self, obj: Any, info: ClassInfo, depth: int) -> list[tuple[str, object]]:
        """``(path segment, value)`` of everything an object holds, in writing order."""
        kind = info.kind
        if kind == tags.DATACLASS or kind == tags.NAMEDTUPLE:
            return [("." + name, value) for name, value in field_values(obj, info)]
        if kind == tags.PYDANTIC:
            values, extra, private, _ = self._reduce_pydantic(obj)
            return [
                ("." + name, value)
                for part in (values, extra, private)
                for name, value in part.items()
            ]
        if kind == tags.EXCEPTION:
            state = self._reduce_exception(obj, depth)
            found: list[tuple[str, object]] = [
                (f".args[{index}]", arg) for index, arg in enumerate(state.args)
            ]
            found.extend(("." + name, value) for name, value in state.attrs.items())
            if state.cause is not None:
                found.append((".__cause__", state.cause))
            return found
        return [(f"<{info.class_id} state>", self._reduce_custom(obj, info))]

    # -- per-class information and reductions ---------------------------------------------

    def _info(self, cls: type) -> ClassInfo:
        info = self.infos.get(cls)
        if info is None:
            info = self.infos[cls] = class_info(cls)
        return info

    def _reduce_custom(self, obj: object, info: ClassInfo) -> object:
        key = id(obj)
        if key in self.reductions:
            return self.reductions[key]
        assert info.encode is not None
        try:
            state = info.encode(obj)
        except Exception as exc:
            raise Refusal(
                f"the serializer of {info.class_id} raised {type(exc).__name__}: {exc}",
                "Fix the serializer registered for this class",
            ) from None
        self.reductions[key] = state
        return state

    def _reduce_pydantic(
        self, obj: Any
    ) -> tuple[dict[str, object], dict[str, object], dict[str, object], list[str]]:
        key = id(obj)
        cached = self.reductions.get(key)
        if cached is None:
            values = dict(obj.__dict__)
            extra = dict(obj.__pydantic_extra__ or {})
            private = dict(obj.__pydantic_private__ or {})
            unset = sorted((values.keys() | extra.keys()) - set(obj.__pydantic_fields_set__))
            cached = self.reductions[key] = (values, extra, private, unset)
        return cached

    def _reduce_exception(self, exc: BaseException, depth: int) -> ExceptionState:
        key = id(exc)
        cached = self.reductions.get(key)
        if cached is None:
            outer = self.outer | self.building
            cached = self.reductions[key] = reduce_exception(
                exc, lambda value: _can_encode(value, depth + 1, self.max_depth, outer)
            )
        return cached

    def _enum_fields(self, member: Any) -> dict[str, Json]:
        cls = type(member)
        name = member._name_
        if isinstance(name, str) and cls._member_map_.get(name) is member:
            return {"name": name}
        if type(member._value_) is int:  # a composite Flag value such as Perm.R | Perm.W
            return {"v": member._value_}
        raise Refusal(f"{type_label(cls)} member {member!r} has no name", REGISTER_HINT)

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


def _can_encode(value: object, depth: int, max_depth: int, outer: frozenset[int]) -> bool:
    try:
        Encoder(max_depth, outer=outer).scan(value, depth)
    except (Refusal, RecursionError):
        return False
    return True


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
