"""Inline images (base64 in JSON) -> bytes stored as S3 objects, with a clear error when broken.

What is read (docs/architecture.md "Parsing rules"): base64 in the standard or the URL-safe alphabet (one of
them, not both mixed), padded or not, with line breaks and a `data:image/...;base64,` prefix
tolerated. What decodes must be a JPEG or PNG image by its signature: anything else (HTML, SVG,
text, an archive) is refused naming the field, never stored as a "photo" that a browser showing
the bucket's objects would render as a page or run as a script.
"""

from __future__ import annotations

import base64
import binascii

from devicegate.core.errors import FieldProblem, InvalidPayload

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)
_URL_SAFE = str.maketrans("-_", "+/")
_BASE64 = "not valid base64 (expected a base64 JPEG)"


def decode_image(value: str | None, field: str) -> bytes | None:
    """Base64 text -> image bytes. Blank means "no picture" (the vendor's examples send " ").
    Anything that is not base64 of a JPEG or PNG is an invalid payload naming the field (the
    record is kept in quarantine)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.startswith("data:") and "," in text[:64]:
        text = text.split(",", 1)[1]
    if "\n" in text or "\r" in text or " " in text:
        text = "".join(text.split())
    if "-" in text or "_" in text:
        # The URL-safe alphabet (RFC 4648 §5), which some encoders use; mixed with the standard
        # one's "+" and "/" it is no encoding at all.
        if "+" in text or "/" in text:
            raise _not_base64(field, "mixes the standard and URL-safe base64 alphabets")
        text = text.translate(_URL_SAFE)
    # Padding is optional (encoders that leave it out are common); a length no padding can
    # complete is broken text.
    unpadded = text.rstrip("=")
    if len(unpadded) % 4 == 1:
        raise _not_base64(field, _BASE64)
    try:
        data = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _not_base64(field, _BASE64) from None
    if not data:
        return None
    if not any(data.startswith(signature) for signature, _, _ in _SIGNATURES):
        raise InvalidPayload(f"{field} is not an image",
                             [FieldProblem(field, "decoded content is not a JPEG or PNG image")])
    return data


def image_type(data: bytes) -> tuple[str, str]:
    """(content type, file extension) of bytes decode_image accepted, from their signature."""
    for signature, content_type, extension in _SIGNATURES:
        if data.startswith(signature):
            return content_type, extension
    raise ValueError("not an image decode_image accepts")


def _not_base64(field: str, problem: str) -> InvalidPayload:
    return InvalidPayload(f"{field} is not valid base64", [FieldProblem(field, problem)])
