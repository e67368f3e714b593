"""Every environment variable the functions read, parsed once into typed settings (the template
sets them; a test holds the template's variables and these fields together).

Validated on first use, which is the first thing a function's wiring does: a bad value fails the
cold start naming the variable (`OFFLINE_AFTER: 'jointech=abc' is not valid: …`), not some
request later. Nothing else in the layer reads the environment: the roles' wiring hands these
values to the store and the roles, and `core.deployment` serves the few the core and the vendors
need (installed below).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devicegate.core import deployment
from devicegate.core.caches import kept
from devicegate.core.offline import parse_offline_after
from devicegate.core.pairs import pairs
from devicegate.core.personal import Policy, parse_policy

#: Default number of write shards of every partition many devices write (a template parameter,
#: Shards, sets it for a deployment: SHARDS in every function's environment; store.keys says why).
DEFAULT_SHARDS = 8
#: Seconds after a record's first part at which the sweep assembles it from what came.
DEFAULT_PARTS_TIMEOUT = 600
#: The commands API's per-device limit per minute, and a command's deadline (core.commands caps it).
DEFAULT_COMMAND_RATE_LIMIT = 6
DEFAULT_COMMAND_TIMEOUT = 300
#: Commands kept for the device's next contact (`whenOnline`): the expiry when the app gives none,
#: the longest it may give, the longest for a command that may open or unlock something, and the
#: attempts (sends) each gets. Template parameters set them (WaitingCommand*).
DEFAULT_WAIT_S, DEFAULT_MAX_WAIT_S, DEFAULT_UNSAFE_MAX_WAIT_S, DEFAULT_MAX_ATTEMPTS = 3600, 7 * 86400, 300, 3


class SettingsError(ValueError):
    """The environment holds a value the gateway cannot run with; the message names the variable."""


def parse_retention(spec: str) -> dict[str, int]:
    """`default=90,location=30,jointech.alarm=365` -> {"default": 90, "location": 30, ...}."""
    table: dict[str, int] = {}
    for part, key, days in pairs(spec):
        if days is None or not days.isdigit() or int(days) < 1:
            raise ValueError(f"bad retention entry {part!r}: expected kind=days with days >= 1")
        table[key] = int(days)
    table.setdefault("default", 90)
    return table


def parse_timezone(text: str) -> timezone:
    """`+09:00`, `-0330`, `Z`, `UTC` (the template's SenseLinkTimeZone pattern); blank: UTC."""
    text = text.strip()
    if not text or text.upper() in ("Z", "UTC"):
        return UTC
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if not match:
        raise ValueError("expected a UTC offset such as +09:00, or UTC")
    sign = -1 if match.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))


def _blank_is_unset(value: object, default: object) -> object:
    return default if isinstance(value, str) and not value.strip() else value


class Deployment(BaseModel):
    """What every process of the gateway reads of the deployment, the operator's CLI included
    (none of it is required: an unset variable is its default)."""

    # Built when first read, not during imports; a timezone and a Policy are plain Python types.
    model_config = ConfigDict(defer_build=True, arbitrary_types_allowed=True, frozen=True)

    personal_data: Policy = Field(default_factory=lambda: parse_policy(None), alias="PERSONAL_DATA")
    shards: int = Field(DEFAULT_SHARDS, alias="SHARDS", ge=1, le=64)
    offline_after: dict[str, int | None] = Field(default_factory=dict, alias="OFFLINE_AFTER")
    senselink_timezone: timezone = Field(UTC, alias="SENSELINK_TIMEZONE")
    #: JSON text, checked by the AI camera's own models when first used (vendors.ai_camera.models).
    ai_camera_default_config: str = Field("", alias="AI_CAMERA_DEFAULT_CONFIG")
    # Read by Powertools itself (infra.observability); here so that every variable is known.
    powertools_service_name: str = Field("", alias="POWERTOOLS_SERVICE_NAME")
    powertools_metrics_namespace: str = Field("", alias="POWERTOOLS_METRICS_NAMESPACE")
    powertools_log_level: str = Field("", alias="POWERTOOLS_LOG_LEVEL")

    @field_validator("personal_data", mode="before")
    @classmethod
    def _personal(cls, value: object) -> object:
        return parse_policy(value) if isinstance(value, str) else value

    @field_validator("shards", mode="before")
    @classmethod
    def _shards(cls, value: object) -> object:
        return _blank_is_unset(value, DEFAULT_SHARDS)

    @field_validator("offline_after", mode="before")
    @classmethod
    def _offline_after(cls, value: object) -> object:
        return parse_offline_after(value) if isinstance(value, str) else value

    @field_validator("senselink_timezone", mode="before")
    @classmethod
    def _timezone(cls, value: object) -> object:
        return parse_timezone(value) if isinstance(value, str) else value


