"""WorkflowChatTransport against a real server: uvicorn on a free port, a SQLite World, and a
chat session on a DurableAgent (pydantic-ai's FunctionModel). Interruptions come from
``Proxy``, an ASGI wrapper that cuts responses after a number of chunks, as a proxy's or a
function's timeout would: the transport itself is never mocked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from ai_agents import prompt_of
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, FunctionModel

import workflowkit
from workflowkit import workflow
from workflowkit.ai import (
    ChatTransportError,
    DurableAgent,
    ReconnectToStreamRequest,
    SendMessagesRequest,
    WorkflowChatTransport,
    chat_session,
    send_message,
)
from workflowkit.api import get_run, start
from workflowkit.http_streams import sse_response

RUN_ID = "x-workflow-run-id"


# -- the server: a chat session per conversation, as in examples/ai_chat ---------------------


def reply_to(prompt: str) -> str:
    return f"you said {prompt}: " + " ".join(f"w{i}" for i in range(12))


async def stream_reply(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    words = reply_to(prompt_of(messages)).split(" ")
    for index, word in enumerate(words):
        yield word if index == len(words) - 1 else word + " "


assistant = DurableAgent(Agent(FunctionModel(stream_function=stream_reply), name="transport-chat"))


@workflow(name="ai.transport_chat")
async def conversation(first: str) -> int:
    return len(await chat_session(assistant, first))


def text_of(body: dict[str, Any]) -> str:
    parts = body["messages"][-1]["parts"]
    return "".join(part["text"] for part in parts if part["type"] == "text")


def chat_app(bodies: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/api/chat")
    async def new_chat(request: Request) -> Response:
        body = await request.json()
        bodies.append(body)
        run = await start(conversation, text_of(body))
        response = await sse_response(request, run.run_id)
        response.headers[RUN_ID] = run.run_id
        return response

    @app.post("/api/chat/{run_id}")
    async def follow_up(run_id: str, request: Request) -> Response:
        body = await request.json()
        bodies.append(body)
        await send_message(run_id, text_of(body))
        return JSONResponse({"ok": True}, headers={RUN_ID: run_id})

    @app.get("/api/chat/{run_id}/stream")
    @app.get("/alt/{run_id}/stream")
    async def stream(request: Request, run_id: str) -> Response:
        return await sse_response(request, run_id)

    @app.post("/anonymous")
    async def anonymous(request: Request) -> Response:
        run = await start(conversation, "hi")
        return await sse_response(request, run.run_id)  # no x-workflow-run-id

    return app


# -- the proxy in front of it ----------------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    """Cut a response after ``after`` chunks: ``close`` ends the body as if it were complete,
    ``drop`` leaves it unfinished (the connection is lost); ``status`` answers at once."""

    after: int = 0
    how: str = "close"
    status: int | None = None


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]


class _CutOff(OSError):
    """What the app sees once the proxy hung up: the ASGI server's error for a gone client."""


@dataclass
class Proxy:
    """An ASGI wrapper: records each request and cuts the responses it is told to, in order
    of arrival per method (``cuts["GET"]``); others pass through."""

    app: Any
    cuts: dict[str, list[Cut]] = field(default_factory=lambda: {"GET": [], "POST": []})
    seen: list[Seen] = field(default_factory=list)
    rewind: bool = False  # serve every GET from chunk 0, as a server ignoring start_index

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        query = scope["query_string"].decode()
        self.seen.append(Seen(scope["method"], scope["path"], query, headers))
        if self.rewind and scope["method"] == "GET":
            scope = {**scope, "query_string": b"start_index=0"}
        planned = self.cuts.get(scope["method"], [])
        if not planned:
            return await self.app(scope, receive, send)
        await self._cut(planned.pop(0), scope, receive, send)

    async def _cut(self, cut: Cut, scope: Any, receive: Any, send: Any) -> None:
        if cut.status is not None:
            await send({"type": "http.response.start", "status": cut.status, "headers": []})
            await send({"type": "http.response.body", "body": b"busy"})
            return
        sent = 0
        hung_up = False

        async def cutting_send(message: dict[str, Any]) -> None:
            nonlocal sent, hung_up
            body = message.get("body", b"")
            if message["type"] == "http.response.body" and body.startswith(b"id: "):
                if sent == cut.after:
                    hung_up = True
                    if cut.how == "close":
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    raise _CutOff("cut by the proxy")
                sent += 1
            await send(message)

        try:
            await self.app(scope, receive, cutting_send)
        except Exception:  # the app stopped on the hang-up (as it is, or wrapped by Starlette)
            if not hung_up:
                raise


