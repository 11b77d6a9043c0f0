"""The dashboard over plain HTTP (httpx against the ASGI app) on a World seeded by real runs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import web_workflows as wf
from dashboard_client import HTML, csrf
from web_seed import Seeded

import workflowkit
from workflowkit import WebhookTokenError
from workflowkit.api import start
from workflowkit.testing import wait_for_hook
from workflowkit.web import Dashboard, create_app
from workflowkit.worlds import open_world
from workflowkit.worlds.records import RunOptions


@pytest.fixture
async def app(seeded: Seeded) -> AsyncIterator[Dashboard]:
    dashboard = create_app(seeded.url)
    yield dashboard
    await dashboard.close()


@pytest.fixture
async def client(app: Dashboard) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def ids(data: dict[str, Any]) -> list[str]:
    return [r["run_id"] for r in data["runs"]]


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run-id="([^"]+)"', html)


# -- the runs list -------------------------------------------------------------------------


async def test_runs_json_newest_first_with_filters(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    data = (await client.get("/api/runs")).json()
    assert ids(data) == [
        seeded.waiting,
        seeded.sleeping,
        seeded.failed,
        seeded.hostile,
        seeded.order,
    ]
    assert data["next_cursor"] is None
    first = data["runs"][-1]
    assert first["workflow_name"] == "web.order" and first["status"] == "completed"
    assert first["output"] == "shipped book" and first["input"] == [["book"], {}]

    assert ids((await client.get("/api/runs?status=failed")).json()) == [seeded.failed]
    assert ids((await client.get("/api/runs?workflow=web.nap")).json()) == [seeded.sleeping]
    both = await client.get("/api/runs", params={"workflow": "web.nap", "status": "completed"})
    assert ids(both.json()) == []


async def test_search_by_run_id(client: httpx.AsyncClient, seeded: Seeded) -> None:
    exact = await client.get("/api/runs", params={"q": seeded.failed})
    assert ids(exact.json()) == [seeded.failed]
    # Without the prefix, in lower case: still found.
    loose = await client.get("/api/runs", params={"q": seeded.failed[5:].lower()})
    assert ids(loose.json()) == [seeded.failed]
    # The start of an id finds the runs whose id starts so (here: all of them share one).
    common = seeded.order[:12]
    found = ids((await client.get("/api/runs", params={"q": common})).json())
    assert seeded.order in found and all(i.startswith(common) for i in found)
    assert ids((await client.get("/api/runs", params={"q": "wrun_ZZZZ"})).json()) == []
    html = (await client.get("/", params={"q": seeded.failed}, headers=HTML)).text
    assert row_ids(html) == [seeded.failed]


async def test_pagination_with_cursor(client: httpx.AsyncClient, seeded: Seeded) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        data = (await client.get("/api/runs", params=params)).json()
        assert len(data["runs"]) <= 2
        seen += ids(data)
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert seen == [seeded.waiting, seeded.sleeping, seeded.failed, seeded.hostile, seeded.order]

    page = (await client.get("/?limit=2", headers=HTML)).text
    assert row_ids(page) == [seeded.waiting, seeded.sleeping]
    older = re.search(r'class="older" href="([^"]+)"', page)
    assert older is not None
    page2 = (await client.get(older.group(1).replace("&amp;", "&"), headers=HTML)).text
    assert row_ids(page2) == [seeded.failed, seeded.hostile]
    assert 'class="newest"' in page2


async def test_list_html_filters(client: httpx.AsyncClient, seeded: Seeded) -> None:
    html = (await client.get("/?status=running", headers=HTML)).text
    assert row_ids(html) == [seeded.waiting, seeded.sleeping]
    assert '<option value="running" selected>' in html
    assert '<span class="badge s-running">running</span>' in html
    assert '<option value="web.order"></option>' in html  # the workflow suggestions
    none = (await client.get("/?workflow=nothing.here", headers=HTML)).text
    assert row_ids(none) == [] and "no runs match these filters" in none


@pytest.mark.parametrize(
    "query, message",
    [("status=done", "status must be one of"), ("limit=0", "limit must be a whole number")],
)
async def test_bad_filters_are_400(client: httpx.AsyncClient, query: str, message: str) -> None:
    response = await client.get(f"/api/runs?{query}")
    assert response.status_code == 400 and message in response.json()["error"]


# -- a run ---------------------------------------------------------------------------------


async def test_hostile_payload_is_shown_as_text(client: httpx.AsyncClient, seeded: Seeded) -> None:
    html = (await client.get(f"/runs/{seeded.hostile}", headers=HTML)).text
    assert wf.HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.replace('<script src="/static/dashboard.js" defer>', "")
    data = (await client.get(f"/api/runs/{seeded.hostile}")).json()
    assert data["run"]["output"] == wf.HOSTILE
    # The page forbids inline scripts even if something slipped through.
    response = await client.get(f"/runs/{seeded.hostile}", headers=HTML)
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_timeline_shows_each_attempt_in_order(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    data = (await client.get(f"/api/runs/{seeded.order}")).json()
    bars = [
        (b["kind"], b["label"].rsplit(":", 1)[-1], b["attempt"], b["state"])
        for b in data["timeline"]
    ]
    assert bars == [
        ("run", "web.order", None, "completed"),
        ("step", "reserve", 1, "completed"),
        ("step", "charge", 1, "retrying"),
        ("step", "charge", 2, "retrying"),
        ("step", "charge", 3, "completed"),
        ("step", "ship", 1, "completed"),
    ]
    retry = data["timeline"][2]
    error = next(p["value"] for p in retry["payloads"] if p["label"] == "error")
    assert error["$error"] == "card declined for book" and "Traceback" in error["traceback"]
    starts = [b["start"] for b in data["timeline"][1:]]
    assert starts == sorted(starts)
    types = [e["type"] for e in data["events"]]
    assert types[0] == "run_created" and types[-1] == "run_completed"

    html = (await client.get(f"/runs/{seeded.order}?item=run", headers=HTML)).text
    labels = re.findall(r'<a class="label"[^>]*>([^<]+)</a>', html)
    assert [x.rsplit(":", 1)[-1] for x in labels] == [
        "web.order",
        "reserve #1",
        "charge #1",
        "charge #2",
        "charge #3",
        "ship #1",
    ]
    # The selected item's details are open; the others are hidden.
    assert re.search(r'data-item-detail="run">', html)
    assert re.search(r'data-item-detail="step_\w+-2" hidden>', html)


async def test_failed_run_shows_error_and_traceback(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    html = (await client.get(f"/runs/{seeded.failed}?item=run", headers=HTML)).text
    assert '<span class="badge s-failed">failed</span>' in html
    assert "boom: bob" in html and 'class="traceback"' in html


async def test_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    page = await client.get("/runs/wrun_NOPE", headers=HTML)
    assert page.status_code == 404 and "no workflow run with id" in page.text
    assert page.headers["content-type"].startswith("text/html")
    api = await client.get("/api/runs/wrun_NOPE")
    assert api.status_code == 404
    assert api.json() == {"error": "no workflow run with id 'wrun_NOPE'"}  # errors.py's words
    assert (await client.get("/api/runs/wrun_NOPE/state")).status_code == 404
    headers = await csrf(client)
    for action in ("cancel", "wake-up", "rerun"):
        response = await client.post(f"/api/runs/wrun_NOPE/{action}", headers=headers)
        assert response.status_code == 404, action
    assert (await client.get("/no/such/page")).status_code == 404


# -- actions -------------------------------------------------------------------------------


async def test_actions(client: httpx.AsyncClient, seeded: Seeded) -> None:
    headers = await csrf(client)
    woke = await client.post(f"/api/runs/{seeded.sleeping}/wake-up", headers=headers)
    assert woke.status_code == 200 and len(woke.json()["woken"]) == 1

    bad = await client.post(
        "/api/hooks/resume",
        headers=headers,
        json={"token": "approval:d-1", "payload_json": "{not json"},
    )
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    missing = await client.post(
        "/api/hooks/resume", headers=headers, json={"token": "nobody", "payload": 1}
    )
    assert missing.status_code == 404 and "no active hook" in missing.json()["error"]
    resumed = await client.post(
        "/api/hooks/resume",
        headers=headers,
        json={"token": "approval:d-1", "payload_json": '{"ok": true}'},
    )
    assert resumed.status_code == 200 and resumed.json()["run_id"] == seeded.waiting

    again = await client.post(f"/api/runs/{seeded.order}/rerun", headers=headers)
    assert again.status_code == 201
    new = again.json()["run"]
    assert new["workflow_name"] == "web.order" and new["run_id"] != seeded.order
    world = open_world(seeded.url)
    try:
        old_record, new_record = (
            await world.get_run(seeded.order),
            await world.get_run(new["run_id"]),
        )
        assert old_record is not None and new_record is not None
        assert new_record.input == old_record.input  # the very same stored bytes
        assert [e.type for e in await world.get_events(seeded.sleeping)][-1] == "wait_completed"
    finally:
        await world.close()

    bulk = await client.post(
        "/api/runs/cancel",
        headers=headers,
        json={"run_ids": [seeded.sleeping, seeded.failed]},
    )
    assert bulk.json() == {
        "cancelled": [seeded.sleeping],
        "skipped": [{"run_id": seeded.failed, "status": "failed"}],
    }
    empty = await client.post("/api/runs/cancel", headers=headers, json={"run_ids": []})
    assert empty.status_code == 400 and "run_ids" in empty.json()["error"]


async def test_resuming_a_webhook_token_with_a_payload_is_refused(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    workflowkit.configure(seeded.url, poll_interval=0.05)  # stopped by the seeded fixture
    run = await start(wf.webhook)
    hook = await wait_for_hook(run)
    refused = await client.post(
        "/api/hooks/resume", headers=await csrf(client), json={"token": hook.token, "payload": 1}
    )
    assert refused.status_code == 400
    assert refused.json() == {"error": str(WebhookTokenError(hook.token))}
    events = (await client.get(f"/api/runs/{run.run_id}")).json()["events"]
    assert "hook_received" not in [e["type"] for e in events]


# -- auth and CSRF -------------------------------------------------------------------------


async def test_token_auth(seeded: Seeded) -> None:
    app = create_app(seeded.url, token="s3cret")
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            denied = await c.get("/", headers=HTML)
            assert denied.status_code == 401 and "?token=" in denied.text
            assert (await c.get("/api/runs")).status_code == 401
            assert (await c.get("/static/dashboard.js")).status_code == 401
            wrong = await c.get("/api/runs", headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401
            bearer = await c.get("/api/runs", headers={"authorization": "Bearer s3cret"})
            assert bearer.status_code == 200

            once = await c.get(f"/runs/{seeded.order}?token=s3cret&item=run")
            assert once.status_code == 303
            assert once.headers["location"] == f"/runs/{seeded.order}?item=run"
            cookie = once.headers["set-cookie"]
            assert "workflowkit_token=s3cret" in cookie and "HttpOnly" in cookie
            assert (await c.get(once.headers["location"], headers=HTML)).status_code == 200
            assert (await c.get("/api/runs")).status_code == 200  # the cookie does it now
    finally:
        await app.close()


async def test_csrf_refused(client: httpx.AsyncClient, seeded: Seeded) -> None:
    url = f"/api/runs/{seeded.sleeping}/cancel"
    bare = await client.post(url)
    assert bare.status_code == 403 and "CSRF" in bare.json()["error"]
    headers = await csrf(client)
    wrong = await client.post(url, headers={"x-workflowkit-csrf": "guess"})
    assert wrong.status_code == 403
    cross = await client.post(url, headers={**headers, "origin": "http://evil.example"})
    assert cross.status_code == 403 and "cross-site" in cross.json()["error"]
    state = (await client.get(f"/api/runs/{seeded.sleeping}/state")).json()
    assert state["status"] == "running"  # nothing was cancelled

    ok = await client.post(url, headers={**headers, "origin": "http://testserver"})
    assert ok.status_code == 200 and ok.json()["cancelled"] == [seeded.sleeping]


async def test_host_check(seeded: Seeded) -> None:
    app = create_app(seeded.url, allowed_hosts=["127.0.0.1", "localhost"])
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:3456") as c:
            assert (await c.get("/")).status_code == 200
            rebound = await c.get("/", headers={"host": "evil.example:3456"})
            assert rebound.status_code == 400 and "unexpected Host" in rebound.json()["error"]
    finally:
        await app.close()


async def test_mounted_under_a_prefix(seeded: Seeded) -> None:
    from fastapi import FastAPI

    dashboard = create_app(seeded.url)
    outer = FastAPI()
    outer.mount("/ops/workflows", dashboard)
    transport = httpx.ASGITransport(app=outer)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            page = await c.get("/ops/workflows/", headers=HTML)
            assert page.status_code == 200
            links = re.findall(r'(?:href|src|data-url|data-poll)="([^"]+)"', page.text)
            internal = [x for x in links if x.startswith("/")]
            assert internal and all(x.startswith("/ops/workflows/") for x in internal)
            assert "Path=/ops/workflows" in page.headers["set-cookie"]
            run = await c.get(f"/ops/workflows/runs/{seeded.order}", headers=HTML)
            assert run.status_code == 200 and "/ops/workflows/api/runs/" in run.text
            js = await c.get("/ops/workflows/static/dashboard.js")
            assert js.status_code == 200 and "text/javascript" in js.headers["content-type"]
    finally:
        await dashboard.close()


async def test_a_run_page_says_what_the_run_waits_for_and_links_its_family(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    world = open_world(seeded.url)
    try:
        await world.create_run("parent-1", "nobody.has.this", b"", {})
        child = RunOptions(parent_run_id="parent-1")
        await world.create_run("child-1", "nobody.has.this", b"", {}, child)
    finally:
        await world.close()
    page = (await client.get("/runs/parent-1", headers=HTML)).text
    assert "Waiting for a worker: no worker has workflow `nobody.has.this`" in page
    assert 'href="/runs/child-1"' in page
    child_page = (await client.get("/runs/child-1", headers=HTML)).text
    assert 'href="/runs/parent-1"' in child_page


async def test_queues_page_and_run_list_queue_filter(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    from workflowkit.worlds.records import QueueLimits

    world = open_world(seeded.url)
    try:
        await world.register_queues(
            [QueueLimits("emails", concurrency=20, rate_count=100, rate_period=60)]
        )
        emails = RunOptions(queue="emails", key="cust-7")
        await world.create_run("queued-1", "nobody.has.this", b"", {}, emails)
    finally:
        await world.close()
    page = (await client.get("/queues", headers=HTML)).text
    assert 'data-queue="emails"' in page and "concurrency 20, 100 per 1m" in page
    assert 'href="/?queue=emails"' in page
    data = (await client.get("/api/queues")).json()
    (queue,) = [q for q in data["queues"] if q["name"] == "emails"]
    assert queue["name"] == "emails" and queue["waiting"] == 1 and queue["running"] == 0
    assert queue["rate_limit"] == {"count": 100, "per_seconds": 60.0}
    listed = (await client.get("/", params={"queue": "emails"}, headers=HTML)).text
    assert row_ids(listed) == ["queued-1"] and "emails · cust-7" in listed
    by_key = (await client.get("/api/runs", params={"queue": "emails", "key": "cust-8"})).json()
    assert ids(by_key) == []


async def test_a_run_held_back_by_its_queue_says_why(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    import os
    import socket

    from workflowkit.worlds.records import QueueLimits, WorkerInfo

    worker = WorkerInfo("wrkr_web_q", socket.gethostname(), os.getpid(), ("web.queued",))
    world = open_world(seeded.url)
    try:
        await world.register_worker(worker)  # a live worker has the workflow
        await world.register_queues([QueueLimits("one-at-a-time", concurrency=1)])
        for run_id in ("held-1", "held-2"):
            options = RunOptions(queue="one-at-a-time")
            await world.create_run(run_id, "web.queued", b"", {}, options)
        claimed = await world.claim_runs(worker, ["web.queued"], limit=1, lease_seconds=60)
        assert [r.run_id for r in claimed] == ["held-1"]
    finally:
        await world.close()
    reason = "queue `one-at-a-time` is at its limit of 1 running"
    page = (await client.get("/runs/held-2", headers=HTML)).text
    assert f"Waiting for {reason}" in page
    listed = (await client.get("/", params={"queue": "one-at-a-time"}, headers=HTML)).text
    assert reason in listed
    data = (await client.get("/api/runs", params={"queue": "one-at-a-time"})).json()
    assert {r["run_id"]: r["waiting_for"] for r in data["runs"]}["held-2"] == reason


async def test_a_run_page_shows_start_options_and_starts_a_delayed_run(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    from datetime import UTC, datetime, timedelta

    world = open_world(seeded.url)
    try:
        later = datetime.now(UTC) + timedelta(hours=1)
        options = RunOptions(deadline=later, queue="billing", key="c-9", priority=4)
        await world.create_run("delayed-1", "nobody.has.this", b"", {}, options, start_at=later)
    finally:
        await world.close()
    page = (await client.get("/runs/delayed-1", headers=HTML)).text
    assert "<dt>queue</dt>" in page and 'href="/?queue=billing"' in page
    assert "<dt>key</dt><dd>c-9</dd>" in page and "<dt>priority</dt><dd>4</dd>" in page
    assert "<dt>deadline</dt>" in page and "Start now" in page
    started = await client.post(
        "/runs/delayed-1/wake-up".replace("/runs", "/api/runs"), headers=await csrf(client)
    )
    assert started.json()["started"] is True


async def test_fork_from_a_step_and_diverged_runs(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    from datetime import UTC, datetime

    from workflowkit.worlds.records import Divergence, EventType, NewEvent, WorkerInfo

    world = open_world(seeded.url)
    try:
        await world.create_run("forkable-1", "nobody.has.this", b"wk1j[[],{}]", {})
        await world.append(
            "forkable-1",
            [
                NewEvent(EventType.RUN_STARTED),
                NewEvent(EventType.STEP_CREATED, "step_a", b"wk1j[[],{}]", {"name": "a"}),
                NewEvent(EventType.STEP_STARTED, "step_a", None, {"attempt": 1}),
                NewEvent(EventType.STEP_COMPLETED, "step_a", b"wk1j1"),
                NewEvent(EventType.STEP_CREATED, "step_b", b"wk1j[[],{}]", {"name": "b"}),
            ],
        )
        await world.create_run("parked-1", "nobody.has.this", b"", {})
        me = WorkerInfo("wrkr_x", "h", 1, ("nobody.has.this",))
        await world.claim_runs(me, ["nobody.has.this"], limit=10, lease_seconds=30)
        divergence = Divergence(2, "step 'a'", "step 'b'", "changed", "v1", datetime.now(UTC))
        assert await world.park_run("parked-1", "wrkr_x", divergence)
    finally:
        await world.close()
    page = (await client.get("/runs/forkable-1", headers=HTML)).text
    assert page.count("Re-run from here") == 2
    assert "/api/runs/forkable-1/fork?from_step=1" in page
    headers = await csrf(client)
    made = await client.post("/api/runs/forkable-1/fork", json={"from_step": 1}, headers=headers)
    assert made.status_code == 201 and made.json()["run"]["forked_from"] == "forkable-1"
    fork_id = made.json()["run"]["run_id"]
    assert f'href="/runs/{fork_id}"' in (await client.get("/runs/forkable-1", headers=HTML)).text
    too_far = await client.post("/api/runs/forkable-1/fork", json={"from_step": 5}, headers=headers)
    assert too_far.status_code == 400 and "has 2 step" in too_far.json()["error"]
    listed = (await client.get("/", params={"diverged": "1"}, headers=HTML)).text
    assert row_ids(listed) == ["parked-1"] and "s-diverged" in listed
    api_listed = (await client.get("/api/runs", params={"diverged": "1"})).json()["runs"]
    assert [r["run_id"] for r in api_listed] == ["parked-1"]
    parked = (await client.get("/runs/parked-1", headers=HTML)).text
    assert "no longer replays it at operation #2" in parked and "s-diverged" in parked
    # The fork links back to its source; a run shows the code version it started under.
    forked = (await client.get(f"/runs/{fork_id}", headers=HTML)).text
    assert "<dt>forked from</dt>" in forked and 'href="/runs/forkable-1"' in forked
    # Its timeline shows the step it reused, though that ran before the fork was created.
    assert re.search(r'<a class="label"[^>]*>a #1</a>', forked)
    order = (await client.get(f"/runs/{seeded.order}", headers=HTML)).text
    assert re.search(r'<dt>code version</dt><dd class="id">src-[0-9a-f]{12}</dd>', order)
    # Cancelling a parked run ends it: it is parked no more, in the filter or the badge.
    cancelled = await client.post("/api/runs/parked-1/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    listed = (await client.get("/", params={"diverged": "1"}, headers=HTML)).text
    assert row_ids(listed) == []
    assert "s-diverged" not in (await client.get("/runs/parked-1", headers=HTML)).text
