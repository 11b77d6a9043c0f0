"""``workflowkit inspect streams`` on runs that wrote to streams."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import workflowkit
from workflowkit import get_writable, step, workflow
from workflowkit.api import start
from workflowkit.cli.main import main


@step
async def report(lines: list[str]) -> None:
    out = get_writable()
    for line in lines:
        await out.write(line)
    await get_writable("metrics").write({"rows": len(lines), "blob": b"\x01"})


@workflow(name="cli.streamer")
async def streamer(lines: list[str]) -> int:
    await report(lines)
    return len(lines)


@pytest.fixture
def streamed(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'wk.db'}"
    workflowkit.configure(url, poll_interval=0.05)

    async def go() -> str:
        run = await start(streamer, ["alpha", "beta", "gamma"])
        await run.return_value(timeout=10)
        return run.run_id

    try:
        run_id = asyncio.run(go())
    finally:
        workflowkit.shutdown()
    return url, run_id


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_streams(capsys: pytest.CaptureFixture[str], streamed: tuple[str, str]) -> None:
    url, run_id = streamed
    code, out, _ = cli(capsys, "--world", url, "inspect", "streams", run_id, "--json")
    assert code == 0
    listed = json.loads(out)["streams"]
    assert [(s["namespace"], s["length"], s["closed"]) for s in listed] == [
        (None, 3, True),
        ("metrics", 1, True),
    ]
    code, out, _ = cli(capsys, "--world", url, "inspect", "streams", run_id)
    assert code == 0 and "(default)" in out and "metrics" in out and "closed" in out


def test_print_chunks(capsys: pytest.CaptureFixture[str], streamed: tuple[str, str]) -> None:
    url, run_id = streamed
    base = ("--world", url, "inspect", "streams", run_id)
    code, out, _ = cli(capsys, *base, "--default", "--start", "-2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["chunks"] == [{"index": 1, "value": "beta"}, {"index": 2, "value": "gamma"}]
    assert data["next_index"] == 3
    code, out, _ = cli(capsys, *base, "--namespace", "metrics")
    assert code == 0 and '{"rows":3,"blob":{"$bytes":1' in out
    # --follow on an ended run prints everything and returns.
    code, out, _ = cli(capsys, *base, "--default", "--follow")
    assert code == 0 and out.split() == ["0", "alpha", "1", "beta", "2", "gamma"]


def test_unknown_run(capsys: pytest.CaptureFixture[str], streamed: tuple[str, str]) -> None:
    url, _ = streamed
    code, _, err = cli(capsys, "--world", url, "inspect", "streams", "wrun_nope")
    assert code != 0 and "wrun_nope" in err and "Traceback" not in err
