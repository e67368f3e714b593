"""What an execution environment keeps for its life (settings, clients, adapters, pipelines,
services) is cached with `kept`, which registers the cache where it is defined; `reset()`
forgets every one of them at once (a test is a new environment). No list is kept by hand."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_KEPT: list[Any] = []


def kept(function: F) -> F:
    """functools.cache, registered for `reset()`."""
    cached = cache(function)
    _KEPT.append(cached)
    return cached  # type: ignore[return-value]


def reset() -> None:
    """A fresh execution environment: every kept value is built again on its next use."""
    for cached in _KEPT:
        cached.cache_clear()
