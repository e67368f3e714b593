"""Decoding untrusted JSON: bounded depth, finite numbers, integers of bounded length, Unicode text,
each key once, clear errors naming the field instead of exceptions.

The parsing rules (docs/architecture.md "Parsing rules"), the same for every vendor and route:
- UTF-8 text (a byte-order mark is dropped), nesting at most MAX_DEPTH levels;
- numbers are finite: `NaN`, `Infinity`, `-Infinity` and numbers beyond a float's range (`1e999`,
  which Python reads as infinity) are refused wherever they are, JSON inside strings included;
- integers have at most MAX_INT_DIGITS digits (a 5,000-digit one would otherwise meet Python's own
  limit and its message, or reach the models as a number no field holds);
- strings and keys are Unicode: an escaped lone surrogate (`"\\ud800"`) decodes into text no
  store can hold, so it is refused where it sits;
- an object names each key once: `{"assetId": "A", "assetId": "B"}` is refused, not "last one
  wins" (two readers of one payload, e.g. a proxy and the gateway, could otherwise see two
  different records).
A refusal names the field as the vendor models do: `assetId`, `data.deviceSN`, `data.3.lat`; a
document nested too deeply names the path down to where it went too deep (`data.a.b.0...`).

Payloads that reach Lambda already parsed (IoT rules hand it a JSON object) are checked with
`check_document`: their numbers, integers, strings and depth can be checked, their duplicate keys
are gone before the gateway sees them (the last one won).
"""

from __future__ import annotations

import json
import re
from typing import Any

from devicegate.core.errors import FieldProblem, InvalidPayload

# Vendor records need 4 levels; deeper input is hostile or broken (and slow to walk).
MAX_DEPTH = 16
#: Digits of an integer: ids sent as numbers need 20 (an ICCID), a 128-bit number 39.
MAX_INT_DIGITS = 40
#: Field names built from keys are cut here: a key of 100 KB must not make a 100 KB log line.
MAX_FIELD_NAME = 200

NOT_FINITE = "not a finite number (NaN, Infinity or beyond a float's range)"
TOO_LONG = f"an integer of more than {MAX_INT_DIGITS} digits"
NOT_UNICODE = "text holding a lone surrogate (an unpaired \\ud800-\\udfff escape): not Unicode"
DUPLICATE_KEY = "key given more than once"
TOO_DEEP = f"deeper than {MAX_DEPTH} levels"

_INFINITIES = (float("inf"), float("-inf"))
_INT_BOUND = 10 ** MAX_INT_DIGITS
#: A surrogate escape in JSON text: only text holding one can decode into a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(Exception):
    """Raised inside the decoder's hooks, which cannot know where they are: `loads` then finds
    the field on its error path only, so the accepted path pays one call per object and number."""


def _finite(text: str) -> float:
    value = float(text)
    if value in _INFINITIES:  # "1e999"; NaN cannot come from a number's text
        raise _Refused
    return value


def _integer(text: str) -> int:
    # Checked before int(): Python's own limit (4,300 digits) would answer with its message.
    if len(text) > MAX_INT_DIGITS and len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused
    return int(text)


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


class _LongInteger:
    """An integer over MAX_INT_DIGITS, as the error path's re-parse marks it for the walk."""


def _marked_integer(text: str) -> Any:
    return _LongInteger() if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def _any_integer(text: str) -> int | float:
    # For reading what was refused: beyond Python's own limit an integer is only its magnitude.
    return int(text) if len(text) < 4000 else float(text)


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


_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL)


def _deep_path(text: str) -> list[str | int]:
    """The keys and indexes down to the first container nested deeper than MAX_DEPTH, for text
    _depth_ok refused: it stops there, so a 100k-deep array costs MAX_DEPTH steps, not 100k."""
    frames: list[list[Any]] = []  # per open container: [is an object, the key or index inside it]
    last = ""  # the last string read: the key, when a ':' follows
    position, size = 0, len(text)
    while position < size:
        ch = text[position]
        if ch == '"':
            match = _STRING_REST.match(text, position + 1)
            end = match.end() if match else size
            last = text[position + 1:end - 1]
            position = end
            continue
        if ch == ":" and frames and frames[-1][0]:
            try:
                frames[-1][1] = json.loads(f'"{last}"')
            except ValueError:
                frames[-1][1] = last
        elif ch == "," and frames and not frames[-1][0]:
            frames[-1][1] += 1
        elif ch in "[{":
            if len(frames) == MAX_DEPTH:
                break
            frames.append([ch == "{", "" if ch == "{" else 0])
        elif ch in "]}" and frames:
            frames.pop()
        position += 1
    return [label for _, label in frames]


