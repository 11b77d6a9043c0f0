"""The encoded form of each type, pinned in ``tests/serde/golden/``.

A change of the format shows up here as a failure. If it is intended, regenerate with
``WORKFLOWKIT_UPDATE_GOLDEN=1 pytest tests/serde/test_serde_golden.py`` - but never delete or
rewrite files of an earlier format version: every file in the directory must still decode,
because stored runs hold that data.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from serde_models import (
    Address,
    Color,
    FrozenDerived,
    Item,
    Level,
    Mode,
    Money,
    Node,
    Order,
    Pair,
    PaymentError,
    Peer,
    Perm,
    Point,
    Slotted,
    Temperature,
    User,
    WithDerived,
    assert_same,
)

from workflowkit.errors import FatalError, RemoteError, RetryableError
from workflowkit.serde import decode, display, encode
from workflowkit.serde.exceptions import TRACEBACK_ATTR

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("WORKFLOWKIT_UPDATE_GOLDEN") == "1"


def _self_list() -> list[Any]:
    value: list[Any] = ["head"]
    value.append(value)
    return value


def _check_self_list(decoded: Any) -> None:
    assert decoded[0] == "head" and decoded[1] is decoded


def _shared() -> Any:
    inner = {"k": [1]}
    return {"a": inner, "b": inner, "c": (inner,)}


def _check_shared(decoded: Any) -> None:
    assert decoded["a"] is decoded["b"] is decoded["c"][0]
    assert decoded["a"] == {"k": [1]}


def _tree() -> Node:
    root = Node("root")
    root.children.append(Node("leaf", parent=root))
    return root


def _check_tree(decoded: Any) -> None:
    assert decoded.children[0].parent is decoded
    assert decoded.children[0].name == "leaf"


def _peers() -> Peer:
    ada, bob = Peer("ada"), Peer("bob")
    ada.friend, bob.friend = bob, ada
    return ada


def _check_peers(decoded: Any) -> None:
    assert decoded.friend.friend is decoded and decoded.friend.name == "bob"


def _with_traceback() -> ValueError:
    error = ValueError("bad input", 7)
    vars(error)[TRACEBACK_ATTR] = 'Traceback (most recent call last):\n  File "x.py"\nValueError\n'
    error.__cause__ = KeyError("k")
    return error


def _derived() -> WithDerived:
    value = WithDerived(4)
    value.counter = 9
    return value


def _order() -> Order:
    order = Order(
        id="o-1",
        items=[Item(sku="A-1", qty=2, when=datetime(2024, 5, 17, 9, 30, tzinfo=UTC))],
        orderNote="ring",
        gift=True,
    )
    order._secret = 7
    return order


CASES: dict[str, tuple[Callable[[], Any], Callable[[Any], None] | None]] = {
    name: (factory, check)
    for name, factory, check in [
        ("none", lambda: None, None),
        ("bool", lambda: [True, False], None),
        ("int", lambda: [0, -7, 2**63, -(10**40)], None),
        ("int_big", lambda: 3**2000, None),
        ("float", lambda: [0.5, -0.0, 1e300, 5e-324], None),
        ("float_special", lambda: [math.nan, math.inf, -math.inf], None),
        ("str", lambda: ["", "ascii", "é😀", "nul\x00", "lone\ud83d"], None),
        ("bytes", lambda: [b"", b"\x00\x01\xff binary", b"x" * 300], None),
        ("bytearray", lambda: bytearray(b"mutable"), None),
        ("list", lambda: [1, [2, [3, []]]], None),
        ("tuple", lambda: (1, (2, "3"), ()), None),
        ("dict", lambda: {"a": 1, "b": {"c": None}}, None),
        ("dict_keys", lambda: {1: "i", (1, 2): "t", None: "n", 1.5: "f"}, None),
        ("dict_tag_key", lambda: {"$": "dollar", "$ref": 1}, None),
        ("set", lambda: {"pear", "apple", "fig"}, None),
        ("set_mixed", lambda: {1, "a", (2, "b"), b"c", None}, None),
        ("frozenset", lambda: frozenset({3, 1, 2}), None),
        ("datetime_naive", lambda: datetime(2024, 2, 29, 13, 45, 1, 123456), None),
        ("datetime_utc", lambda: datetime(2024, 1, 1, tzinfo=UTC), None),
        (
            "datetime_offset",
            lambda: datetime(2024, 1, 1, 8, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            None,
        ),
        (
            "datetime_zoneinfo_fold",
            lambda: datetime(2021, 11, 7, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1),
            None,
        ),
        ("date", lambda: date(1999, 12, 31), None),
        ("time", lambda: [time(1, 2, 3, 4), time(8, tzinfo=timezone(timedelta(hours=-2)))], None),
        ("timedelta", lambda: timedelta(days=-1, seconds=5, microseconds=6), None),
        ("timezone", lambda: [UTC, timezone(timedelta(hours=1), "CET")], None),
        ("zoneinfo", lambda: ZoneInfo("Europe/Paris"), None),
        ("decimal", lambda: [Decimal("1.50"), Decimal("NaN"), Decimal("-Infinity")], None),
        ("uuid", lambda: UUID("12345678-1234-5678-1234-567812345678"), None),
        (
            "path",
            lambda: [PurePosixPath("/etc/x"), PureWindowsPath(r"C:\x\y"), Path("rel/p")],
            None,
        ),
        ("pattern", lambda: [re.compile(r"^\d+$", re.M), re.compile(rb"\x00")], None),
        ("enum", lambda: [Color.RED, Level.HIGH, Mode.FAST, Perm.W, Perm.R | Perm.X], None),
        ("dataclass", lambda: User("ada", Address("London"), ["x"]), None),
        ("dataclass_frozen_slots", lambda: [Point(1.0, 2.0), Slotted(1, (2,))], None),
        ("dataclass_init_false", lambda: [_derived(), FrozenDerived(3)], None),
        ("namedtuple", lambda: Pair("l", Pair(1)), None),
        ("pydantic", _order, None),
        ("custom_protocol", lambda: Money(1999, "EUR"), None),
        ("custom_registered", lambda: Temperature(Decimal("273.15")), None),
        ("exception_builtin", lambda: KeyError("missing"), None),
        ("exception_traceback_cause", _with_traceback, None),
        ("exception_custom", lambda: PaymentError("E42", 500), None),
        ("exception_fatal", lambda: FatalError("card declined"), None),
        (
            "exception_retryable",
            lambda: RetryableError("later", retry_after=timedelta(minutes=5)),
            None,
        ),
        ("exception_remote", lambda: RemoteError("x.Y", "far", (1,), "tb"), None),
        ("cycle_list", _self_list, _check_self_list),
        ("shared_refs", _shared, _check_shared),
        ("cycle_dataclass_tree", _tree, _check_tree),
        ("cycle_dataclass_peers", _peers, _check_peers),
        ("step_args", lambda: (("o-1", 500), {"when": date(2024, 1, 1)}), None),
    ]
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoding_matches_golden(name: str) -> None:
    factory, _ = CASES[name]
    data = encode(factory())
    path = GOLDEN / f"{name}.wk"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(data)
    assert path.exists(), f"no golden file for {name}; run with WORKFLOWKIT_UPDATE_GOLDEN=1"
    assert data == path.read_bytes(), f"the encoding of {name!r} changed"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_payload_decodes_to_the_value(name: str) -> None:
    factory, check = CASES[name]
    decoded = decode((GOLDEN / f"{name}.wk").read_bytes())
    if check is not None:
        check(decoded)
    else:
        assert_same(decoded, factory())


def test_every_golden_file_still_decodes_and_displays() -> None:
    files = sorted(GOLDEN.glob("*.wk"))
    assert len(files) >= len(CASES)
    for path in files:
        data = path.read_bytes()
        decode(data)
        json.dumps(display(data), allow_nan=False)
