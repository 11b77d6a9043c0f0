"""The tagged JSON vocabulary, and the conversions of the leaf types.

In tagged mode a JSON object with the key ``"$"`` is a *tag node*; its value names the tag.
Any other JSON object is a dict with ``str`` keys, any JSON array a list, and JSON scalars are
themselves. A user dict that has a ``"$"`` key is written as a ``map`` node, so it can never
be mistaken for a tag. Node shapes (``id`` is present only on objects referenced more than
once and on the containers of a cycle, see ``encode.py``; ``T`` is a class id, see
``classes.py``)::

    {"$":"ref","id":N}                       a second reference to object N
    {"$":"list","id":N,"v":[...]}            a shared list
    {"$":"dict","id":N,"v":{...}}            a shared dict with str keys
    {"$":"map","v":[k1,v1,k2,v2,...]}        any other dict, insertion order kept
    {"$":"tuple"|"set"|"frozenset","v":[...]}     sets sorted by encoded element
    {"$":"bytes"|"bytearray","o":OFFSET,"n":LEN}  content in the blob
    {"$":"int","v":"0x..."}                  ints of 600+ digits, in hex
    {"$":"float","v":"nan"|"inf"|"-inf"}
    {"$":"datetime"|"time","v":ISO,"tz":NODE,"fold":1}   tz and fold only when set
    {"$":"date","v":ISO}
    {"$":"timedelta","d":DAYS,"s":SECONDS,"us":MICROSECONDS}
    {"$":"timezone","us":OFFSET_MICROSECONDS,"name":NAME}  name only when explicit
    {"$":"zoneinfo","key":KEY}
    {"$":"decimal"|"uuid","v":STR}
    {"$":"path","cls":"PurePosixPath"|"PureWindowsPath"|"PosixPath"|"WindowsPath","v":STR}
    {"$":"pattern","v":STR_OR_BYTES_NODE,"flags":INT}
    {"$":"enum","t":T,"name":NAME}  or  {"$":"enum","t":T,"v":INT}   (composite flags)
    {"$":"dataclass"|"namedtuple","t":T,"v":{field: value, ...}}
    {"$":"pydantic","t":T,"v":{field: value},"extra":DICT,"private":{...},"unset":[...]}
    {"$":"custom","t":T,"v":STATE}
    {"$":"exception","t":T,"msg":STR,"args":[...],"attrs":{...},"tb":TEXT,"cause":NODE}
    {"$":EXTENSION_TAG,"v":STATE}            types added with ``register_tag``

A dataclass or exception node with ``"new":1`` (always with an ``id``) lies on a cycle made
only of objects: the decoder creates the object before decoding its contents.
"""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

from workflowkit.errors import SerializationError

TAG: Final = "$"

REF: Final = "ref"
LIST: Final = "list"
DICT: Final = "dict"
MAP: Final = "map"
TUPLE: Final = "tuple"
SET: Final = "set"
FROZENSET: Final = "frozenset"
BYTES: Final = "bytes"
BYTEARRAY: Final = "bytearray"
INT: Final = "int"
FLOAT: Final = "float"
DATETIME: Final = "datetime"
DATE: Final = "date"
TIME: Final = "time"
TIMEDELTA: Final = "timedelta"
TIMEZONE: Final = "timezone"
ZONEINFO: Final = "zoneinfo"
DECIMAL: Final = "decimal"
UUID_TAG: Final = "uuid"
PATH: Final = "path"
PATTERN: Final = "pattern"
ENUM: Final = "enum"
DATACLASS: Final = "dataclass"
NAMEDTUPLE: Final = "namedtuple"
PYDANTIC: Final = "pydantic"
CUSTOM: Final = "custom"
EXCEPTION: Final = "exception"

BUILTIN_TAGS: Final = frozenset(
    {
        REF, LIST, DICT, MAP, TUPLE, SET, FROZENSET, BYTES, BYTEARRAY, INT, FLOAT, DATETIME,
        DATE, TIME, TIMEDELTA, TIMEZONE, ZONEINFO, DECIMAL, UUID_TAG, PATH, PATTERN, ENUM,
        DATACLASS, NAMEDTUPLE, PYDANTIC, CUSTOM, EXCEPTION,
    }
)  # fmt: skip

#: Integers with at least this many digits are written in hex: Python refuses to convert
#: more than ``sys.get_int_max_str_digits()`` digits (640 at the lowest setting) to or from
#: decimal, and hex conversion is linear and unlimited.
BIG_INT: Final = 10**600

