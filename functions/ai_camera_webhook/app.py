"""AI camera box: POST /hooks/ai-camera/{token} -> shared ingest pipeline.

A heartbeat is answered heartbeat-Ack with the camera's interval, send mode and strategy, from
its configuration item (written by apps) or the deployment default; every other operator is
stored as an event of its own kind and answered {operator}-Ack.
"""

from aws_lambda_powertools.logging import correlation_paths

from devicegate.ingest.http import http_push, http_response
from devicegate.infra.observability import logger, tracer
from devicegate.ingest.wiring import http_pipeline
from devicegate.vendors.ai_camera.models import deployment_default

# A broken AiCameraDefaultConfig is a deployment mistake: fail the cold start with the parameter's
# name in the log rather than answering every heartbeat 500.
deployment_default()


# capture_response=False: answers and errors stay out of traces (no payloads outside the table).
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    params = event.get("pathParameters") or {}
    push = http_push("ai-camera", event, token=params.get("token"), route={})
    return http_response(http_pipeline("ai-camera").ingest(push).answer)
