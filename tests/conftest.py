"""Each test gets its own World and embedded worker, on SQLite and on PostgreSQL.

Behaviour tests run in each World twice: with the in-memory run cache (the hot path) and
without it, where every event makes the worker rebuild the run from the log (a thorough
determinism check). PostgreSQL tests use a fresh schema in ``WORKFLOWKIT_TEST_POSTGRES``
(default ``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from types import ModuleType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

# Imported now, not at the session's end by hypothesis's plugin: CPython 3.11 can leave its
# AST recursion counter off after a deep recursion in a test (pydantic-ai's model-error
# handling), and every later import that pytest rewrites then fails with "AST constructor
# recursion depth mismatch", turning a passing session's exit code into 1.
import hypothesis.internal.observability  # noqa: F401
import pytest
import uvicorn

import workflowkit
from workflowkit.ids import new_id
from workflowkit.runtime.runtime import Runtime

PG_URL = os.environ.get("WORKFLOWKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pg_url() -> str:
    return PG_URL


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema name, dropped after the test."""
    schema = "wk_test_" + new_id("wrun").split("_", 1)[1].lower()
    yield schema
    drop_schema(schema)


def world_url(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'wk.db'}"
    schema = request.getfixturevalue("pg_schema")
    return f"{PG_URL}?schema={schema}"


@pytest.fixture(
    params=[
        ("sqlite", "cached"),
        ("sqlite", "replay"),
        ("postgres", "cached"),
        ("postgres", "replay"),
    ],
    ids=["sqlite-cached", "sqlite-replay", "postgres-cached", "postgres-replay"],
)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    kind, mode = request.param
    marker = request.node.get_closest_marker("worker_options")
    rt = workflowkit.configure(
        world_url(request, kind, tmp_path),
        cache_runs=mode == "cached",
        poll_interval=0.2,
        lease_seconds=5,
        **(marker.kwargs if marker else {}),
    )
    yield rt
    workflowkit.shutdown()


@pytest.fixture(params=["sqlite", "postgres"])
def cached_runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """One mode only, for tests about the runtime itself rather than workflow behaviour."""
    rt = workflowkit.configure(world_url(request, request.param, tmp_path), poll_interval=0.2)
    yield rt
    workflowkit.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve_asgi() -> Iterator[Callable[[Any], str]]:
    """Serve an ASGI app with a real uvicorn on a free port; returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(app: Any) -> str:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(5)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve_wsgi() -> Iterator[Callable[[Any], str]]:
    """Serve a WSGI app with wsgiref (a thread per request); returns its base URL."""
    servers: list[WSGIServer] = []

    def serve(app: Any) -> str:
        server = make_server(
            "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


AI_CHAT_EXAMPLE = Path(__file__).parents[1] / "examples" / "ai_chat" / "app.py"


@pytest.fixture
def ai_chat_example() -> ModuleType:
    """examples/ai_chat/app.py, imported once per process (its agent registers steps)."""
    name = "example_ai_chat"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, AI_CHAT_EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
