"""openapi.yaml: every HTTP route of template.yaml, the vendors' webhooks with their bodies as the
gateway reads them and their answers from each adapter's answer table, and the command API with
its IAM (SigV4) authorization."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from devicegate_cli.contracts.schemas import DIALECT, ROOT, Record, model_schema

# --- the HTTP routes (openapi.yaml) ---------------------------------------------------------------

def template_routes(template: Path | None = None) -> list[dict[str, Any]]:
    """Every HttpApi event of template.yaml: method, path, function, and whether IAM authorizes it."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    document = yaml.load((template or ROOT / "template.yaml").read_text(), Loader=Loader)  # noqa: S506
    routes = []
    for name, resource in sorted(document["Resources"].items()):
        events = (resource.get("Properties") or {}).get("Events") or {}
        for event_name, event in sorted(events.items()):
            if event.get("Type") != "HttpApi":
                continue
            properties = event["Properties"]
            auth = (properties.get("Auth") or {}).get("Authorizer")
            routes.append({"method": properties["Method"].lower(), "path": properties["Path"], "function": name,
                           "event": event_name, "iam": auth == "AWS_IAM"})
    return routes


def _vendor_of(path: str) -> str:
    return path.split("/")[2]


_PROBLEMS = {"field": "data.timestamp", "problem": "expected epoch seconds"}


