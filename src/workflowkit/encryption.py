"""Encrypting stored payloads at rest: the keys, and sealing and opening one payload.

Needs the ``crypto`` extra (the ``cryptography`` package), imported only when keys are
made. ``docs/encryption.md`` says what is encrypted, what is not, and how to rotate keys.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final

from . import _envelope
from .errors import EncryptionKeyError, PayloadDecryptionError, PayloadKeyMissingError

SETTING: Final = "WORKFLOWKIT_ENCRYPTION_KEYS"
KEY_SIZE: Final = 32  # AES-256
_KEY_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HINT: Final = "entries KEY_ID:BASE64_KEY separated by commas, the active key first"

__all__ = ["EncryptionKeys", "generate_key"]


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded (what ``WORKFLOWKIT_ENCRYPTION_KEYS`` takes)."""
    return base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii")


class EncryptionKeys:
    """The keys payloads are encrypted with: the first is the active one (it encrypts every
    new payload), and every one of them decrypts.

    ``EncryptionKeys([("k2", key2), ("k1", key1)])`` with 32-byte keys, or
    ``EncryptionKeys.parse("k2:BASE64,k1:BASE64")``. A key id is 1 to 64 letters, digits,
    ``.``, ``_`` or ``-``. Bad keys are an ``EncryptionKeyError`` naming the entry and its id,
    never the key material; ``repr`` shows the ids only.
    """

    __slots__ = ("_active", "_ciphers", "_headers")

    def __init__(self, keys: Iterable[tuple[str, bytes]] | Mapping[str, bytes]) -> None:
        pairs: list[tuple[str, bytes]] = list(keys.items() if isinstance(keys, Mapping) else keys)
        if not pairs:
            raise EncryptionKeyError(f"no encryption key given: give {_HINT}")
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise EncryptionKeyError(
                "payload encryption needs the cryptography package: "
                "pip install 'workflowkit[crypto]'"
            ) from None
        ciphers: dict[str, Any] = {}
        for number, (key_id, key) in enumerate(pairs, 1):
            where = f"key {number}"
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                raise EncryptionKeyError(
                    f"{where}: the key id must be 1 to 64 letters, digits, '.', '_' or '-'"
                )
            if key_id in ciphers:
                raise EncryptionKeyError(f"{where}: key id {key_id!r} is given twice")
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
                raise EncryptionKeyError(
                    f"{where} ({key_id!r}): a key must be {KEY_SIZE} bytes (256 bits)"
                )
            ciphers[key_id] = AESGCM(bytes(key))
        from cryptography.exceptions import InvalidTag

        _InvalidTag.type = InvalidTag
        self._ciphers: Final = ciphers
        self._active: Final[str] = pairs[0][0]
        self._headers: dict[str, bytes] = {}  # binding -> the active key's header

    @classmethod
    def parse(cls, text: str, *, setting: str = SETTING) -> EncryptionKeys:
        """Keys written ``KEY_ID:BASE64_KEY,KEY_ID:BASE64_KEY`` (the active one first;
        standard or URL-safe base64, padding optional)."""
        entries = [e.strip() for e in re.split(r"[,\s]+", text) if e.strip()]
        if not entries:
            raise EncryptionKeyError(f"{setting} holds no key: it takes {_HINT}")
        pairs: list[tuple[str, bytes]] = []
        for number, entry in enumerate(entries, 1):
            key_id, colon, encoded = entry.partition(":")
            if not colon or not _KEY_ID.fullmatch(key_id):
                # The entry is not shown: it may be key material pasted without its id.
                raise EncryptionKeyError(
                    f"{setting}: entry {number} is not KEY_ID:BASE64_KEY (a key id of letters, "
                    f"digits, '.', '_' or '-', a colon, then the key); it takes {_HINT}"
                )
            pairs.append((key_id, _decode_key(encoded, f"{setting}: entry {number} ({key_id!r})")))
        try:
            return cls(pairs)
        except EncryptionKeyError as exc:
            raise EncryptionKeyError(f"{setting}: {exc}") from None

    @classmethod
    def from_env(cls) -> EncryptionKeys | None:
        """The keys in ``WORKFLOWKIT_ENCRYPTION_KEYS``; None when it is unset or blank."""
        text = os.environ.get(SETTING)
        return None if text is None or not text.strip() else cls.parse(text)

    @property
    def active(self) -> str:
        """The id of the key that encrypts new payloads."""
        return self._active

    @property
    def ids(self) -> tuple[str, ...]:
        """Every key id, the active one first."""
        return tuple(self._ciphers)

    def __repr__(self) -> str:
        return f"EncryptionKeys(active={self._active!r}, ids={self.ids!r})"

    # -- one payload ---------------------------------------------------------------------------

    def _head(self, binding: str) -> bytes:
        """The active key's header for ``binding``."""
        head = self._headers.get(binding)
        if head is None:
            head = _envelope.header(self._active, binding)
            if len(self._headers) < 4096:  # run ids repeat while a run is hot: build once
                self._headers[binding] = head
        return head

    def seal(self, data: bytes, binding: str) -> bytes:
        """``data`` encrypted with the active key, bound to ``binding``."""
        head = self._head(binding)
        nonce = os.urandom(_envelope.NONCE_SIZE)
        sealed: bytes = self._ciphers[self._active].encrypt(nonce, data, head)
        return head + nonce + sealed

    def open(self, data: bytes, bindings: Sequence[str | None]) -> bytes:
        """The plaintext of a sealed payload read from a place its binding must be one of.

        ``PayloadKeyMissingError`` if its key is not one of these; ``PayloadDecryptionError``
        if it fails authentication, or is bound elsewhere.
        """
        first = bindings[0] if bindings else None
        if first is not None:
            # The usual case, read on every replayed step: sealed with the active key for
            # the first place named. Its header is known: no parsing.
            head = self._head(first)
            if data.startswith(head):
                start = len(head) + _envelope.NONCE_SIZE
                try:
                    plain: bytes = self._ciphers[self._active].decrypt(
                        data[len(head) : start], memoryview(data)[start:], head
                    )
                except _InvalidTag.type:
                    raise PayloadDecryptionError(
                        self._active, _envelope.REASONS[_envelope.ALTERED]
                    ) from None
                return plain
        header = _envelope.parse(data)
        cipher = self._ciphers.get(header.key_id)
        if cipher is None:
            raise PayloadKeyMissingError(header.key_id)
        plain = self._decrypt(cipher, data, header)
        if header.binding not in bindings:
            raise PayloadDecryptionError(header.key_id, _envelope.REASONS[_envelope.MOVED])
        return plain

    def reseal(self, data: bytes) -> bytes:
        """A sealed payload encrypted again with the active key, keeping its binding."""
        header = _envelope.parse(data)
        cipher = self._ciphers.get(header.key_id)
        if cipher is None:
            raise PayloadKeyMissingError(header.key_id)
        return self.seal(self._decrypt(cipher, data, header), header.binding)

    def key_of(self, data: bytes) -> str:
        """The id of the key a sealed payload was encrypted with."""
        return _envelope.parse(data).key_id

    @staticmethod
    def _decrypt(cipher: Any, data: bytes, header: _envelope.Header) -> bytes:
        start = header.end + _envelope.NONCE_SIZE
        try:
            plain: bytes = cipher.decrypt(
                data[header.end : start], data[start:], data[: header.end]
            )
        except _InvalidTag.type:
            raise PayloadDecryptionError(
                header.key_id, _envelope.REASONS[_envelope.ALTERED]
            ) from None
        return plain


class _InvalidTag:
    """``cryptography``'s authentication failure, once it is imported (keys are made)."""

    type: ClassVar[type[Exception]] = Exception


def _decode_key(encoded: str, where: str) -> bytes:
    text = encoded.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionKeyError(f"{where}: the key is not base64") from None
    if len(key) != KEY_SIZE:
        raise EncryptionKeyError(
            f"{where}: the key is {len(key)} bytes; it must be {KEY_SIZE} bytes (256 bits), "
            "e.g. from `python -c 'import workflowkit.encryption as e; print(e.generate_key())'`"
        )
    return key