Json = Any
"""A value made only of dict/list/str/int/float/bool/None (JSON-compatible)."""


def malformed(tag: str, detail: str) -> SerializationError:
    return SerializationError(f"malformed payload: bad {tag!r} node ({detail})")


def get_str(node: dict[str, Json], key: str, tag: str) -> str:
    value = node.get(key)
    if type(value) is not str:
        raise malformed(tag, f"{key!r} must be a string")
    return value


def get_int(node: dict[str, Json], key: str, tag: str) -> int:
    value = node.get(key)
    if type(value) is not int:
        raise malformed(tag, f"{key!r} must be an integer")
    return value


def get_list(node: dict[str, Json], key: str, tag: str) -> list[Json]:
    value = node.get(key)
    if type(value) is not list:
        raise malformed(tag, f"{key!r} must be an array")
    return value


def get_dict(node: dict[str, Json], key: str, tag: str) -> dict[str, Json]:
    value = node.get(key)
    if type(value) is not dict:
        raise malformed(tag, f"{key!r} must be an object")
    return value


# -- floats and big ints -----------------------------------------------------------------

_FLOAT_NAMES: Final = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def float_node(value: float) -> dict[str, Json]:
    name = "nan" if value != value else ("inf" if value > 0 else "-inf")
    return {TAG: FLOAT, "v": name}


def float_from(node: dict[str, Json]) -> float:
    name = get_str(node, "v", FLOAT)
    try:
        return _FLOAT_NAMES[name]
    except KeyError:
        raise malformed(FLOAT, f"unknown value {name!r}") from None


def int_node(value: int) -> dict[str, Json]:
    return {TAG: INT, "v": hex(value)}


def int_from(node: dict[str, Json]) -> int:
    text = get_str(node, "v", INT)
    try:
        return int(text, 16)
    except ValueError:
        raise malformed(INT, "not a hex integer") from None


# -- leaf types: one converter per Python type -------------------------------------------

LeafEncode = Callable[[Any], dict[str, Json]]
LeafDecode = Callable[[dict[str, Json]], Any]
LeafDisplay = Callable[[dict[str, Json]], Json]


@dataclass(frozen=True, slots=True)
class Leaf:
    """How one leaf type (a value holding no other serialized values) is written."""

    tag: str
    encode: LeafEncode
    decode: LeafDecode
    display: LeafDisplay


def _date_node(value: date) -> dict[str, Json]:
    return {TAG: DATE, "v": value.isoformat()}


def _date_from(node: dict[str, Json]) -> date:
    return date.fromisoformat(get_str(node, "v", DATE))


def _timedelta_node(value: timedelta) -> dict[str, Json]:
    return {TAG: TIMEDELTA, "d": value.days, "s": value.seconds, "us": value.microseconds}


def _timedelta_from(node: dict[str, Json]) -> timedelta:
    return timedelta(
        days=get_int(node, "d", TIMEDELTA),
        seconds=get_int(node, "s", TIMEDELTA),
        microseconds=get_int(node, "us", TIMEDELTA),
    )


def _timedelta_display(node: dict[str, Json]) -> Json:
    return str(_timedelta_from(node))


_MICROSECOND: Final = timedelta(microseconds=1)


