"""The documentation builds (mkdocs --strict), and every code block in it runs.

Each page is read top to bottom like a notebook:

* ``python`` blocks run, in order, in one module namespace per page (top-level ``await``
  allowed), against a fresh SQLite World on the virtual clock (long sleeps finish at once).
* ``sh`` / ``bash`` blocks run with bash (``-euo pipefail``) in a temporary directory of the
  page, with the project's virtualenv first on ``PATH``; every command must succeed.
* ``json``, ``toml``, ``yaml``, ``ini``, ``systemd`` and ``dockerfile`` blocks are parsed.
* ``text`` blocks are output or syntax summaries, not code: they are left alone.

HTML comments starting with ``doctest:`` steer the test (readers never see them):

* ``<!-- doctest: skip REASON -->`` before a block: do not run it (a reason is required).
* ``<!-- doctest: file NAME -->`` before a block: write it to NAME in the page directory
  instead of running it (a later shell block runs it for real).
* ``<!-- doctest: background port=8000 -->`` before a shell block: start it in the
  background (a server), wait until it listens, and stop it when the page ends. The port is
  replaced by a free one, in that block and in the shell blocks after it.
* ``<!-- doctest: setup`` + code + ``-->``: hidden Python run at that point of the page.
* ``<!-- doctest: runtime virtual_clock=False ... -->``: options for ``workflowkit.configure``.
* ``<!-- doctest: seeded-database -->``: put a database with a few runs (completed, failed,
  sleeping, waiting on the hook ``approval:doc-1``) where the ``workflowkit`` command looks by
  default, before the page's first shell block.
"""

from __future__ import annotations

import ast
import asyncio
import configparser
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import workflowkit
from workflowkit import errors

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
BIN = Path(sys.executable).parent

TOKEN = re.compile(
    r"<!--\s*doctest:(?P<directive>.*?)-->"
    r"|^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.S | re.M,
)
SHELLS = {"sh", "bash", "shell", "console"}
PARSED = {"json", "toml", "yaml", "yml", "ini", "systemd", "dockerfile"}
DOCKER_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    directive: str = ""  # the doctest comment just before it, if any

    @property
    def where(self) -> str:
        return f"line {self.line} ({self.lang} block)"


@dataclass(frozen=True)
class Hidden:
    kind: str  # "setup", "runtime", "seeded-database"
    text: str
    line: int


def dedent_block(body: str, indent: str) -> str:
    return "".join(
        line[len(indent) :] if line.startswith(indent) else line
        for line in body.splitlines(keepends=True)
    )


def parse_page(text: str) -> list[Block | Hidden]:
    items: list[Block | Hidden] = []
    pending = ""
    last_end = 0
    for match in TOKEN.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        between = text[last_end : match.start()]
        if pending and between.strip():
            raise AssertionError(f"line {line}: a doctest directive must come right before a block")
        last_end = match.end()
        if match["directive"] is not None:
            directive = match["directive"].strip()
            kind, _, rest = directive.partition("\n") if "\n" in directive else (directive, "", "")
            word = kind.split(None, 1)[0] if kind.strip() else ""
            if word in {"setup", "seeded-database"} or word == "runtime":
                body = rest if word == "setup" else kind[len(word) :].strip()
                items.append(Hidden(word, body, line))
            elif word in {"skip", "file", "background"}:
                if word == "skip" and len(kind.split()) < 2:
                    raise AssertionError(f"line {line}: `doctest: skip` needs a reason")
                pending = kind.strip()
            else:
                raise AssertionError(f"line {line}: unknown doctest directive {kind!r}")
            continue
        lang = match["lang"].lower()
        body = dedent_block(match["body"], match["indent"])
        items.append(Block(lang, body, line, pending))
        pending = ""
    if pending:
        raise AssertionError(f"a doctest directive ({pending!r}) is not followed by a block")
    return items


# -- what runs a page ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the background server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listened on port {port} within {timeout} s")


