"""Webhook request bodies at the edge: framing, limits, short bodies, unknown tokens first.

Each test speaks raw HTTP/1.1 over a socket to a real server (uvicorn for ASGI, wsgiref and
werkzeug's threaded server for WSGI), because what matters here is exactly what a client
can put on the wire: a chunked body, a negative or malformed ``Content-Length``, a body
shorter than announced, a connection closed half-way. A request that delivers nothing must
leave no ``hook_received`` in the log: the tests check the log, then deliver a good request
and check that the run saw that one.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server as werkzeug_server

import workflowkit.asgi
import workflowkit.wsgi
from workflowkit import create_webhook, workflow
from workflowkit.api import Run, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import wait_for_hook
from workflowkit.worlds.records import EventType

PREFIX = "/.well-known/workflow/v1/webhook/"


@workflow
async def receives_one() -> str:
    request = await create_webhook()
    return request.text


@pytest.fixture
def serve_werkzeug() -> Iterator[Callable[[Any], str]]:
    """Serve a WSGI app with werkzeug's threaded server (it de-chunks request bodies)."""
    servers: list[Any] = []

    def serve(app: Any) -> str:
        server = werkzeug_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def exchange(
    base: str, raw: bytes, *, then: str = "wait", timeout: float = 5.0
) -> tuple[int, bytes] | None:
    """Send ``raw`` in one write; the response's status and body.

    ``then``: "wait" keeps the connection open for the answer, "half-close" ends the request
    stream (the server sees end of file) and reads the answer, "close" drops the connection
    at once and returns None.
    """
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(raw)
        if then == "close":
            return None
        if then == "half-close":
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection without an answer: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection in the middle of its answer"
            body += chunk
        return int(lines[0].split()[1]), body


def post(token: str, headers: str, body: bytes = b"") -> bytes:
    head = f"POST {PREFIX}{token} HTTP/1.1\r\nHost: test\r\n{headers}\r\n"
    return head.encode("latin-1") + body


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


async def webhook_token(run: Run[str]) -> str:
    return (await wait_for_hook(run)).token


async def nothing_delivered(runtime: Runtime, run: Run[str], settle: float = 0.3) -> None:
    await asyncio.sleep(settle)  # what would have been delivered is recorded by now
    events = await runtime.world.get_events(run.run_id)
    assert EventType.HOOK_RECEIVED not in [e.type for e in events]


async def delivers_after(base: str, run: Run[str], token: str) -> None:
    """A good request still reaches the run: the bad one before it delivered nothing."""
    reply = await asyncio.to_thread(exchange, base, post(token, "Content-Length: 4\r\n", b"good"))
    assert reply is not None and reply[0] == 202
    assert await run.return_value(timeout=10) == "good"


# -- WSGI ------------------------------------------------------------------------------------


async def test_wsgi_chunked_body_is_read_whole_when_the_server_dechunks(
    cached_runtime: Runtime, serve_werkzeug: Callable[[Any], str]
) -> None:
    base = serve_werkzeug(workflowkit.wsgi.app)
    run = await start(receives_one)
    token = await webhook_token(run)
    raw = post(token, "Transfer-Encoding: chunked\r\n", chunked(b"hello ", b"chunked ", b"world"))
    reply = await asyncio.to_thread(exchange, base, raw)
    assert reply is not None and reply[0] == 202
    assert await run.return_value(timeout=10) == "hello chunked world"