def _infer(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array", "items": _infer(value[0]) if value else {}}
    if isinstance(value, dict):
        return {"type": "object", "properties": {k: _infer(v) for k, v in value.items()}}
    return {"type": "null"}


def _merge_shapes(bodies: list[Any]) -> dict[str, Any]:
    """One schema for the answer bodies a status carries: every key seen, required where all have it."""
    if not all(isinstance(b, dict) for b in bodies):
        return {"anyOf": [_infer(b) for b in bodies]}
    properties: dict[str, Any] = {}
    for body in bodies:
        for key, value in body.items():
            properties.setdefault(key, _infer(value))
    required = sorted(set.intersection(*(set(b) for b in bodies)))
    return {"type": "object", "properties": properties, "required": required}


def vendor_answers(vendor: str) -> dict[str, Any]:
    """Each status the vendor's adapter answers with (its answer table, core/adapter.py Outcome),
    its body's shape and every outcome's example, with and without the fields at fault."""
    from devicegate.core.adapter import Outcome
    from devicegate.core.errors import FieldProblem
    from devicegate.vendors import get_adapter

    adapter = get_adapter(vendor)
    by_status: dict[int, list[tuple[str, Any, dict[str, str]]]] = {}
    for outcome in Outcome:
        plain = adapter.answer(outcome)
        by_status.setdefault(plain.status, []).append((outcome.value, plain.body, plain.headers))
        if outcome in (Outcome.PARTIAL, Outcome.INVALID):
            detailed = adapter.answer(outcome, [FieldProblem(**_PROBLEMS)], "invalid record")
            by_status.setdefault(detailed.status, []).append(
                (f"{outcome.value}, naming the fields at fault", detailed.body, detailed.headers))
    if vendor == "ai-camera":
        by_status[200].extend(_heartbeat_answers())
    answers: dict[str, Any] = {}
    for status, seen in sorted(by_status.items()):
        outcomes = sorted({name.split(",")[0] for name, _, _ in seen})
        media = {"schema": _merge_shapes([body for _, body, _ in seen]),
                 "examples": {re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-"): {"summary": name, "value": body}
                              for name, body, _ in seen}}
        answer: dict[str, Any] = {"description": f"{', '.join(outcomes)} ({_MEANING[status]})",
                                  "content": {"application/json": media}}
        header_names = sorted({h for _, _, headers in seen for h in headers})
        if header_names:
            answer["headers"] = {h: {"schema": {"type": "string"}} for h in header_names}
        answers[str(status)] = answer
    return answers


def _heartbeat_answers() -> list[tuple[str, Any, dict[str, str]]]:
    """The AI camera's heartbeat is answered with its configuration (accepted_answer): the documented
    heartbeat of events/, answered without a configuration item and with events/'s example one, at
    a fixed time so the file does not change with the clock."""
    from datetime import UTC, datetime

    from devicegate.core.adapter import Outcome
    from devicegate.core.envelope import RawPush
    from devicegate.vendors.ai_camera.adapter import AiCameraAdapter

    at = datetime(2025, 2, 7, 8, 0, tzinfo=UTC)
    adapter = AiCameraAdapter(clock=lambda: at)
    fixture = json.loads((ROOT / "events" / "ai-camera" / "http-doc-heartbeat.json").read_text())
    events = adapter.normalize(RawPush(vendor="ai-camera", transport="http", body=fixture["body"].encode()), at)
    config = json.loads((ROOT / "events" / "ai-camera" / "config-example.json").read_text())
    found = []
    for name, given in (("heartbeat, the deployment's default configuration", None),
                        ("heartbeat, the camera's configuration item", config)):
        answer = adapter.accepted_answer(Outcome.ACCEPTED, list(events), given)
        found.append((name, answer.body, answer.headers))
    return found


_MEANING = {200: "delivered: stored now or before, or refused for good and kept in quarantine where the vendor "
                 "must not retry", 400: "invalid: kept in quarantine, do not retry", 403: "wrong or missing token",
            413: "too large: kept in quarantine", 503: "not stored: retry later"}


def _wire_body(vendor: str, recs: list[Record], schemas: dict[str, Any]) -> dict[str, Any]:
    """A vendor's webhook body on the wire: its records' wire schemas into components, and the body."""
    refs: dict[str, dict[str, Any]] = {}
    for record in recs:
        for model in record.wire:
            name = f"{vendor}.{model.__name__}"
            if name in schemas:
                refs[record.kind] = {"$ref": f"#/components/schemas/{name}"}
                continue
            # By alias: the names vendors send (populate_by_name takes the field's name as well).
            schema, defs = model_schema(model, f"#/components/schemas/{vendor}.", wire=True)
            schemas[name] = schema
            schemas.update({f"{vendor}.{n}": d for n, d in defs.items()})
            refs.setdefault(record.kind, {"$ref": f"#/components/schemas/{name}"})
            if len(record.wire) > 1:
                refs[f"{record.kind}:{model.__name__}"] = {"$ref": f"#/components/schemas/{name}"}
    any_record = {"anyOf": [refs[k] for k in sorted(refs) if ":" not in k or k.split(":")[0] in refs]}
    any_record["anyOf"] = _unique(any_record["anyOf"])
    if vendor == "jointech":
        return any_record
    if vendor == "face-terminal":
        push, _ = model_schema(_model("face_terminal", "Push"), "#/components/schemas/face-terminal.", wire=True)
        push["properties"]["data"] = {**push["properties"]["data"], **any_record}
        push["properties"]["data"].pop("type", None)
        push["properties"]["data"].pop("additionalProperties", None)
        schemas["face-terminal.Push"] = push
        return {"$ref": "#/components/schemas/face-terminal.Push"}
    if vendor == "senselink":
        from devicegate.vendors.senselink.models import HEARTBEAT, KINDS

        bodies = []
        for name, code_field, codes in (("Subscription", "eventType", sorted(KINDS)),
                                        ("Frame", "code", sorted({*KINDS, HEARTBEAT}))):
            envelope, _ = model_schema(_model("senselink", name), "#/components/schemas/senselink.", wire=True)
            envelope["properties"]["data"] = {"description": envelope["properties"]["data"].get("description", ""),
                                              "anyOf": [*any_record["anyOf"], {"type": "object"}, {"type": "null"}]}
            # The codes the gateway stores (or, a heartbeat, takes as contact); the others (20000
            # connected, 20002 denied...) are answered as invalid and kept in quarantine.
            field = envelope["properties"][code_field]
            field.pop("anyOf", None)
            field["enum"] = [*codes, *map(str, codes)]
            schemas[f"senselink.{name}"] = envelope
            bodies.append({"$ref": f"#/components/schemas/senselink.{name}"})
        return {"anyOf": bodies}
    if vendor == "mettax":
        schemas["mettax.Record"] = any_record
        one = {"$ref": "#/components/schemas/mettax.Record"}
        return {"anyOf": [
            {"type": "object", "required": ["data"], "properties": {"data": {"anyOf": [
                {"type": "string", "contentMediaType": "application/json",
                 "description": "a record or an array of records, as JSON text"},
                one, {"type": "array", "items": one}]}}},
            one]}
    if vendor == "ai-camera":
        return any_record
    raise KeyError(f"no webhook body for {vendor}: add it to devicegate_cli/contracts/openapi.py _wire_body")


def _unique(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _model(package: str, name: str) -> type[BaseModel]:
    from importlib import import_module

    model: type[BaseModel] = getattr(import_module(f"devicegate.vendors.{package}.models"), name)
    return model


def _form_body() -> dict[str, Any]:
    return {"type": "object", "required": ["data"], "properties": {"data": {
        "type": "string", "contentMediaType": "application/json",
        "description": "a record or an array of records (components/schemas/mettax.Record) as JSON text"}}}


_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "the vendor's webhook token (secret: the stack's <Vendor>TokenSecret, current or previous)"}


def _path_parameters(path: str, vendor: str) -> list[dict[str, Any]]:
    from devicegate.vendors import get_adapter

    parameters = []
    for name in re.findall(r"{(\w+)}", path):
        if name == "token":
            parameters.append(_TOKEN)
        elif name == "kind" or name == "service":
            kinds = sorted(get_adapter(vendor).kinds)
            parameters.append({"name": name, "in": "path", "required": True, "schema": {"enum": kinds},
                               "description": "the record kind: the body is that kind's record"})
        elif name == "deviceNum":
            parameters.append({"name": name, "in": "path", "required": True,
                               "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.:\-]{1,64}$"},
                               "description": "the Jointech device number (assetId)"})
        else:
            parameters.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    return parameters


