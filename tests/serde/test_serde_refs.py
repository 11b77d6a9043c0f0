"""Shared references, cycles, and pass-by-value copies."""

from __future__ import annotations

import os
from types import NoneType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from serde_models import Money, Node, Pair, Peer, Point, User

from workflowkit.serde import copy_value, decode, encode


def round_trip(value: Any) -> Any:
    return decode(encode(value))


def test_list_containing_itself() -> None:
    value: list[Any] = [1]
    value.append(value)
    decoded = round_trip(value)
    assert decoded[0] == 1
    assert decoded[1] is decoded


def test_dict_containing_itself() -> None:
    value: dict[str, Any] = {"name": "loop"}
    value["self"] = value
    decoded = round_trip(value)
    assert decoded["self"] is decoded
    assert decoded["name"] == "loop"


def test_same_dict_twice_decodes_to_one_object() -> None:
    shared = {"k": [1, 2]}
    decoded = round_trip([shared, shared, {"other": shared}])
    assert decoded[0] is decoded[1] is decoded[2]["other"]
    assert decoded[0] == {"k": [1, 2]}
    decoded[0]["k"].append(3)
    assert decoded[1]["k"] == [1, 2, 3]


def test_only_shared_objects_get_ids() -> None:
    shared: list[int] = []
    data = encode({"a": shared, "b": shared, "c": [], "d": (1,)})
    assert data.count(b'"id"') == 2  # the definition and the reference


def test_shared_object_inside_non_str_key_dict_and_set() -> None:
    point = Point(1, 2)
    value = {point: [point], "x": {point}}
    decoded = round_trip(value)
    (key,) = [k for k in decoded if isinstance(k, Point)]
    assert decoded[key][0] is key
    assert next(iter(decoded["x"])) is key


def test_cycle_through_a_tuple() -> None:
    inner: list[Any] = []
    outer = (inner,)
    inner.append(outer)
    decoded = round_trip(outer)
    assert type(decoded) is tuple
    assert decoded[0][0] is decoded


def test_cycle_through_dataclasses() -> None:
    root = Node("root")
    child = Node("child", parent=root)
    root.children.append(child)
    decoded = round_trip(root)
    assert decoded.children[0].parent is decoded
    assert decoded.children[0].name == "child"
    again = round_trip(decoded.children[0])
    assert again.parent.children[0] is again


def test_cycle_through_namedtuple_and_set() -> None:
    bucket: list[Any] = []
    pair = Pair("left", bucket)
    bucket.append(pair)
    decoded = round_trip({"p": pair, "again": pair})
    assert decoded["p"] is decoded["again"]
    assert decoded["p"].right[0] is decoded["p"]


def test_shared_custom_object_and_bytes() -> None:
    money = Money(100, "EUR")
    blob = b"x" * 10_000
    decoded = round_trip([money, money, blob, blob])
    assert decoded[0] is decoded[1]
    assert decoded[2] is decoded[3]
    assert len(encode([blob, blob])) < 10_100


def test_shared_exception_and_cause() -> None:
    cause = ValueError("root cause")
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__cause__ = cause
    second.__cause__ = cause
    decoded = round_trip([first, second])
    assert decoded[0].__cause__ is decoded[1].__cause__


def test_deep_sharing_does_not_blow_up() -> None:
    value: Any = ("leaf",)
    for _ in range(60):  # 2**60 paths, 60 distinct tuples
        value = (value, value)
    data = encode(value)
    assert len(data) < 10_000
    decoded = decode(data)
    assert decoded[0] is decoded[1]


def test_mutual_cycle_between_lists_and_dicts() -> None:
    a: list[Any] = []
    b: dict[str, Any] = {"a": a}
    a.append(b)
    a.append({1: a, 2: b})
    decoded = round_trip([a, b])
    da, db = decoded
    assert da[0] is db
    assert db["a"] is da
    assert da[1][1] is da and da[1][2] is db


def test_copy_value_is_pass_by_value() -> None:
    user = User("ada", tags=["x"])
    original = {"user": user, "items": [1, 2], "blob": bytearray(b"ab")}
    copied = copy_value(original)
    copied["user"].tags.append("changed")
    copied["user"].name = "bob"
    copied["items"].append(3)
    copied["blob"].extend(b"cd")
    assert user.tags == ["x"] and user.name == "ada"
    assert original["items"] == [1, 2]
    assert original["blob"] == bytearray(b"ab")
    assert copied["user"] is not user


