"""The codec for everything that crosses a durable boundary.

Workflow and step arguments and results, hook payloads, stream chunks and errors are all
encoded here: JSON-based, tagged for the extended types, versioned by a format prefix, and
safe to decode (no pickle, no eval, no imports). See ``docs/serialization.md``.
"""

from __future__ import annotations

from .classes import register_serializer, register_tag, serializable
from .copying import copy_value
from .decode import decode
from .display import display
from .encode import encode
from .exceptions import exception_traceback
from .format import DEFAULT_MAX_DEPTH, DEFAULT_MAX_SIZE, FORMAT_VERSION, digest

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "FORMAT_VERSION",
    "copy_value",
    "decode",
    "digest",
    "display",
    "encode",
    "exception_traceback",
    "register_serializer",
    "register_tag",
    "serializable",
]
