"""Wiring for Lambda: one command service per vendor, built on first use and kept warm."""

from __future__ import annotations

from importlib import import_module

from devicegate.commands.service import CommandService, CommandSettings, IotDataPublisher
from devicegate.core.caches import kept
from devicegate.infra.aws import LazyClient, client
from devicegate.infra.settings import get_settings
from devicegate.store.commands import DynamoCommandStore


@kept
def command_settings(vendor: str) -> CommandSettings:
    """JOINTECH_ACCESS_KEY, JOINTECH_COMMAND_RATE_LIMIT, JOINTECH_COMMAND_TIMEOUT_SECONDS, and the
    waiting commands' COMMAND_WAIT_* and COMMAND_MAX_ATTEMPTS."""
    settings = get_settings()
    prefix = vendor.replace("-", "_")
    return CommandSettings(access_key=settings.vendor_setting(vendor, "access_key"),
                           rate_limit=getattr(settings, f"{prefix}_command_rate_limit"),
                           timeout_s=getattr(settings, f"{prefix}_command_timeout_seconds"),
                           wait_default_s=min(settings.command_wait_default_seconds, settings.command_wait_max_seconds),
                           wait_max_s=settings.command_wait_max_seconds,
                           wait_unsafe_max_s=settings.command_wait_unsafe_max_seconds,
                           max_attempts=settings.command_max_attempts)


@kept
def command_service(vendor: str) -> CommandService:
    settings = get_settings()
    protocol = import_module(f"devicegate.vendors.{vendor.replace('-', '_')}.commands")
    return CommandService(vendor, protocol, DynamoCommandStore(client("dynamodb"), settings.table_name, settings.retention_for),
                          IotDataPublisher(LazyClient("iot-data")), command_settings(vendor),
                          settings.retention_for(vendor, "command"))
