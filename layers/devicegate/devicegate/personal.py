"""Personal data in access-control records: what a deployment stores of it (README "Personal data").

Face terminals and SenseLink send people's names, card and ID numbers, PIN codes, phone numbers,
face photos and body temperatures. The deployment chooses per category, with the template
parameter `PersonalData` (env PERSONAL_DATA), e.g. `id_number=mask,ic_number=mask,name=keep`:

- keep: stored as sent
- mask: stored with all but the last 4 characters replaced by `*` (shorter values: all `*`)
- drop: not stored at all

`pin` is always dropped, whatever the setting: a PIN is a credential, not a record. Nothing here
is ever logged (the pipeline logs ids, kinds and field names, never values).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from typing import Any

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


_VALUE = r'("(?:[^"\\]|\\.)*"|-?\d[\d.eE+\-]*)'


def scrub_text(raw: bytes, fields: dict[str, str], policy: dict[str, str]) -> bytes:
    """The policy applied to a payload that does not parse (kept in quarantine as text): every
    `"field": value` of a dropped category loses its value, of a masked one is masked, wherever
    it appears. Errs on the side of privacy (a group's "name" is masked with a person's)."""
    import json
    import re

    text = raw.decode("utf-8", "surrogateescape")
    for name, category in fields.items():
        action = policy[category]
        if action == "keep":
            continue
        pattern = re.compile(r'("' + re.escape(name) + r'"\s*:\s*)' + _VALUE)

        def replace(match: re.Match[str], action: str = action) -> str:
            if action == "drop":
                return match.group(1) + '""'
            token = match.group(2)
            try:
                value = json.loads(token) if token.startswith('"') else token
            except ValueError:
                value = token.strip('"')
            return match.group(1) + json.dumps(mask(value), ensure_ascii=False)

        text = pattern.sub(replace, text)
    return text.encode("utf-8", "surrogateescape")
