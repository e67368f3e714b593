"""Wiring for Lambda: the outbox's publisher and state store, built on first use and kept warm;
what the stream mapping and the redrive schedule call."""

from __future__ import annotations

from collections.abc import Callable

from devicegate.core.caches import kept
from devicegate.core.offline import OfflinePolicy
from devicegate.infra.aws import LazyClient, client
from devicegate.infra.iot import IotDataPublisher
from devicegate.infra.settings import get_settings
from devicegate.outbox.batch import process_batch
from devicegate.outbox.messages import Publisher, events_publisher
from devicegate.outbox.stream import RedriveOutcome, StreamRecord, redrive_failed_batches
from devicegate.outbox.waiting import Dispatcher
from devicegate.store.commands import DynamoCommandStore
from devicegate.store.events import load_offloaded
from devicegate.store.state import DynamoStateStore
from devicegate.vendors import alarm_transition_for, command_reply_for, get_adapter, state_patch_for


@kept
def wiring() -> tuple[Publisher, DynamoStateStore]:
    settings = get_settings()
    # The fan-out topic when the stack has one (ConsumerApps), else EventsQueue itself.
    sns = client("sns") if settings.outbox_topic_arn else None
    return (events_publisher(client("sqs"), sns, settings.outbox_queue_url, settings.outbox_topic_arn),
            DynamoStateStore(client("dynamodb"), settings.table_name, settings.retention_for,
                             OfflinePolicy(settings.offline_after, get_adapter),
                             failures_retention_days=settings.quarantine_retention_days))


def _command_topic(vendor: str, device_id: str) -> str:
    """The vendor's command topic for the device; "" for a vendor without commands or without
    its access key (its commands keep waiting)."""
    from importlib import import_module

    access_key = get_settings().vendor_setting(vendor, "access_key")
    try:
        protocol = import_module(f"devicegate.vendors.{vendor.replace('-', '_')}.commands")
    except ModuleNotFoundError:
        return ""
    return protocol.topic(access_key, device_id) if access_key else ""


@kept
def dispatcher() -> Dispatcher:
    """Commands waiting for a device's next contact (devicegate.outbox.waiting); the IoT client
    is made only when one is sent."""
    settings = get_settings()
    return Dispatcher(DynamoCommandStore(client("dynamodb"), settings.table_name, settings.retention_for),
                      IotDataPublisher(LazyClient("iot-data")), _command_topic,
                      settings.jointech_command_timeout_seconds)


def _load_offloaded(ref: str) -> dict:
    # Only for records over the item limit, which went to S3 (rare): the client is made then.
    return load_offloaded(client("s3"), ref)


def publish(records: list[StreamRecord]) -> list[str]:
    """A batch of stream records -> the queue and device state; the sequence numbers that failed."""
    publisher, state = wiring()
    return process_batch(records, publisher, state, state_patch_for, table=get_settings().table_name,
                         transition_for=alarm_transition_for, reply_for=command_reply_for,
                         load_data=_load_offloaded, dispatcher=dispatcher())


def redrive(time_left_s: Callable[[], float]) -> list[RedriveOutcome]:
    """The batches the stream mapping parked (OutboxFailureQueue), published again."""
    return redrive_failed_batches(client("sqs"), get_settings().outbox_failure_queue_url,
                                  client("dynamodbstreams"), publish, time_left_s=time_left_s)
