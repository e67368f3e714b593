"""Table stream (new event items) -> CloudEvents on the queue + device latest state.

Also runs on a schedule (template: OutboxRedrive): batches the stream mapping gave up on after its
retries (OutboxFailureQueue) are published again once the queue or the table answers again.
See devicegate.outbox.wiring.
"""

from devicegate.infra.observability import logger, tracer
from devicegate.outbox.stream import stream_records
from devicegate.outbox.wiring import publish, redrive

#: Seconds a scheduled redrive leaves itself before the function's timeout.
REDRIVE_RESERVE_S = 20


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    if event.get("source") == "aws.events":
        outcomes = redrive(lambda: context.get_remaining_time_in_millis() / 1000 - REDRIVE_RESERVE_S)
        return {"redriven": sum(o.status == "published" for o in outcomes),
                "waiting": sum(o.status != "published" for o in outcomes)}
    records = stream_records(event.get("Records", []))
    failed = publish(records)
    # Debug: at INFO this line would be most of what a healthy gateway logs (one per batch); the
    # accepted metric counts the records, failures log warnings of their own.
    logger.debug("outbox batch", extra={"records": len(records), "failed": len(failed)})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
