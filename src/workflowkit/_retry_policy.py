"""Retry policies of steps: ``Retry``, and the rule that picks the delay before a retry.

A policy is a value, checked when it is made (``StepOptionsError`` naming the option), so a
mistake shows where the step is defined rather than at its first failure. The decision
after a failed attempt is made once, on the worker that ran the attempt, and recorded in
the ``step_retrying`` event (its ``retry_at``): replay reads it back and never recomputes
it, so jitter drawn here can never make a replay differ.

Order of precedence after a failed attempt (``next_delay``):

1. ``FatalError`` (and the errors that are fatal by nature: ``SerializationError``,
   ``StreamClosedError``) and the policy's ``non_retryable`` types: no retry.
2. The policy's attempts are used up: no retry.
3. ``RetryableError(retry_after=...)``: exactly that delay, no backoff, no jitter.
4. Otherwise the policy's delay: ``initial * backoff ** (n - 1)``, capped at
   ``max_interval``, then less up to ``jitter`` of it at random.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .durations import Duration, parse_duration
from .errors import (
    FatalError,
    RetryableError,
    SerializationError,
    StepOptionsError,
    StreamClosedError,
)

steps_log = logging.getLogger("workflowkit.steps")

# Errors no retry can fix: the value cannot be stored, or the stream is gone.
_FATAL = (FatalError, SerializationError, StreamClosedError)
# Temporal's default: a cap of 100 times the first delay keeps a long retry series bounded.
_DEFAULT_CAP_FACTOR = 100.0


@dataclass(frozen=True, slots=True)
class Retry:
    """How a failing step is retried: ``@step(retry=Retry(attempts=6, initial="1s"))``.

    ``attempts``: how many times the step runs at most, the first included (>= 1).
    ``initial``: the delay before the first retry (a duration: ``"1s"``, ``2.5``,
    ``timedelta``). ``backoff``: each next delay is this many times the previous (>= 1; 1 is
    a fixed delay). ``max_interval``: no delay is longer (default: 100 times ``initial``).
    ``jitter``: from 0 to 1, how much of each delay may be taken off at random, so steps
    that failed together do not retry together (``True`` is 1, Celery's full jitter).
    ``non_retryable``: exception types that fail the step at once, like ``FatalError``.
    """

    attempts: int = 4
    initial: Duration = 1.0
    backoff: float = 2.0
    max_interval: Duration | None = None
    jitter: float | bool = 0.0
    non_retryable: tuple[type[BaseException], ...] = ()
    # In seconds, parsed once here rather than per failure.
    initial_seconds: float = field(init=False, repr=False, compare=False)
    max_interval_seconds: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise StepOptionsError(
                f"Retry(attempts=...) takes an int, the most times the step runs (>= 1), "
                f"not {self.attempts!r}"
            )
        if self.attempts < 1:
            raise StepOptionsError(
                f"Retry(attempts={self.attempts}): the step runs at least once; use "
                "attempts=1 for no retries"
            )
        initial = _seconds("initial", self.initial)
        if isinstance(self.backoff, bool) or not isinstance(self.backoff, int | float):
            raise StepOptionsError(f"Retry(backoff=...) takes a number >= 1, not {self.backoff!r}")
        if not (1.0 <= self.backoff < math.inf):
            raise StepOptionsError(
                f"Retry(backoff={self.backoff}): delays must not shrink; use a number >= 1 "
                "(1 for a fixed delay, 2 to double each time)"
            )
        cap = (
            initial * _DEFAULT_CAP_FACTOR
            if self.max_interval is None
            else _seconds("max_interval", self.max_interval)
        )
        if cap < initial:
            raise StepOptionsError(
                f"Retry(max_interval={self.max_interval!r}) is shorter than "
                f"initial={self.initial!r}; the cap must be at least the first delay"
            )
        jitter = float(self.jitter) if isinstance(self.jitter, bool | int | float) else math.nan
        if not (0.0 <= jitter <= 1.0):
            raise StepOptionsError(
                f"Retry(jitter={self.jitter!r}) takes a fraction from 0 to 1 (or True for 1)"
            )
        types = self.non_retryable
        if isinstance(types, type):
            types = (types,)  # a lone class is a common slip for a one-class tuple
        if not isinstance(types, tuple | list | frozenset | set) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in types
        ):
            raise StepOptionsError(
                f"Retry(non_retryable=...) takes a tuple of exception classes, not {types!r}"
            )
        object.__setattr__(self, "non_retryable", tuple(types))
        object.__setattr__(self, "jitter", jitter)
        object.__setattr__(self, "initial_seconds", initial)
        object.__setattr__(self, "max_interval_seconds", cap)

    def retries(self, error: BaseException) -> bool:
        """Whether ``error`` may be retried at all (attempts left aside)."""
        return not isinstance(error, _FATAL) and not isinstance(error, self.non_retryable)

    def delay(self, attempt: int, draw: float = 0.0) -> float:
        """Seconds before the attempt after failed attempt number ``attempt`` (from 1).

        ``draw`` is a number in [0, 1) drawn by the caller; with ``jitter`` set, that share
        of ``jitter`` is taken off the delay.
        """
        exponent = max(0, attempt - 1)
        try:
            raw = self.initial_seconds * self.backoff**exponent
        except OverflowError:
            raw = math.inf
        base = min(raw, self.max_interval_seconds)
        return base * (1.0 - float(self.jitter) * draw)


def fixed_retry(max_retries: int) -> Retry:
    """The short form ``@step(max_retries=n)``: n retries, one second apart (the reference's
    behaviour)."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise StepOptionsError(
            f"@step(max_retries=...) takes an int >= 0, how many times a failing step is "
            f"retried, not {max_retries!r}"
        )
    return Retry(attempts=max_retries + 1, initial=1.0, backoff=1.0, max_interval=1.0)


