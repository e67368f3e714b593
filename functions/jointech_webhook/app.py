"""Jointech webhook rules: POST /hooks/jointech/{token}[/{kind}] -> shared ingest pipeline.

API Gateway has already matched the route (template.yaml), so the handler reads the path
parameters itself instead of routing a second time.
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
    route = {"kind": params["kind"]} if params.get("kind") is not None else {}
    push = http_push("jointech", event, token=params.get("token"), route=route)
    return http_response(http_pipeline("jointech").ingest(push).answer)
