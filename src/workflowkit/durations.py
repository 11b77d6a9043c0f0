"""Parsing the duration forms users write: ``"1 day"``, ``"90s"``, ``timedelta``, seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS: dict[str, float] = {
    "ms": 0.001,
    "msec": 0.001,
    "msecs": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
    "mo": 2_629_800,  # a twelfth of a year, as the reference's durations count a month
    "month": 2_629_800,
    "months": 2_629_800,
    "y": 31_557_600,
    "yr": 31_557_600,
    "yrs": 31_557_600,
    "year": 31_557_600,
    "years": 31_557_600,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*,?")

Duration = str | int | float | timedelta


def parse_duration(value: Duration) -> float:
    """Seconds in ``value``; a string may chain parts (``"1h 30m"``), a bare number is seconds."""
    if isinstance(value, bool):
        raise TypeError("a duration cannot be a bool")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_str(value)
    else:
        raise TypeError(
            f"a duration must be a str, int, float or timedelta, not {type(value).__name__}"
        )
    if seconds != seconds or seconds < 0:
        raise ValueError(f"a duration must be zero or positive, got {value!r}")
    return seconds


def _parse_str(text: str) -> float:
    pos, total, stripped = 0, 0.0, text.strip()
    if not stripped:
        raise ValueError("empty duration string")
    while pos < len(stripped):
        match = _PART.match(stripped, pos)
        if match is None or match.end() == pos:
            raise ValueError(
                f"cannot parse duration {text!r}; write e.g. '30s', '5 minutes', '1 day'"
            )
        unit = match.group(2).lower()
        if not unit:
            if pos != 0 or match.end() != len(stripped):
                raise ValueError(f"a number without a unit in {text!r}; write e.g. '1m 30s'")
            unit = "s"
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {match.group(2)!r} in duration {text!r}")
        total += float(match.group(1)) * _UNITS[unit]
        pos = match.end()
    return total


def resolve_deadline(value: Duration | datetime, now: datetime) -> datetime:
    """The moment ``value`` names, relative to ``now`` unless it is already a datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                "a datetime deadline must be timezone-aware, e.g. datetime.now(timezone.utc)"
            )
        return value.astimezone(UTC)
    return now + timedelta(seconds=parse_duration(value))
