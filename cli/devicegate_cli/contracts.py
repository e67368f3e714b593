"""docs/contracts, generated from the models: `./run contracts` writes them, tests/unit/test_contracts.py
regenerates them in memory and fails on any difference.

- `openapi.yaml`: every HTTP route of template.yaml (the vendors' webhooks with their request bodies
  and answers, the command API with its IAM authorization);
- `asyncapi.yaml`: the events queue (and the fan-out's per-app queues), one CloudEvents message per
  event type, and the Jointech MQTT topics of the IoT rules and of commands;
- `schemas/<type>.json`: the JSON Schema (2020-12) of each type's `data`, the envelope as stored,
  with `data` typed by the vendor's model for that kind; `schemas/cloudevent.json`, the message.

Two forms of a vendor model are written, because the gateway reads more than it stores:
- on the wire (OpenAPI, MQTT): what the gateway accepts. Numbers may come as text written as JSON
  numbers, text nulls ("null", "") stand for absent values, JSON documents may come inside strings,
  times in the forms each field documents (core/fields.py);
- as stored (the queue, the table): what make_event kept: numbers as numbers, times as ISO 8601
  text, personal fields as the deployment's PersonalData keeps them (as sent, masked to text, or
  absent: core/personal.py), photos as references to their S3 objects.

Not imported by any function: this runs on a contributor's machine and in the tests. Output is
deterministic: keys sorted, no timestamps, the same on Python 3.11 and 3.13.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

ROOT = Path(__file__).resolve().parents[2]
OUT = Path("docs/contracts")
DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_URN = "urn:devicegate:schema:{name}:{version}"
#: Kinds the gateway itself writes about every vendor's devices (store/liveness.py).
GATEWAY_KINDS = ("device.offline", "device.online")
#: The AI camera stores any operator it does not know as its own kind: those share one schema.
OTHER = "other"


# --- JSON Schema of a model, on the wire and as stored ---------------------------------------------

#: What VendorModel reads as absent (core/fields.py _NULL_FORMS), and numbers written as text.
_NULLS = r"|null|NULL|Null|none|None|NONE|nil|Nil|NIL|undefined|Undefined| |  "


def _number_text(pattern: str) -> str:
    return f"^(?:{pattern}{_NULLS})$"


class _Wire(GenerateJsonSchema):
    """Validation schemas as the gateway reads a body: a before-validator's field takes the text
    forms the validator reads (times, JSON inside strings) beside its type."""

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        inner = super().function_before_schema(schema)
        if schema["schema"]["type"] in ("model-fields", "model"):
            # A model's own before-validator (VendorModel's text nulls) reads the object it gets.
            return inner
        if _allows_time(inner):
            # ISO 8601 text or an epoch number, as the field documents (core/fields.py).
            return {"anyOf": [inner, {"type": "number"}]}
        if inner.get("type") == "string":
            return inner
        return {"anyOf": [inner, {"type": "string"}]}


def _allows_time(schema: JsonSchemaValue) -> bool:
    if schema.get("format") == "date-time":
        return True
    return any(_allows_time(s) for s in schema.get("anyOf", []) if isinstance(s, dict))


#: pydantic's lax booleans: true/false, yes/no, on/off, t/f, y/n in any case, and 0/1.
_BOOL_TEXT = r"[Tt](?:[Rr][Uu][Ee])?|[Ff](?:[Aa][Ll][Ss][Ee])?|[Yy](?:[Ee][Ss])?|[Nn][Oo]?|[Oo](?:[Nn]|[Ff][Ff])|[01]"


def _walk(schema: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    # Children first: what `visit` puts in a node is not visited again.
    if isinstance(schema, dict):
        for value in list(schema.values()):
            _walk(value, visit)
        visit(schema)
    elif isinstance(schema, list):
        for value in schema:
            _walk(value, visit)


def _lax(schema: dict[str, Any]) -> None:
    """What VendorModel reads beside a field's type (core/fields.py): numbers written as JSON
    numbers in text (INT_TEXT, NUMBER_TEXT), ids and text sent as numbers (coerce_numbers_to_str),
    booleans as pydantic's lax words, text nulls for absent values."""
    from devicegate.core.fields import INT_TEXT, NUMBER_TEXT

    kind = schema.get("type")
    if kind in ("integer", "number"):
        pattern = INT_TEXT.pattern if kind == "integer" else NUMBER_TEXT.pattern
        bounds = {k: schema.pop(k) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
                  if k in schema}
        del schema["type"]
        schema["anyOf"] = [{"type": kind, **bounds}, {"type": "string", "pattern": _number_text(pattern)}]
    elif kind == "boolean":
        del schema["type"]
        schema["anyOf"] = [{"type": "boolean"}, {"enum": [0, 1]}, {"type": "string", "pattern": _number_text(_BOOL_TEXT)}]
    elif kind == "string" and not {"enum", "const", "format"} & set(schema):
        schema["type"] = ["string", "number"]