async def test_wsgi_chunked_body_over_the_limit_is_413(
    cached_runtime: Runtime,
    serve_werkzeug: Callable[[Any], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKFLOWKIT_MAX_WEBHOOK_BODY", "10")
    base = serve_werkzeug(workflowkit.wsgi.app)
    run = await start(receives_one)
    token = await webhook_token(run)
    raw = post(token, "Transfer-Encoding: chunked\r\n", chunked(b"123456", b"7890", b"X"))
    reply = await asyncio.to_thread(exchange, base, raw)
    assert reply is not None and reply[0] == 413
    await nothing_delivered(cached_runtime, run)
    await delivers_after(base, run, token)


async def test_wsgi_chunked_body_the_server_cannot_frame_is_411_not_an_empty_delivery(
    cached_runtime: Runtime, serve_wsgi: Callable[[Any], str]
) -> None:
    # wsgiref passes the raw chunked stream on without wsgi.input_terminated: the body's
    # end is unknown, so it cannot be read safely; it used to be delivered as b"" with 202.
    base = serve_wsgi(workflowkit.wsgi.app)
    run = await start(receives_one)
    token = await webhook_token(run)
    raw = post(token, "Transfer-Encoding: chunked\r\n", chunked(b"lost"))
    reply = await asyncio.to_thread(exchange, base, raw)
    assert reply is not None and reply[0] == 411
    await nothing_delivered(cached_runtime, run)
    await delivers_after(base, run, token)


@pytest.mark.parametrize("length", ["-1", "+4", "1_0", "4, 4", "0x10", "abc"])
async def test_wsgi_invalid_content_length_is_400_and_nothing_is_read(
    cached_runtime: Runtime, serve_wsgi: Callable[[Any], str], length: str
) -> None:
    # Content-Length: -1 used to read the whole stream, past the body limit, before even
    # looking the token up.
    base = serve_wsgi(workflowkit.wsgi.app)
    run = await start(receives_one)
    token = await webhook_token(run)
    raw = post(token, f"Content-Length: {length}\r\n", b"x" * 64)
    reply = await asyncio.to_thread(exchange, base, raw, then="half-close")
    assert reply is not None and reply[0] == 400
    assert b"Content-Length" in reply[1]
    await nothing_delivered(cached_runtime, run)
    await delivers_after(base, run, token)


async def test_wsgi_body_shorter_than_its_length_delivers_nothing(
    cached_runtime: Runtime, serve_wsgi: Callable[[Any], str]
) -> None:
    base = serve_wsgi(workflowkit.wsgi.app)
    run = await start(receives_one)
    token = await webhook_token(run)
    raw = post(token, "Content-Length: 1000\r\n", b"only 14 bytes!")
    reply = await asyncio.to_thread(exchange, base, raw, then="half-close")
    assert reply is not None and reply[0] == 400
    await nothing_delivered(cached_runtime, run)
    await delivers_after(base, run, token)


@pytest.mark.parametrize("server", ["wsgiref", "werkzeug"])
def test_wsgi_unknown_token_is_answered_before_the_body_is_read(
    cached_runtime: Runtime,
    serve_wsgi: Callable[[Any], str],
    serve_werkzeug: Callable[[Any], str],
    server: str,
) -> None:
    base = (serve_wsgi if server == "wsgiref" else serve_werkzeug)(workflowkit.wsgi.app)
    started = time.monotonic()
    # The body never comes: the answer must not wait for it.
    reply = exchange(base, post("no-such-token", "Content-Length: 1000\r\n"), timeout=3)
    assert reply is not None and reply[0] == 404
    assert time.monotonic() - started < 3


def test_wsgi_declared_length_over_the_limit_is_413_before_reading(
    cached_runtime: Runtime, serve_wsgi: Callable[[Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOWKIT_MAX_WEBHOOK_BODY", "10")
    base = serve_wsgi(workflowkit.wsgi.app)
    reply = exchange(base, post("no-such-token", "Content-Length: 300000000\r\n"), timeout=3)
    assert reply is not None and reply[0] == 413


# -- ASGI ------------------------------------------------------------------------------------


async def test_asgi_connection_closed_mid_body_delivers_nothing(
    cached_runtime: Runtime, serve_asgi: Callable[[Any], str]
) -> None:
    # It used to record hook_received with the 14 bytes that had arrived.
    base = serve_asgi(workflowkit.asgi.app)
    run = await start(receives_one)
    token = await webhook_token(run)
    raw = post(token, "Content-Length: 1000\r\n", b"only 14 bytes!")
    await asyncio.to_thread(exchange, base, raw, then="close")
    await nothing_delivered(cached_runtime, run, settle=0.5)
    await delivers_after(base, run, token)


async def test_asgi_unknown_token_is_answered_before_the_body_is_read(
    cached_runtime: Runtime, serve_asgi: Callable[[Any], str]
) -> None:
    base = serve_asgi(workflowkit.asgi.app)
    started = time.monotonic()
    raw = post("no-such-token", "Content-Length: 1000\r\n")
    reply = await asyncio.to_thread(exchange, base, raw, timeout=3)
    assert reply is not None and reply[0] == 404
    assert time.monotonic() - started < 3


async def test_asgi_chunked_body_over_the_limit_is_413(
    cached_runtime: Runtime, serve_asgi: Callable[[Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOWKIT_MAX_WEBHOOK_BODY", "10")
    base = serve_asgi(workflowkit.asgi.app)
    run = await start(receives_one)
    token = await webhook_token(run)
    raw = post(token, "Transfer-Encoding: chunked\r\n", chunked(b"123456", b"7890", b"X"))
    reply = await asyncio.to_thread(exchange, base, raw)
    assert reply is not None and reply[0] == 413
    await nothing_delivered(cached_runtime, run)
    await delivers_after(base, run, token)
