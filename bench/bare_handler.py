"""Cold-start baseline: a bare handler that imports boto3 and Powertools and does nothing else."""

import boto3  # noqa: F401
from aws_lambda_powertools import Logger, Tracer  # noqa: F401
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver  # noqa: F401


def lambda_handler(event, context):
    return {"statusCode": 200, "body": '{"result":200}'}
