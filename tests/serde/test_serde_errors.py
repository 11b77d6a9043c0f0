"""Every way encoding or decoding refuses, and what it says."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from serde_models import Address, Opaque, Unregistered, User

from workflowkit.errors import SerializationError
from workflowkit.serde import decode, display, encode

# -- encoding ----------------------------------------------------------------------------


def test_unsupported_value_names_its_path_type_and_hint() -> None:
    args = (1, {"user": User("ada", callback=lambda: None)})
    with pytest.raises(SerializationError) as info:
        encode(args, path="args")
    message = str(info.value)
    assert message.startswith("cannot serialize args[1]['user'].callback: a function is not data")
    assert "Move this into a step" in message


@pytest.mark.parametrize(
    ("value", "path", "type_text", "hint"),
    [
        ([Opaque()], "value[0]", "serde_models.Opaque", "register_serializer"),
        ({"k": {1: [threading.Lock()]}}, "value['k'][1][0]", "lock", "Move this into a step"),
        ({(1, print): 2}, "value<key (1, <built-in function print>)>[1]", "builtin", "step"),
        ({1, 2, frozenset({Opaque()})}, "value<set element><set element>", "Opaque", "register"),
        (Address(city=open), "value.city", "builtin", "step"),
        (collections.OrderedDict(a=1), "value", "OrderedDict", "convert it"),
        ((x for x in []), "value", "generator", "step"),
        (sys, "value", "module", "step"),
        (memoryview(b"x"), "value", "memoryview", "register_serializer"),
    ],
)
def test_unsupported_values(value: Any, path: str, type_text: str, hint: str) -> None:
    with pytest.raises(SerializationError) as info:
        encode(value)
    message = str(info.value)
    assert message.startswith(f"cannot serialize {path}: "), message
    assert type_text in message
    assert hint in message


def test_error_is_raised_before_anything_is_returned_for_the_runtime_paths() -> None:
    with pytest.raises(SerializationError, match=r"^cannot serialize kwargs\['cb'\]"):
        encode({"cb": print}, path="kwargs")
    with pytest.raises(SerializationError, match=r"^cannot serialize return value\[0\]"):
        encode([object()], path="return value")


def test_unregistered_protocol_class_is_refused_with_a_hint() -> None:
    with pytest.raises(SerializationError) as info:
        encode(Unregistered())
    assert "@workflowkit.serde.serializable" in str(info.value)


def test_class_defined_in_a_function_is_refused_at_encode_time() -> None:
    @dataclass
    class Local:
        x: int

    with pytest.raises(SerializationError) as info:
        encode(Local(1))
    message = str(info.value)
    assert "cannot be found again by its id" in message
    assert "Define the class at module level" in message


def test_custom_serializer_that_raises_is_reported_with_the_path() -> None:
    from workflowkit.serde import register_serializer

    class Broken:
        pass

    def fail(obj: Broken) -> object:
        raise RuntimeError("nope")

    register_serializer(Broken, encode=fail, decode=lambda s: Broken(), class_id="tests.Broken")
    with pytest.raises(SerializationError, match=r"value\[0\].*raised RuntimeError: nope"):
        encode([Broken()])


def nested(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def test_depth_limit_on_encode() -> None:
    encode(nested(200))
    with pytest.raises(SerializationError, match="nested more than 200 levels deep") as info:
        encode(nested(201))
    assert str(info.value).startswith("cannot serialize value[0][0]")
    encode(nested(5), max_depth=5)
    with pytest.raises(SerializationError):
        encode(nested(6), max_depth=5)


@pytest.mark.parametrize(
    "leaf", [float("nan"), 10**700, (1,), b"x", {1: 2}, Address("x"), ValueError("v")]
)
def test_depth_limit_agrees_between_encode_and_decode(leaf: Any) -> None:
    # Each extended leaf sits one level below 199 lists: exactly at the limit.
    data = encode(nested(199, leaf))
    decode(data)
    with pytest.raises(SerializationError, match="more than 199 levels"):
        decode(data, max_depth=199)
    with pytest.raises(SerializationError):
        encode(nested(200, leaf))


def test_size_limit_on_encode() -> None:
    encode(b"x" * 1000, max_size=1100)
    with pytest.raises(SerializationError, match="over the limit of 1000 bytes"):
        encode(b"x" * 1000, max_size=1000)


# -- decoding ----------------------------------------------------------------------------


def test_not_a_payload() -> None:
    for data in (b"", b"hello", b"{}", b"w"):
        with pytest.raises(SerializationError, match="not a workflowkit payload"):
            decode(data)
    with pytest.raises(SerializationError, match="expected an encoded payload"):
        decode("wk1j1")  # type: ignore[arg-type]


def test_unknown_version_is_rejected_clearly() -> None:
    with pytest.raises(SerializationError, match=r"unknown payload format version '2'.*newer"):
        decode(b"wk2j{}")
    with pytest.raises(SerializationError, match="version"):
        decode(b"wk")


def test_unknown_mode() -> None:
    with pytest.raises(SerializationError, match="unknown mode byte"):
        decode(b"wk1x1")


def test_oversize_payload() -> None:
    data = encode("x" * 100)
    with pytest.raises(SerializationError, match="over the limit of 50 bytes"):
        decode(data, max_size=50)
    with pytest.raises(SerializationError, match="over the limit"):
        display(data, max_size=50)


def test_too_deep_payloads() -> None:
    with pytest.raises(SerializationError, match="nested more than 200 levels"):
        decode(b"wk1j" + b"[" * 201 + b"]" * 201)
    decode(b"wk1j" + b"[" * 200 + b"]" * 200)
    tagged = b"wk1t" + b'{"$":"tuple","v":[' * 250 + b"1" + b"]}" * 250
    with pytest.raises(SerializationError, match="nested more than 200 levels"):
        decode(tagged)
    # Far beyond Python's own recursion limit: still a clean error, never a crash.
    with pytest.raises(SerializationError, match="nested"):
        decode(b"wk1j" + b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(SerializationError, match="nested"):
        decode(b"wk1t" + b'{"a":' * 100_000 + b"1" + b"}" * 100_000)


def test_truncated_binary_segment() -> None:
    data = encode([b"a" * 100, b"b" * 100])
    with pytest.raises(SerializationError, match="truncated binary segment"):
        decode(data[:-1])
    with pytest.raises(SerializationError, match="truncated binary segment"):
        decode(data[: data.index(b"\n")])
    with pytest.raises(SerializationError, match="truncated binary segment"):
        display(data[:-1])


def test_binary_segments_cannot_reuse_blob_bytes() -> None:
    # Each bytes node used to copy whatever blob range it named, as often as it was named:
    # a 1.1 MB payload decoded into 2.1 GB. Segments are laid end to end by encode(), so
    # their lengths add up to the blob's at most; more is refused before anything is copied.
    blob = b"x" * 10_000
    node = b'{"$":"bytes","o":0,"n":10000}'
    amplified = b"wk1t[" + b",".join([node] * 500) + b"]\n" + blob  # 25 KB -> 5 MB
    with pytest.raises(SerializationError, match="binary segments overlap"):
        decode(amplified)
    overlapping = b'wk1t[{"$":"bytes","o":0,"n":6},{"$":"bytearray","o":4,"n":6}]\n' + b"0123456789"
    with pytest.raises(SerializationError, match="binary segments overlap"):
        decode(overlapping)
    # What encode() writes always decodes: many segments, empty ones, a value shared by
    # reference (written once), bytes inside other values.
    shared = os.urandom(300)
    value = [b"", os.urandom(64), bytearray(b"ba"), shared, {"k": (shared, b"")}, shared]
    decoded = decode(encode(value))
    assert decoded == value and decoded[3] is decoded[5] is decoded[4]["k"][0]


def test_malformed_heads() -> None:
    cases = [
        b"wk1j",
        b"wk1j{",
        b"wk1j[1,]",
        b"wk1j1 2",
        b"wk1j NaN",
        b"wk1jInfinity",
        b'wk1j"\xff"',
        b'wk1t{"$":5}',
        b'wk1t{"$":"nope"}',
        b'wk1t{"$":"ref","id":1}',
        b'wk1t{"$":"ref","id":"1"}',
        b'wk1t{"$":"map","v":[1]}',
        b'wk1t{"$":"map","v":[[1],2]}',
        b'wk1t{"$":"set","v":[[]]}',
        b'wk1t{"$":"bytes","o":-1,"n":1}',
        b'wk1t{"$":"float","v":"zero"}',
        b'wk1t{"$":"int","v":"0xzz"}',
        b'wk1t{"$":"datetime","v":"yesterday"}',
        b'wk1t{"$":"datetime","v":"2020-01-01T00:00:00","tz":"UTC"}',
        b'wk1t{"$":"timedelta","d":1e400,"s":0,"us":0}',
        b'wk1t{"$":"timedelta","d":999999999999,"s":0,"us":0}',
        b'wk1t{"$":"zoneinfo","key":"../../etc/passwd"}',
        b'wk1t{"$":"zoneinfo","key":"No/Such_Zone"}',
        b'wk1t{"$":"decimal","v":"one"}',
        b'wk1t{"$":"uuid","v":"x"}',
        b'wk1t{"$":"path","cls":"Evil","v":"/"}',
        b'wk1t{"$":"pattern","v":"(","flags":0}',
        b'wk1t{"$":"pattern","v":"a","flags":"i"}',
        b'wk1t{"$":"list","id":1,"v":[{"$":"list","id":1,"v":[]}]}',
        b'wk1t{"$":"dataclass","t":"no-colon","v":{}}',
        b'wk1t{"$":"enum","t":"tests.Color","name":"BLUE"}',
        b'wk1t{"$":"enum","t":"tests.Color","v":99}',
        b'wk1t{"$":"dataclass","t":"tests.User","v":{}}',
        b'wk1t{"$":"exception","t":"builtins:ValueError","msg":1,"args":[]}',
        b'wk1t{"$":"exception","t":"builtins:ValueError","msg":"m","args":[],"cause":3}',
        b'wk1t{"$":"pydantic","t":"tests.Item","v":{},"extra":[1]}',
    ]
    for data in cases:
        with pytest.raises(SerializationError):
            decode(data)


@pytest.mark.parametrize("tag", ["dataclass", "namedtuple", "enum", "pydantic", "custom"])
@pytest.mark.parametrize(
    "class_id",
    ["os:system", "subprocess:Popen", "builtins:eval", "builtins:object", "os:path.join"],
)
def test_payload_naming_a_dangerous_class_is_refused(
    tag: str, class_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))
    payload = f'wk1t{{"$":"{tag}","t":"{class_id}","name":"x","v":{{"args":"id"}}}}'
    with pytest.raises(SerializationError) as info:
        decode(payload.encode())
    message = str(info.value)
    assert "not an allowed" in message or "no class is registered" in message
    assert calls == []


def test_payload_naming_a_module_that_is_not_imported_does_not_import_it() -> None:
    assert "antigravity" not in sys.modules
    with pytest.raises(SerializationError, match="module 'antigravity' is not imported"):
        decode(b'wk1t{"$":"dataclass","t":"antigravity:Fly","v":{}}')
    assert "antigravity" not in sys.modules


def test_exception_naming_a_dangerous_callable_becomes_remote_error() -> None:
    from workflowkit.errors import RemoteError

    payload = b'wk1t{"$":"exception","t":"os:system","msg":"m","args":["echo pwned"]}'
    decoded = decode(payload)
    assert type(decoded) is RemoteError
    assert decoded.type_name == "os.system"


def test_decoder_never_raises_other_errors_for_bad_class_data() -> None:
    # Fields of the wrong types for the class reach the constructor and fail there.
    with pytest.raises(SerializationError, match=r"could not rebuild tests\.Pair"):
        decode(b'wk1t{"$":"namedtuple","t":"tests.Pair","v":{"wrong":1}}')
    with pytest.raises(SerializationError, match=r"could not rebuild tests\.Money"):
        decode(b'wk1t{"$":"custom","t":"tests.Money","v":5}')
