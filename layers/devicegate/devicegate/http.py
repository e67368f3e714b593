"""API Gateway HTTP API (payload 2.0) <-> pipeline."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from devicegate.adapter import Answer
from devicegate.envelope import RawPush


class UndecodableBody(ValueError):
    pass


def http_push(vendor: str, event: dict[str, Any], token: str | None, route: dict[str, str]) -> RawPush:
    """Build the raw push from an HTTP API event. Header names arrive lower-cased."""
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
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        token=token,
        request_id=str(context.get("requestId", "")),
    )


def http_response(answer: Answer) -> dict[str, Any]:
    headers = {"content-type": "application/json; charset=utf-8", **answer.headers}
    return {
        "statusCode": answer.status,
        "headers": headers,
        "body": json.dumps(answer.body, ensure_ascii=False, separators=(",", ":")),
        "isBase64Encoded": False,
    }
