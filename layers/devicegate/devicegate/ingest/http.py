"""API Gateway HTTP API (payload 2.0) <-> pipeline."""

from __future__ import annotations

from typing import Any

from devicegate.core.adapter import Answer
from devicegate.core.envelope import RawPush
from devicegate.infra.http import body_bytes, json_response


def http_push(vendor: str, event: dict[str, Any], token: str | None, route: dict[str, str]) -> RawPush:
    """Build the raw push from an HTTP API (payload 2.0) event."""
    raw = body_bytes(event, base64_fallback=True, keep_unpaired=True)
    context = event.get("requestContext") or {}
    return RawPush(
        vendor=vendor,
        transport="http",
        body=raw,
        route=route,
        # Payload 2.0 delivers header names lower-cased already.
        headers=event.get("headers") or {},
        token=token,
        request_id=str(context.get("requestId", "")),
    )


_SERIALIZED: dict[int, dict[str, Any]] = {}


def http_response(answer: Answer) -> dict[str, Any]:
    if answer.constant:
        # Constant answers live as long as the module, so their id is a safe cache key.
        cached = _SERIALIZED.get(id(answer))
        if cached is None:
            cached = _SERIALIZED[id(answer)] = _serialize(answer)
        return dict(cached)
    return _serialize(answer)


def _serialize(answer: Answer) -> dict[str, Any]:
    return json_response(answer.status, answer.body, answer.headers)
