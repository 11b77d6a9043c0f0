"""The dashboard error first: a failed run's error in its header, what runs wait for, ISO
times, a light list poll, and a timeline with even ticks that zooms (issue 21)."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from dashboard_client import HTML, dashboard_client
from web_seed import Seeded

from workflowkit.web.timeline import tick_label, tick_step

AT = r"(\d{4}-\d\d-\d\d )?\d\d:\d\d(:\d\d)? UTC"  # a time on a later day than now carries its date


@pytest.fixture
async def client(seeded: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    async with dashboard_client(seeded.url) as c:
        yield c


async def test_a_failed_runs_header_shows_its_error_and_user_traceback(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    html = (await client.get(f"/runs/{seeded.failed}", headers=HTML)).text
    head = html.split('<section class="run-head">', 1)[1].split("</section>", 1)[0]
    failure = re.search(r'<div class="failure" role="alert">(.*?)</div>', head, re.S)
    assert failure is not None, head
    assert "FatalError: boom: bob" in failure.group(1)
    assert "Traceback (most recent call last)" in failure.group(1)
    assert "in explode" in failure.group(1) and "workflowkit/runtime" not in failure.group(1)

    data = (await client.get(f"/api/runs/{seeded.failed}")).json()
    assert data["failure"]["error"] == "FatalError: boom: bob"
    assert "in explode" in data["failure"]["traceback"]
    ok = (await client.get(f"/api/runs/{seeded.order}")).json()
    assert ok["failure"] is None
    assert 'class="failure"' not in (await client.get(f"/runs/{seeded.order}", headers=HTML)).text


async def test_run_lists_say_what_runs_wait_for(client: httpx.AsyncClient, seeded: Seeded) -> None:
    runs = (await client.get("/api/runs")).json()["runs"]
    waiting = {r["run_id"]: r["waiting_for"] for r in runs}
    assert waiting[seeded.sleeping].startswith("sleep until ")
    assert waiting[seeded.waiting].startswith("hook `approval:d-1`")
    assert waiting[seeded.order] is None
    html = (await client.get("/", headers=HTML)).text
    row = re.search(rf'<tr data-run-id="{seeded.waiting}".*?</tr>', html, re.S)
    assert row is not None and "hook `approval:d-1`" in row.group(0)
    page = (await client.get(f"/runs/{seeded.sleeping}", headers=HTML)).text
    assert re.search(r"Waiting for sleep until " + AT + r" \(in (59|60)m\)", page)


async def test_the_list_poll_answers_only_the_version(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    full = (await client.get("/api/runs?status=running")).json()
    light = (await client.get("/api/runs?status=running&only=version")).json()
    assert light == {"next_cursor": full["next_cursor"], "version": full["version"]}
    html = (await client.get("/", headers=HTML)).text
    assert 'data-poll="/api/runs?only=version"' in html


async def test_event_attrs_times_are_iso_8601(client: httpx.AsyncClient, seeded: Seeded) -> None:
    data = (await client.get(f"/api/runs/{seeded.sleeping}")).json()
    [created] = [e for e in data["events"] if e["type"] == "wait_created"]
    assert datetime.fromisoformat(created["attrs"]["resume_at"]).tzinfo is not None
    html = (await client.get(f"/runs/{seeded.sleeping}", headers=HTML)).text
    assert re.search(r"&quot;resume_at&quot;:&quot;\d{4}-\d\d-\d\dT", html)


def test_ticks_are_even() -> None:
    assert tick_step(42 / 6) == 10 and tick_step(527 * 60 / 6) == 7200
    assert tick_step(0.3) == 0.5 and tick_step(100 / 6) == 20
    assert [tick_label(s * 20, 20) for s in range(5)] == ["0", "+20s", "+40s", "+1m", "+1m20s"]
    assert tick_label(8 * 3600, 7200) == "+8h" and tick_label(1.5, 0.5) == "+1.5s"
    assert [tick_label(s * 0.02, 0.02) for s in range(3)] == ["0", "+20ms", "+40ms"]
    assert tick_step(0.00003) == 0.00005 and tick_label(0.04215, 0.00005) == "+42.15ms"


async def test_timeline_axis_sleep_label_and_zoom(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    html = (await client.get(f"/runs/{seeded.sleeping}", headers=HTML)).text
    assert re.search(r'<a class="label"[^>]*>sleep until ' + AT + "</a>", html)

    whole = (await client.get(f"/runs/{seeded.order}", headers=HTML)).text
    first, last = re.search(r'data-first="([\d.]+)" data-last="([\d.]+)"', whole).groups()  # type: ignore[union-attr]
    assert float(first) == 0 and float(last) > 0
    ticks = re.findall(r'<span class="tick" style="left:([\d.]+)%">([^<]+)</span>', whole)
    assert ticks[0] == ("0.000", "0") and len(ticks) >= 3
    gaps = [float(b) - float(a) for (a, _), (b, _) in itertools.pairwise(ticks)]
    assert max(gaps) - min(gaps) < 0.01  # evenly spaced

    # Zoom in from the last attempt of charge: reserve ended before it, ship comes after.
    bars = (await client.get(f"/api/runs/{seeded.order}")).json()["timeline"]
    created = datetime.fromisoformat(bars[0]["start"])
    charge = next(b for b in bars if b["label"].endswith("charge") and b["attempt"] == 3)
    start = (datetime.fromisoformat(charge["start"]) - created).total_seconds()
    zoomed = (await client.get(f"/runs/{seeded.order}?from={start}&to={last}", headers=HTML)).text
    assert "Show the whole run" in zoomed
    assert re.search(rf'data-first="{start:.6f}"', zoomed)
    assert "reserve #1" not in zoomed and "charge #1" not in zoomed
    assert "charge #3" in zoomed and "ship #1" in zoomed

    for bad in ("from=x", "from=5&to=1", "from=-1"):
        page = await client.get(f"/runs/{seeded.order}?{bad}", headers=HTML)
        assert page.status_code == 400, bad
