"""Personal data in access-control records: what a deployment stores of it (README "Personal data").

Face terminals and SenseLink send people's names, card and ID numbers, PIN codes, phone numbers,
face photos and body temperatures. The deployment chooses per category, with the template
parameter `PersonalData` (env PERSONAL_DATA), e.g. `id_number=mask,ic_number=mask,name=keep`:

- keep: stored as sent
- mask: stored with all but the last 4 characters replaced by `*` (shorter values: all `*`)
- drop: not stored at all

`pin` is always dropped, whatever the setting: a PIN is a credential, not a record. Nothing here
is ever logged (the pipeline logs ids, kinds and field names, never values). The same policy
applies to payloads kept in quarantine, whatever their shape (`scrub_payload`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
from collections.abc import Iterable
from functools import cache
from typing import Any

from devicegate.core import jsonbody
from devicegate.core.errors import InvalidPayload

#: Categories a vendor maps its fields to. `photo`: face pictures (inline images become S3
#: objects, image ids/URLs stay references); `temperature`: body temperature.
CATEGORIES = ("name", "user_id", "id_number", "ic_number", "job_number", "mobile", "remark", "pin", "photo",
              "temperature")
ACTIONS = ("keep", "mask", "drop")
DEFAULT_SPEC = "id_number=mask,ic_number=mask"
_ALWAYS = {"pin": "drop"}


class PolicyError(ValueError):
    pass


def parse_policy(spec: str | None) -> dict[str, str]:
    """`id_number=mask,name=keep` -> {category: action} for every category (default keep)."""
    policy = dict.fromkeys(CATEGORIES, "keep")
    for part in (spec if spec is not None else DEFAULT_SPEC).split(","):
        part = part.strip()
        if not part:
            continue
        category, sep, action = (p.strip() for p in part.partition("="))
        if not sep or category not in CATEGORIES or action not in ACTIONS:
            raise PolicyError(f"bad personal data entry {part!r}: expected one of {', '.join(CATEGORIES)}"
                              f" = {'|'.join(ACTIONS)}")
        policy[category] = action
    policy.update(_ALWAYS)
    return policy


@cache
def deployment_policy() -> dict[str, str]:
    return parse_policy(os.environ.get("PERSONAL_DATA"))


def mask(value: Any) -> Any:
    """All but the last 4 characters hidden; enough for a person to recognise their own card."""
    if value is None:
        return None
    text = str(value)
    if not text:
        return text
    if len(text) <= 4:
        return "*" * len(text)
    return "*" * (len(text) - 4) + text[-4:]


def apply(record: dict[str, Any], fields: dict[str, str], policy: dict[str, str]) -> None:
    """Apply the policy in place to `record`'s fields; `fields` maps field name -> category."""
    for name, category in fields.items():
        if name not in record:
            continue
        action = policy[category]
        if action == "drop":
            del record[name]
        elif action == "mask" and record[name] not in (None, ""):
            record[name] = mask(record[name])


def dropped(fields: dict[str, str], policy: dict[str, str]) -> Iterable[str]:
    return [name for name, category in fields.items() if policy[category] == "drop"]


#: JSON inside a string inside a string...: levels of it read before the rest is summarized.
MAX_NESTED_JSON = 4
#: Characters of the summary's `shape` (it shows where a broken payload breaks, not its content).
MAX_SHAPE = 2048
_SHAPE = str.maketrans({**{c: "a" for c in string.ascii_letters}, **{c: "0" for c in string.digits}})
_NOT_ASCII = re.compile(r"[^\x20-\x7e\n\r\t]")
# A string opening like JSON and holding key/value punctuation: if it does not parse, it may be a
# broken record with someone's PIN in it, so it is summarized like an unreadable payload.
_KEY_VALUE = re.compile(r"[:=]")


