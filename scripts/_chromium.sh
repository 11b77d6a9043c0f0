# Sourced by scripts/test: the dashboard's browser tests drive Debian's Chromium through
# Playwright (never `playwright install`, which downloads a browser build of its own).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium (Debian package) for the dashboard's browser tests"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
      >/dev/null || echo "== could not install chromium: the browser tests will fail" >&2
  else
    echo "== /usr/bin/chromium is missing and cannot be installed here (not root):" \
      "the dashboard's browser tests are skipped" >&2
  fi
fi
