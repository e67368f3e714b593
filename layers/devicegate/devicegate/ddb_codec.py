"""Plain JSON-like values <-> DynamoDB attribute values, for the low-level client.

Hand-written because boto3's TypeSerializer insists on Decimal and costs more per item than the
rest of the hot path. Numbers outside DynamoDB's range (|x| up to 9.99e125, 38 digits) are kept
as text rather than failing the write: a vendor's odd extra field must not block an event.
"""

from __future__ import annotations

import math
from typing import Any

_MAX_DIGITS = 38


def _number(value: int | float) -> dict[str, str]:
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"S": repr(value)}
        if value != 0 and not (1e-130 <= abs(value) < 9.99e125):
            return {"S": repr(value)}
        return {"N": repr(value)}
    text = str(value)
    return {"N": text} if len(text.lstrip("-")) <= _MAX_DIGITS else {"S": text}


def to_attr(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {str(k): to_attr(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attr(v) for v in value]}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    raise TypeError(f"cannot store {type(value).__name__}")


def to_item(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: to_attr(v) for k, v in values.items() if v is not None}


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
