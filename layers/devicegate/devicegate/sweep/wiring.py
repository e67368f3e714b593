"""Wiring for Lambda: the sweep, built on first use and kept warm."""

from __future__ import annotations

from devicegate.core.caches import kept
from devicegate.core.offline import OfflinePolicy
from devicegate.infra.aws import LazyClient, client
from devicegate.infra.settings import get_settings
from devicegate.store.events import DynamoEventStore
from devicegate.sweep import Sweep
from devicegate.vendors import get_adapter, vendor_names


@kept
def sweep() -> Sweep:
    settings = get_settings()
    # The store of the records the sweep assembles from parts, as the ingest functions store theirs.
    events = DynamoEventStore(dynamodb=client("dynamodb"), s3=LazyClient("s3"), table=settings.table_name,
                              bucket=settings.payload_bucket, retention_days=settings.retention_for,
                              quarantine_days=settings.quarantine_retention_days,
                              policy=OfflinePolicy(settings.offline_after, get_adapter))
    return Sweep(client("dynamodb"), settings.table_name, events, settings.offline_after, vendor_names(),
                 get_adapter, settings.parts_timeout_seconds, settings.retention_for)
