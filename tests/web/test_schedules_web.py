"""The dashboard's schedules page: over HTTP, and in a real browser (headless Chromium)."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from dashboard_client import HTML, dashboard_client
from dashboard_client import csrf as csrf_of
from web_seed import serve

import workflowkit
from workflowkit import workflow
from workflowkit._schedule_ops import create
from workflowkit._schedule_spec import static_schedules
from workflowkit.registry import Registry, Workflow
from workflowkit.runtime.schedules import declared
from workflowkit.web import create_app
from workflowkit.worlds import schedule_rules as rules
from workflowkit.worlds.records import WorkerInfo
from workflowkit.worlds.sqlite import SQLiteWorld

CHROMIUM = "/usr/bin/chromium"


@workflow(name="web.sched.report")
async def report(scheduled_at: datetime, team: str) -> str:
    return f"{team}@{scheduled_at.isoformat()}"


def seed_schedules(path: Path) -> str:
    async def seed() -> None:
        world = SQLiteWorld(path)
        try:
            await create(world, "nightly", report.name, cron="0 2 * * *", args=["ops"],
                         timezone="Europe/Berlin")  # fmt: skip
            await create(world, "weekly", report.name, cron="@weekly", args=["dev"])
        finally:
            await world.close()

    asyncio.run(seed())
    return f"sqlite:///{path}"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = await asyncio.to_thread(seed_schedules, tmp_path / "wk.db")
    async with dashboard_client(url) as c:
        yield c


async def csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return await csrf_of(client, "/schedules")


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


# -- creating and deleting ------------------------------------------------------------------

NEW = {"schedule_id": "hourly-ops", "workflow": "web.sched.report", "cron": "5 * * * *"}


async def schedule_ids(client: httpx.AsyncClient) -> list[str]:
    return [s["schedule_id"] for s in (await client.get("/api/schedules")).json()["schedules"]]


def in_world(path: Path, act: Any) -> None:
    """Run ``act(world)`` on the test's database, as another process (a worker) would."""

    async def run() -> None:
        world = SQLiteWorld(path)
        try:
            await act(world)
        finally:
            await world.close()

    asyncio.run(run())


async def test_create_a_schedule(client: httpx.AsyncClient) -> None:
    page = (await client.get("/schedules", headers=HTML)).text
    assert re.search(r'<form class="new-schedule" data-url="/api/schedules">', page)
    assert '<option value="web.sched.report">' in page  # suggested for its workflow field
    body = {**NEW, "args": ["ops"], "timezone": "Asia/Kolkata", "catch_up": "latest",
            "overlap": "allow", "end_at": "2099-01-01T00:00:00Z"}  # fmt: skip
    created = await client.post("/api/schedules", headers=await csrf(client), json=body)
    assert created.status_code == 201, created.text
    listed = {s["schedule_id"]: s for s in (await client.get("/api/schedules")).json()["schedules"]}
    mine = listed["hourly-ops"]
    assert mine == created.json()["schedule"]
    assert (mine["workflow_name"], mine["cron"], mine["timezone"]) == (
        "web.sched.report",
        "5 * * * *",
        "Asia/Kolkata",
    )
    assert (mine["catch_up"], mine["overlap"], mine["paused"]) == ("latest", "allow", False)
    assert mine["input"] == [["ops"], {}]
    assert mine["end_at"] == "2099-01-01T00:00:00+00:00"
    tick = datetime.fromisoformat(mine["next_tick"])
    assert 0 < (tick - datetime.now(UTC)).total_seconds() <= 3600
    assert tick.astimezone(ZoneInfo("Asia/Kolkata")).minute == 5  # read in its time zone
    page = (await client.get("/schedules", headers=HTML)).text
    assert 'data-schedule-id="hourly-ops"' in page


async def test_create_from_the_forms_fields(client: httpx.AsyncClient) -> None:
    """The form sends every field as text: JSON arguments as their text, empty fields as ""."""
    form = {"schedule_id": "from-form", "workflow": "web.sched.report", "cron": "@daily",
            "timezone": "", "args_json": "[]", "kwargs_json": '{"team": "web"}',
            "catch_up": "none", "overlap": "skip", "start_at": "2030-01-01T09:00",
            "end_at": ""}  # fmt: skip
    created = await client.post("/api/schedules", headers=await csrf(client), json=form)
    assert created.status_code == 201, created.text
    schedule = created.json()["schedule"]
    assert schedule["input"] == [[], {"team": "web"}] and schedule["timezone"] == "UTC"
    assert schedule["start_at"] == "2030-01-01T09:00:00+00:00"  # no offset: UTC
    assert schedule["end_at"] is None
    assert schedule["next_tick"] == "2030-01-02T00:00:00+00:00"
    assert "from-form" in await schedule_ids(client)


