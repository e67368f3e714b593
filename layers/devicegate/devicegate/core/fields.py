"""Reusable field types for vendor models: the quirks vendors share, handled once.

Vendors send numbers as strings ("35.926264"), strings as numbers (device ids), "null" as text,
sentinel numbers for "none" (-1, -1000), JSON documents inside JSON strings, and times as ISO
text, epoch seconds or epoch milliseconds (one type each: the field says which).
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator

from devicegate.core import jsonbody
from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.timeutil import EpochUnit, from_epoch, iso_utc, parse_time

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


# --- numbers sent as text ------------------------------------------------------------------------
# Vendors send numbers as text ("35.926264", "0", "-1000.0"). Such text must be a JSON number,
# exactly (docs/architecture.md "Parsing rules"): pydantic's lax parsing alone would also take
# "12_000", " 1_0 ", "+5" and "007", which no JSON number spells, so one record would mean
# different things to different readers. A text integer field takes an integer (at most
# jsonbody.MAX_INT_DIGITS digits: "1.0" and "1e5" say the sender is confused about the field), a
# text number field any JSON number.
INT_TEXT = re.compile(rf"-?(?:0|[1-9][0-9]{{0,{jsonbody.MAX_INT_DIGITS - 1}}})")
NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
INT_TEXT_PROBLEM = (f"an integer sent as text must be written as a JSON integer (digits, an optional "
                    f"leading '-', at most {jsonbody.MAX_INT_DIGITS} digits, no blanks, '_', '+' or leading zeros)")
NUMBER_TEXT_PROBLEM = ("a number sent as text must be written as a JSON number (e.g. 35.926264 or -1000.0: "
                       "no blanks, '_', '+', hexadecimal or leading zeros)")


class NotANumber:
    """Stands in for numeric text that breaks the rule above: the field's own type refuses it, so
    the refusal names the field, and core.validation says why in these words. The accepted path
    pays a dict lookup per text value and a pattern match per numeric one, no call."""

    __slots__ = ("problem",)

    def __init__(self, problem: str):
        self.problem = problem


#: Per vendor model: the text pattern of each numeric field, by every key the field is read from.
_NUMBER_FIELDS: dict[type, dict[str, tuple[re.Pattern[str], str]]] = {}


def _numeric_pattern(annotation: Any) -> tuple[re.Pattern[str], str] | None:
    members = set(get_args(annotation)) if get_origin(annotation) in (Union, types.UnionType) else {annotation}
    members.discard(type(None))
    # `EpochTime | None`: a member may carry its own validators.
    members = {get_args(member)[0] if get_origin(member) is Annotated else member for member in members}
    if members == {int}:
        return INT_TEXT, INT_TEXT_PROBLEM
    if members and members <= {int, float}:
        return NUMBER_TEXT, NUMBER_TEXT_PROBLEM
    return None


def _number_fields(model: type[BaseModel]) -> dict[str, tuple[re.Pattern[str], str]]:
    found = {}
    for name, info in model.model_fields.items():
        pattern = _numeric_pattern(info.annotation)
        if pattern is None:
            continue
        keys = {name}
        alias = info.validation_alias or info.alias
        if isinstance(alias, str):
            keys.add(alias)
        elif alias is not None:
            keys.update(choice for choice in getattr(alias, "choices", ()) if isinstance(choice, str))
        found.update(dict.fromkeys(keys, pattern))
    return found


class VendorModel(BaseModel):
    """Base of vendor record models: extra fields kept, text nulls are absent, numbers may be text
    (written as JSON numbers)."""

    # coerce_numbers_to_str: vendors send ids and serial numbers as numbers or text; a native
    # rule is much cheaper than a Python validator on every text field.
    # defer_build: a function builds the validators of the record kinds it meets, on first use,
    # instead of all of them during its cold start.
    # allow_inf_nan=False: NaN/Infinity are not numbers a device measures (and not JSON).
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True, defer_build=True,
                              allow_inf_nan=False)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _NUMBER_FIELDS[cls] = _number_fields(cls)

    @model_validator(mode="before")
    @classmethod
    def _blank_nulls(cls, data: Any) -> Any:
        # blank_nulls and the numeric text rule in the same one pass over the record's values.
        if not isinstance(data, dict):
            return data
        numbers = _NUMBER_FIELDS.get(cls)
        if not numbers:
            return blank_nulls(data)
        # Inline, not a call per value: most text values are not numeric fields.
        return {k: v if type(v) is not str
                else None if v in _NULL_FORMS
                else v if (rule := numbers.get(k)) is None or rule[0].fullmatch(v)
                else NotANumber(rule[1])
                for k, v in data.items()}


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
            # The field is the string's (pydantic names it); where inside it goes in the text.
            inner = exc.problems[0].field.removeprefix("value").lstrip(".") if exc.problems else ""
            where = f" at {inner}" if inner else ""
            raise ValueError(f"expected a JSON document inside the string ({exc.reason}{where})") from None
    return value


# --- times: one type per documented form (core/timeutil.py says why a number's size picks nothing)

def _optional(read: Callable[[Any], datetime]) -> Callable[[Any], datetime | None]:
    return lambda value: None if blank_to_none(value) is None else read(value)


def _epoch(unit: EpochUnit) -> Callable[[Any], datetime]:
    return lambda value: from_epoch(value, unit)


_AS_TEXT = PlainSerializer(iso_utc, return_type=str)
_OPT_AS_TEXT = PlainSerializer(lambda v: iso_utc(v) if v else None, return_type=str | None)
#: ISO 8601 text (Z, +hh, +hh:mm; without an offset: UTC). A number is refused.
IsoTime = Annotated[datetime, BeforeValidator(parse_time), _AS_TEXT]
OptIsoTime = Annotated[datetime | None, BeforeValidator(_optional(parse_time)), _OPT_AS_TEXT]
#: Epoch seconds, a number or its digits (a 13-digit millisecond value is beyond the year 9999: refused).
EpochSeconds = Annotated[datetime, BeforeValidator(_epoch("s")), _AS_TEXT]
OptEpochSeconds = Annotated[datetime | None, BeforeValidator(_optional(_epoch("s"))), _OPT_AS_TEXT]
#: Epoch milliseconds, a number or its digits.
EpochMillis = Annotated[datetime, BeforeValidator(_epoch("ms")), _AS_TEXT]
OptEpochMillis = Annotated[datetime | None, BeforeValidator(_optional(_epoch("ms"))), _OPT_AS_TEXT]
# Inside a VendorModel, text nulls are already None: plain lax types parse "12" and "35.9".
OptText = str | None
OptInt = int | None
OptFloat = float | None
#: -1 means "none" in many vendor status fields.
MinusOneNone = Annotated[int | None, sentinel(-1)]


# --- device and source ids ---------------------------------------------------------------------

@dataclass(frozen=True)
class IdRule:
    """The one rule for every device and source id (they become table keys, S3 path segments, MQTT
    topic levels, the CLI's device list): trimmed, then 1 to `max_length` characters of `chars`
    (printable ASCII at most: no blanks, no control characters, no newline at the end), and never
    dots alone (`.`, `..` are path segments). A number is taken as its text only when it is whole:
    `1e999` would be the device "inf", `8022300001.0` a second device beside `8022300001`.

    Vendors differ only in the characters (and length) they may use, never in the rule."""

    chars: str  # a regex character-class body
    description: str  # the characters in words, for the error
    max_length: int = 64
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", re.compile(f"[{self.chars}]{{1,{self.max_length}}}"))

    @property
    def problem(self) -> str:
        return f"1 to {self.max_length} {self.description}, not only dots"

    def check(self, value: Any) -> str:
        """The id as it is stored, or ValueError saying what an id must be."""
        if type(value) is not str:
            if type(value) is int:
                value = str(value)
            elif isinstance(value, float):
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError(jsonbody.NOT_FINITE)
                raise ValueError("a number sent as an id must be whole")
            else:
                raise ValueError(f"expected text: {self.problem}")
        text = value.strip()
        # fullmatch: `$` would let a trailing newline through.
        if not self._pattern.fullmatch(text) or not text.strip("."):
            raise ValueError(self.problem)
        return text

    def require(self, value: Any, name: str) -> str:
        """check() for ids read outside a model (headers, URL parameters): InvalidPayload naming it."""
        try:
            return self.check(value)
        except ValueError as exc:
            raise InvalidPayload(f"{name} is not usable as an id", [FieldProblem(name, str(exc))]) from None

    def accepts(self, value: str) -> bool:
        """The value is an id as it stands (nothing to trim)."""
        try:
            return self.check(value) == value
        except ValueError:
            return False

    def validator(self) -> BeforeValidator:
        """The check as a model field's validator, `Annotated[str, RULE.validator()]`: one Python
        call, before pydantic's number-to-text coercion (which would make inf "inf" and 1.0 "1.0").
        Spelt out as an Annotated alias at each use, not returned whole, so type checkers see a
        type (`str`) where a call would give them only a value."""
        return BeforeValidator(self.check)


#: Ids that also name MQTT topic levels, URL parameters and bridge names (Jointech, face terminals).
TOPIC_ID = IdRule(r"A-Za-z0-9_.:\-", "letters, digits, '_', '.', ':' or '-'")
#: Ids that only become keys and paths (percent-encoded there): Mettax, AI camera.
PRINTABLE_ID = IdRule(r"\x21-\x7e", "printable ASCII characters without blanks")
#: SenseLink LDIDs are longer ("SPSP-" and 32 hex digits and more).
LONG_PRINTABLE_ID = IdRule(r"\x21-\x7e", "printable ASCII characters without blanks", max_length=128)

#: Jointech asset ids, face-terminal serials.
DeviceId = Annotated[str, TOPIC_ID.validator()]
