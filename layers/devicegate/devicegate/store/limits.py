"""DynamoDB's size limits, counted as DynamoDB counts them (UTF-8 bytes), and the one way a value
copied from a record into another item (a device's state group, an alarm's details, a command's
answer) is kept within a budget.

An event item holds its record whole (offloaded to S3 beyond MAX_INLINE_BYTES); every other item
copies only parts of records, and those parts may hold free text of any length (a card number
field, an alarm description, a command's error text, 240,000 characters each if a sender wants).
Without a bound, two such records would push a device's one state item past 400 KB, and its
write would fail on every retry of the batch, holding back the other devices' events with it.
So a copied value keeps its short fields as they are and has its long text cut, and the item
says it was cut; the full record stays in the event named beside it.
"""

from __future__ import annotations

import json
from typing import Any

#: DynamoDB's item limit (attribute names and values, UTF-8).
MAX_ITEM_BYTES = 400 * 1024
#: An event's record above this many bytes goes to S3 and the item keeps a reference: room is
#: left for the keys and the envelope's other attributes.
MAX_INLINE_BYTES = 350_000
#: One copied value (a state group, an alarm's details, a command's answer), as JSON.
MAX_COPIED_BYTES = 2048
#: Characters kept of a text that does not fit; the rest is cut, marked with an ellipsis.
MAX_COPIED_TEXT = 256
#: Items kept of a list that does not fit.
MAX_COPIED_LIST = 16
#: State groups of one device: groups named by a record's content (a Jointech slave lock's id)
#: could otherwise grow without end. Past it the group updated longest ago is dropped.
MAX_STATE_GROUPS = 100

ELLIPSIS = "…"


def utf8_size(text: str) -> int:
    """Bytes of `text` as DynamoDB counts them (a lone surrogate, which a stored item never
    holds, is counted as its three bytes rather than failing)."""
    return len(text.encode("utf-8", "surrogatepass"))


def fits_inline(text: str, limit: int = MAX_INLINE_BYTES) -> bool:
    """Whether `text` is at most `limit` UTF-8 bytes; a character is at most 4 bytes, so short
    text is decided without encoding it."""
    if len(text) * 4 <= limit:
        return True
    return len(text) <= limit and utf8_size(text) <= limit


def _size(value: Any) -> int:
    return utf8_size(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


def bounded(value: dict[str, Any], budget: int = MAX_COPIED_BYTES) -> tuple[dict[str, Any], bool]:
    """(`value` within `budget` bytes of JSON, whether anything was cut). Short values come back
    unchanged; otherwise long texts are cut to MAX_COPIED_TEXT characters and long lists to
    MAX_COPIED_LIST items, and if that is still too much, fields are kept in order while they
    fit (the first fields of a group are what it is about: a code before its description)."""
    if _size(value) <= budget:
        return value, False
    cut = {name: _cut(item) for name, item in value.items()}
    if _size(cut) <= budget:
        return cut, True
    kept: dict[str, Any] = {}
    used = 2  # the braces
    for name, item in cut.items():
        size = _size({name: item}) - 1  # the field and its comma
        if used + size > budget:
            continue
        kept[name] = item
        used += size
    return kept, True


def _cut(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_COPIED_TEXT else value[:MAX_COPIED_TEXT] + ELLIPSIS
    if isinstance(value, list):
        return [_cut(item) for item in value[:MAX_COPIED_LIST]]
    if isinstance(value, dict):
        return {name: _cut(item) for name, item in list(value.items())[:MAX_COPIED_LIST]}
    return value
