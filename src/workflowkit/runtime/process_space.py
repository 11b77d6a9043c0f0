"""Where this process's pid names it: the host's boot and the PID namespace.

Workers in one process space may tell from a pid that another's process is gone and take
its runs at once; anywhere else (another container with the same hostname, another host)
a pid names some other process or none, and only the World's leases may decide.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path


@functools.cache
def process_space() -> str:
    """This process's space: hostname, boot id and PID namespace; "" where they cannot be
    read (then no worker judges this one by its pid, nor others by theirs)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{socket.gethostname()}/{boot}/{namespace}"