def model_schema(model: type[BaseModel], ref_prefix: str, *, wire: bool, by_alias: bool = True,
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the model's schema, its $defs), references as `{ref_prefix}{Model}`. `wire`: as a vendor's
    body is read (a VendorModel's laxness), else as stored; other models (the gateway's own, such
    as the command request) are read as their schema says."""
    from devicegate.core.fields import VendorModel

    if not issubclass(model, VendorModel):
        schema = model.model_json_schema(by_alias=by_alias, ref_template=ref_prefix + "{model}",
                                         mode="validation" if wire else "serialization")
        return schema, schema.pop("$defs", {})
    schema = model.model_json_schema(by_alias=by_alias, ref_template=ref_prefix + "{model}",
                                     schema_generator=_Wire if wire else GenerateJsonSchema,
                                     mode="validation" if wire else "serialization")
    defs = schema.pop("$defs", {})
    if wire:
        _walk(schema, _lax)
        _walk(defs, _lax)
    else:
        _walk(schema, _stored)
        _walk(defs, _stored)
    return schema, defs


MEDIA_REF = {"type": "object", "description": "a photo stored as its own S3 object (PayloadBucketName): its key, "
             "content type and size", "required": ["key", "contentType", "bytes"],
             "properties": {"key": {"type": "string"}, "contentType": {"type": "string"}, "bytes": {"type": "integer"}}}


def _stored(schema: dict[str, Any]) -> None:
    """A model as make_event stored it: None values left out (a nullable field is never required),
    personal fields as PersonalData keeps them (core/personal.py: as sent, masked to text, or absent;
    PINs and passwords always absent), photos as their S3 references."""
    from devicegate.core import personal

    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    required = set(schema.get("required", []))
    for name, field in list(properties.items()):
        category = personal.category_of(name)
        if _nullable(field):
            required.discard(name)
        if category is None:
            continue
        required.discard(name)
        kept: list[Any] = [field, {"type": "string", "description": "masked: all but the last 4 characters *"}]
        if category == "photo":
            kept.append(MEDIA_REF)
        properties[name] = {
            "anyOf": kept,
            "description": (f"personal data ({category}): " + (
                "never stored" if category in personal.ALWAYS_DROPPED else
                "as sent, masked or absent, as the deployment's PersonalData says")),
        }
    if required:
        schema["required"] = sorted(required)
    else:
        schema.pop("required", None)


def _nullable(field: dict[str, Any]) -> bool:
    return any(option.get("type") == "null" for option in field.get("anyOf", []) if isinstance(option, dict))


# --- the records each vendor stores, and accepts ---------------------------------------------------

class Record:
    """One vendor kind: the models its records are read with (on the wire) and stored as."""

    def __init__(self, vendor: str, kind: str, wire: Sequence[type[BaseModel]], stored: Callable[[str], Any],
                 by_alias: bool = False):
        self.vendor, self.kind, self.wire, self.by_alias = vendor, kind, wire, by_alias
        self._stored = stored

    @property
    def type(self) -> str:
        return f"devicegate.{self.vendor}.{self.kind}"

    def stored(self, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
        result: tuple[dict[str, Any], dict[str, Any]] = self._stored(prefix)
        return result


def _as_stored(model: type[BaseModel], by_alias: bool = False) -> Callable[[str], Any]:
    return lambda prefix: model_schema(model, prefix, wire=False, by_alias=by_alias)


def records() -> list[Record]:
    """Every vendor kind, from the adapters' registries (a kind added there appears here)."""
    from devicegate.vendors import get_adapter, vendor_names

    found: list[Record] = []
    for vendor in vendor_names():
        adapter = get_adapter(vendor)
        for kind in adapter.kinds:
            found.append(_record(vendor, kind))
        if vendor == "ai-camera":
            found.append(_record(vendor, OTHER))
        found.extend(_gateway_record(vendor, kind) for kind in GATEWAY_KINDS)
    return found


def _record(vendor: str, kind: str) -> Record:
    if vendor == "jointech":
        from devicegate.vendors.jointech.models import RECORD_MODELS as JOINTECH

        return Record(vendor, kind, [JOINTECH[kind]], _as_stored(JOINTECH[kind]))
    if vendor == "mettax":
        from devicegate.vendors.mettax.models import FACE_CHECK_MODELS
        from devicegate.vendors.mettax.models import RECORD_MODELS as METTAX

        if kind == "face-check":
            parts = [model for _, model in sorted(FACE_CHECK_MODELS.values())]
            return Record(vendor, kind, parts, _face_check)
        return Record(vendor, kind, [METTAX[kind]], _as_stored(METTAX[kind]))
    if vendor == "face-terminal":
        from devicegate.vendors.face_terminal.models import RECORD_MODELS as FACE

        model = dict(FACE.values())[kind]
        return Record(vendor, kind, [model], _as_stored(model, by_alias=True), by_alias=True)
    if vendor == "senselink":
        from devicegate.vendors.senselink.models import KINDS as SENSELINK

        record_model = cast(type[BaseModel], dict(SENSELINK.values())[kind])
        return Record(vendor, kind, [record_model], _senselink(record_model))
    if vendor == "ai-camera":
        from devicegate.vendors.ai_camera.models import HeartbeatMessage, Message

        if kind == OTHER:
            return Record(vendor, kind, [Message], _as_wire(Message))
        return Record(vendor, kind, [HeartbeatMessage], _heartbeat)
    raise KeyError(f"no contract for {vendor} {kind}: add it to devicegate_cli/contracts.py _record")


def _as_wire(model: type[BaseModel]) -> Callable[[str], Any]:
    # Stored as it came (the AI camera's undocumented operators: the whole message, unread).
    return lambda prefix: model_schema(model, prefix, wire=True)


def _senselink(model: type[BaseModel]) -> Callable[[str], Any]:
    def build(prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
        schema, defs = model_schema(model, prefix, wire=False)
        schema["properties"]["messageId"] = {"type": "string", "description": "the Event Subscription's "
                                             "messageId, when it came that way"}
        return schema, defs
    return build


def _face_check(prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The assembled face check (vendors/mettax/adapter.py assemble): the result's fields, the
    picture's imageUrl and status as pictureStatus/pictureStatusName, `complete` and `missing`.
    A picture that came alone has no result fields: only id, deviceId, complete, missing are sure."""
    from devicegate.vendors.mettax.models import FaceCheckPicture, FaceCheckResult

    result, defs = model_schema(FaceCheckResult, prefix, wire=False)
    picture, more = model_schema(FaceCheckPicture, prefix, wire=False)
    defs.update(more)
    properties = {k: v for k, v in result["properties"].items() if k != "messageType"}
    properties["imageUrl"] = picture["properties"]["imageUrl"]
    properties["pictureStatus"] = picture["properties"]["status"]
    properties["pictureStatusName"] = picture["properties"]["statusName"]
    properties["complete"] = {"type": "boolean", "description": "both parts came (else the sweep assembled "
                                                                "what came after 10 minutes)"}
    properties["missing"] = {"type": "array", "items": {"enum": ["result", "picture"]},
                             "description": "the parts that never came"}
    schema = {"type": "object", "title": "FaceCheck", "additionalProperties": True, "properties": properties,
              "required": ["complete", "deviceId", "id", "missing"],
              "description": "Face Check as apps see it: the comparison result and the driver picture, sent as two "
                             "messages with the same id, assembled into one record"}
    return schema, defs


def _heartbeat(prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The heartbeat as stored (vendors/ai_camera/adapter.py _heartbeat): deviceInfo's fields, the
    beat's eventId, time (ISO 8601 with the box's offset), strategyVersion and timeOffset, and the
    undocumented fields under `extra`."""
    from devicegate.vendors.ai_camera.models import DeviceInfo, HeartbeatInfo

    device, defs = model_schema(DeviceInfo, prefix, wire=False)
    info, more = model_schema(HeartbeatInfo, prefix, wire=False)
    defs.update(more)
    properties = dict(device["properties"])
    properties["eventId"] = info["properties"]["eventId"]
    properties["strategyVersion"] = info["properties"].get("strategyVersion", {})
    properties["time"] = {"type": "string", "description": "the beat's time as the box gave it, ISO 8601 with "
                                                           "its offset"}
    properties["timeOffset"] = {"type": "string", "pattern": r"^[+-][0-9]{2}:[0-9]{2}$",
                                "description": "the box's UTC offset, the answer's clock is given in"}
    properties["extra"] = {"type": "object", "description": "fields the document does not list, by where they "
                                                            "came: top level, deviceInfo, info"}
    schema = {"type": "object", "title": "Heartbeat", "additionalProperties": False, "properties": properties,
              "required": sorted({"eventId", "time", "timeOffset"} | set(device.get("required", [])))}
    return schema, defs


def _gateway_record(vendor: str, kind: str) -> Record:
    from devicegate.client.models import DeviceOffline, DeviceOnline

    model = DeviceOffline if kind == "device.offline" else DeviceOnline
    return Record(vendor, kind, [], _as_stored(model))


# --- the event type schemas (schemas/<type>.json) ----------------------------------------------------

def urn(name: str) -> str:
    from devicegate.outbox.messages import SCHEMA_VERSION

    return SCHEMA_URN.format(name=name, version=SCHEMA_VERSION)


def envelope_schema(record: Record) -> dict[str, Any]:
    """The envelope (client/models.py Event) with `data` typed by the record's stored schema."""
    from devicegate.client.models import Event

    envelope = Event.model_json_schema(ref_template="#/$defs/{model}")
    defs = envelope.pop("$defs", {})
    data, data_defs = record.stored(f"#/$defs/{record.vendor}.")
    defs.update({f"{record.vendor}.{name}": schema for name, schema in data_defs.items()})
    properties = envelope["properties"]
    properties["vendor"] = {**properties["vendor"], "const": record.vendor}
    if record.kind == OTHER:
        properties["kind"] = {**properties["kind"], "not": {"enum": _documented(record.vendor)},
                              "description": "the message's operator, one no document describes"}
    else:
        properties["kind"] = {**properties["kind"], "const": record.kind}
    if record.kind in GATEWAY_KINDS:
        properties["transport"] = {**properties["transport"], "const": "gateway"}
    name = f"{record.vendor}.{data.get('title', record.kind)}"
    defs[name] = data
    data_ref = {"$ref": f"#/$defs/{name}"}
    properties["data"] = {"description": properties["data"]["description"] + " (absent or empty when the record "
                          "travels as a claim check: dataref / dataRef)",
                          "anyOf": [data_ref, {"type": "object", "maxProperties": 0}]}
    return {
        "$schema": DIALECT, "$id": urn(record.type),
        "title": record.type,
        "description": f"`data` of a {record.type} CloudEvent, and the table's event item decoded: the envelope with "
                       f"the {record.vendor} {record.kind} record as stored. Generated from the models by "
                       f"`./run contracts`; fields may be added within a version, never removed or retyped.",
        **{k: v for k, v in envelope.items() if k not in ("title", "description")},
        "$defs": defs,
    }


def _documented(vendor: str) -> list[str]:
    from devicegate.vendors import get_adapter

    return sorted({*get_adapter(vendor).kinds, *GATEWAY_KINDS})


def cloud_event_schema(types: list[str]) -> dict[str, Any]:
    from devicegate.client.models import CloudEvent

    schema = CloudEvent.model_json_schema(ref_template="#/$defs/{model}")
    schema.pop("$defs", None)
    properties = schema["properties"]
    properties["type"] = {**properties["type"], "pattern": r"^devicegate\.[a-z0-9-]+\.[^\s]+$",
                          "description": "devicegate.{vendor}.{kind}: " + ", ".join(types)}
    schema["required"] = sorted({*schema.get("required", []), "dataschema"})
    properties["dataschema"] = {"type": "string", "description": "the $id of the type's schema "
                                "(docs/contracts/schemas/{type}.json): urn:devicegate:schema:{type}:{version}",
                                "pattern": r"^urn:devicegate:schema:devicegate\.[^:]+:[0-9]+$"}
    properties["data"] = {"type": "object", "description": "the event: validate it with the schema `dataschema` "
                          "names (one per type)"}
    return {"$schema": DIALECT, "$id": urn("cloudevent"), **schema,
            "description": "A queue message's body: CloudEvents 1.0, structured JSON mode."}


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
        bodies = []
        for name in ("Subscription", "Frame"):
            envelope, _ = model_schema(_model("senselink", name), "#/components/schemas/senselink.", wire=True)
            envelope["properties"]["data"] = {"description": envelope["properties"]["data"].get("description", ""),
                                              "anyOf": [*any_record["anyOf"], {"type": "object"}, {"type": "null"}]}
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
    raise KeyError(f"no webhook body for {vendor}: add it to devicegate_cli/contracts.py _wire_body")


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


# --- the queue and the MQTT topics (asyncapi.yaml) -------------------------------------------------

def iot_topics(template: Path | None = None) -> list[str]:
    """The topic filters of template.yaml's IoT topic rules (their SQL's FROM)."""
    text = (template or ROOT / "template.yaml").read_text()
    return sorted(set(re.findall(r"FROM '([^']+)'", text)))


def _mqtt_address(topic_filter: str) -> tuple[str, list[str]]:
    names = iter(("accessKey", "deviceNum", "kind") if topic_filter.count("/") == 3
                 else ("accessKey", "deviceNum", "subLockNum"))
    levels = [f"{{{next(names)}}}" if level == "+" else level for level in topic_filter.split("/")]
    return "/".join(levels), re.findall(r"{(\w+)}", "/".join(levels))


def asyncapi(recs: list[Record], topics: list[str]) -> dict[str, Any]:
    from devicegate.vendors.jointech.commands import MAX_TEXT

    messages: dict[str, Any] = {}
    for record in recs:
        messages[record.type] = {
            "name": record.type,
            "title": f"{record.vendor} {record.kind}",
            "contentType": "application/json",
            "summary": f"type {record.type}; data per schemas/{record.type}.json",
            "headers": {"$ref": "#/components/schemas/MessageAttributes"},
            "payload": {"allOf": [{"$ref": "./schemas/cloudevent.json"},
                                  {"type": "object", "properties": {
                                      "type": ({"pattern": rf"^devicegate\.{record.vendor}\."}
                                               if record.kind == OTHER else {"const": record.type}),
                                      "dataschema": {"const": urn(record.type)},
                                      "data": {"$ref": f"./schemas/{record.type}.json"}}}]},
        }
    refs = {name: {"$ref": f"#/components/messages/{name}"} for name in sorted(messages)}
    channels: dict[str, Any] = {
        "events": {"address": "{stack}-EventsQueue.fifo", "title": "EventsQueue",
                   "description": "FIFO: one message group per device ({vendor}:{device}), deduplicated per event. "
                                  "Output EventsQueueUrl.",
                   "parameters": {"stack": {"description": "the stack name"}},
                   "servers": [{"$ref": "#/servers/sqs"}], "messages": refs},
        "appQueue": {"address": "{stack}-{app}.fifo", "title": "a ConsumerApps queue",
                     "description": "With ConsumerApps set: each named app's FIFO queue, fed by EventsTopic (SNS "
                                    "FIFO, raw delivery), the same messages and attributes as EventsQueue. Outputs "
                                    "ConsumerApp1QueueUrl...",
                     "parameters": {"stack": {"description": "the stack name"},
                                    "app": {"description": "a name of the ConsumerApps parameter"}},
                     "servers": [{"$ref": "#/servers/sqs"}], "messages": refs},
    }
    operations: dict[str, Any] = {
        "consumeEvents": {"action": "receive", "channel": {"$ref": "#/channels/events"},
                          "summary": "an app consumes the events", "messages": [
                              {"$ref": f"#/channels/events/messages/{n}"} for n in sorted(messages)]},
        "consumeAppEvents": {"action": "receive", "channel": {"$ref": "#/channels/appQueue"},
                             "summary": "an app consumes its own queue (fan-out)", "messages": [
                                 {"$ref": f"#/channels/appQueue/messages/{n}"} for n in sorted(messages)]},
    }
    jointech = [r for r in recs if r.vendor == "jointech" and r.wire]
    upload_messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "MessageAttributes": {"type": "object", "description": "SQS message attributes (String), to route and "
                              "filter without parsing the body", "required": ["type", "vendor", "device"],
                              "properties": {"type": {"type": "string", "description": "the CloudEvents type"},
                                             "vendor": {"type": "string"},
                                             "device": {"type": "string",
                                                        "description": "the device id, percent-encoded"}}}}
    for record in jointech:
        schema, defs = model_schema(record.wire[0], "#/components/schemas/jointech.", wire=True)
        schemas[f"jointech.{record.wire[0].__name__}"] = schema
        schemas.update({f"jointech.{n}": d for n, d in defs.items()})
        upload_messages[f"jointech.{record.kind}"] = {
            "name": f"jointech.{record.kind}", "contentType": "application/json",
            "summary": f"a {record.kind} record, as on the webhook",
            "payload": {"$ref": f"#/components/schemas/jointech.{record.wire[0].__name__}"}}
    for topic in topics:
        address, parameters = _mqtt_address(topic)
        name = "jointechSublock" if address.endswith("/sublock") else "jointechUpload"
        kinds = ["sublock"] if name == "jointechSublock" else [r.kind for r in jointech if r.kind != "sublock"]
        channels[name] = {
            "address": address, "servers": [{"$ref": "#/servers/iot"}],
            "description": f"IoT topic rule FROM '{topic}' (template.yaml). The Mosquitto bridge publishes by "
                           "Basic Ingest, on $aws/rules/<rule>/" + address + ".",
            "parameters": {p: ({"enum": kinds} if p == "kind" else {}) for p in parameters},
            "messages": {f"jointech.{k}": {"$ref": f"#/components/messages/jointech.{k}"} for k in kinds}}
        operations[f"{name}Receive"] = {"action": "receive", "channel": {"$ref": f"#/channels/{name}"},
                                        "summary": "the gateway receives a device's record (JointechMqttFunction)"}
    messages.update(upload_messages)
    channels["jointechCommand"] = {
        "address": "download/{accessKey}/{deviceNum}/cmd", "servers": [{"$ref": "#/servers/iot"}],
        "description": "commands to a device (POST /devices/jointech/{deviceNum}/commands), QoS 1",
        "parameters": {"accessKey": {}, "deviceNum": {}},
        "messages": {"jointech.command": {"$ref": "#/components/messages/jointech.command"}}}
    messages["jointech.command"] = {
        "name": "jointech.command", "contentType": "text/plain",
        "summary": "the command text, `(deviceNum,1,serial,WORD,params...)`",
        "payload": {"type": "string", "maxLength": MAX_TEXT, "pattern": r"^\(.*\)$"}}
    operations["jointechCommandSend"] = {"action": "send", "channel": {"$ref": "#/channels/jointechCommand"},
                                         "summary": "the gateway sends a command (JointechCommandsFunction)"}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "devicegate events", "version": "1",
                 "description": "The events queue's CloudEvents, one message per type, and the Jointech MQTT "
                                "topics. Generated by `./run contracts`; tests/unit/test_contracts.py fails when "
                                "this file and the code differ. Event payloads are the JSON Schemas (2020-12) of "
                                "./schemas, each with the $id its messages' dataschema names."},
        "defaultContentType": "application/json",
        "servers": {"sqs": {"host": "sqs.{region}.amazonaws.com", "protocol": "sqs",
                            "variables": {"region": {"default": "us-east-1"}}},
                    "iot": {"host": "{endpoint}", "protocol": "mqtt",
                            "description": "AWS IoT Core (the customer's account endpoint)",
                            "variables": {"endpoint": {"default": "example-ats.iot.us-east-1.amazonaws.com"}}}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


# --- the files ------------------------------------------------------------------------------------

def _json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml(document: Any) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # the same dict twice is written twice: no &anchors for readers to chase

    header = "# Generated by `./run contracts` from the models and template.yaml: do not edit.\n"
    return header + yaml.dump(copy.deepcopy(document), Dumper=Dumper, sort_keys=True, allow_unicode=True,
                              width=120, default_flow_style=False)


def generate() -> dict[str, str]:
    """Every file of docs/contracts, by path relative to the repository: its text."""
    recs = records()
    files = {str(OUT / "schemas" / f"{r.type}.json"): _json(envelope_schema(r)) for r in recs}
    files[str(OUT / "schemas" / "cloudevent.json")] = _json(cloud_event_schema(sorted(r.type for r in recs)))
    files[str(OUT / "openapi.yaml")] = _yaml(openapi(recs, template_routes()))
    files[str(OUT / "asyncapi.yaml")] = _yaml(asyncapi(recs, iot_topics()))
    return dict(sorted(files.items()))


def differences(root: Path = ROOT) -> Iterator[str]:
    """Files that are not what generate() makes: missing, different, or left over."""
    files = generate()
    for path, text in files.items():
        target = root / path
        if not target.exists():
            yield f"{path} is missing"
        elif target.read_text() != text:
            yield f"{path} differs"
    for target in sorted((root / OUT).rglob("*")):
        if target.is_file() and str(target.relative_to(root)) not in files:
            yield f"{target.relative_to(root)} is not generated"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contracts", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    args = parser.parse_args(argv)
    if args.check:
        found = list(differences())
        for line in found:
            print(line)
        return 1 if found else 0
    files = generate()
    (ROOT / OUT / "schemas").mkdir(parents=True, exist_ok=True)
    for target in (ROOT / OUT).rglob("*"):
        if target.is_file() and str(target.relative_to(ROOT)) not in files:
            target.unlink()
    for path, text in files.items():
        (ROOT / path).write_text(text)
    print(f"wrote {len(files)} files under {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
