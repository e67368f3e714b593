"""The hostile-input corpus: every route a payload can take into the gateway, and the cases replayed
through each of them (tests/hostile/test_hostile_corpus.py).

A route knows its valid payload, where in it the device id, a typed number and room for an
unknown field are, how the answer names those places, and how to deliver a payload to the real
handler. A case is data: what to put where, and which field the refusal must name (None: the
payload must be accepted, e.g. an id that only needed trimming)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tests.support import context, load_event, load_record, with_body, with_path

# Personal values planted in the payloads: none may be found unmasked anywhere afterwards.
PIN = "975318642"
ID_NUMBER = "110101199003077777"
IC_NUMBER = "7730012345678"
SL_ID_NUMBER = "AB98765432109"
SL_IC_NUMBER = "0004567890123"
LOCK_PASSWORD = "UNLOCK-4417-2093"

#: Key names planted in every vendor's records, as senders spell them: credentials (always
#: dropped) and ID/IC numbers (masked by default: only their last 4 characters may remain).
PLANTED_KEYS = ("pin", "PIN", "Pin", "pin_code", "password", "Passwd", "idNumber", "id_number", "IDNUMBER",
                "Id-Number", "ID_NUMBER", "icNumber", "IC_NUMBER", "ic number", "身份证号")
#: Where they are planted, from the record's own level down (see `plant`).
DEPTHS = ("top", "nested", "list", "json-string", "json-in-json")
#: A value per key and depth, each its own, so a finding names where it leaked from.
PLANTED = {(key, depth): f"58{index:03d}{position}0{index * 7 + position:04d}"
           for index, key in enumerate(PLANTED_KEYS) for position, depth in enumerate(DEPTHS)}
#: The planted values the default policy masks rather than drops: their masked forms show the
#: records were stored (and published), not refused.
MASKED = tuple(value for (key, _), value in PLANTED.items() if "number" in key.lower().replace("_", "")
               or "身份" in key)
PERSONAL_VALUES = (PIN, ID_NUMBER, IC_NUMBER, SL_ID_NUMBER, SL_IC_NUMBER, LOCK_PASSWORD, *PLANTED.values())

#: JSON tokens that are not finite numbers, and what a decoder that takes them makes of them.
NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf"),
              "1e999": float("inf"), "-1e999": float("-inf")}
_SLOT = "@@hostile@@"


@dataclass(frozen=True)
class Delivered:
    status: int
    refused: bool  # the vendor's invalid answer (SenseLink's is HTTP 200 with code 400)
    fields: list[str]  # what the answer names (MQTT answers name nothing: see the quarantine)


@dataclass(frozen=True)
class Route:
    name: str
    vendor: str
    base: Callable[[], Any]  # a valid payload (the record inside Mettax's `data` string)
    device: tuple[str, ...] | None  # where the device id is
    number: tuple[str | int, ...]  # a typed numeric field
    extra: tuple[str, ...]  # where an unknown field may go
    deliver: Callable[[Any, dict[str, str]], Delivered]
    devices: frozenset[str]  # the only device ids this route's valid payloads make
    prefix: str = ""  # how answers name a place in `base` ("data." inside Mettax's data string)
    in_string: tuple[str, str] | None = None  # a JSON-in-string field and a key inside it
    parsed: bool = False  # arrives parsed (IoT rule + Lambda): numbers as floats, keys deduplicated
    personal: bool = False
    integer: tuple[str | int, ...] | None = None  # a typed integer field (numbers as text)
    time: tuple[str, ...] | None = None  # the field the event's time comes from
    time_unit: str = "iso"  # how that field is written: "iso" text or "s" (epoch seconds)

    def name_of(self, path: tuple[str | int, ...]) -> str:
        return self.prefix + ".".join(str(p) for p in path)


@dataclass(frozen=True)
class Case:
    id: str
    payload: Any  # text (a Mettax record's text, wrapped by the route) or, parsed routes, a dict
    field: str | None  # the field the refusal names; None: accepted
    options: dict[str, str] = field(default_factory=dict)  # headers / query / path overrides
    device: str | None = None  # accepted cases: the device the event is stored under


# --- building payloads --------------------------------------------------------------------------

def put(document: Any, path: tuple[str | int, ...], value: Any) -> Any:
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


def with_token(route: Route, path: tuple[str | int, ...], token: str) -> Any:
    """The route's payload with the raw JSON `token` (NaN, 1e999...) at `path`; for a route whose
    payload arrives parsed, the float a decoder makes of it."""
    if route.parsed:
        return put(route.base(), path, NON_FINITE[token])
    text = json.dumps(put(route.base(), path, _SLOT), ensure_ascii=False)
    return text.replace(json.dumps(_SLOT), token)


def with_value(route: Route, path: tuple[str | int, ...], value: Any) -> Any:
    document = put(route.base(), path, value)
    return document if route.parsed else json.dumps(document, ensure_ascii=False)


def with_repeated_key(route: Route, path: tuple[str | int, ...], first: Any) -> str:
    """The payload with the key at `path` given twice: `first`, then its valid value (so "the last
    one wins" would have accepted it)."""
    document = route.base()
    target = document
    for step in path[:-1]:
        target = target[step]
    valid = target[path[-1]]
    text = json.dumps(put(document, path, _SLOT), ensure_ascii=False)
    key = json.dumps(path[-1])
    return text.replace(f"{key}: {json.dumps(_SLOT)}", f"{key}: {json.dumps(first)}, {key}: {json.dumps(valid)}")


# --- delivering them ----------------------------------------------------------------------------

def _http(module: str, function: str):
    from importlib import import_module

    app = import_module(f"functions.{module}.app")

    def call(event: dict) -> tuple[int, dict]:
        response = app.lambda_handler(event, context(function))
        return response["statusCode"], json.loads(response["body"])

    return call


def _headers(event: dict, options: dict[str, str]) -> dict:
    for name, value in options.items():
        if name.startswith("header:"):
            if value is None:
                event["headers"].pop(name[7:], None)
            else:
                event["headers"][name[7:]] = value
        elif name.startswith("query:"):
            event["queryStringParameters"] = {**(event.get("queryStringParameters") or {}), name[6:]: value}
    return event


def jointech_http(kind: str | None) -> Callable[[Any, dict], Delivered]:
    call = _http("jointech_webhook", "JointechWebhookFunction")

    def deliver(payload: str, options: dict) -> Delivered:
        event = with_path(with_body(load_event("jointech/http-webhook-location.json"), payload), "dev-token", kind)
        status, body = call(_headers(event, options))
        return Delivered(status, status == 400, [e["field"] for e in body.get("errors", [])])

    return deliver


def jointech_mqtt(payload: dict, options: dict) -> Delivered:
    from functions.jointech_mqtt import app

    result = app.lambda_handler({**payload, **options}, context("JointechMqttFunction"))
    return Delivered(200, result["outcome"] == "invalid", [])


def face_terminal(payload: str, options: dict) -> Delivered:
    event = with_body(load_event("face-terminal/http-doc-record.json"), payload)
    status, body = _http("face_terminal_webhook", "FaceTerminalWebhookFunction")(_headers(event, options))
    return Delivered(status, status == 400, [e["field"] for e in (body.get("data") or {}).get("errors", [])])


def senselink(payload: str, options: dict) -> Delivered:
    event = with_body(load_event("senselink/http-ws-doc-record.json"), payload)
    status, body = _http("senselink_webhook", "SenseLinkWebhookFunction")(_headers(event, options))
    return Delivered(status, status == 200 and body.get("code") == 400, [e["field"] for e in body.get("errors", [])])


def mettax(service: str | None, encoding: str) -> Callable[[Any, dict], Delivered]:
    call = _http("mettax_webhook", "MettaxWebhookFunction")

    def deliver(record_text: str, options: dict) -> Delivered:
        event = copy.deepcopy(load_event("mettax/http-doc-gps.json"))
        if service is None:
            event["routeKey"] = event["requestContext"]["routeKey"] = "POST /hooks/mettax/{token}"
            event["pathParameters"] = {"token": "dev-token"}
        if encoding == "form":
            event = with_body(event, urlencode({"data": record_text}),
                              **{"content-type": "application/x-www-form-urlencoded"})
        else:
            event = with_body(event, json.dumps({"data": record_text}), **{"content-type": "application/json"})
        status, body = call(event)
        return Delivered(status, status == 400, [e["field"] for e in body.get("errors", [])])

    return deliver


def ai_camera(payload: str, options: dict) -> Delivered:
    event = with_body(load_event("ai-camera/http-doc-heartbeat.json"), payload)
    status, body = _http("ai_camera_webhook", "AiCameraWebhookFunction")(event)
    return Delivered(status, status == 400, [e["field"] for e in body.get("errors", [])])


COMMAND_DEVICE = "794308010642"


def commands(payload: str, options: dict) -> Delivered:
    event = with_body(load_event("jointech-commands/http-post-typed-query-base-info.json"), payload)
    device = options.get("deviceNum", COMMAND_DEVICE)
    event["pathParameters"] = {"deviceNum": device}
    status, body = _http("jointech_commands", "JointechCommandsFunction")(event)
    return Delivered(status, status == 400, [e["field"] for e in body.get("errors", [])])


# --- the routes -----------------------------------------------------------------------------------

def _face_record() -> dict:
    record = load_record("face-terminal", "variation-record-with-photo-and-pin")
    record["data"]["user"].update(pin=PIN, id_number=ID_NUMBER, ic_number=IC_NUMBER)
    return record


def _senselink_record() -> dict:
    record = load_record("senselink", "sub-record-employee")
    record["data"].update(idNumber=SL_ID_NUMBER, icNumber=SL_IC_NUMBER)
    return record


def _mqtt_location() -> dict:
    return load_event("jointech/iot-mqtt-location.json")


JOINTECH = frozenset({"8022300001"})
_JOINTECH_TIME = {"integer": ("battery",), "time": ("gpsTime",)}
_METTAX = {"prefix": "data.", "integer": ("num",), "time": ("deviceCt",), "time_unit": "s"}
ROUTES = {route.name: route for route in (
    Route("jointech-kind", "jointech", lambda: load_record("jointech", "webhook-location"), ("assetId",),
          ("speed",), ("vendorExtra",), jointech_http("location"), JOINTECH, in_string=("statusJson", "lockStatus"),
          **_JOINTECH_TIME),
    Route("jointech-auto", "jointech", lambda: load_record("jointech", "webhook-location"), ("assetId",),
          ("speed",), ("vendorExtra",), jointech_http(None), JOINTECH, in_string=("statusJson", "lockStatus"),
          **_JOINTECH_TIME),
    Route("jointech-mqtt", "jointech", _mqtt_location, ("assetId",), ("speed",), ("vendorExtra",), jointech_mqtt,
          frozenset({"8052400203"}), in_string=("statusJson", "lockStatus"), parsed=True, **_JOINTECH_TIME),
    Route("face-terminal", "face-terminal", _face_record, ("data", "deviceSN"), ("data", "recognizeScore"),
          ("data", "vendorExtra"), face_terminal, frozenset({"PSC700C0MC22F02542"}), personal=True,
          integer=("data", "mode"), time=("data", "timestamp"), time_unit="s"),
    Route("senselink", "senselink", _senselink_record, ("data", "sn"), ("data", "verifyScore"),
          ("data", "vendorExtra"), senselink, frozenset({"SPSP-f26131cf5301be29b3a6f7be150ed330"}), personal=True,
          integer=("data", "entryMode"), time=("data", "signTime"), time_unit="s"),
    Route("mettax-service", "mettax", lambda: load_record("mettax", "doc-gps"), ("deviceId",), ("lat",),
          ("vendorExtra",), mettax("gps", "json"), frozenset({"105045133913"}), **_METTAX),
    Route("mettax-auto", "mettax", lambda: load_record("mettax", "doc-gps"), ("deviceId",), ("lat",),
          ("vendorExtra",), mettax(None, "json"), frozenset({"105045133913"}), **_METTAX),
    Route("mettax-form", "mettax", lambda: load_record("mettax", "doc-gps"), ("deviceId",), ("lat",),
          ("vendorExtra",), mettax("gps", "form"), frozenset({"105045133913"}), **_METTAX),
    Route("ai-camera", "ai-camera", lambda: load_record("ai-camera", "doc-heartbeat"), ("deviceInfo", "serialNumber"),
          ("info", "eventId"), ("vendorExtra",), ai_camera, frozenset({"I320013590DEA0BE21F6958"}),
          time=("info", "time")),
    # The body of an app's command; its device is the path's (ids below). Devices the gateway
    # knows: the one the test reports, so a command could be sent to it.
    Route("commands", "jointech", lambda: dict(load_record("jointech-commands", "typed-query-base-info"),
                                               serial="001"), None,
          ("serial",), ("clientToken",), commands, frozenset({COMMAND_DEVICE})),
)}


# --- the cases --------------------------------------------------------------------------------------

def number_cases(route: Route) -> list[Case]:
    """NaN, Infinity, -Infinity, 1e999, -1e999 as the id, a typed number, an unknown field, nested
    in one, and inside a JSON-in-string field."""
    cases = []
    for token in NON_FINITE:
        places = [("typed", route.number), ("extra", route.extra)]
        if route.device is not None:
            places.insert(0, ("id", route.device))
        for where, path in places:
            cases.append(Case(f"{where}={token}", with_token(route, path, token), route.name_of(path)))
        nested = put(route.base(), route.extra, {"readings": [1, {"value": _SLOT}]})
        if route.parsed:
            nested = put(nested, (*route.extra, "readings", 1, "value"), NON_FINITE[token])
        else:
            nested = json.dumps(nested).replace(json.dumps(_SLOT), token)
        cases.append(Case(f"nested={token}", nested, route.name_of((*route.extra, "readings", "1", "value"))))
        if route.in_string is not None:
            name, key = route.in_string
            cases.append(Case(f"in-string={token}", with_value(route, (name,), f'{{"{key}": {token}}}'), name))
    return cases


#: Ids no device has: dots alone, blank, control characters, a whole number sent with a fraction.
BAD_IDS = {"dots": "..", "dot": ".", "empty": "", "blank": "   ", "tab-newline": "\t\n", "inner-newline": "A\nB",
           "nbsp": "\u00a0"}


def id_cases(route: Route) -> list[Case]:
    if route.name == "commands":
        return [Case(f"deviceNum={name}", json.dumps(route.base()), "deviceNum", {"deviceNum": value})
                for name, value in {**BAD_IDS, "trailing-newline": COMMAND_DEVICE + "\n", "slash": "a/b"}.items()]
    assert route.device is not None
    # A parsed (MQTT) payload's topic names the same id, so only the id rule can refuse it.
    cases = [Case(f"id={name}", with_value(route, route.device, value), route.name_of(route.device),
                  {"deviceNum": value} if route.parsed else {})
             for name, value in BAD_IDS.items()]
    [device] = route.devices
    # A fraction makes another device of the same number; a trailing newline is trimmed away.
    number = f"{device}.0" if device.isdigit() else "12345.0"
    cases.append(Case("id=number-with-fraction", with_token(route, route.device, number)
                      if not route.parsed else with_value(route, route.device, float(number)),
                      route.name_of(route.device), {"deviceNum": number} if route.parsed else {}))
    cases.append(Case("id=trailing-newline", with_value(route, route.device, device + "\n"), None, device=device))
    if route.parsed:
        # The topic names the device too, and must name the record's.
        cases.append(Case("topic=dots", with_value(route, route.device, device), "assetId", {"deviceNum": ".."}))
        cases.append(Case("topic=other", with_value(route, route.device, device), "assetId", {"deviceNum": "8"}))
    return cases


def duplicate_cases(route: Route) -> list[Case]:
    if route.parsed:
        return []  # parsed by IoT Core and Lambda before the gateway: documented (README)
    base = route.base()
    cases = []
    if route.device is not None:
        cases.append(Case("device-twice", with_repeated_key(route, route.device, ".."), route.name_of(route.device)))
    cases.append(Case("number-twice", with_repeated_key(route, route.number, 1), route.name_of(route.number)))
    top = (next(iter(base)),)
    cases.append(Case("first-key-twice", with_repeated_key(route, top, base[top[0]]), route.name_of(top)))
    nested = json.dumps(put(route.base(), route.extra, _SLOT)).replace(json.dumps(_SLOT), '{"a": 1, "a": 2}')
    cases.append(Case("nested-twice", nested, route.name_of((*route.extra, "a"))))
    if route.in_string is not None:
        name, key = route.in_string
        cases.append(Case("in-string-twice", with_value(route, (name,), f'{{"{key}": 0, "{key}": 1}}'), name))
    return cases


def source_cases() -> list[Case]:
    """Ids that come from outside the record: SenseLink's bridge header, the face terminal's
    ?device= (both used where the record names no device), the alarm with no device at all."""
    heartbeat = json.dumps({"code": 10000, "message": "heartbeat"})
    cases = [Case(f"bridge-header={name}", heartbeat, "x-devicegate-source", {"header:x-devicegate-source": value})
             for name, value in {**BAD_IDS, "absent": None, "slash": "a/b"}.items()]
    cases.append(Case("bridge-header=trailing-newline", heartbeat, None, {"header:x-devicegate-source": "lobby\n"},
                      device="bridge:lobby"))
    no_device = load_record("senselink", "ws-doc-alarm")
    cases.append(Case("alarm-without-device-by-subscription", json.dumps(no_device), "data.deviceSn",
                      {"header:x-devicegate-source": None}))
    # The documented fallback: the vendor's own example alarm names no device; its bridge is real.
    cases.append(Case("alarm-without-device-by-bridge", json.dumps(no_device), None, device="bridge:lobby-server"))
    return cases


def face_alarm_cases() -> list[Case]:
    alarm = json.dumps(load_record("face-terminal", "doc-alarm-raised"))
    cases = [Case(f"device-param={name}", alarm, "device", {"query:device": value})
             for name, value in {**BAD_IDS, "slash": "a/b"}.items() if name != "empty"]
    # The documented fallback: an alarm naming no terminal (no serial, no parameter).
    cases.append(Case("no-device-at-all", alarm, None, device="unattributed"))
    blank_serial = load_record("face-terminal", "doc-alarm-raised")
    blank_serial["data"]["deviceSN"] = ".."
    cases.append(Case("alarm-serial=dots", json.dumps(blank_serial), "data.deviceSN", {"query:device": "T-1"}))
    return cases


def _escaped_keys(text: str, *names: str) -> str:
    for name in names:
        text = text.replace(json.dumps(name), '"\\u%04x%s"' % (ord(name[0]), name[1:]))
    return text


def face_personal_cases() -> list[Case]:
    """Refused pushes whose personal data sits where a field-by-field scrubber would not look."""
    def record(change: Callable[[dict], Any]) -> dict:
        pushed = _face_record()
        change(pushed)
        return pushed

    user = _face_record()["data"]["user"]
    late = {"timestamp": "not a time"}
    cases = {
        "user-as-list": (record(lambda r: r["data"].update(user=[user])), "data.user"),
        "user-as-json-string": (record(lambda r: r["data"].update(user=json.dumps(user))), "data.user"),
        "data-as-json-string": (record(lambda r: r.update(data=json.dumps(r["data"]))), "data"),
        "json-string-in-json-string": (record(lambda r: r.update(data=json.dumps(
            dict(r["data"], user=json.dumps(user))))), "data"),
        "nested-deep": (record(lambda r: r["data"].update(late, extra={"people": [{"who": user}]})), "data.timestamp"),
        "broken-json-in-a-string": (record(lambda r: r["data"].update(
            late, note=json.dumps(user)[:-12])), "data.timestamp"),
        "nan-beside-it": (record(lambda r: r["data"].update(recognizeScore=_SLOT)), "data.recognizeScore"),
    }
    out = [Case(name, json.dumps(pushed, ensure_ascii=False).replace(json.dumps(_SLOT), "NaN"), expected)
           for name, (pushed, expected) in cases.items()]
    text = json.dumps(record(lambda r: r["data"].update(late)), ensure_ascii=False)
    escaped = _escaped_keys(text, "pin", "id_number", "ic_number")
    out += [
        Case("escaped-keys", escaped, "data.timestamp"),
        Case("escaped-keys-malformed", escaped[:-40], "body"),
        Case("user-twice", json.dumps(_face_record(), ensure_ascii=False).replace(
            '"user": {', '"user": {"pin": "%s", "id_number": "%s"}, "user": {' % (PIN, ID_NUMBER)), "data.user"),
        Case("not-json-at-all", f"pin={PIN}&id_number={ID_NUMBER}&ic_number={IC_NUMBER}", "body"),
    ]
    return out


def senselink_personal_cases() -> list[Case]:
    def record(change: Callable[[dict], Any]) -> dict:
        pushed = _senselink_record()
        change(pushed)
        return pushed

    data = _senselink_record()["data"]
    late = {"signTime": "not a time"}
    cases = {
        "data-as-list": (record(lambda r: r.update(data=[r["data"]])), "data"),
        "data-as-json-string": (record(lambda r: r.update(data=json.dumps(r["data"]))), "data"),
        "numbers-in-a-list": (record(lambda r: r["data"].update(
            late, people=[{"idNumber": SL_ID_NUMBER, "icNumber": SL_IC_NUMBER}])), "data.signTime"),
        "numbers-in-a-json-string": (record(lambda r: r["data"].update(late, note=json.dumps(
            {"who": {"idNumber": SL_ID_NUMBER}, "card": [{"icNumber": SL_IC_NUMBER}]}))), "data.signTime"),
        "blank-sn": (record(lambda r: r["data"].update(sn="")), "data.sn"),
    }
    out = [Case(name, json.dumps(pushed, ensure_ascii=False), expected) for name, (pushed, expected) in cases.items()]
    escaped = _escaped_keys(json.dumps(record(lambda r: r["data"].update(late)), ensure_ascii=False),
                            "idNumber", "icNumber")
    out += [
        Case("escaped-keys", escaped, "data.signTime"),
        Case("escaped-keys-malformed", escaped[:-30], "body"),
        Case("data-twice", json.dumps(_senselink_record(), ensure_ascii=False).replace(
            '"data": {', '"data": %s, "data": {' % json.dumps(data), 1), "data"),
        Case("not-json-at-all", f"idNumber={SL_ID_NUMBER};icNumber={SL_IC_NUMBER}", "body"),
    ]
    return out


def _raw(route: Route, path: tuple[str | int, ...], token: str, parsed_value: Any) -> Any:
    """The payload with raw JSON `token` at `path`, or for a parsed route `parsed_value` there."""
    if route.parsed:
        return put(route.base(), path, parsed_value)
    text = json.dumps(put(route.base(), path, _SLOT), ensure_ascii=False)
    return text.replace(json.dumps(_SLOT), token)


def _nested(levels: int) -> Any:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _written(route: Route, moment: datetime) -> Any:
    return int(moment.timestamp()) if route.time_unit == "s" else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def bounds_cases(route: Route) -> list[Case]:
    """Integers of 5,000 digits, lone surrogates, nesting past 16 levels, numbers as text that are
    no JSON numbers, and times beyond the horizon: each refused naming where it sits (README
    "Parsing rules"); times a day ahead and vendor-shaped numeric text accepted."""
    from devicegate.core.jsonbody import MAX_DEPTH

    # A parsed route gets 50 digits (Lambda's own JSON parser stops at Python's 4,300 before the
    # gateway), the commands API 500 (its bodies are at most 4 KB).
    long_int = "1" * (50 if route.parsed else 500 if route.name == "commands" else 5000)
    big = int(long_int) if route.parsed else None
    cases = [
        Case("long-int-typed", _raw(route, route.number, long_int, big), route.name_of(route.number)),
        Case("long-int-extra", _raw(route, route.extra, "-" + long_int, big and -big), route.name_of(route.extra)),
        Case("surrogate-extra", _raw(route, route.extra, '"x\\ud800y"', "x\ud800y"), route.name_of(route.extra)),
        # Nested arrays 100 levels deep (20 for a parsed route): named down to the 16th level.
        Case("deep-extra", _raw(route, route.extra, "[" * 100 + "]" * 100, _nested(20)),
             route.name_of((*route.extra, *[0] * (MAX_DEPTH - len(route.extra))))),
    ]
    if route.in_string is not None:
        name, key = route.in_string
        cases.append(Case("long-int-in-string", with_value(route, (name,), f'{{"{key}": {"1" * 5000}}}'), name))
        cases.append(Case("surrogate-in-string", with_value(route, (name,), f'{{"{key}": "\\udc00"}}'), name))
    if route.integer is not None:
        for name, text in {"underscore": "12_000", "blank-underscore": " 1_0 ", "hex": "0x10", "exponent": "1e5",
                           "plus": "+5"}.items():
            cases.append(Case(f"integer-text={name}", with_value(route, route.integer, text),
                              route.name_of(route.integer)))
        cases.append(Case("integer-text=plain", with_value(route, route.integer, "0"), None))
        for name, text in {"underscore": "12_000", "blank-underscore": " 1_0 ", "hex": "0x10"}.items():
            cases.append(Case(f"number-text={name}", with_value(route, route.number, text),
                              route.name_of(route.number)))
        cases.append(Case("number-text=plain", with_value(route, route.number, "35.926264"), None))
    if route.time is not None:
        for year in (2100, 5138, 9999):
            cases.append(Case(f"time={year}", with_value(route, route.time,
                                                         _written(route, datetime(year, 11, 16, 9, 46, 39, tzinfo=UTC))),
                              route.name_of(route.time)))
        if route.time_unit == "s":  # 1978 if read as milliseconds; the year 10000 as seconds
            cases.append(Case("time=253402300800", with_value(route, route.time, 253402300800),
                              route.name_of(route.time)))
        ahead = datetime.now(UTC) + timedelta(hours=23)
        cases.append(Case("time=23h-ahead", with_value(route, route.time, _written(route, ahead)), None))
    return cases


def photo_cases() -> list[Case]:
    """The face terminal's inline photos: either base64 alphabet, padded or not, is a photo; decoded
    content that is not an image never is."""
    import base64

    jpeg = bytes.fromhex("ffd8ffe000104a46494600010100000100010000fffe0005fbefbeffd9")

    def record(photo: str, uuid: str) -> str:
        pushed = _face_record()
        pushed["data"].update(rgb_image=photo, uuid=uuid)
        return json.dumps(pushed, ensure_ascii=False)

    cases = [Case("url-safe-unpadded", record(base64.urlsafe_b64encode(jpeg).decode().rstrip("="), "photo-1"), None),
             Case("standard-unpadded", record(base64.b64encode(jpeg).decode().rstrip("="), "photo-2"), None)]
    for name, content in {"html": b"<html><body><script>alert(1)</script></body></html>",
                          "svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
                          "text": b"hello, not a picture"}.items():
        cases.append(Case(f"photo={name}", record(base64.b64encode(content).decode(), f"photo-{name}"),
                          "data.rgb_image"))
    return cases



def plant(document: Any, parent: tuple[str | int, ...]) -> Any:
    """`document` with every PLANTED_KEYS spelling at the record's own level (`parent`, where
    unknown fields go), in a nested object, in a list, in JSON inside a string and in JSON inside
    JSON inside a string: the shapes the issue found left in clear."""
    target = document
    for step in parent:
        target = target[step]
    target.update({key: PLANTED[key, "top"] for key in PLANTED_KEYS})
    target["vendorPeople"] = {"user": {"extra": {key: PLANTED[key, "nested"] for key in PLANTED_KEYS}}}
    target["vendorVisitors"] = [{"visitor": {key: PLANTED[key, "list"]}} for key in PLANTED_KEYS]
    target["vendorNote"] = json.dumps({"visitor": {key: PLANTED[key, "json-string"] for key in PLANTED_KEYS}},
                                      ensure_ascii=False)
    target["vendorNotes"] = json.dumps({"inner": json.dumps({key: PLANTED[key, "json-in-json"]
                                                              for key in PLANTED_KEYS})})
    return document


def planted_cases(route: Route) -> list[Case]:
    """Every route of every vendor: a record with personal data planted in every shape, accepted
    (stored and published without it) and refused (kept in quarantine without it); and text
    that is no JSON at all, where the body is the payload."""
    parent = route.extra[:-1]

    def planted(change: Callable[[Any], Any] = lambda d: d) -> Any:
        document = change(plant(route.base(), parent))
        return document if route.parsed else json.dumps(document, ensure_ascii=False)

    cases = [
        Case("planted-accepted", planted(), None, device=next(iter(route.devices))),
        Case("planted-refused", planted(lambda d: put(d, route.number, ["not", "a", "number"])),
             route.name_of(route.number)),
    ]
    if not route.parsed and not route.prefix:  # the body itself (Mettax's is inside `data`)
        cases.append(Case("planted-not-json", "PIN=%s&ID_NUMBER=%s" % (PLANTED["PIN", "top"],
                                                                      PLANTED["ID_NUMBER", "top"]), "body"))
    return cases + VENDOR_PLANTED.get(route.name, lambda r: [])(route)


def _jointech_lock_cases(route: Route) -> list[Case]:
    """The lock's unlock password (and planted extras) by each Jointech way in: accepted where the
    route takes events, refused on the location route (no gpsTime)."""
    if route.parsed:
        event = plant(load_event("jointech/iot-mqtt-event.json"), ())
        return [Case("lock-event", dict(event, password=LOCK_PASSWORD), None, device="8454601010")]
    record = plant(dict(load_record("jointech", "webhook-event"), password=LOCK_PASSWORD), ())
    refused = "gpsTime" if route.name == "jointech-kind" else None
    return [Case("lock-event", json.dumps(record, ensure_ascii=False), refused,
                 device=None if refused else "795206001104")]


def _ai_camera_cases(route: Route) -> list[Case]:
    """Operators other than heartbeat are stored whole: with the box's event id, and without
    one (its id then derived from content)."""
    message = plant(load_record("ai-camera", "variation-unknown-operator"), ())
    anonymous = copy.deepcopy(message)
    del anonymous["info"]["eventId"]
    return [Case("other-operator", json.dumps(message, ensure_ascii=False), None, device="I320013590DEA0BE21F6958"),
            Case("other-operator-no-event-id", json.dumps(anonymous, ensure_ascii=False), None,
                 device="I320013590DEA0BE21F6958")]


def _mettax_face_check_cases(route: Route) -> list[Case]:
    """A face check's two parts: each kept on the assembly item, then assembled into one event."""
    return [Case(f"face-check-{name}", json.dumps(plant(load_record("mettax", f"doc-face-check-{name}"), ()),
                                                  ensure_ascii=False), None, device="333777444585")
            for name in ("result", "picture")]


VENDOR_PLANTED: dict[str, Callable[[Route], list[Case]]] = {
    "jointech-kind": _jointech_lock_cases, "jointech-auto": _jointech_lock_cases, "jointech-mqtt": _jointech_lock_cases,
    "ai-camera": _ai_camera_cases, "mettax-auto": _mettax_face_check_cases,
}


#: Refused payloads of the vendors whose records declare personal fields, in the shapes a
#: field-by-field scrubber would miss (keys given twice, escaped, the record as a string...).
PERSONAL_SHAPES: dict[str, Callable[[], list[Case]]] = {
    "face-terminal": face_personal_cases, "senselink": senselink_personal_cases,
}

#: (route, family) -> cases. Every route gets numbers, ids and duplicates; every vendor record's
#: route personal data planted in every shape (the face terminal's and SenseLink's more shapes);
#: the sources of ids outside records their own.
FAMILIES: dict[tuple[str, str], Callable[[], list[Case]]] = {
    **{(name, "numbers"): (lambda r=route: number_cases(r)) for name, route in ROUTES.items()},
    **{(name, "ids"): (lambda r=route: id_cases(r)) for name, route in ROUTES.items()},
    **{(name, "duplicates"): (lambda r=route: duplicate_cases(r)) for name, route in ROUTES.items()
       if not route.parsed},
    **{(name, "bounds"): (lambda r=route: bounds_cases(r)) for name, route in ROUTES.items()},
    ("face-terminal", "photos"): photo_cases,
    ("senselink", "sources"): source_cases,
    ("face-terminal", "sources"): face_alarm_cases,
    **{(name, "personal"): (lambda r=route: planted_cases(r) + PERSONAL_SHAPES.get(r.name, list)())
       for name, route in ROUTES.items() if name != "commands"},
}
