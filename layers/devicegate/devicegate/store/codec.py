"""Plain JSON-like values <-> DynamoDB attribute values, for the low-level client.

Hand-written because boto3's TypeSerializer insists on Decimal and costs more per item than the
rest of the hot path. Numbers outside DynamoDB's range (|x| up to 9.99e125, 38 digits) are kept
as text rather than failing the write: a vendor's odd extra field must not block an event.
"""

from __future__ import annotations

import math
from typing import Any

_MAX_DIGITS = 38


def _float(value: float) -> dict[str, str]:
    if value != 0 and not (1e-130 <= abs(value) < 9.99e125) or not math.isfinite(value):
        return {"S": repr(value)}
    return {"N": repr(value)}


def _int(value: int) -> dict[str, str]:
    text = str(value)
    return {"N": text} if len(text) <= _MAX_DIGITS else {"S": text}


# Dispatch on the exact type: this runs for every value of every stored event.
_ENCODERS: dict[type, Any] = {
    str: lambda v: {"S": v},
    bool: lambda v: {"BOOL": v},
    int: _int,
    float: _float,
    type(None): lambda v: {"NULL": True},
    dict: lambda v: {"M": {str(k): to_attr(x) for k, x in v.items()}},
    list: lambda v: {"L": [to_attr(x) for x in v]},
    tuple: lambda v: {"L": [to_attr(x) for x in v]},
    bytes: lambda v: {"B": v},
}


def to_attr(value: Any) -> dict[str, Any]:
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        # Subclasses (IntEnum, str enums, OrderedDict...) take the slow, general path.
        for kind, fallback in _ENCODERS.items():
            if kind is not bool and isinstance(value, kind):
                return fallback(value)
        raise TypeError(f"cannot store {type(value).__name__}")
    return encoder(value)


def from_attr(attr: dict[str, Any]) -> Any:
    (tag, value), = attr.items()
    if tag == "S":
        return value
    if tag == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if tag == "BOOL":
        return bool(value)
    if tag == "NULL":
        return None
    if tag == "M":
        return {k: from_attr(v) for k, v in value.items()}
    if tag == "L":
        return [from_attr(v) for v in value]
    if tag in ("SS", "BS"):
        return list(value)
    if tag == "NS":
        return [from_attr({"N": v}) for v in value]
    if tag == "B":
        return value
    raise ValueError(f"unknown attribute type {tag}")


def from_item(item: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: from_attr(v) for k, v in item.items()}
