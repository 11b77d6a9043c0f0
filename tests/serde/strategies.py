"""Hypothesis strategies for every type the codec supports."""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from serde_models import (
    Address,
    Color,
    FrozenDerived,
    Item,
    Level,
    Mode,
    Money,
    Pair,
    PaymentError,
    Perm,
    Point,
    Slotted,
    Temperature,
    User,
    WithDerived,
)

from workflowkit.errors import FatalError, RetryableError

# Every code point, lone surrogates and NUL included.
any_text = st.text(
    st.characters(codec=None, exclude_categories=())
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
    max_size=12,
)

fixed_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
) | st.builds(
    timezone, st.timedeltas(timedelta(hours=-12), timedelta(hours=12)), st.text(max_size=5)
)
zones = st.sampled_from(
    ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
).map(ZoneInfo)
tz_or_none = st.none() | fixed_offsets | zones | st.just(UTC)

datetimes = st.builds(
    lambda d, fold: d.replace(fold=fold),
    st.datetimes(timezones=tz_or_none),
    st.sampled_from([0, 1]),
)
times = st.builds(
    lambda t, fold: t.replace(fold=fold), st.times(timezones=tz_or_none), st.sampled_from([0, 1])
)
decimals = st.decimals(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [Decimal("1.2300"), Decimal("-0"), Decimal("sNaN"), Decimal("-Infinity"), Decimal("1E+999")]
)
paths = st.builds(
    lambda cls, parts: cls(*parts) if parts else cls(),
    st.sampled_from([Path, PurePosixPath, PureWindowsPath]),
    st.lists(st.text("abc_-. ", min_size=1, max_size=5), max_size=3),
)
patterns = st.builds(
    lambda text, flags: re.compile(re.escape(text), flags),
    st.text(max_size=6),
    st.sampled_from([0, re.I, re.M | re.S, re.X]),
) | st.builds(lambda b: re.compile(re.escape(b)), st.binary(max_size=6))
enums = st.sampled_from(
    [Color.RED, Color.GREEN, Level.LOW, Level.HIGH, Mode.FAST, Perm.R, Perm.R | Perm.W, Perm(0)]
)

hashable_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**600, max_value=10**640)
    | st.floats(allow_nan=False)
    | any_text
    | st.binary(max_size=8)
    | datetimes
    | st.dates()
    | times
    | st.timedeltas()
    | fixed_offsets
    | zones
    | st.decimals(allow_nan=False)
    | st.uuids()
    | paths
    | patterns
    | enums
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: (
        st.lists(inner, max_size=3).map(tuple)
        | st.frozensets(inner, max_size=3)
        | st.builds(Point, st.floats(allow_nan=False), st.floats(allow_nan=False))
        | st.builds(FrozenDerived, st.integers())
        | st.builds(Money, st.integers(), st.sampled_from(["EUR", "USD"]))
    ),
    max_leaves=6,
)

scalars = (
    hashable_scalars
    | st.floats()
    | decimals
    | st.binary(max_size=64).map(bytearray)
    | st.builds(Temperature, st.decimals(allow_nan=False, allow_infinity=False))
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(any_text, inner, max_size=4)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.dictionaries(st.sampled_from(["$", "$ref", "v"]), inner, max_size=3)
        | st.sets(hashables, max_size=3)
        | st.frozensets(hashables, max_size=3)
        | st.builds(User, any_text, st.none() | st.builds(Address, any_text), st.lists(any_text))
        | st.builds(Slotted, st.integers(), st.lists(st.integers(), max_size=3).map(tuple))
        | st.builds(WithDerived, st.integers())
        | st.builds(Pair, inner, inner)
        | st.builds(Item, sku=any_text, qty=st.integers(), when=st.none() | datetimes)
        | st.builds(FatalError, any_text)
        | st.builds(RetryableError, any_text, st.none() | st.timedeltas() | st.integers())
        | st.builds(PaymentError, any_text, st.integers())
        | st.builds(ValueError, inner)
    )


values = st.recursive(scalars, _containers, max_leaves=12)
