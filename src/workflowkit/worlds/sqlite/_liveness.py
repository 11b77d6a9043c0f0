"""Which workers of a SQLite file are gone, from a lock the kernel holds for each.

A worker's runs move to another worker when its lease runs out: that holds in every case,
across PID namespaces and hosts, and it is all PostgreSQL has. Workers of one SQLite file
share a filesystem, so each also holds an exclusive ``flock`` on a file of its own beside the
database for as long as it lives; the kernel lets go of it when the process ends, however it
ends (no pid is asked, which would mean nothing in another PID namespace). A worker that can
take such a lock knows its holder is gone and hands the holder's runs back at once rather
than after the lease: a script killed and started again carries on at once.

Where locks are not to be had (no ``fcntl``, a read-only directory) nothing is held and
nothing is judged: leases alone decide, as before.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: leases alone
    fcntl = None  # type: ignore[assignment]

_SUFFIX = ".lock"


class WorkerLocks:
    """The locks of the workers registered through one World, and a look at the others'."""

    def __init__(self, database: Path) -> None:
        # Hidden, and not named like the database's own files: a copy of ``wk.db*`` (a
        # backup) takes no lock files.
        self._dir = database.with_name(f".{database.name}-workers")
        self._held: dict[str, int] = {}  # worker id -> the descriptor holding its lock

    def hold(self, worker_id: str) -> None:
        """Lock a file named for ``worker_id`` for as long as this process lives (or until
        ``release``). It is locked before it is in place (a rename), so no other worker can
        see it unlocked and think its holder gone."""
        if fcntl is None or worker_id in self._held:
            return
        try:
            self._dir.mkdir(exist_ok=True)
            path = self._dir / f"{worker_id}{_SUFFIX}"
            draft = path.with_suffix(".new")
            fd = os.open(draft, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.replace(draft, path)
            except OSError:
                os.close(fd)
                raise
        except OSError:
            return  # leases alone
        self._held[worker_id] = fd

    def release(self, worker_id: str) -> None:
        fd = self._held.pop(worker_id, None)
        if fd is None:
            return
        with contextlib.suppress(OSError):
            (self._dir / f"{worker_id}{_SUFFIX}").unlink()
        os.close(fd)

    def release_all(self) -> None:
        for worker_id in list(self._held):
            self.release(worker_id)
        with contextlib.suppress(OSError):  # left in place while other workers use it
            self._dir.rmdir()

    def take_gone(self) -> list[str]:
        """The workers whose process ended without handing back; each lock file found
        unheld is removed, so one worker alone hands each such worker's runs back."""
        if fcntl is None or not self._held:
            return []
        try:
            names = os.listdir(self._dir)
        except OSError:
            return []
        gone = []
        for name in names:
            worker_id = name.removesuffix(_SUFFIX)
            if worker_id == name or worker_id in self._held:
                continue
            if self._take(self._dir / name):
                gone.append(worker_id)
        return gone

    @staticmethod
    def _take(path: Path) -> bool:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:  # removed meanwhile: its worker unregistered, or another took it
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False  # held: its worker lives
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        return True