@dataclass
class PageRun:
    page: Path
    workdir: Path
    seed_db: Path
    module: types.ModuleType
    runner: asyncio.Runner
    options: dict[str, Any] = field(default_factory=lambda: {"virtual_clock": True})
    started: bool = False
    ports: dict[str, str] = field(default_factory=dict)
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    # Python ------------------------------------------------------------------------------

    def ensure_runtime(self) -> None:
        if not self.started:
            url = f"sqlite:///{self.workdir / 'python-world.db'}"
            workflowkit.configure(url, poll_interval=0.05, **self.options)
            self.started = True

    def run_python(self, code: str, where: str) -> None:
        self.ensure_runtime()
        filename = f"{self.page.name} {where}"
        compiled = compile(code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        namespace = self.module.__dict__
        try:
            with contextlib.chdir(self.workdir):
                result = eval(compiled, namespace)  # the doc's own code, run on purpose
                if asyncio.iscoroutine(result):
                    self.runner.run(asyncio.wait_for(result, 20))
        except BaseException as exc:
            exc.add_note(f"in {filename}")
            raise

    # Shell -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOWKIT_")}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def with_ports(self, code: str) -> str:
        for old, new in self.ports.items():
            code = re.sub(rf"\b{old}\b", new, code)
        return code

    def run_shell(self, block: Block) -> None:
        code = self.with_ports(block.code)
        if block.directive.startswith("background"):
            self.start_server(block, code)
            return
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (
            f"{self.page.name} {block.where} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )

    def start_server(self, block: Block, code: str) -> None:
        match = re.search(r"port=(\d+)", block.directive)
        assert match, f"{self.page.name} {block.where}: `background` needs port=NNNN"
        port = free_port()
        self.ports[match[1]] = str(port)
        code = self.with_ports(block.code)
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", f"exec {code.strip()}"],
            cwd=self.workdir,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.servers.append(process)
        try:
            wait_listening(port, process)
        except AssertionError as exc:
            stderr = process.stderr.read() if process.poll() is not None and process.stderr else ""
            raise AssertionError(f"{self.page.name} {block.where}: {exc}\n{stderr}") from None

    def seed(self) -> None:
        target = self.workdir / ".workflowkit" / "workflowkit.db"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(self.seed_db, target)

    # Teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        for process in self.servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            if process.stderr:
                process.stderr.close()
        if self.started:
            workflowkit.shutdown()
        self.runner.close()
        sys.modules.pop(self.module.__name__, None)


def check_parsed(block: Block, page: Path) -> None:
    where = f"{page.name} {block.where}"
    try:
        if block.lang == "json":
            json.loads(block.code)
        elif block.lang == "toml":
            tomllib.loads(block.code)
        elif block.lang in {"yaml", "yml"}:
            assert yaml.safe_load(block.code) is not None, "empty YAML"
        elif block.lang in {"ini", "systemd"}:
            parser = configparser.ConfigParser(strict=False, interpolation=None)
            parser.optionxform = str  # type: ignore[assignment,method-assign]
            parser.read_string(block.code)
            if block.lang == "systemd":
                assert parser.has_section("Unit"), "a systemd unit needs [Unit]"
                assert parser.has_section("Service") or parser.has_section("Timer")
        elif block.lang == "dockerfile":
            check_dockerfile(block.code)
    except Exception as exc:
        pytest.fail(f"{where} does not parse: {exc}")


def check_dockerfile(code: str) -> None:
    continued = False
    saw_from = False
    for raw in code.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not continued:
            word = line.split(None, 1)[0].upper()
            assert word in DOCKER_INSTRUCTIONS, f"unknown instruction {word!r}"
            saw_from = saw_from or word == "FROM"
        continued = line.endswith("\\")
    assert saw_from, "no FROM instruction"


@pytest.fixture(scope="session")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A World with a completed, a failed, a sleeping and a hook-waiting run."""
    path = tmp_path_factory.mktemp("seed") / "workflowkit.db"
    script = ROOT / "tests" / "docs_seed.py"
    result = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("WORKFLOWKIT_")},
    )
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def page_run(tmp_path: Path, seeded_database: Path) -> Iterator[dict[str, PageRun]]:
    holder: dict[str, PageRun] = {}
    yield holder
    if "run" in holder:
        holder["run"].close()


# -- the tests -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MkDocs site, built once (strict: a broken link or #anchor fails the build)."""
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return site


def mkdocs_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return config


def test_site_builds_strictly(built_site: Path) -> None:
    assert (built_site / "index.html").exists()
    assert (built_site / "errors" / "index.html").exists()


def site_page(site: Path, url: str) -> tuple[Path, str]:
    """The built file a published URL of the site serves, and the URL's #anchor."""
    site_url = mkdocs_config()["site_url"]
    assert url.startswith(site_url), f"{url} is not on the site ({site_url})"
    path, _, anchor = url[len(site_url) :].partition("#")
    assert path == "" or path.endswith("/"), f"{url}: pages are directories (end with /)"
    return site / path / "index.html", anchor


def has_anchor(page: Path, anchor: str) -> bool:
    return re.search(rf'\bid="{re.escape(anchor)}"', page.read_text()) is not None


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_code_blocks_run(
    page: Path, tmp_path: Path, seeded_database: Path, page_run: dict[str, PageRun]
) -> None:
    items = parse_page(page.read_text())
    name = "docs_" + re.sub(r"\W", "_", str(page.relative_to(ROOT).with_suffix("")))
    module = types.ModuleType(name)
    module.__file__ = str(tmp_path / f"{name}.py")
    sys.modules[name] = module
    run = page_run["run"] = PageRun(page, tmp_path, seeded_database, module, asyncio.Runner())
    for item in items:
        if isinstance(item, Hidden):
            if item.kind == "setup":
                run.run_python(item.text, f"line {item.line} (hidden setup)")
            elif item.kind == "runtime":
                assert not run.started, f"{page.name}: `doctest: runtime` must come first"
                options = dict(
                    (key, ast.literal_eval(value))
                    for key, value in (pair.split("=", 1) for pair in item.text.split())
                )
                run.options.update(options)
            else:
                run.seed()
            continue
        if item.directive.startswith("skip"):
            continue
        if item.directive.startswith("file"):
            (tmp_path / item.directive.split(None, 1)[1].strip()).write_text(item.code)
        elif item.lang == "python":
            run.run_python(item.code, item.where)
        elif item.lang in SHELLS:
            run.run_shell(item)
        elif item.lang in PARSED:
            check_parsed(item, page)
        elif item.lang != "text":
            pytest.fail(
                f"{page.name} {item.where}: give the block a language the doc test knows "
                f"(python, sh, json, toml, yaml, ini, systemd, dockerfile) or `text`"
            )


def error_classes() -> list[type[BaseException]]:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    ]
    return list(dict.fromkeys(classes))  # each once: an alias names a class twice


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_has_its_section(cls: type[BaseException]) -> None:
    page = (DOCS / "errors.md").read_text()
    slug = getattr(cls, "slug", None)
    assert isinstance(slug, str), f"{cls.__name__} has no slug"
    heading = re.search(rf"^#+ {cls.__name__} \{{#{re.escape(slug)}\}}$", page, re.M)
    assert heading, f"docs/errors.md needs a heading `### {cls.__name__} {{#{slug}}}`"
    assert errors.docs_url_for(cls) == f"{errors.DOCS_BASE}#{slug}"


def test_error_links_lead_to_their_section_of_the_built_site(built_site: Path) -> None:
    errors_page = mkdocs_config()["site_url"] + "errors/"
    assert errors_page == errors.DOCS_BASE, "errors.DOCS_BASE must be site_url + errors/"
    for cls in error_classes():
        url = errors.docs_url_for(cls)
        assert url is not None
        page, anchor = site_page(built_site, url)
        assert page.exists(), f"{cls.__name__} links to {url}, which the site does not have"
        assert has_anchor(page, anchor), f"{cls.__name__} links to {url}: no such anchor"


MARKDOWN_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<url>[^)\s]+)\)")


