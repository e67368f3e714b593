"""docs/contracts: generated from the code and committed, so these tests hold the two together.
The files are what `./run contracts` writes, every route of template.yaml is in the OpenAPI, every
fixture of events/ is a body the OpenAPI describes, every schema is valid JSON Schema 2020-12 and
every $ref resolves. (Every queue message the e2e and integration tests read is checked against
its schema by tests/support.py valid_message.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from devicegate_cli import contracts
from tests.support import CONTRACTS, EVENTS, ROOT, contract_schemas

BASE = "file:///contracts/"


@cache
def generated() -> dict[str, str]:
    return contracts.generate()


@cache
def document(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CONTRACTS / name).read_text())
    return loaded


def test_the_committed_contracts_are_what_the_code_generates():
    # Given the models and template.yaml as they are, when the contracts are generated in memory
    stale = list(contracts.differences())
    # Then docs/contracts holds exactly those files
    assert not stale, ("docs/contracts is not what the code generates (" + "; ".join(stale) +
                       "): run `./run contracts` and commit the result")


def test_generation_is_deterministic():
    assert contracts.generate() == generated()


def test_every_http_route_of_the_template_is_in_the_openapi():
    routes = contracts.template_routes()
    paths = document("openapi.yaml")["paths"]
    described = {(method, path) for path, operations in paths.items() for method in operations}
    assert described == {(r["method"], r["path"]) for r in routes}
    assert {r["path"].split("/")[2] for r in routes if not r["iam"]} == set(_vendors())


def test_command_routes_require_sigv4_and_webhooks_do_not():
    openapi = document("openapi.yaml")
    for route in contracts.template_routes():
        operation = openapi["paths"][route["path"]][route["method"]]
        assert (operation.get("security") == [{"sigv4": []}]) is route["iam"], route
    scheme = openapi["components"]["securitySchemes"]["sigv4"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_every_iot_rule_topic_is_an_asyncapi_channel():
    channels = document("asyncapi.yaml")["channels"]
    addresses = {c["address"] for c in channels.values()}
    for topic in contracts.iot_topics():
        assert contracts.mqtt_address(topic)[0] in addresses
    assert "download/{accessKey}/{deviceNum}/cmd" in addresses


def test_one_message_and_one_schema_per_event_type():
    from devicegate.vendors import get_adapter

    expected = {f"devicegate.{vendor}.{kind}" for vendor in _vendors()
                for kind in (*get_adapter(vendor).kinds, *contracts.gateway_kinds(vendor))} | {"devicegate.ai-camera.other"}
    messages = document("asyncapi.yaml")["channels"]["events"]["messages"]
    assert set(messages) == expected
    assert set(contract_schemas()) == {contracts.urn(t) for t in expected} | {contracts.urn("cloudevent")}
    for path in (CONTRACTS / "schemas").glob("*.json"):
        assert json.loads(path.read_text())["$id"] == contracts.urn(path.stem)


def test_open_kinds_are_the_adapters_documented_kinds():
    # Given a vendor that stores kinds nobody documents (the AI camera's operators)
    from devicegate.outbox.messages import OPEN_KINDS, data_schema
    from devicegate.vendors import get_adapter

    for vendor, known in OPEN_KINDS.items():
        assert known == {*get_adapter(vendor).kinds, *contracts.GATEWAY_KINDS}
    # Then its undocumented kinds name the shared schema, and every other kind its own
    assert data_schema("ai-camera", "personDetect") == "urn:devicegate:schema:devicegate.ai-camera.other:1"
    assert data_schema("ai-camera", "heartbeat") == "urn:devicegate:schema:devicegate.ai-camera.heartbeat:1"
    assert data_schema("jointech", "device.offline") == "urn:devicegate:schema:devicegate.jointech.device.offline:1"


# --- valid JSON Schema, every $ref resolved --------------------------------------------------------------

def _schemas_of(name: str) -> dict[str, Any]:
    doc = document(name)
    found = dict(doc["components"]["schemas"])
    if name == "asyncapi.yaml":
        found.update({f"message {k}": m["payload"] for k, m in doc["components"]["messages"].items()})
    else:
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                for media, body in operation.get("requestBody", {}).get("content", {}).items():
                    found[f"{method} {path} {media}"] = body["schema"]
                for status, answer in operation["responses"].items():
                    for media, body in answer.get("content", {}).items():
                        found[f"{method} {path} {status} {media}"] = body["schema"]
    return found


@pytest.mark.parametrize("name", ["openapi.yaml", "asyncapi.yaml"])
def test_every_schema_of_the_documents_is_valid_json_schema(name):
    for where, schema in _schemas_of(name).items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as exc:
            raise AssertionError(f"{name} {where}: {exc}") from None


def test_every_schema_file_is_valid_json_schema():
    for schema in contract_schemas().values():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def _registry() -> Registry:
    resources = []
    for path in sorted((CONTRACTS / "schemas").glob("*.json")):
        resource = Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT202012)
        resources += [(f"{BASE}schemas/{path.name}", resource), (resource.id() or "", resource)]
    for name in ("openapi.yaml", "asyncapi.yaml"):
        resources.append((BASE + name, DRAFT202012.create_resource(document(name))))
    return Registry().with_resources(resources)


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_every_ref_resolves():
    registry = _registry()
    docs = {BASE + name: document(name) for name in ("openapi.yaml", "asyncapi.yaml")}
    docs.update({schema["$id"]: schema for schema in contract_schemas().values()})
    checked = 0
    for base, doc in docs.items():
        resolver = registry.resolver(base_uri=base)
        for ref in _refs(doc):
            resolver.lookup(ref)  # raises Unresolvable naming the reference
            checked += 1
    assert checked > 100


# --- the fixtures are bodies the OpenAPI describes -----------------------------------------------------

def _check(schema: dict[str, Any], instance: Any, where: str, document_name: str = "openapi.yaml") -> None:
    """`instance` against a schema of a document, its `#/components/...` references resolved in
    that document (as a reader's tool would)."""
    anchored = {"$id": BASE + "fixture.json", "allOf": [_rebased(schema, document_name)]}
    validator = Draft202012Validator(anchored, registry=_registry())
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
              for e in validator.iter_errors(instance)]
    assert not errors, f"{where}: {errors[:5]}"


