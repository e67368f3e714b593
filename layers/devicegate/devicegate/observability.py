"""The one place that owns Logger, Tracer and the metric helper.

Metrics are emitted per event with `single_metric` (pipeline.count): a push's vendor and kind are
dimensions, known only after decoding, so no handler-wide Metrics object is needed.

Rule for every log line in this package: lower-case message, structured keys, and never a payload,
a token, a raw path or a personal field.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="devicegate")
tracer = Tracer(service="devicegate")

__all__ = ["logger", "tracer", "MetricUnit"]
