"""Fault injection for the functions' AWS calls, through botocore's own event hooks.

Every client the functions use comes from one botocore session (devicegate.aws._session). Moto
answers requests in-process from a handler it registers as a botocore built-in, `before-send`
(moto.core.models.botocore_stubber). `Injector.install` swaps that handler, in this one session,
for `Injector._send`, which wraps it:

    client call ── before-parameter-build ──► _begin: which call of which operation this is, its
                │                                     parameters, the client's timeouts
                └─ before-send, per attempt ──► _send:
                       no fault for this call/attempt     moto answers
                       reset, unreachable, connect-timeout, read-timeout
                                                          the network error; moto never sees it
                       lost-answer                        moto processes it, then the connection
                                                          drops: the write landed, unanswered
                       throttled, server-error, denied    an error answer in the service's wire
                                                          protocol; moto never sees the request
                       unprocessed, cancelled             throttling as DynamoDB answers it for a
                                                          batch read (200, every key handed back in
                                                          UnprocessedKeys) and a transaction
                                                          (TransactionCanceledException, reason
                                                          ThrottlingError); moto never sees it

`before-send` is where botocore's HTTP layer raises and answers in production, so everything
above it runs for real: the response parser turns an error answer into a ClientError with its
code, and the standard retry handler (total_max_attempts=2, devicegate.aws) sees the same
exception classes and codes it would in AWS and retries once. `attempts="first"` fails only the
first try, so that retry is what meets the state the failed attempt left. botocore retries neither
of the throttled answers DynamoDB gives in the body of a batch read or a transaction: for those,
"first" fails only the first call the fault matches, and what follows is the code's own retry.

Time: botocore's backoff sleeps (botocore.endpoint.time.sleep) and the time an injected timeout
would take (the client's own connect/read timeout) go to a simulated clock, `elapsed`, instead of
being waited: a case costs milliseconds, and an answer's deadline can still be checked.

Only the functions' session is touched. The tests' own clients (tests.support.Stack) come from a
boto3 session of their own and always reach moto untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

#: Nothing reached the service: botocore raises these when a connection is reset, refused or slow.
NOTHING_SENT = ("reset", "unreachable", "connect-timeout", "read-timeout")
#: The service answered with an error code.
ERROR_ANSWERS = ("throttled", "server-error", "denied")
#: The request was processed, the answer never arrived.
LOST_ANSWER = "lost-answer"
SHAPES = (*NOTHING_SENT, LOST_ANSWER, *ERROR_ANSWERS)
#: Shapes botocore's standard retry mode retries (an AccessDenied is not retried).
RETRIED = frozenset(SHAPES) - {"denied"}
#: Throttling told in an answer botocore does not retry, by the operations that answer so: the
#: caller has to ask again itself (a batch read for the keys handed back, a cancelled transaction).
UNPROCESSED, CANCELLED = "unprocessed", "cancelled"
THROTTLED_ANSWERS = {"BatchGetItem": UNPROCESSED, "TransactWriteItems": CANCELLED}

# (HTTP status, code) per shape and service, as each service spells them. Throttling codes are in
# botocore's throttling list (longer backoff), the 500s in its transient-status list.
_DEFAULT_ERRORS = {"throttled": (400, "ThrottlingException"), "server-error": (500, "InternalServerError"),
                   "denied": (400, "AccessDeniedException")}
_ERRORS: dict[str, dict[str, tuple[int, str]]] = {
    "dynamodb": {**_DEFAULT_ERRORS, "throttled": (400, "ProvisionedThroughputExceededException")},
    "dynamodbstreams": {**_DEFAULT_ERRORS, "throttled": (400, "LimitExceededException")},
    "s3": {"throttled": (503, "SlowDown"), "server-error": (500, "InternalError"), "denied": (403, "AccessDenied")},
    "iot-data": {**_DEFAULT_ERRORS, "throttled": (429, "ThrottlingException"),
                 "denied": (403, "ForbiddenException")},
    # SNS throttles with 429 Throttled (its model's ThrottledException); botocore retries a 429.
    "sns": {"throttled": (429, "Throttled"), "server-error": (500, "InternalError"),
            "denied": (403, "AuthorizationError")},
}


@dataclass
class Fault:
    """One fault: which calls fail, how, and on which attempt."""

    service: str  # as devicegate.aws.client names it: dynamodb, s3, sqs, ...
    operation: str  # botocore's operation name: PutItem, SendMessageBatch, ...
    shape: str  # one of SHAPES
    attempts: str = "every"  # "every" attempt of a matched call fails, or only the "first"
    #: Only the nth call matching service, operation and `where` (1-based); None: every one.
    call: int | None = None
    #: A test on the call's parameters (which item, which index), for operations used for
    #: several purposes; None: any call of the operation.
    where: Callable[[dict[str, Any]], bool] | None = None
    matched: int = 0  # calls that matched so far
    hits: int = 0  # attempts this fault made fail

    def __post_init__(self) -> None:
        answered = self.shape == THROTTLED_ANSWERS.get(self.operation)
        if (self.shape not in SHAPES and not answered) or self.attempts not in ("every", "first"):
            raise ValueError(f"unknown fault shape {self.shape!r} / attempts {self.attempts!r} "
                             f"for {self.operation}")

    @property
    def absorbed(self) -> bool:
        """A retry succeeds: only the first attempt fails, and botocore retries it (or, for a
        throttled answer it leaves alone, the code asks again)."""
        return self.attempts == "first" and (self.shape in RETRIED or self.shape in (UNPROCESSED, CANCELLED))

    def fails(self, attempt: int) -> bool:
        """Whether this attempt of a call the fault matched fails."""
        if self.attempts == "every":
            return True
        if self.shape in (UNPROCESSED, CANCELLED):
            return self.hits == 0  # the first call only: the code's own retry is a call of its own
        return attempt == 1

    def label(self) -> str:
        nth = f"#{self.call}" if self.call else ""
        return f"{self.service}.{self.operation}{nth}:{self.shape}:{self.attempts}"


@dataclass
class _Call:
    service: str
    operation: str
    protocol: str
    config: Any
    fault: Fault | None
    attempt: int = 0


@dataclass
class Injector:
    faults: list[Fault] = field(default_factory=list)
    elapsed: float = 0.0  # simulated seconds: backoff sleeps plus the timeouts injected
    calls: list[tuple[str, str]] = field(default_factory=list)  # (service, operation), every call
    _current: _Call | None = None
    _moto: Any = None

    def install(self, session: Any, monkeypatch: Any) -> None:
        """Wrap moto in `session` (devicegate.aws's), before any client is created from it."""
        import botocore.endpoint
        from moto.core.models import botocore_stubber

        self._moto = botocore_stubber
        session.unregister("before-send", botocore_stubber)
        session.register("before-send", self._send)
        session.register("before-parameter-build", self._begin)
        monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=self._sleep))

    def reset(self) -> None:
        self.faults.clear()
        self.calls.clear()
        self.elapsed = 0.0
        self._current = None

    def arm(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def disarm(self) -> None:
        self.faults.clear()

    # --- botocore hooks -----------------------------------------------------------------------

    def _begin(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        self.calls.append((service, model.name))
        chosen = None
        for fault in self.faults:
            if (fault.service, fault.operation) != (service, model.name):
                continue
            if fault.where is not None and not fault.where(params):
                continue
            fault.matched += 1
            if fault.call is None or fault.call == fault.matched:
                chosen = fault
                break
        self._current = _Call(service, model.name, model.service_model.resolved_protocol,
                              context["client_config"], chosen)

    def _send(self, event_name: str, request: Any, **kwargs: Any) -> Any:
        call = self._current
        if call is None:  # a request no client call announced (none in this code base)
            return self._moto(event_name=event_name, request=request, **kwargs)
        call.attempt += 1
        fault = call.fault
        if fault is None or not fault.fails(call.attempt):
            return self._moto(event_name=event_name, request=request, **kwargs)
        fault.hits += 1
        url = request.url
        if fault.shape == "reset":
            raise ConnectionClosedError(endpoint_url=url)
        if fault.shape == "unreachable":
            raise EndpointConnectionError(endpoint_url=url)
        if fault.shape == "connect-timeout":
            self.elapsed += call.config.connect_timeout
            raise ConnectTimeoutError(endpoint_url=url)
        if fault.shape == "read-timeout":
            self.elapsed += call.config.read_timeout
            raise ReadTimeoutError(endpoint_url=url)
        if fault.shape == LOST_ANSWER:
            self._moto(event_name=event_name, request=request, **kwargs)
            raise ConnectionClosedError(endpoint_url=url)
        if fault.shape == UNPROCESSED:
            asked = json.loads(request.body)["RequestItems"]
            return _json_answer(url, 200, {"Responses": {table: [] for table in asked}, "UnprocessedKeys": asked})
        if fault.shape == CANCELLED:
            actions = json.loads(request.body)["TransactItems"]
            reasons = [{"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity of your "
                        "table or index."}] + [{"Code": "None"}] * (len(actions) - 1)
            return _json_answer(url, 400, {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                           f"[{', '.join(r['Code'] for r in reasons)}]",
                "CancellationReasons": reasons}, error="TransactionCanceledException")
        status, code = _ERRORS.get(call.service, _DEFAULT_ERRORS)[fault.shape]
        return _error_answer(url, call.protocol, status, code)

    def _sleep(self, seconds: float) -> None:
        self.elapsed += seconds


def _json_answer(url: str, status: int, body: dict[str, Any], error: str = "") -> AWSResponse:
    """A DynamoDB answer (JSON 1.0) of our own making."""
    from moto.core.botocore_stubber import MockRawResponse

    headers = {"content-type": "application/x-amz-json-1.0", **({"x-amzn-ErrorType": error} if error else {})}
    return AWSResponse(url, status, HTTPHeaders(headers), MockRawResponse(json.dumps(body)))


def _error_answer(url: str, protocol: str, status: int, code: str) -> AWSResponse:
    from moto.core.botocore_stubber import MockRawResponse

    message = "injected fault"
    if protocol == "rest-xml":  # S3
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault</RequestId></Error>"
        headers = {"content-type": "application/xml"}
    elif protocol == "query":  # SNS
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
                "<RequestId>fault</RequestId></ErrorResponse>")
        headers = {"content-type": "text/xml"}
    else:  # json (DynamoDB, Streams, SQS, Secrets Manager) and rest-json (IoT data plane)
        body = json.dumps({"__type": code, "message": message})
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}
    return AWSResponse(url, status, HTTPHeaders(headers), MockRawResponse(body))
