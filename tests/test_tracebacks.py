"""Tracebacks shown to people leave workflowkit's own frames out, wherever it is installed."""

from __future__ import annotations

from pathlib import Path

import workflowkit
from workflowkit._tracebacks import user_frames

PACKAGE = Path(workflowkit.__file__).resolve().parent

TRACE = f'''Traceback (most recent call last):
  File "{PACKAGE}/runtime/steps.py", line 71, in run_attempt
    value = await _call(attempt.step, tuple(args), dict(kwargs))
            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/app/orders.py", line 17, in charge
    raise FatalError(f"card declined: {{order}}")
workflowkit.errors.FatalError: card declined: o-1

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/venv/lib/python3.12/site-packages/workflowkit/runtime/executor.py", line 300, in run
    result = await body()
  File "/srv/app/orders.py", line 30, in checkout
    return await charge(order)
ValueError: could not check out
'''


def test_frames_inside_workflowkit_are_left_out() -> None:
    shown = user_frames(TRACE)
    assert "runtime/steps.py" not in shown and "_call(attempt" not in shown
    assert "site-packages/workflowkit" not in shown and "await body()" not in shown
    assert shown.splitlines() == [
        "Traceback (most recent call last):",
        '  File "/srv/app/orders.py", line 17, in charge',
        '    raise FatalError(f"card declined: {order}")',
        "workflowkit.errors.FatalError: card declined: o-1",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        '  File "/srv/app/orders.py", line 30, in checkout',
        "    return await charge(order)",
        "ValueError: could not check out",
    ]


def test_a_traceback_without_workflowkit_frames_is_unchanged() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/a/workflowkit_demo/x.py", line 1, in f\n'
        "    g()\n"
        "KeyError: 1\n"
    )
    assert user_frames(text) == text
    assert user_frames("") == ""