def _rebased(value: Any, document_name: str) -> Any:
    if isinstance(value, dict):
        return {k: (BASE + document_name + v if k == "$ref" and isinstance(v, str) and v.startswith("#")
                    else _rebased(v, document_name)) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebased(v, document_name) for v in value]
    return value


def _http_fixtures() -> list[Path]:
    return sorted(p for p in EVENTS.rglob("http-*.json") if "records" not in p.parts)


def _body(event: dict[str, Any]) -> tuple[str, Any]:
    import base64

    raw = event.get("body") or ""
    text = base64.b64decode(raw).decode() if event.get("isBase64Encoded") else raw
    media = (event.get("headers") or {}).get("content-type", "application/json").split(";")[0].strip()
    if media == "application/x-www-form-urlencoded":
        return media, dict(parse_qsl(text, keep_blank_values=True))
    return media, json.loads(text)


@pytest.mark.parametrize("path", _http_fixtures(), ids=lambda p: str(p.relative_to(EVENTS)))
def test_every_http_fixture_is_a_body_its_route_describes(path):
    # Given an API Gateway event of events/ and the operation of its route
    event = json.loads(path.read_text())
    method, route = event["routeKey"].split(" ", 1)
    operation = document("openapi.yaml")["paths"][route][method.lower()]
    if "requestBody" not in operation:
        assert not event.get("body"), f"{path.name}: a body for {event['routeKey']}, which takes none"
        return
    media, body = _body(event)
    content = operation["requestBody"]["content"]
    # Then its content type is one the route takes
    assert media in content, f"{path.name}: {media} is not a type {route} takes ({sorted(content)})"
    if path.parent.name != "jointech-commands" and _refused_by_the_gateway(path):
        # and a body the gateway refuses (SenseLink's "connected" frame) the contract refuses too
        with pytest.raises(AssertionError):
            _check(content[media]["schema"], body, path.name)
        return
    # and any other body matches that type's schema
    _check(content[media]["schema"], body, path.name)
    inner = body.get("data") if route.startswith("/hooks/mettax/") and isinstance(body, dict) else None
    if isinstance(inner, str):
        # Mettax's record travels as JSON text in `data`: it is a record (or records) too.
        _check({"anyOf": [{"$ref": "#/components/schemas/mettax.Record"},
                          {"type": "array", "items": {"$ref": "#/components/schemas/mettax.Record"}}]},
               json.loads(inner), f"{path.name} data")


