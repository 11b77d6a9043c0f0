"""``workflowkit web``: serve the web dashboard (needs uvicorn: the ``web`` extra)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
from typing import Any

from .common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    require_database,
    resolved_url,
    safe_url,
    world_url,
)

DEFAULT_PORT = 3456
TOKEN_ENV = "WORKFLOWKIT_WEB_TOKEN"


def add_parser(commands: Any) -> None:
    web = commands.add_parser(
        "web",
        help="serve the web dashboard (http://127.0.0.1:3456 by default)",
        description="Serve the web dashboard: runs, a run's timeline and event log, actions. "
        "Binds 127.0.0.1 unless told otherwise; any other address needs an access token.",
    )
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    web.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    web.add_argument(
        "--token",
        help=f"access token every request must carry (default: ${TOKEN_ENV}); "
        "required to bind anything but a loopback address",
    )
    web.set_defaults(handler=run_web)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_web(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(args.host):
        raise CliError(
            f"refusing to serve the dashboard on {args.host} without an access token: "
            f"pass --token (or set {TOKEN_ENV}), or bind 127.0.0.1",
            EXIT_USAGE,
        )
    if not 0 < args.port < 65536:
        raise CliError(f"--port must be 1..65535, got {args.port}", EXIT_USAGE)
    try:
        import uvicorn
    except ImportError:
        raise CliError("the dashboard needs uvicorn: pip install 'workflowkit[web]'") from None
    from ..web import create_app  # imported here: plain CLI commands need none of it
    from ..web.auth import loopback_hosts

    url = resolved_url(world_url(args))
    require_database(url)
    listening = _listen(args.host, args.port)  # before the app: a taken port is said at once
    # Without a token, only requests addressed to this machine's loopback names are served,
    # which stops a web page that re-points its own domain here (DNS rebinding).
    hosts = None if token is not None else loopback_hosts([args.host])
    app = create_app(url, token=token, allowed_hosts=hosts)
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    note = " (access token required)" if token else ""
    print(
        f"workflowkit dashboard: http://{shown_host}:{args.port}/{note} "
        f"on {safe_url(url)}; Ctrl-C stops it",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[listening])
    # uvicorn catches Ctrl-C to shut down cleanly; the exit code still says it came.
    interrupted = signal.SIGINT in getattr(server, "_captured_signals", ())
    return EXIT_INTERRUPTED if interrupted else 0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
