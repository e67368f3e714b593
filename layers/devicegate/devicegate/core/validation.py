"""pydantic errors -> field problems a sender can act on (never echoing the input values), and
the small helpers every adapter uses around its models."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from devicegate.core.errors import FieldProblem, InvalidPayload
from devicegate.core.fields import NotANumber


def problems_from(error: ValidationError, prefix: str = "") -> list[FieldProblem]:
    problems = []
    # The input is read only to recognise numeric text the models refused (fields.NotANumber);
    # it is never put into a problem.
    for item in error.errors(include_url=False, include_input=True, include_context=False):
        # Drop the union/validator plumbing pydantic puts in loc; keep field names and indexes.
        parts = [str(p) for p in item["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
        field = ".".join(([prefix] if prefix else []) + parts) or prefix or "body"
        given = item.get("input")
        problems.append(FieldProblem(field, given.problem if isinstance(given, NotANumber) else item["msg"]))
    return problems


def validated(model: Any, document: Any, prefix: str, what: str) -> Any:
    """`document` (already parsed JSON) as `model`, or InvalidPayload naming the fields at fault
    (prefixed, e.g. "data.uuid")."""
    if not isinstance(document, dict):
        raise InvalidPayload("expected a JSON object", [FieldProblem(prefix or "body", "not a JSON object")])
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InvalidPayload(f"invalid {what}", problems_from(exc, prefix)) from None


def name_of(table: dict[int, str], code: int | None) -> str | None:
    """The name of `code` in a vendor's code table. None stays None; a code the table does not
    know is kept as "unknown (<code>)" rather than dropped."""
    if code is None:
        return None
    name = table.get(code)
    return f"unknown ({code})" if name is None else name


def pick(data: dict[str, Any], *names: str) -> dict[str, Any]:
    """The named fields that have a value (for state groups and summaries)."""
    return {n: data[n] for n in names if data.get(n) is not None}
