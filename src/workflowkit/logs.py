"""Logging for workflow code, and one JSON object per log line.

``workflowkit.logger`` is the logger for workflow code (and steps): a ``logging``
adapter over the logger ``workflowkit.workflow`` that drops records while the run replays
its log (so each line is logged once, however often the run is evicted and resumed) and
adds the run's ids (``run_id``, ``workflow``; in a step also ``step_id``, ``step`` and
``attempt``) to each record's ``extra``. Outside a run it logs like the plain logger.

``JsonFormatter`` renders a record as one JSON object on one line: the standard fields,
every ``extra`` field, and the traceback if any. ``workflowkit worker --log-format json``
uses it; any ``logging`` handler can.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from .context import current_executor, current_step

__all__ = ["JsonFormatter", "WorkflowLogger", "logger"]


class WorkflowLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger for workflow code: quiet during replay, and tagged with the run's ids."""

    def __init__(self, base: logging.Logger) -> None:
        super().__init__(base, {})

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        executor = current_executor()
        if executor is not None and executor.replaying:
            return
        if not self.logger.isEnabledFor(level):
            return
        # One frame more than the adapter's own: records name the caller, not this method.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        msg, kwargs = self.process(msg, kwargs)
        self.logger.log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        ids = _run_ids()
        if ids:
            given = kwargs.get("extra")
            kwargs["extra"] = {**ids, **given} if given else ids
        return msg, kwargs


def _run_ids() -> dict[str, Any]:
    executor = current_executor()
    if executor is not None:
        meta = executor.metadata
        return {"run_id": meta.workflow_run_id, "step_id": None, "workflow": meta.workflow_name}
    step = current_step()
    if step is not None:
        return {
            "run_id": step.workflow.workflow_run_id,
            "step_id": step.step_id,
            "workflow": step.workflow.workflow_name,
            "step": step.step_name,
            "attempt": step.attempt,
        }
    return {}


logger = WorkflowLogger(logging.getLogger("workflowkit.workflow"))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (ISO 8601, UTC), ``level``,
    ``logger``, ``message``, then every ``extra`` field, and ``exc_info`` (the traceback
    text) when there is one. Values JSON cannot hold are rendered with ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_extra_fields(record))
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc_info"] = record.exc_text
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def _extra_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


_STANDARD = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
    }
)
