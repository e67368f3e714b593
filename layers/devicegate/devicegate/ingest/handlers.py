"""The Lambda handlers of the ingest functions, one factory call each (functions/*/app.py).

Everything a handler knows about its vendor comes from the vendor's adapter: which path and query
parameters are routing facts, and what its deployment must be checked for at cold start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from devicegate.core.adapter import Outcome
from devicegate.infra.observability import logger, tracer
from devicegate.ingest.http import http_push, http_response
from devicegate.ingest.iot import iot_push
from devicegate.ingest.wiring import http_pipeline, mqtt_pipeline
from devicegate.vendors import get_adapter

Handler = Callable[[dict[str, Any], Any], Any]


class RetryLater(Exception):
    """Storage was unavailable; Lambda's async retry (then its failure queue) takes it from here."""


def webhook_handler(vendor: str) -> Handler:
    """POST /hooks/{vendor}/{token}[/...] (API Gateway HTTP API, payload 2.0) -> the pipeline.

    API Gateway has matched the route already: the handler reads the path parameters instead of
    routing a second time."""
    adapter = get_adapter(vendor)
    # A broken deployment setting fails here, at cold start, naming the parameter.
    adapter.check_deployment()
    path_params, query_params = adapter.route_path_params, adapter.route_query_params

    # capture_response=False: answers and errors stay out of traces (no payloads outside the table).
    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        params = event.get("pathParameters") or {}
        query = event.get("queryStringParameters") or {}
        route = {name: params[name] for name in path_params if params.get(name) is not None}
        route.update({name: query[name] for name in query_params if query.get(name)})
        push = http_push(vendor, event, token=params.get("token"), route=route)
        return http_response(http_pipeline(vendor).ingest(push).answer)

    return lambda_handler


def mqtt_handler(vendor: str) -> Handler:
    """An IoT Core topic rule's Lambda action -> the pipeline. IoT invokes asynchronously: raising
    on a storage failure makes Lambda retry and finally park the event in the failure queue, so
    nothing is lost; an invalid record is quarantined and not retried."""
    get_adapter(vendor).check_deployment()

    @logger.inject_lambda_context
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        result = mqtt_pipeline(vendor).ingest(iot_push(vendor, event, getattr(context, "aws_request_id", "")))
        if result.outcome is Outcome.UNAVAILABLE:
            raise RetryLater("storage unavailable")
        return {"outcome": result.outcome.value, "stored": result.stored, "duplicates": result.duplicates}

    return lambda_handler
