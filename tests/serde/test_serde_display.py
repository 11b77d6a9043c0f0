"""display(): a JSON rendering for the CLI and dashboard that never builds user classes."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any
from uuid import UUID

from serde_models import Color, Money, Order, Pair, PaymentError, Perm, User

from workflowkit.serde import display, encode


def shown(value: Any) -> Any:
    result = display(encode(value))
    json.dumps(result, allow_nan=False)  # always valid JSON
    return result


def test_plain_json_is_shown_as_is() -> None:
    value = {"a": [1, 2.5, None, True], "b": {"c": "d"}}
    assert shown(value) == value


def test_bytes_show_size_and_preview() -> None:
    assert shown(b"hello") == {"$bytes": 5, "preview": "b'hello'"}
    big = shown(bytes(range(256)) * 10)
    assert big["$bytes"] == 2560
    assert big["preview"].startswith("b'\\x00\\x01") and big["preview"].endswith("…")
    assert shown(bytearray(b"x")) == {"$bytes": 1, "preview": "b'x'", "$type": "bytearray"}


def test_scalars_with_tags() -> None:
    assert shown(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == ("2024-01-02T03:04:05+00:00")
    assert shown(date(2024, 1, 2)) == "2024-01-02"
    assert shown(timedelta(days=1, seconds=5)) == "1 day, 0:00:05"
    assert shown(timezone(timedelta(hours=1))) == "UTC+01:00"
    assert shown(Decimal("1.50")) == "1.50"
    assert shown(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert shown(PurePosixPath("/x/y")) == "/x/y"
    assert shown([math.nan, math.inf, -math.inf]) == ["NaN", "Infinity", "-Infinity"]
    assert shown(10**700)["$type"] == "int"


def test_containers() -> None:
    assert shown((1, (2, 3))) == [1, [2, 3]]
    assert shown({"b", "a"}) == {"$type": "set", "items": ["a", "b"]}
    assert shown({1: "x", (2, 3): "y"}) == {"$type": "dict", "items": [[1, "x"], [[2, 3], "y"]]}
    assert shown({"$": 1}) == {"$": 1}


def test_objects_show_their_type_and_fields() -> None:
    assert shown(User("ada")) == {
        "$type": "tests.User",
        "name": "ada",
        "address": None,
        "tags": [],
        "callback": None,
    }
    assert shown(Pair(1, 2)) == {"$type": "tests.Pair", "left": 1, "right": 2}
    assert shown(Color.RED) == {"$type": "tests.Color", "name": "RED"}
    assert shown(Perm.R | Perm.W) == {"$type": "tests.Perm", "value": 3}
    assert shown(Money(5, "EUR")) == {
        "$type": "tests.Money",
        "state": {"cents": 5, "currency": "EUR"},
    }
    order = shown(Order(id="o", gift=True))
    assert order["$type"] == "tests.Order" and order["gift"] is True


def test_exceptions() -> None:
    error = PaymentError("E1", 5)
    error.__cause__ = ValueError("root")
    result = shown(error)
    assert result["$type"] == "tests.PaymentError"
    assert result["$error"] == "payment E1 failed for 5"
    assert result["attrs"] == {"code": "E1", "amount": 5}
    assert result["cause"]["$error"] == "root"


def test_shared_and_cyclic_values() -> None:
    shared = [1]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert shown({"a": shared, "b": shared}) == {"a": {"$id": 1, "items": [1]}, "b": {"$ref": 1}}
    assert shown(cyclic) == {"$id": 1, "items": [{"$ref": 1}]}


def test_payload_of_classes_not_importable_here_still_displays() -> None:
    data = encode(User("ada")).replace(b"tests.User", b"not_imported_module:User")
    assert display(data)["$type"] == "not_imported_module:User"
    forged = b'wk1t{"$":"dataclass","t":"os:system","v":{"cmd":"rm -rf /"}}'
    assert display(forged) == {"$type": "os:system", "cmd": "rm -rf /"}
