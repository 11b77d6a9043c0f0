"""The framing of an encrypted payload, readable without the ``cryptography`` package.

A payload encrypted at rest (``docs/encryption.md``) is::

    b"wkx1" ID_LEN ID BIND_LEN BIND NONCE CIPHERTEXT TAG

* ``ID_LEN`` is one byte, ``ID`` the key id (ASCII) that encrypted it;
* ``BIND_LEN`` two bytes (big-endian), ``BIND`` what the payload is bound to (UTF-8): the
  run it was written for, ``schedule:ID`` or ``reply:ID``;
* ``NONCE`` 12 random bytes, then the AES-256-GCM ciphertext and its 16-byte tag. The
  authenticated data is everything before the nonce, so the key id and the binding cannot be
  changed without the payload failing authentication.

Plain codec payloads start with ``b"wk1"``: the two never collide, and a store may hold both
(encryption turned on later; ``workflowkit reencrypt`` encrypts the old ones).

``b"wkx!"`` + a reason byte + a sealed payload is never stored: a World that reads a payload
failing authentication hands this on instead, so decoding it raises
``PayloadDecryptionError`` and displaying it says so, where they happen. A sealed payload that
reaches the codec as is could not be decrypted for lack of its key (``PayloadKeyMissingError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NoReturn

from .errors import PayloadDecryptionError, PayloadKeyMissingError

MAGIC: Final = b"wkx"
SEALED: Final = b"wkx1"
DAMAGED: Final = b"wkx!"
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16

ALTERED: Final = b"a"  # authentication failed: altered, or a different key under its id
MOVED: Final = b"m"  # authentic, but bound to another place than where it was read
MALFORMED: Final = b"f"  # not a sealed payload this version reads

REASONS: Final = {
    ALTERED: "authentication failed (the bytes were altered, or the key under that id is not "
    "the one that encrypted it)",
    MOVED: "it was written for another place in the store than the one it was read from",
    MALFORMED: "its framing is not one this version of workflowkit reads",
}


@dataclass(frozen=True, slots=True)
class Header:
    key_id: str
    binding: str
    end: int  # where the nonce starts: the authenticated data is ``data[:end]``


def is_sealed(data: bytes) -> bool:
    return data[:3] == MAGIC


def parse(data: bytes) -> Header:
    """The header of a sealed payload; ``PayloadDecryptionError`` if it is malformed."""
    if data[:4] != SEALED or len(data) < 5:
        raise PayloadDecryptionError("?", REASONS[MALFORMED])
    id_end = 5 + data[4]
    bind_end = id_end + 2
    if len(data) < bind_end:
        raise PayloadDecryptionError("?", REASONS[MALFORMED])
    end = bind_end + int.from_bytes(data[id_end:bind_end], "big")
    if len(data) < end + NONCE_SIZE + TAG_SIZE:
        raise PayloadDecryptionError("?", REASONS[MALFORMED])
    try:
        key_id = data[5:id_end].decode("ascii")
        binding = data[bind_end:end].decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadDecryptionError("?", REASONS[MALFORMED]) from None
    return Header(key_id, binding, end)


def parse_binding(data: bytes) -> str | None:
    """What a sealed payload is bound to; None if it is not a well-formed sealed payload."""
    try:
        return parse(data).binding
    except PayloadDecryptionError:
        return None


def header(key_id: str, binding: str) -> bytes:
    """The authenticated start of a sealed payload (``key_id`` is at most 64 ASCII bytes)."""
    bound = binding.encode("utf-8")
    return b"".join(
        (SEALED, len(key_id).to_bytes(1, "big"), key_id.encode("ascii"),
         len(bound).to_bytes(2, "big"), bound)
    )  # fmt: skip


def damaged(reason: bytes, data: bytes) -> bytes:
    return DAMAGED + reason + data


def _key_id(data: bytes) -> str:
    try:
        return parse(data).key_id
    except PayloadDecryptionError:
        return "?"


def refuse(data: bytes, what: str = "a stored payload") -> NoReturn:
    """Raise the typed error for a sealed (or damaged) payload that reached the codec."""
    if data[:4] == DAMAGED:
        reason = REASONS.get(bytes(data[4:5]), REASONS[MALFORMED])
        raise PayloadDecryptionError(_key_id(bytes(data[5:])), reason)
    parse(data)  # a malformed one says so
    raise PayloadKeyMissingError(_key_id(data), what)


def display(data: bytes) -> dict[str, object]:
    """What the CLI and the dashboard show for a payload they could not decrypt."""
    if data[:4] == DAMAGED:
        reason = REASONS.get(bytes(data[4:5]), REASONS[MALFORMED])
        return {"$encrypted": _key_id(bytes(data[5:])), "$undecryptable": reason}
    return {"$encrypted": _key_id(data)}