def _refused_by_the_gateway(path: Path) -> bool:
    """The vendor's adapter refuses the fixture's body (InvalidPayload): what the contract must refuse."""
    from devicegate.core.errors import InvalidPayload
    from devicegate.ingest.http import http_push
    from devicegate.vendors import get_adapter

    event, vendor = json.loads(path.read_text()), path.parent.name
    adapter = get_adapter(vendor)
    route = {k: v for k, v in (event.get("pathParameters") or {}).items() if k in adapter.route_path_params}
    route.update({k: v for k, v in (event.get("queryStringParameters") or {}).items()
                  if k in adapter.route_query_params})
    try:
        adapter.normalize(http_push(vendor, event, None, route), datetime.now(UTC))
    except InvalidPayload:
        return True
    return False


def test_a_body_the_gateway_refuses_is_refused_by_the_openapi():
    # Given a Jointech location whose latitude is not a number (the gateway answers 400)
    body = json.loads(json.loads((EVENTS / "jointech" / "http-webhook-location.json").read_text())["body"])
    body["latitude"] = "north"
    schema = document("openapi.yaml")["paths"]["/hooks/jointech/{token}/{kind}"]["post"]["requestBody"]
    # Then the contract refuses it too
    with pytest.raises(AssertionError):
        _check(schema["content"]["application/json"]["schema"], body, "bad latitude")


@pytest.mark.parametrize("path", sorted(EVENTS.glob("jointech/iot-*.json")), ids=lambda p: p.name)
def test_every_mqtt_fixture_is_a_payload_its_topic_describes(path):
    message = json.loads(path.read_text())
    asyncapi = document("asyncapi.yaml")
    payload = asyncapi["components"]["messages"][f"jointech.{message['kind']}"]["payload"]
    record = {k: v for k, v in message.items() if k not in ("accessKey", "deviceNum", "kind", "subLockNum")}
    _check(payload, record, path.name, "asyncapi.yaml")


# --- the command API's model and its checks agree ----------------------------------------------------

def test_the_command_request_model_takes_exactly_the_fields_the_service_takes():
    from devicegate.commands.models import CommandRequest

    problems = _service_problems({name: "x" for name in CommandRequest.model_fields})
    assert not [p for p in problems if p.problem == "unknown field"]
    assert [p.field for p in _service_problems({"raw": "(1,1,001,BASE,1)", "surprise": 1})
            if p.problem == "unknown field"] == ["surprise"]


def test_every_field_the_service_takes_is_in_the_command_request_model():
    # The service names the fields it takes in one tuple (CommandService.send's "unknown field"
    # check); a field added there and not to the model would be missing from the contract.
    import ast
    import inspect
    import textwrap

    from devicegate.commands.models import CommandRequest
    from devicegate.commands.service import CommandService

    tree = ast.parse(textwrap.dedent(inspect.getsource(CommandService.send)))
    taken = [{element.value for element in node.comparators[0].elts}
             for node in ast.walk(tree) if isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.NotIn)
             and isinstance(node.comparators[0], ast.Tuple)]
    assert len(taken) == 1, "CommandService.send no longer names its fields in one tuple: update this test"
    assert taken[0] == set(CommandRequest.model_fields)


@pytest.mark.parametrize("document_, accepted", [
    ({"raw": "(8022300001,1,001,BASE,1)"}, True),
    ({"command": "query_time", "serial": "002", "clientToken": "app-1"}, True),
    ({"command": "reboot"}, False),
    ({"command": "query_time", "serial": "two"}, False),
    ({"raw": "(8022300001,1,001,BASE,1)", "clientToken": "not a token"}, False),
    ({"raw": "no parentheses"}, False),
])
def test_the_command_request_model_accepts_what_the_service_accepts(document_, accepted):
    from devicegate.commands.models import CommandRequest

    errors = list(Draft202012Validator(CommandRequest.model_json_schema()).iter_errors(document_))
    assert (not errors) is accepted
    assert (not _service_problems(document_)) is accepted


