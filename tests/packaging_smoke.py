"""Checks an installed workflowkit wheel from the outside (see test_packaging.py).

``python tests/packaging_smoke.py`` with the interpreter of a virtualenv that has the wheel,
its one requirement (cronsim) and nothing else installed, in an empty working directory. It
proves that the files the wheel must carry are there (both Worlds' migrations, the
dashboard's static files, the ``workflowkit`` command), that a workflow runs on a fresh
SQLite World, and that every feature whose extra is missing says which extra to install.
Prints ``ok`` at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import sysconfig
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import workflowkit
from workflowkit import define_hook, fetch, step, workflow
from workflowkit.api import start
from workflowkit.web import create_app
from workflowkit.worlds import open_world

BIN = Path(sys.executable).parent


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"packaging smoke test: {message}")


async def expect_import_error(call: Any, extra: str) -> None:
    try:
        result = call()
        if asyncio.iscoroutine(result):
            await result
    except ImportError as exc:
        wanted = f"pip install 'workflowkit[{extra}]'"
        check(wanted in str(exc), f"the error {exc!r} should say {wanted}")
    else:
        raise SystemExit(f"packaging smoke test: {call} worked without the {extra!r} extra")


@step
async def double(x: int) -> int:
    return 2 * x


@workflow(name="smoke.double")
async def doubled(x: int) -> int:
    return await double(x)


async def dashboard_get(app: Any, path: str) -> tuple[int, bytes]:
    """One GET through the dashboard's ASGI interface, no server needed."""
    scope = {
        "type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
        "query_string": b"", "headers": [(b"host", b"127.0.0.1")], "scheme": "http",
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000), "root_path": "",
        "http_version": "1.1",
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


async def main() -> None:
    # The package under test is the installed wheel, not a source tree.
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    check(Path(workflowkit.__file__).resolve().is_relative_to(site), workflowkit.__file__)
    installed = {d.metadata["Name"] for d in metadata.distributions()}
    # cronsim: the core's one requirement (cron schedules).
    allowed = {"workflowkit", "cronsim", "pip", "setuptools"}
    check(installed <= allowed, f"more installed: {installed}")

    # Both Worlds' migrations are installed (read as files: importing the PostgreSQL World
    # needs its extra), and a fresh SQLite World applies every one of them.
    worlds = resources.files("workflowkit.worlds")
    shipped = {
        world: [f.name for f in worlds.joinpath(world, "migrations").iterdir() if f.is_file()]
        for world in ("sqlite", "postgres")
    }
    for world, names in shipped.items():
        check(any(n.endswith(".sql") for n in names), f"no {world} migrations: {names}")
    url = f"sqlite:///{Path.cwd() / 'smoke.db'}"
    workflowkit.configure(url)
    try:
        run = await start(doubled, 21)
        check(await run.return_value(timeout=30) == 42, "the workflow returned a wrong value")
        with sqlite3.connect(Path.cwd() / "smoke.db") as db:
            (version,) = db.execute("SELECT max(version) FROM migrations").fetchone()
        wanted = len([n for n in shipped["sqlite"] if n.endswith(".sql")])
        check(version == wanted, f"schema version {version}, but {wanted} migration files")

        # The dashboard: its static files and a run's page, through its ASGI interface.
        app = create_app(url)
        for name in ("dashboard.css", "dashboard.js"):
            status, body = await dashboard_get(app, f"/static/{name}")
            check(status == 200 and len(body) > 100, f"/static/{name} answered {status}")
        status, body = await dashboard_get(app, f"/runs/{run.run_id}")
        check(status == 200 and run.run_id.encode() in body, f"the run page answered {status}")
        await app.close()
    finally:
        workflowkit.shutdown()

    # Each feature whose extra is missing names that extra.
    await expect_import_error(lambda: fetch("http://127.0.0.1:9/"), "http")
    await expect_import_error(lambda: define_hook(schema=dict), "pydantic")
    await expect_import_error(lambda: open_world("postgresql://nobody@127.0.0.1/none"), "postgres")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOWKIT_")}
    web = subprocess.run(
        [str(BIN / "workflowkit"), "--world", url, "web"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    check(web.returncode != 0, "`workflowkit web` started without uvicorn")
    check("pip install 'workflowkit[web]'" in web.stderr, f"workflowkit web said {web.stderr!r}")

    # The command line, installed as a script: it reads the World the workflow wrote.
    runs = subprocess.run(
        [str(BIN / "workflowkit"), "--world", url, "inspect", "runs", "--json"],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    )  # fmt: skip
    check(
        [r["workflow_name"] for r in json.loads(runs.stdout)["runs"]] == ["smoke.double"],
        runs.stdout,
    )
    print("ok")


if __name__ == "__main__":
    asyncio.run(main())
