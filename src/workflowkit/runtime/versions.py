"""Code versions: which code a run started under, and which code found it diverged.

A version is ``WORKFLOWKIT_DEPLOYMENT`` when set (one name for a whole deploy), else a digest
of the workflow function's source: a change to the workflow's own code makes a new version,
which is what lets a worker with changed code retry runs that older code parked.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from typing import Any

from .. import _settings


def code_version(workflow: Any) -> str:
    """The version of ``workflow`` (a ``registry.Workflow``) this process runs."""
    return _settings.deployment() or _digest(workflow.fn)


@functools.cache
def _digest(fn: Any) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # no source (a REPL, a frozen app): the name must do
        source = f"{fn.__module__}:{fn.__qualname__}"
    return "src-" + hashlib.sha256(source.encode()).hexdigest()[:12]
