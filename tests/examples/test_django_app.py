"""examples/django_app over real HTTP: Django's WSGI app under wsgiref, driven by httpx."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from workflowkit.runtime.runtime import Runtime

PROJECT = Path(__file__).parents[2] / "examples" / "django_app"


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(workflow_runtime: Runtime) -> Iterator[str]:
    sys.path.insert(0, str(PROJECT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "shop.settings"
    try:
        from shop.wsgi import application

        httpd: WSGIServer = make_server("127.0.0.1", 0, application, handler_class=QuietHandler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_port}"
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)
    finally:
        sys.path.remove(str(PROJECT))
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)


def wait_for(check: object, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_order_is_approved_over_http(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        started = client.post("/orders/o-1")
        assert started.status_code == 201
        run_id = started.json()["run_id"]
        assert client.get(f"/runs/{run_id}").json()["status"] in {"pending", "running"}

        assert client.post("/orders/o-1/approve", content=b"not json").status_code == 400
        assert client.post("/orders/o-1/approve", json={"who": "ada"}).status_code == 400
        approve = {"approver": "ada", "approved": True}
        wait_for(
            lambda: client.post("/orders/o-1/approve", json=approve).status_code == 200,
            "the run to wait for approval",
        )
        wait_for(
            lambda: client.get(f"/runs/{run_id}").json()["status"] == "completed",
            "the run to complete",
        )
        assert client.get(f"/runs/{run_id}").json()["result"] == "o-1 shipped, approved by ada"

        # The hook is released when the run ends; unknown runs are a 404 with a message.
        assert client.post("/orders/o-1/approve", json=approve).status_code == 404
        missing = client.get("/runs/wrun_NOPE")
        assert missing.status_code == 404 and "no run" in missing.json()["error"]
        assert client.get("/orders/o-1").status_code == 405


def test_rejection_and_the_webhook_app(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        run_id = client.post("/orders/o-2").json()["run_id"]
        reject = {"approver": "bob", "approved": False}
        wait_for(
            lambda: client.post("/orders/o-2/approve", json=reject).status_code == 200,
            "the run to wait for approval",
        )
        wait_for(
            lambda: client.get(f"/runs/{run_id}").json()["status"] == "completed",
            "the run to complete",
        )
        assert client.get(f"/runs/{run_id}").json()["result"] == "o-2 rejected by bob"
        assert client.get("/.well-known/workflow/v1/health").status_code == 200
        assert client.post("/.well-known/workflow/v1/webhook/nope").status_code == 404