def test_command_fixtures_match_the_command_request():
    from devicegate.commands.models import CommandRequest

    validator = Draft202012Validator(CommandRequest.model_json_schema())
    sends = [p for p in sorted(EVENTS.glob("jointech-commands/http-post-*.json"))
             if json.loads(p.read_text())["routeKey"].endswith("/commands")]
    assert len(sends) >= 3
    for path in sends:
        assert not list(validator.iter_errors(json.loads(json.loads(path.read_text())["body"]))), path.name


def _service_problems(document_: dict[str, Any]) -> list[Any]:
    from devicegate.commands.service import CommandService, CommandSettings
    from devicegate.core.commands import InvalidCommand, Requester
    from devicegate.vendors.jointech import commands as protocol

    class Stop(Exception):
        pass

    class Store:
        def create(self, *args: Any) -> None:
            raise Stop()

    service = CommandService("jointech", protocol, Store(), None, CommandSettings(access_key="ak"), 30)  # type: ignore[arg-type]
    try:
        service.send("8022300001", document_, Requester("arn:aws:iam::1:user/a", "1"), "r", datetime.now(UTC))
    except InvalidCommand as exc:
        return exc.problems
    except Stop:
        return []
    raise AssertionError("send neither refused nor stored")


# --- one vocabulary: the same block schema whatever the vendor ------------------------------------------

def _facts(vendor: str, fixture: str, **route: str) -> dict[str, Any]:
    from devicegate.core.envelope import RawPush
    from devicegate.vendors import get_adapter

    event = json.loads((EVENTS / vendor / fixture).read_text())
    push = RawPush(vendor=vendor, transport="http", body=event["body"].encode(), route=route,
                   headers=event.get("headers") or {})
    [normalized] = get_adapter(vendor).normalize(push, datetime.now(UTC))
    return json.loads(normalized.factsJson or "{}")


def _block(event_type: str, block: str) -> dict[str, Any]:
    schema = contract_schemas()[contracts.urn(event_type)]
    facts = schema["$defs"]["Facts"]["properties"][block]
    name = next(option["$ref"] for option in facts["anyOf"] if "$ref" in option).rsplit("/", 1)[-1]
    # The envelope's own definitions (the vendor's are prefixed with it: "jointech.Alarm").
    shared = {key: value for key, value in schema["$defs"].items() if "." not in key}
    return {"$defs": shared, **schema["$defs"][name]}


@pytest.mark.parametrize("block, first, second", [
    ("position", ("jointech", "location", "http-webhook-location-ksinfo.json", {"kind": "location"}),
     ("mettax", "gps", "http-doc-gps.json", {"service": "gps"})),
    ("passage", ("face-terminal", "record", "http-doc-record.json", {}),
     ("senselink", "record", "http-sub-record-employee.json", {})),
])
def test_two_vendors_state_a_fact_with_one_block_schema(block, first, second):
    # Given one fact stated by two vendors, each its own way
    schemas, blocks = [], []
    for vendor, kind, fixture, route in (first, second):
        schemas.append(_block(f"devicegate.{vendor}.{kind}", block))
        blocks.append(_facts(vendor, fixture, **route)[block])
    # Then their event types' schemas give the block one schema, and both records' blocks match it
    assert schemas[0] == schemas[1]
    for found in blocks:
        assert not list(Draft202012Validator(schemas[0]).iter_errors(found)), found


def _vendors() -> list[str]:
    from devicegate.vendors import vendor_names

    return vendor_names()


def test_the_run_script_regenerates_them():
    assert "devicegate_cli.contracts" in (ROOT / "run").read_text()


def test_the_command_lifecycle_kinds_are_the_ones_the_store_writes():
    from devicegate.core.commands import LIFECYCLE_KINDS
    from devicegate_cli.contracts.schemas import COMMAND_KINDS

    assert set(COMMAND_KINDS) == LIFECYCLE_KINDS
    assert contracts.gateway_kinds("jointech")[-len(COMMAND_KINDS):] == COMMAND_KINDS
    assert not set(COMMAND_KINDS) & set(contracts.gateway_kinds("mettax"))
