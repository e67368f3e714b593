"""Reusable field types for vendor models: the quirks vendors share, handled once.

Vendors send numbers as strings ("35.926264"), strings as numbers (device ids), "null" as text,
sentinel numbers for "none" (-1, -1000) and JSON documents inside JSON strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from devicegate import jsonbody
from devicegate.errors import InvalidPayload
from devicegate.timeutil import iso_utc, parse_time

_NULLS = {"", "null", "none", "nil", "undefined"}
# Exact spellings, so the check is one set lookup per value (this runs on every field of every record).
_NULL_FORMS = _NULLS | {"NULL", "Null", "None", "NONE", "Nil", "NIL", " ", "  ", "Undefined"}


def blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in _NULLS:
        return None
    return value


def blank_nulls(data: Any) -> Any:
    """"null", "" and friends -> None for every top-level value, in one pass (cheaper than a
    validator per field, and this runs for every record)."""
    if isinstance(data, dict):
        return {k: (None if type(v) is str and v in _NULL_FORMS else v) for k, v in data.items()}
    return data


class VendorModel(BaseModel):
    """Base of vendor record models: extra fields kept, text nulls are absent, numbers may be text."""

    # coerce_numbers_to_str: vendors send ids and serial numbers as numbers or text; a native
    # rule is much cheaper than a Python validator on every text field.
    # defer_build: a function builds the validators of the record kinds it meets, on first use,
    # instead of all of them during its cold start.
    # allow_inf_nan=False: NaN/Infinity are not numbers a device measures (and not JSON).
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True, defer_build=True,
                              allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _blank_nulls(cls, data: Any) -> Any:
        return blank_nulls(data)


def sentinel(*absent: float):
    """Validator turning a vendor's "no value" number (e.g. -1000 for temperature) into None."""

    def check(value: Any) -> Any:
        value = blank_to_none(value)
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return value  # let the field's own type report the problem
        return None if number in absent else value

    return BeforeValidator(check)


def json_in_string(value: Any) -> Any:
    """Decode a JSON document sent as a string; blank strings and "null" mean absent. The same
    limits as a body apply (depth, no NaN), so nothing inside a string can surprise later code."""
    value = blank_to_none(value)
    if isinstance(value, str):
        try:
            return jsonbody.loads(value, field="value")
        except InvalidPayload as exc:
            raise ValueError(f"expected a JSON document inside the string ({exc.reason})") from None
    return value


UtcTime = Annotated[datetime, BeforeValidator(parse_time), PlainSerializer(iso_utc, return_type=str)]
OptUtcTime = Annotated[datetime | None, BeforeValidator(lambda v: None if blank_to_none(v) is None else parse_time(v)),
                       PlainSerializer(lambda v: iso_utc(v) if v else None, return_type=str | None)]
# Inside a VendorModel, text nulls are already None: plain lax types parse "12" and "35.9".
OptText = str | None
OptInt = int | None
OptFloat = float | None
#: -1 means "none" in many vendor status fields.
MinusOneNone = Annotated[int | None, sentinel(-1)]
#: Identifiers that end up in keys, topics and URLs: printable, no delimiters, bounded.
# (Field(pattern=...) rather than StringConstraints: same rule, without importing pydantic.types.)
DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$"), BeforeValidator(
    lambda v: v.strip() if isinstance(v, str) else v)]
