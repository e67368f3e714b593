"""Mettax webhook: POST /hooks/mettax/{token}[/{service}] -> shared ingest pipeline.

One URL per pushed service, as the Mettax console asks (gps, alarm, device-info, ...), or one URL
for all of them (the kind is then told apart by the record's fields).
"""

from aws_lambda_powertools.logging import correlation_paths

from devicegate.ingest.http import http_push, http_response
from devicegate.infra.observability import logger, tracer
from devicegate.ingest.wiring import http_pipeline


# capture_response=False: answers and errors stay out of traces (no payloads outside the table).
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    params = event.get("pathParameters") or {}
    route = {"service": params["service"]} if params.get("service") is not None else {}
    push = http_push("mettax", event, token=params.get("token"), route=route)
    return http_response(http_pipeline("mettax").ingest(push).answer)
