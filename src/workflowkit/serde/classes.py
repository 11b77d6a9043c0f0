"""Which classes a payload may name, and how a class id is found again.

The safety rule. A payload names classes by *class id* (``module:qualname`` by default).
Decoding calls code of a class named by a payload only when the class is

* registered here, with ``register_serializer`` or the ``@serializable`` decorator, at import
  or registration time of the class - never as a side effect of encoding; or
* a dataclass, ``NamedTuple``, ``Enum`` or pydantic v2 model found in a module that is
  *already* in ``sys.modules``. The module and class are read from their ``__dict__`` (no
  import, no module ``__getattr__``, no metaclass hooks), and the kind is checked against the
  payload's tag before anything is called; ``os:system``, ``subprocess:Popen`` or
  ``builtins:eval`` are refused whatever tag names them.

Exceptions are looked up the same way but are never refused: a class that cannot be found
(or is not a ``BaseException`` subclass) comes back as ``workflowkit.errors.RemoteError``.

Classes using the ``__workflow_serialize__``/``__workflow_deserialize__`` protocol must be
registered: a class that merely has a method of that name is not trusted, because a payload
could then call it on any class it can name.

This module holds the only mutable module-level state of the codec: ``REGISTRY``.
"""

from __future__ import annotations

import enum
import re
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Final, TypeVar, overload

from workflowkit.errors import SerializationError

from . import tags

T = TypeVar("T")
C = TypeVar("C", bound=type)

SERIALIZE_METHOD: Final = "__workflow_serialize__"
DESERIALIZE_METHOD: Final = "__workflow_deserialize__"

# Descriptors read straight from ``type``/``ModuleType`` so that looking at a class or module
# named by a payload never runs a metaclass's or module's own attribute hooks.
_TYPE_MRO: Final = vars(type)["__mro__"]
_TYPE_DICT: Final = vars(type)["__dict__"]
_MODULE_DICT: Final = vars(types.ModuleType)["__dict__"]


