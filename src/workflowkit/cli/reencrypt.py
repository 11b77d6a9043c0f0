"""``workflowkit reencrypt``: seal every stored payload with the active encryption key."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..worlds.base import World
from .common import EXIT_USAGE, CliError, add_json_flag, print_json, with_world

if TYPE_CHECKING:
    from .. import _reencrypt


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "reencrypt",
        help="encrypt every stored payload with the active key",
        description="Encrypt every stored payload not yet sealed with the active key of "
        "WORKFLOWKIT_ENCRYPTION_KEYS (the first): those sealed with an older key, and those "
        "stored before encryption was turned on. Works in small batches, safe while workers "
        "run (a payload that changed meanwhile is left for the next pass); run it until "
        "nothing is left before removing an old key (docs/encryption.md).",
    )
    parser.add_argument("--dry-run", action="store_true", help="count, change nothing")
    parser.add_argument(
        "--batch", type=int, default=500, metavar="N", help="payloads per transaction (500)"
    )
    add_json_flag(parser)
    parser.set_defaults(handler=run_reencrypt)


def run_reencrypt(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise CliError("--batch: give a whole number of at least 1", EXIT_USAGE)
    # Here, not at the top: the other commands never load the encryption layer.
    from .. import _reencrypt
    from ..worlds._encrypted import EncryptedWorld

    async def go(world: World) -> _reencrypt.Progress:
        if not isinstance(world, EncryptedWorld):
            raise CliError(
                "no encryption keys: set WORKFLOWKIT_ENCRYPTION_KEYS (the active key first)",
                EXIT_USAGE,
            )
        return await _reencrypt.reencrypt(world, dry_run=args.dry_run, batch=args.batch)

    done = with_world(args, go)
    by_key: dict[str, int] = {}
    for (_, key), count in done.found.items():
        by_key[key] = by_key.get(key, 0) + count
    if args.json:
        print_json(
            {
                "dry_run": done.dry_run,
                "active_key": done.active,
                "found": by_key,
                "reencrypted": done.reencrypted,
                "changed_meanwhile": done.changed,
                "missing_keys": dict(done.missing),
                "damaged": done.damaged,
                "left": done.left,
            }
        )
        return 0
    found = ", ".join(f"{n} under {k}" for k, n in sorted(by_key.items())) or "none"
    print(f"payloads not sealed with key {done.active}: {found}")
    if not done.dry_run:
        print(f"re-encrypted {done.reencrypted} payload(s) with key {done.active}")
    if done.changed:
        print(f"{done.changed} changed while being re-encrypted: run again to take them")
    for key, count in sorted(done.missing.items()):
        print(f"{count} sealed with key {key}, which WORKFLOWKIT_ENCRYPTION_KEYS does not hold")
    if done.damaged:
        print(f"{done.damaged} fail authentication (altered): left as they are")
    return 0
