"""Commands to Jointech devices, for apps (IAM-authorized):
POST /devices/jointech/{deviceNum}/commands sends one, GET lists the device's commands and their
status. See devicegate.commands.service (send, track, time out) and devicegate.commands.http
(routes and answers).
"""

from aws_lambda_powertools.logging import correlation_paths

from devicegate.commands.http import command_api
from devicegate.infra.observability import logger, tracer

api = command_api("jointech")


# capture_response=False: command texts and answers stay out of traces.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    return api.resolve(event, context)