def default_class_id(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def static_mro(cls: type) -> tuple[type, ...]:
    mro: tuple[type, ...] = _TYPE_MRO.__get__(cls)
    return mro


def _class_dict(cls: type) -> types.MappingProxyType[str, Any]:
    namespace: types.MappingProxyType[str, Any] = _TYPE_DICT.__get__(cls)
    return namespace


def _static_attr(cls: type, name: str) -> Any:
    for klass in static_mro(cls):
        namespace = _class_dict(klass)
        if name in namespace:
            return namespace[name]
    return None


# -- kinds of classes the codec knows how to rebuild -------------------------------------


def is_dataclass_class(cls: type) -> bool:
    return _static_attr(cls, "__dataclass_fields__") is not None


def is_namedtuple_class(cls: type) -> bool:
    return (
        cls is not tuple
        and tuple in static_mro(cls)
        and isinstance(_static_attr(cls, "_fields"), tuple)
    )


def is_enum_class(cls: type) -> bool:
    return enum.Enum in static_mro(cls)


def pydantic_base() -> type | None:
    """``pydantic.BaseModel`` if pydantic is imported; pydantic is never imported here."""
    module = sys.modules.get("pydantic")
    if not isinstance(module, types.ModuleType):
        return None
    base = _MODULE_DICT.__get__(module).get("BaseModel")
    return base if isinstance(base, type) else None


def is_pydantic_class(cls: type) -> bool:
    base = pydantic_base()
    return base is not None and cls is not base and base in static_mro(cls)


def is_exception_class(cls: type) -> bool:
    return BaseException in static_mro(cls)


def has_protocol(cls: type) -> bool:
    return (
        _static_attr(cls, SERIALIZE_METHOD) is not None
        and _static_attr(cls, DESERIALIZE_METHOD) is not None
    )


_KIND_CHECKS: Final[dict[str, Callable[[type], bool]]] = {
    tags.DATACLASS: is_dataclass_class,
    tags.NAMEDTUPLE: is_namedtuple_class,
    tags.ENUM: is_enum_class,
    tags.PYDANTIC: is_pydantic_class,
    tags.EXCEPTION: is_exception_class,
}
_KIND_NAMES: Final = {
    tags.DATACLASS: "dataclass",
    tags.NAMEDTUPLE: "NamedTuple",
    tags.ENUM: "Enum",
    tags.PYDANTIC: "pydantic model",
    tags.EXCEPTION: "exception",
    tags.CUSTOM: "registered",
}


def natural_kind(cls: type) -> str | None:
    """The tag a class is written with when it is not registered with a codec, if any."""
    if is_enum_class(cls):
        return tags.ENUM
    if is_dataclass_class(cls):
        return tags.DATACLASS
    if is_namedtuple_class(cls):
        return tags.NAMEDTUPLE
    if is_pydantic_class(cls):
        return tags.PYDANTIC
    if is_exception_class(cls):
        return tags.EXCEPTION
    return None


# -- the registry ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassEntry:
    """A registered class. Without ``encode``/``decode`` it keeps its natural encoding
    (dataclass, NamedTuple, Enum, pydantic model, exception) and only pins its id."""

    cls: type
    class_id: str
    encode: Callable[[Any], object] | None
    decode: Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class TagEntry:
    """An extension type written as ``{"$": tag, "v": state}`` (stream handles, requests)."""

    tag: str
    cls: type
    encode: Callable[[Any], object]
    decode: Callable[[Any], Any]
    display: Callable[[Any], object] | None


# Types with a fixed encoding of their own; a registration could never be used for them.
_BUILTIN_TYPES: Final = frozenset(
    {type(None), bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset}
    | set(tags.LEAVES)
    | {datetime, time, re.Pattern}
)


class Registry:
    """Registered classes (by class and by id) and extension tags (by class and by tag)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_class: dict[type, ClassEntry] = {}
        self._by_id: dict[str, ClassEntry] = {}
        self._tag_by_class: dict[type, TagEntry] = {}
        self._tag_by_name: dict[str, TagEntry] = {}

    def entry_for_class(self, cls: type) -> ClassEntry | None:
        return self._by_class.get(cls)

    def entry_for_id(self, class_id: str) -> ClassEntry | None:
        return self._by_id.get(class_id)

    def tag_for_class(self, cls: type) -> TagEntry | None:
        return self._tag_by_class.get(cls)

    def tag_entry(self, tag: str) -> TagEntry | None:
        return self._tag_by_name.get(tag)

    def add_class(self, entry: ClassEntry) -> None:
        with self._lock:
            holder = self._by_id.get(entry.class_id)
            if (
                holder is not None
                and holder.cls is not entry.cls
                and default_class_id(holder.cls) != default_class_id(entry.cls)
            ):
                # Same module:qualname means the class was redefined (reload, notebook
                # cell): the new definition replaces the old one. Anything else is a clash.
                raise ValueError(
                    f"class id {entry.class_id!r} is already registered for "
                    f"{default_class_id(holder.cls)}; choose another class_id"
                )
            # An earlier id of this class stays readable so old payloads still decode.
            self._by_class[entry.cls] = entry
            self._by_id[entry.class_id] = entry

    def add_tag(self, entry: TagEntry) -> None:
        with self._lock:
            holder = self._tag_by_name.get(entry.tag)
            if holder is not None and default_class_id(holder.cls) != default_class_id(entry.cls):
                raise ValueError(f"tag {entry.tag!r} is already registered for {holder.cls}")
            self._tag_by_class[entry.cls] = entry
            self._tag_by_name[entry.tag] = entry


REGISTRY: Final = Registry()


def class_id_of(cls: type) -> str:
    entry = REGISTRY.entry_for_class(cls)
    return entry.class_id if entry is not None else default_class_id(cls)


def register_serializer(
    cls: type[T],
    *,
    encode: Callable[[T], object] | None = None,
    decode: Callable[[Any], T] | None = None,
    class_id: str | None = None,
) -> None:
    """Make ``cls`` serializable, or pin the class id it is written with.

    ``encode(obj)`` returns any serializable value (its *state*, which may itself hold
    dataclasses, datetimes, ...); ``decode(state)`` rebuilds the object. Without
    ``encode``/``decode`` the class must use the ``__workflow_serialize__`` /
    ``__workflow_deserialize__`` protocol or be a dataclass, NamedTuple, Enum, pydantic
    model or exception; the registration then pins its id. ``class_id`` defaults to
    ``module:qualname``; pin it so the class can move modules without breaking old payloads.
    Only exactly ``cls`` is covered, not its subclasses.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_serializer() needs a class, got {cls!r}")
    if cls in _BUILTIN_TYPES:
        raise TypeError(f"{cls.__qualname__} has a built-in encoding and cannot be registered")
    if (encode is None) != (decode is None):
        raise TypeError("pass both encode= and decode=, or neither")
    if class_id is None:
        class_id = default_class_id(cls)
    if not isinstance(class_id, str) or not class_id:
        raise TypeError("class_id must be a non-empty string")
    if encode is None and has_protocol(cls):
        serialize = getattr(cls, SERIALIZE_METHOD)
        deserialize = getattr(cls, DESERIALIZE_METHOD)
        REGISTRY.add_class(ClassEntry(cls, class_id, serialize, deserialize))
        return
    if encode is None and natural_kind(cls) is None:
        raise TypeError(
            f"{cls.__qualname__} needs encode= and decode=, or the methods "
            f"{SERIALIZE_METHOD}(self) and classmethod {DESERIALIZE_METHOD}(cls, data)"
        )
    REGISTRY.add_class(ClassEntry(cls, class_id, encode, decode))


@overload
def serializable(cls: C, /) -> C: ...
@overload
def serializable(*, class_id: str | None = None) -> Callable[[C], C]: ...
def serializable(cls: C | None = None, /, *, class_id: str | None = None) -> C | Callable[[C], C]:
    """Class decorator: register a class that implements the serialization protocol.

    ``__workflow_serialize__(self) -> object`` returns the state (any serializable value);
    classmethod ``__workflow_deserialize__(cls, state)`` rebuilds the object.
    """

    def apply(target: C) -> C:
        if not has_protocol(target):
            raise TypeError(
                f"@serializable class {target.__qualname__} must define {SERIALIZE_METHOD}"
                f"(self) and classmethod {DESERIALIZE_METHOD}(cls, data)"
            )
        register_serializer(target, class_id=class_id)
        return target

    return apply if cls is None else apply(cls)


def register_tag(
    tag: str,
    cls: type[T],
    *,
    encode: Callable[[T], object],
    decode: Callable[[Any], T],
    display: Callable[[Any], object] | None = None,
) -> None:
    """Add an extension type written as ``{"$": tag, "v": encode(obj)}``.

    For workflowkit's own types that need a short, fixed tag (stream handles, webhook
    requests and responses). ``display(state)`` renders the decoded-for-display state
    (JSON-compatible) for the dashboard; the default shows the state itself.
    """
    if not isinstance(tag, str) or not tag or tag in tags.BUILTIN_TAGS:
        raise ValueError(f"{tag!r} cannot be used as an extension tag")
    if not isinstance(cls, type) or cls in _BUILTIN_TYPES:
        raise TypeError(f"register_tag() needs a class without a built-in encoding, got {cls!r}")
    REGISTRY.add_tag(TagEntry(tag, cls, encode, decode, display))


# -- finding a class named by a payload --------------------------------------------------


def find_in_modules(class_id: str) -> type:
    """The class ``module:qualname`` names among already imported modules, read statically."""
    module_name, sep, qualname = class_id.partition(":")
    if not sep or not module_name or not qualname:
        raise SerializationError(f"malformed payload: bad class id {class_id!r}")
    module = sys.modules.get(module_name)
    if not isinstance(module, types.ModuleType):
        raise SerializationError(
            f"payload names class {class_id!r}, but module {module_name!r} is not imported "
            "in this process; decoding never imports modules, so import it first (for "
            "example the module that defines your workflows and steps)"
        )
    found: object = module
    namespace: types.MappingProxyType[str, Any] | dict[str, Any] = _MODULE_DICT.__get__(module)
    for part in qualname.split("."):
        found = namespace.get(part)
        if not isinstance(found, type):
            break
        namespace = _class_dict(found)
    if found is None:
        raise SerializationError(
            f"payload names class {class_id!r}, which module {module_name!r} does not define "
            "(renamed or moved? pin a stable id with register_serializer(cls, class_id=...))"
        )
    if not isinstance(found, type):
        raise _not_allowed(class_id, None)
    return found


def _not_allowed(class_id: str, kind: str | None) -> SerializationError:
    what = f"an allowed {_KIND_NAMES[kind]} class" if kind else "an allowed class"
    return SerializationError(
        f"payload names {class_id!r}, which is not {what}: decoding only rebuilds "
        "dataclasses, NamedTuples, enums, pydantic models, exceptions and classes registered "
        "with workflowkit.serde.register_serializer"
    )


def resolve(class_id: str, kind: str) -> tuple[type, ClassEntry | None]:
    """The class a payload names for a node of tag ``kind``, or ``SerializationError``."""
    entry = REGISTRY.entry_for_id(class_id)
    if kind == tags.CUSTOM:
        if entry is None:
            raise SerializationError(
                f"payload names class {class_id!r} written by a custom serializer, but no "
                "class is registered under that id in this process: import the module that "
                "registers it (register_serializer or @serializable) before decoding"
            )
        if entry.decode is None:
            raise _not_allowed(class_id, kind)
        return entry.cls, entry
    cls = entry.cls if entry is not None else find_in_modules(class_id)
    if not _KIND_CHECKS[kind](cls):
        raise _not_allowed(class_id, kind)
    return cls, entry


def findable(cls: type, class_id: str) -> bool:
    """Whether a decoder in another process could find ``cls`` again by ``class_id``."""
    if REGISTRY.entry_for_id(class_id) is not None:
        return True
    try:
        return find_in_modules(class_id) is cls
    except SerializationError:
        return False
