"""Configuration: World URLs, settings checked at start-up, credentials never shown.

A mistake in a setting stops the process that starts with it, with a ``ConfigurationError``
that names the setting and what it takes; it is never silently replaced (a SQLite file
named after a mistyped PostgreSQL URL) nor left to fail every request later. Passwords in
World URLs are redacted in every message.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import workflowkit
import workflowkit.asgi
import workflowkit.wsgi
from workflowkit import ConfigurationError, WorldOpenError
from workflowkit._settings import redact_url
from workflowkit.cli.main import main as cli_main
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds import open_world
from workflowkit.worlds.postgres import parse_url
from workflowkit.worlds.sqlite import path_from_url

SECRET = "s3cr3t-pw"

# -- World URLs ------------------------------------------------------------------------------

MALFORMED = [
    f"postgresql:/u:{SECRET}@h/db",  # one slash missing: used to make a SQLite file
    f"postgres:u:{SECRET}@h/db",
    f"postgresql:u:{SECRET}@h/db",
    f"postgresql://u:{SECRET}@h:notaport/db",
    f"postgresql://u:{SECRET[:3]}/{SECRET[3:]}@h/db",  # a raw "/" in the password
    "sqlite://host/x.db",
    "sqlite:x.db",
    "sqlite:///",
    "sqlite:///x.db?mode=ro",
]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKFLOWKIT_WORLD", raising=False)
    return tmp_path


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_world_url_is_refused_and_creates_no_file(in_tmp: Path, url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_world(url)
    assert SECRET not in str(info.value) and SECRET[3:] not in str(info.value)
    assert "WORKFLOWKIT_WORLD" in str(info.value) or "URL" in str(info.value)
    assert list(in_tmp.iterdir()) == []


def test_a_malformed_world_url_in_the_environment_stops_start_up(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOWKIT_WORLD", f"postgresql:/u:{SECRET}@h/db")
    with pytest.raises(ConfigurationError, match="WORKFLOWKIT_WORLD") as info:
        workflowkit.configure()
    assert SECRET not in str(info.value)
    assert list(in_tmp.iterdir()) == []


def test_an_unknown_scheme_does_not_show_the_password(in_tmp: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown world URL scheme 'mysql'") as info:
        open_world(f"mysql://app:{SECRET}@db/app")
    assert SECRET not in str(info.value) and "mysql://app:***@db/app" in str(info.value)


def test_the_postgres_url_parser_does_not_show_the_password() -> None:
    with pytest.raises(ValueError) as info:
        parse_url(f"mysql://app:{SECRET}@db/app")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("schema", ["abc%0A", "abc%0D%0A", "abc%20", "%0Aabc", "abc%00"])
def test_schema_names_are_matched_whole(schema: str) -> None:
    # A trailing newline passed a regex ending in "$"; the name must match from end to end.
    with pytest.raises(ValueError, match="invalid schema name"):
        parse_url(f"postgresql://h/db?schema={schema}")
    with pytest.raises(ValueError, match="invalid schema name"):
        parse_url("postgresql://h/db", schema="abc\n")


def test_sqlite_url_forms_that_name_a_file() -> None:
    assert path_from_url("sqlite:///rel/x.db") == Path("rel/x.db")
    assert path_from_url("sqlite:////abs/x.db") == Path("/abs/x.db")
    assert path_from_url("sqlite:///with%20space.db") == Path("with space.db")
    assert path_from_url("plain/path.db") == Path("plain/path.db")
    assert path_from_url("./odd:name.db") == Path("odd:name.db")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://app:{SECRET}@db:5432/app", "postgresql://app:***@db:5432/app"),
        (f"postgres://app:{SECRET}@db/app?schema=x", "postgres://app:***@db/app?schema=x"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        (f"postgresql:/app:{SECRET}@db/app", "postgresql:/app:***@db/app"),
        (f"postgresql://app:a/b?c@{SECRET}@db/app", "postgresql://app:***@db/app"),
        (
            f"postgresql://db/app?user=app&password={SECRET}&sslmode=require",
            "postgresql://db/app?user=app&password=***&sslmode=require",
        ),
        ("sqlite:////var/lib/wk.db", "sqlite:////var/lib/wk.db"),
        ("relative/wk.db", "relative/wk.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_cli_does_not_show_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    for url in (f"mysql://app:{SECRET}@db/app", f"postgresql:/app:{SECRET}@db/app"):
        code = cli_main(["--world", url, "inspect", "runs"])
        out, err = capsys.readouterr()
        assert code == 1 and SECRET not in out + err and "app:***@" in err
        code = cli_main(["--world", url, "health"])
        out, err = capsys.readouterr()
        assert code == 1 and SECRET not in out + err


# -- settings --------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("WORKFLOWKIT_MAX_WEBHOOK_BODY", "1MB"),
    ("WORKFLOWKIT_MAX_WEBHOOK_BODY", "-1"),
    ("WORKFLOWKIT_WEBHOOK_RESPONSE_TIMEOUT", "soon"),
    ("WORKFLOWKIT_WEBHOOK_RESPONSE_TIMEOUT", "inf"),
    ("WORKFLOWKIT_LEASE_SECONDS", "0"),
    ("WORKFLOWKIT_STEP_SLOTS", "many"),
    ("WORKFLOWKIT_MAX_RUNS", "0"),
    ("WORKFLOWKIT_RUN_CACHE", "maybe"),
    ("WORKFLOWKIT_EMBEDDED_WORKER", "2"),
    ("WORKFLOWKIT_BASE_URL", "app.example.com"),
    ("WORKFLOWKIT_SERDE_MAX_SIZE", "64MB"),
    ("WORKFLOWKIT_RETENTION", "a month"),
    ("WORKFLOWKIT_RETENTION", "0s"),
]


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS)
def test_a_bad_setting_stops_start_up_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    assert name in str(info.value) and repr(value) in str(info.value)
    assert info.value.docs_url.endswith("#configuration")
    assert not (tmp_path / "wk.db").exists()  # refused before the World was opened


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKFLOWKIT_RUN_CACHE", "off"),
        ("WORKFLOWKIT_RUN_CACHE", "False"),
        ("WORKFLOWKIT_EMBEDDED_WORKER", "NO"),
        ("WORKFLOWKIT_MAX_WEBHOOK_BODY", " 2048 "),
        ("WORKFLOWKIT_BASE_URL", "https://app.example.com/prefix/"),
        ("WORKFLOWKIT_RETENTION", "30d"),
    ],
)
def test_good_settings_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    runtime = workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    try:
        if name == "WORKFLOWKIT_RUN_CACHE":
            assert runtime.worker is not None and runtime.worker.driver_config.cache_runs is False
        if name == "WORKFLOWKIT_EMBEDDED_WORKER":
            assert runtime.worker is None
        if name == "WORKFLOWKIT_RETENTION":  # the worker deletes runs that ended 30 days ago
            assert runtime.worker is not None and runtime.worker.retention == 30 * 86400
    finally:
        workflowkit.shutdown()


def test_the_asgi_app_refuses_to_start_with_a_bad_setting(tmp_path: Path) -> None:
    env = {**os.environ, "WORKFLOWKIT_MAX_WEBHOOK_BODY": "lots"}
    command = [sys.executable, "-m", "uvicorn", "workflowkit.asgi:app", "--port", "0"]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False
    )
    assert result.returncode == 3  # uvicorn's "startup failed"
    assert "WORKFLOWKIT_MAX_WEBHOOK_BODY='lots' is not valid" in result.stderr
    assert "#configuration" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def sqlite_runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", poll_interval=0.2)
    yield runtime
    workflowkit.shutdown()


def _misconfigured_answer(reply: httpx.Response) -> None:
    assert reply.status_code == 500
    assert reply.json() == {"error": "workflowkit is misconfigured; see the server log"}


def test_a_setting_gone_bad_after_start_up_is_a_clear_500(
    sqlite_runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    serve_asgi: Callable[[Any], str],
    serve_wsgi: Callable[[Any], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Under WSGI (no start-up hook) or mounted where no lifespan reaches the app, a setting
    # can only be read at the first request: it used to be a bare 500 from the server.
    bases = [serve_asgi(workflowkit.asgi.app), serve_wsgi(workflowkit.wsgi.app)]
    monkeypatch.setenv("WORKFLOWKIT_MAX_WEBHOOK_BODY", "lots")
    for base in bases:
        with caplog.at_level(logging.ERROR, logger="workflowkit.http"):
            _misconfigured_answer(
                httpx.post(base + "/.well-known/workflow/v1/webhook/tok", content=b"x")
            )
        assert "WORKFLOWKIT_MAX_WEBHOOK_BODY='lots'" in caplog.text
        caplog.clear()


def test_the_worker_command_refuses_to_start_with_a_bad_setting(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WORKFLOWKIT_WORLD": f"sqlite:///{tmp_path / 'wk.db'}",
        "WORKFLOWKIT_LEASE_SECONDS": "a while",
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "workflowkit", "worker", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and time.monotonic() - started < 60
    assert "WORKFLOWKIT_LEASE_SECONDS='a while'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "wk.db").exists()


# -- opening the SQLite file -----------------------------------------------------------------


def test_a_corrupt_sqlite_file_is_a_typed_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a SQLite database\n" * 200)
    with pytest.raises(WorldOpenError) as info:
        open_world(f"sqlite:///{path}")
    assert str(path) in str(info.value) and info.value.path == str(path)
    assert isinstance(info.value, workflowkit.WorldError)
    with pytest.raises(WorldOpenError, match=str(path)):
        workflowkit.configure(f"sqlite:///{path}")
    assert path.read_bytes().startswith(b"this is not")  # left as it was


def test_an_unopenable_sqlite_path_is_a_typed_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "a-directory.db"
    path.mkdir()
    with pytest.raises(WorldOpenError, match=str(path)):
        open_world(str(path))


def test_the_cli_names_the_corrupt_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"\x00garbage" * 512)
    code = cli_main(["--world", str(path), "inspect", "runs"])
    _, err = capsys.readouterr()
    assert code == 1 and str(path) in err and "#world-open" in err
