"""A worker in another PID namespace with the same hostname (a container with host
networking, a fixed hostname, a ``hostNetwork`` pod) on the same SQLite file: its runs are
its own until their leases run out. Issue 25 item 3 reproduced it with ``unshare --pid
--fork --mount-proc workflowkit worker``: runs moved at once, a step ran in both workers.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_procs import HERE, SRC, WorkerProc, kill_all, spawn, stop, wait_for_text

import workflowkit
from workflowkit.api import start

# Inside the namespace the worker gets this pid plus one: far beyond this host's pids (no
# process outside has it), so a worker outside that asked the pid would think it dead.
NAMESPACE_LAST_PID = 4_000_000


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def spawn_in_pid_namespace(url: str, modules: list[str], log: Path) -> WorkerProc:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")]),
        "WORKFLOWKIT_WORLD": url,
        "WORKFLOWKIT_LEASE_SECONDS": "30",
    }
    worker = shlex.join([sys.executable, "-m", "workflowkit", "worker", *modules])
    # sh is the namespace's pid 1; the worker, its child, takes the pid after the last one.
    script = f"echo {NAMESPACE_LAST_PID} > /proc/sys/kernel/ns_last_pid 2>/dev/null; {worker}"
    command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stderr=out)
    return WorkerProc(proc, log)


@pytest.fixture
def app() -> Iterator[object]:
    if not unshare_works():
        pytest.skip("needs unshare --pid (root, or user namespaces)")
    sys.path.insert(0, str(HERE))
    try:
        import worker_app

        yield worker_app
    finally:
        workflowkit.shutdown()
        sys.path.remove(str(HERE))


@pytest.mark.slow
async def test_a_worker_in_another_pid_namespace_keeps_its_runs(
    app: object, tmp_path: Path
) -> None:
    import worker_app

    url = f"sqlite:///{tmp_path / 'wk.db'}"
    workflowkit.configure(url, embedded_worker=False)
    work = tmp_path / "work"
    work.mkdir()
    runs = [await start(worker_app.fan_out, str(work), f"r{i}", 2, 4.0) for i in range(4)]
    contained = spawn_in_pid_namespace(url, ["worker_app"], tmp_path / "contained.log")
    workers = [contained]
    try:
        await wait_for_text(contained, "started on", timeout=60)
        deadline = time.monotonic() + 30
        while len(list(work.glob("sq-*"))) < 8:  # every step of every run is under way
            assert contained.proc.poll() is None, contained.text()
            assert time.monotonic() < deadline, "the contained worker did not start the steps"
            await asyncio.sleep(0.02)
        pids = {int(path.name.split(".")[1]) for path in work.glob("sq-*")}
        if any(Path(f"/proc/{pid}").exists() for pid in pids):
            pytest.skip("could not give the contained worker a pid that names nothing here")
        # Same host, same hostname, same file; the contained worker's pid names nothing here.
        workers.append(spawn(url, ["worker_app"], tmp_path / "outside.log"))
        results = [await run.return_value(timeout=60) for run in runs]
        assert results == [[0, 1]] * 4
        marks = sorted(path.name.split(".")[0] for path in work.glob("sq-*"))
        assert marks == sorted(f"sq-r{i}-{j}" for i in range(4) for j in range(2))  # once each
        assert "taken over" not in workers[1].text()
        stop(workers[1:])
    finally:
        contained.signal(signal.SIGKILL)  # unshare's --kill-child ends the whole namespace
        kill_all(workers)