# -- fixtures and helpers --------------------------------------------------------------------


@dataclass
class Server:
    url: str
    proxy: Proxy
    bodies: list[dict[str, Any]]

    def gets(self) -> list[Seen]:
        return [seen for seen in self.proxy.seen if seen.method == "GET"]


@pytest.fixture
def server(tmp_path: Path, serve_asgi: Callable[[Any], str]) -> Iterator[Server]:
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", poll_interval=0.05)
    bodies: list[dict[str, Any]] = []
    proxy = Proxy(chat_app(bodies))
    try:
        yield Server(serve_asgi(proxy), proxy, bodies)
    finally:
        workflowkit.shutdown()


def user(text: str) -> dict[str, Any]:
    return {"id": f"m-{text}", "role": "user", "parts": [{"type": "text", "text": text}]}


def text(chunks: list[dict[str, Any]]) -> str:
    return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")


async def turn(run_id: str, start_index: int = 0) -> list[dict[str, Any]]:
    """The stream as the World holds it, from ``start_index`` through the next finish."""
    chunks = []
    async with asyncio.timeout(20):
        async for chunk in get_run(run_id).get_readable(start_index=start_index):
            chunks.append(chunk)
            if chunk["type"] == "finish":
                return chunks
    raise AssertionError("the stream ended without a finish chunk")


