"""Classes and helpers shared by the serde tests.

Classes live at module level so a decoder can find them again by their class id. Those used
in golden files pin their id, so the golden bytes do not depend on how pytest names this
module.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import PurePath
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

import pydantic

from workflowkit.errors import RemoteError
from workflowkit.serde import register_serializer, serializable
from workflowkit.serde.exceptions import TRACEBACK_ATTR


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    FAST = "fast"
    SAFE = "safe"


class Perm(enum.Flag):
    R = 1
    W = 2
    X = 4


@dataclass
class Address:
    city: str
    zip: str | None = None


@dataclass
class User:
    name: str
    address: Address | None = None
    tags: list[str] = field(default_factory=list)
    callback: Any = None


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(slots=True)
class Slotted:
    a: int
    b: tuple[int, ...] = ()


@dataclass
class WithDerived:
    """A field outside __init__, computed in __post_init__ and changed afterwards."""

    base: int
    doubled: int = field(init=False)
    counter: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.doubled = self.base * 2


@dataclass(frozen=True, slots=True)
class FrozenDerived:
    value: int
    label: str = field(init=False, default="fixed")


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None


class Pair(NamedTuple):
    left: Any
    right: Any = None


class Item(pydantic.BaseModel):
    sku: str
    qty: int = 1
    when: datetime | None = None


class Order(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")

    id: str
    items: list[Item] = []
    note: str = pydantic.Field(default="", alias="orderNote")
    _secret: int = pydantic.PrivateAttr(default=0)


@serializable
class Money:
    """A custom class using the protocol."""

    def __init__(self, cents: int, currency: str) -> None:
        self.cents = cents
        self.currency = currency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and (self.cents, self.currency) == (
            other.cents,
            other.currency,
        )

    def __hash__(self) -> int:
        return hash((self.cents, self.currency))

    def __repr__(self) -> str:
        return f"Money({self.cents}, {self.currency!r})"

    def __workflow_serialize__(self) -> object:
        return {"cents": self.cents, "currency": self.currency}

    @classmethod
    def __workflow_deserialize__(cls, data: Any) -> Money:
        return cls(data["cents"], data["currency"])


class Temperature:
    """A custom class registered with encode/decode functions."""

    def __init__(self, kelvin: Decimal) -> None:
        self.kelvin = kelvin

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Temperature) and self.kelvin == other.kelvin

    def __hash__(self) -> int:
        return hash(self.kelvin)

    def __repr__(self) -> str:  # str(ValueError(t)) is stored, so keep it free of addresses
        return f"Temperature({self.kelvin})"


register_serializer(
    Temperature,
    encode=lambda t: str(t.kelvin),
    decode=lambda s: Temperature(Decimal(s)),
    class_id="tests.Temperature",
)


class Unregistered:
    """Has the protocol but is not registered: must be refused."""

    def __workflow_serialize__(self) -> object:
        return 1

    @classmethod
    def __workflow_deserialize__(cls, data: Any) -> Unregistered:
        return cls()


class Opaque:
    """A plain class nobody registered."""


class PaymentError(Exception):
    def __init__(self, code: str, amount: int) -> None:
        super().__init__(f"payment {code} failed for {amount}")
        self.code = code
        self.amount = amount


class SideEffectError(Exception):
    """__init__ would record a call; rebuilding must not run it."""

    calls: list[str] = []

    def __init__(self, message: str) -> None:
        SideEffectError.calls.append(message)
        super().__init__(message)


# Golden files must not depend on how pytest names this module: pin the ids they use.
for _cls, _id in [
    (Color, "tests.Color"),
    (Level, "tests.Level"),
    (Mode, "tests.Mode"),
    (Perm, "tests.Perm"),
    (Address, "tests.Address"),
    (User, "tests.User"),
    (Point, "tests.Point"),
    (Slotted, "tests.Slotted"),
    (WithDerived, "tests.WithDerived"),
    (FrozenDerived, "tests.FrozenDerived"),
    (Node, "tests.Node"),
    (Pair, "tests.Pair"),
    (Item, "tests.Item"),
    (Order, "tests.Order"),
    (PaymentError, "tests.PaymentError"),
]:
    register_serializer(_cls, class_id=_id)
register_serializer(Money, class_id="tests.Money")


# -- structural comparison ---------------------------------------------------------------


def canon(value: Any) -> Any:
    """A canonical, type-exact form of an acyclic value: equal forms mean equal values of
    the same types all the way down (nan equal to nan, -0.0 distinct from 0.0, Decimal
    precision and datetime time zones, names and folds included)."""
    t = type(value)
    name = f"{t.__module__}.{t.__qualname__}"
    if t is int:
        return (name, hex(value))
    if value is None or t is bool or t is str:
        return (name, repr(value))
    if t is float:
        return (name, "nan" if math.isnan(value) else repr(value))
    if t is bytes or t is bytearray:
        return (name, bytes(value).hex())
    if t is Decimal:
        return (name, str(value))
    if t is datetime or t is time:
        return (name, value.isoformat(), repr(value.tzinfo), value.fold)
    if isinstance(value, date | timedelta | timezone | ZoneInfo | UUID | PurePath | enum.Enum):
        return (name, repr(value))
    if t is re.Pattern:
        return (name, canon(value.pattern), value.flags)
    if t is list or t is tuple:
        return (name, tuple(canon(item) for item in value))
    if t is set or t is frozenset:
        return (name, tuple(sorted(canon(item) for item in value)))
    if t is dict:
        return (name, tuple((canon(k), canon(v)) for k, v in value.items()))
    if is_dataclass(value):
        return (name, tuple((f.name, canon(getattr(value, f.name))) for f in fields(value)))
    if isinstance(value, tuple):  # NamedTuple
        return (name, tuple(canon(item) for item in value))
    if isinstance(value, pydantic.BaseModel):
        return (
            name,
            canon(dict(value.__dict__)),
            canon(value.__pydantic_extra__),
            canon(value.__pydantic_private__),
            canon(set(value.model_fields_set)),
        )
    if isinstance(value, RemoteError):
        return (name, value.type_name, value.message, canon(value.original_args))
    if isinstance(value, BaseException):
        attrs = {k: v for k, v in vars(value).items() if k != TRACEBACK_ATTR}
        return (name, canon(value.args), canon(attrs), canon(value.__cause__))
    if isinstance(value, Money | Temperature):
        return (name, repr(vars(value)))
    raise AssertionError(f"canon() does not know {t}")


def assert_same(actual: Any, expected: Any) -> None:
    assert canon(actual) == canon(expected)


@dataclass(eq=False)
class Peer:
    """Points at other peers directly: cycles with no list, dict or set in between."""

    name: str
    friend: Peer | None = None
    others: tuple[Peer, ...] = ()


register_serializer(Peer, class_id="tests.Peer")
