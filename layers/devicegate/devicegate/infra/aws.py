"""AWS clients, created on first use and reused for the life of the execution environment.

Creating a client loads its service model (tens of ms); doing it per request, or at import time
for clients a function never uses, would show up in every cold start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from devicegate.core.caches import kept

#: The only services the functions call. Listing them saves botocore from listing every service
#: directory it ships (twice per first client: ~20 ms of a cold start) just to check the name.
SERVICES = ("dynamodb", "dynamodbstreams", "iot-data", "s3", "secretsmanager", "sns", "sqs")
#: Services whose calls botocore must not repeat by itself. An IoT publish is not idempotent: a
#: retry after a lost answer (a read timeout, a dropped connection) sends the command to the
#: device a second time. The caller reports the unknown outcome instead (commands.PublishUnknown).
NOT_RETRIED = frozenset({"iot-data"})


@kept
def _session() -> Any:
    # botocore directly, not boto3: boto3 adds nothing the low-level clients need, and importing it
    # (with s3transfer) is a large share of a cold start. One session for every client, so endpoint
    # rules, partitions and retry data load once.
    import os

    from botocore.loaders import Loader
    from botocore.session import get_session

    class KnownServicesLoader(Loader):
        def list_available_services(self, type_name: str) -> list[str]:
            return list(SERVICES)

    session = get_session()
    data_path = session.get_config_variable("data_path")  # AWS_DATA_PATH, still honoured
    session.register_component("data_loader", KnownServicesLoader(
        extra_search_paths=data_path.split(os.pathsep) if data_path else None))
    return session


def botocore_session() -> Any:
    """The one botocore session behind every client (for hooks on its events, e.g. a call counter)."""
    return _session()


class LazyClient:
    """A client created when a call first needs it (S3 only for large or bad payloads, iot-data
    only for a publish: listing commands never needs it)."""

    def __init__(self, service: str, deadline_s: float | None = None):
        self._service = service
        self._deadline_s = deadline_s

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self._service, self._deadline_s), name)


@kept
def client(service: str, deadline_s: float | None = None) -> Any:
    """The shared client of a service. `deadline_s`: the sender gives up on answers slower than
    this (SenseLink: 5 s), so calls get timeouts that fit it, their one retry included."""
    if service not in SERVICES:
        raise ValueError(f"devicegate.aws knows only {SERVICES}; add {service!r} there")
    from botocore.config import Config

    # Short timeouts and few retries: a sender waits on us, and a failed answer makes it retry,
    # which is better than a slow success.
    # Worst case per call: 2 attempts x (1 s connect + 2 s read) = 6 s; with a token refresh in
    # front, 12 s, inside the functions' 15 s timeout, so the sender always gets our own 503.
    connect, read, attempts = 1.0, 2.0, 2
    if deadline_s is not None:
        # Up to three calls in a row (token refresh, photo, item) must all fail within 80 % of
        # the deadline (the rest is Lambda's own overhead): each call gets a third of it, split
        # over two attempts, so a throttled first try is still retried. At 5 s: 0.22 s connect +
        # 0.44 s read per attempt; DynamoDB answers in milliseconds when healthy.
        per_attempt = deadline_s * 0.8 / 3 / 2
        connect, read, attempts = per_attempt / 3, per_attempt * 2 / 3, 2
    if service in NOT_RETRIED:
        attempts = 1
    config = Config(
        connect_timeout=connect,
        read_timeout=read,
        # total_max_attempts counts the first try (botocore's max_attempts would add one more).
        retries={"mode": "standard", "total_max_attempts": attempts},
        tcp_keepalive=True,
        # Requests are built by this package's own code and validated by the service anyway;
        # botocore's client-side schema walk would cost more per call than the rest of the hot path.
        parameter_validation=False,
    )
    return _session().create_client(service, config=config)


# --- failures: one classification for every module --------------------------------------------
#
# A call fails in one of two shapes: the service answered with an error (ClientError, with a code),
# or no usable answer came at all (every other BotoCoreError: a reset connection, a connect or read
# timeout, an unreachable endpoint, missing credentials). The second shape carries no code and its
# `response` attribute is None, so code is read through `error_code`, never from `exc.response`.

CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELLED = "TransactionCanceledException"
#: The request itself is unacceptable (an item over 400 KB, a key over its size limit): retrying
#: the same input cannot help, unlike every other code.
INVALID_REQUEST = "ValidationException"


def failures() -> tuple[type[BaseException], ...]:
    """Everything an AWS call raises for a failed call (catch this, not Exception)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def error_code(exc: BaseException) -> str:
    """The service's error code, or "" when the call got no answer (network, timeout, endpoint)."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return str(error.get("Code") or "") if isinstance(error, dict) else ""


def cancellation_reasons(exc: BaseException) -> list[str | None]:
    """Per-item codes of a cancelled transaction ("None" for an item that was fine), or [] when
    the failure was not a cancelled transaction."""
    response = getattr(exc, "response", None)
    if error_code(exc) != TRANSACTION_CANCELLED or not isinstance(response, dict):
        return []
    return [r.get("Code") if isinstance(r, dict) else None for r in response.get("CancellationReasons") or []]


def cancelled_by_conditions(exc: BaseException) -> bool:
    """A transaction refused only because its own conditions did not hold (not a conflict or an
    outage): someone else already did what it was about to do."""
    reasons = cancellation_reasons(exc)
    return bool(reasons) and all(r in ("None", "ConditionalCheckFailed", None) for r in reasons) and \
        "ConditionalCheckFailed" in reasons


def refused_item(exc: BaseException) -> bool:
    """The request's item is unstorable as it is (too large, a key too long): a ValidationException,
    or a transaction cancelled because one of its items was. Retrying the same write cannot help."""
    if error_code(exc) == INVALID_REQUEST:
        return True
    return "ValidationError" in cancellation_reasons(exc)


def maybe_processed(exc: BaseException) -> bool:
    """The call got no answer after its request may have reached the service (a read timeout, a
    connection dropped mid-call): what it asked for may have been done. False for an answer with
    a code, and for failures before anything was sent (endpoint unreachable, connect timeout)."""
    from botocore.exceptions import ConnectionError, ConnectTimeoutError, EndpointConnectionError, HTTPClientError

    if error_code(exc) or isinstance(exc, (ConnectTimeoutError, EndpointConnectionError)):
        return False
    # A reset (ConnectionClosedError) tells nothing about when it happened: before the request
    # went out or after the service acted on it.
    return isinstance(exc, (HTTPClientError, ConnectionError))


def unavailable(what: str, exc: BaseException):
    """The StorageUnavailable to raise for a failed call: the sender (or Lambda) retries. Names the
    code or the exception type, never the message (it may quote request values)."""
    from devicegate.core.errors import StorageUnavailable

    return StorageUnavailable(f"{what} failed: {error_code(exc) or type(exc).__name__}")


#: DynamoDB's own paginator entry for Query (botocore's paginators-1.json), given to botocore's
#: Paginator over the client's `query` method: so any client-shaped object pages the same way
#: (the tests' call counters wrap `query`, not `get_paginator`).
_QUERY_PAGINATION = {"input_token": "ExclusiveStartKey", "output_token": "LastEvaluatedKey",
                     "limit_key": "Limit", "result_key": "Items"}


def query_items(dynamodb: Any, limit: int | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query finds (raw attribute values), page after page (botocore's paginator:
    LastEvaluatedKey to ExclusiveStartKey), at most `limit` of them (each page asks for that many;
    a later page is asked only while fewer came). Failures are botocore's own (the CLI's queries
    show them as they are); query_pages maps them for the functions."""
    from botocore.paginate import Paginator

    if limit:
        kwargs["Limit"] = limit
    pages = Paginator(dynamodb.query, _QUERY_PAGINATION, None).paginate(
        **kwargs, PaginationConfig={"MaxItems": limit} if limit else {})
    for page in pages:
        yield from page.get("Items", [])


def query_pages(dynamodb: Any, what: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query finds (raw attribute values), page after page; a failed page raises
    StorageUnavailable naming `what`."""
    try:
        yield from query_items(dynamodb, **kwargs)
    except failures() as exc:
        raise unavailable(what, exc) from None
