"""Cold-start baseline: a bare handler importing boto3 and Powertools, set up the way every
Powertools function is (Logger, Tracer, Metrics objects), doing nothing else."""

import boto3  # noqa: F401
from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="bench")
tracer = Tracer(service="bench")
metrics = Metrics(namespace="Bench", service="bench")


def lambda_handler(event, context):
    return {"statusCode": 200, "body": '{"result":200}'}
