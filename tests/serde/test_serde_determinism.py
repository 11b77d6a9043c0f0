"""The same value encodes to the same bytes in every process (the runtime compares digests
of step arguments across replays, which may happen in another process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from workflowkit.serde import digest, encode

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = """
from workflowkit.serde import encode, digest
value = {
    "tags": {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"},
    "frozen": frozenset({"x", "y", "z", ("t", 1), b"raw", None, 2.5}),
    "nested": {frozenset({"a", "b"}), frozenset({"c"}), ("p", "q")},
    "keys": {("k", frozenset({"m", "n"})): 1},
}
data = encode(value)
print(data.hex())
print(digest(data))
print(",".join(value["tags"]))  # iteration order, to show it differs between the seeds
"""


def run_with_hash_seed(seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_sets_encode_identically_across_hash_seeds() -> None:
    first = run_with_hash_seed("1")
    second = run_with_hash_seed("2")
    assert first[2] != second[2], "the seeds should give different set iteration orders"
    assert first[:2] == second[:2]
    assert len(first[1]) == 16


def test_digest_is_short_and_stable() -> None:
    data = encode({"b": 1, "a": [1, 2]})
    assert digest(data) == digest(encode({"b": 1, "a": [1, 2]}))
    assert digest(data) != digest(encode({"a": [1, 2], "b": 1}))
    assert len(digest(data)) == 16
    assert digest(b"wk1jnull") == "7b00b82936062899"


def test_equal_sets_built_in_different_orders_encode_the_same() -> None:
    words = [f"w{i}" for i in range(50)]
    forward, backward = set(), set()
    for word in words:
        forward.add(word)
    for word in reversed(words):
        backward.add(word)
    assert encode(forward) == encode(backward)
    assert encode({1, "a", (2,)}) == encode({(2,), "a", 1})