async def collect(chunks: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    async with asyncio.timeout(30):
        return [chunk async for chunk in chunks]


class Recorder:
    def __init__(self) -> None:
        self.run_ids: list[str] = []
        self.sent: list[tuple[int, list[Any]]] = []
        self.ended: list[tuple[str, int]] = []

    async def on_send(self, response: httpx.Response, messages: Any) -> None:
        self.run_ids.append(response.headers[RUN_ID])
        self.sent.append((response.status_code, list(messages)))

    def on_end(self, chat_id: str, chunk_index: int) -> None:
        self.ended.append((chat_id, chunk_index))


# -- the tests -------------------------------------------------------------------------------


async def test_a_message_gets_its_reply_through_finish_and_the_run_from_the_header(
    server: Server,
) -> None:
    calls = Recorder()
    async with WorkflowChatTransport(server.url, on_chat_send_message=calls.on_send) as chat:
        chunks = await collect(chat.send_messages([user("hello")]))
    [run_id] = calls.run_ids
    assert chunks == await turn(run_id)
    assert chunks[0] == {"type": "data-user-message", "data": {"id": "user-1", "text": "hello"}}
    assert text(chunks) == reply_to("hello")
    assert chunks[-1] == {"type": "finish"}
    assert server.bodies == [{"messages": [user("hello")]}]
    assert [(s.method, s.path) for s in server.proxy.seen] == [("POST", "/api/chat")]


async def test_a_cut_reply_is_resumed_and_each_chunk_comes_once(server: Server) -> None:
    server.proxy.cuts["POST"] = [Cut(3, "drop")]
    server.proxy.cuts["GET"] = [Cut(2, "close"), Cut(0, "drop")]
    calls = Recorder()
    async with WorkflowChatTransport(server.url, on_chat_send_message=calls.on_send) as chat:
        chunks = await collect(chat.send_messages([user("hello")]))
    [run_id] = calls.run_ids
    assert chunks == await turn(run_id)
    assert text(chunks) == reply_to("hello")
    # From the chunk after the last one received: 3 after the POST, 5 after the first GET,
    # 5 again after a GET that brought nothing.
    assert [(s.path, s.query) for s in server.gets()] == [
        (f"/api/chat/{run_id}/stream", "start_index=3"),
        (f"/api/chat/{run_id}/stream", "start_index=5"),
        (f"/api/chat/{run_id}/stream", "start_index=5"),
    ]


async def test_chunks_a_server_sends_again_are_skipped(server: Server) -> None:
    server.proxy.cuts["POST"] = [Cut(4, "close")]
    server.proxy.rewind = True  # the GET serves the stream from chunk 0 again
    calls = Recorder()
    async with WorkflowChatTransport(server.url, on_chat_send_message=calls.on_send) as chat:
        chunks = await collect(chat.send_messages([user("hello")]))
    assert chunks == await turn(calls.run_ids[0])
    assert len(server.gets()) == 1


async def test_after_max_consecutive_errors_it_raises(server: Server) -> None:
    server.proxy.cuts["POST"] = [Cut(2, "drop")]
    server.proxy.cuts["GET"] = [Cut(1), Cut(0), Cut(status=503), Cut(0, "drop"), Cut(0)]
    calls = Recorder()
    chunks: list[dict[str, Any]] = []
    transport = WorkflowChatTransport(
        server.url, on_chat_send_message=calls.on_send, on_chat_end=calls.on_end
    )
    async with transport:
        with pytest.raises(ChatTransportError, match="after 3 attempts in a row") as caught:
            async with asyncio.timeout(30):
                async for chunk in transport.send_messages([user("hello")]):
                    chunks.append(chunk)
    [run_id] = calls.run_ids
    assert chunks == (await turn(run_id))[:3]
    # The GET that brought a chunk reset the count; the three after it brought none.
    assert [s.query for s in server.gets()] == ["start_index=2"] + ["start_index=3"] * 3
    assert caught.value.run_id == run_id
    assert caught.value.next_index == 3
    assert isinstance(caught.value.__cause__, httpx.TransportError)
    assert calls.ended == []


async def test_a_retried_status_counts_as_a_failure_and_a_refusal_ends_at_once(
    server: Server,
) -> None:
    server.proxy.cuts["GET"] = [Cut(status=503)] * 2
    async with WorkflowChatTransport(server.url, max_consecutive_errors=2) as chat:
        with pytest.raises(ChatTransportError) as busy:
            await collect(chat.reconnect_to_stream("wrun_busy"))
        assert busy.value.status_code == 503
        assert len(server.gets()) == 2
        with pytest.raises(ChatTransportError, match="answered 404") as missing:
            await collect(chat.reconnect_to_stream("wrun_nope"))
    assert missing.value.status_code == 404 and missing.value.next_index == 0
    assert len(server.gets()) == 3


async def test_reconnect_to_stream_resumes_at_the_chunk_it_is_given(server: Server) -> None:
    calls = Recorder()
    async with WorkflowChatTransport(server.url, on_chat_send_message=calls.on_send) as chat:
        first = await collect(chat.send_messages([user("hello")]))
    run_id = calls.run_ids[0]
    async with WorkflowChatTransport(server.url, on_chat_end=calls.on_end) as later:
        resumed = await collect(later.reconnect_to_stream(run_id, start_index=4))
        from_start = await collect(later.reconnect_to_stream(run_id))
    assert resumed == first[4:]
    assert from_start == first
    assert [s.query for s in server.gets()] == ["start_index=4", "start_index=0"]
    assert calls.ended == [(run_id, len(first)), (run_id, len(first))]


async def test_a_follow_up_reads_only_its_own_reply(server: Server) -> None:
    calls = Recorder()
    transport = WorkflowChatTransport(
        server.url, on_chat_send_message=calls.on_send, on_chat_end=calls.on_end
    )
    async with transport:
        first = await collect(transport.send_messages([user("hello")]))
        run_id = calls.run_ids[0]
        second = await collect(transport.send_messages([user("again")], run_id=run_id))
    assert second == await turn(run_id, len(first))
    assert second[0]["data"]["text"] == "again" and text(second) == reply_to("again")
    assert [(s.method, s.path) for s in server.proxy.seen[1:]] == [
        ("POST", f"/api/chat/{run_id}"),
        ("GET", f"/api/chat/{run_id}/stream"),
    ]
    assert server.gets()[0].query == f"start_index={len(first)}"
    assert calls.ended == [(run_id, len(first)), (run_id, len(first) + len(second))]
    async with WorkflowChatTransport(server.url) as stranger:
        with pytest.raises(ValueError, match="start_index"):
            await collect(stranger.send_messages([user("x")], run_id=run_id))
        where = calls.ended[-1][1]
        third = stranger.send_messages([user("more")], run_id=run_id, start_index=where)
        assert text(await collect(third)) == reply_to("more")


async def test_callbacks_and_prepare_hooks_get_what_the_docs_say(server: Server) -> None:
    server.proxy.cuts["POST"] = [Cut(2, "drop")]
    prepared: list[Any] = []
    calls = Recorder()

    def prepare_send(request: SendMessagesRequest) -> SendMessagesRequest:
        prepared.append(request)
        headers = {**request.headers, "authorization": "Bearer send"}
        return replace(request, headers=headers, body={**request.body, "extra": 1})

    async def prepare_reconnect(request: ReconnectToStreamRequest) -> ReconnectToStreamRequest:
        prepared.append(request)
        url = request.url.replace("/api/chat/", "/alt/")
        return replace(request, url=url, headers={**request.headers, "authorization": "Bearer r"})

    transport = WorkflowChatTransport(
        server.url,
        headers={"X-App": "tests"},
        prepare_send_messages_request=prepare_send,
        prepare_reconnect_to_stream_request=prepare_reconnect,
        on_chat_send_message=calls.on_send,
        on_chat_end=calls.on_end,
    )
    async with transport:
        chunks = await collect(transport.send_messages([user("hi")], chat_id="chat-1"))
    run_id = calls.run_ids[0]
    assert chunks == await turn(run_id)
    headers = {"x-app": "tests", "accept": "text/event-stream"}
    assert prepared == [
        SendMessagesRequest(
            url=f"{server.url}/api/chat",
            headers=headers,
            body={"messages": [user("hi")]},
            messages=[user("hi")],
            chat_id="chat-1",
            run_id=None,
        ),
        ReconnectToStreamRequest(
            url=f"{server.url}/api/chat/{run_id}/stream",
            headers=headers,
            chat_id="chat-1",
            run_id=run_id,
            start_index=2,
        ),
    ]
    post, get = server.proxy.seen
    assert post.headers["authorization"] == "Bearer send" and post.headers["x-app"] == "tests"
    assert server.bodies == [{"messages": [user("hi")], "extra": 1}]
    assert (get.path, get.query) == (f"/alt/{run_id}/stream", "start_index=2")
    assert get.headers["authorization"] == "Bearer r" and get.headers["x-app"] == "tests"
    assert calls.sent == [(200, [user("hi")])]
    assert calls.ended == [("chat-1", len(chunks))]


async def test_an_endpoint_that_does_not_name_its_run_is_an_error(server: Server) -> None:
    async with WorkflowChatTransport(server.url, api="/anonymous") as chat:
        with pytest.raises(ChatTransportError, match="x-workflow-run-id"):
            await collect(chat.send_messages([user("hi")]))


async def test_a_client_given_is_used_and_left_open(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        async with WorkflowChatTransport(client=client) as chat:
            chunks = await collect(chat.send_messages([user("hello")]))
            assert chat.client is client
        assert not client.is_closed
    assert text(chunks) == reply_to("hello")
    owned = WorkflowChatTransport(server.url)
    async with owned:
        pass
    assert owned.client.is_closed
    with pytest.raises(ValueError, match="base_url"):
        WorkflowChatTransport()


# -- the example app -------------------------------------------------------------------------


async def test_the_example_app_streams_to_the_transport(
    tmp_path: Path,
    serve_asgi: Callable[[Any], str],
    monkeypatch: pytest.MonkeyPatch,
    ai_chat_example: ModuleType,
) -> None:
    example = ai_chat_example
    monkeypatch.setattr(example, "WORD_DELAY", 0.0)
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", poll_interval=0.05)
    try:
        url = serve_asgi(example.app)
        calls = Recorder()
        async with WorkflowChatTransport(url, on_chat_send_message=calls.on_send) as chat:
            first = await collect(chat.send_messages([user("hello")]))
            run_id = calls.run_ids[0]
            second = await collect(chat.send_messages([user("again")], run_id=run_id))
            # The page posts {"message": ...} without asking for events: JSON, as before.
            page = await chat.client.post(f"{url}/api/chat", json={"message": "hi"})
        assert text(first) == example.demo_reply("hello")
        assert text(second) == example.demo_reply("again")
        assert page.json() == {"runId": page.headers[RUN_ID]}
    finally:
        workflowkit.shutdown()