def test_readme_links_work_on_the_package_index(built_site: Path) -> None:
    """The README is the package's page on the index: relative links break there."""
    config = mkdocs_config()
    site_url, repo_url = config["site_url"], config["repo_url"]
    source_file = re.compile(rf"{re.escape(repo_url)}/(?:blob|tree)/main/(?P<path>[^#]+)")
    links = [m["url"] for m in MARKDOWN_LINK.finditer((ROOT / "README.md").read_text())]
    assert links
    for url in links:
        assert url.startswith("https://"), f"README.md: {url!r} must be an absolute https link"
        if url.startswith(site_url):
            page, anchor = site_page(built_site, url)
            assert page.exists(), f"README.md links to {url}, which the site does not have"
            assert not anchor or has_anchor(page, anchor), f"README.md: no anchor for {url}"
        elif url.startswith(repo_url + "/"):
            match = source_file.fullmatch(url)
            issues = url == f"{repo_url}/issues"
            assert match or issues, f"README.md: {url} should link a file on the main branch"
            assert issues or (ROOT / match["path"]).exists(), f"README.md: no {match['path']}"


def test_error_slugs_are_unique() -> None:
    slugs = [getattr(cls, "slug", None) for cls in error_classes()]
    assert len(slugs) == len(set(slugs))


def test_cli_shows_the_docs_link(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "workflowkit"), "--world", str(tmp_path / "none.db"), "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(
        [
            str(BIN / "workflowkit"),
            "--world",
            str(tmp_path / "none.db"),
            "inspect",
            "run",
            "wrun_X",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "(see https://workflowkit.dev/errors/#workflow-run-not-found)" in missing.stderr