async def test_create_for_a_workflow_only_a_worker_has(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """``workflowkit web`` has none of the workflows' code: a worker's workflow is known."""
    worker = WorkerInfo("wrkr_elsewhere", "host", 1, ("elsewhere.report",))
    await asyncio.to_thread(in_world, tmp_path / "wk.db", lambda w: w.register_worker(worker))
    page = (await client.get("/schedules", headers=HTML)).text
    assert '<option value="elsewhere.report">' in page
    body = {**NEW, "workflow": "elsewhere.report"}
    created = await client.post("/api/schedules", headers=await csrf(client), json=body)
    assert created.status_code == 201, created.text
    assert created.json()["schedule"]["workflow_name"] == "elsewhere.report"


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"workflow": "no.such.flow"}, 400, "unknown workflow 'no.such.flow'"),
        ({"cron": "61 * * * *"}, 400, "invalid cron expression '61 * * * *'"),
        ({"cron": "@sometimes"}, 400, "unknown cron nickname '@sometimes'"),
        ({"cron": ""}, 400, '"cron" is required: a cron expression'),
        ({"cron": 5}, 400, '"cron" must be a string, not int'),
        ({"timezone": "Mars/Olympus"}, 400, "unknown time zone 'Mars/Olympus'"),
        ({"args_json": "[1,"}, 400, "args is not valid JSON"),
        ({"args_json": '{"a": 1}'}, 400, 'args must be a JSON list such as ["ops", 3]'),
        ({"kwargs": [1]}, 400, "kwargs must be a JSON object"),
        ({"args": [], "args_json": "[]"}, 400, 'send "args" or "args_json", not both'),
        ({"schedule_id": "nightly"}, 409, "'nightly' exists already: choose another id"),
        ({"schedule_id": "bad id!"}, 400, "invalid schedule id 'bad id!'"),
        ({"catch_up": "sometimes"}, 400, "catch_up must be 'none', 'latest' or 'all'"),
        ({"overlap": "queue"}, 400, "overlap must be 'allow', 'skip' or 'buffer_one'"),
        ({"start_at": "tomorrow"}, 400, '"start_at" must be an ISO 8601 time'),
        ({"start_at": "2030-01-02", "end_at": "2030-01-01"}, 400, "end_at must be after"),
    ],
)
async def test_bad_new_schedules_say_what_to_fix(
    client: httpx.AsyncClient, change: dict[str, Any], status: int, message: str
) -> None:
    answer = await client.post("/api/schedules", headers=await csrf(client), json=NEW | change)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert await schedule_ids(client) == ["nightly", "weekly"]  # nothing was written


async def test_a_new_schedules_body_must_be_a_json_object(client: httpx.AsyncClient) -> None:
    headers = await csrf(client)
    for body, message in ((b"[1]", "must be a JSON object"), (b"{", "is not valid JSON")):
        answer = await client.post("/api/schedules", headers=headers, content=body)
        assert answer.status_code == 400 and message in answer.json()["error"]
    refused = await client.post("/api/schedules", json=NEW)
    assert refused.status_code == 403  # no CSRF token
    assert await schedule_ids(client) == ["nightly", "weekly"]


async def test_delete_a_schedule(client: httpx.AsyncClient) -> None:
    headers = await csrf(client)
    page = (await client.get("/schedules", headers=HTML)).text
    assert re.search(
        r'data-action="delete" data-url="/api/schedules/weekly/delete" data-confirm="[^"]+"', page
    )
    refused = await client.post("/api/schedules/weekly/delete", json={})
    assert refused.status_code == 403 and await schedule_ids(client) == ["nightly", "weekly"]
    deleted = await client.post("/api/schedules/weekly/delete", headers=headers, json={})
    assert deleted.status_code == 200 and deleted.json() == {"deleted": "weekly"}
    assert await schedule_ids(client) == ["nightly"]
    assert 'data-schedule-id="weekly"' not in (await client.get("/schedules", headers=HTML)).text
    again = await client.post("/api/schedules/weekly/delete", headers=headers, json={})
    assert again.status_code == 404 and again.json() == {"error": "no schedule with id 'weekly'"}
    missing = await client.post("/api/schedules/nope/delete", headers=headers)
    assert missing.status_code == 404


def declare_in_code(path: Path) -> None:
    """Write ``web.sched.digest``'s schedule as a worker whose code declares it does
    (``@workflow(schedule=...)``), without adding the workflow to this process."""
    code = Registry()
    digest = Workflow(report.fn, "web.sched.digest")
    digest.schedules = static_schedules(digest.name, "0 8 * * *", "UTC", "none", "skip")
    code.add_workflow(digest)

    async def write(world: SQLiteWorld) -> None:
        for spec in declared(code).values():
            await world.change_schedule(spec.schedule_id, rules.declare(spec))

    in_world(path, write)


async def test_a_schedule_declared_in_code_is_not_deleted(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await asyncio.to_thread(declare_in_code, tmp_path / "wk.db")
    page = (await client.get("/schedules", headers=HTML)).text
    row = re.search(r'<tr id="schedule-web.sched.digest".*?</tr>', page, re.S)
    assert row is not None and "declared in code" in row.group(0)
    assert 'data-action="delete"' not in row.group(0)  # only its code can delete it
    answer = await client.post(
        "/api/schedules/web.sched.digest/delete", headers=await csrf(client), json={}
    )
    assert answer.status_code == 409
    assert "is declared in code (@workflow(schedule=...))" in answer.json()["error"]
    assert "web.sched.digest" in await schedule_ids(client)


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
