# Sourced by the other scripts: a project virtualenv with workflowkit installed, made once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.workflowkit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # pip 25.1 is the first to install PEP 735 dependency groups (`--group`), where the
  # project's own tools live: they are not extras, so a user's install never sees them.
  .venv/bin/python -m pip install --quiet --upgrade "pip>=25.1"
  .venv/bin/python -m pip install --quiet --group dev -e ".[postgres-binary,web,http,pydantic,ai,crypto,otel]"
  touch "$stamp"
fi
# Compiled once here, not in every process: where PYTHONDONTWRITEBYTECODE is set (as on this
# machine) each worker process, CLI call and example the tests start would otherwise compile
# the package from source, about 0.15 s of a process's 0.4 s start. Up-to-date files are skipped.
.venv/bin/python -m compileall -q src >/dev/null
