"""`POST|GET /devices/{vendor}/{deviceNum}/commands` (API Gateway HTTP API, payload 2.0, IAM
authorization) <-> devicegate.commands. Each CommandError maps to exactly one answer, here.

API Gateway refuses unsigned or unauthorized requests with 403 before the function runs; the
function checks the authorizer context again, so a route deployed without IAM (or the local stack
without a signature) never sends a command on behalf of nobody.
"""

from __future__ import annotations

import re

import base64
import binascii
import json
from functools import cache
from typing import Any

from devicegate.store.commands import DynamoCommandStore
from devicegate.core.commands import MAX_BODY_BYTES, DuplicateRequest, InvalidCommand, NotConfigured, PublishFailed, RateLimited, Requester, UnknownDevice
from devicegate.commands.service import CommandService, IotDataPublisher, command_settings
from devicegate.core.errors import FieldProblem, InvalidPayload, StorageUnavailable
from devicegate.core.fields import TOPIC_ID
from devicegate.infra.observability import logger
from devicegate.core.timeutil import now_utc

MAX_LIST = 200
DEFAULT_LIST = 50


@cache
def command_service(vendor: str) -> CommandService:
    from importlib import import_module

    from devicegate.infra.aws import client
    from devicegate.infra.settings import get_settings

    settings = get_settings()
    protocol = import_module(f"devicegate.vendors.{vendor.replace('-', '_')}.commands")
    return CommandService(vendor, protocol, DynamoCommandStore(client("dynamodb"), settings.table_name),
                          IotDataPublisher(_LazyIotData()), command_settings(vendor),
                          settings.retention_for(vendor, "command"))


class _LazyIotData:
    """The iot-data client is created on the first publish: listing commands never needs it."""

    def __getattr__(self, name: str) -> Any:
        from devicegate.infra.aws import client

        return getattr(client("iot-data"), name)


def handle(vendor: str, event: dict[str, Any], service: CommandService | None = None) -> dict[str, Any]:
    context = event.get("requestContext") or {}
    method = (context.get("http") or {}).get("method", "")
    device = (event.get("pathParameters") or {}).get("deviceNum", "")
    requester = requester_of(event)
    if requester is None:
        logger.info("command request without IAM identity refused", extra={"vendor": vendor})
        return _json(403, {"message": "forbidden: sign the request with AWS SigV4 (IAM authorization)"})
    service = service or command_service(vendor)
    try:
        if method == "GET":
            return _list(service, device, event.get("queryStringParameters") or {})
        body = _body(event)
        view = service.send(device, body, requester, str(context.get("requestId", "")), now_utc())
        return _json(202, view, {"location": _location(event, view["commandId"])})
    except InvalidCommand as exc:
        logger.info("command refused", extra={"vendor": vendor, "reason": exc.reason,
                                              "fields": [p.field for p in exc.problems]})
        return _json(400, {"message": exc.reason, "errors": [p.as_dict() for p in exc.problems]})
    except InvalidPayload as exc:
        return _json(400, {"message": exc.reason, "errors": [p.as_dict() for p in exc.problems]})
    except _TooLarge:
        return _json(413, {"message": f"body over {MAX_BODY_BYTES} bytes",
                           "errors": [{"field": "body", "problem": f"at most {MAX_BODY_BYTES} bytes"}]})
    except UnknownDevice:
        return _json(404, {"message": "unknown device", "errors": [
            {"field": "deviceNum", "problem": f"no {vendor} device with this number has reported to the gateway"}]})
    except RateLimited as exc:
        logger.info("command rate limited", extra={"vendor": vendor, "device": device})
        return _json(429, {"message": f"too many commands for this device: at most {exc.limit} a minute",
                           "limit": exc.limit, "retryAfterSeconds": exc.retry_after_s},
                     {"retry-after": str(exc.retry_after_s)})
    except DuplicateRequest as exc:
        if exc.same and exc.command is not None:
            return _json(200, exc.command)  # the same request again: the command it created
        return _json(409, {"message": "clientToken already used", "errors": [
            {"field": "clientToken", "problem": "already used for a different command of this device"}]})
    except PublishFailed as exc:
        if exc.sent_unknown:
            # It may well have gone out: no Retry-After, or a retrying app would send it twice.
            # Accepted and pending; its status (?id=) tells whether the device answered.
            return _json(202, {"message": "stored; publishing it timed out, so it may have been sent: follow its "
                                          "status", **exc.command})
        # Not sent and stored as failed: a retry with the same clientToken would only find this
        # failed command, so the app sends it again with a new token (or none).
        return _json(503, {"message": "the command could not be published and was not sent; send it again "
                                      "with a new clientToken (or none)", **exc.command}, {"retry-after": "5"})
    except NotConfigured as exc:
        logger.error("commands not configured", extra={"vendor": vendor})
        return _json(503, {"message": str(exc)})
    except StorageUnavailable as exc:
        logger.warning("command storage unavailable", extra={"vendor": vendor, "error": str(exc)})
        return _json(503, {"message": "temporarily unavailable, retry later"}, {"retry-after": "5"})


def requester_of(event: dict[str, Any]) -> Requester | None:
    iam = ((event.get("requestContext") or {}).get("authorizer") or {}).get("iam") or {}
    if not iam.get("userArn"):
        return None
    return Requester(str(iam["userArn"]), str(iam.get("accountId") or ""), str(iam.get("userId") or ""))


class _TooLarge(Exception):
    pass


def _body(event: dict[str, Any]) -> Any:
    from devicegate.core import jsonbody

    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidPayload("body is not valid base64", [FieldProblem("body", "not base64")]) from None
    else:
        try:
            raw = body.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that no byte sequence stands for
            raise InvalidPayload("body is not valid Unicode", [FieldProblem("body", "not UTF-8 text")]) from None
    if len(raw) > MAX_BODY_BYTES:
        raise _TooLarge()
    return jsonbody.loads(raw)


def _list(service: CommandService, device: str, query: dict[str, str]) -> dict[str, Any]:
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


def _location(event: dict[str, Any], command_id: str) -> str:
    path = (event.get("requestContext") or {}).get("http", {}).get("path") or event.get("rawPath") or ""
    return f"{path}?id={command_id}"


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status,
            "headers": {"content-type": "application/json; charset=utf-8", **(headers or {})},
            "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")), "isBase64Encoded": False}
