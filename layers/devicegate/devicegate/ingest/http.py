"""API Gateway HTTP API (payload 2.0) <-> pipeline."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from devicegate.core.adapter import Answer
from devicegate.core.envelope import RawPush


def http_push(vendor: str, event: dict[str, Any], token: str | None, route: dict[str, str]) -> RawPush:
    """Build the raw push from an HTTP API (payload 2.0) event."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raw = body.encode("utf-8", "surrogateescape")
    else:
        raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
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
    headers = {"content-type": "application/json; charset=utf-8", **answer.headers}
    return {
        "statusCode": answer.status,
        "headers": headers,
        "body": json.dumps(answer.body, ensure_ascii=False, separators=(",", ":")),
        "isBase64Encoded": False,
    }