# Built once: json.loads(..., hook=...) would build a decoder per call.
_STRICT = json.JSONDecoder(object_pairs_hook=_object, parse_float=_finite, parse_int=_integer,
                           parse_constant=_constant)
#: Takes what _STRICT refuses and marks it for _find (duplicate keys: the last one wins, marked;
#: long integers as _LongInteger; NaN and 1e999 as floats).
_MARKING = json.JSONDecoder(object_pairs_hook=_marking, parse_int=_marked_integer)
#: Reads what _STRICT refuses as plain values, for loads_lenient.
_LENIENT = json.JSONDecoder(object_pairs_hook=_marking, parse_int=_any_integer)


def checked_text(text: str | bytes, field: str = "body") -> str:
    """The checks every JSON body passes before any parser sees it: UTF-8 (a byte-order mark is
    dropped), not empty, nesting at most MAX_DEPTH. Raises InvalidPayload naming `field`, or for
    nesting the path down to where it is too deep."""
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
        raise _refused(field, _deep_path(text), TOO_DEEP)
    return text


def _may_hold_surrogates(text: str) -> bool:
    # One C search on the accepted path; the walk runs only for text that may decode into one.
    # (Raw surrogates can only be in text a caller decoded already, never in UTF-8 bytes.)
    return ("\\u" in text and _SURROGATE_ESCAPE.search(text) is not None) or (
        not text.isascii() and _SURROGATE.search(text) is not None)


def loads(text: str | bytes, field: str = "body") -> Any:
    """Parse JSON under the parsing rules (module doc) or raise InvalidPayload naming the field:
    `field` itself for text that is not JSON, the offending key's path for a number that is not
    finite or too long, text that is not Unicode or a key given twice (`field` as its prefix,
    except "body")."""
    text = checked_text(text, field)
    try:
        document = _STRICT.decode(text)
    except _Refused:
        pass
    except (ValueError, RecursionError) as exc:
        problem = str(exc).split(":")[0] if isinstance(exc, json.JSONDecodeError) else "not JSON"
        raise InvalidPayload("malformed JSON", [FieldProblem(field, problem[:200])]) from None
    else:
        if _may_hold_surrogates(text):
            refusal = _find(document, [], duplicates=False, parsed=True)
            if refusal is not None:
                raise _refused(field, *refusal)
        return document
    try:
        document = _MARKING.decode(text)
    except (ValueError, RecursionError):  # refused early, but broken further on as well
        raise InvalidPayload("malformed JSON", [FieldProblem(field, "not JSON")]) from None
    refusal = _find(document, [], duplicates=True, parsed=False)
    path, problem = refusal if refusal is not None else ([], NOT_FINITE)
    raise _refused(field, path, problem)


def loads_lenient(text: str | bytes) -> tuple[Any, bool]:
    """(document, exact) of JSON that may break the number and key rules: NaN and Infinity read
    as floats, `1e999` as infinity, the last of a repeated key winning. `exact` is False when a
    key was repeated, so the document is not all the text said (the first value is gone). For reading what was refused (the quarantine's scrubbing), never for accepting it;
    InvalidPayload for text that is not JSON at all."""
    text = checked_text(text)
    try:
        return _STRICT.decode(text), True
    except _Refused:
        pass
    except (ValueError, RecursionError):
        raise InvalidPayload("malformed JSON", [FieldProblem("body", "not JSON")]) from None
    try:
        document = _LENIENT.decode(text)
    except (ValueError, RecursionError):
        raise InvalidPayload("malformed JSON", [FieldProblem("body", "not JSON")]) from None
    # Only a repeated key loses what the text said (its first value): NaN, 1e999 and long
    # integers are read as what they are, and written back in their own place.
    return document, not _repeats_a_key(document)


