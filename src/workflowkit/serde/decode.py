"""Decoding: parse the JSON head, then rebuild tagged nodes top-down.

Safety: nothing here unpickles, evaluates or imports. The only user code that can run is a
constructor of a class that ``classes.resolve`` allowed for the node's tag (dataclass,
NamedTuple, Enum lookup, pydantic ``model_construct``, a registered ``decode``) and
``__new__`` of an exception class already imported. Every failure surfaces as
``SerializationError``; recursion is bounded by the depth limit before Python's own limit.
What decoding builds grows with the payload's size, never faster: each node of the head is
parsed from text of its own, a ref hands out an object already built, and each byte of the
blob is copied out once at most (``Decoder.bytes_``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

from workflowkit.errors import SerializationError

from . import tags
from .classes import REGISTRY, ClassEntry, resolve
from .exceptions import create_exception, rebuild_exception, type_name_of
from .format import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    MODE_PLAIN,
    PLAIN_PREFIX,
    PREFIX_LEN,
    parse_head,
    split,
)
from .tags import TAG, Json, get_dict, get_int, get_list, get_str, malformed

_MISSING: Final = object()


def too_deep(max_depth: int) -> SerializationError:
    return SerializationError(
        f"payload is nested more than {max_depth} levels deep; refusing to decode it "
        "(raise the limit with max_depth= or WORKFLOWKIT_SERDE_MAX_DEPTH if it is trusted)"
    )


def check_plain_depth(head: str, root: Json, max_depth: int) -> None:
    """Enforce the depth limit on a plain payload without walking it when possible."""
    if head.count("[") + head.count("{") <= max_depth:
        return  # there are not enough containers to nest that deep
    _plain_depth(root, 1, max_depth)


def _plain_depth(node: Json, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise too_deep(max_depth)
    child = depth + 1
    for item in node.values() if type(node) is dict else node:
        t = type(item)
        if t is dict or t is list:
            _plain_depth(item, child, max_depth)


Handler = Callable[["Decoder", dict[str, Json], int], Any]


class Decoder:
    """One decoding run over a parsed tagged head and its blob."""

    def __init__(self, blob: memoryview, max_depth: int) -> None:
        self.blob = blob
        # Blob bytes not yet claimed by a bytes node. encode() lays segments end to end, one
        # per value (a shared value is a ref, not a second segment), so their lengths add
        # up to the blob's at most: counting them down bounds what decoding copies by the
        # payload's size, whatever ranges a crafted head names, and as often as it names them.
        self.blob_left = len(blob)
        self.max_depth = max_depth
        self.objects: dict[int, Any] = {}
        self.classes: dict[tuple[str, str], tuple[type, ClassEntry | None]] = {}

    def value(self, node: Json, depth: int) -> Any:
        t = type(node)
        if t is not dict and t is not list:
            return node
        if depth > self.max_depth:
            raise too_deep(self.max_depth)
        child = depth + 1
        if t is list:
            for index, item in enumerate(node):
                kind = type(item)
                if kind is dict or kind is list:
                    node[index] = self.value(item, child)
            return node
        if TAG not in node:
            for key, item in node.items():
                kind = type(item)
                if kind is dict or kind is list:
                    node[key] = self.value(item, child)  # replacing values keeps iterating
            return node
        return self._tagged(node, depth)

    def _tagged(self, node: dict[str, Json], depth: int) -> Any:
        tag = node[TAG]
        handler = _HANDLERS.get(tag) if type(tag) is str else None
        if handler is None:
            handler = _extension_handler(tag)
        try:
            return handler(self, node, depth)
        except SerializationError:
            raise
        except RecursionError:
            raise too_deep(self.max_depth) from None
        except Exception as exc:  # a malformed field that reached a constructor or parser
            raise malformed(str(tag), f"{type(exc).__name__}: {exc}") from None

    # -- identity: ids, refs ---------------------------------------------------------------

    def define_shell(self, node: dict[str, Json], obj: object) -> None:
        if "id" in node:
            ref = get_int(node, "id", node[TAG])
            if ref in self.objects:
                raise malformed(node[TAG], f"object {ref} is defined twice")
            self.objects[ref] = obj

    def finish(self, node: dict[str, Json], obj: object) -> Any:
        if "id" not in node:
            return obj
        ref = get_int(node, "id", node[TAG])
        # A cycle through an object built from its contents writes it twice (see
        # encode.py); the copy finished first, the inner one, is the one others refer to.
        existing = self.objects.get(ref, _MISSING)
        if existing is not _MISSING:
            return existing
        self.objects[ref] = obj
        return obj

    def ref(self, node: dict[str, Json], depth: int) -> Any:
        ref = get_int(node, "id", tags.REF)
        try:
            return self.objects[ref]
        except KeyError:
            raise malformed(tags.REF, f"object {ref} is not defined before it is used") from None

    def cls(self, node: dict[str, Json], kind: str) -> tuple[type, ClassEntry | None]:
        class_id = get_str(node, "t", kind)
        key = (kind, class_id)
        found = self.classes.get(key)
        if found is None:
            found = self.classes[key] = resolve(class_id, kind)
        return found

    # -- containers ------------------------------------------------------------------------

    def list_(self, node: dict[str, Json], depth: int) -> Any:
        items = get_list(node, "v", tags.LIST)
        out: list[Any] = []
        self.define_shell(node, out)
        child = depth + 1
        for item in items:
            out.append(self.value(item, child))
        return out

    def dict_(self, node: dict[str, Json], depth: int) -> Any:
        items = get_dict(node, "v", tags.DICT)
        out: dict[str, Any] = {}
        self.define_shell(node, out)
        child = depth + 1
        for key, item in items.items():
            out[key] = self.value(item, child)
        return out

    def map_(self, node: dict[str, Json], depth: int) -> Any:
        flat = get_list(node, "v", tags.MAP)
        if len(flat) % 2:
            raise malformed(tags.MAP, "needs an even number of items")
        out: dict[Any, Any] = {}
        self.define_shell(node, out)
        child = depth + 1
        for index in range(0, len(flat), 2):
            key = self.value(flat[index], child)
            try:
                out[key] = self.value(flat[index + 1], child)
            except TypeError:
                raise malformed(tags.MAP, f"unhashable key of type {type(key).__name__}") from None
        return out

    def set_(self, node: dict[str, Json], depth: int) -> Any:
        items = get_list(node, "v", tags.SET)
        out: set[Any] = set()
        self.define_shell(node, out)
        child = depth + 1
        for item in items:
            out.add(self.value(item, child))
        return out

    def tuple_(self, node: dict[str, Json], depth: int) -> Any:
        child = depth + 1
        items = [self.value(item, child) for item in get_list(node, "v", node[TAG])]
        return self.finish(node, tuple(items) if node[TAG] == tags.TUPLE else frozenset(items))

    def bytes_(self, node: dict[str, Json], depth: int) -> Any:
        tag = node[TAG]
        offset = get_int(node, "o", tag)
        size = get_int(node, "n", tag)
        if offset < 0 or size < 0:
            raise malformed(tag, "negative offset or length")
        if offset + size > len(self.blob):
            raise SerializationError(
                f"malformed payload: truncated binary segment (needs bytes {offset}.."
                f"{offset + size} of a {len(self.blob)}-byte blob)"
            )
        self.blob_left -= size
        if self.blob_left < 0:
            raise SerializationError(
                "malformed payload: binary segments overlap (their lengths add up to more "
                f"than the {len(self.blob)}-byte blob); each blob byte belongs to one value"
            )
        chunk = self.blob[offset : offset + size]
        return self.finish(node, bytes(chunk) if tag == tags.BYTES else bytearray(chunk))

    # -- scalars with tags -----------------------------------------------------------------

    def int_(self, node: dict[str, Json], depth: int) -> Any:
        return tags.int_from(node)

    def float_(self, node: dict[str, Json], depth: int) -> Any:
        return tags.float_from(node)

    def leaf(self, node: dict[str, Json], depth: int) -> Any:
        return tags.LEAVES_BY_TAG[node[TAG]].decode(node)

    def datetime_(self, node: dict[str, Json], depth: int) -> Any:
        zone = self.value(node["tz"], depth + 1) if "tz" in node else None
        return tags.datetime_from(node, zone)

    def pattern(self, node: dict[str, Json], depth: int) -> Any:
        return tags.pattern_from(self.value(node.get("v"), depth + 1), node.get("flags"))

    # -- classes ---------------------------------------------------------------------------

    def fields(self, node: dict[str, Json], depth: int, key: str = "v") -> dict[str, Any]:
        raw = get_dict(node, key, node[TAG])
        child = depth + 1
        return {name: self.value(item, child) for name, item in raw.items()}

    def enum(self, node: dict[str, Json], depth: int) -> Any:
        cls, _ = self.cls(node, tags.ENUM)
        if "name" in node:
            name = get_str(node, "name", tags.ENUM)
            member = cls._member_map_.get(name)  # type: ignore[attr-defined]
            if member is None:
                raise SerializationError(f"enum {node['t']} has no member {name!r}")
            return member
        return cls(get_int(node, "v", tags.ENUM))

    def dataclass(self, node: dict[str, Json], depth: int) -> Any:
        cls, _ = self.cls(node, tags.DATACLASS)
        if node.get("new") == 1:
            return self._dataclass_created_first(node, cls, depth)
        values = self.fields(node, depth)
        init: dict[str, Any] = {}
        late: dict[str, Any] = {}
        # Fields the class no longer has are ignored; new fields take their defaults.
        for field in dataclasses.fields(cls):
            if field.name in values:
                (init if field.init else late)[field.name] = values[field.name]
        obj = _call(node, cls, **init)
        for name, value in late.items():
            object.__setattr__(obj, name, value)  # works for frozen and slots classes too
        return self.finish(node, obj)

    def _dataclass_created_first(self, node: dict[str, Json], cls: type, depth: int) -> Any:
        # On a cycle made only of objects: create, register, then fill, like pickle and
        # copy.deepcopy do; __init__ and __post_init__ do not run, every field is restored.
        obj = _call(node, object.__new__, cls)
        self.define_shell(node, obj)
        values = self.fields(node, depth)
        for field in dataclasses.fields(cls):
            if field.name in values:
                object.__setattr__(obj, field.name, values[field.name])
        return obj

    def namedtuple(self, node: dict[str, Json], depth: int) -> Any:
        cls, _ = self.cls(node, tags.NAMEDTUPLE)
        values = self.fields(node, depth)
        names = cls._fields  # type: ignore[attr-defined]
        return self.finish(node, _call(node, cls, **{n: values[n] for n in names if n in values}))

    def pydantic(self, node: dict[str, Json], depth: int) -> Any:
        cls, _ = self.cls(node, tags.PYDANTIC)
        values = self.fields(node, depth)
        extra = self.value(node["extra"], depth + 1) if "extra" in node else {}
        private = self.fields(node, depth, "private") if "private" in node else {}
        unset = get_list(node, "unset", tags.PYDANTIC) if "unset" in node else []
        if type(extra) is not dict or not all(type(key) is str for key in extra):
            raise malformed(tags.PYDANTIC, "'extra' must be a dict with str keys")
        fields_set = (values.keys() | extra.keys()) - set(map(str, unset))
        # model_construct restores the stored state exactly (it was validated when the
        # model was first built) and accepts field names even for aliased fields.
        construct = cls.model_construct  # type: ignore[attr-defined]
        obj = _call(node, construct, _fields_set=fields_set, **values, **extra)
        if private:
            current = obj.__pydantic_private__
            if current is None:
                object.__setattr__(obj, "__pydantic_private__", dict(private))
            else:
                current.update(private)
        return self.finish(node, obj)

    def custom(self, node: dict[str, Json], depth: int) -> Any:
        _, entry = self.cls(node, tags.CUSTOM)
        assert entry is not None and entry.decode is not None
        state = self.value(node.get("v"), depth + 1)
        return self.finish(node, _call(node, entry.decode, state))

    def exception(self, node: dict[str, Json], depth: int) -> Any:
        class_id = get_str(node, "t", tags.EXCEPTION)
        try:
            cls: type | None = self.cls(node, tags.EXCEPTION)[0]
        except SerializationError:
            cls = None  # comes back as a RemoteError
        created = None
        if node.get("new") == 1:  # on a cycle of objects: exists before its contents
            created = create_exception(cls)
            self.define_shell(node, created)
        child = depth + 1
        args = [self.value(item, child) for item in get_list(node, "args", tags.EXCEPTION)]
        attrs = self.fields(node, depth, "attrs") if "attrs" in node else {}
        cause = self.value(node["cause"], child) if "cause" in node else None
        if cause is not None and not isinstance(cause, BaseException):
            raise malformed(tags.EXCEPTION, "'cause' is not an exception")
        exc = rebuild_exception(
            cls,
            type_name_of(class_id),
            get_str(node, "msg", tags.EXCEPTION),
            args,
            attrs,
            get_str(node, "tb", tags.EXCEPTION) if "tb" in node else "",
            created=created,
        )
        if cause is not None:
            exc.__cause__ = cause
        return exc if created is not None else self.finish(node, exc)


def _call(node: dict[str, Json], func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except Exception as exc:
        name = node.get("t", node[TAG])
        raise SerializationError(
            f"could not rebuild {name} from the payload: {type(exc).__name__}: {exc}"
        ) from exc


def _extension_handler(tag: object) -> Handler:
    entry = REGISTRY.tag_entry(tag) if type(tag) is str else None
    if entry is None:
        raise SerializationError(
            f"malformed payload: unknown tag {tag!r} (written by a newer workflowkit, or by "
            "an extension whose module is not imported in this process)"
        )
    decode_state = entry.decode

    def handle(decoder: Decoder, node: dict[str, Json], depth: int) -> Any:
        state = decoder.value(node.get("v"), depth + 1)
        return decoder.finish(node, _call(node, decode_state, state))

    return handle


_HANDLERS: Final[dict[str, Handler]] = {
    tags.REF: Decoder.ref,
    tags.LIST: Decoder.list_,
    tags.DICT: Decoder.dict_,
    tags.MAP: Decoder.map_,
    tags.SET: Decoder.set_,
    tags.TUPLE: Decoder.tuple_,
    tags.FROZENSET: Decoder.tuple_,
    tags.BYTES: Decoder.bytes_,
    tags.BYTEARRAY: Decoder.bytes_,
    tags.INT: Decoder.int_,
    tags.FLOAT: Decoder.float_,
    tags.DATETIME: Decoder.datetime_,
    tags.TIME: Decoder.datetime_,
    tags.PATTERN: Decoder.pattern,
    tags.ENUM: Decoder.enum,
    tags.DATACLASS: Decoder.dataclass,
    tags.NAMEDTUPLE: Decoder.namedtuple,
    tags.PYDANTIC: Decoder.pydantic,
    tags.CUSTOM: Decoder.custom,
    tags.EXCEPTION: Decoder.exception,
    **{tag: Decoder.leaf for tag in tags.LEAVES_BY_TAG},
}


def decode(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int | None = None,
    max_depth: int | None = None,
) -> Any:
    """Rebuild the value ``encode`` wrote; ``SerializationError`` for anything else."""
    if (
        type(data) is bytes
        and max_size is None
        and max_depth is None
        and data.startswith(PLAIN_PREFIX)
        and len(data) <= DEFAULT_MAX_SIZE
    ):
        # The hot path (plain JSON data, default limits): no frame, no memoryview.
        try:
            head = data[PREFIX_LEN:].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            pass  # the general path below explains what is wrong
        else:
            root = parse_head(head)
            check_plain_depth(head, root, DEFAULT_MAX_DEPTH)
            return root
    frame = read_frame(data, max_size, max_depth)
    if frame.plain:
        return frame.root
    return Decoder(frame.blob, frame.depth_limit).value(frame.root, 1)


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """A payload opened and its JSON head parsed; a plain head is already the value."""

    plain: bool
    root: Any
    blob: memoryview
    depth_limit: int


def read_frame(
    data: bytes | bytearray | memoryview, max_size: int | None, max_depth: int | None
) -> Frame:
    limit = DEFAULT_MAX_DEPTH if max_depth is None else max_depth
    mode, head, blob = split(data, DEFAULT_MAX_SIZE if max_size is None else max_size)
    root = parse_head(head)
    plain = mode == MODE_PLAIN
    if plain:
        check_plain_depth(head, root, limit)
    return Frame(plain, root, blob, limit)