def scrub_payload(raw: bytes, fields: dict[str, str], policy: dict[str, str]) -> bytes:
    """A rejected payload as quarantine may keep it: the policy applied to whatever shape it has.

    JSON is parsed (leniently: NaN, 1e999 and repeated keys do not stop the reading, as they are
    what got it refused) and `fields` (field name -> category) are dropped or masked wherever
    they appear: at any depth, in lists, and inside strings holding JSON (at any level, up to
    MAX_NESTED_JSON), which are rewritten as JSON strings again. Keys are compared decoded, so
    `"\\u0070in"` is `pin`. It errs on the side of privacy: a group's `name` is masked with a
    person's. A payload with nothing to scrub is kept byte for byte; otherwise it is re-serialized
    (same structure, compact), so a replay stores what ingest would have.

    Text that does not parse cannot be told apart into personal and other data (a regex cannot
    know which quote closes a field, nor read escapes), so none of it is kept: only `redacted`'s
    summary, which holds the original's SHA-256 (to match it against the sender's copy), its
    size and its shape. The same goes for a string that opens like JSON, holds key/value
    punctuation and does not parse. Never raises: a scrubbing failure keeps the summary.
    """
    if not raw.strip():
        return raw
    actions = {name: policy[category] for name, category in fields.items() if policy[category] != "keep"}
    try:
        try:
            document, exact = jsonbody.loads_lenient(raw)
        except InvalidPayload:
            return _dumps(redacted(raw))
        scrubbed = _scrub(document, actions, MAX_NESTED_JSON)
        if exact and scrubbed == document:
            return raw
        return _dumps(scrubbed)
    except Exception as exc:  # a bug here must not keep a PIN: the summary holds none
        from devicegate.infra.observability import logger

        logger.error("quarantine scrubbing failed; kept a summary only", extra={"error_type": type(exc).__name__})
        return _dumps(redacted(raw))


def redacted(raw: bytes) -> dict[str, Any]:
    """What quarantine keeps of a payload it cannot read: nothing of its content.

    `sha256` (hex) and `bytes` identify the original (the sender, or a capture, has it); `shape`
    is its first MAX_SHAPE characters with every letter made `a`, every digit `0` and every other
    non-ASCII or control character `?`, punctuation and blanks kept: enough to see a truncated
    body or a missing comma, nothing of a name, number or PIN but its length. It is a JSON
    object, so a replay reads it and finds it still invalid."""
    text = raw[:MAX_SHAPE * 4].decode("utf-8", "replace")
    shape = _NOT_ASCII.sub("?", text[:MAX_SHAPE].translate(_SHAPE))
    return {"redacted": "not JSON: its personal data cannot be told apart, so only this summary is kept",
            "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
            "shape": shape + ("…" if len(text) > MAX_SHAPE else "")}


def _scrub(value: Any, actions: dict[str, str], levels: int) -> Any:
    """`value` with the policy applied everywhere in it (a new value; the input is not changed)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            action = actions.get(key)
            if action == "drop":
                continue
            out[key] = _masked(item) if action == "mask" else _scrub(item, actions, levels)
        return out
    if isinstance(value, list):
        return [_scrub(item, actions, levels) for item in value]
    if isinstance(value, str):
        return _scrub_string(value, actions, levels)
    return value


def _scrub_string(text: str, actions: dict[str, str], levels: int) -> str:
    opening = text.lstrip()[:1]
    if opening not in ("{", "[", '"'):
        return text
    if levels == 0:
        return json.dumps(redacted(text.encode("utf-8", "surrogatepass")), ensure_ascii=False)
    try:
        inner, exact = jsonbody.loads_lenient(text)
    except InvalidPayload:
        if not _KEY_VALUE.search(text):
            return text  # text, not a record: "[VIP] guest", a quoted word
        return json.dumps(redacted(text.encode("utf-8", "surrogatepass")), ensure_ascii=False)
    if not isinstance(inner, (dict, list, str)):
        return text
    scrubbed = _scrub(inner, actions, levels - 1)
    if exact and scrubbed == inner:
        return text
    return _dumps(scrubbed).decode("utf-8", "surrogatepass")


def _masked(value: Any) -> Any:
    # A masked field holding a structure has each of its values masked (an ID number in a list).
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value if value in (None, "") else mask(value)


def _dumps(value: Any) -> bytes:
    # allow_nan: the refused NaN/Infinity stay as they came, so a replay refuses them again.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): kept as its escape
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=True).encode()
