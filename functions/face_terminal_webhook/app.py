"""Face-recognition terminal event push: POST /hooks/face-terminal/{token}[?device=SERIAL] ->
shared ingest pipeline. `device` names the terminal for its alarms (they carry no serial)."""

from aws_lambda_powertools.logging import correlation_paths

from devicegate.ingest.http import http_push, http_response
from devicegate.infra.observability import logger, tracer
from devicegate.ingest.wiring import http_pipeline


# capture_response=False: answers and errors stay out of traces (no payloads outside the table).
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    params = event.get("pathParameters") or {}
    query = event.get("queryStringParameters") or {}
    route = {"device": query["device"]} if query.get("device") else {}
    push = http_push("face-terminal", event, token=params.get("token"), route=route)
    return http_response(http_pipeline("face-terminal").ingest(push).answer)
