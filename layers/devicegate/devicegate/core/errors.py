"""Typed failures of the pipeline. Each maps to exactly one outcome, chosen in one place
(`pipeline.Outcome`), never by matching message text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldProblem:
    field: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


class IngestError(Exception):
    """Base of everything the pipeline answers on purpose."""


@dataclass
class InvalidPayload(IngestError):
    """The payload cannot become an event: it is answered 4xx and kept in quarantine."""

    reason: str
    problems: list[FieldProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return self.reason


@dataclass
class PayloadTooLarge(IngestError):
    size: int
    limit: int

    def __str__(self) -> str:
        return f"payload of {self.size} bytes is over the {self.limit}-byte limit"


class StorageUnavailable(IngestError):
    """A dependency (DynamoDB, S3, Secrets Manager) failed: the sender must retry."""


class ItemRefused(Exception):
    """DynamoDB refused the item itself (ValidationException: over 400 KB, a key too long): the
    same write fails on every retry, so the caller records it and goes on rather than retrying."""

    def __init__(self, what: str, code: str):
        super().__init__(f"{what} refused: {code}")
        self.what = what
        self.code = code
