"""Wiring for Lambda: one pipeline per vendor, built on first use and kept warm."""

from __future__ import annotations

from functools import cache

from devicegate.core.offline import OfflinePolicy, offline_after_from_env
from devicegate.infra.aws import client
from devicegate.infra.settings import get_settings, vendor_env
from devicegate.ingest.auth import TokenVerifier, secrets_manager_fetcher
from devicegate.ingest.pipeline import Pipeline
from devicegate.store.configs import DeviceConfigs
from devicegate.store.events import DynamoEventStore
from devicegate.vendors import get_adapter


class _LazyClient:
    """Defers creating a client until a call needs it (S3 is only for large or bad payloads)."""

    def __init__(self, service: str, deadline_s: float | None = None):
        self._service = service
        self._deadline_s = deadline_s

    def __getattr__(self, name: str):
        return getattr(client(self._service, self._deadline_s), name)


@cache
def event_store(deadline_s: float | None = None) -> DynamoEventStore:
    settings = get_settings()
    return DynamoEventStore(
        dynamodb=client("dynamodb", deadline_s),
        s3=_LazyClient("s3", deadline_s),
        table=settings.table_name,
        bucket=settings.payload_bucket,
        retention_days=settings.retention_for,
        quarantine_days=settings.quarantine_retention_days,
        policy=OfflinePolicy(offline_after_from_env(), get_adapter),
    )


@cache
def http_pipeline(vendor: str) -> Pipeline:
    adapter = get_adapter(vendor)
    deadline = adapter.answer_deadline_s
    verifier = TokenVerifier(
        secrets_manager_fetcher(vendor_env(vendor, "TOKEN_SECRET"), deadline),
        header_name=vendor_env(vendor, "AUTH_HEADER"),
    )
    configs = DeviceConfigs(client("dynamodb", deadline), get_settings().table_name)
    return Pipeline(adapter, event_store(deadline), verifier, configs=configs)


@cache
def mqtt_pipeline(vendor: str) -> Pipeline:
    # IoT Core authenticated the publisher (X.509 + policy); the topic rule is the only caller.
    return Pipeline(get_adapter(vendor), event_store(), verifier=None)
