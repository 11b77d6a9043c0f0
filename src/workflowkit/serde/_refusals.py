"""Why a value cannot be encoded: the refusal the encoder raises, its hints, and how it
names what it refused."""

from __future__ import annotations

import io
import types
from collections.abc import Iterable
from typing import Final

from workflowkit.errors import SerializationError

from .classes import DESERIALIZE_METHOD, SERIALIZE_METHOD

_PATH_LIMIT: Final = 300

STEP_HINT: Final = (
    "Move this into a step: functions, open files, connections, locks and other live "
    "objects cannot cross a durable boundary (pass plain data instead)"
)
REGISTER_HINT: Final = (
    "Register a serializer with workflowkit.serde.register_serializer(cls, encode=..., "
    "decode=...), decorate the class with @workflowkit.serde.serializable (with "
    f"{SERIALIZE_METHOD}/{DESERIALIZE_METHOD}), or make it a dataclass"
)
DEPTH_HINT: Final = (
    "Flatten the data, or raise the limit (max_depth=, WORKFLOWKIT_SERDE_MAX_DEPTH). A cycle "
    "with no list, dict, set or dataclass on it (through tuples, pydantic models or custom "
    "classes only) also ends up here"
)
_LIVE_TYPES: Final[tuple[type, ...]] = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.LambdaType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    types.ModuleType,
    types.FrameType,
    types.TracebackType,
    types.CodeType,
    type,
    io.IOBase,
)
# Modules whose objects are live resources (locks, sockets, tasks, partials of code).
_LIVE_MODULES: Final = frozenset(
    {
        "_asyncio", "_io", "_socket", "_thread", "asyncio", "concurrent", "contextvars",
        "functools", "io", "multiprocessing", "queue", "selectors", "socket", "sqlite3",
        "ssl", "subprocess", "threading", "weakref",
    }
)  # fmt: skip


class Refusal(Exception):
    """Raised inside the encoder; the frames it unwinds through add their path segment."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint
        self.segments: list[str] = []  # innermost first
        self.key_done = False

    def error(self, root: str) -> SerializationError:
        path = root + "".join(reversed(self.segments))
        if len(path) > _PATH_LIMIT:
            path = path[:100] + " … " + path[-(_PATH_LIMIT - 103) :]
        return SerializationError(f"cannot serialize {path}: {self.what}. {self.hint}.")


def type_label(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def index_of(items: Iterable[object], target: object) -> int:
    for index, item in enumerate(items):
        if item is target:
            return index
    return -1


def unsupported(cls: type) -> tuple[str, str]:
    label = type_label(cls)
    if issubclass(cls, types.FunctionType | types.MethodType):
        # Steps cross by reference; any other function has no name a decoder could trust.
        return (
            f"a {label} is not data, and only functions marked @step can be passed by reference",
            STEP_HINT,
        )
    if issubclass(cls, _LIVE_TYPES) or cls.__module__.split(".")[0] in _LIVE_MODULES:
        return f"a {label} is not data", STEP_HINT
    if issubclass(cls, dict | list | tuple | set | frozenset | str | int | float | bytes):
        return (
            f"{label} is a subclass of a built-in type, and values keep their exact type; "
            "convert it to the built-in type first",
            REGISTER_HINT,
        )
    return f"values of type {label} are not serializable", REGISTER_HINT