def _repeats_a_key(value: Any) -> bool:
    """Whether any object in `value` (a document _LENIENT read) named a key twice. A loop over a
    stack: the document is bounded in depth by checked_text, but stays off the call stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Duplicates:
            return True
        if isinstance(item, dict):
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
    return False


def check_document(document: Any, field: str = "body") -> Any:
    """`document` (parsed elsewhere: an IoT rule's message) if it keeps the rules a parsed
    document can still be held to (finite numbers, integers of at most MAX_INT_DIGITS digits,
    Unicode text, depth), else InvalidPayload naming the first place that does not. Lambda's
    decoder reads `1e999` as infinity and `"\\ud800"` as a lone surrogate."""
    refusal = _find(document, [], duplicates=False, parsed=True)
    if refusal is not None:
        raise _refused(field, *refusal)
    return document


def non_finite_field(value: Any) -> str | None:
    """Where in `value` (a document about to be serialized) a number is not finite, or None."""
    refusal = _find(value, [], duplicates=False, parsed=False)
    return None if refusal is None else field_name("body", refusal[0])


def field_name(field: str, path: list[str | int]) -> str:
    """`data.user.pin`: the path under `field`, named as the vendor models name fields (a top-level
    key of the body bare, anything under another field with it as prefix)."""
    # Keys holding lone surrogates are named with the escape, so the name itself is storable text.
    parts = [str(p) if isinstance(p, int) or p.isascii() else p.encode("utf-8", "backslashreplace").decode()
             for p in path]
    if field != "body" or not parts or isinstance(path[0], int):
        parts.insert(0, field)
    name = ".".join(parts)
    return name if len(name) <= MAX_FIELD_NAME else name[:MAX_FIELD_NAME - 1] + "…"


_REASONS = {NOT_FINITE: "numbers must be finite", TOO_LONG: "number too long", NOT_UNICODE: "text is not valid Unicode",
            DUPLICATE_KEY: "duplicate key", TOO_DEEP: "JSON nested too deeply"}


def _refused(field: str, path: list[str | int], problem: str) -> InvalidPayload:
    return InvalidPayload(_REASONS[problem], [FieldProblem(field_name(field, path), problem)])


def _leaf_problem(value: Any, parsed: bool) -> str | None:
    """The rule a value that is not a container breaks, or None."""
    kind = type(value)
    if kind is float:
        return NOT_FINITE if value != value or value in _INFINITIES else None
    if kind is _LongInteger:
        return TOO_LONG
    if parsed and kind is int:
        return None if -_INT_BOUND < value < _INT_BOUND else TOO_LONG
    if parsed and kind is str:
        return NOT_UNICODE if not value.isascii() and _SURROGATE.search(value) else None
    return None


def _find(value: Any, path: list[str | int], duplicates: bool,
          parsed: bool) -> tuple[list[str | int], str] | None:
    """The first (document order) value breaking a rule, with its path. `duplicates`: keys marked
    by _MARKING; `parsed`: a document decoded elsewhere (or by _STRICT), whose integers and text
    are checked here rather than by hooks. Depth is bounded by checked_text for text; a document
    parsed elsewhere is refused below MAX_DEPTH."""
    if not isinstance(value, (dict, list)):
        problem = _leaf_problem(value, parsed)
        return None if problem is None else (path, problem)
    if len(path) >= MAX_DEPTH:
        return path, TOO_DEEP
    members: Any
    if isinstance(value, dict):
        if duplicates and type(value) is _Duplicates:
            return [*path, value.key], DUPLICATE_KEY
        members = value.items()
    else:
        members = enumerate(value)
    for key, item in members:
        if parsed and type(key) is str and not key.isascii() and _SURROGATE.search(key):
            return [*path, key], NOT_UNICODE
        kind = type(item)
        # Scalars are looked at here, without a call per value: the MQTT path walks every
        # message, and most of a record is short ASCII text and numbers.
        if kind is str:
            if parsed and not item.isascii() and _SURROGATE.search(item):
                return [*path, key], NOT_UNICODE
        elif kind is int:
            if parsed and not -_INT_BOUND < item < _INT_BOUND:
                return [*path, key], TOO_LONG
        elif kind is float:
            if item != item or item in _INFINITIES:
                return [*path, key], NOT_FINITE
        elif kind is not bool and item is not None:
            found = _find(item, [*path, key], duplicates, parsed)
            if found is not None:
                return found
    return None
