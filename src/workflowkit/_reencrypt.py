"""Re-encrypting stored payloads with the active key (``workflowkit reencrypt``).

Every column holding payloads is read in key order, a bounded batch at a time, skipping
those sealed with the active key already; each of the others (sealed with an older key, or
stored before encryption was turned on) is sealed again with the active key, keeping what it
is bound to, and written back only if its row still holds the bytes read. So it can run while
workers run: payloads are written once and never changed afterwards (a schedule's input
aside, which an edit replaces), and a row that changed between the read and the write is
left as it is and counted (another pass takes it). Nothing is decrypted for longer than one
batch, and only in this process.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import _envelope
from .encryption import EncryptionKeys
from .errors import ConfigurationError, PayloadDecryptionError
from .worlds._encrypted import EncryptedWorld, reply_binding, schedule_binding
from .worlds._payload_sql import PLACES
from .worlds.records import ChunkKind, StoredPayload

PLAINTEXT = "(not encrypted)"


@dataclass
class Progress:
    """What a pass found and did. ``found``: payloads not sealed with the active key, by
    place and by the key they are sealed with (``PLAINTEXT`` for none)."""

    active: str
    dry_run: bool
    found: Counter[tuple[str, str]] = field(default_factory=Counter)
    reencrypted: int = 0
    changed: int = 0  # rows that changed between the read and the write: left for a next pass
    missing: Counter[str] = field(default_factory=Counter)  # sealed with a key not given
    damaged: int = 0  # failing authentication: left as they are

    @property
    def left(self) -> int:
        """Payloads still not sealed with the active key after this pass."""
        return sum(self.found.values()) - self.reencrypted


async def reencrypt(world: EncryptedWorld, *, dry_run: bool = False, batch: int = 500) -> Progress:
    """One pass over every stored payload (see the module's docstring)."""
    store: Any = world.inner
    if not hasattr(store, "scan_payloads"):
        raise ConfigurationError(f"{store!r} cannot list its payloads for re-encryption")
    keys = world.keys
    progress = Progress(keys.active, dry_run)
    skip = _envelope.header(keys.active, "")[:-2]  # the framing up to the binding's length
    for place in PLACES:
        after: tuple[Any, ...] | None = None
        while True:
            rows: list[StoredPayload] = await store.scan_payloads(place, after, skip, batch)
            if not rows:
                break
            after = rows[-1].key
            swaps = []
            for row in rows:
                swap = _resealed(keys, row, progress)
                if swap is not None:
                    swaps.append((row, *swap))
            if swaps and not dry_run:
                done: int = await store.swap_payloads(swaps)
                progress.reencrypted += done
                progress.changed += len(swaps) - done
            if len(rows) < batch:
                break
    return progress


def _resealed(
    keys: EncryptionKeys, row: StoredPayload, progress: Progress
) -> tuple[bytes, str | None] | None:
    """The row's payload sealed with the active key (and its chunk kind); None to leave it."""
    data = row.data
    if data[:3] != _envelope.MAGIC:
        progress.found[row.place, PLAINTEXT] += 1
        if row.place == "stream_chunks":
            plain = (row.kind or ChunkKind.BYTES.value).encode() + data
            return keys.seal(plain, str(row.key[0])), ChunkKind.ENCRYPTED.value
        return keys.seal(data, _binding(row)), row.kind
    try:
        key_id = keys.key_of(data)
    except PayloadDecryptionError:
        progress.damaged += 1
        return None
    progress.found[row.place, key_id] += 1
    if key_id not in keys.ids:
        progress.missing[key_id] += 1
        return None
    try:
        return keys.reseal(data), row.kind
    except PayloadDecryptionError:
        progress.damaged += 1
        return None


def _binding(row: StoredPayload) -> str:
    key = str(row.key[0])
    if row.place == "webhook_responses":
        return reply_binding(key)
    if row.place == "schedules":
        return schedule_binding(key)
    return key  # events and stream chunks: the run
