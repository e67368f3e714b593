"""Table stream (new event items) -> CloudEvents on the queue + device latest state."""

from functools import cache

from devicegate.aws import client
from devicegate.observability import logger, tracer
from devicegate.outbox import DynamoStateStore, SqsPublisher, process_batch, stream_records
from devicegate.settings import get_settings
from devicegate.vendors import alarm_transition_for, command_reply_for, state_patch_for


@cache
def _wiring() -> tuple[SqsPublisher, DynamoStateStore]:
    settings = get_settings()
    return (SqsPublisher(client("sqs"), settings.outbox_queue_url),
            DynamoStateStore(client("dynamodb"), settings.table_name, settings.retention_for))


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    records = stream_records(event.get("Records", []))
    publisher, state = _wiring()
    failed = process_batch(records, publisher, state, state_patch_for, table=get_settings().table_name,
                           transition_for=alarm_transition_for, reply_for=command_reply_for)
    logger.info("outbox batch", extra={"records": len(records), "failed": len(failed)})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
