"""Exceptions as data: what is kept of an exception, and how it is rebuilt.

Encoding an exception never fails because of what it carries: it is written when a step or
run fails, and losing the whole error to an unserializable attribute would hide the failure.
Arguments that cannot be encoded are replaced by their ``repr``; such attributes are dropped.
"""

from __future__ import annotations

import builtins
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from workflowkit.errors import RemoteError

from .classes import class_id_of

#: Where a decoded exception keeps the traceback text of the process that raised it.
TRACEBACK_ATTR: Final = "__workflowkit_traceback__"
_REPR_LIMIT: Final = 300
# Fields built-in exceptions keep outside both ``args`` and ``__dict__``.
_C_FIELDS: Final[tuple[tuple[type[BaseException], tuple[str, ...]], ...]] = (
    (OSError, ("filename", "filename2")),
    (ImportError, ("name", "path")),
    (NameError, ("name",)),
    (AttributeError, ("name",)),
)


def _c_fields(exc: BaseException) -> tuple[str, ...]:
    return tuple(name for base, names in _C_FIELDS if isinstance(exc, base) for name in names)


@dataclass(slots=True)
class ExceptionState:
    class_id: str
    message: str
    args: list[object]
    attrs: dict[str, object]
    traceback: str
    cause: BaseException | None


def type_name_of(class_id: str) -> str:
    """``ValueError`` for ``builtins:ValueError``, ``pkg.mod.Qualname`` for ``pkg.mod:Qualname``
    (a pinned class id is kept as is)."""
    module, sep, qualname = class_id.partition(":")
    if not sep:
        return class_id
    return qualname if module == "builtins" else f"{module}.{qualname}"


def safe_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__} object (repr() failed)>"
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 1] + "…"
    return text


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__qualname__} (str() failed)>"


def _instance_dict(exc: BaseException) -> dict[str, object]:
    try:
        return vars(exc)
    except TypeError:  # an exception class with __slots__ and no __dict__
        return {}


def exception_traceback(exc: BaseException) -> str:
    """The traceback text of ``exc``: from the process that first raised it when ``exc``
    was decoded from a payload, else formatted from its live traceback ("" if never raised).
    """
    stored = _instance_dict(exc).get(TRACEBACK_ATTR)
    if isinstance(stored, str) and stored:
        return stored
    if isinstance(exc, RemoteError) and exc.traceback_text:
        return exc.traceback_text
    if exc.__traceback__ is None:
        return ""
    try:
        return "".join(traceback.format_exception(exc, chain=False))
    except Exception:
        return ""


def reduce_exception(exc: BaseException, can_encode: Callable[[object], bool]) -> ExceptionState:
    cls = type(exc)
    args = [arg if can_encode(arg) else safe_repr(arg) for arg in exc.args]
    attrs = {
        name: value
        for name, value in _instance_dict(exc).items()
        if type(name) is str and name != TRACEBACK_ATTR and can_encode(value)
    }
    for name in _c_fields(exc):
        value = getattr(exc, name, None)
        if value is not None and can_encode(value):
            attrs[name] = value
    return ExceptionState(
        class_id=class_id_of(cls),
        message=_message(exc),
        args=args,
        attrs=attrs,
        traceback=exception_traceback(exc),
        cause=exc.__cause__,
    )


def rebuild_exception(
    cls: type | None,
    type_label: str,
    message: str,
    args: Sequence[object],
    attrs: dict[str, object],
    traceback_text: str,
    *,
    created: BaseException | None = None,
) -> BaseException:
    """The exception as its original class when ``cls`` is given and accepts the data,
    else a ``RemoteError`` keeping the type name, message, args and traceback text.

    ``created`` is an instance made earlier by ``create_exception`` (for an exception on a
    cycle of objects, which must exist before its arguments are decoded); it is filled in.
    """
    exc: BaseException | None
    if created is not None:
        if isinstance(created, RemoteError) and (cls is None or not isinstance(created, cls)):
            # The placeholder create_exception made for a class it could not use.
            RemoteError.__init__(created, type_label, message, tuple(args), traceback_text)
            return created
        _fill(created, tuple(args), attrs)  # others may already refer to it: keep it anyway
        exc = created
    else:
        exc = _as_original(cls, tuple(args), attrs) if cls is not None else None
    if exc is None:
        return RemoteError(type_label, message, tuple(args), traceback_text)
    if traceback_text:
        _instance_dict(exc)[TRACEBACK_ATTR] = traceback_text
    return exc


def create_exception(cls: type | None) -> BaseException:
    """An empty instance: ``BaseException.__new__`` runs no code of the class."""
    if cls is None or not issubclass(cls, BaseException):
        return RemoteError.__new__(RemoteError)
    try:
        return BaseException.__new__(cls)
    except TypeError:  # a class whose instance layout BaseException cannot create
        return RemoteError.__new__(RemoteError)


def _as_original(
    cls: type, args: tuple[object, ...], attrs: dict[str, object]
) -> BaseException | None:
    try:
        # Built-in constructors run no user code and set their C-level fields (OSError.errno,
        # StopIteration.value, ...) that __new__ alone would not. Other classes skip
        # __init__: it may have side effects, or a signature the stored args cannot satisfy.
        builtin = vars(builtins).get(cls.__name__) is cls
        exc = cls(*args) if builtin else cls.__new__(cls, *args)
    except Exception:
        return None
    if not isinstance(exc, BaseException) or not _fill(exc, args, attrs):
        return None
    return exc


def _fill(exc: BaseException, args: tuple[object, ...], attrs: dict[str, object]) -> bool:
    try:
        exc.args = args
        c_fields = _c_fields(exc)
        for name, value in attrs.items():
            if name in c_fields:
                setattr(exc, name, value)  # a built-in slot, not the instance dict
            else:
                vars(exc)[name] = value
    except Exception:
        return False
    return True
