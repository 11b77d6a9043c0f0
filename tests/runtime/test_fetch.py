"""fetch as a built-in step, against a real local HTTP server; resume_webhook in code."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workflowkit import (
    Request,
    Response,
    RetryableError,
    WorkflowRunFailedError,
    create_webhook,
    fetch,
    step,
    workflow,
)
from workflowkit.api import resume_webhook, start
from workflowkit.runtime.runtime import Runtime

HITS: Counter[str] = Counter()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        HITS[self.path] += 1
        if self.path.startswith("/flaky") and HITS[self.path] <= 2:
            self._reply(503, b"busy", [])
        elif self.path.startswith("/binary"):
            self._reply(200, bytes(range(256)), [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        else:
            self._reply(
                200,
                json.dumps({"path": self.path}).encode(),
                [("Content-Type", "application/json")],
            )

    def do_POST(self) -> None:
        HITS[self.path] += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        echo = {
            "body": body.decode(),
            "type": self.headers.get("Content-Type"),
            "x": self.headers.get("X-Test"),
        }
        self._reply(201, json.dumps(echo).encode(), [("Content-Type", "application/json")])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@workflow
async def get_json(url: str) -> object:
    response = await fetch(url)
    return response.json()


async def test_fetch_is_a_step_recorded_once(runtime: Runtime, server: str) -> None:
    path = f"/data/{uuid.uuid4().hex}"
    run = await start(get_json, server + path)
    assert await run.return_value(timeout=10) == {"path": path}
    # The "replay" runtime rebuilds the run from the log at every event: still one request.
    assert HITS[path] == 1
    (recorded,) = await runtime.world.list_steps(run.run_id)
    assert recorded.step_name == "workflowkit.fetch"


@step
async def fetch_or_retry(url: str) -> object:
    response = await fetch(url)  # a plain call inside a step
    if response.status >= 500:
        raise RetryableError(f"server said {response.status}", retry_after=0.01)
    return response.json()


@workflow
async def retries_5xx(url: str) -> object:
    return await fetch_or_retry(url)


async def test_retry_on_5xx_through_a_step(runtime: Runtime, server: str) -> None:
    path = f"/flaky/{uuid.uuid4().hex}"
    run = await start(retries_5xx, server + path)
    assert await run.return_value(timeout=10) == {"path": path}
    assert HITS[path] == 3


@workflow
async def posts(url: str) -> tuple[int, object]:
    response = await fetch(
        url, method="POST", json={"a": 1}, headers={"X-Test": "yes"}, params={"q": "1"}
    )
    return response.status, response.json()


@workflow
async def posts_a_body(url: str) -> tuple[int, object]:
    # The web fetch's name for the request body: the same as content=.
    response = await fetch(url, method="POST", body='{"b": 2}', headers={"X-Test": "body"})
    return response.status, response.json()


@workflow
async def binary(url: str) -> tuple[bytes, list[str]]:
    response = await fetch(url)
    cookies = [value for key, value in response.headers if key.lower() == "set-cookie"]
    return response.content, cookies


async def test_methods_bodies_and_repeated_headers(runtime: Runtime, server: str) -> None:
    run = await start(posts, server + "/echo")
    status, echo = await run.return_value(timeout=10)
    assert status == 201
    assert echo == {"body": '{"a":1}', "type": "application/json", "x": "yes"}
    status, echo = await (await start(posts_a_body, server + "/echo")).return_value(timeout=10)
    assert status == 201 and echo["body"] == '{"b": 2}' and echo["x"] == "body"
    run = await start(binary, server + "/binary")
    content, cookies = await run.return_value(timeout=10)
    assert content == bytes(range(256)) and cookies == ["a=1", "b=2"]


@workflow
async def urllib_in_workflow(url: str) -> bytes:
    return bytes(urllib.request.urlopen(url).read())


async def test_direct_http_in_workflow_code_points_to_fetch(runtime: Runtime, server: str) -> None:
    run = await start(urllib_in_workflow, server + "/nope")
    with pytest.raises(WorkflowRunFailedError) as info:
        await run.return_value(timeout=10)
    assert "WorkflowIOError" in info.value.error_type
    assert "workflowkit.fetch" in info.value.error_message


@step
async def reply(request: Request) -> None:
    await request.respond_with(Response.json_body({"seen": request.form()}, status=200))


@workflow
async def manual_hook(name: str) -> bytes:
    webhook = create_webhook(respond_with="manual")
    await publish_token(name, webhook.token)
    request = await webhook
    await reply(request)
    return request.body


TOKENS: dict[str, str] = {}


@step
def publish_token(name: str, token: str) -> None:
    TOKENS[name] = token


async def test_resume_webhook_in_code_manual_mode(runtime: Runtime) -> None:
    import asyncio

    name = f"manual-{uuid.uuid4().hex}"
    run = await start(manual_hook, name)
    for _ in range(500):
        if name in TOKENS:
            break
        await asyncio.sleep(0.01)
    form = Request(
        "POST",
        "http://x/hook",
        (("content-type", "application/x-www-form-urlencoded"),),
        b"a=1&b=two",
    )
    response = await resume_webhook(TOKENS[name], form)
    assert response.status == 200 and response.json() == {"seen": {"a": "1", "b": "two"}}
    assert await run.return_value(timeout=10) == b"a=1&b=two"


def test_request_and_response_round_trip_through_the_codec() -> None:
    from workflowkit import serde

    body = bytes(range(256)) * 20_000  # 5 MB of binary
    request = Request("PUT", "http://x/a?b=1", (("x", "1"), ("x", "2")), body, reply_to="wrsp_1")
    response = Response(418, (("set-cookie", "a"), ("set-cookie", "b")), body, "http://x/a")
    for value in (request, response):
        encoded = serde.encode(value)
        assert serde.decode(encoded) == value
        assert len(encoded) < len(body) + 1000  # raw bytes, no base64 bloat


def test_ok_means_a_2xx_status_as_on_the_web() -> None:
    assert [Response(status).ok for status in (200, 204, 299, 302, 404, 500)] == [
        True, True, True, False, False, False
    ]  # fmt: skip