def next_delay(
    policy: Retry, error: BaseException, attempt: int, now: float, draw: float
) -> float | None:
    """Seconds until the next attempt after ``attempt`` failed with ``error``; None: the step
    fails now. ``now`` is the World's clock (for a ``retry_after`` datetime)."""
    if not policy.retries(error) or attempt >= policy.attempts:
        return None
    if isinstance(error, RetryableError) and error.retry_after is not None:
        try:
            return _retry_after(error.retry_after, now)
        except (TypeError, ValueError, OverflowError) as exc:
            # The attempt must still be recorded, or its run would wait for it for ever.
            steps_log.warning(
                "RetryableError(retry_after=%r) ignored (%s): retrying after the step's "
                "policy delay instead",
                error.retry_after,
                exc,
            )
    return policy.delay(attempt, draw)


def _retry_after(after: float | str | timedelta | datetime, now: float) -> float:
    if isinstance(after, datetime):
        if after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        return max(0.0, after.timestamp() - now)
    if isinstance(after, timedelta | str):
        return parse_duration(after)
    return max(0.0, float(after))


def step_timeout(value: Duration | None) -> float | None:
    """``@step(timeout=...)`` in seconds (None: no timeout), checked."""
    if value is None:
        return None
    seconds = _seconds("timeout", value, owner="@step")
    if seconds <= 0:
        raise StepOptionsError(f"@step(timeout={value!r}) must be longer than zero")
    return seconds


def _seconds(name: str, value: Duration, owner: str = "Retry") -> float:
    try:
        seconds = parse_duration(value)
    except (TypeError, ValueError) as exc:
        raise StepOptionsError(
            f"{owner}({name}={value!r}): {exc}; write e.g. '30s', '5 minutes', 2.5 or a timedelta"
        ) from None
    if math.isinf(seconds):
        raise StepOptionsError(f"{owner}({name}={value!r}) must be finite")
    return seconds


#: What a step without ``retry=`` or ``max_retries=`` gets, unless the worker has a default
#: of its own (``workflowkit.configure(retry=...)``): three retries, one second apart.
DEFAULT_RETRY = fixed_retry(3)
