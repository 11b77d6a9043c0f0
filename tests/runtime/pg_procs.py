"""Worker processes and private PostgreSQL clusters for the operational tests.

Workers log to a file rather than a pipe: a pipe nobody drains fills up and freezes a worker
that logs a lot (as workers do while the database is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


@dataclass(frozen=True)
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)


def spawn(
    url: str,
    modules: Sequence[str],
    log: Path,
    *,
    lease: float = 30,
    skew: float | None = None,
    chaos: Mapping[str, str] | None = None,
    wait: bool = True,
) -> WorkerProc:
    """Start ``workflowkit worker MODULES`` (clock off by ``skew`` s, or with the ``chaos``
    knobs of ``chaos_worker.py`` set); return once it runs (unless not ``wait``)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")]),
        "WORKFLOWKIT_WORLD": url,
        "WORKFLOWKIT_LEASE_SECONDS": str(lease),
        **(chaos or {}),
    }
    if chaos is not None:
        command = [sys.executable, str(HERE / "chaos_worker.py")]
    elif skew is not None:
        command = [sys.executable, str(HERE / "skewed_worker.py"), str(skew)]
    else:
        command = [sys.executable, "-m", "workflowkit"]
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "worker", *modules], env=env, stderr=out)
    worker = WorkerProc(proc, log)
    deadline = time.monotonic() + 60
    while wait and "started on" not in worker.text():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early with {proc.returncode}:\n{worker.text()}")
        assert time.monotonic() < deadline, f"worker did not start:\n{worker.text()}"
        time.sleep(0.02)
    return worker


def stop(workers: Sequence[WorkerProc], timeout: float = 60) -> None:
    """SIGTERM every worker still running (SIGCONT first, in case it is stopped); wait for all."""
    for worker in workers:
        worker.signal(signal.SIGCONT)
        worker.signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()


async def wait_for_path(path: Path, timeout: float = 30) -> float:
    """Wait until ``path`` exists; the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        await asyncio.sleep(0.01)
    return time.monotonic()


async def wait_for_text(worker: WorkerProc, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.text():
        assert time.monotonic() < deadline, f"{text!r} not in the worker's log:\n{worker.text()}"
        await asyncio.sleep(0.02)


# -- a private PostgreSQL cluster ------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return versions[0].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Cluster:
    """A throwaway PostgreSQL server of our own, safe to restart and crash."""

    bin: Path
    data: Path
    port: int
    options: str = ""

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]  # postgres refuses root
        subprocess.run(command, check=True, capture_output=True)

    def restart(self, mode: str) -> None:
        """``pg_ctl restart -m fast`` (clean) or ``-m immediate`` (a crash, then recovery)."""
        self.pg_ctl("restart", "-m", mode, "-l", str(self.data / "server.log"))

    def outage(self, seconds: float) -> None:
        """The server crashes and stays down for ``seconds`` before it comes back."""
        self.crash()
        time.sleep(seconds)
        self.start()

    def crash(self) -> None:
        self.pg_ctl("stop", "-m", "immediate")

    def start(self) -> None:
        # With its output to a file: to pg_ctl's pipes, the server would hold them open.
        self.pg_ctl("start", "-o", self.options, "-l", str(self.data / "server.log"))


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    """initdb a cluster into a temporary directory, start it on a free port, always remove it."""
    pg_bin = _pg_bin()
    if pg_bin is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        import pytest

        pytest.skip("needs PostgreSQL's server binaries (initdb, pg_ctl)")
    root = Path(tempfile.mkdtemp(prefix="wk-pg-"))
    data = root / "data"
    port = _free_port()
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB"
    )
    cluster = Cluster(pg_bin, data, port, options)
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                *as_owner,
                str(pg_bin / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        cluster.pg_ctl("start", "-o", options, "-l", str(data / "server.log"))
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


def kill_all(workers: Sequence[WorkerProc]) -> None:
    for worker in workers:
        worker.signal(signal.SIGCONT)
        worker.signal(signal.SIGKILL)
        with contextlib.suppress(Exception):
            worker.proc.wait(10)
