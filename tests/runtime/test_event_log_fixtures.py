"""Event logs recorded by earlier versions must still replay, with the same outcome."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path

import fixture_workflows  # noqa: F401 - registers the pinned workflows
import pytest

from workflowkit import serde
from workflowkit.registry import REGISTRY
from workflowkit.runtime.executor import RunExecutor
from workflowkit.worlds.records import Event, EventType

LOGS = sorted((Path(__file__).parents[1] / "fixtures" / "event_logs").glob("*.json"))


def load(path: Path) -> tuple[str, str, list[Event]]:
    data = json.loads(path.read_text())
    events = [
        Event(
            run_id=data["run_id"],
            seq=e["seq"],
            event_id=e["event_id"],
            type=EventType(e["type"]),
            correlation_id=e["correlation_id"],
            payload=None if e["payload"] is None else base64.b64decode(e["payload"]),
            attrs=e["attrs"],
            created_at=datetime.fromisoformat(e["created_at"]),
        )
        for e in data["events"]
    ]
    return data["workflow"], data["run_id"], events


def test_fixtures_exist() -> None:
    assert len(LOGS) >= 2


@pytest.mark.parametrize("path", LOGS, ids=[p.stem for p in LOGS])
def test_recorded_log_replays(path: Path) -> None:
    name, run_id, events = load(path)
    workflow = REGISTRY.workflow(name)
    assert workflow is not None
    executor = RunExecutor(run_id, workflow, events[0].payload or b"")
    effects = executor.activate(events, now=events[-1].created_at.timestamp())
    assert executor.divergence is None
    logged_end = [e for e in events if e.type is EventType.RUN_COMPLETED]
    if logged_end:
        (completed,) = [e for e in effects.events if e.type is EventType.RUN_COMPLETED]
        assert completed.payload is not None and logged_end[0].payload is not None
        assert serde.decode(completed.payload) == serde.decode(logged_end[0].payload)
    else:
        assert not executor.finished
        assert effects.events == []  # nothing new: replay ends where the log ends
        pending = executor.pending()
        assert (len(pending.steps), len(pending.timers), len(pending.hooks)) == (0, 1, 0)
    executor.discard()
