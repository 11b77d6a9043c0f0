"""What a stranger gets from ``pip install workflowkit``.

The README's first example runs as written, in seconds; the install tables name every
extra; the metadata's links agree with the docs. The slow test builds the sdist and the
wheel as a release would, checks their metadata with twine, installs the wheel alone into a
fresh virtualenv (with that Python's own, possibly old, pip) and runs the README's example,
``examples/order_pipeline.py`` and ``tests/packaging_smoke.py`` there: a file missing from
the package fails here, not for a user. It does so on every Python version the classifiers
name, with an interpreter found as ``python3.X`` on ``PATH`` or under pyenv; a version the
machine lacks is skipped, saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[1]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT: dict[str, Any] = PYPROJECT["project"]
CLASSIFIED_VERSIONS = [
    c.rsplit(" :: ", 1)[1]
    for c in PROJECT["classifiers"]
    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
]


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` (``"3.12"``) on this machine, or None."""
    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(map(str, pyenv.glob(f"{version}.*/bin/python{version}")), reverse=True)
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import venv"], capture_output=True, timeout=30)
        if probe.returncode == 0:  # pyenv's shim for a version not enabled exits 127
            return candidate
    return None


def clean_env() -> dict[str, str]:
    """The environment of a stranger's shell: no WORKFLOWKIT_* settings, no PYTHONPATH."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WORKFLOWKIT_") and k not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }


def readme_example() -> str:
    """The README's first code block, the one it tells you to save as ``hello.py``."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(
        r"<!-- doctest: file hello\.py -->\n```python\n(.*?)^```", readme, re.S | re.M
    )
    assert match, "README.md: the first example must be a python block saved as hello.py"
    return match[1]


def run_readme_example(python: Path | str, workdir: Path) -> None:
    (workdir / "hello.py").write_text(readme_example())
    began = time.monotonic()
    result = subprocess.run(
        [str(python), "hello.py"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ch_o-1\n", result.stdout
    assert 2 <= took < 30, f"took {took:.1f} s: the example sleeps for 2 s, really"
    assert (workdir / ".workflowkit" / "workflowkit.db").exists(), "state is where it says"


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    run_readme_example(sys.executable, tmp_path)


def install_table_extras(path: Path) -> set[str]:
    """The extras named in the first column of the page's ``| extra | ... |`` table."""
    text = path.read_text()
    table = re.search(r"^\| extra \|.*\n\|[-| ]+\|\n((?:\|.*\n)+)", text, re.M)
    assert table, f"{path.name} has no install table (a header row starting `| extra |`)"
    rows = [re.match(r"\| `([\w-]+)` \|", row) for row in table[1].splitlines()]
    assert all(rows), f"{path.name}: each row of the install table starts with | `extra` |"
    return {row[1] for row in rows if row}


@pytest.mark.parametrize("page", ["README.md", "docs/install.md"])
def test_the_install_tables_name_every_published_extra(page: str) -> None:
    assert install_table_extras(ROOT / page) == set(PROJECT["optional-dependencies"])


def test_no_development_tools_in_the_published_extras() -> None:
    published = " ".join(" ".join(reqs) for reqs in PROJECT["optional-dependencies"].values())
    for tool in ("pytest", "mypy", "ruff", "mkdocs", "hypothesis", "playwright"):
        assert tool not in published, f"{tool} belongs in [dependency-groups], not an extra"
    assert "dev" in PYPROJECT["dependency-groups"]


def test_the_metadata_links_agree_with_the_docs() -> None:
    mkdocs = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    urls = PROJECT["urls"]
    assert urls["Documentation"] == mkdocs["site_url"]
    assert urls["Source"] == mkdocs["repo_url"]
    assert urls["Changelog"] == f"{urls['Source']}/blob/main/CHANGELOG.md"
    assert urls["Issues"] == f"{urls['Source']}/issues"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(PROJECT['version'])}\b", changelog, re.M), (
        f"CHANGELOG.md needs a section for version {PROJECT['version']}"
    )


# -- the built distributions ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, and the wheel built from it, as `python -m build` makes them for a release."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def core_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheels of the core's requirements (what pip would fetch for a stranger)."""
    out = tmp_path_factory.mktemp("core-wheels")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
            *("--only-binary=:all:", "--dest", str(out), *PROJECT["dependencies"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def package_files() -> set[str]:
    """Every file of the package in the repository, as a path inside the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "src/workflowkit"], cwd=ROOT, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    return {line.removeprefix("src/") for line in listed.stdout.splitlines()}


@pytest.mark.slow
def test_the_distributions_carry_every_file_and_valid_metadata(dists: tuple[Path, Path]) -> None:
    sdist, wheel = dists
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"workflowkit-{PROJECT['version']}.dist-info"
        metadata = zf.read(f"{info}/METADATA").decode()
    missing = package_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert f"{info}/licenses/LICENSE" in names
    assert "License-Expression: Apache-2.0" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [line.removeprefix("Requires-Dist: ") for line in requires if "; extra ==" not in line]
    # The core's one requirement: cronsim, pure Python (docs/schedules.md says why).
    assert core == PROJECT["dependencies"] == ["cronsim>=2.7"], core
    assert "Provides-Extra: dev" not in metadata

    with tarfile.open(sdist) as tf:
        top = f"workflowkit-{PROJECT['version']}"
        members = {name.removeprefix(f"{top}/") for name in tf.getnames()}
    for needed in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"):
        assert needed in members, f"the sdist lacks {needed}"
    missing = {f"src/{name}" for name in package_files()} - members
    assert not missing, f"the sdist lacks {sorted(missing)}"


def test_the_classifiers_name_the_python_versions_requires_python_admits() -> None:
    assert PROJECT["requires-python"] == f">={CLASSIFIED_VERSIONS[0]}"
    minors = [int(version.split(".")[1]) for version in CLASSIFIED_VERSIONS]
    assert minors == list(range(minors[0], minors[0] + len(minors))), "no gap, in order"


@pytest.mark.slow
@pytest.mark.parametrize("version", CLASSIFIED_VERSIONS)
def test_the_wheel_alone_in_a_fresh_virtualenv_runs_workflows(
    version: str, dists: tuple[Path, Path], core_wheels: Path, tmp_path: Path
) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine (python{version}, or under pyenv)")
    _, wheel = dists
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    venv_python = venv / "bin" / "python"
    # The interpreter's own pip, not upgraded, and no index: nothing but the wheel and the
    # wheels of the core's requirements.
    install = subprocess.run(
        [
            *(str(venv_python), "-m", "pip", "install", "--quiet", "--no-index"),
            *("--find-links", str(core_wheels), str(wheel)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert install.returncode == 0, install.stdout + install.stderr

    work = tmp_path / "work"
    work.mkdir()
    run_readme_example(venv_python, work)
    for script in (ROOT / "examples" / "order_pipeline.py", ROOT / "tests" / "packaging_smoke.py"):
        result = subprocess.run(
            [str(venv_python), str(script)],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(),
        )
        assert result.returncode == 0, f"{script.name}:\n{result.stdout}\n{result.stderr}"
        expected = "status: completed" if script.name == "order_pipeline.py" else "ok"
        assert expected in result.stdout, result.stdout
