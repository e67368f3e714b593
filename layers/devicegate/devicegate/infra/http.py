"""API Gateway HTTP API (payload 2.0) bodies and JSON answers, the same for every HTTP route: the
ingest webhooks (devicegate.ingest.http) and the commands API (devicegate.commands.http)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from devicegate.core.errors import FieldProblem, InvalidPayload

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def body_bytes(event: Mapping[str, Any], *, base64_fallback: bool = False, keep_unpaired: bool = False) -> bytes:
    """The request body as the client sent it: payload 2.0 carries it as text, or as base64 when
    it was not UTF-8 (`isBase64Encoded`).

    Raises InvalidPayload naming `body` for text holding a lone surrogate (valid in the event's
    JSON, but no byte sequence stands for it), and for a body flagged base64 that is not, unless
    `base64_fallback`: webhooks then take it as the text it is, so it is kept as sent and the
    vendor's adapter names what is wrong with it. With `keep_unpaired` a lone surrogate is kept
    as the bytes it would be (not UTF-8, so the pipeline refuses and quarantines it like any
    other broken body) instead of refused here, outside the pipeline."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            if not base64_fallback:
                raise InvalidPayload("body is not valid base64", [FieldProblem("body", "not base64")]) from None
    if not isinstance(body, str):
        return bytes(body)
    try:
        return body.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        if keep_unpaired:
            return body.encode("utf-8", "surrogatepass")
        raise InvalidPayload("body is not valid Unicode", [FieldProblem("body", "not UTF-8 text")]) from None


def json_text(body: Any) -> str:
    """Compact, and not ASCII-escaped: texts such as "Device not online！" read as they were sent."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def json_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    # Lower-case names, as payload 2.0 delivers a request's.
    return {"content-type": JSON_CONTENT_TYPE, **(headers or {})}


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A payload 2.0 Lambda answer with a JSON body."""
    return {"statusCode": status, "headers": json_headers(headers), "body": json_text(body),
            "isBase64Encoded": False}
