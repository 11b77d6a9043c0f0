"""What encryption at rest costs: case (b) of the core benchmark (per-step overhead of a
1000-step chain) with payload encryption off and on, in the same run, plus sealing and
opening one payload of typical sizes.

Run: ``.venv/bin/python bench/encryption_bench.py [--rounds 3] [--quick]``

Each (b) measurement is ``core_cases.py b`` in a child process of its own on a fresh SQLite
file (see README.md); "on" is the same with ``WORKFLOWKIT_ENCRYPTION_KEYS`` set, so every
payload the run stores (inputs, results, the run's input and result) is sealed with
AES-256-GCM and opened again on the way back. The modes alternate, ``--rounds`` times each,
and the median of the rounds is reported, so a slow moment of a shared machine lands on both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from core_common import RESULT_PREFIX, Sizes  # noqa: E402

from workflowkit import serde  # noqa: E402
from workflowkit.encryption import EncryptionKeys, generate_key  # noqa: E402


def run_b(workdir: Path, sizes: Sizes, keys: str | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOWKIT_")}
    if keys is not None:
        env["WORKFLOWKIT_ENCRYPTION_KEYS"] = keys
    argv = [sys.executable, str(HERE / "core_cases.py"), "b", "--workdir", str(workdir)]
    argv += ["--sizes", sizes.to_json()]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    raise SystemExit(f"case (b) failed:\n{done.stderr[-3000:]}")


def per_payload(keys: EncryptionKeys) -> list[tuple[str, float, float]]:
    """µs to seal and to open one payload, for a few sizes of encoded payload."""
    values = {
        "an int (step result)": 42,
        "a 2 KB order": {"items": [{"sku": f"SKU-{i}", "qty": i} for i in range(60)]},
        "64 KB of bytes": os.urandom(64 * 1024),
    }
    rows = []
    for name, value in values.items():
        data = serde.encode(value)
        n = 20000 if len(data) < 10000 else 2000
        began = time.perf_counter()
        for _ in range(n):
            sealed = keys.seal(data, "wrun_01J0000000000000000000000")
        seal_us = (time.perf_counter() - began) / n * 1e6
        began = time.perf_counter()
        for _ in range(n):
            keys.open(sealed, ("wrun_01J0000000000000000000000",))
        open_us = (time.perf_counter() - began) / n * 1e6
        rows.append(
            (f"{name}, {len(data)} B encoded (+{len(sealed) - len(data)} B)", seal_us, open_us)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each mode")
    parser.add_argument("--quick", action="store_true", help="200-step chains, 1 round")
    args = parser.parse_args()
    sizes = Sizes.quick() if args.quick else Sizes()
    rounds = 1 if args.quick else args.rounds
    keys = f"k1:{generate_key()}"
    found: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="wk-enc-bench-") as tmp:
        for i in range(rounds):
            for mode in ("off", "on"):
                workdir = Path(tmp) / f"{mode}-{i}"
                result = run_b(workdir, sizes, keys if mode == "on" else None)
                found[mode].append(result)
                print(
                    f"round {i + 1} {mode:>3}: {result['per_step_us']:.1f} µs/step wall, "
                    f"{result['cpu_us_per_step']:.1f} µs/step CPU",
                    flush=True,
                )
    print()
    print(f"(b) per-step overhead, {sizes.chain_steps}-step chain, median of {rounds} round(s):")
    for field, what in (("per_step_us", "wall"), ("cpu_us_per_step", "CPU ")):
        off = statistics.median(r[field] for r in found["off"])
        on = statistics.median(r[field] for r in found["on"])
        print(
            f"  {what}  off {off:7.1f} µs/step   on {on:7.1f} µs/step   "
            f"({on - off:+.1f} µs, {on / off - 1:+.1%})"
        )
    print()
    print("one payload, AES-256-GCM (this process):")
    for name, seal_us, open_us in per_payload(EncryptionKeys.parse(keys)):
        print(f"  {name}: seal {seal_us:.2f} µs, open {open_us:.2f} µs")


if __name__ == "__main__":
    main()
