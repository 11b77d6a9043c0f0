"""Hooks benchmark: from ``resume_hook`` (or a webhook POST) to the workflow continuing.

    python bench/hooks_bench.py                 # every case, about 2 minutes on 2 cores
    python bench/hooks_bench.py --quick         # smaller counts, a smoke run (under 30 s)
    python bench/hooks_bench.py --only hook,webhook,tput --json hooks.json

Each case runs in a child process of its own (``hooks_bench.py --child CASE``) on a fresh
SQLite database in a temporary directory. Latency cases resume one waiting run at a time and
time from just before ``resume_hook`` (or the POST) to the start of the step that follows the
hook in the workflow; throughput cases resume many waiting runs at once. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core_bench import Outcome, log, run_child, table
from core_common import emit, median, percentile

HERE = Path(__file__).resolve().parent
CHILD_TIMEOUT = 300.0
RESULT_TIMEOUT = 60.0  # for one resume to reach the step after the hook; an error, not a target
KEEP_SECONDS = 1800.0  # the durable sleep that keeps a "resident" run in memory
RESIDENT_EVICT_AFTER = 3600.0  # ... together with this evict_after (so the sleep is "due soon")
WEBHOOK_PREFIX = "/.well-known/workflow/v1/"


# -- sizes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    samples: int = 200  # latency: resumes timed, one waiting run each
    warmup: int = 10  # latency: resumes before timing, not counted
    runs: int = 100  # throughput: runs waiting on a hook at once
    per_run: int = 10  # throughput: payloads each of them receives
    repeats: int = 3  # throughput: measured this many times (fresh runs); the median is reported

    @classmethod
    def quick(cls) -> Sizes:
        return cls(samples=40, warmup=5, runs=20, per_run=5, repeats=1)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Sizes:
        return cls(**json.loads(text))


# -- cases ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    via: str  # "hook": resume_hook; "webhook": httpx POST to uvicorn in this process; "raw":
    # the same with a bare asyncio HTTP/1.1 client; "remote": httpx POST to uvicorn in another
    # process (no worker there)
    memory: str  # "default": configure(url); "cold": evict_after=0; "resident": kept in memory
    kind: str  # "latency" | "throughput"

    @property
    def label(self) -> str:
        how = {
            "hook": "resume_hook",
            "webhook": "webhook POST (server thread)",
            "raw": "webhook POST, bare asyncio client",
            "remote": "webhook POST (server process)",
        }[self.via]
        state = {
            "default": "defaults (evict_after=5)",
            "cold": "evicted (evict_after=0)",
            "resident": "kept in memory",
        }[self.memory]
        return f"{how}, {state}"


CASES = (
    Case("hook", "hook", "default", "latency"),
    Case("hook-cold", "hook", "cold", "latency"),
    Case("hook-resident", "hook", "resident", "latency"),
    Case("webhook", "webhook", "default", "latency"),
    Case("webhook-cold", "webhook", "cold", "latency"),
    Case("webhook-resident", "webhook", "resident", "latency"),
    Case("webhook-remote", "remote", "default", "latency"),
    Case("tput", "hook", "default", "throughput"),
    Case("tput-resident", "hook", "resident", "throughput"),
    Case("tput-webhook", "webhook", "default", "throughput"),
    Case("tput-webhook-raw", "raw", "default", "throughput"),
)
CASE_BY_KEY = {case.key: case for case in CASES}


# -- the child: workflow, step, measurements ----------------------------------------------------
#
# workflowkit is imported only in the child (the parent never starts a runtime).

# Sample number -> the future the client awaits; the step sets it to the time it started.
# Same process as the client, so both sides read the same perf_counter clock.
SIGNALS: dict[int, concurrent.futures.Future[float]] = {}


def define_workflow() -> Any:
    """The step and workflow, defined on first use so the parent needs no workflowkit."""
    from workflowkit import Request, create_hook, create_webhook, sleep, step, workflow

    @step(name="hooks_bench.mark")
    async def mark(sample: int) -> float:
        now = time.perf_counter()
        signal = SIGNALS.pop(sample, None)
        if signal is not None and not signal.done():
            signal.set_result(now)
        return now

    @workflow(name="hooks_bench.waiter")
    async def waiter(token: str | None, count: int, resident: bool) -> int:
        # A pending durable sleep that is due within evict_after keeps the run in memory.
        keeper = asyncio.ensure_future(sleep(KEEP_SECONDS)) if resident else None
        hook = create_webhook() if token is None else create_hook(token=token)
        received = 0
        async for payload in hook:
            sample = int(payload.body) if isinstance(payload, Request) else int(payload)
            await mark(sample)
            received += 1
            if received >= count:
                break
        if keeper is not None:
            keeper.cancel()
        return received

    return waiter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server_thread(port: int) -> Iterator[None]:
    """``workflowkit.asgi.app`` under uvicorn, on a thread of this process."""
    import uvicorn

    import workflowkit.asgi

    config = uvicorn.Config(
        workflowkit.asgi.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def server_process(port: int, url: str) -> Iterator[None]:
    """``workflowkit.asgi.app`` under uvicorn in another process, sharing the database file.

    That process has no embedded worker: it only records requests; this process's worker
    learns of them through the SQLite World's cross-process change polling.
    """
    import httpx

    env = {
        **os.environ,
        "WORKFLOWKIT_WORLD": url,
        "WORKFLOWKIT_EMBEDDED_WORKER": "0",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, "-m", "uvicorn", "workflowkit.asgi:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning", "--lifespan", "off"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        health = f"http://127.0.0.1:{port}{WEBHOOK_PREFIX}health"
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the uvicorn process did not start")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class BareClient:
    """Keep-alive HTTP/1.1 POSTs over asyncio streams, one connection per token.

    httpx's AsyncClient costs milliseconds of CPU per request here and, with 100 connections
    in its pool, saturates the client thread; this client shows what the server takes.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def post(self, path: str, key: str, body: bytes) -> int:
        if key not in self.streams:
            self.streams[key] = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams[key]
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        return int(lines[0].split()[1])

    async def aclose(self) -> None:
        for _, writer in self.streams.values():
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Child:
    """One case, in this process: the runtime, the client and (for webhooks) the server."""

    def __init__(self, case: Case, workdir: Path, sizes: Sizes) -> None:
        import workflowkit
        from workflowkit.runtime.runtime import Runtime

        self.case = case
        self.sizes = sizes
        self.url = f"sqlite:///{workdir / 'wk.db'}"
        self.waiter = define_workflow()
        options: dict[str, Any] = {}
        if case.memory == "cold":
            options["evict_after"] = 0.0
        elif case.memory == "resident":
            options["evict_after"] = RESIDENT_EVICT_AFTER
        self.rt: Runtime = workflowkit.configure(self.url, **options)
        self.http: Any = None  # an httpx.AsyncClient for webhook cases
        self.bare: BareClient | None = None  # for "raw" cases
        self.base = ""
        self.health = ""

    # -- resuming ---------------------------------------------------------------------------

    async def token_of(self, run_id: str) -> str:
        """The token of the run's hook, once the run has created it."""
        while True:
            hooks = await self.rt.world.list_hooks(run_id)
            if hooks:
                return hooks[0].token
            await asyncio.sleep(0.001)

    async def resume(self, token: str, sample: int) -> None:
        if self.case.via == "hook":
            from workflowkit.api import resume_hook

            await resume_hook(token, sample)
            return
        if self.bare is not None:
            path = f"{WEBHOOK_PREFIX}webhook/{token}"
            status = await self.bare.post(path, token, str(sample).encode())
            if status != 202:
                raise RuntimeError(f"webhook POST answered {status}")
            return
        response = await self.http.post(f"{self.base}{token}", content=str(sample).encode())
        if response.status_code != 202:
            raise RuntimeError(f"webhook POST answered {response.status_code}: {response.text}")

    async def is_idle(self, run_id: str) -> bool:
        """The run waits on its hook: in memory with nothing to do, or released to the store."""
        driver = self.rt.worker.drivers.get(run_id) if self.rt.worker is not None else None
        if driver is not None:
            return not (
                driver.done
                or driver.busy
                or driver.needs_load
                or driver.world_seq > driver.known_seq
                or driver.conflicts
                or driver.executor is None
            )
        record = await self.rt.world.get_run(run_id)
        return record is not None and record.owner is None

    async def wait_idle(self, run_id: str) -> None:
        while not await self.is_idle(run_id):
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.002)  # let the worker's loop and the writer settle
        while not await self.is_idle(run_id):
            await asyncio.sleep(0.001)

    def resident(self, run_id: str) -> bool:
        return self.rt.worker is not None and run_id in self.rt.worker.drivers

    # -- the two kinds of case --------------------------------------------------------------

    async def latency(self) -> dict[str, Any]:
        """One run per resume: wait until it idles on its hook, resume it, time the next step."""
        from workflowkit.api import start

        samples: list[float] = []
        calls: list[float] = []
        in_memory = 0
        total = self.sizes.warmup + self.sizes.samples
        for sample in range(total):
            token = None if self.case.via != "hook" else f"tok-{sample}"
            run = await start(self.waiter, token, 1, self.case.memory == "resident")
            token = await self.token_of(run.run_id)
            await self.wait_idle(run.run_id)
            signal: concurrent.futures.Future[float] = concurrent.futures.Future()
            SIGNALS[sample] = signal
            resident = self.resident(run.run_id)
            began = time.perf_counter()
            await self.resume(token, sample)
            returned = time.perf_counter()
            continued = await asyncio.wait_for(asyncio.wrap_future(signal), RESULT_TIMEOUT)
            await run.return_value(timeout=RESULT_TIMEOUT)
            if sample >= self.sizes.warmup:
                samples.append(continued - began)
                calls.append(returned - began)
                in_memory += resident
        return {
            "p50_ms": median(samples) * 1e3,
            "p99_ms": percentile(samples, 99) * 1e3,
            "min_ms": min(samples) * 1e3,
            "max_ms": max(samples) * 1e3,
            "call_p50_ms": median(calls) * 1e3,
            "call_p99_ms": percentile(calls, 99) * 1e3,
            "samples": len(samples),
            "in_memory_at_resume": in_memory,
        }

    async def throughput(self) -> dict[str, Any]:
        """The median of ``repeats`` measurements (``once``) on fresh runs."""
        results = [await self.once(repeat) for repeat in range(self.sizes.repeats)]
        rates = [r["resumes_per_s"] for r in results]
        middle = dict(sorted(results, key=lambda r: float(r["resumes_per_s"]))[len(results) // 2])
        middle["resumes_per_s"] = median(rates)
        middle["all_resumes_per_s"] = [round(rate) for rate in rates]
        return middle

    async def once(self, repeat: int) -> dict[str, Any]:
        """``runs`` runs wait on a hook; fire ``per_run`` rounds of resumes at all of them."""
        from workflowkit.api import start

        n, k = self.sizes.runs, self.sizes.per_run
        resident = self.case.memory == "resident"
        tokens: list[str | None] = [
            None if self.case.via != "hook" else f"tput-{repeat}-{i}" for i in range(n)
        ]
        runs = await asyncio.gather(*(start(self.waiter, t, k, resident) for t in tokens))
        ready = await asyncio.gather(*(self.token_of(run.run_id) for run in runs))
        await asyncio.gather(*(self.wait_idle(run.run_id) for run in runs))
        in_memory = sum(self.resident(run.run_id) for run in runs)
        began = time.perf_counter()
        for round_ in range(k):
            await asyncio.gather(*(self.resume(token, round_) for token in ready))
        issued = time.perf_counter() - began
        done = await asyncio.gather(*(run.return_value(timeout=RESULT_TIMEOUT) for run in runs))
        wall = time.perf_counter() - began
        if sum(done) != n * k:
            raise RuntimeError(f"the runs received {sum(done)} payloads, not {n * k}")
        return {
            "resumes_per_s": n * k / wall,
            "wall_s": wall,
            "issue_s": issued,
            "issued_per_s": n * k / issued,
            "resumes": n * k,
            "runs": n,
            "in_memory_at_start": in_memory,
        }

    # -- the HTTP floor: the same client and server, but no workflowkit work --------------

    async def get_health(self) -> None:
        response = await self.http.get(f"{self.health}")
        if response.status_code != 200:
            raise RuntimeError(f"health answered {response.status_code}")

    async def http_floor(self) -> dict[str, Any]:
        """What the HTTP round trip alone costs: GET the health endpoint the same way."""
        if self.case.kind == "latency":
            times: list[float] = []
            for i in range(self.sizes.warmup + self.sizes.samples):
                began = time.perf_counter()
                await self.get_health()
                if i >= self.sizes.warmup:
                    times.append(time.perf_counter() - began)
            return {
                "http_floor_p50_ms": median(times) * 1e3,
                "http_floor_p99_ms": percentile(times, 99) * 1e3,
            }
        n, k = self.sizes.runs, self.sizes.per_run
        began = time.perf_counter()
        for _ in range(k):
            await asyncio.gather(*(self.get_health() for _ in range(n)))
        return {"http_floor_per_s": n * k / (time.perf_counter() - began)}

    async def run(self) -> dict[str, Any]:
        measure: Callable[[], Awaitable[dict[str, Any]]] = (
            self.latency if self.case.kind == "latency" else self.throughput
        )
        if self.case.via == "hook":
            return await measure()
        import httpx

        port = free_port()
        self.base = f"http://127.0.0.1:{port}{WEBHOOK_PREFIX}webhook/"
        self.health = f"http://127.0.0.1:{port}{WEBHOOK_PREFIX}health"
        os.environ["WORKFLOWKIT_BASE_URL"] = f"http://127.0.0.1:{port}"
        serve = server_process(port, self.url) if self.case.via == "remote" else server_thread(port)
        limits = httpx.Limits(max_connections=self.sizes.runs, max_keepalive_connections=None)
        with serve:
            async with httpx.AsyncClient(timeout=RESULT_TIMEOUT, limits=limits) as client:
                self.http = client
                if self.case.via == "raw":
                    self.bare = BareClient(port)
                try:
                    result = await measure()
                finally:
                    if self.bare is not None:
                        await self.bare.aclose()
                        self.bare = None
                result.update(await self.http_floor())
                return result


def child_main(key: str, workdir: Path, sizes: Sizes) -> None:
    import workflowkit

    workdir.mkdir(parents=True, exist_ok=True)
    case = CASE_BY_KEY[key]

    async def go() -> dict[str, Any]:
        return await Child(case, workdir, sizes).run()

    result = asyncio.run(go())
    result["engine"] = f"workflowkit {workflowkit.__version__}"
    emit(result)
    workflowkit.shutdown()


# -- the parent -------------------------------------------------------------------------------


def fmt(value: Any, digits: int) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "—"


def report(sizes: Sizes, results: dict[str, Outcome]) -> str:
    rows: list[list[str]] = []
    for key, outcome in results.items():
        case = CASE_BY_KEY[key]
        v = outcome.values
        if outcome.error:
            rows.append([key, case.label, "error", "", "", ""])
        elif case.kind == "latency":
            resident = f"{v.get('in_memory_at_resume', 0)}/{v.get('samples', 0)}"
            row = [key, case.label, fmt(v.get("p50_ms"), 2), fmt(v.get("p99_ms"), 2), "", resident]
            rows.append(row)
        else:
            resident = f"{v.get('in_memory_at_start', 0)}/{v.get('runs', 0)}"
            rows.append([key, case.label, "", "", fmt(v.get("resumes_per_s"), 0), resident])
    headers = ["case", "resumed by, run state", "median ms", "p99 ms", "resumes/s", "in memory"]
    out = [
        f"Latency: {sizes.samples} resumes (after {sizes.warmup} untimed), one waiting run each, "
        "from just before the resume to the start of the step after the hook.",
        f"Throughput: {sizes.runs} runs waiting on a hook, {sizes.per_run} payloads each, "
        "sent in rounds of concurrent resumes; resumes/s until every run has finished.",
        "in memory = runs still held by the worker (not evicted to the store) when resumed.",
        "",
        table(headers, rows, right={2, 3, 4, 5}),
        "",
        "Details (every number each child reported; [its wall time]):",
    ]
    for key, outcome in results.items():
        if outcome.error:
            out.append(f"  ({key}) ERROR {outcome.error}")
            continue
        extras = ", ".join(
            f"{k}={v:,.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in outcome.values.items()
            if k != "engine"
        )
        out.append(f"  ({key}) [{outcome.seconds:.1f} s]: {extras}")
    return "\n".join(out)


def parse_cases(text: str | None) -> list[str]:
    if not text:
        return [case.key for case in CASES]
    wanted = {c.strip().lower() for c in text.split(",") if c.strip()}
    unknown = wanted - set(CASE_BY_KEY)
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}; pick from {','.join(CASE_BY_KEY)}")
    return [case.key for case in CASES if case.key in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="workflowkit hooks benchmark: resume latency and throughput; see README.md"
    )
    parser.add_argument("--only", help=f"comma-separated cases among {','.join(CASE_BY_KEY)}")
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    parser.add_argument("--workdir", type=Path, help="where the databases go (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--json", type=Path, help="also write every raw number to this file")
    parser.add_argument("--child", choices=sorted(CASE_BY_KEY), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    sizes = Sizes.quick() if args.quick else Sizes()
    if args.child:
        if args.workdir is None:
            parser.error("--child needs --workdir")
        child_main(args.child, args.workdir.resolve(), Sizes.from_json(args.sizes or "{}"))
        return 0

    cases = parse_cases(args.only)
    root = (args.workdir or Path(tempfile.mkdtemp(prefix="workflowkit-hooks-bench-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results: dict[str, Outcome] = {}
    try:
        for key in cases:
            log(f"[{key}] ...")
            argv_child = [sys.executable, str(HERE / "hooks_bench.py"), "--child", key]
            argv_child += ["--workdir", str(root / key), "--sizes", sizes.to_json()]
            outcome = run_child(argv_child, timeout=CHILD_TIMEOUT)
            status = f"error: {outcome.error.splitlines()[0]}" if outcome.error else "ok"
            log(f"[{key}] {status} ({outcome.seconds:.1f} s)")
            results[key] = outcome
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)

    print(report(sizes, results))
    kept = f"; databases kept in {root}" if args.keep or args.workdir else ""
    print(f"\nTotal benchmark time: {time.perf_counter() - began:.0f} s{kept}")
    if args.json is not None:
        raw = {
            "sizes": asdict(sizes),
            "results": {
                key: {"values": o.values, "error": o.error, "seconds": o.seconds}
                for key, o in results.items()
            },
        }
        args.json.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    return 1 if any(o.error for o in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
