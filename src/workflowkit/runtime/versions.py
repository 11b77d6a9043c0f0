"""Code versions: which code a run started under, and which code found it diverged.

A version is ``WORKFLOWKIT_DEPLOYMENT`` when set (one name for a whole deploy), else a digest
of the workflow function's source and of the module that defines it: a change to the
workflow's code, or to the steps and helpers beside it, makes a new version, which is what
lets a worker with changed code retry runs that older code parked.
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
    digest = hashlib.sha256(_source(fn).encode())
    module = inspect.getmodule(fn)
    if module is not None:
        digest.update(_source(module).encode())
    return "src-" + digest.hexdigest()[:12]


def _source(code: Any) -> str:
    try:
        return inspect.getsource(code)
    except (OSError, TypeError):  # no source (a REPL, a frozen app): the name must do
        return f"{getattr(code, '__module__', '')}:{getattr(code, '__qualname__', code)}"