def openapi(recs: list[Record], routes: list[dict[str, Any]]) -> dict[str, Any]:
    from devicegate.commands.models import CommandList, CommandRefusal, CommandRequest, CommandView
    from devicegate.vendors import get_adapter

    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    bodies: dict[str, Any] = {}
    for route in routes:
        path, vendor = route["path"], _vendor_of(route["path"])
        if route["iam"]:
            continue
        if vendor not in bodies:
            bodies[vendor] = _wire_body(vendor, [r for r in recs if r.vendor == vendor and r.wire], schemas)
        adapter = get_adapter(vendor)
        content: dict[str, Any] = {"application/json": {"schema": bodies[vendor]}}
        if vendor == "jointech":
            content["text/plain"] = {"schema": bodies[vendor], "description": "the same JSON, as some push "
                                                                                "engines label it"}
        if vendor == "mettax":
            content["application/x-www-form-urlencoded"] = {"schema": _form_body()}
            content["multipart/form-data"] = {"schema": _form_body()}
        parameters = _path_parameters(path, vendor)
        parameters += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "the device, for records that do not name theirs"}
                       for q in adapter.route_query_params]
        paths.setdefault(path, {})[route["method"]] = {
            "operationId": f"{route['function']}.{route['event']}",
            "tags": [vendor],
            "summary": f"{vendor} push ({route['function']})",
            "description": f"Bodies up to {adapter.max_body_bytes} bytes; larger ones are answered 413 and kept in "
                           f"quarantine. Record kinds: {', '.join(adapter.kinds)}.",
            "parameters": parameters,
            "requestBody": {"required": True, "content": content},
            "responses": vendor_answers(vendor),
        }
    command_models = (CommandRequest, CommandView, CommandList, CommandRefusal)
    for model in command_models:
        schema, defs = model_schema(model, "#/components/schemas/commands.", wire=False)
        schemas[f"commands.{model.__name__}"] = schema
        schemas.update({f"commands.{n}": d for n, d in defs.items()})
    request, _ = model_schema(CommandRequest, "#/components/schemas/commands.", wire=True)
    schemas["commands.CommandRequest"] = request
    for route in routes:
        if not route["iam"]:
            continue
        paths.setdefault(route["path"], {})[route["method"]] = _command_operation(route)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": DIALECT,
        "info": {"title": "devicegate HTTP API", "version": "1",
                 "description": "The vendors' webhooks (unauthenticated at the API: each checks its token in the "
                                "path or a header) and the command API for apps (IAM, SigV4). Generated from "
                                "template.yaml and the models by `./run contracts`; tests/unit/test_contracts.py "
                                "fails when this file and the code differ. Request bodies are described as the "
                                "gateway reads them: numbers may be text written as JSON numbers, text nulls "
                                "mean absent, fields it does not know are kept."},
        "servers": [{"url": "https://{apiId}.execute-api.{region}.amazonaws.com",
                     "variables": {"apiId": {"default": "abc123"}, "region": {"default": "us-east-1"}},
                     "description": "the stack's HttpApi (outputs: each vendor's webhook URL)"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"sigv4": {
                "type": "apiKey", "name": "Authorization", "in": "header",
                "x-amazon-apigateway-authtype": "awsSigv4",
                "description": "AWS Signature Version 4 (IAM authorization, the route's AWS_IAM authorizer): sign "
                               "with credentials allowed execute-api:Invoke on the JointechCommandsInvokeArn "
                               "output; unsigned or unauthorized requests are answered 403 by API Gateway"}},
        },
    }


