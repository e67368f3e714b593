"""The one place that owns Logger, Tracer and Metrics.

Metrics carry vendor and kind as dimensions, known only once a push is decoded, so `emit_counts`
sets them and flushes right away (one EMF line per push and kind) instead of at handler exit.

Rule for every log line in this package: lower-case message, structured keys, and never a payload,
a token, a raw path or a personal field.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

# RFC 3339 timestamps: with the functions logging JSON (LoggingConfig), Lambda filters lines by
# their "level" and reads a line whose timestamp is not RFC 3339 as INFO.
logger = Logger(service="devicegate", use_rfc3339=True)
# Only botocore is traced: patching every library X-Ray knows means importing them all at cold start.
tracer = Tracer(service="devicegate", patch_modules=("botocore",))
metrics = Metrics(namespace="Devicegate", service="devicegate")


def emit_counts(vendor: str, kind: str, counts: dict[str, int]) -> None:
    """Counts (accepted, duplicate, rejected, quarantined, failed) for one vendor and kind."""
    metrics.add_dimension(name="vendor", value=vendor)
    metrics.add_dimension(name="kind", value=kind)
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.flush_metrics()


def innermost_frame(exc: BaseException) -> str:
    """Where an unexpected exception was raised ("adapter.py:42 in normalize"): logged instead of
    its message or traceback locals, which may quote the payload (names, card numbers)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name}"


__all__ = ["logger", "tracer", "metrics", "emit_counts", "innermost_frame"]
