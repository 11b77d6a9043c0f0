"""The dashboard's schedules page: over HTTP, and in a real browser (headless Chromium)."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from web_seed import serve

import workflowkit
from workflowkit import workflow
from workflowkit._schedule_ops import create
from workflowkit.web import Dashboard, create_app
from workflowkit.worlds.sqlite import SQLiteWorld

HTML = {"accept": "text/html"}
CHROMIUM = "/usr/bin/chromium"


@workflow(name="web.sched.report")
async def report(scheduled_at: datetime, team: str) -> str:
    return f"{team}@{scheduled_at.isoformat()}"


def seed_schedules(path: Path) -> str:
    async def seed() -> None:
        world = SQLiteWorld(path)
        try:
            await create(world, "nightly", report, cron="0 2 * * *", args=["ops"],
                         timezone="Europe/Berlin")  # fmt: skip
            await create(world, "weekly", report, cron="@weekly", args=["dev"])
        finally:
            await world.close()

    asyncio.run(seed())
    return f"sqlite:///{path}"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = await asyncio.to_thread(seed_schedules, tmp_path / "wk.db")
    app: Dashboard = create_app(url)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await app.close()


async def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    page = await client.get("/schedules", headers=HTML)
    token = re.search(r'name="workflowkit-csrf" content="([^"]+)"', page.text)
    assert token is not None
    return {"x-workflowkit-csrf": token.group(1)}


async def test_the_page_lists_schedules_with_next_ticks(client: httpx.AsyncClient) -> None:
    page = await client.get("/schedules", headers=HTML)
    assert page.status_code == 200
    assert re.findall(r'data-schedule-id="([^"]+)"', page.text) == ["nightly", "weekly"]
    assert "0 2 * * *" in page.text and "Europe/Berlin" in page.text
    assert '<time datetime="' in page.text  # the next tick, kept relative by the script
    assert 'href="/schedules"' in page.text  # in the header of every page
    data = (await client.get("/api/schedules")).json()
    assert [s["schedule_id"] for s in data["schedules"]] == ["nightly", "weekly"]
    assert data["version"]


async def test_pause_resume_and_trigger(client: httpx.AsyncClient) -> None:
    headers = await csrf(client)
    before = (await client.get("/api/schedules")).json()["version"]
    paused = await client.post("/api/schedules/nightly/pause", headers=headers, json={})
    assert paused.status_code == 200 and paused.json()["schedule"]["paused"] is True
    assert (await client.get("/api/schedules")).json()["version"] != before
    page = await client.get("/schedules?fragment=1", headers=HTML)
    assert page.text.startswith('<div id="live"') and ">Resume</button>" in page.text
    resumed = await client.post("/api/schedules/nightly/resume", headers=headers, json={})
    assert resumed.json()["schedule"]["paused"] is False
    started = await client.post("/api/schedules/nightly/trigger", headers=headers, json={})
    run_id = started.json()["run"]["run_id"]
    assert run_id.startswith("nightly@manual-")
    page = await client.get("/schedules", headers=HTML)
    assert f'href="/runs/{run_id}"' in page.text
    run_page = await client.get(f"/runs/{run_id}", headers=HTML)
    assert 'href="/schedules#schedule-nightly"' in run_page.text
    missing = await client.post("/api/schedules/nope/pause", headers=headers, json={})
    assert missing.status_code == 404 and "no schedule" in missing.json()["error"]
    refused = await client.post("/api/schedules/nightly/pause", json={})
    assert refused.status_code == 403  # no CSRF token


# -- in a browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        pytest.skip(f"{CHROMIUM} is missing (scripts/test installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    url = seed_schedules(tmp_path_factory.mktemp("sched-browser") / "wk.db")
    workflowkit.configure(url, poll_interval=0.05)  # a worker runs what the page starts
    app = create_app(url)
    try:
        with serve(app) as base, playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                yield base, browser
            finally:
                browser.close()
    finally:
        workflowkit.shutdown()


def test_operating_schedules_in_the_browser(site: tuple[str, object]) -> None:
    from playwright.sync_api import expect

    base, browser = site
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        page.goto(base + "/")
        page.click('header.top a[href$="/schedules"]')
        row = page.locator('tr[data-schedule-id="nightly"]')
        expect(row.locator(".badge").first).to_have_text("active")
        expect(row.locator("time")).to_have_text(re.compile(r"^in \d+[hm]$"))

        row.locator('button[data-action="pause"]').click()
        expect(page.locator("#flash")).to_have_text("paused nightly")
        expect(row.locator(".badge").first).to_have_text("paused")
        row.locator('button[data-action="resume"]').click()
        expect(row.locator(".badge").first).to_have_text("active")

        row.locator('button[data-action="trigger"]').click()
        expect(page.locator("#flash")).to_have_text(re.compile(r"^started run nightly@manual-"))
        link = row.locator("ul.recent a").first
        expect(row.locator("ul.recent .badge").first).to_have_text("completed")
        link.click()
        page.wait_for_url(re.compile(r"/runs/nightly@manual-"))
        expect(page.locator(".run-head .badge").first).to_have_text("completed")
        page.click('a[href$="/schedules#schedule-nightly"]')
        page.wait_for_url(re.compile(r"/schedules#schedule-nightly$"))
        assert errors == []
    finally:
        context.close()
