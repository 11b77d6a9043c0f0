"""Status colours in the CLI's tables: on a terminal only, never with NO_COLOR, --no-color
or --json. A real pseudo-terminal stands in for the user's terminal."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

import pytest

from conftest import Seeded
from workflowkit.cli.main import main

GREEN, RED, YELLOW, RESET = "\033[32m", "\033[31m", "\033[33m", "\033[0m"


@dataclass(frozen=True)
class Terminal:
    master: int
    stream: TextIO

    def run(self, *argv: str) -> str:
        """Run the CLI with stdout on this terminal; what it printed there."""
        with contextlib.redirect_stdout(self.stream):
            assert main(list(argv)) == 0
        self.stream.flush()
        chunks = []
        while select.select([self.master], [], [], 0.2)[0]:
            chunks.append(os.read(self.master, 65536))
        # The terminal turns "\n" into "\r\n".
        return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Terminal]:
    monkeypatch.delenv("NO_COLOR", raising=False)
    master, slave = pty.openpty()
    with os.fdopen(slave, "w", encoding="utf-8") as stream:
        yield Terminal(master, stream)
    os.close(master)


def strip(text: str) -> str:
    for code in (GREEN, RED, YELLOW, RESET):
        text = text.replace(code, "")
    return text


def test_statuses_coloured_on_a_terminal(terminal: Terminal, seeded: Seeded) -> None:
    out = terminal.run("--world", seeded.url, "inspect", "runs")
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert f"{GREEN}completed{RESET}" in lines[seeded.completed]
    assert f"{RED}failed{RESET}" in lines[seeded.failed]
    assert f"{YELLOW}running{RESET}" in lines[seeded.sleeping]
    # Colour codes do not upset the alignment: the next column starts where its header does.
    plain = [strip(line) for line in out.splitlines() if line]
    at = plain[0].index("CREATED")
    for row in plain[1:]:
        assert row[at - 2 : at] == "  " and row[at] != " ", row

    out = terminal.run("--world", seeded.url, "inspect", "run", seeded.failed)
    assert f"{RED}failed{RESET}" in next(x for x in out.splitlines() if x.startswith("status:"))


@pytest.mark.parametrize(
    "argv_extra, env",
    [(["--no-color"], {}), ([], {"NO_COLOR": "1"})],
    ids=["--no-color", "NO_COLOR"],
)
def test_colour_can_be_turned_off(
    terminal: Terminal,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    argv_extra: list[str],
    env: dict[str, str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = terminal.run(*argv_extra, "--world", seeded.url, "inspect", "runs")
    assert "completed" in out and "\033[" not in out


def test_json_never_coloured(terminal: Terminal, seeded: Seeded) -> None:
    out = terminal.run("--world", seeded.url, "inspect", "runs", "--json")
    assert "\033[" not in out
    assert {r["status"] for r in json.loads(out)["runs"]} >= {"completed", "failed"}


def test_no_colour_when_not_a_terminal(
    seeded: Seeded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["--world", seeded.url, "inspect", "steps", seeded.completed]) == 0
    out = capsys.readouterr().out
    assert "completed" in out and "\033[" not in out
