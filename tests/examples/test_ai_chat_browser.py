"""The chat example in headless Chromium: a reply streams in, a reload in the middle of it
resumes the stream from the last chunk the page saw, and the reply completes once."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import workflowkit

CHROMIUM = "/usr/bin/chromium"

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is missing", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")
pytest.importorskip("pydantic_ai")


@pytest.fixture
def chat_url(
    tmp_path: Path, serve_asgi: Callable[[Any], str], ai_chat_example: ModuleType
) -> Iterator[str]:
    example = ai_chat_example
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", poll_interval=0.05)
    try:
        yield serve_asgi(example.app)
    finally:
        workflowkit.shutdown()


def test_a_reload_mid_reply_resumes_the_stream_without_duplicates(
    chat_url: str, ai_chat_example: ModuleType
) -> None:
    example = ai_chat_example
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(chat_url)
            page.fill("#input", "hello")
            page.click("button")
            assistant = page.locator(".assistant").first
            playwright.expect(assistant).to_contain_text("word3", timeout=20_000)
            assert "word30" not in assistant.inner_text()  # still mid-reply
            page.reload()
            playwright.expect(page.locator("#log")).to_have_attribute(
                "data-status", "idle", timeout=20_000
            )
            texts = page.locator(".assistant").all_inner_texts()
            assert texts == [example.demo_reply("hello")]
            assert page.locator(".user").all_inner_texts() == ["hello"]
            # A second turn in the same conversation, after the reload.
            page.fill("#input", "again")
            page.click("button")
            playwright.expect(page.locator(".assistant")).to_have_count(2, timeout=20_000)
            playwright.expect(page.locator("#log")).to_have_attribute(
                "data-status", "idle", timeout=20_000
            )
            assert page.locator(".assistant").all_inner_texts()[1] == example.demo_reply("again")
        finally:
            browser.close()
