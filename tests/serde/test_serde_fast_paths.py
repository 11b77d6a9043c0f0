"""The shortcuts for small JSON-shaped values write and read exactly what the general
path does (they are an optimisation, never a second format)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import any_text

from workflowkit import serde
from workflowkit._compact_json import compact_encoder
from workflowkit.serde.decode import Decoder, read_frame
from workflowkit.serde.encode import Encoder
from workflowkit.serde.format import DEFAULT_MAX_DEPTH

scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
small = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(any_text, inner, max_size=20),
    max_leaves=40,
)


def general_encode(value: Any) -> bytes:
    return Encoder(DEFAULT_MAX_DEPTH).run(value)


def general_decode(data: bytes) -> Any:
    frame = read_frame(data, None, None)
    return (
        frame.root if frame.plain else Decoder(frame.blob, frame.depth_limit).value(frame.root, 1)
    )


@given(small)
def test_same_bytes_and_same_value(value: Any) -> None:
    data = serde.encode(value)
    assert data == general_encode(value)
    assert repr(serde.decode(data)) == repr(general_decode(data))


def test_values_the_shortcut_must_leave_alone() -> None:
    shared = [1]
    for value in (
        [shared, shared],  # shared references
        {"$": 1},  # the tag key
        {1: "a"},  # non-str keys
        [math.nan, math.inf],  # not JSON
        [2**70],  # big ints
        [[[[1]]]],  # deeper than the shortcut looks
        list(range(40)),  # bigger
        (1, 2),  # tuples
    ):
        data = serde.encode(value)
        assert data == general_encode(value)
        decoded = serde.decode(data)
        assert repr(decoded) == repr(value)
    twice = serde.decode(serde.encode([shared, shared]))
    assert twice[0] is twice[1]


finite = st.floats(allow_nan=False, allow_infinity=False)
json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | any_text,
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(any_text, inner, max_size=8),
    max_leaves=30,
)


@given(json_trees, st.booleans())
def test_compact_json_writes_what_json_dumps_writes(tree: Any, ascii_only: bool) -> None:
    # Payload heads and event attributes go through a C encoder built once (json's private
    # API): its text must be json's, byte for byte.
    encode = compact_encoder(ensure_ascii=ascii_only, allow_nan=False)
    assert encode(tree) == json.dumps(tree, ensure_ascii=ascii_only, separators=(",", ":"))


def test_compact_json_refuses_what_json_refuses() -> None:
    strict = compact_encoder(ensure_ascii=False, allow_nan=False)
    with pytest.raises(ValueError, match="Out of range float"):
        strict([math.nan])
    with pytest.raises(TypeError, match="not JSON serializable"):
        strict({"k": object()})
    assert compact_encoder(ensure_ascii=True, allow_nan=True)({"x": math.inf}) == '{"x":Infinity}'
