"""A long report workflow whose progress streams to the browser, surviving reloads.

    uvicorn examples.report_streaming:app      then open http://127.0.0.1:8000/

POST /reports               starts a report run and redirects to its page
GET  /reports/{run_id}      a page following the run's progress live (Server-Sent Events)
GET  /reports/{run_id}/events   the SSE stream; reconnects resume after Last-Event-ID

The progress lives in the run's stream, stored durably: reloading the page, or opening it
after the run finished, replays everything so far and then follows along.
"""

from __future__ import annotations

import asyncio
import re

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from workflowkit import get_writable, step, workflow
from workflowkit.api import start
from workflowkit.http_streams import sse_response

SECTIONS = ("revenue", "costs", "customers", "forecast")
RUN_ID = re.compile(r"wrun_[0-9A-Za-z]+")


@step
async def render_section(name: str, number: int, total: int) -> str:
    progress = get_writable()
    await progress.write({"section": name, "status": "started"})
    await asyncio.sleep(0.2)  # the slow part: queries, charts, an LLM call...
    await progress.write({"section": name, "status": "done", "percent": 100 * number // total})
    return f"{name}: ok"


@step
async def publish(parts: list[str]) -> str:
    async with get_writable() as progress:  # closing tells readers the report is ready
        await progress.write({"status": "published", "sections": len(parts)})
    return "; ".join(parts)


@workflow
async def build_report(sections: list[str]) -> str:
    parts = []
    for number, name in enumerate(sections, start=1):
        parts.append(await render_section(name, number, len(sections)))
    return await publish(parts)


app = FastAPI()

_PAGE = """<!doctype html>
<meta charset="utf-8"><title>Report {run_id}</title>
<h1>Report {run_id}</h1><ol id="log"></ol>
<script>
const log = document.getElementById("log");
const events = new EventSource("/reports/{run_id}/events");
events.onmessage = (e) => {{
  const item = document.createElement("li");
  item.textContent = e.data;
  log.appendChild(item);
}};
events.addEventListener("end", () => events.close());
</script>
"""


@app.get("/", response_class=HTMLResponse)
async def index() -> str:
    return '<form method="post" action="/reports"><button>Build a report</button></form>'


@app.post("/reports")
async def create_report() -> RedirectResponse:
    run = await start(build_report, list(SECTIONS))
    return RedirectResponse(f"/reports/{run.run_id}", status_code=303)


@app.get("/reports/{run_id}", response_class=HTMLResponse)
async def report_page(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):  # it is written into a script below
        raise HTTPException(404, "no such report")
    return _PAGE.format(run_id=run_id)


@app.get("/reports/{run_id}/events")
async def report_events(run_id: str, request: Request) -> Response:
    return await sse_response(request, run_id)
