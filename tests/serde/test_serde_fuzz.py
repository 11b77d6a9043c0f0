"""Untrusted bytes never crash or hang the decoder: the only error is SerializationError (or,
for bytes framed as a payload encrypted at rest, PayloadKeyMissingError: it was not decrypted
on its way here)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflowkit.errors import PayloadKeyMissingError, SerializationError
from workflowkit.serde import decode, display
from workflowkit.serde.tags import BUILTIN_TAGS

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.wk"))
SEEDS = [path.read_bytes() for path in GOLDEN]
FUZZ = settings(
    max_examples=int(os.environ.get("SERDE_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def survives(data: bytes) -> None:
    start = time.perf_counter()
    for reader in (decode, display):
        try:
            shown = reader(data)
        except (SerializationError, PayloadKeyMissingError):
            continue
        if reader is display:
            json.dumps(shown)
    assert time.perf_counter() - start < 2.0, "decoding took too long"


@given(st.binary(max_size=200))
@FUZZ
def test_random_bytes(data: bytes) -> None:
    survives(data)
    survives(b"wk1t" + data)
    survives(b"wk1j" + data)
    survives(b"wkx1" + data)
    survives(b"wkx!" + data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif action == "truncate":
            del data[position:]
        else:
            other = draw(st.sampled_from(SEEDS))
            cut = draw(st.integers(0, len(other)))
            data[position:] = other[cut:]
    return bytes(data)


@given(mutated())
@FUZZ
def test_mutated_golden_payloads(data: bytes) -> None:
    survives(data)


_field_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        ["", "x", "0x1f", "nan", "2024-01-01", "12:00", "tests.User", "tests.Color", "RED",
         "builtins:ValueError", "os:system", "Europe/Paris", "PosixPath", "a+", "1.5"]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)  # fmt: skip


@st.composite
def tag_trees(draw: st.DrawFn, depth: int = 0) -> Any:
    """JSON trees made of tag nodes with plausible and implausible fields."""
    if depth > 3 or draw(st.booleans()):
        return draw(_field_values)
    node: dict[str, Any] = {"$": draw(st.sampled_from(sorted(BUILTIN_TAGS)))}
    for key in draw(
        st.lists(
            st.sampled_from(["v", "id", "t", "o", "n", "tz", "fold", "name", "args", "msg",
                             "attrs", "cause", "tb", "extra", "private", "unset", "new", "cls",
                             "key", "us", "d", "s", "flags"]),
            max_size=5,
        )
    ):  # fmt: skip
        node[key] = (
            draw(tag_trees(depth + 1)) if key in ("v", "tz", "cause") else draw(_field_values)
        )
    return node


@given(tag_trees(), st.binary(max_size=16))
@FUZZ
def test_structured_tag_nodes(tree: Any, blob: bytes) -> None:
    head = json.dumps(tree, separators=(",", ":")).encode()
    survives(b"wk1t" + head)
    survives(b"wk1t" + head + b"\n" + blob)