def test_copy_value_keeps_sharing_inside_the_copy() -> None:
    shared = [1]
    copied = copy_value({"a": shared, "b": shared})
    assert copied["a"] is copied["b"]
    assert copied["a"] is not shared


def test_cycle_made_only_of_dataclasses() -> None:
    ada, bob = Peer("ada"), Peer("bob")
    ada.friend, bob.friend = bob, ada
    decoded = round_trip(ada)
    assert decoded.name == "ada"
    assert decoded.friend.name == "bob"
    assert decoded.friend.friend is decoded


def test_dataclass_pointing_at_itself_through_a_tuple() -> None:
    loner = Peer("loner")
    loner.others = (loner, Peer("x"))
    decoded = round_trip(loner)
    assert decoded.others[0] is decoded
    assert decoded.others[1].name == "x"


def test_dataclass_on_a_cycle_through_a_list_still_uses_its_constructor() -> None:
    root = Node("root")
    root.children.append(Node("child", parent=root))
    assert b'"new"' not in encode(root)


# -- random object graphs ----------------------------------------------------------------

KINDS = ["list", "dict", "peer", "tuple", "set", "error"]


@st.composite
def object_graphs(draw: st.DrawFn) -> Any:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=7))
    nodes: list[Any] = []
    for index, kind in enumerate(kinds):
        if kind == "list":
            nodes.append([])
        elif kind == "dict":
            nodes.append({})
        elif kind == "set":
            nodes.append(set())
        elif kind == "peer":
            nodes.append(Peer(f"p{index}"))
        elif kind == "error":
            nodes.append(LookupError(f"e{index}"))
        else:
            nodes.append(None)  # tuples are built below, from what exists by then
    targets = st.integers(0, len(nodes) - 1)
    for index, kind in enumerate(kinds):
        if kind == "tuple":
            picks = draw(st.lists(targets, max_size=3))
            nodes[index] = tuple(n for n in (nodes[i] for i in picks) if n is not None)
    for index, kind in enumerate(kinds):
        node = nodes[index]
        picks = [nodes[i] for i in draw(st.lists(targets, max_size=3))]
        if kind == "list":
            node.extend(picks)
        elif kind == "dict":
            for position, pick in enumerate(picks):
                node[f"k{position}"] = pick
            peers = [p for p in picks if isinstance(p, Peer)]
            if peers:
                node[peers[0]] = "peer key"
        elif kind == "set":
            node.update(p for p in picks if isinstance(p, Peer | LookupError))
        elif kind == "error":
            node.args = (node.args[0], *picks)
            causes = [p for p in picks if isinstance(p, LookupError)]
            node.__cause__ = causes[0] if causes else None
        elif kind == "peer":
            node.friend = picks[0] if picks else None
            node.others = tuple(picks[1:])
    return nodes[draw(targets)]


def name_of(item: Any) -> str:
    return item.name if isinstance(item, Peer) else item.args[0]


def same_graph(original: Any, decoded: Any, seen: dict[int, Any]) -> None:
    if isinstance(original, str | int | NoneType):
        assert original == decoded
        return
    if id(original) in seen:
        assert seen[id(original)] is decoded
        return
    seen[id(original)] = decoded
    assert type(decoded) is type(original)
    if isinstance(original, list | tuple):
        assert len(decoded) == len(original)
        for a, b in zip(original, decoded, strict=True):
            same_graph(a, b, seen)
    elif isinstance(original, dict):
        assert len(decoded) == len(original)
        for (ka, va), (kb, vb) in zip(original.items(), decoded.items(), strict=True):
            same_graph(ka, kb, seen)
            same_graph(va, vb, seen)
    elif isinstance(original, set):
        by_name = {name_of(item): item for item in decoded}
        assert len(by_name) == len(original)
        for item in original:
            same_graph(item, by_name[name_of(item)], seen)
    elif isinstance(original, LookupError):
        same_graph(original.args, decoded.args, seen)
        same_graph(original.__cause__, decoded.__cause__, seen)
    else:
        assert decoded.name == original.name
        same_graph(original.friend, decoded.friend, seen)
        same_graph(original.others, decoded.others, seen)


@given(object_graphs())
@settings(max_examples=int(os.environ.get("SERDE_EXAMPLES", "300")), deadline=None)
def test_random_object_graphs_keep_their_shape(graph: Any) -> None:
    decoded = decode(encode(graph))
    same_graph(graph, decoded, {})
    same_graph(graph, copy_value(graph), {})
