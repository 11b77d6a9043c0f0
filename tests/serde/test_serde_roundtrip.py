"""Every supported type comes back as an equal value of the same type."""

from __future__ import annotations

import math
import os
import re
import sys
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from serde_models import (
    Address,
    Color,
    FrozenDerived,
    Item,
    Level,
    Mode,
    Money,
    Order,
    Pair,
    PaymentError,
    Perm,
    Point,
    SideEffectError,
    Slotted,
    Temperature,
    User,
    WithDerived,
    assert_same,
)
from strategies import values

from workflowkit.errors import FatalError, RemoteError, RetryableError
from workflowkit.serde import decode, encode, exception_traceback

CASES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    -(10**599),
    10**600,
    -(10**5000),
    0.1,
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
    1e308,
    5e-324,
    "",
    "plain",
    "nul\x00inside",
    "lone \ud800 surrogate \udfff",
    "emoji 😀 and accents é",
    b"",
    b"\x00\xff" * 10,
    bytearray(b"mutable"),
    [],
    [1, [2, [3]]],
    (),
    (1,),
    ((1, 2), [3]),
    {},
    {"a": 1, "b": [True, None]},
    {1: "int", 2.5: "float", None: "none", False: "bool", (1, 2): "tuple"},
    {"$": "not a tag", "v": 1},
    {"$ref": 1, "$": {"$": "x"}},
    {frozenset({1, 2}): {Color.RED}},
    set(),
    {1, 2, 3},
    {"b", "a", "c"},
    frozenset(),
    frozenset({(1, "a"), (2, "b")}),
    datetime(2024, 2, 29, 23, 59, 59, 999999),
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=-3), "BRT")),
    datetime(2024, 1, 1, tzinfo=timezone(timedelta(seconds=1, microseconds=7))),
    datetime(2021, 11, 7, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1),
    datetime(2021, 11, 7, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=0),
    datetime.min,
    datetime.max,
    date(1, 1, 1),
    date(2024, 5, 17),
    time(),
    time(23, 59, 59, 1, fold=1),
    time(8, 0, tzinfo=timezone(timedelta(hours=2))),
    time(8, 0, tzinfo=ZoneInfo("Europe/Paris")),
    timedelta(),
    timedelta(days=-1, seconds=3, microseconds=9),
    timedelta.max,
    UTC,
    timezone(timedelta(hours=-7), "MST"),
    ZoneInfo("Asia/Kolkata"),
    Decimal("1.2300"),
    Decimal("-0"),
    Decimal("NaN"),
    Decimal("-sNaN"),
    Decimal("Infinity"),
    Decimal("1E+9999"),
    Decimal("3.141592653589793238462643383279502884197"),
    UUID("12345678-1234-5678-1234-567812345678"),
    Path("/tmp/x.txt"),
    Path("relative/dir"),
    PurePosixPath("/a/b"),
    PureWindowsPath(r"C:\Users\ada\file.txt"),
    re.compile(r"^a+b?$", re.IGNORECASE | re.MULTILINE),
    re.compile(rb"\x00+"),
    re.compile("x", re.VERBOSE | re.ASCII),
    Color.RED,
    Level.HIGH,
    Mode.SAFE,
    Perm.R,
    Perm.R | Perm.X,
    Perm(0),
    User("ada", Address("London", "N1"), ["a", "b"]),
    Point(1.5, -2.0),
    Slotted(1, (2, 3)),
    FrozenDerived(7),
    Pair(1, Pair("nested")),
    Item(sku="x", qty=3, when=datetime(2024, 1, 1, tzinfo=UTC)),
    Order(id="o1", items=[Item(sku="a")], orderNote="ring twice", gift=True),
    Money(500, "EUR"),
    Temperature(Decimal("273.15")),
    {Money(1, "EUR"), Point(0, 0)},
    FatalError("card declined"),
    RetryableError("rate limited", retry_after=timedelta(seconds=30)),
    RetryableError("later", retry_after="1m"),
    RetryableError("at", retry_after=datetime(2030, 1, 1, tzinfo=UTC)),
    PaymentError("E42", 1999),
    ValueError("bad value", 3),
    KeyError("missing"),
    OSError(2, "No such file", "/x"),
    StopIteration(5),
    ExceptionGroup("several", [ValueError("a"), TypeError("b")]),
    RemoteError("far.away.Error", "it broke", (1, 2), "Traceback ..."),
]


