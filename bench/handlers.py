"""The baselines the benchmark compares against (same Powertools decorators, no pipeline)."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

logger = Logger(service="bench")
tracer = Tracer(service="bench")
app = APIGatewayHttpResolver()


@app.post("/hooks/jointech/<token>")
@app.post("/hooks/jointech/<token>/<kind>")
def empty_route(token: str, kind: str | None = None) -> Response:
    return Response(status_code=200, content_type="application/json", body='{"result":200}')


# Each benchmarked path has its baseline route (the resolver matches routes in order; the
# Jointech ones stay first, so its baseline is what it was before these were added).
@app.post("/hooks/mettax/<token>/<service>")
def empty_mettax_route(token: str, service: str) -> Response:
    return Response(status_code=200, content_type="application/json", body='{"code":200,"message":"success"}')


@app.post("/hooks/ai-camera/<token>")
def empty_ai_camera_route(token: str) -> Response:
    return Response(status_code=200, content_type="application/json", body='{"result":{"errorNo":0}}')


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    return app.resolve(event, context)
