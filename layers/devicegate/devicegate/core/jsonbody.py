"""Decoding untrusted JSON: bounded depth, finite numbers, each key once, clear errors naming the
field instead of exceptions.

The parsing rules (README "Parsing rules"), the same for every vendor and route:
- UTF-8 text (a byte-order mark is dropped), nesting at most MAX_DEPTH levels;
- numbers are finite: `NaN`, `Infinity`, `-Infinity` and numbers beyond a float's range (`1e999`,
  which Python reads as infinity) are refused wherever they are, JSON inside strings included;
- an object names each key once: `{"assetId": "A", "assetId": "B"}` is refused, not "last one
  wins" (two readers of one payload, e.g. a proxy and the gateway, could otherwise see two
  different records).
A refusal names the field as the vendor models do: `assetId`, `data.deviceSN`, `data.3.lat`.

Payloads that reach Lambda already parsed (IoT rules hand it a JSON object) are checked with
`check_document`: their numbers can be checked, their duplicate keys are gone before the gateway
sees them (the last one won).
"""

from __future__ import annotations

import json
from typing import Any

from devicegate.core.errors import FieldProblem, InvalidPayload

# Vendor records need 4 levels; deeper input is hostile or broken (and slow to walk).
MAX_DEPTH = 16
#: Field names built from keys are cut here: a key of 100 KB must not make a 100 KB log line.
MAX_FIELD_NAME = 200

NOT_FINITE = "not a finite number (NaN, Infinity or beyond a float's range)"
DUPLICATE_KEY = "key given more than once"
TOO_DEEP = f"deeper than {MAX_DEPTH} levels"

_INFINITIES = (float("inf"), float("-inf"))


class _Refused(Exception):
    """Raised inside the decoder's hooks, which cannot know where they are: `loads` then finds
    the field on its error path only, so the accepted path pays one call per object and float."""


def _finite(text: str) -> float:
    value = float(text)
    if value in _INFINITIES:  # "1e999"; NaN cannot come from a number's text
        raise _Refused
    return value


def _constant(name: str) -> Any:
    raise _Refused  # NaN, Infinity, -Infinity: not JSON numbers


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _Refused
    return document


class _Duplicates(dict):
    """An object that named `key` twice (the error path's re-parse marks it for the walk)."""

    key: str = ""


def _marking(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) == len(pairs):
        return document
    seen: set[str] = set()
    marked = _Duplicates(document)
    for key, _ in pairs:
        if key in seen:
            marked.key = key
            break
        seen.add(key)
    return marked


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
_STRICT = json.JSONDecoder(object_pairs_hook=_object, parse_float=_finite, parse_constant=_constant)
#: Takes what _STRICT refuses (NaN, 1e999 as infinity, duplicate keys: the last one wins, marked).
_LENIENT = json.JSONDecoder(object_pairs_hook=_marking)


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
        raise InvalidPayload("JSON nested too deeply", [FieldProblem(field, TOO_DEEP)])
    return text


def loads(text: str | bytes, field: str = "body") -> Any:
    """Parse JSON under the parsing rules (module doc) or raise InvalidPayload naming the field:
    `field` itself for text that is not JSON, the offending key's path for a number that is not
    finite or a key given twice (`field` as its prefix, except "body")."""
    text = checked_text(text, field)
    try:
        return _STRICT.decode(text)
    except _Refused:
        pass
    except (ValueError, RecursionError) as exc:
        problem = str(exc).split(":")[0] if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidPayload("malformed JSON", [FieldProblem(field, problem[:200])]) from None
    try:
        document = _LENIENT.decode(text)
    except (ValueError, RecursionError):  # refused early, but broken further on as well
        raise InvalidPayload("malformed JSON", [FieldProblem(field, "not JSON")]) from None
    refusal = _find(document, [], duplicates=True)
    path, problem = refusal if refusal is not None else ([], NOT_FINITE)
    raise _refused(field, path, problem)


def loads_lenient(text: str | bytes) -> tuple[Any, bool]:
    """(document, exact) of JSON that may break the number and key rules: NaN and Infinity read
    as floats, `1e999` as infinity, the last of a repeated key winning. `exact` is False when a
    rule was broken, so the document is not all the text said (a repeated key's first value is
    gone). For reading what was refused (the quarantine's scrubbing), never for accepting it;
    InvalidPayload for text that is not JSON at all."""
    text = checked_text(text)
    try:
        return _STRICT.decode(text), True
    except _Refused:
        pass
    except (ValueError, RecursionError):
        raise InvalidPayload("malformed JSON", [FieldProblem("body", "not JSON")]) from None
    try:
        return _LENIENT.decode(text), False
    except (ValueError, RecursionError):
        raise InvalidPayload("malformed JSON", [FieldProblem("body", "not JSON")]) from None


def check_document(document: Any, field: str = "body") -> Any:
    """`document` (parsed elsewhere: an IoT rule's message) if its numbers are finite, else
    InvalidPayload naming the first that is not. Lambda's decoder reads `1e999` as infinity."""
    refusal = _find(document, [], duplicates=False)
    if refusal is not None:
        raise _refused(field, *refusal)
    return document


def non_finite_field(value: Any) -> str | None:
    """Where in `value` (a document about to be serialized) a number is not finite, or None."""
    refusal = _find(value, [], duplicates=False)
    return None if refusal is None else field_name("body", refusal[0])


def field_name(field: str, path: list[str | int]) -> str:
    """`data.user.pin`: the path under `field`, named as the vendor models name fields (a top-level
    key of the body bare, anything under another field with it as prefix)."""
    parts = [str(p) for p in path]
    if field != "body" or not parts or isinstance(path[0], int):
        parts.insert(0, field)
    name = ".".join(parts)
    return name if len(name) <= MAX_FIELD_NAME else name[:MAX_FIELD_NAME - 1] + "…"


_REASONS = {NOT_FINITE: "numbers must be finite", DUPLICATE_KEY: "duplicate key", TOO_DEEP: "JSON nested too deeply"}


def _refused(field: str, path: list[str | int], problem: str) -> InvalidPayload:
    return InvalidPayload(_REASONS[problem], [FieldProblem(field_name(field, path), problem)])


def _find(value: Any, path: list[str | int], duplicates: bool) -> tuple[list[str | int], str] | None:
    """The first (document order) value breaking the number or key rules, with its path. Depth is
    bounded by checked_text for text; a document parsed elsewhere is refused below MAX_DEPTH."""
    if type(value) is float:
        return (path, NOT_FINITE) if value != value or value in _INFINITIES else None
    if not isinstance(value, (dict, list)):
        return None
    if len(path) >= MAX_DEPTH:
        return path, TOO_DEEP
    if isinstance(value, dict):
        if duplicates and type(value) is _Duplicates:
            return [*path, value.key], DUPLICATE_KEY
        for key, item in value.items():
            if type(item) in _SCALARS:
                continue
            found = _find(item, [*path, key], duplicates)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if type(item) in _SCALARS:
                continue
            found = _find(item, [*path, index], duplicates)
            if found is not None:
                return found
    return None


#: Types that can hold nothing to refuse (skipped without a call: the MQTT path walks every message).
_SCALARS = frozenset({str, int, bool, type(None)})
