"""Mettax push bodies: where the `data` parameter is and how it is encoded.

Whether Mettax sends `data` as a JSON body field or a form field is not documented, so all of
these are read: a JSON body `{"data": "<json>"}` or `{"data": {...}}`, a form
(`application/x-www-form-urlencoded`, `data=<urlencoded json>`) and `multipart/form-data` with a
field named `data`; the content type decides, else the body is sniffed (`{`/`[` first: JSON, else
a form). `data` may hold an array of records, and a bare record body is accepted too.
"""

from __future__ import annotations

from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from typing import Any
from urllib.parse import parse_qs

from devicegate.core import jsonbody
from devicegate.core.envelope import RawPush
from devicegate.core.errors import FieldProblem, InvalidPayload

#: Records in one push's `data` array; more is refused (each record is a DynamoDB write).
MAX_BATCH = 500
#: Form fields in one body: Mettax sends one (`data`); the bound keeps parse_qs cheap on junk.
MAX_FORM_FIELDS = 64
#: Charsets accepted for form and multipart text (a Chinese vendor may declare GBK); JSON bodies
#: are UTF-8 (RFC 8259), and no other codec is ever looked up from a sender's header.
FORM_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "gbk", "gb2312", "gb18030"})


def records_of(push: RawPush) -> list[tuple[dict[str, Any], str]]:
    """The push's records, each with the prefix its field problems are named with ("data",
    "data.3" in a batch, "" for a bare record body)."""
    encoding, charset = body_encoding(push)
    if encoding == "document":
        value, prefix = _from_document(push.parsed())
    elif encoding == "form":
        value, prefix = _form_data(push.body, charset), "data"
    elif encoding == "multipart":
        value, prefix = _multipart_data(push.body, push.headers["content-type"]), "data"
    else:
        value, prefix = _from_document(jsonbody.loads(push.body))
    if value is None or value == "":
        raise InvalidPayload("data is empty", [FieldProblem("data", "empty")])
    if isinstance(value, str):
        value = jsonbody.loads(value, "data")  # the documented shape: JSON inside JSON
    if isinstance(value, dict):
        return [(value, prefix)]
    if isinstance(value, list):
        if not value:
            raise InvalidPayload("data holds no records", [FieldProblem("data", "empty array")])
        if len(value) > MAX_BATCH:
            raise InvalidPayload("too many records in one push",
                                 [FieldProblem("data", f"{len(value)} records, at most {MAX_BATCH}")])
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise InvalidPayload("expected a JSON object", [FieldProblem(f"data.{index}", "not a JSON object")])
        return [(item, f"data.{index}") for index, item in enumerate(value)]
    raise InvalidPayload("data is not a record", [FieldProblem("data", "expected a JSON object or array")])


def body_encoding(push: RawPush) -> tuple[str, str]:
    """How a push's body is read: ("document" (parsed by the transport) | "json" | "form" |
    "multipart", the declared charset). Quarantine reads a refused body the same way."""
    if push.document is not None:
        return "document", "utf-8"
    media, charset = _content_type(push.headers.get("content-type", ""))
    if media == "application/x-www-form-urlencoded":
        return "form", charset
    if media == "multipart/form-data":
        return "multipart", charset
    if media == "application/json" or media.endswith("+json") or _looks_like_json(push.body):
        return "json", charset
    # text/plain, octet-stream or no type: a body not starting like JSON is read as a form
    return "form", charset


def multipart_texts(body: bytes, content_type: str) -> list[tuple[str, str]] | None:
    """(name, text) of every field of a multipart body, or None when one cannot be read as text
    (a nested multipart, a charset not read, bytes that are not text in it)."""
    if "\r" in content_type or "\n" in content_type or not content_type.isascii():
        return None
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return None
    fields = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        charset = (part.get_content_charset() or "utf-8").lower()
        if not isinstance(payload, bytes) or charset not in FORM_CHARSETS:
            return None
        try:
            text = payload.decode(charset)
        except UnicodeDecodeError:
            return None
        name = part.get_param("name", header="content-disposition")
        fields.append((collapse_rfc2231_value(name) if name is not None else "", text))
    return fields


def _from_document(document: Any) -> tuple[Any, str]:
    if not isinstance(document, dict):
        raise InvalidPayload("expected a JSON object", [FieldProblem("body", "not a JSON object")])
    if "data" in document:
        return document["data"], "data"
    if "deviceId" in document:  # a bare record, for senders (and tools) that skip the wrapper
        return document, ""
    raise InvalidPayload("no data parameter", [FieldProblem("data", "missing")])


def _content_type(header: str) -> tuple[str, str]:
    """(media type, charset) of a Content-Type header, parsed as email does (quoted parameters)."""
    if not header.strip():
        return "", "utf-8"
    message = Message()
    message["content-type"] = header
    charset = (message.get_content_charset() or "utf-8").lower()
    return message.get_content_type(), charset


def _looks_like_json(body: bytes) -> bool:
    return body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"[")


def _form_data(body: bytes, charset: str) -> str:
    charset = _allowed_charset(charset)
    try:
        text = body.decode(charset)
    except UnicodeDecodeError:
        raise InvalidPayload(f"body is not {charset} text", [FieldProblem("body", f"not {charset}")]) from None
    try:
        fields = parse_qs(text, keep_blank_values=True, encoding=charset, errors="strict",
                          max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:  # a percent-encoded byte sequence; before ValueError, its base class
        raise InvalidPayload(f"form field is not {charset} text", [FieldProblem("data", f"not {charset}")]) from None
    except ValueError:
        raise InvalidPayload("too many form fields",
                             [FieldProblem("body", f"more than {MAX_FORM_FIELDS} fields")]) from None
    return _one_value(fields.get("data") or [])


def _multipart_data(body: bytes, content_type: str) -> str:
    if "\r" in content_type or "\n" in content_type or not content_type.isascii():
        raise InvalidPayload("malformed content type", [FieldProblem("content-type", "not one ASCII line")])
    # The email parser reads MIME multipart (stdlib; cgi is gone in 3.13): the request's content
    # type becomes the header of a message whose body is the request body.
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise InvalidPayload("multipart body without parts", [FieldProblem("body", "no boundary or no parts")])
    values = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None or collapse_rfc2231_value(name) != "data":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):  # a nested multipart: not a field value
            raise InvalidPayload("data is not a form field", [FieldProblem("data", "not a text field")])
        charset = _allowed_charset((part.get_content_charset() or "utf-8").lower())
        try:
            values.append(payload.decode(charset))
        except UnicodeDecodeError:
            raise InvalidPayload(f"data is not {charset} text", [FieldProblem("data", f"not {charset}")]) from None
    return _one_value(values)


def _allowed_charset(charset: str) -> str:
    if charset not in FORM_CHARSETS:
        raise InvalidPayload("unsupported charset",
                             [FieldProblem("content-type", f"charset {charset[:32]!r} not read")])
    return charset


def _one_value(values: list[str]) -> str:
    if not values:
        raise InvalidPayload("no data parameter", [FieldProblem("data", "missing")])
    if len(values) > 1:
        # Which one would be the record? Refused (and kept in quarantine) rather than guessed.
        raise InvalidPayload("data sent more than once", [FieldProblem("data", f"sent {len(values)} times")])
    return values[0]
