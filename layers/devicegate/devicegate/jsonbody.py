"""Decoding untrusted JSON: bounded depth, no NaN/Infinity, clear errors instead of exceptions."""

from __future__ import annotations

import json
from typing import Any

from devicegate.errors import FieldProblem, InvalidPayload

# Vendor records need 4 levels; deeper input is hostile or broken (and slow to walk).
MAX_DEPTH = 16


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def _depth_ok(text: str) -> bool:
    # Cheap pre-scan so a 100k-deep "[[[[..." never reaches the recursive parser.
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


# Built once: json.loads(..., hook=...) would build a decoder per call.
_STRICT = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_float)


def checked_text(text: str | bytes, field: str = "body") -> str:
    """The checks every JSON body passes before any parser sees it: UTF-8 (a byte-order mark is
    dropped), not empty, nesting at most MAX_DEPTH. Raises InvalidPayload naming `field`."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
            if text.startswith("\ufeff"):  # a byte-order mark some Windows senders add
                text = text[1:]
        except UnicodeDecodeError:
            raise InvalidPayload("body is not UTF-8 text", [FieldProblem(field, "not UTF-8")]) from None
    if not text or text.isspace():
        raise InvalidPayload("body is empty", [FieldProblem(field, "empty")])
    # Counting brackets runs in C; only a body with many of them pays for the exact scan.
    if text.count("{") + text.count("[") > MAX_DEPTH and not _depth_ok(text):
        raise InvalidPayload("JSON nested too deeply", [FieldProblem(field, f"deeper than {MAX_DEPTH} levels")])
    return text


def loads(text: str | bytes, field: str = "body") -> Any:
    """Parse JSON or raise InvalidPayload naming `field`."""
    text = checked_text(text, field)
    try:
        # The strict decoder (a Python call per float) only for text that spells NaN/Infinity;
        # an exponent overflowing to inf is refused later by the models (allow_inf_nan=False).
        if "NaN" in text or "Infinity" in text:
            return _STRICT.decode(text)
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        problem = str(exc).split(":")[0] if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidPayload("malformed JSON", [FieldProblem(field, problem[:200])]) from None