class Settings(Deployment):
    """A function's whole environment."""

    table_name: str = Field(alias="TABLE_NAME")
    payload_bucket: str = Field(default="", alias="PAYLOAD_BUCKET")
    retention_days: dict[str, int] = Field(default_factory=lambda: {"default": 90}, alias="RETENTION_DAYS")
    quarantine_retention_days: int = Field(default=30, alias="QUARANTINE_RETENTION_DAYS", ge=1)
    outbox_queue_url: str = Field(default="", alias="OUTBOX_QUEUE_URL")
    outbox_failure_queue_url: str = Field(default="", alias="OUTBOX_FAILURE_QUEUE_URL")
    #: Set only with fan-out (template parameter ConsumerApps): the outbox publishes to this topic.
    outbox_topic_arn: str = Field(default="", alias="OUTBOX_TOPIC_ARN")
    parts_timeout_seconds: int = Field(DEFAULT_PARTS_TIMEOUT, alias="PARTS_TIMEOUT_SECONDS", ge=1)

    # Vendor-specific variables are prefixed (JOINTECH_TOKEN_SECRET) so that functions never
    # disagree on a name: the integration tests set every function's environment in one process.
    jointech_token_secret: str = Field("", alias="JOINTECH_TOKEN_SECRET")
    jointech_auth_header: str = Field("", alias="JOINTECH_AUTH_HEADER")
    jointech_access_key: str = Field("", alias="JOINTECH_ACCESS_KEY")
    jointech_command_rate_limit: int = Field(DEFAULT_COMMAND_RATE_LIMIT, alias="JOINTECH_COMMAND_RATE_LIMIT",
                                             ge=1)
    jointech_command_timeout_seconds: int = Field(DEFAULT_COMMAND_TIMEOUT, alias="JOINTECH_COMMAND_TIMEOUT_SECONDS")
    command_wait_default_seconds: int = Field(DEFAULT_WAIT_S, alias="COMMAND_WAIT_DEFAULT_SECONDS",
                                              ge=60, le=30 * 86400)
    command_wait_max_seconds: int = Field(DEFAULT_MAX_WAIT_S, alias="COMMAND_WAIT_MAX_SECONDS", ge=60, le=30 * 86400)
    command_wait_unsafe_max_seconds: int = Field(DEFAULT_UNSAFE_MAX_WAIT_S, alias="COMMAND_WAIT_UNSAFE_MAX_SECONDS",
                                                 ge=60, le=3600)
    command_max_attempts: int = Field(DEFAULT_MAX_ATTEMPTS, alias="COMMAND_MAX_ATTEMPTS", ge=1, le=10)
    face_terminal_token_secret: str = Field("", alias="FACE_TERMINAL_TOKEN_SECRET")
    senselink_token_secret: str = Field("", alias="SENSELINK_TOKEN_SECRET")
    mettax_token_secret: str = Field("", alias="METTAX_TOKEN_SECRET")
    ai_camera_token_secret: str = Field("", alias="AI_CAMERA_TOKEN_SECRET")

    @field_validator("retention_days", mode="before")
    @classmethod
    def _retention(cls, value: object) -> object:
        return parse_retention(value) if isinstance(value, str) else value

    @field_validator("parts_timeout_seconds", mode="before")
    @classmethod
    def _parts_timeout(cls, value: object) -> object:
        return _blank_is_unset(value, DEFAULT_PARTS_TIMEOUT)

    @field_validator("jointech_access_key", mode="before")
    @classmethod
    def _access_key(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("jointech_command_rate_limit", mode="before")
    @classmethod
    def _rate_limit(cls, value: object) -> object:
        return _blank_is_unset(value, DEFAULT_COMMAND_RATE_LIMIT)

    @field_validator("jointech_command_timeout_seconds", mode="before")
    @classmethod
    def _command_timeout(cls, value: object) -> object:
        from devicegate.core.commands import MAX_TIMEOUT_S

        value = _blank_is_unset(value, DEFAULT_COMMAND_TIMEOUT)
        seconds = int(value) if isinstance(value, (int, str)) and str(value).strip().isdigit() else None
        if seconds is None or not 10 <= seconds <= MAX_TIMEOUT_S:
            raise ValueError(f"expected whole seconds from 10 to {MAX_TIMEOUT_S}")
        return seconds

    @field_validator("command_wait_default_seconds", "command_wait_max_seconds", "command_wait_unsafe_max_seconds",
                     "command_max_attempts", mode="before")
    @classmethod
    def _waiting(cls, value: object, info: Any) -> object:
        defaults = {"command_wait_default_seconds": DEFAULT_WAIT_S, "command_wait_max_seconds": DEFAULT_MAX_WAIT_S,
                    "command_wait_unsafe_max_seconds": DEFAULT_UNSAFE_MAX_WAIT_S,
                    "command_max_attempts": DEFAULT_MAX_ATTEMPTS}
        return _blank_is_unset(value, defaults[info.field_name])

    def retention_for(self, vendor: str, kind: str) -> int:
        table = self.retention_days
        return table.get(f"{vendor}.{kind}") or table.get(kind) or table["default"]

    def vendor_setting(self, vendor: str, name: str) -> str:
        """A vendor's prefixed variable by its suffix (`token_secret`, `auth_header`); "" for one
        the template gives no function of this vendor."""
        return str(getattr(self, f"{vendor.replace('-', '_')}_{name}", "") or "")


def _validated(model: type[BaseModel], environ: dict[str, str]) -> Any:
    try:
        return model.model_validate(environ)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            problem = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                lines.append(f"{name}: not set")
            else:
                lines.append(f"{name}: {environ.get(name, '')!r} is not valid: {problem}")
        raise SettingsError("; ".join(lines)) from None


@kept
def get_settings() -> Settings:
    """A function's settings; raises SettingsError naming every variable at fault."""
    settings: Settings = _validated(Settings, dict(os.environ))
    return settings


@kept
def get_deployment() -> Deployment:
    """The settings every process reads; raises SettingsError. In a function (the template gives
    every one TABLE_NAME) its whole settings, so the environment is read once; elsewhere (the
    CLI) only what needs no table."""
    if "TABLE_NAME" in os.environ:
        return get_settings()
    found: Deployment = _validated(Deployment, dict(os.environ))
    return found


deployment.install(get_deployment)
