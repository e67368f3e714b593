"""Environment parsed once into a typed settings object (the template sets these variables)."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, field_validator


def parse_retention(spec: str) -> dict[str, int]:
    """`default=90,location=30,jointech.alarm=365` -> {"default": 90, "location": 30, ...}."""
    table: dict[str, int] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, days = part.partition("=")
        if not sep or not days.strip().isdigit() or int(days) < 1:
            raise ValueError(f"bad retention entry {part!r}: expected kind=days with days >= 1")
        table[key.strip()] = int(days)
    table.setdefault("default", 90)
    return table


class Settings(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built when first read, not during imports

    table_name: str = Field(alias="TABLE_NAME")
    payload_bucket: str = Field(default="", alias="PAYLOAD_BUCKET")
    retention_days: dict[str, int] = Field(default_factory=lambda: {"default": 90}, alias="RETENTION_DAYS")
    quarantine_retention_days: int = Field(default=30, alias="QUARANTINE_RETENTION_DAYS", ge=1)
    outbox_queue_url: str = Field(default="", alias="OUTBOX_QUEUE_URL")
    outbox_failure_queue_url: str = Field(default="", alias="OUTBOX_FAILURE_QUEUE_URL")
    #: Set only with fan-out (template parameter ConsumerApps): the outbox publishes to this topic.
    outbox_topic_arn: str = Field(default="", alias="OUTBOX_TOPIC_ARN")

    @field_validator("retention_days", mode="before")
    @classmethod
    def _retention(cls, value: object) -> object:
        return parse_retention(value) if isinstance(value, str) else value

    def retention_for(self, vendor: str, kind: str) -> int:
        table = self.retention_days
        return table.get(f"{vendor}.{kind}") or table.get(kind) or table["default"]


@cache
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))


def vendor_env(vendor: str, name: str, default: str = "") -> str:
    """Vendor-specific variables are prefixed (JOINTECH_TOKEN_SECRET) so that functions never
    disagree on a name: the integration tests set every function's environment in one process."""
    return os.environ.get(f"{vendor.upper().replace('-', '_')}_{name}", default)
