"""`POST|GET /devices/{vendor}/{deviceNum}/commands` (API Gateway HTTP API, payload 2.0, IAM
authorization) <-> devicegate.commands.service, on Powertools' APIGatewayHttpResolver. Each
refusal maps to exactly one answer, in ANSWERS; the resolver routes, and calls those as its
exception handlers.

API Gateway refuses unsigned or unauthorized requests with 403 before the function runs; the
function checks the authorizer context again (`require_iam`, before every route), so a route
deployed without IAM (or the local stack without a signature) never sends a command on behalf of
nobody.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from devicegate.commands.service import CommandService
from devicegate.commands.wiring import command_service
from devicegate.core.commands import (
    MAX_BODY_BYTES,
    CommandError,
    DuplicateRequest,
    InvalidCommand,
    NotConfigured,
    NotWaiting,
    PublishFailed,
    RateLimited,
    Requester,
    UnknownDevice,
)
from devicegate.core.errors import FieldProblem, InvalidPayload, PayloadTooLarge, StorageUnavailable
from devicegate.core.fields import TOPIC_ID
from devicegate.core.timeutil import now_utc
from devicegate.infra.http import body_bytes, json_headers, json_text
from devicegate.infra.observability import logger

MAX_LIST = 200
DEFAULT_LIST = 50
#: API Gateway matched `{deviceNum}` before the function ran and hands it over in pathParameters,
#: which the routes read. So the resolver's pattern takes any device segment (a regex, as
#: Powertools' catch-all routes are written): its own `<deviceNum>` refuses characters API Gateway
#: passes (a decoded slash or newline), which would turn the 400 naming deviceNum into a 404.
ROUTE = "/devices/{vendor}/(?s:.*)/commands"
#: Cancel a waiting command: `POST /devices/{vendor}/{deviceNum}/commands/{commandId}/cancel`.
CANCEL_ROUTE = ROUTE + "/(?s:[^/]*)/cancel"


class Unsigned(CommandError):
    """No IAM identity in the authorizer context."""


def command_api(vendor: str) -> APIGatewayHttpResolver:
    """The vendor's command routes. Build it once per environment (the handler module does, at
    import): routes are compiled as they are registered, each one's middleware stack on its first
    request."""
    # debug=False whatever POWERTOOLS_DEV says: its debug mode prints every event (bodies, callers)
    # and answers an unexpected error with its traceback.
    api = APIGatewayHttpResolver(debug=False)
    route = ROUTE.format(vendor=re.escape(vendor))

    def event() -> dict[str, Any]:
        return api.current_event.raw_event

    def require_iam(app: APIGatewayHttpResolver, next_middleware: Callable[..., Response]) -> Response:
        requester = requester_of(event())
        if requester is None:
            raise Unsigned()
        app.append_context(requester=requester)
        return next_middleware(app)

    @api.post(route)
    def send() -> Response:
        return _send(command_service(vendor), event(), api.context["requester"])

    @api.get(route)
    def list_commands() -> Response:
        return _list(command_service(vendor), event())

    @api.post(CANCEL_ROUTE.format(vendor=re.escape(vendor)))
    def cancel() -> Response:
        return _cancel(command_service(vendor), event())

    api.use([require_iam])
    for error, answer in ANSWERS.items():
        api.exception_handler(error)(lambda exc, answer=answer: answer(exc, vendor, _device(event())))
    return api


def requester_of(event: dict[str, Any]) -> Requester | None:
    iam = ((event.get("requestContext") or {}).get("authorizer") or {}).get("iam") or {}
    if not iam.get("userArn"):
        return None
    return Requester(str(iam["userArn"]), str(iam.get("accountId") or ""), str(iam.get("userId") or ""))


def _send(service: CommandService, event: dict[str, Any], requester: Requester) -> Response:
    context = event.get("requestContext") or {}
    view = service.send(_device(event), _document(event), requester, str(context.get("requestId", "")), now_utc())
    path = (context.get("http") or {}).get("path") or event.get("rawPath") or ""
    return _json(202, view, {"location": f"{path}?id={view['commandId']}"})


def _document(event: dict[str, Any]) -> Any:
    from devicegate.core import jsonbody

    raw = body_bytes(event)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(len(raw), MAX_BODY_BYTES)
    return jsonbody.loads(raw)


def _list(service: CommandService, event: dict[str, Any]) -> Response:
    device, query = _device(event), event.get("queryStringParameters") or {}
    problems = []
    limit_text = query.get("limit", str(DEFAULT_LIST))
    # ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
    if not (re.fullmatch(r"[0-9]{1,3}", limit_text) and 1 <= int(limit_text) <= MAX_LIST):
        problems.append(FieldProblem("limit", f"a whole number from 1 to {MAX_LIST}"))
    if not service.protocol.valid_device(device):
        problems.append(FieldProblem("deviceNum", TOPIC_ID.problem))
    for name in ("id", "before"):
        value = query.get(name)
        if value is not None and not re.fullmatch(r"[0-9A-Za-z-]{1,64}", value):
            problems.append(FieldProblem(name, "a command id"))
    if problems:
        raise InvalidCommand("invalid query", problems)
    limit = int(limit_text)
    if query.get("id"):
        found = service.list(device, command_id_=query["id"])
        if not found:
            return _json(404, {"message": "no such command", "errors": [
                {"field": "id", "problem": "no command with this id for this device"}]})
        return _json(200, found[0])
    commands = service.list(device, limit=limit, before=query.get("before"))
    answer: dict[str, Any] = {"deviceNum": device, "commands": commands}
    if len(commands) == limit:
        answer["next"] = commands[-1]["commandId"]  # pass as ?before= for the older ones
    return _json(200, answer)


def _cancel(service: CommandService, event: dict[str, Any]) -> Response:
    device = _device(event)
    ident = (event.get("pathParameters") or {}).get("commandId", "")
    problems = []
    if not service.protocol.valid_device(device):
        problems.append(FieldProblem("deviceNum", TOPIC_ID.problem))
    if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", ident):
        problems.append(FieldProblem("commandId", "a command id"))
    if problems:
        raise InvalidCommand("invalid cancel", problems)
    return _json(200, service.cancel(device, ident, now_utc()))


def _device(event: dict[str, Any]) -> str:
    return (event.get("pathParameters") or {}).get("deviceNum", "")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    # content_type stays None: Powertools would add it as "Content-Type" and serialize the body
    # itself; the header is lower-case and the body compact on every route of the gateway.
    return Response(status_code=status, body=json_text(body), headers=json_headers(headers))


# --- each refusal, and its one answer ---------------------------------------------------------------

def _unsigned(exc: Unsigned, vendor: str, device: str) -> Response:
    logger.info("command request without IAM identity refused", extra={"vendor": vendor})
    return _json(403, {"message": "forbidden: sign the request with AWS SigV4 (IAM authorization)"})


def _invalid_command(exc: InvalidCommand, vendor: str, device: str) -> Response:
    logger.info("command refused", extra={"vendor": vendor, "reason": exc.reason,
                                          "fields": [p.field for p in exc.problems]})
    return _json(400, {"message": exc.reason, "errors": [p.as_dict() for p in exc.problems]})


def _invalid_body(exc: InvalidPayload, vendor: str, device: str) -> Response:
    return _json(400, {"message": exc.reason, "errors": [p.as_dict() for p in exc.problems]})


def _too_large(exc: PayloadTooLarge, vendor: str, device: str) -> Response:
    return _json(413, {"message": f"body over {exc.limit} bytes",
                       "errors": [{"field": "body", "problem": f"at most {exc.limit} bytes"}]})


def _unknown_device(exc: UnknownDevice, vendor: str, device: str) -> Response:
    return _json(404, {"message": "unknown device", "errors": [
        {"field": "deviceNum", "problem": f"no {vendor} device with this number has reported to the gateway"}]})


def _rate_limited(exc: RateLimited, vendor: str, device: str) -> Response:
    logger.info("command rate limited", extra={"vendor": vendor, "device": device})
    return _json(429, {"message": f"too many commands for this device: at most {exc.limit} a minute",
                       "limit": exc.limit, "retryAfterSeconds": exc.retry_after_s},
                 {"retry-after": str(exc.retry_after_s)})


def _duplicate(exc: DuplicateRequest, vendor: str, device: str) -> Response:
    if exc.same and exc.command is not None:
        return _json(200, exc.command)  # the same request again: the command it created
    return _json(409, {"message": "clientToken already used", "errors": [
        {"field": "clientToken", "problem": "already used for a different command of this device"}]})


def _publish_failed(exc: PublishFailed, vendor: str, device: str) -> Response:
    if exc.sent_unknown:
        # It may well have gone out: no Retry-After, or a retrying app would send it twice.
        # Accepted and pending; its status (?id=) tells whether the device answered.
        return _json(202, {"message": "stored; publishing it timed out, so it may have been sent: follow its "
                                      "status", **exc.command})
    # Not sent and stored as failed: a retry with the same clientToken would only find this
    # failed command, so the app sends it again with a new token (or none).
    return _json(503, {"message": "the command could not be published and was not sent; send it again "
                                  "with a new clientToken (or none)", **exc.command}, {"retry-after": "5"})


def _not_waiting(exc: NotWaiting, vendor: str, device: str) -> Response:
    if exc.command is None:
        return _json(404, {"message": "no such command", "errors": [
            {"field": "commandId", "problem": "no command with this id for this device"}]})
    # The command as it is: its status says why (sent, answered, over, cancelled already).
    return _json(409, {"message": f"not waiting: the command is {exc.command.get('status')}; only a queued "
                                  "command can be cancelled", **exc.command})


def _not_configured(exc: NotConfigured, vendor: str, device: str) -> Response:
    logger.error("commands not configured", extra={"vendor": vendor})
    return _json(503, {"message": str(exc)})


def _storage_unavailable(exc: StorageUnavailable, vendor: str, device: str) -> Response:
    logger.warning("command storage unavailable", extra={"vendor": vendor, "error": str(exc)})
    return _json(503, {"message": "temporarily unavailable, retry later"}, {"retry-after": "5"})


#: Every refusal of a command request, and the handler that answers it (registered on the resolver
#: as its exception handler). DuplicateRequest and PublishFailed say in their fields which of
#: their two cases they are: no answer is chosen by an error's message.
ANSWERS: dict[type[Exception], Callable[[Any, str, str], Response]] = {
    Unsigned: _unsigned,
    InvalidCommand: _invalid_command,
    InvalidPayload: _invalid_body,
    PayloadTooLarge: _too_large,
    UnknownDevice: _unknown_device,
    RateLimited: _rate_limited,
    DuplicateRequest: _duplicate,
    PublishFailed: _publish_failed,
    NotWaiting: _not_waiting,
    NotConfigured: _not_configured,
    StorageUnavailable: _storage_unavailable,
}
