"""SenseLink pushes: POST /hooks/senselink/{token} -> shared ingest pipeline.

Takes both the Event Subscription body ({eventType, messageId, sendTime, data}) and WebSocket
frames ({code, message, data}) forwarded as they are by `devicegate senselink-bridge`, which names
itself in the X-Devicegate-Source header. SenseLink stops pushing after one answer slower than
5 s: the adapter's deadline sets the AWS timeouts (devicegate.aws).
"""

from aws_lambda_powertools.logging import correlation_paths

from devicegate.ingest.http import http_push, http_response
from devicegate.infra.observability import logger, tracer
from devicegate.ingest.wiring import http_pipeline


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    params = event.get("pathParameters") or {}
    push = http_push("senselink", event, token=params.get("token"), route={})
    return http_response(http_pipeline("senselink").ingest(push).answer)
