"""Wiring for Lambda: one pipeline per vendor, built on first use and kept warm."""

from __future__ import annotations

from devicegate.core.caches import kept
from devicegate.core.offline import OfflinePolicy
from devicegate.infra.aws import LazyClient, client
from devicegate.infra.settings import get_settings
from devicegate.ingest.auth import TokenVerifier, secrets_manager_fetcher
from devicegate.ingest.pipeline import Pipeline
from devicegate.store.configs import DeviceConfigs
from devicegate.store.events import DynamoEventStore
from devicegate.vendors import get_adapter


@kept
def event_store(deadline_s: float | None = None) -> DynamoEventStore:
    settings = get_settings()
    return DynamoEventStore(
        dynamodb=client("dynamodb", deadline_s),
        s3=LazyClient("s3", deadline_s),
        table=settings.table_name,
        bucket=settings.payload_bucket,
        retention_days=settings.retention_for,
        quarantine_days=settings.quarantine_retention_days,
        policy=OfflinePolicy(settings.offline_after, get_adapter),
    )


@kept
def http_pipeline(vendor: str) -> Pipeline:
    adapter = get_adapter(vendor)
    deadline = adapter.answer_deadline_s
    settings = get_settings()
    verifier = TokenVerifier(
        secrets_manager_fetcher(settings.vendor_setting(vendor, "token_secret"), deadline),
        header_name=settings.vendor_setting(vendor, "auth_header"),
    )
    configs = DeviceConfigs(client("dynamodb", deadline), settings.table_name)
    return Pipeline(adapter, event_store(deadline), verifier, configs=configs)


@kept
def mqtt_pipeline(vendor: str) -> Pipeline:
    # IoT Core authenticated the publisher (X.509 + policy); the topic rule is the only caller.
    return Pipeline(get_adapter(vendor), event_store(), verifier=None)
