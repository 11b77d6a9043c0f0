"""The dashboard end to end in a real browser: headless Debian Chromium driven by Playwright.

One server, one worker and one browser serve the whole module, on one copy of the seeded
database; each test acts on runs of its own so the order of tests does not matter.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import blocked_step
import pytest
import web_workflows as wf
from web_seed import Seeded, copy_seed, serve

import workflowkit
import workflowkit.sync as wk
from workflowkit import RunFailedByOperatorError, ScheduleNotFoundError, WorkflowRunFailedError
from workflowkit.web import create_app
from workflowkit.worlds import open_world
from workflowkit.worlds.records import EventType

STARTED = EventType.STEP_STARTED

CHROMIUM = "/usr/bin/chromium"

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(
        f"{CHROMIUM} is missing (scripts/test installs Debian's chromium)",
        allow_module_level=True,
    )
playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect
Browser = playwright.Browser
Page = playwright.Page


@dataclass(frozen=True)
class Site:
    url: str
    seeded: Seeded
    browser: Browser


@pytest.fixture(scope="module")
def site(
    seeded_template: tuple[Path, tuple[str, ...]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    seeded = copy_seed(seeded_template, tmp_path_factory.mktemp("browser"))
    # A worker on the same database carries runs on after the page acts on them.
    workflowkit.configure(seeded.url, poll_interval=0.05)
    app = create_app(seeded.url)
    try:
        with serve(app) as url, playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                yield Site(url, seeded, browser)
            finally:
                browser.close()
    finally:
        workflowkit.shutdown()


@pytest.fixture
def page(site: Site) -> Iterator[Page]:
    context = site.browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == []  # no script errors on any page


def rows(page: Page) -> list[str]:
    return page.locator("#live tbody tr[data-run-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.runId)"
    )


def test_list_shows_runs(site: Site, page: Page) -> None:
    page.goto(site.url + "/")
    s = site.seeded
    for run_id in (s.order, s.hostile, s.failed, s.sleeping, s.waiting):
        expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_be_visible()
    row = page.locator(f'tr[data-run-id="{s.failed}"]')
    expect(row.locator(".badge")).to_have_text("failed")
    expect(page.locator(f'tr[data-run-id="{s.hostile}"] td').nth(2)).to_have_text("web.hostile")


def test_filtering(site: Site, page: Page) -> None:
    s = site.seeded
    page.goto(site.url + "/")
    page.select_option('select[name="status"]', "failed")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url(re.compile(r"status=failed"))
    assert rows(page) == [s.failed]

    page.click("a.reset")
    page.fill('input[name="workflow"]', "web.order")
    page.press('input[name="workflow"]', "Enter")
    page.wait_for_url(re.compile(r"workflow=web.order"))
    assert s.order in rows(page)
    assert all(
        t == "web.order" for t in page.locator("#live tbody tr td:nth-child(3)").all_inner_texts()
    )

    page.goto(site.url + "/")
    page.fill('input[name="q"]', s.hostile[5:].lower())
    page.press('input[name="q"]', "Enter")
    page.wait_for_url(re.compile(r"q="))
    assert rows(page) == [s.hostile]


def test_timeline_shows_steps_in_order(site: Site, page: Page) -> None:
    page.goto(f"{site.url}/runs/{site.seeded.order}")
    labels = page.locator(".track .label").all_inner_texts()
    assert [x.rsplit(":", 1)[-1] for x in labels] == [
        "web.order",
        "reserve #1",
        "charge #1",
        "charge #2",
        "charge #3",
        "ship #1",
    ]
    states = page.locator(".track").evaluate_all("ts => ts.map(t => t.dataset.state)")
    assert states == ["completed", "completed", "retrying", "retrying", "completed", "completed"]
    # Clicking a bar shows that attempt's details without leaving the page.
    page.locator(".track").nth(3).locator(".bar").click()
    detail = page.locator("[data-item-detail]:visible")
    expect(detail).to_have_count(1)
    expect(detail).to_contain_text("card declined for book")
    expect(detail.locator(".traceback")).to_contain_text("RetryableError")
    assert re.search(r"item=step_\w+-2", page.url)
    page.locator(".track").nth(5).locator(".label").click()
    expect(page.locator("[data-item-detail]:visible")).to_contain_text('"shipped book"')


def test_hostile_output_is_text(site: Site, page: Page) -> None:
    page.goto(f"{site.url}/runs/{site.seeded.hostile}?item=run")
    output = page.locator("[data-item-detail=run] pre.json").last
    expect(output).to_have_text(f'"{wf.HOSTILE}"')
    assert page.evaluate("document.scripts.length") == 1  # only the dashboard's own


def test_cancel_from_the_page(site: Site, page: Page) -> None:
    run_id = site.seeded.sleeping
    page.goto(f"{site.url}/runs/{run_id}")
    expect(page.locator(".run-head .badge")).to_have_text("running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('button[data-action="cancel"]')
    expect(page.locator(".run-head .badge")).to_have_text("cancelled")
    expect(page.locator('button[data-action="cancel"]')).to_have_count(0)
    assert wk.get_run(run_id).status() == "cancelled"


def test_resume_hook_from_the_page(site: Site, page: Page) -> None:
    run_id = site.seeded.waiting
    page.goto(f"{site.url}/runs/{run_id}")
    form = page.locator('li.hook[data-token="approval:d-1"] form.resume')
    form.locator("textarea").fill('{"approved": true, "by": "ada"}')
    form.locator("button").click()
    expect(page.locator("#flash")).to_contain_text("delivered to hook")
    # The worker finishes the run; the page follows without a reload.
    expect(page.locator(".run-head .badge")).to_have_text("completed")
    assert wk.get_run(run_id).return_value(timeout=10) == {
        "doc": "d-1",
        "decision": {"approved": True, "by": "ada"},
    }


def test_live_status_change(site: Site, page: Page) -> None:
    run = wk.start(wf.approve, "live-1")
    page.goto(f"{site.url}/runs/{run.run_id}")
    expect(page.locator(".run-head .badge")).to_have_text("running")
    expect(page.locator("li.hook")).to_have_count(1)
    page.evaluate("window.__sameDocument = true")
    wk.resume_hook("approval:live-1", {"ok": True})  # from outside the page
    expect(page.locator(".run-head .badge")).to_have_text("completed")
    expect(page.locator("li.hook")).to_have_count(0)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened

    page.goto(site.url + "/?workflow=web.approve")
    page.evaluate("window.__sameDocument = true")
    newer = wk.start(wf.approve, "live-2")
    expect(page.locator(f'tr[data-run-id="{newer.run_id}"]')).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True


def test_bulk_cancel(site: Site, page: Page) -> None:
    first, second = wk.start(wf.approve, "bulk-1"), wk.start(wf.approve, "bulk-2")
    page.goto(site.url + "/?status=running")
    for run in (first, second):
        page.check(f'tr[data-run-id="{run.run_id}"] input[type=checkbox]')
    button = page.locator('button[data-action="bulk-cancel"]')
    expect(button).to_have_text("Cancel selected (2)")
    asked: list[str] = []

    def accept(dialog: playwright.Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    button.click()
    expect(page.locator("#flash")).to_contain_text("cancelled")
    assert asked == ["Cancel 2 run(s)?"]
    for run in (first, second):
        expect(page.locator(f'tr[data-run-id="{run.run_id}"]')).to_have_count(0)
        assert run.status() == "cancelled"


def test_streams_panel_follows_live(site: Site, page: Page) -> None:
    run = wk.start(wf.talk, "talk-1")
    page.goto(f"{site.url}/runs/{run.run_id}")
    stream = page.locator('li.stream[data-namespace=""]')
    expect(stream.locator("ol.chunks li")).to_have_count(2)
    expect(stream.locator("ol.chunks li").nth(1)).to_have_text(wf.HOSTILE)  # text, not markup
    expect(stream.locator(".badge")).to_have_text("open")
    expect(page.locator('li.hook[data-token="talk-1"]')).to_have_count(1)
    page.evaluate("window.__sameDocument = true")
    wk.resume_hook("talk-1", None)
    expect(stream.locator("ol.chunks li")).to_have_count(3)
    expect(stream.locator("ol.chunks li").nth(2)).to_have_text("line 2")
    expect(stream.locator(".badge")).to_have_text("closed")  # the run ended
    assert page.evaluate("window.__sameDocument") is True


def test_a_failed_runs_error_is_the_first_thing_on_its_page(site: Site, page: Page) -> None:
    page.goto(f"{site.url}/runs/{site.seeded.failed}")
    failure = page.locator(".run-head .failure")
    expect(failure).to_be_in_viewport()  # not below the fold
    expect(failure.locator(".error-title").first).to_have_text("FatalError: boom: bob")
    expect(failure.locator(".traceback").first).to_contain_text("in explode")


def test_timeline_zooms_to_a_dragged_range(site: Site, page: Page) -> None:
    page.goto(f"{site.url}/runs/{site.seeded.order}")
    labels = page.locator(".track .label")
    expect(labels.filter(has_text="reserve #1")).to_have_count(1)
    for box in [t.bounding_box() for t in page.locator(".axis .tick, .took").all()]:
        assert box is not None and box["height"] < 20  # one line each: labels never wrap
    axis = page.locator(".axis").bounding_box()
    charge = page.locator('.track:has(.label:text-is("web_workflows:charge #3")) .bar')
    start = charge.bounding_box()
    assert axis is not None and start is not None
    # Drag from just before the last attempt of charge to past the axis's right end.
    y = axis["y"] + axis["height"] / 2
    page.mouse.move(start["x"] - 1, y)
    page.mouse.down()
    page.mouse.move(axis["x"] + axis["width"] * 0.9, y, steps=5)
    page.mouse.move(axis["x"] + axis["width"] + 30, y, steps=5)
    page.mouse.up()
    page.wait_for_url(re.compile(r"from=[\d.]+&to=[\d.]+"))
    expect(page.locator(".zoom-out")).to_be_visible()
    expect(labels.filter(has_text="reserve #1")).to_have_count(0)  # before the range
    expect(labels.filter(has_text="ship #1")).to_have_count(1)
    page.click(".zoom-out")
    page.wait_for_url(re.compile(r"/runs/[^?]+\??$"))
    expect(labels.filter(has_text="reserve #1")).to_have_count(1)


def test_rerun_from_a_step(site: Site, page: Page) -> None:
    """A step's "Re-run from here" forks the run: the steps before it are reused (their
    events copied, with their times), the new run opens and links back to its source."""
    source = site.seeded.order
    page.goto(f"{site.url}/runs/{source}")
    page.locator(".track").nth(5).locator(".label").click()  # ship #1: two steps before it
    detail = page.locator("[data-item-detail]:visible")
    asked: list[str] = []

    def accept(dialog: playwright.Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    detail.locator('button[data-action="rerun"]', has_text="Re-run from here").click()
    page.wait_for_url(re.compile(r"/runs/(?!" + re.escape(source) + r"\b)[^/?]+$"))
    assert asked == ["Start a new run reusing the 2 step(s) before this one?"]
    fork_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator(".run-head .badge").first).to_have_text("completed")
    expect(page.locator(f'a[href$="/runs/{source}"]')).to_have_count(1)
    assert wk.get_run(fork_id).return_value(timeout=10) == "shipped book"
    assert wk.get_run(fork_id).info().forked_from == source
    labels = page.locator(".track .label").all_inner_texts()
    assert [x.rsplit(":", 1)[-1] for x in labels][1:] == [
        "reserve #1",
        "charge #1",
        "charge #2",
        "charge #3",
        "ship #1",
    ]

    async def attempts(run_id: str) -> list[tuple[str, object]]:
        world = open_world(site.seeded.url)
        try:
            log = await world.get_events(run_id)
        finally:
            await world.close()
        return [(e.correlation_id or "", e.created_at) for e in log if e.type is STARTED]

    # reserve's and charge's attempts were copied as they were (their times too), not run
    # again; ship's is the fork's own.
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread
        before = pool.submit(asyncio.run, attempts(source)).result()
        after = pool.submit(asyncio.run, attempts(fork_id)).result()
    assert len(before) == len(after) == 5
    assert after[:4] == before[:4] and after[4] != before[4]


def test_create_and_delete_a_schedule_from_the_page(site: Site, page: Page) -> None:
    page.goto(site.url + "/schedules")
    page.click("details.new-schedule summary")
    form = page.locator("form.new-schedule")
    form.locator('input[name="schedule_id"]').fill("browser-digest")
    form.locator('input[name="workflow"]').fill("web.digest")
    form.locator('input[name="cron"]').fill("30 25 * * *")
    form.locator('button[type="submit"]').click()
    expect(page.locator("#flash")).to_contain_text("invalid cron expression '30 25 * * *'")
    expect(page.locator('tr[data-schedule-id="browser-digest"]')).to_have_count(0)

    form.locator('input[name="cron"]').fill("30 6 * * *")
    form.locator('input[name="timezone"]').fill("Europe/Berlin")
    form.locator('textarea[name="args_json"]').fill('["ops"]')
    form.locator('select[name="overlap"]').select_option("allow")
    form.locator('button[type="submit"]').click()
    expect(page.locator("#flash")).to_have_text("created schedule browser-digest")
    row = page.locator('tr[data-schedule-id="browser-digest"]')
    expect(row.locator(".badge").first).to_have_text("active")
    expect(row.locator("time")).to_have_text(re.compile(r"^in \d+[hm]$"))
    expect(form.locator('input[name="schedule_id"]')).to_have_value("")  # ready for the next
    info = wk.get_schedule("browser-digest")
    assert (info.workflow_name, info.timezone, info.overlap) == (
        "web.digest",
        "Europe/Berlin",
        "allow",
    )
    assert info.args == ("ops",) and info.next_tick is not None

    # Its runs get the tick's time, then the arguments typed in the form.
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator('button[data-action="trigger"]').click()
    expect(row.locator("ul.recent .badge").first).to_have_text("completed")
    [run_id] = row.locator("ul.recent a").evaluate_all("links => links.map(a => a.href)")
    assert wk.get_run(run_id.rsplit("/", 1)[-1]).return_value(timeout=10).startswith("ops@")

    asked: list[str] = []

    def accept(dialog: playwright.Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.locator('button[data-action="delete"]').click()
    expect(page.locator("#flash")).to_have_text("deleted schedule browser-digest")
    expect(row).to_have_count(0)
    assert asked == ["Delete schedule browser-digest? Its runs stay."]
    with pytest.raises(ScheduleNotFoundError):
        wk.get_schedule("browser-digest")


def test_fail_from_the_page(site: Site, page: Page) -> None:
    blocked_step.reset()
    run = wk.start(blocked_step.held_in_a_step)
    asked: list[tuple[str, str]] = []

    def answer(dialog: playwright.Dialog) -> None:
        asked.append((dialog.type, dialog.message))
        dialog.accept("stuck behind a bad deploy")

    try:
        assert blocked_step.STEP_STARTED.wait(10)
        page.goto(f"{site.url}/runs/{run.run_id}")
        expect(page.locator(".run-head .badge")).to_have_text("running")
        page.once("dialog", lambda dialog: dialog.dismiss())  # changed my mind: nothing sent
        page.click('button[data-action="fail"]')
        page.once("dialog", answer)
        page.click('button[data-action="fail"]')
        expect(page.locator("#flash")).to_have_text(f"failed {run.run_id}")
        expect(page.locator(".run-head .badge")).to_have_text("failed")
        expect(page.locator(".run-head .failure")).to_contain_text("stuck behind a bad deploy")
        expect(page.locator('button[data-action="fail"]')).to_have_count(0)
    finally:
        blocked_step.STEP_RELEASE.set()
    assert asked == [("prompt", "Fail this run? Why (optional, recorded in its error):")]
    with pytest.raises(WorkflowRunFailedError) as caught:
        run.return_value(timeout=10)
    cause = caught.value.__cause__
    assert isinstance(cause, RunFailedByOperatorError)
    assert cause.reason == "stuck behind a bad deploy"
    assert blocked_step.FOLLOW_UPS == []
