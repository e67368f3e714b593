"""Jointech MQTT topics via AWS IoT Core topic rules -> shared ingest pipeline.

The rules' SELECT adds accessKey, deviceNum, kind (and subLockNum) from the topic. IoT invokes
this function asynchronously: raising on a storage failure makes Lambda retry and finally park the
event in the failure queue, so nothing is lost; an invalid record is quarantined and not retried.
"""

from devicegate.envelope import RawPush
from devicegate.adapter import Outcome
from devicegate.observability import logger, tracer
from devicegate.runtime import mqtt_pipeline

TOPIC_FIELDS = ("accessKey", "deviceNum", "kind", "subLockNum")


class RetryLater(Exception):
    """Storage was unavailable; Lambda's async retry takes it from here."""


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    route = {k: str(event[k]) for k in TOPIC_FIELDS if isinstance(event, dict) and event.get(k) is not None}
    push = RawPush(vendor="jointech", transport="mqtt", body=b"", route=route, document=event,
                   request_id=getattr(context, "aws_request_id", ""))
    result = mqtt_pipeline("jointech").ingest(push)
    if result.outcome is Outcome.UNAVAILABLE:
        raise RetryLater("storage unavailable")
    return {"outcome": result.outcome.value, "stored": result.stored, "duplicates": result.duplicates}
