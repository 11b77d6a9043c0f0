"""Webhooks through real HTTP servers: uvicorn (ASGI, alone and mounted in FastAPI) and wsgiref."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import fastapi
import httpx
import pytest

import workflowkit.asgi
import workflowkit.wsgi
from workflowkit import (
    Request,
    Response,
    WebhookTokenError,
    create_hook,
    create_webhook,
    define_hook,
    step,
    sync,
    workflow,
)
from workflowkit.api import resume_hook, resume_webhook, start
from workflowkit.errors import HookNotFoundError, HookTokenError
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import wait_for_hook
from workflowkit.worlds.records import EventType

URLS: dict[str, str] = {}


@step
def publish(key: str, url: str) -> None:
    URLS[key] = url


@workflow
async def receives(key: str) -> dict[str, object]:
    webhook = create_webhook()
    await publish(key, webhook.url)
    request = await webhook
    return {"method": request.method, "query": request.query, "body": request.text}


@workflow
async def static_reply(key: str) -> str:
    webhook = create_webhook(respond_with=Response.json_body({"ok": True}, status=201))
    await publish(key, webhook.url)
    request = await webhook
    return str(request.json()["n"])


@workflow
async def plain_hook(token: str) -> None:
    await create_hook(token=token)


@pytest.fixture
def asgi_server(serve_asgi: Callable[[object], str], monkeypatch: pytest.MonkeyPatch) -> str:
    base = serve_asgi(workflowkit.asgi.app)
    monkeypatch.setenv("WORKFLOWKIT_BASE_URL", base)
    return base


async def url_of(key: str) -> str:
    for _ in range(500):
        if key in URLS:
            return URLS.pop(key)
        await asyncio.sleep(0.01)
    raise AssertionError("the workflow never published its webhook URL")


async def test_default_reply_is_202(runtime: Runtime, asgi_server: str) -> None:
    run = await start(receives, "default")
    url = await url_of("default")
    assert url.startswith(asgi_server + "/.well-known/workflow/v1/webhook/")
    async with httpx.AsyncClient() as client:
        reply = await client.post(url + "?source=test", content=b"hello")
    assert reply.status_code == 202 and reply.content == b""
    result = await run.return_value(timeout=10)
    assert result == {"method": "POST", "query": {"source": "test"}, "body": "hello"}


async def test_static_response(runtime: Runtime, asgi_server: str) -> None:
    run = await start(static_reply, "static")
    url = await url_of("static")
    async with httpx.AsyncClient() as client:
        reply = await client.put(url, json={"n": 7})
    assert reply.status_code == 201 and reply.json() == {"ok": True}
    assert await run.return_value(timeout=10) == "7"


@workflow
async def github_events(repo: str) -> list[str]:
    """The reference's pattern: one URL for every run, configured once at the sender."""
    webhook = create_webhook(token=f"github:{repo}", respond_with=Response(status=204))
    return [(await webhook).text, (await webhook).text]


async def test_a_webhook_with_a_chosen_token(runtime: Runtime, asgi_server: str) -> None:
    run = await start(github_events, "acme/app")
    url = f"{asgi_server}/.well-known/workflow/v1/webhook/github:acme%2Fapp"
    assert (await wait_for_hook(run, "github:acme/app")).run_id == run.run_id
    async with httpx.AsyncClient() as client:
        for body in ("push", "release"):
            assert (await client.post(url, content=body)).status_code == 204
    assert await run.return_value(timeout=10) == ["push", "release"]
    # Free again once its run has ended: the next run takes the same URL.
    again = await start(github_events, "acme/app")
    assert (await wait_for_hook(again, "github:acme/app")).run_id == again.run_id
    await again.cancel()


@workflow
async def webhook_token(token: object) -> str:
    try:
        create_webhook(token=token)  # type: ignore[arg-type]
    except HookTokenError as exc:
        return str(exc)
    return "accepted"


async def test_a_webhook_token_must_be_a_non_empty_str(runtime: Runtime) -> None:
    for token in ("", "  ", 42):
        refused = await (await start(webhook_token, token)).return_value(timeout=10)
        assert refused.startswith(f"create_webhook(token={token!r}): a token must be")