def _command_operation(route: dict[str, Any]) -> dict[str, Any]:
    ref = "#/components/schemas/commands."
    refusal = {"application/json": {"schema": {"$ref": ref + "CommandRefusal"}}}
    view = {"application/json": {"schema": {"$ref": ref + "CommandView"}}}
    retry = {"retry-after": {"schema": {"type": "string"}, "description": "seconds"}}
    common = {
        "400": {"description": "invalid request: every field at fault named", "content": refusal},
        "403": {"description": "unsigned, or the IAM identity may not invoke this route", "content": refusal},
        "404": {"description": "no such device (or, with ?id=, no such command)", "content": refusal},
        "503": {"description": "commands not configured, storage unavailable, or the publish refused (the "
                               "command stored as failed: send again with a new clientToken)",
                "content": refusal, "headers": retry},
    }
    parameters = _path_parameters(route["path"], "jointech")
    operation_id = f"{route['function']}.{route['event']}"
    if not route["path"].endswith("}/commands"):
        # A command route this generator does not know yet: described by what every IAM route shares,
        # so it is in the contract (and the route test) until its own description is added here.
        return {"operationId": operation_id, "tags": ["commands"], "security": [{"sigv4": []}],
                "summary": f"{route['method'].upper()} {route['path']} (docs/commands.md)", "parameters": parameters,
                "responses": common}
    if route["method"] == "post":
        return {"operationId": f"{route['function']}.{route['event']}", "tags": ["commands"],
                "summary": "send a command to a Jointech device", "security": [{"sigv4": []}],
                "parameters": parameters,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": ref + "CommandRequest"}}}},
                "responses": {
                    "200": {"description": "the same clientToken again: the command it created", "content": view},
                    "202": {"description": "stored and published (or published with an unknown outcome: follow "
                                           "its status)", "content": view,
                            "headers": {"location": {"schema": {"type": "string"},
                                                     "description": "this route with ?id={commandId}"}}},
                    **common,
                    "409": {"description": "clientToken already used for another command", "content": refusal},
                    "413": {"description": "body over 4096 bytes", "content": refusal},
                    "429": {"description": "too many commands for this device this minute", "content": refusal,
                            "headers": retry}}}
    query = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200,
                                                         "default": 50}},
             {"name": "before", "in": "query", "schema": {"type": "string"},
              "description": "a commandId: the commands older than it"},
             {"name": "id", "in": "query", "schema": {"type": "string"}, "description": "one command"}]
    return {"operationId": f"{route['function']}.{route['event']}", "tags": ["commands"],
            "summary": "a Jointech device's commands, newest first, or one with ?id=", "security": [{"sigv4": []}],
            "parameters": parameters + query,
            "responses": {"200": {"description": "the list (or, with ?id=, the command)", "content": {
                "application/json": {"schema": {"anyOf": [{"$ref": ref + "CommandList"},
                                                          {"$ref": ref + "CommandView"}]}}}},
                **common}}
