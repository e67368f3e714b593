"""The one reader of the `key=value,key=value` format the deployment's settings are written in
(RETENTION_DAYS, OFFLINE_AFTER, PERSONAL_DATA): each setting checks its own values."""

from __future__ import annotations

from collections.abc import Iterator


def pairs(spec: str | None) -> Iterator[tuple[str, str, str | None]]:
    """(entry, key, value) of every non-blank entry, key and value stripped; value None when the
    entry has no `=` (the caller names the entry in its own error)."""
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        yield part, key.strip(), value.strip() if sep else None
