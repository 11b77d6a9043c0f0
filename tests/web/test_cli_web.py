"""``workflowkit web``: what it refuses, and a real server started by the command."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from web_seed import Seeded, free_port

from workflowkit.cli.main import main


def test_refuses_a_public_address_without_a_token(
    seeded: Seeded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORKFLOWKIT_WEB_TOKEN", raising=False)
    assert main(["--world", seeded.url, "web", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve the dashboard on 0.0.0.0 without an access token" in err


def test_needs_uvicorn(
    seeded: Seeded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed
    assert main(["web", "--world", seeded.url]) == 1
    assert "pip install 'workflowkit[web]'" in capsys.readouterr().err


def test_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["web", "--world", f"sqlite:///{tmp_path / 'nope.db'}"]) == 1
    assert "no workflowkit database at" in capsys.readouterr().err


def _serve(*argv: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "workflowkit", *argv, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(url + "/static/dashboard.css", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                out = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"workflowkit web did not start: {out}") from None
            time.sleep(0.05)


@pytest.fixture
def served(seeded: Seeded) -> Iterator[str]:
    yield from _serve("--world", seeded.url, "web")


def test_serves_the_dashboard(served: str, seeded: Seeded) -> None:
    page = httpx.get(served + "/", headers={"accept": "text/html"})
    assert page.status_code == 200 and seeded.order in page.text
    # Without a token only loopback host names are served (no DNS rebinding).
    rebound = httpx.get(served + "/", headers={"host": "attacker.example:80"})
    assert rebound.status_code == 400
    assert httpx.get(served.replace("127.0.0.1", "localhost") + "/api/runs").status_code == 200


def test_a_taken_port_is_one_line_and_exit_1(
    seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["--world", seeded.url, "web", "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no banner for a dashboard that never served
    assert err.startswith(f"workflowkit web: cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1


def test_ctrl_c_stops_it_with_the_interrupted_exit_code(seeded: Seeded) -> None:
    port = free_port()
    command = [sys.executable, "-m", "workflowkit", "--world", seeded.url, "web"]
    process = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.PIPE)
    try:
        _wait_until_serving(f"http://127.0.0.1:{port}", process)
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 130  # as the exit-code table says
    finally:
        if process.poll() is None:
            process.kill()
