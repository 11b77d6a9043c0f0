"""Stored rows to records, for every World: one mapper per record, given how the World's
time columns read back (``Moment``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .._compact_json import compact_encoder
from ..errors import CorruptDataError
from .records import (
    CatchUp,
    ChunkKind,
    Divergence,
    Event,
    EventType,
    HookRecord,
    OpenStep,
    Overlap,
    RunOptions,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepRecord,
    StepStatus,
    StreamChange,
    StreamChunk,
    StreamInfo,
    StreamPage,
    WaitRecord,
    WorkerInfo,
    WorkerRecord,
)

# A time column's value -> an aware UTC datetime (Unix seconds in SQLite, timestamptz in
# PostgreSQL).
Moment = Callable[[Any], datetime]

# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODE_ATTRS = compact_encoder(ensure_ascii=True, allow_nan=True)


def dump_attrs(attrs: Mapping[str, Any]) -> str | None:
    if not attrs:
        return None
    if len(attrs) == 1:  # ``{"attempt": 1}`` and the like, on every step: encode each once
        ((key, value),) = attrs.items()
        if value.__class__ in _SCALARS:
            try:
                return _ONE_ATTR[key, value]
            except KeyError:
                text = _ONE_ATTR[key, value] = _ENCODE_ATTRS(attrs)
                if len(_ONE_ATTR) > 1024:
                    _ONE_ATTR.clear()
                return text
    return _ENCODE_ATTRS(attrs)


_SCALARS = frozenset({int, str})  # (bool and float would share keys with int: not cached)
_ONE_ATTR: dict[tuple[str, Any], str] = {}


def load_attrs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CorruptDataError(f"stored event attributes are not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CorruptDataError("stored event attributes are not a JSON object")
    return value


# Enum lookups by value, without the cost of calling the enum class (this is per step).
_RUN_STATUS = {str(s): s for s in RunStatus}
_STEP_STATUS = {str(s): s for s in StepStatus}


def run_status(value: str) -> RunStatus:
    found = _RUN_STATUS.get(value)
    if found is None:
        raise CorruptDataError(f"unknown run status {value!r} in the store")
    return found


def step_status(value: str) -> StepStatus:
    found = _STEP_STATUS.get(value)
    if found is None:
        raise CorruptDataError(f"unknown step status {value!r} in the store")
    return found


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _maybe(moment: Moment, value: Any) -> datetime | None:
    return None if value is None else moment(value)


def run_from_row(row: Sequence[Any], moment: Moment) -> RunRecord:
    """A row of ``RUN_COLUMNS``."""
    return RunRecord(
        run_id=row[0],
        workflow_name=row[1],
        status=run_status(row[2]),
        created_at=moment(row[3]),
        started_at=_maybe(moment, row[4]),
        completed_at=_maybe(moment, row[5]),
        updated_at=moment(row[6]),
        last_seq=int(row[7] or 0),
        owner=row[8],
        wake_at=_maybe(moment, row[9]),
        input=bytes(row[10] or b""),
        output=_blob(row[11]),
        error=_blob(row[12]),
        options=RunOptions(
            deadline=_maybe(moment, row[13]),
            queue=row[14],
            key=row[15],
            priority=int(row[16]),
            parent_run_id=row[17],
            detached=bool(row[18]),
            forked_from=row[19],
        ),
        code_version=row[20],
        diverged=None if row[21] is None else divergence_from_json(row[21]),
    )


def divergence_from_json(text: str) -> Divergence:
    data = json.loads(text)
    return Divergence(
        int(data["position"]),
        str(data["expected"]),
        str(data["actual"]),
        str(data["message"]),
        str(data["version"]),
        datetime.fromtimestamp(float(data["at"]), UTC),
    )


def divergence_json(divergence: Divergence) -> str:
    return json.dumps(
        {
            "position": divergence.position,
            "expected": divergence.expected,
            "actual": divergence.actual,
            "message": divergence.message,
            "version": divergence.version,
            "at": divergence.at.timestamp(),
        }
    )


def step_from_row(row: Sequence[Any], moment: Moment) -> StepRecord:
    """A row of ``STEP_COLUMNS``."""
    return StepRecord(
        step_id=row[0],
        run_id=row[1],
        step_name=row[2],
        status=step_status(row[3]),
        attempt=int(row[4]),
        input=_blob(row[5]),
        output=_blob(row[6]),
        error=_blob(row[7]),
        created_at=moment(row[8]),
        started_at=_maybe(moment, row[9]),
        completed_at=_maybe(moment, row[10]),
        retry_at=_maybe(moment, row[11]),
        claimed_by=row[12],
        queued_at=_maybe(moment, row[13]),
    )


def open_step_from_row(row: Sequence[Any], moment: Moment) -> OpenStep:
    """A row of ``_sql.open_steps``."""
    return OpenStep(
        row[0],
        row[1],
        row[2],
        step_status(row[3]),
        int(row[4]),
        _maybe(moment, row[5]),
        _maybe(moment, row[6]),
    )


def wait_from_row(row: Sequence[Any], moment: Moment) -> WaitRecord:
    """A row of ``WAIT_COLUMNS``."""
    return WaitRecord(row[0], row[1], moment(row[2]), moment(row[3]), _maybe(moment, row[4]))


def hook_from_row(row: Sequence[Any], moment: Moment) -> HookRecord:
    """A row of ``HOOK_COLUMNS``."""
    return HookRecord(
        row[0],
        row[1],
        row[2],
        _blob(row[3]),
        moment(row[4]),
        bool(load_attrs(row[5]).get("webhook")),
    )


def event_from_row(row: Sequence[Any], moment: Moment, attrs_cache: dict[str, Any]) -> Event:
    """A row of ``EVENT_COLUMNS``. Long logs repeat the same few attribute texts
    (``{"attempt":1}``): ``attrs_cache`` parses each once per read."""
    try:
        kind = EventType(row[3])
    except ValueError as exc:
        raise CorruptDataError(f"unknown event type {row[3]!r} in run {row[0]}") from exc
    text = row[6]
    attrs: dict[str, Any] = {}
    if text:
        cached = attrs_cache.get(text)
        if cached is None:
            cached = attrs_cache[text] = load_attrs(text)
        attrs = cached
    return Event(row[0], row[1], row[2], kind, row[4], _blob(row[5]), attrs, moment(row[7]))


def logs_from_rows(rows: Iterable[Sequence[Any]], moment: Moment) -> dict[str, list[Event]]:
    """Rows of ``EVENT_COLUMNS`` ordered by run and seq, as each run's log."""
    logs: dict[str, list[Event]] = {}
    cache: dict[str, Any] = {}
    for row in rows:
        logs.setdefault(row[0], []).append(event_from_row(row, moment, cache))
    return logs


