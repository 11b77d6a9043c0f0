"""Streams over real HTTP: SSE and plain bodies from FastAPI (uvicorn) and Flask (wsgiref)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastapi
import flask
import httpx

from workflowkit import create_hook, get_writable, step, workflow
from workflowkit import sync as wsync
from workflowkit.api import resume_hook, start
from workflowkit.http_streams import (
    event_stream,
    flask_sse_response,
    sse_response,
    stream_response,
)
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import wait_for_hook


@dataclass(frozen=True)
class SseEvent:
    id: int | None
    event: str
    data: Any


def parse_sse(text: str) -> list[SseEvent]:
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if "data" in fields:
            event_id = int(fields["id"]) if "id" in fields else None
            events.append(
                SseEvent(event_id, fields.get("event", "message"), json.loads(fields["data"]))
            )
    return events


@step
async def emit(values: list[Any]) -> None:
    writer = get_writable()
    for value in values:
        await writer.write(value)


@workflow
async def talker(token: str) -> None:
    await emit(["one", b"\x00bytes", {"n": 3}])
    await create_hook(token=token)
    await emit(["four", "five"])


def fastapi_app() -> fastapi.FastAPI:
    app = fastapi.FastAPI()

    @app.get("/runs/{run_id}/events")
    async def events(run_id: str, request: fastapi.Request) -> fastapi.Response:
        return await sse_response(request, run_id)

    @app.get("/runs/{run_id}/body")
    async def body(run_id: str, request: fastapi.Request) -> fastapi.Response:
        return await stream_response(request, run_id)

    return app


async def read_events(
    client: httpx.AsyncClient, url: str, count: int, **headers: str
) -> list[SseEvent]:
    """Read ``count`` events (or until the stream ends), then drop the connection."""
    seen: list[SseEvent] = []
    buffer = ""
    async with client.stream("GET", url, headers=headers) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        async for text in reply.aiter_text():
            buffer += text
            *blocks, buffer = buffer.split("\n\n")
            for block in blocks:
                seen.extend(parse_sse(block + "\n\n"))
            if len(seen) >= count or any(e.event == "end" for e in seen):
                break
    return seen


async def test_sse_resumes_after_last_event_id(
    cached_runtime: Runtime, serve_asgi: Callable[[Any], str]
) -> None:
    base = serve_asgi(fastapi_app())
    token = f"sse:{uuid.uuid4().hex}"
    run = await start(talker, token)
    url = f"{base}/runs/{run.run_id}/events"
    async with httpx.AsyncClient(timeout=20) as client:
        first = await read_events(client, url, 2)
        assert [(e.id, e.data) for e in first] == [(0, "one"), (1, {"$base64": "AGJ5dGVz"})]
        # The browser reconnects with the last id it saw: nothing is missed or repeated.
        await wait_for_hook(run, token, timeout=10)
        await resume_hook(token, None)
        rest = await read_events(client, url, 10, **{"Last-Event-ID": "1"})
        assert [e.data for e in rest if e.event == "message"] == [{"n": 3}, "four", "five"]
        assert [e.id for e in rest if e.event == "message"] == [2, 3, 4]
        assert rest[-1].event == "end" and rest[-1].data == {"next_index": 5}
        # ?start_index= works for clients that are not EventSource.
        tail = await read_events(client, url + "?start_index=-1", 10)
        assert [e.data for e in tail] == ["five", {"next_index": 5}]


async def test_http_errors_are_4xx(
    cached_runtime: Runtime, serve_asgi: Callable[[Any], str]
) -> None:
    base = serve_asgi(fastapi_app())
    async with httpx.AsyncClient(timeout=20) as client:
        missing = await client.get(f"{base}/runs/wrun_nope/events")
        assert missing.status_code == 404 and "wrun_nope" in missing.json()["error"]
        run = await start(talker, f"sse:{uuid.uuid4().hex}")
        bad = await client.get(f"{base}/runs/{run.run_id}/events", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]
        bad_index = await client.get(f"{base}/runs/{run.run_id}/body?start_index=x")
        assert bad_index.status_code == 400
        await run.cancel()


@workflow
async def short_talker() -> None:
    await emit(["plain ", b"bytes ", {"json": True}])


async def test_plain_body_stream(cached_runtime: Runtime, serve_asgi: Callable[[Any], str]) -> None:
    base = serve_asgi(fastapi_app())
    run = await start(short_talker)
    async with httpx.AsyncClient(timeout=20) as client:
        reply = await client.get(f"{base}/runs/{run.run_id}/body")
    assert reply.status_code == 200
    assert reply.content == b'plain bytes {"json": true}\n'


async def test_idle_streams_send_heartbeats(cached_runtime: Runtime) -> None:
    token = f"sse:{uuid.uuid4().hex}"
    run = await start(talker, token)
    frames = event_stream(run.run_id, start_index=3, heartbeat=0.05)
    assert await asyncio.wait_for(frames.__anext__(), 10) == b": keep-alive\n\n"
    await frames.aclose()
    await run.cancel()


def test_flask_sse(cached_runtime: Runtime, serve_wsgi: Callable[[Any], str]) -> None:
    app = flask.Flask(__name__)

    @app.get("/runs/<run_id>/events")
    def events(run_id: str) -> flask.Response:
        return flask_sse_response(run_id)

    base = serve_wsgi(app)
    run = wsync.start(short_talker)
    with httpx.Client(timeout=20) as client:
        reply = client.get(f"{base}/runs/{run.run_id}/events", headers={"Last-Event-ID": "0"})
        assert reply.status_code == 200
        events = parse_sse(reply.text)
        assert [e.data for e in events] == [
            {"$base64": "Ynl0ZXMg"},
            {"json": True},
            {"next_index": 3},
        ]
        assert client.get(f"{base}/runs/wrun_nope/events").status_code == 404
