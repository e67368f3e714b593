"""Jointech MQTT topics via AWS IoT Core topic rules -> shared ingest pipeline.

The rules' SELECT adds accessKey, deviceNum, kind (and subLockNum) from the topic. IoT invokes
this function asynchronously: raising on a storage failure makes Lambda retry and finally park the
event in the failure queue, so nothing is lost; an invalid record is quarantined and not retried.
"""

from devicegate.core.adapter import Outcome
from devicegate.ingest.iot import iot_push
from devicegate.infra.observability import logger, tracer
from devicegate.ingest.wiring import mqtt_pipeline


class RetryLater(Exception):
    """Storage was unavailable; Lambda's async retry takes it from here."""


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    result = mqtt_pipeline("jointech").ingest(iot_push("jointech", event, getattr(context, "aws_request_id", "")))
    if result.outcome is Outcome.UNAVAILABLE:
        raise RetryLater("storage unavailable")
    return {"outcome": result.outcome.value, "stored": result.stored, "duplicates": result.duplicates}
