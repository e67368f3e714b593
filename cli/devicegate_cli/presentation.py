"""How the query commands show things to a person: times in the machine's zone (--local-time),
a quarantined payload read top-down (quarantine --show), outcomes as JSON (--json on replay
and redrive) and a long run's progress on stderr. The table stores times as ISO 8601 UTC and epoch seconds (TTL); JSON output keeps
them exactly as stored."""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

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


class Progress:
    """A long run's running count on stderr (replay, redrive), where stdout is the report.

    On a terminal, one line rewritten in place at most five times a second; elsewhere (a log, a
    pipe) a line every `every` seconds, so a log shows the run moving without a second line per
    item. When stdout is the same terminal and prints a line per item, those lines are the
    progress and nothing is added. `done()` always ends with the totals and the time taken."""

    def __init__(self, what: str, *, stream: TextIO | None = None, every: float = 10.0,
                 per_item_on_terminal: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.stream, self.clock = what, stream or sys.stderr, clock
        self.live = _is_terminal(self.stream)
        self.quiet = self.live and per_item_on_terminal and _is_terminal(sys.stdout)
        self.every = 0.2 if self.live else every
        self.counts: Counter[str] = Counter()
        self.started = self.last = clock()

    def add(self, status: str) -> None:
        self.counts[status] += 1
        now = self.clock()
        if not self.quiet and now - self.last >= self.every:
            self.last = now
            self._write(f"{self.what}: {self._tally()} so far", final=False)

    def done(self) -> None:
        elapsed = self.clock() - self.started
        self._write(f"{self.what}: {self._tally()} in {elapsed:.1f} s", final=True)

    def _tally(self) -> str:
        total = sum(self.counts.values())
        each = ", ".join(f"{count} {status}" for status, count in sorted(self.counts.items()))
        return f"{total} item{'' if total == 1 else 's'} done" + (f" ({each})" if each else "")

    def _write(self, line: str, *, final: bool) -> None:
        if self.live:
            # \r and clear-to-end: the in-place line; the last one stays, ended by a newline.
            self.stream.write(f"\r\x1b[K{line}" + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False
