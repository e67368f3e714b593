"""pydantic errors -> field problems a sender can act on (never echoing the input values)."""

from __future__ import annotations

from pydantic import ValidationError

from devicegate.errors import FieldProblem


def problems_from(error: ValidationError, prefix: str = "") -> list[FieldProblem]:
    problems = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        # Drop the union/validator plumbing pydantic puts in loc; keep field names and indexes.
        parts = [str(p) for p in item["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
        field = ".".join(([prefix] if prefix else []) + parts) or prefix or "body"
        problems.append(FieldProblem(field, item["msg"]))
    return problems
