"""Payloads encrypted at rest (docs/encryption.md), on real SQLite and PostgreSQL Worlds: a
workflow with steps, a hook, a child run, a stream and a failing step runs encrypted end to
end; no stored byte holds the plaintext; keys rotate and ``workflowkit reencrypt`` moves
everything to the active key; the CLI and the dashboard show "encrypted" without the key and
the value with it; an altered payload is a typed error, never a dead worker."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import workflowkit
from workflowkit import (
    EncryptionKeyError,
    FatalError,
    PayloadDecryptionError,
    PayloadKeyMissingError,
    create_hook,
    get_writable,
    serde,
    step,
    workflow,
)
from workflowkit.api import resume_hook, start
from workflowkit.encryption import EncryptionKeys, generate_key
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import wait_for_hook
from workflowkit.web import create_app
from workflowkit.worlds import open_world
from workflowkit.worlds._encrypted import EncryptedWorld

SECRET = "card-4242-4242-4242-4242"  # what must never reach the store in clear
CLI = [sys.executable, "-m", "workflowkit.cli.main"]


@step
async def charge(card: str) -> dict[str, str]:
    await get_writable().write(f"charging {card}")
    await get_writable().write(card.encode())  # raw bytes chunks are data too
    return {"receipt": f"paid with {card}"}


@step
async def refuse(card: str) -> None:
    raise FatalError(f"declined: {card}")


@workflow
async def fails_with(card: str) -> None:
    raise ValueError(f"card refused: {card}")


@workflow
async def child_flow(card: str) -> str:
    return f"child saw {card}"


@workflow
async def checkout(card: str) -> dict[str, Any]:
    paid = await charge(card)
    with create_hook(token=f"confirm-{card[-4:]}", metadata={"card": card}) as hook:
        confirmation = await hook
    child = await start(child_flow, card)
    try:
        await refuse(card)
    except FatalError as exc:
        refused = str(exc)
    return {
        "paid": paid,
        "confirmation": confirmation,
        "child": await child.return_value(),
        "refused": refused,
    }


def keyring(*names: str) -> tuple[EncryptionKeys, str]:
    """Keys under ``names`` (the first active) and the WORKFLOWKIT_ENCRYPTION_KEYS text."""
    text = ",".join(f"{name}:{KEYS[name]}" for name in names)
    return EncryptionKeys.parse(text), text


KEYS = {name: generate_key() for name in ("k1", "k2", "other")}


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wk.db'}"
    pg_url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    return f"{pg_url}?schema={schema}"


@pytest.fixture
def encrypted_runtime(url: str) -> Iterator[Runtime]:
    runtime = workflowkit.configure(url, encryption=keyring("k1")[0], poll_interval=0.05)
    yield runtime
    workflowkit.shutdown()


def stored_bytes(url: str) -> list[bytes]:
    """Every value of every row of every table, as bytes: what someone reading the
    database (a dump, a backup, a replica) sees."""
    found: list[bytes] = []
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                for row in conn.execute(f"SELECT * FROM {table}"):
                    found.extend(_as_bytes(v) for v in row if v is not None)
        return found
    base, _, schema = url.partition("?schema=")
    with psycopg.connect(base) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"'):
                found.extend(_as_bytes(v) for v in row if v is not None)
    return found


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def leaks(url: str, text: str = SECRET) -> list[bytes]:
    needles = (text.encode(), text[-4:].encode() + b"-")  # whole, or a telling part
    return [v for v in stored_bytes(url) if any(n in v for n in needles)]


async def run_checkout() -> tuple[str, dict[str, Any]]:
    run = await start(checkout, SECRET)
    await wait_for_hook(run, f"confirm-{SECRET[-4:]}", timeout=20)
    await resume_hook(f"confirm-{SECRET[-4:]}", {"ok": SECRET})
    result = await run.return_value(timeout=20)
    return run.run_id, result


def cli(url: str, *args: str, keys: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOWKIT_")}
    if keys is not None:
        env["WORKFLOWKIT_ENCRYPTION_KEYS"] = keys
    return subprocess.run(
        [*CLI, "--world", url, *args], capture_output=True, text=True, env=env, timeout=60
    )


# -- end to end ------------------------------------------------------------------------------


async def test_a_workflow_runs_encrypted_and_nothing_stored_holds_the_plaintext(
    encrypted_runtime: Runtime, url: str
) -> None:
    run_id, result = await run_checkout()
    assert result == {
        "paid": {"receipt": f"paid with {SECRET}"},
        "confirmation": {"ok": SECRET},
        "child": f"child saw {SECRET}",
        "refused": f"declined: {SECRET}",
    }
    run = workflowkit.api.get_run(run_id)
    chunks = [c async for c in run.get_readable()]
    assert chunks == [f"charging {SECRET}", SECRET.encode()]
    # A run's own failure (its error and traceback) is a payload too.
    failed = await start(fails_with, SECRET)
    with pytest.raises(workflowkit.WorkflowRunFailedError, match="card refused"):
        await failed.return_value(timeout=20)
    # Steps' inputs, results and errors, the hook's metadata and payload, the child's input
    # and result, stream chunks, the run's input and result: none of it is in clear.
    assert leaks(url) == []


async def test_replay_from_the_log_reads_the_encrypted_payloads(url: str) -> None:
    """Without the run cache every event makes the worker rebuild the run from the log."""
    workflowkit.configure(url, encryption=keyring("k1")[0], poll_interval=0.05, cache_runs=False)
    try:
        _, result = await run_checkout()
        assert result["child"] == f"child saw {SECRET}"
    finally:
        workflowkit.shutdown()
    assert leaks(url) == []


@workflow
async def greet(at: datetime, name: str, card: str) -> str:
    return f"{name}: {await remember(card)}"


async def test_forks_and_schedules_read_and_write_encrypted(
    encrypted_runtime: Runtime, url: str
) -> None:
    """A fork copies a log (read opened, written sealed for the new run); a schedule's
    arguments are sealed for the schedule, and each run it starts gets them sealed anew."""
    run = await start(remembers, SECRET, "go-fork")
    await wait_for_hook(run, "go-fork", timeout=20)
    await resume_hook("go-fork", None)
    assert await run.return_value(timeout=20) == SECRET
    fork = await workflowkit.api.fork_run(run.run_id, 1)  # the whole log, its hook too
    assert await fork.return_value(timeout=20) == SECRET  # the step's result, reused
    steps = await encrypted_runtime.world.list_steps(fork.run_id)
    assert [s.attempt for s in steps] == [1]  # copied, not run again

    await workflowkit.api.create_schedule(
        "nightly", greet, cron="0 3 * * *", args=["night", SECRET]
    )
    info = await workflowkit.api.get_schedule("nightly")
    assert info is not None
    ticked = await workflowkit.api.trigger_schedule("nightly")
    assert await ticked.return_value(timeout=20) == f"night: {SECRET}"
    assert leaks(url) == []


# -- reading without the key -----------------------------------------------------------------


@pytest.mark.slow  # the CLI in subprocesses
async def test_cli_and_dashboard_show_encrypted_without_the_key_and_the_value_with_it(
    encrypted_runtime: Runtime, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, _ = await run_checkout()
    workflowkit.shutdown()
    _, text = keyring("k1")

    shown = await asyncio.to_thread(cli, url, "inspect", "run", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert SECRET not in shown.stdout
    assert '"$encrypted": "k1"' in shown.stdout
    steps = await asyncio.to_thread(cli, url, "inspect", "steps", "--run", run_id, "--json")
    assert steps.returncode == 0 and '"$encrypted": "k1"' in steps.stdout
    stream = await asyncio.to_thread(
        cli, url, "inspect", "streams", "--run", run_id, "--default", "--json"
    )
    assert stream.returncode == 0, stream.stderr
    assert SECRET not in stream.stdout and "$encrypted" in stream.stdout

    opened = await asyncio.to_thread(cli, url, "inspect", "run", run_id, "--json", keys=text)
    assert opened.returncode == 0, opened.stderr
    assert SECRET in opened.stdout and "$encrypted" not in opened.stdout

    assert json.loads(shown.stdout)["status"] == "completed"  # metadata is never encrypted

    async def page(app_url: str) -> str:
        app = create_app(app_url)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                html = await c.get(f"/runs/{run_id}", headers={"accept": "text/html"})
                api = await c.get(f"/api/runs/{run_id}")
            assert html.status_code == 200 and api.status_code == 200
            return html.text + api.text
        finally:
            await app.close()

    without = await page(url)
    assert SECRET not in without
    assert '<p class="encrypted">encrypted (key k1)</p>' in without  # the run page
    assert '"$encrypted": "k1"' in without.replace('":"', '": "')  # its JSON
    monkeypatch.setenv("WORKFLOWKIT_ENCRYPTION_KEYS", text)
    with_key = await page(url)
    assert SECRET in with_key


async def test_a_worker_without_the_key_leaves_the_run_and_one_with_it_finishes(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    keys, _ = keyring("k1")
    workflowkit.configure(url, encryption=keys, embedded_worker=False)
    run = await start(child_flow, SECRET)
    workflowkit.shutdown()
    # No keys at all: the run's input cannot be read, so the worker leaves the run rather
    # than failing it, and goes on.
    workflowkit.configure(url, poll_interval=0.05)
    await asyncio.sleep(1.0)
    assert await run.status() in {"pending", "running"}
    assert "PayloadKeyMissingError" in caplog.text and KEYS["k1"] not in caplog.text
    # Said once, in a line: not a traceback every second while the key is missing.
    assert caplog.text.count("PayloadKeyMissingError") == 1 and "Traceback" not in caplog.text
    with pytest.raises(PayloadKeyMissingError, match="'k1'"):
        await _decode_input(run.run_id)
    workflowkit.shutdown()
    workflowkit.configure(url, encryption=keys, poll_interval=0.05)
    try:
        assert await run.return_value(timeout=20) == f"child saw {SECRET}"
    finally:
        workflowkit.shutdown()


async def _decode_input(run_id: str) -> object:
    from workflowkit import serde
    from workflowkit.runtime.runtime import get_runtime

    record = await get_runtime().world.get_run(run_id)
    assert record is not None
    return serde.decode(record.input)


# -- tampering -------------------------------------------------------------------------------


def tamper_last_step_result(url: str, run_id: str) -> None:
    """Flip a byte of the ciphertext of the run's last step_completed event."""
    find = (
        "SELECT seq, payload FROM events WHERE run_id = ? AND type = 'step_completed' "
        "ORDER BY seq DESC LIMIT 1"
    )
    update = "UPDATE events SET payload = ? WHERE run_id = ? AND seq = ?"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            seq, payload = conn.execute(find, (run_id,)).fetchone()
            conn.execute(update, (_flip(payload), run_id, seq))
        return
    base, _, schema = url.partition("?schema=")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        seq, payload = conn.execute(find.replace("?", "%s"), (run_id,)).fetchone()
        conn.execute(update.replace("?", "%s"), (_flip(payload), run_id, seq))


