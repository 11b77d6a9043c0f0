"""The encoder's first pass (``scan``): check, count, cache; see ``encode``'s docstring."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from . import tags
from ._class_info import ClassInfo, class_info, field_values
from ._cycles import cyclic_components, has_cycle
from ._refusals import DEPTH_HINT, REGISTER_HINT, Refusal, index_of, short_repr, type_label
from .exceptions import ExceptionState, reduce_exception
from .tags import BIG_INT, LEAVES, TAG, Json


class Scanner:
    """An encoding run's state, and its first pass; ``Encoder`` adds the second (``emit``)."""

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
        # The second pass's state, set here too: one ``__init__`` call per encoding.
        self.shared: set[int] = set()
        self.ref_ids: dict[int, int] = {}
        self.done: set[int] = set()
        self.segments: list[bytes | bytearray] = []
        self.blob_size = 0

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
        if not self._first_visit(items):
            return
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
        if not self._first_visit(mapping):
            return
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
            self.maps.add(id(mapping))

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


def _can_encode(value: object, depth: int, max_depth: int, outer: frozenset[int]) -> bool:
    try:
        Scanner(max_depth, outer=outer).scan(value, depth)
    except (Refusal, RecursionError):
        return False
    return True
