"""Jointech webhook rules: POST /hooks/jointech/{token}[/{kind}] -> shared ingest pipeline."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from devicegate.http import http_push, http_response
from devicegate.observability import logger, tracer
from devicegate.runtime import http_pipeline

app = APIGatewayHttpResolver()


@app.post("/hooks/jointech/<token>")
@app.post("/hooks/jointech/<token>/<kind>")
def receive(token: str, kind: str | None = None) -> Response:
    route = {"kind": kind} if kind is not None else {}
    push = http_push("jointech", app.current_event.raw_event, token=token, route=route)
    reply = http_response(http_pipeline("jointech").ingest(push).answer)
    return Response(status_code=reply["statusCode"], headers=reply["headers"], body=reply["body"])


# capture_response=False: answers and errors stay out of traces (no payloads outside the table).
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    return app.resolve(event, context)