def _id(value: Any) -> str:
    return type(value).__qualname__


@pytest.mark.parametrize("value", CASES, ids=_id)
def test_round_trip(value: Any) -> None:
    decoded = decode(encode(value))
    assert type(decoded) is type(value)
    assert_same(decoded, value)
    if not isinstance(value, BaseException | float | Decimal) and value == value:
        assert decoded == value


@pytest.mark.parametrize("value", CASES, ids=_id)
def test_encoding_is_stable(value: Any) -> None:
    data = encode(value)
    assert encode(decode(data)) == data


@given(values)
@settings(
    max_examples=int(os.environ.get("SERDE_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_round_trip_property(value: Any) -> None:
    data = encode(value)
    decoded = decode(data)
    assert_same(decoded, value)
    again = encode(decoded)
    assert_same(decode(again), value)
    if b'"$":"exception"' not in data:
        # An exception stores str(exc), which may show a set in iteration order.
        assert again == data


def test_negative_zero_and_nan_keep_their_identity_as_floats() -> None:
    decoded = decode(encode([-0.0, math.nan, 0.0]))
    assert math.copysign(1, decoded[0]) == -1
    assert math.isnan(decoded[1])
    assert math.copysign(1, decoded[2]) == 1


def test_dict_insertion_order_is_kept() -> None:
    value = {3: "c", "b": 2, 1: "a", "$": 0}
    assert list(decode(encode(value))) == [3, "b", 1, "$"]
    plain = {"z": 1, "a": 2, "m": 3}
    assert list(decode(encode(plain))) == ["z", "a", "m"]


def test_datetime_with_zoneinfo_keeps_zone_and_fold() -> None:
    ambiguous = datetime(2021, 11, 7, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1)
    decoded = decode(encode(ambiguous))
    assert decoded.tzinfo is ZoneInfo("America/New_York")
    assert decoded.fold == 1
    assert decoded.utcoffset() == timedelta(hours=-5)


def test_timezone_name_is_kept() -> None:
    decoded = decode(encode(timezone(timedelta(hours=1), "CET")))
    assert decoded.tzname(None) == "CET"
    assert decode(encode(UTC)) is UTC


def test_dataclass_field_outside_init_is_restored() -> None:
    value = WithDerived(3)
    value.counter = 5
    decoded = decode(encode(value))
    assert (decoded.base, decoded.doubled, decoded.counter) == (3, 6, 5)
    frozen = decode(encode(FrozenDerived(1)))
    assert frozen.label == "fixed"


def test_pydantic_model_keeps_fields_set_extra_private_and_aliases() -> None:
    order = Order(id="o1", orderNote="hi", gift=True)
    order._secret = 42
    decoded = decode(encode(order))
    assert decoded == order
    assert decoded.note == "hi"
    assert decoded.model_extra == {"gift": True}
    assert decoded._secret == 42
    assert decoded.model_fields_set == order.model_fields_set
    assert decoded.model_dump(exclude_unset=True) == order.model_dump(exclude_unset=True)


def test_fatal_and_retryable_errors_round_trip_exactly() -> None:
    retry = RetryableError("slow down", retry_after=timedelta(seconds=30))
    decoded = decode(encode(retry))
    assert type(decoded) is RetryableError
    assert decoded.args == ("slow down",)
    assert str(decoded) == "slow down"
    assert decoded.retry_after == timedelta(seconds=30)
    assert vars(decoded) == vars(retry)
    fatal = decode(encode(FatalError("no")))
    assert type(fatal) is FatalError
    assert fatal.args == ("no",)


def test_exception_keeps_traceback_text_and_cause() -> None:
    try:
        try:
            {}["missing"]
        except KeyError as inner:
            raise PaymentError("E1", 10) from inner
    except PaymentError as exc:
        error = exc
    decoded = decode(encode(error))
    assert type(decoded) is PaymentError
    assert (decoded.code, decoded.amount) == ("E1", 10)
    assert type(decoded.__cause__) is KeyError
    text = exception_traceback(decoded)
    assert "raise PaymentError" in text
    assert text.rstrip().endswith("PaymentError: payment E1 failed for 10")
    assert "Traceback" in exception_traceback(decoded.__cause__)
    # Encoding the decoded exception again keeps the original traceback.
    again = decode(encode(decoded))
    assert exception_traceback(again) == text


def test_exception_is_rebuilt_without_running_init() -> None:
    error = SideEffectError("once")
    SideEffectError.calls.clear()
    decoded = decode(encode(error))
    assert type(decoded) is SideEffectError
    assert decoded.args == ("once",)
    assert SideEffectError.calls == []


def test_builtin_exception_fields_are_rebuilt() -> None:
    decoded = decode(encode(OSError(2, "No such file", "/x")))
    assert type(decoded) is FileNotFoundError
    assert (decoded.errno, decoded.strerror, decoded.filename) == (2, "No such file", "/x")
    assert decode(encode(StopIteration(5))).value == 5


def test_exception_with_unserializable_parts_is_still_encoded() -> None:
    error = ValueError("bad", lambda: 1)
    error.handle = open(__file__)  # noqa: SIM115 - an unserializable attribute
    try:
        decoded = decode(encode(error))
    finally:
        error.handle.close()
    assert type(decoded) is ValueError
    assert decoded.args[0] == "bad"
    assert decoded.args[1].startswith("<function")
    assert not hasattr(decoded, "handle")


def test_exception_of_a_module_not_imported_becomes_remote_error() -> None:
    data = encode(PaymentError("E9", 5))
    forged = data.replace(b"tests.PaymentError", b"gone_module_xyz:PaymentError")
    decoded = decode(forged)
    assert type(decoded) is RemoteError
    assert decoded.type_name == "gone_module_xyz.PaymentError"
    assert decoded.message == "payment E9 failed for 5"
    assert decoded.original_args == ("payment E9 failed for 5",)
    assert "gone_module_xyz" not in sys.modules


def test_exception_cycles() -> None:
    first, second = ValueError("a"), PaymentError("E", 1)
    first.__cause__ = second
    second.__cause__ = first
    decoded = decode(encode(first))
    assert type(decoded.__cause__) is PaymentError
    assert decoded.__cause__.__cause__ is decoded
    assert decoded.__cause__.code == "E"
    itself = KeyError("k")
    itself.args = ("k", itself)
    decoded = decode(encode(itself))
    assert type(decoded) is KeyError and decoded.args[1] is decoded
    remote = decode(encode(itself).replace(b"builtins:KeyError", b"gone_xyz:KeyError"))
    assert type(remote) is RemoteError and remote.original_args[1] is remote
    assert remote.type_name == "gone_xyz.KeyError"
    listed = ValueError("v")
    listed.args = ("v", [listed])
    decoded = decode(encode(listed))
    assert decoded.args[1][0] is decoded


def test_large_bytes_cost_about_their_size() -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB
    data = encode(blob)
    assert len(blob) < len(data) < len(blob) + 64
    assert decode(data) == blob
    many = [b"x" * 1000 for _ in range(100)]
    assert len(encode(many)) < 100 * 1000 + 100 * 40


def test_plain_data_uses_the_plain_mode() -> None:
    assert encode({"a": [1, 2.5, None, True, "s"]}) == b'wk1j{"a":[1,2.5,null,true,"s"]}'
    assert encode("x") == b'wk1j"x"'
    assert encode({"a": (1,)}).startswith(b"wk1t")
