"""Inline images (base64 in JSON) -> bytes stored as S3 objects, with a clear error when broken."""

from __future__ import annotations

import base64
import binascii

from devicegate.core.errors import FieldProblem, InvalidPayload

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)


def decode_image(value: str | None, field: str) -> bytes | None:
    """Base64 text -> image bytes. Blank means "no picture" (the vendor's examples send " ").
    A `data:image/jpeg;base64,` prefix and line breaks are tolerated; anything that is not
    base64 is an invalid payload naming the field (the record is kept in quarantine)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.startswith("data:") and "," in text[:64]:
        text = text.split(",", 1)[1]
    if "\n" in text or "\r" in text or " " in text:
        text = "".join(text.split())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPayload(f"{field} is not valid base64",
                             [FieldProblem(field, "not valid base64 (expected a base64 JPEG)")]) from None
    if not data:
        return None
    return data


def image_type(data: bytes) -> tuple[str, str]:
    """(content type, file extension) from the bytes' signature; the vendors send JPEG."""
    for signature, content_type, extension in _SIGNATURES:
        if data.startswith(signature):
            return content_type, extension
    # Not a picture we know: kept as sent rather than refused, with a type that says so.
    return "application/octet-stream", "bin"