def _flip(payload: bytes) -> bytes:
    data = bytearray(payload)
    data[-1] ^= 0x01
    return bytes(data)


@step
async def remember(value: str) -> str:
    return value


@workflow
async def remembers(value: str, token: str) -> str:
    try:
        first = await remember(value)
    except PayloadDecryptionError as exc:
        first = f"refused: {type(exc).__name__}"
    with create_hook(token=token) as hook:  # tokens are stored in clear: never a secret
        await hook
    return first


async def test_an_altered_payload_is_a_typed_error_and_the_worker_goes_on(url: str) -> None:
    keys, _ = keyring("k1")
    workflowkit.configure(url, encryption=keys, poll_interval=0.05)
    try:
        run = await start(remembers, "tampered", "go-tampered")
        await wait_for_hook(run, "go-tampered", timeout=20)
    finally:
        workflowkit.shutdown()
    tamper_last_step_result(url, run.run_id)
    workflowkit.configure(url, encryption=keys, poll_interval=0.05)
    try:
        await resume_hook("go-tampered", None)
        # Replayed from the log by a new worker, the altered result reaches the code as a
        # typed error where the step is awaited.
        assert await run.return_value(timeout=20) == "refused: PayloadDecryptionError"
        # And the same worker goes on with other runs.
        other = await start(child_flow, "after")
        assert await other.return_value(timeout=20) == "child saw after"
    finally:
        workflowkit.shutdown()


