"""Registering classes, pinned ids, extension tags, and the lookup safety rule."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from serde_models import Money, Temperature, User

from workflowkit.errors import SerializationError
from workflowkit.serde import (
    decode,
    display,
    encode,
    register_serializer,
    register_tag,
    serializable,
)
from workflowkit.serde.classes import REGISTRY

SRC = Path(__file__).resolve().parents[2] / "src"


def test_protocol_class_round_trips_through_its_methods() -> None:
    data = encode({"price": Money(250, "USD")})
    assert b'"$":"custom","t":"tests.Money"' in data
    assert decode(data) == {"price": Money(250, "USD")}


def test_registered_functions_are_used() -> None:
    value = decode(encode([Temperature(Decimal("1.5"))]))
    assert value == [Temperature(Decimal("1.5"))]


@dataclass
class Moved:
    x: int


def test_pinned_class_id_lets_a_class_move() -> None:
    data = encode(Moved(1))
    assert f'"t":"{Moved.__module__}:Moved"'.encode() in data
    register_serializer(Moved, class_id="tests.Moved.v1")
    pinned = encode(Moved(2))
    assert b'"t":"tests.Moved.v1"' in pinned
    assert decode(pinned) == Moved(2)
    assert decode(data) == Moved(1)  # the old id still resolves while the module exists


def test_registry_refuses_conflicts_and_builtins() -> None:
    class Other:
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_serializer(Other, encode=str, decode=str, class_id="tests.Temperature")
    with pytest.raises(TypeError, match="built-in encoding"):
        register_serializer(dict, encode=str, decode=str)
    with pytest.raises(TypeError, match="both encode= and decode="):
        register_serializer(Other, encode=str)
    with pytest.raises(TypeError, match="needs encode= and decode="):
        register_serializer(Other)
    with pytest.raises(TypeError, match="must define __workflow_serialize__"):
        serializable(Other)


def test_redefining_a_class_replaces_its_registration() -> None:
    def define() -> type:
        @serializable(class_id="tests.Redefined")
        class Redefined:
            def __init__(self, v: int) -> None:
                self.v = v

            def __workflow_serialize__(self) -> object:
                return self.v

            @classmethod
            def __workflow_deserialize__(cls, data: Any) -> Any:
                return cls(data)

        return Redefined

    first, second = define(), define()  # same module:qualname, as after a reload
    assert first is not second
    assert type(decode(encode(first(1)))) is second


def test_registered_class_can_be_local_when_pinned() -> None:
    @serializable(class_id="tests.LocalProtocol")
    class LocalProtocol:
        def __init__(self, v: int) -> None:
            self.v = v

        def __workflow_serialize__(self) -> object:
            return [self.v]

        @classmethod
        def __workflow_deserialize__(cls, data: Any) -> Any:
            return cls(data[0])

    assert decode(encode(LocalProtocol(3))).v == 3


def test_extension_tag() -> None:
    class StreamHandle:
        def __init__(self, stream_id: str) -> None:
            self.stream_id = stream_id

    register_tag(
        "test-stream",
        StreamHandle,
        encode=lambda h: {"id": h.stream_id},
        decode=lambda state: StreamHandle(state["id"]),
        display=lambda state: {"$stream": state["id"]},
    )
    data = encode({"out": StreamHandle("strm_1")})
    assert b'{"$":"test-stream","v":{"id":"strm_1"}}' in data
    assert decode(data)["out"].stream_id == "strm_1"
    assert display(data) == {"out": {"$stream": "strm_1"}}
    assert REGISTRY.tag_entry("test-stream") is not None
    with pytest.raises(ValueError, match="cannot be used as an extension tag"):
        register_tag("tuple", StreamHandle, encode=str, decode=str)


def test_unknown_extension_tag_is_refused() -> None:
    with pytest.raises(SerializationError, match="unknown tag 'stream-v9'"):
        decode(b'wk1t{"$":"stream-v9","v":1}')
    assert display(b'wk1t{"$":"stream-v9","v":1}') == {"$type": "stream-v9", "state": 1}


def test_dataclass_evolution_ignores_removed_fields_and_defaults_new_ones() -> None:
    data = b'wk1t{"$":"dataclass","t":"tests.User","v":{"name":"ada","removed":1}}'
    assert decode(data) == User("ada")


def test_decoding_an_unregistered_custom_class_is_refused() -> None:
    data = encode(Money(1, "EUR")).replace(b"tests.Money", b"tests.NotThere")
    with pytest.raises(SerializationError, match="no class is registered under that id"):
        decode(data)


def test_works_without_pydantic_and_never_imports_it() -> None:
    script = (
        "import sys; sys.modules['pydantic'] = None\n"  # makes `import pydantic` fail
        "from dataclasses import dataclass\n"
        "from workflowkit.serde import encode, decode\n"
        "@dataclass\nclass P:\n    x: int\n"
        "assert decode(encode([P(1), {1, 2}])) == [P(1), {1, 2}]\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "ok"
    check = "import sys, workflowkit.serde; print('pydantic' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
