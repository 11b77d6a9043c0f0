from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflowkit.durations import parse_duration, resolve_deadline


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1),
        ("30 seconds", 30),
        ("1m", 60),
        ("5 minutes", 300),
        ("2h", 7200),
        ("1 day", 86400),
        ("1 week", 604800),
        ("1h 30m", 5400),
        ("250ms", 0.25),
        ("1.5h", 5400),
        ("10", 10),
        ("2 DAYS", 172800),
    ],
)
def test_duration_strings(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_other_forms() -> None:
    assert parse_duration(timedelta(minutes=2)) == 120
    assert parse_duration(3) == 3
    assert parse_duration(0.5) == 0.5


@pytest.mark.parametrize("bad", ["", "soon", "5 fortnights", "-1s", "1s2"])
def test_bad_strings_say_what_to_write(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_negative_and_wrong_types() -> None:
    with pytest.raises(ValueError):
        parse_duration(-1)
    with pytest.raises(TypeError):
        parse_duration(True)
    with pytest.raises(TypeError):
        parse_duration([1])  # type: ignore[arg-type]


def test_deadlines() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert resolve_deadline("1 day", now) == now + timedelta(days=1)
    assert resolve_deadline(now + timedelta(hours=1), now) == now + timedelta(hours=1)
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve_deadline(datetime(2026, 1, 1), now)
