"""Compact JSON text of small trees, without ``JSONEncoder.encode``'s set-up on every call.

``JSONEncoder.encode`` builds a new C encoder each time it is called: for the few values of
a step's payload or an event's attributes, that costs more than the encoding itself (with
a step's streams settled only when written, 4 % of a chain step's instructions). Here the C
encoder is built once. It is json's private API, so it is checked against the public one
when built, and where it is missing or differs the public encoder is used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _json_encoder
from typing import Any


def compact_encoder(*, ensure_ascii: bool, allow_nan: bool) -> Callable[[object], str]:
    """A function writing a tree of dict/list/str/int/float/bool/None as compact JSON, as
    ``json.dumps(tree, separators=(",", ":"))`` with these options would (without its check
    for cycles: the callers' trees have none, or are checked for them)."""
    public = json.JSONEncoder(
        ensure_ascii=ensure_ascii,
        check_circular=False,
        allow_nan=allow_nan,
        separators=(",", ":"),
    )
    make: Any = getattr(_json_encoder, "c_make_encoder", None)
    strings: Any = getattr(
        _json_encoder, "c_encode_basestring_ascii" if ensure_ascii else "c_encode_basestring", None
    )
    if make is None or strings is None:
        return public.encode
    try:
        encode = make(None, public.default, strings, None, ":", ",", False, False, allow_nan)

        def write(tree: object) -> str:
            return "".join(encode(tree, 0))

        if write(_PROBE) == public.encode(_PROBE):
            return write
    except Exception:  # another signature: json changed its private API
        pass
    return public.encode


_PROBE = {"k": [1, 2.5, "é\n", None, True, {"n": -3}]}