async def test_a_payload_moved_to_another_run_fails_authentication(
    encrypted_runtime: Runtime,
) -> None:
    world = encrypted_runtime.world
    assert isinstance(world, EncryptedWorld)
    first = await start(child_flow, "one")
    second = await start(child_flow, "two")
    await first.return_value(timeout=20)
    await second.return_value(timeout=20)
    raw = await world.inner.get_run(first.run_id)
    assert raw is not None and raw.output is not None
    opened = await world.get_run(first.run_id)
    assert opened is not None and raw.output != opened.output  # stored sealed, read opened
    with pytest.raises(PayloadDecryptionError, match="another place"):
        world.keys.open(raw.output, (second.run_id,))
    # Stored in the other run's log, it reaches whoever reads it there as a typed error.
    moved = world.open(raw.output, second.run_id)
    with pytest.raises(PayloadDecryptionError, match="another place"):
        serde.decode(moved)
    assert serde.display(moved)["$encrypted"] == "k1"


# -- rotation ---------------------------------------------------------------------------------


@pytest.mark.slow  # the CLI in subprocesses
async def test_rotation_old_keys_decrypt_and_reencrypt_moves_everything_to_the_active_key(
    url: str,
) -> None:
    old, _ = keyring("k1")
    workflowkit.configure(url, encryption=old, poll_interval=0.05)
    try:
        first_id, first = await run_checkout()
    finally:
        workflowkit.shutdown()

    rotated, rotated_text = keyring("k2", "k1")
    workflowkit.configure(url, encryption=rotated, poll_interval=0.05)
    try:
        # Old runs read with the old key, new ones are written with the new key.
        assert await workflowkit.api.get_run(first_id).return_value(timeout=5) == first
        run = await start(child_flow, SECRET)
        assert await run.return_value(timeout=20) == f"child saw {SECRET}"
    finally:
        workflowkit.shutdown()

    dry = await asyncio.to_thread(cli, url, "reencrypt", "--dry-run", "--json", keys=rotated_text)
    assert dry.returncode == 0, dry.stderr
    counted = json.loads(dry.stdout)
    assert counted["found"]["k1"] > 0 and counted["reencrypted"] == 0
    assert KEYS["k1"] not in dry.stdout + dry.stderr

    done = await asyncio.to_thread(
        cli, url, "reencrypt", "--batch", "3", "--json", keys=rotated_text
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["reencrypted"] == counted["found"]["k1"] and report["left"] == 0

    again = await asyncio.to_thread(cli, url, "reencrypt", "--dry-run", "--json", keys=rotated_text)
    assert json.loads(again.stdout)["found"] == {}

    # The old key can go: everything reads with the new one alone.
    workflowkit.configure(url, encryption=keyring("k2")[0], poll_interval=0.05)
    try:
        assert await workflowkit.api.get_run(first_id).return_value(timeout=5) == first
        chunks = [c async for c in workflowkit.api.get_run(first_id).get_readable()]
        assert chunks == [f"charging {SECRET}", SECRET.encode()]
    finally:
        workflowkit.shutdown()
    assert leaks(url) == []


@pytest.mark.slow  # the CLI in a subprocess, beside a busy worker
async def test_reencrypt_runs_beside_busy_workers(url: str) -> None:
    """Runs started under the old key wait on hooks; re-encryption runs while the worker
    starts and finishes other runs; everything ends right, and nothing is left under the
    old key."""
    workflowkit.configure(url, encryption=keyring("k1")[0], poll_interval=0.05)
    try:
        waiting = [await start(remembers, f"v{i}", f"busy-{i}") for i in range(4)]
        for i, run in enumerate(waiting):
            await wait_for_hook(run, f"busy-{i}", timeout=20)
    finally:
        workflowkit.shutdown()
    rotated, text = keyring("k2", "k1")
    workflowkit.configure(url, encryption=rotated, poll_interval=0.05)
    try:
        reencrypting = asyncio.create_task(
            asyncio.to_thread(cli, url, "reencrypt", "--batch", "2", "--json", keys=text)
        )
        busy = []
        while not reencrypting.done():  # keep the worker writing meanwhile
            busy.append(await start(child_flow, f"busy {len(busy)}"))
            await asyncio.sleep(0.02)
        done = await reencrypting
        assert done.returncode == 0, done.stderr
        for i, run in enumerate(waiting):
            await resume_hook(f"busy-{i}", None)
            assert await run.return_value(timeout=20) == f"v{i}"
        for i, run in enumerate(busy):
            assert await run.return_value(timeout=20) == f"child saw busy {i}"
    finally:
        workflowkit.shutdown()
    again = await asyncio.to_thread(cli, url, "reencrypt", "--dry-run", "--json", keys=text)
    assert json.loads(again.stdout)["found"] == {}


async def test_reencrypt_encrypts_what_was_stored_before_encryption_was_turned_on(
    url: str,
) -> None:
    workflowkit.configure(url, poll_interval=0.05)
    try:
        run_id, result = await run_checkout()
    finally:
        workflowkit.shutdown()
    assert leaks(url) != []  # stored in clear
    keys, text = keyring("k1")
    done = await asyncio.to_thread(cli, url, "reencrypt", "--json", keys=text)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["left"] == 0
    assert leaks(url) == []
    workflowkit.configure(url, encryption=keys, poll_interval=0.05)
    try:
        assert await workflowkit.api.get_run(run_id).return_value(timeout=5) == result
        chunks = [c async for c in workflowkit.api.get_run(run_id).get_readable()]
        assert chunks == [f"charging {SECRET}", SECRET.encode()]
    finally:
        workflowkit.shutdown()


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("k1", "entry 1 is not KEY_ID:BASE64_KEY"),
        ("k1:@@@@", r"entry 1 \('k1'\): the key is not base64"),
        ("k1:" + "QUJD", "is 3 bytes; it must be 32 bytes"),
        (f"k1:{KEYS['k1']},k1:{KEYS['k2']}", "'k1' is given twice"),
        (f"bad/id:{KEYS['k1']}", "entry 1 is not KEY_ID:BASE64_KEY"),
    ],
    # Fixed ids: the keys are random, and test ids must be the same in every process.
    ids=["no-key", "not-base64", "short-key", "id-twice", "bad-id"],
)
def test_bad_keys_stop_the_start_with_a_message_that_shows_no_key(
    value: str, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WORKFLOWKIT_ENCRYPTION_KEYS", value)
    with pytest.raises(EncryptionKeyError, match=message) as caught:
        workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    assert "WORKFLOWKIT_ENCRYPTION_KEYS" in str(caught.value)
    for key in KEYS.values():
        assert key not in str(caught.value)
    assert not (tmp_path / "wk.db").exists()  # refused before anything was opened


def test_keys_from_the_environment_encrypt_worlds_opened_by_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WORKFLOWKIT_ENCRYPTION_KEYS", keyring("k2", "k1")[1])
    world = open_world(f"sqlite:///{tmp_path / 'wk.db'}")
    try:
        assert "EncryptedWorld" in repr(world) and "'k2'" in repr(world)
        assert KEYS["k2"] not in repr(world)
    finally:
        asyncio.run(world.close())


def test_without_keys_nothing_of_the_encryption_layer_is_loaded(tmp_path: Path) -> None:
    """Encryption not configured: no cryptography import, no wrapper, nothing to pay."""
    script = f"""
import asyncio, sys
import workflowkit, workflowkit.cli.main, workflowkit.web
from workflowkit import workflow
from workflowkit.api import start

@workflow
async def echo(x: int) -> int:
    return x

async def main() -> None:
    runtime = workflowkit.configure("sqlite:///{tmp_path / "wk.db"}")
    assert type(runtime.world).__name__ == "SQLiteWorld"
    assert await (await start(echo, 7)).return_value(timeout=20) == 7

asyncio.run(main())
workflowkit.shutdown()
loaded = [m for m in sys.modules if m.startswith("cryptography") or "_encrypted" in m]
print(loaded)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOWKIT_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
