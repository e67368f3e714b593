"""How the query commands show things to a person: times in the machine's zone (--local-time),
a quarantined payload read top-down (quarantine --show), and outcomes as JSON (--json on replay
and redrive). The table stores times as ISO 8601 UTC and epoch seconds (TTL); JSON output keeps
them exactly as stored."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

#: A time as the table writes it: ISO 8601 UTC (`2025-02-07T07:26:30.000Z`).
_UTC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
#: Item fields holding epoch seconds (DynamoDB TTL), shown as times.
EPOCH_FIELDS = ("expiresAt",)


def local_time(value: str) -> str:
    """An ISO 8601 UTC time in the machine's zone, with its offset (`2025-02-07T16:26:30.000+09:00`);
    anything else as it is."""
    if not _UTC_TIME.match(value):
        return value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone().isoformat(timespec="milliseconds")


def epoch_time(seconds: Any, in_local_time: bool = False) -> str:
    moment = datetime.fromtimestamp(int(seconds), UTC)
    text = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    return local_time(text.replace("Z", ".000Z")) if in_local_time else text


def times_in_local_zone(value: Any) -> Any:
    """Every ISO 8601 UTC time in `value` (dicts and lists walked) in the machine's zone."""
    if isinstance(value, str):
        return local_time(value)
    if isinstance(value, dict):
        return {k: times_in_local_zone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [times_in_local_zone(v) for v in value]
    return value


def quarantine_lines(item: dict[str, Any], body: bytes | None, in_local_time: bool = False) -> list[str]:
    """A quarantined payload for a person: why it was refused and the fields at fault first, then
    where and when it came, then the payload (as the personal-data policy left it) pretty-printed."""
    shown = (lambda t: local_time(t) if in_local_time and isinstance(t, str) else t)
    lines = [f"{item.get('vendor')} payload {item.get('id') or str(item.get('pk', '')).rsplit('#', 1)[-1]}",
             f"reason:      {item.get('reason') or '-'}"]
    for problem in item.get("problems") or []:
        lines.append(f"  field {problem.get('field')}: {problem.get('problem')}")
    lines += [
        f"kind:        {item.get('kind') or '-'} (over {item.get('transport') or '-'})",
        f"route:       {json.dumps(item.get('route') or {}, ensure_ascii=False)}",
        f"first seen:  {shown(item.get('firstSeenAt')) or '-'}",
        f"last seen:   {shown(item.get('lastSeenAt')) or '-'} ({item.get('seenCount', 1)} times)",
    ]
    for name in EPOCH_FIELDS:
        if item.get(name) is not None:
            lines.append(f"{'expires:':<12} {epoch_time(item[name], in_local_time)}")
    size = item.get("bodySize")
    lines.append(f"payload:     {item.get('contentType') or '-'}, {size if size is not None else '?'} bytes"
                 + (f", kept at {item['bodyRef']}" if item.get("bodyRef") else ""))
    lines.append("")
    lines += payload_lines(body)
    return lines


def payload_lines(body: bytes | None) -> list[str]:
    if body is None:
        return ["(the payload is not readable here)"]
    try:
        return json.dumps(json.loads(body), ensure_ascii=False, indent=2).splitlines()
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        return body.decode("utf-8").splitlines() or [""]
    except UnicodeDecodeError:
        return [f"(binary, {len(body)} bytes, base64)", base64.b64encode(body).decode()]


def outcome_record(outcome: Any) -> dict[str, Any]:
    """A replay or redrive outcome as JSON: id, status, detail, fields (and the answer the sender
    would have got, where the vendor's answer has content)."""
    record = {"id": outcome.id, "status": outcome.status, "detail": outcome.detail or None,
              "fields": list(outcome.fields or [])}
    if getattr(outcome, "answer", None) is not None:
        record["answer"] = outcome.answer
    return record