def stream_info_from_row(run_id: str, row: Sequence[Any], moment: Moment) -> StreamInfo:
    """A row of ``SELECT_STREAMS``."""
    closed = row[2] is not None or run_status(row[5]).terminal
    return StreamInfo(run_id, row[0], int(row[1]), closed, moment(row[3]), moment(row[4]))


def stream_change_from_row(row: Sequence[Any]) -> StreamChange:
    """A row of ``SELECT_CHANGED_STREAMS``."""
    return StreamChange(row[0], row[1], int(row[2]), row[3] is not None)


def stream_page(
    head: Sequence[Any], start: int, end: int, rows: Sequence[Sequence[Any]]
) -> StreamPage:
    """The visible chunks ``rows`` of ``[start, end)``, given the ``SELECT_STREAM_HEAD`` row."""
    length = int(head[1] or 0)
    closed = head[2] is not None or run_status(head[0]).terminal
    chunks = [StreamChunk(int(r[0]), ChunkKind(r[1]), bytes(r[2])) for r in rows]
    next_index = max(start, end)
    return StreamPage(chunks, next_index, closed and next_index >= length)


def worker_from_row(row: Sequence[Any], moment: Moment) -> WorkerRecord:
    """A row of ``SELECT_WORKERS``."""
    workflows = tuple(json.loads(row[3] or "[]"))
    info = WorkerInfo(row[0], row[1], int(row[2]), workflows, float(row[4]))
    return WorkerRecord(info, moment(row[5]), moment(row[6]))


def schedule_from_row(row: Sequence[Any], moment: Moment) -> ScheduleRecord:
    """A row of ``SCHEDULE_COLUMNS``."""
    try:
        catch_up, overlap = CatchUp(row[5]), Overlap(row[6])
    except ValueError as exc:
        raise CorruptDataError(f"schedule {row[0]!r}: {exc}") from None
    return ScheduleRecord(
        schedule_id=row[0],
        workflow_name=row[1],
        cron=row[2],
        timezone=row[3],
        input=bytes(row[4]),
        catch_up=catch_up,
        overlap=overlap,
        start_at=_maybe(moment, row[7]),
        end_at=_maybe(moment, row[8]),
        paused=bool(row[9]),
        static=bool(row[10]),
        next_tick=_maybe(moment, row[11]),
        last_tick=_maybe(moment, row[12]),
        last_run_id=row[13],
        buffered_tick=_maybe(moment, row[14]),
        created_at=moment(row[15]),
        updated_at=moment(row[16]),
    )
