"""Throughput of workflowkit.serde next to stdlib json and pickle.

Run: ``python bench/serde_bench.py`` (with ``src`` on the path or workflowkit installed).
pickle appears only as a speed reference; the codec never uses it.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from workflowkit import serde


def typical_dict() -> dict[str, Any]:
    """An order-like document of about 2 KB of JSON."""
    return {
        "id": "ord_01HF8Z3K4W5X6Y7Z8A9B0C1D2E",
        "status": "paid",
        "created_at": "2024-05-17T10:32:11.123456+00:00",
        "customer": {
            "id": "cus_8812",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "vip": True,
            "address": {
                "line1": "12 Analytical Row",
                "city": "London",
                "postcode": "N1 9GU",
                "country": "GB",
            },
        },
        "items": [
            {
                "sku": f"SKU-{i:04d}",
                "title": f"Difference engine part #{i}",
                "qty": i % 3 + 1,
                "unit_cents": 1999 + 250 * i,
                "tags": ["brass", "gear", "victorian"],
                "discount": None if i % 2 else 0.15,
            }
            for i in range(8)
        ],
        "totals": {"subtotal": 48211, "tax": 9642, "shipping": 0, "total": 57853},
        "notes": "Leave at the door. " * 4,
        "flags": {"gift": False, "express": True, "fragile": True},
        "history": [
            {"at": 1715941931 + i * 60, "event": e, "by": "system"}
            for i, e in enumerate(["created", "priced", "authorized", "captured"])
        ],
    }


def typed_dict() -> dict[str, Any]:
    """The same document with extended types (the tagged path): datetimes, Decimal, sets."""
    doc = typical_dict()
    doc["created_at"] = datetime(2024, 5, 17, 10, 32, 11, 123456, tzinfo=UTC)
    doc["totals"] = {k: Decimal(v) / 100 for k, v in doc["totals"].items()}
    for item in doc["items"]:
        item["tags"] = set(item["tags"])
    return doc


def measure(func: Callable[[], object], seconds: float = 0.4) -> float:
    """Seconds per call (best of 5 rounds)."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            func()
        elapsed = time.perf_counter() - start
        if elapsed > seconds / 5:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def bench(value: object) -> list[tuple[str, str, float, int]]:
    """(codec, "encode"/"decode", seconds per call, encoded size) for each codec."""
    codecs: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
        "workflowkit.serde": (serde.encode, serde.decode),
        "pickle": (
            lambda v: pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL),
            pickle.loads,
        ),
    }
    try:
        json.dumps(value)
    except TypeError:
        pass  # not JSON: compared with json on the plain document instead
    else:
        codecs["json"] = (lambda v: json.dumps(v).encode(), json.loads)
    rows = []
    for codec, (enc, dec) in codecs.items():
        data = enc(value)
        assert dec(data) == value
        rows.append((codec, "encode", measure(lambda e=enc: e(value)), len(data)))
        rows.append((codec, "decode", measure(lambda d=dec, b=data: d(b)), len(data)))
    return rows


def main() -> None:
    doc = typical_dict()
    print(
        f"2KB dict: a typical document, {len(json.dumps(doc))} bytes of JSON; 2KB typed: the "
        "same with datetimes, Decimals and sets (ratio to json on the plain one); 1 MiB bytes; "
        "1000 bytes: a list of 1000 values of 64 bytes each (one blob segment each)\n"
    )
    header = (
        f"{'payload':<12} {'codec':<18} {'op':<7} {'µs/op':>10} {'ops/s':>10} "
        f"{'MB/s':>9} {'size':>9} {'vs json':>7}"
    )
    print(header)
    print("-" * len(header))
    reference: dict[str, float] = {}
    payloads = (
        ("2KB dict", doc),
        ("2KB typed", typed_dict()),
        ("1MiB bytes", os.urandom(1 << 20)),
        ("1000 bytes", [os.urandom(64) for _ in range(1000)]),
    )
    for name, value in payloads:
        rows = bench(value)
        if name == "2KB dict":
            reference = {op: t for codec, op, t, _ in rows if codec == "json"}
        elif name != "2KB typed":
            reference = {}
        for codec, op, seconds, size in rows:
            ratio = f"{seconds / reference[op]:.2f}" if op in reference else "-"
            print(
                f"{name:<12} {codec:<18} {op:<7} {seconds * 1e6:>10.1f} "
                f"{1 / seconds:>10.0f} {size / seconds / 1e6:>9.1f} {size:>9} {ratio:>7}"
            )
        print()


if __name__ == "__main__":
    main()
