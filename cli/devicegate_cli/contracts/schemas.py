"""The JSON Schema of each event type: a vendor model on the wire (as the gateway reads a body)
and as stored (as make_event kept it), every vendor kind from the adapters' registries, and the
envelope and CloudEvent around them (docs/contracts/schemas)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

ROOT = Path(__file__).resolve().parents[3]
DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_URN = "urn:devicegate:schema:{name}:{version}"
#: Kinds the gateway itself writes about every vendor's devices (store/liveness.py).
GATEWAY_KINDS = ("device.offline", "device.online")
#: Kinds the gateway writes about the commands of the vendors that take commands: each step of a
#: command kept for the device's next contact (core/commands.py LIFECYCLE_KINDS).
COMMAND_KINDS = ("command.answered", "command.cancelled", "command.expired", "command.failed", "command.queued",
                 "command.sent")
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
        found.extend(_gateway_record(vendor, kind) for kind in gateway_kinds(vendor))
    return found


def takes_commands(vendor: str) -> bool:
    """A vendor takes commands when its package has a command protocol (vendors/<name>/commands.py)."""
    from importlib.util import find_spec

    return find_spec(f"devicegate.vendors.{vendor.replace('-', '_')}.commands") is not None


def gateway_kinds(vendor: str) -> tuple[str, ...]:
    """The kinds the gateway itself writes about a vendor's devices."""
    return GATEWAY_KINDS + (COMMAND_KINDS if takes_commands(vendor) else ())


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
    raise KeyError(f"no contract for {vendor} {kind}: add it to devicegate_cli/contracts/schemas.py _record")


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
    from devicegate.client.models import CommandStep, DeviceOffline, DeviceOnline

    models: dict[str, type[BaseModel]] = {"device.offline": DeviceOffline, "device.online": DeviceOnline}
    model = models.get(kind, CommandStep)
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
    if record.kind in GATEWAY_KINDS or record.kind in COMMAND_KINDS:
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

    return sorted({*get_adapter(vendor).kinds, *gateway_kinds(vendor)})


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
