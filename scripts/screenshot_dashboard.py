"""Take docs/img/run-detail.png: a demo run on a throwaway database, shown by the dashboard.

Run it with the project's virtualenv: ``.venv/bin/python scripts/screenshot_dashboard.py``.
It uses Debian's Chromium (/usr/bin/chromium) through Playwright, like the browser tests.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

import workflowkit
from workflowkit import RetryableError, create_hook, get_step_metadata, sleep, step, workflow
from workflowkit.api import get_run, resume_hook, start
from workflowkit.web import create_app

OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "run-detail.png"


@step
async def validate(order_id: str) -> dict[str, str]:
    await asyncio.sleep(0.05)
    return {"order_id": order_id, "customer": "ada@example.com"}


@step
async def charge(order_id: str, cents: int) -> str:
    await asyncio.sleep(0.08)
    if get_step_metadata().attempt < 3:
        raise RetryableError("payment gateway timed out", retry_after=0.1)
    return f"ch_{order_id}"


@step
async def reserve(sku: str) -> str:
    await asyncio.sleep(0.12)
    return f"reserved {sku}"


@step
async def ship(order_id: str) -> str:
    await asyncio.sleep(0.06)
    return f"shipped {order_id}"


@workflow(name="orders.place")
async def place_order(order_id: str, cents: int) -> dict[str, str]:
    await validate(order_id)
    receipt, *_ = await asyncio.gather(charge(order_id, cents), reserve("sku-1"), reserve("sku-2"))
    await sleep(0.3)
    approval = await create_hook(token=f"approve:{order_id}", metadata={"cents": cents})
    shipped = await ship(order_id)
    return {"receipt": receipt, "approved_by": approval["by"], "shipping": shipped}


async def _demo() -> str:
    run = await start(place_order, "o-1042", 12_500)
    for _ in range(500):
        try:
            await resume_hook("approve:o-1042", {"by": "grace"})
            break
        except workflowkit.HookNotFoundError:
            await asyncio.sleep(0.02)
    await get_run(run.run_id).return_value(timeout=20)
    return run.run_id


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder / 'demo.db'}"
    workflowkit.configure(url, poll_interval=0.05)
    run_id = asyncio.run(_demo())
    server = uvicorn.Server(uvicorn.Config(create_app(url), port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/runs/{run_id}")
            page.locator(".track[data-state=retrying] .bar").first.click()
            OUT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUT))  # the top of the page: header, timeline, details
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
        workflowkit.shutdown()
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