def _timezone_node(value: timezone) -> dict[str, Json]:
    offset = value.utcoffset(None)
    node: dict[str, Json] = {TAG: TIMEZONE, "us": offset // _MICROSECOND}
    name = value.tzname(None)
    if name != timezone(offset).tzname(None):
        node["name"] = name
    return node


def _timezone_from(node: dict[str, Json]) -> timezone:
    offset = timedelta(microseconds=get_int(node, "us", TIMEZONE))
    if "name" in node:
        return timezone(offset, get_str(node, "name", TIMEZONE))
    return timezone(offset)


def _timezone_display(node: dict[str, Json]) -> Json:
    return _timezone_from(node).tzname(None)


def _zoneinfo_node(value: ZoneInfo) -> dict[str, Json]:
    if value.key is None:
        raise TypeError("a ZoneInfo built from a file has no key to write")
    return {TAG: ZONEINFO, "key": value.key}


def _zoneinfo_from(node: dict[str, Json]) -> ZoneInfo:
    key = get_str(node, "key", ZONEINFO)
    try:
        return ZoneInfo(key)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError for bad keys, OSError
        raise SerializationError(f"cannot load time zone {key!r}: {exc}") from None


def _zoneinfo_display(node: dict[str, Json]) -> Json:
    return get_str(node, "key", ZONEINFO)


def _decimal_from(node: dict[str, Json]) -> Decimal:
    return Decimal(get_str(node, "v", DECIMAL))


def _uuid_from(node: dict[str, Json]) -> UUID:
    return UUID(get_str(node, "v", UUID_TAG))


def _string_display(tag: str) -> LeafDisplay:
    return lambda node: get_str(node, "v", tag)


#: Path classes by the name written in the payload. The concrete classes can only be
#: instantiated on their own OS; elsewhere they decode as the matching pure class.
PATH_CLASSES: Final[dict[str, type[pathlib.PurePath]]] = {
    "PurePosixPath": pathlib.PurePosixPath,
    "PureWindowsPath": pathlib.PureWindowsPath,
    "PosixPath": pathlib.PosixPath,
    "WindowsPath": pathlib.WindowsPath,
}
_PURE_FALLBACK: Final = {
    "PosixPath": pathlib.PurePosixPath,
    "WindowsPath": pathlib.PureWindowsPath,
}


def _path_node(value: pathlib.PurePath) -> dict[str, Json]:
    return {TAG: PATH, "cls": type(value).__name__, "v": str(value)}


def _path_from(node: dict[str, Json]) -> pathlib.PurePath:
    name = get_str(node, "cls", PATH)
    text = get_str(node, "v", PATH)
    cls = PATH_CLASSES.get(name)
    if cls is None:
        raise malformed(PATH, f"unknown path class {name!r}")
    try:
        return cls(text)
    except Exception:  # the concrete class of another OS: NotImplementedError / UnsupportedOp
        return _PURE_FALLBACK[name](text)


def _path_display(node: dict[str, Json]) -> Json:
    return get_str(node, "v", PATH)


LEAVES: Final[dict[type, Leaf]] = {
    date: Leaf(DATE, _date_node, _date_from, _string_display(DATE)),
    timedelta: Leaf(TIMEDELTA, _timedelta_node, _timedelta_from, _timedelta_display),
    timezone: Leaf(TIMEZONE, _timezone_node, _timezone_from, _timezone_display),
    ZoneInfo: Leaf(ZONEINFO, _zoneinfo_node, _zoneinfo_from, _zoneinfo_display),
    Decimal: Leaf(
        DECIMAL, lambda v: {TAG: DECIMAL, "v": str(v)}, _decimal_from, _string_display(DECIMAL)
    ),
    UUID: Leaf(
        UUID_TAG, lambda v: {TAG: UUID_TAG, "v": str(v)}, _uuid_from, _string_display(UUID_TAG)
    ),
    **{
        cls: Leaf(PATH, _path_node, _path_from, _path_display)
        for cls in (
            pathlib.PurePosixPath,
            pathlib.PureWindowsPath,
            pathlib.PosixPath,
            pathlib.WindowsPath,
        )
    },
}
LEAVES_BY_TAG: Final[dict[str, Leaf]] = {leaf.tag: leaf for leaf in LEAVES.values()}


# -- datetimes and times: a leaf plus an optional tzinfo child ---------------------------


def datetime_node(value: datetime | time) -> dict[str, Json]:
    tag = DATETIME if type(value) is datetime else TIME
    node: dict[str, Json] = {TAG: tag, "v": value.isoformat()}
    if value.fold:
        node["fold"] = 1
    return node


def datetime_from(node: dict[str, Json], zone: object) -> datetime | time:
    tag = node[TAG]
    text = get_str(node, "v", tag)
    fold = node.get("fold", 0)
    if fold not in (0, 1) or type(fold) is not int:
        raise malformed(tag, "'fold' must be 0 or 1")
    if zone is not None and not isinstance(zone, tzinfo):
        raise malformed(tag, "'tz' is not a tzinfo")
    parsed = datetime.fromisoformat(text) if tag == DATETIME else time.fromisoformat(text)
    return parsed.replace(tzinfo=zone, fold=fold)


def datetime_display(node: dict[str, Json]) -> Json:
    return get_str(node, "v", str(node[TAG]))


def pattern_from(source: object, flags: object) -> re.Pattern[Any]:
    if not isinstance(source, str | bytes) or type(flags) is not int:
        raise malformed(PATTERN, "needs a str or bytes 'v' and an integer 'flags'")
    try:
        return re.compile(source, flags)
    except (re.error, ValueError, TypeError, OverflowError) as exc:
        raise malformed(PATTERN, f"does not compile: {exc}") from None
