"""Serving a run's stream over HTTP: Server-Sent Events and plain streaming bodies.

Framework-neutral generators (``event_stream`` for ASGI servers, ``event_stream_sync`` for
WSGI) plus ready-made responses for Starlette/FastAPI and Flask. Chunks are rendered as
JSON from their stored form, without rebuilding any class, so the web tier never runs code
named by stored data: text as a JSON string, bytes as ``{"$base64": ...}``, other values as
the codec's display rendering (``workflowkit.serde.display``).

SSE events carry the chunk's index as ``id``; a browser's ``EventSource`` sends it back as
``Last-Event-ID`` when it reconnects, and the stream resumes right after it. When the
stream ends an ``end`` event is sent, so the client can stop reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from . import _operations
from .errors import WorkflowRunNotFoundError
from .runtime.runtime import get_runtime
from .streams import Readable, chunk_json
from .worlds.records import ChunkKind, StreamChunk

if TYPE_CHECKING:
    import flask
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import Response as StarletteResponse

__all__ = [
    "event_stream",
    "event_stream_sync",
    "flask_sse_response",
    "sse_response",
    "start_index_from",
    "stream_response",
]

HEARTBEAT = 15.0
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _render_body(chunk: StreamChunk) -> bytes:
    """Plain bodies: text and bytes as they are, other values as one JSON line each."""
    if chunk.kind is ChunkKind.VALUE or chunk.kind is ChunkKind.ENCRYPTED:
        return json.dumps(chunk_json(chunk)).encode() + b"\n"
    return chunk.data


def start_index_from(last_event_id: str | None, start_index: int | str | None = None) -> int:
    """Where to resume: after ``Last-Event-ID`` if the client sent one, else ``start_index``.

    Raises ``ValueError`` with a message fit for a 400 response on malformed input.
    """
    if last_event_id:
        try:
            return int(last_event_id) + 1
        except ValueError:
            raise ValueError(
                f"Last-Event-ID must be a chunk index, got {last_event_id!r}"
            ) from None
    if start_index in (None, ""):
        return 0
    try:
        return int(start_index)
    except ValueError:
        raise ValueError(f"start_index must be an integer, got {start_index!r}") from None


def _frame(event: str | None, data: Any, event_id: int | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return ("\n".join(lines) + "\n\n").encode()


async def event_stream(
    run_id: str,
    namespace: str | None = None,
    *,
    start_index: int = 0,
    heartbeat: float = HEARTBEAT,
) -> AsyncGenerator[bytes, None]:
    """The stream as SSE bytes, live until it ends; a comment line every ``heartbeat`` s
    of silence keeps proxies from dropping the connection."""
    reader = Readable(get_runtime().world, run_id, namespace, start_index, chunk_json)
    pending: asyncio.Task[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(reader.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                value = pending.result()
            except StopAsyncIteration:
                yield _frame("end", {"next_index": reader.index})
                return
            finally:
                pending = None
            yield _frame(None, value, reader.index - 1)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await reader.aclose()


async def _body_stream(
    run_id: str, namespace: str | None, start_index: int
) -> AsyncIterator[bytes]:
    reader = Readable(get_runtime().world, run_id, namespace, start_index, _render_body)
    try:
        async for body in reader:
            yield body
    finally:
        await reader.aclose()


def event_stream_sync(
    run_id: str,
    namespace: str | None = None,
    *,
    start_index: int = 0,
    heartbeat: float = HEARTBEAT,
) -> Iterator[bytes]:
    """``event_stream`` for WSGI servers: a blocking iterator of SSE bytes."""
    runtime = get_runtime()
    frames = event_stream(run_id, namespace, start_index=start_index, heartbeat=heartbeat)
    try:
        while True:
            try:
                yield runtime.call(frames.__anext__())
            except StopAsyncIteration:
                return
    finally:
        runtime.call(frames.aclose())


async def _unknown_run(run_id: str) -> str | None:
    """The error message for a run that does not exist; None if it does."""
    try:
        await _operations.require_run(get_runtime().world, run_id)
    except WorkflowRunNotFoundError as exc:
        return str(exc)
    return None


async def sse_response(
    request: StarletteRequest, run_id: str, namespace: str | None = None
) -> StarletteResponse:
    """A Starlette/FastAPI response streaming the run's stream as Server-Sent Events.

    Resumes after the request's ``Last-Event-ID`` header, else at its ``?start_index=``;
    404 for an unknown run, 400 for a malformed index.
    """
    from starlette.responses import JSONResponse, StreamingResponse

    try:
        start = start_index_from(
            request.headers.get("last-event-id"), request.query_params.get("start_index")
        )
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    if (unknown := await _unknown_run(run_id)) is not None:
        return JSONResponse({"error": unknown}, status_code=404)
    return StreamingResponse(
        event_stream(run_id, namespace, start_index=start),
        media_type="text/event-stream",
        headers=_SSE_HEADERS,
    )


async def stream_response(
    request: StarletteRequest,
    run_id: str,
    namespace: str | None = None,
    media_type: str = "text/plain; charset=utf-8",
) -> StarletteResponse:
    """A plain streaming body: text and bytes chunks as they are, other values as JSON
    lines; starts at ``?start_index=``."""
    from starlette.responses import JSONResponse, StreamingResponse

    try:
        start = start_index_from(None, request.query_params.get("start_index"))
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    if (unknown := await _unknown_run(run_id)) is not None:
        return JSONResponse({"error": unknown}, status_code=404)
    return StreamingResponse(_body_stream(run_id, namespace, start), media_type=media_type)


def flask_sse_response(run_id: str, namespace: str | None = None) -> flask.Response:
    """A Flask response streaming the run's stream as Server-Sent Events (see
    ``sse_response``); call it inside a request."""
    import flask

    try:
        start = start_index_from(
            flask.request.headers.get("Last-Event-ID"), flask.request.args.get("start_index")
        )
    except ValueError as exc:
        return flask.Response(json.dumps({"error": str(exc)}), 400, mimetype="application/json")
    if (unknown := get_runtime().call(_unknown_run(run_id))) is not None:
        body = json.dumps({"error": unknown})
        return flask.Response(body, 404, mimetype="application/json")
    return flask.Response(
        event_stream_sync(run_id, namespace, start_index=start),
        mimetype="text/event-stream",
        headers=_SSE_HEADERS,
    )
