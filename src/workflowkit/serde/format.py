"""The wire format: framing, version byte, limits and digests of encoded payloads.

A payload is::

    b"wk" VERSION MODE HEAD [b"\\n" BLOB]

* ``VERSION`` is one byte; ``b"1"`` is the only version so far. Decoders dispatch on it, so a
  later format can be added next to this one and old payloads stay readable.
* ``MODE`` is ``b"j"`` when HEAD is plain JSON that decodes to the value as is (the fast path
  for JSON-shaped data), or ``b"t"`` when HEAD is *tagged* JSON (see ``tags.py``).
* ``HEAD`` is compact UTF-8 JSON. Lone surrogates in strings are written with the
  ``surrogatepass`` error handler, so every Python ``str`` round-trips.
* ``BLOB`` (tagged mode only) is the raw content of every ``bytes``/``bytearray`` value, laid
  end to end; the head refers to each by offset and length. JSON text never contains a raw
  newline byte (the encoder escapes control characters and UTF-8 continuation bytes are
  >= 0x80), so the first ``\\n`` after the prefix ends the head.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from typing import Any, Final, NoReturn

from workflowkit import _envelope
from workflowkit._compact_json import compact_encoder
from workflowkit.errors import SerializationError

MAGIC: Final = b"wk"
FORMAT_VERSION: Final = 1
VERSION_BYTE: Final = b"1"
MODE_PLAIN: Final = b"j"
MODE_TAGGED: Final = b"t"
PLAIN_PREFIX: Final = MAGIC + VERSION_BYTE + MODE_PLAIN
TAGGED_PREFIX: Final = MAGIC + VERSION_BYTE + MODE_TAGGED
PREFIX_LEN: Final = 4
HEAD_END: Final = b"\n"


def _limit_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        warnings.warn(
            f"{name}={raw!r} is not a positive integer; using {default}",
            RuntimeWarning,
            stacklevel=2,
        )
        return default
    return value


#: Largest payload encode() produces and decode() accepts, in bytes.
DEFAULT_MAX_SIZE: Final = _limit_from_env("WORKFLOWKIT_SERDE_MAX_SIZE", 64 * 1024 * 1024)
#: Deepest nesting of containers and objects encode() produces and decode() accepts.
DEFAULT_MAX_DEPTH: Final = _limit_from_env("WORKFLOWKIT_SERDE_MAX_DEPTH", 200)


def digest(data: bytes) -> str:
    """A short stable hash of an encoded payload (16 hex characters of BLAKE2b)."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def check_size(size: int, max_size: int) -> None:
    if size > max_size:
        raise SerializationError(
            f"payload is {size} bytes, over the limit of {max_size} bytes; keep large data "
            "outside the workflow (in a file or object store) and pass a reference, or raise "
            "the limit with WORKFLOWKIT_SERDE_MAX_SIZE"
        )


def split(data: object, max_size: int) -> tuple[bytes, str, memoryview]:
    """Check the framing of ``data`` and return ``(mode, head, blob)``.

    Raises ``SerializationError`` for anything that is not a payload this version reads.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, bytes | bytearray):
        raise SerializationError(
            f"expected an encoded payload (bytes), got {type(data).__qualname__}"
        )
    check_size(len(data), max_size)
    if data[:2] != MAGIC:
        raise SerializationError(
            "not a workflowkit payload: it does not start with the b'wk' format prefix"
        )
    version = data[2:3]
    if version != VERSION_BYTE:
        if version == b"x":  # encrypted at rest, and not decrypted on the way here
            _envelope.refuse(bytes(data))
        shown = version.decode("latin-1") if version else "(missing)"
        raise SerializationError(
            f"unknown payload format version {shown!r}: this workflowkit reads version "
            f"{FORMAT_VERSION}; the data was probably written by a newer workflowkit"
        )
    mode = bytes(data[3:4])
    if mode == MODE_PLAIN:
        end = len(data)
    elif mode == MODE_TAGGED:
        end = data.find(HEAD_END, PREFIX_LEN)
        if end < 0:
            end = len(data)
    else:
        raise SerializationError(f"malformed payload: unknown mode byte {mode!r}")
    view = memoryview(data)
    try:
        head = str(view[PREFIX_LEN:end], "utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise SerializationError(f"malformed payload: head is not UTF-8 ({exc})") from None
    return mode, head, view[end + 1 :]


def _refuse_constant(name: str) -> NoReturn:
    raise SerializationError(f"malformed payload: {name} is not allowed in the JSON head")


# Built once: json.dumps/json.loads with non-default options build a new coder per call.
_ENCODE: Final = compact_encoder(ensure_ascii=False, allow_nan=False)
# The decoder's C scanner, called directly: JSONDecoder.decode adds a whitespace regex pass.
_SCAN_ONCE: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder(
    parse_constant=_refuse_constant
).scan_once  # type: ignore[attr-defined]


def dump_head(tree: object) -> bytes:
    """Compact JSON of a tree of dict/list/str/int/float/bool/None without cycles."""
    return _ENCODE(tree).encode("utf-8", "surrogatepass")


def parse_head(head: str) -> Any:
    try:
        value, end = _SCAN_ONCE(head, 0)
    except StopIteration as exc:
        raise SerializationError(
            f"malformed payload: invalid JSON head at offset {exc.value}"
        ) from None
    except RecursionError:
        raise SerializationError(
            "payload is nested too deeply to parse (more than the Python stack allows)"
        ) from None
    except SerializationError:
        raise
    except ValueError as exc:  # JSONDecodeError, or an integer beyond int_max_str_digits
        raise SerializationError(f"malformed payload: {exc}") from None
    if end != len(head):
        raise SerializationError(
            f"malformed payload: unexpected data after the JSON head at offset {end}"
        )
    return value
