"""Cycles in an object graph, for the encoder: which objects lie on one (Tarjan's strongly
connected components), and whether a set of objects holds one among themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterator

Children = Callable[[object], list[object]]


def cyclic_components(root: object, children: Children) -> Iterator[list[object]]:
    """The strongly connected components reachable from ``root`` that hold a cycle (more
    than one member, or one that holds itself)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[object] = []
    on_stack: set[int] = set()
    found: list[list[object]] = []

    def visit(obj: object) -> None:
        oid = id(obj)
        index[oid] = low[oid] = len(index)
        stack.append(obj)
        on_stack.add(oid)
        for item in children(obj):
            item_id = id(item)
            if item_id not in index:
                visit(item)
                low[oid] = min(low[oid], low[item_id])
            elif item_id in on_stack:
                low[oid] = min(low[oid], index[item_id])
        if low[oid] != index[oid]:
            return
        members: list[object] = []
        while True:
            member = stack.pop()
            on_stack.discard(id(member))
            members.append(member)
            if member is obj:
                break
        if len(members) > 1 or any(item is obj for item in children(obj)):
            found.append(members)

    visit(root)
    return iter(found)


def has_cycle(nodes: dict[int, object], children: Children) -> bool:
    """Whether ``nodes`` (by id) hold a cycle through themselves alone."""
    state: dict[int, int] = {}  # 1: on the current path, 2: finished

    def visit(oid: int) -> bool:
        state[oid] = 1
        for item in children(nodes[oid]):
            item_id = id(item)
            if item_id not in nodes:
                continue
            seen = state.get(item_id)
            if seen == 1 or (seen is None and visit(item_id)):
                return True
        state[oid] = 2
        return False

    return any(oid not in state and visit(oid) for oid in nodes)
