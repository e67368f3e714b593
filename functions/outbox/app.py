"""Table stream (new event items) -> CloudEvents on the queue + device latest state."""

from functools import cache

from devicegate.aws import client
from devicegate.observability import logger, tracer
from devicegate.outbox import DynamoStateStore, SqsPublisher, StreamRecord, envelope_from_image, process_batch
from devicegate.settings import get_settings
from devicegate.vendors import get_adapter, vendor_names


@cache
def _wiring() -> tuple[SqsPublisher, DynamoStateStore]:
    settings = get_settings()
    return (SqsPublisher(client("sqs"), settings.outbox_queue_url),
            DynamoStateStore(client("dynamodb"), settings.table_name))


def _patch_for(event: dict) -> dict:
    vendor = event.get("vendor")
    return get_adapter(vendor).state_patch(event) if vendor in vendor_names() else {}


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    records = []
    for raw in event.get("Records", []):
        change = raw.get("dynamodb", {})
        # The event source filter already keeps only INSERTs of event items; checked again so a
        # misconfigured filter cannot publish state or quarantine items.
        if raw.get("eventName") != "INSERT" or not change.get("Keys", {}).get("pk", {}).get("S", "").startswith("E#"):
            continue
        records.append(StreamRecord(change["SequenceNumber"], envelope_from_image(change["NewImage"])))
    publisher, state = _wiring()
    failed = process_batch(records, publisher, state, _patch_for, table=get_settings().table_name)
    logger.info("outbox batch", extra={"records": len(records), "failed": len(failed)})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
