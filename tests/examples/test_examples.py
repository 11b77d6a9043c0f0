"""Every example in examples/ runs, end to end, against a fresh World."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

import workflowkit.api
import workflowkit.asgi
from workflowkit.runtime.runtime import Runtime

EXAMPLES = Path(__file__).parents[2] / "examples"


def load(name: str) -> ModuleType:
    module_name = f"example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


async def test_order_pipeline(cached_runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    await load("order_pipeline").main()
    out = capsys.readouterr().out
    assert "status: completed" in out
    assert out.count("charge attempt") == 2 and "run_completed" in out


async def test_approval_fastapi(cached_runtime: Runtime) -> None:
    example = load("approval_fastapi")
    transport = httpx.ASGITransport(app=example.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        run_id = (await client.post("/documents/d1/review")).json()["run_id"]
        for _ in range(500):
            if await cached_runtime.world.get_hook_by_token("approval:d1"):
                break
            await asyncio.sleep(0.01)
        reply = await client.post("/documents/d1/decision", json={"approved": "maybe"})
        assert reply.status_code == 422  # validated before anything was written
        good = await client.post(
            "/documents/d1/decision", json={"approved": True, "reviewer": "alice"}
        )
        assert good.json() == {"run_id": run_id}
        for _ in range(500):
            state = (await client.get(f"/runs/{run_id}")).json()
            if state["status"] == "completed":
                break
            await asyncio.sleep(0.01)
        assert state["result"] == "d1 published, approved by alice"
        missing = {"approved": True, "reviewer": "bob"}
        assert (await client.post("/documents/nope/decision", json=missing)).status_code == 404


async def test_slack_commands(cached_runtime: Runtime) -> None:
    example = load("slack_commands")
    run = await workflowkit.api.start(example.command_bot)
    hooks = []
    for _ in range(500):
        hooks = await cached_runtime.world.list_hooks(run.run_id)
        if hooks:
            break
        await asyncio.sleep(0.01)
    url = f"/.well-known/workflow/v1/webhook/{hooks[0].token}"
    transport = httpx.ASGITransport(app=workflowkit.asgi.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        deploy = await client.post(url, data={"command": "/deploy", "text": "api"})
        unknown = await client.post(url, data={"command": "/dance", "text": ""})
        stop = await client.post(url, data={"command": "/stop", "text": ""})
    assert deploy.json()["text"] == "deployed api"
    assert unknown.json()["text"] == "unknown command /dance"
    assert stop.json()["text"] == "bye"
    assert await run.return_value(timeout=10) == ["/deploy", "/dance", "/stop"]


def test_flask_app(cached_runtime: Runtime) -> None:
    client = load("flask_app").app.test_client()
    run_id = client.post("/signup", json={"email": "ada@example.com"}).get_json()["run_id"]
    deadline = time.monotonic() + 10
    while (reply := client.post("/confirm/ada@example.com")).status_code == 404:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert reply.get_json() == {"run_id": run_id}
    while (state := client.get(f"/runs/{run_id}").get_json())["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert state["result"] == "ada@example.com is active"


async def test_report_streaming(cached_runtime: Runtime, serve_asgi: Callable[[Any], str]) -> None:
    example = load("report_streaming")
    base = serve_asgi(example.app)
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        created = await client.post("/reports")
        assert created.status_code == 303
        page_url = created.headers["location"]
        run_id = page_url.rsplit("/", 1)[1]
        page = await client.get(page_url)
        assert page.status_code == 200 and f"/reports/{run_id}/events" in page.text
        assert (await client.get("/reports/<script>")).status_code == 404
        # Follow a few events, drop the connection (a reload), and come back.
        seen: list[str] = []
        async with client.stream("GET", f"/reports/{run_id}/events") as events:
            async for line in events.aiter_lines():
                if line.startswith("id: "):
                    seen.append(line[4:])
                if len(seen) == 3:
                    break
        assert seen == ["0", "1", "2"]
        reply = await client.get(f"/reports/{run_id}/events", headers={"Last-Event-ID": seen[-1]})
    ids = [line[4:] for line in reply.text.splitlines() if line.startswith("id: ")]
    assert ids == [str(i) for i in range(3, 9)]  # 4 sections x 2 updates, then "published"
    assert "event: end" in reply.text and '"status":"published"' in reply.text
    result = await workflowkit.api.get_run(run_id).return_value(timeout=10)
    assert result.startswith("revenue: ok")