async def test_errors_are_4xx_json(
    runtime: Runtime, asgi_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = asgi_server + "/.well-known/workflow/v1"
    run = await start(plain_hook, "not-a-webhook")
    async with httpx.AsyncClient() as client:
        assert (await client.get(base + "/health")).json() == {"ok": True}
        missing = await client.post(base + "/webhook/nope", content=b"x")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        for _ in range(200):
            if await runtime.world.get_hook_by_token("not-a-webhook"):
                break
            await asyncio.sleep(0.01)
        plain = await client.post(base + "/webhook/not-a-webhook", content=b"x")
        assert plain.status_code == 404  # only hooks made by create_webhook are reachable
        assert (await client.get(asgi_server + "/elsewhere")).status_code == 404
        monkeypatch.setenv("WORKFLOWKIT_MAX_WEBHOOK_BODY", "10")
        big = await client.post(base + "/webhook/nope", content=b"x" * 11)
        assert big.status_code == 413
    await run.cancel()


async def test_malformed_json_reaches_the_workflow_as_bytes(
    runtime: Runtime, asgi_server: str
) -> None:
    run = await start(receives, "broken")
    url = await url_of("broken")
    async with httpx.AsyncClient() as client:
        reply = await client.post(
            url, content=b"{not json", headers={"content-type": "application/json"}
        )
    assert reply.status_code == 202
    assert (await run.return_value(timeout=10))["body"] == "{not json"


@workflow
async def many_requests(key: str) -> int:
    webhook = create_webhook()
    await publish(key, webhook.url)
    request = await webhook
    return int(request.json()["i"])


async def test_hundred_concurrent_requests_to_hundred_webhooks(
    cached_runtime: Runtime, asgi_server: str
) -> None:
    runs = [await start(many_requests, f"m{i}") for i in range(100)]
    urls = [await url_of(f"m{i}") for i in range(100)]
    async with httpx.AsyncClient() as client:
        replies = await asyncio.gather(
            *(client.post(url, json={"i": i}) for i, url in enumerate(urls))
        )
    assert [r.status_code for r in replies] == [202] * 100
    results = await asyncio.gather(*(r.return_value(timeout=30) for r in runs))
    assert results == list(range(100))


@pytest.mark.parametrize("mount_at", ["/.well-known/workflow/v1", ""])
async def test_mounted_in_fastapi(
    cached_runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    serve_asgi: Callable[[object], str],
    mount_at: str,
) -> None:
    api = fastapi.FastAPI()

    @api.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    api.mount(mount_at or "/", workflowkit.asgi.app)
    base = serve_asgi(api)
    monkeypatch.setenv("WORKFLOWKIT_BASE_URL", base)
    run = await start(receives, f"fastapi{mount_at}")
    url = await url_of(f"fastapi{mount_at}")
    async with httpx.AsyncClient() as client:
        assert (await client.get(base + "/hello")).json() == {"hello": "world"}
        assert (await client.post(url, content=b"via fastapi")).status_code == 202
    assert (await run.return_value(timeout=10))["body"] == "via fastapi"


def test_wsgi_app_under_a_real_server(
    cached_runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    serve_wsgi: Callable[[object], str],
) -> None:
    from workflowkit import sync

    base = serve_wsgi(workflowkit.wsgi.app)
    monkeypatch.setenv("WORKFLOWKIT_BASE_URL", base)
    run = sync.start(static_reply, "wsgi")
    deadline = time.monotonic() + 10
    while "wsgi" not in URLS:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    url = URLS.pop("wsgi")
    reply = httpx.post(url, json={"n": 3})
    assert reply.status_code == 201 and reply.json() == {"ok": True}
    assert run.return_value(timeout=10) == "3"
    assert httpx.get(base + "/.well-known/workflow/v1/health").json() == {"ok": True}
    assert httpx.post(base + "/.well-known/workflow/v1/webhook/nope").status_code == 404
    monkeypatch.setenv("WORKFLOWKIT_MAX_WEBHOOK_BODY", "10")
    assert httpx.post(url, content=b"x" * 11).status_code == 413


async def test_resume_webhook_without_a_server(runtime: Runtime) -> None:
    run = await start(static_reply, "direct")
    url = await url_of("direct")
    token = url.rsplit("/", 1)[1]
    response = await resume_webhook(token, Request("POST", url, (), b'{"n": 5}'))
    assert response.status == 201
    assert await run.return_value(timeout=10) == "5"
    with pytest.raises(HookNotFoundError):
        await resume_webhook(token, Request("POST", url))


@step
async def answer(request: Request, message: str) -> None:
    await request.respond_with(Response.json_body({"message": message}, status=200))


@workflow
async def manual(key: str) -> str:
    webhook = create_webhook(respond_with="manual")
    await publish(key, webhook.url)
    request = await webhook
    kind = request.json()["type"]
    await answer(request, "Processing urgently" if kind == "urgent" else "Processing normally")
    return kind


@workflow
async def manual_but_silent(key: str) -> str:
    webhook = create_webhook(respond_with="manual")
    await publish(key, webhook.url)
    request = await webhook
    return request.text


async def test_manual_response_from_a_step(runtime: Runtime, asgi_server: str) -> None:
    run = await start(manual, "manual")
    url = await url_of("manual")
    async with httpx.AsyncClient() as client:
        reply = await client.post(url, json={"type": "urgent"})
    assert reply.status_code == 200 and reply.json() == {"message": "Processing urgently"}
    assert await run.return_value(timeout=10) == "urgent"


async def test_manual_response_never_sent_is_a_clear_504(
    runtime: Runtime, asgi_server: str
) -> None:
    run = await start(manual_but_silent, "silent")
    url = await url_of("silent")
    async with httpx.AsyncClient() as client:
        reply = await client.post(url, content=b"anyone?", timeout=20)
    assert reply.status_code == 504 and "without sending a response" in reply.json()["error"]
    assert await run.return_value(timeout=10) == "anyone?"


async def test_respond_with_outside_a_step_is_refused() -> None:
    from workflowkit import NotInWorkflowError

    with pytest.raises(NotInWorkflowError, match="in a step"):
        await Request("GET", "http://x", reply_to="wrsp_1").respond_with(Response())


@workflow
async def bad_respond_with() -> None:
    create_webhook(respond_with=404)  # type: ignore[arg-type]


async def test_invalid_respond_with_fails_the_run(runtime: Runtime) -> None:
    from workflowkit import WorkflowRunFailedError

    run = await start(bad_respond_with)
    with pytest.raises(WorkflowRunFailedError, match="respond_with must be"):
        await run.return_value(timeout=10)


@workflow
async def both_urls() -> list[str]:
    from workflowkit import get_workflow_metadata

    return [create_webhook().url, get_workflow_metadata().url]


async def test_webhook_and_metadata_urls_agree(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOWKIT_BASE_URL", "https://example.test/app/")
    run = await start(both_urls)
    webhook, base = await run.return_value(timeout=10)
    assert base == "https://example.test/app"
    assert webhook.startswith(base + "/.well-known/workflow/v1/webhook/")


async def test_resume_webhook_default_reply(runtime: Runtime) -> None:
    run = await start(receives, "direct-default")
    token = (await url_of("direct-default")).rsplit("/", 1)[1]
    response = await resume_webhook(token, Request("GET", "http://x/?a=1"))
    assert response.status == 202 and response.body == b""
    assert (await run.return_value(timeout=10))["query"] == {"a": "1"}


# A webhook takes HTTP requests; a plain payload sent to its token is refused the same way
# by every client entry point (the CLI's and the dashboard's are tested with them).
RESUMERS: dict[str, Callable[[str, object], Awaitable[object]]] = {
    "api.resume_hook": resume_hook,
    "sync.resume_hook": lambda token, payload: asyncio.to_thread(sync.resume_hook, token, payload),
    "HookDefinition.resume": define_hook(schema=dict).resume,
}


@pytest.mark.parametrize("entry", list(RESUMERS))
async def test_a_hook_payload_for_a_webhook_token_is_refused(
    cached_runtime: Runtime, entry: str
) -> None:
    run = await start(receives, f"refuse-{entry}")
    token = (await wait_for_hook(run)).token
    with pytest.raises(WebhookTokenError, match="belongs to a webhook"):
        await RESUMERS[entry](token, {"ok": True})
    events = await cached_runtime.world.get_events(run.run_id)
    assert EventType.HOOK_RECEIVED not in [e.type for e in events]
    assert (await resume_webhook(token, Request("POST", "http://x/", (), b"hi"))).status == 202
    assert (await run.return_value(timeout=10))["body"] == "hi"


@pytest.fixture
def no_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """``WORKFLOWKIT_BASE_URL`` unset, and what the apps learned of their port forgotten."""
    monkeypatch.delenv("WORKFLOWKIT_BASE_URL", raising=False)
    monkeypatch.setattr(workflowkit.urls, "_served_at", None)


@pytest.mark.parametrize("mount_at", [None, "/.well-known/workflow/v1", "/hooks"])
async def test_unset_base_url_is_the_serving_apps_port(
    cached_runtime: Runtime,
    no_base_url: None,
    serve_asgi: Callable[[object], str],
    mount_at: str | None,
) -> None:
    """DESIGN §2: by default ``webhook.url`` is ``http://127.0.0.1:<port>`` of the app
    serving webhooks (learned from the first request it answers, a health check here)."""
    app: object = workflowkit.asgi.app
    if mount_at is not None:
        app = fastapi.FastAPI()
        app.mount(mount_at, workflowkit.asgi.app)
    base = serve_asgi(app)
    prefix = base + ("/hooks" if mount_at == "/hooks" else "")
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{prefix}/.well-known/workflow/v1/health")
        assert health.json() == {"ok": True}
        key = f"port{mount_at}"
        run = await start(receives, key)
        url = await url_of(key)
        assert url.startswith(f"{prefix}/.well-known/workflow/v1/webhook/")
        assert (await client.post(url, content=b"found")).status_code == 202
    assert (await run.return_value(timeout=10))["body"] == "found"


def test_unset_base_url_is_the_wsgi_servers_port(
    cached_runtime: Runtime, no_base_url: None, serve_wsgi: Callable[[object], str]
) -> None:
    base = serve_wsgi(workflowkit.wsgi.app)
    assert httpx.get(base + "/.well-known/workflow/v1/health").json() == {"ok": True}
    assert workflowkit.urls.base_url() == base
