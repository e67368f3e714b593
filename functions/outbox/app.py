"""Table stream (new event items) -> CloudEvents on the queue + device latest state.

Also runs on a schedule (template: OutboxRedrive): batches the stream mapping gave up on after its
retries (OutboxFailureQueue) are published again once the queue or the table answers again.
"""

from functools import cache

from devicegate.core.offline import OfflinePolicy, offline_after_from_env
from devicegate.infra.aws import client
from devicegate.infra.observability import logger, tracer
from devicegate.infra.settings import get_settings
from devicegate.outbox.batch import process_batch
from devicegate.outbox.messages import Publisher, events_publisher
from devicegate.outbox.stream import redrive_failed_batches, stream_records
from devicegate.store.events import load_offloaded
from devicegate.store.state import DynamoStateStore
from devicegate.vendors import alarm_transition_for, command_reply_for, get_adapter, state_patch_for

#: Seconds a scheduled redrive leaves itself before the function's timeout.
REDRIVE_RESERVE_S = 20


@cache
def _wiring() -> tuple[Publisher, DynamoStateStore]:
    settings = get_settings()
    sns = client("sns") if settings.outbox_topic_arn else None
    return (events_publisher(client("sqs"), sns, settings.outbox_queue_url, settings.outbox_topic_arn),
            DynamoStateStore(client("dynamodb"), settings.table_name, settings.retention_for,
                             OfflinePolicy(offline_after_from_env(), get_adapter),
                             failures_retention_days=settings.quarantine_retention_days))


def _load_offloaded(ref: str) -> dict:
    # Only for records over the item limit, which went to S3 (rare): the client is made then.
    return load_offloaded(client("s3"), ref)


def publish(records):
    publisher, state = _wiring()
    return process_batch(records, publisher, state, state_patch_for, table=get_settings().table_name,
                         transition_for=alarm_transition_for, reply_for=command_reply_for,
                         load_data=_load_offloaded)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    if event.get("source") == "aws.events":
        outcomes = redrive_failed_batches(
            client("sqs"), get_settings().outbox_failure_queue_url, client("dynamodbstreams"), publish,
            time_left_s=lambda: context.get_remaining_time_in_millis() / 1000 - REDRIVE_RESERVE_S)
        return {"redriven": sum(o.status == "published" for o in outcomes),
                "waiting": sum(o.status != "published" for o in outcomes)}
    records = stream_records(event.get("Records", []))
    failed = publish(records)
    # Debug: at INFO this line would be most of what a healthy gateway logs (one per batch); the
    # accepted metric counts the records, failures log warnings of their own.
    logger.debug("outbox batch", extra={"records": len(records), "failed": len(failed)})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
