"""The deployment's settings the core and the vendors need (the personal-data policy, SenseLink's
time zone, the AI camera's default configuration), handed in by their one owner: `infra.settings`
installs itself here when imported. Nothing here, nor in the core or the vendors, reads the
environment. With nothing installed (the core alone, in a unit test) every setting is its default,
which is what an unset variable means."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_source: Callable[[], Any] | None = None


def install(source: Callable[[], Any]) -> None:
    """`source()` returns the deployment's settings (attributes named as below); it is called on
    every use, so it caches them itself (and forgets them with everything else it keeps)."""
    global _source
    _source = source


def setting(name: str, default: Any) -> Any:
    return default if _source is None else getattr(_source(), name)
