"""The personal-data policy: the deployment parameter, the key-name matcher, accepted records
(make_event), content-derived ids, and refused payloads in whatever shape (quarantine)."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import random
import re
from datetime import UTC, datetime

import pytest
import yaml
from pydantic import BaseModel

from devicegate.core import personal
from devicegate.core.envelope import RawPush, make_event
from devicegate.vendors import get_adapter, vendor_names
from tests.support import EVENTS, ROOT, load_record, new_environment

NOW = datetime(2025, 2, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
def deployment(monkeypatch):
    """Sets PersonalData for the test, as the template hands it to the functions."""
    def set_spec(spec: str | None) -> personal.Policy:
        if spec is None:
            monkeypatch.delenv("PERSONAL_DATA", raising=False)
        else:
            monkeypatch.setenv("PERSONAL_DATA", spec)
        new_environment()
        return personal.deployment_policy()

    set_spec(None)
    yield set_spec
    new_environment()


# --- the parameter -----------------------------------------------------------------------------------

def test_default_masks_card_numbers_keeps_names_and_always_drops_credentials():
    policy = personal.parse_policy(None)
    assert policy["id_number"] == policy["ic_number"] == "mask"
    assert policy["name"] == "keep" and policy["photo"] == "keep"
    assert policy["pin"] == policy["password"] == "drop"


def test_credentials_cannot_be_kept_even_when_asked():
    assert personal.parse_policy("pin=keep,name=mask")["pin"] == "drop"
    with pytest.raises(personal.PolicyError):
        personal.parse_policy("password=keep")  # no category a deployment chooses for


@pytest.mark.parametrize("spec", ["nmae=drop", "name=hide", "name", "name=keep,=drop"])
def test_a_mistyped_policy_is_refused_with_the_categories(spec):
    with pytest.raises(personal.PolicyError, match="expected one of name"):
        personal.parse_policy(spec)


@pytest.mark.parametrize("value, masked", [("110101199003077777", "**************7777"), ("1234", "****"),
                                           ("12345", "*2345"), ("", ""), (987654321, "*****4321")])
def test_mask_keeps_the_last_four(value, masked):
    assert personal.mask(value) == masked


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.mark.parametrize("spec, allowed", [
    ("id_number=mask,ic_number=mask", True), ("name=drop, photo=drop", True), ("", True),
    ("nmae=drop", False), ("name=hide", False), ("password=keep", False),
])
def test_the_template_parameter_admits_exactly_what_the_functions_parse(spec, allowed):
    # A value the functions could not parse must be refused at deploy time, not quarantine records
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)
    pattern = template["Parameters"]["PersonalData"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, spec)) is allowed
    if allowed:
        personal.parse_policy(spec)


# --- the matcher: key names in any case or spelling ---------------------------------------------------

@pytest.mark.parametrize("key, category", [
    ("pin", "pin"), ("PIN", "pin"), ("Pin", "pin"), ("pin_code", "pin"), ("PinCode", "pin"),
    ("password", "password"), ("PASSWORD", "password"), ("Passwd", "password"), ("pwd", "password"),
    ("unlockPassword", "password"), ("pass-code", "password"), ("密码", "password"),
    ("idNumber", "id_number"), ("id_number", "id_number"), ("IDNUMBER", "id_number"), ("Id-Number", "id_number"),
    ("ID_NUMBER", "id_number"), ("id number", "id_number"), ("id.number", "id_number"), ("idCardNo", "id_number"),
    ("身份证号", "id_number"),
    ("icNumber", "ic_number"), ("ic_number", "ic_number"), ("IC-Number", "ic_number"), ("cardNumber", "ic_number"),
    ("name", "name"), ("NAME", "name"), ("receptionUserName", "name"), ("user_name", "name"),
    ("userId", "user_id"), ("user_id", "user_id"), ("receptionUserId", "user_id"),
    ("jobNumber", "job_number"), ("job_number", "job_number"),
    ("mobile", "mobile"), ("phoneNumber", "mobile"), ("TEL", "mobile"),
    ("remark", "remark"), ("备注", "remark"),
    ("rgb_image", "photo"), ("alarm_photo", "photo"), ("avatar", "photo"), ("signBgAvatar", "photo"),
    ("docPhoto", "photo"), ("faceImage", "photo"),
    ("bodyTemperature", "temperature"), ("body_temperature", "temperature"),
])
def test_each_spelling_is_its_category(key, category):
    assert personal.category_of(key) == category


@pytest.mark.parametrize("key", [
    # what vendors' records hold that only looks like it: whole names are compared, not parts
    "alarmName", "deviceName", "eventName", "eventTypeName", "locTypeName", "codeName", "statusName",
    "driverName", "pass", "passengerStaticsInterval", "temperature", "card", "rfidNo", "faceId", "imageUrl",
    "token", "clientToken", "accessKey", "spin", "pinned", "opinion", "pins", "idNumbers", "id", "user", "users",
    "identity", "mobileNetwork", "phoneModel", "typeName", "groups", "deviceSN", "signTime",
])
def test_look_alikes_are_not_personal(key):
    assert personal.category_of(key) is None


def _keys(value, found: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(key)
            _keys(item, found)
    elif isinstance(value, list):
        for item in value:
            _keys(item, found)
    elif isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            _keys(json.loads(value), found)
        except ValueError:
            pass
    return found


def _model_keys(vendor: str) -> set[str]:
    module = importlib.import_module(type(get_adapter(vendor)).__module__.rsplit(".", 1)[0] + ".models")
    found: set[str] = set()
    for _, model in inspect.getmembers(module, inspect.isclass):
        if issubclass(model, BaseModel) and model.__module__ == module.__name__:
            for name, info in model.model_fields.items():
                found |= {name, *([info.alias] if info.alias else [])}
            found |= set(model.model_computed_fields)
    return found


#: The personal fields each vendor's models and documented examples (events/) hold. A vendor
#: field that starts being matched (a new `...Name` that is one of the names, a new model
#: field) shows here before it silently disappears from stored records.
PERSONAL_FIELDS_BY_VENDOR = {
    "face-terminal": {"name", "user_id", "ic_number", "job_number", "id_number", "remark", "pin", "rgb_image",
                      "bodyTemperature", "alarm_photo"},
    "senselink": {"name", "userId", "receptionUserId", "receptionUserName", "avatar", "signAvatar", "signBgAvatar",
                  "mobile", "icNumber", "idNumber", "jobNumber", "remark", "docPhoto", "bodyTemperature",
                  "alarmPhoto"},
    "jointech": {"password", "备注"},
}


@pytest.mark.parametrize("vendor", vendor_names())
def test_every_vendors_models_and_examples_hold_only_the_personal_fields_listed(vendor):
    # Given every key of the vendor's models and documented examples (JSON inside strings too)
    keys = _model_keys(vendor)
    for path in sorted((EVENTS / vendor / "records").glob("*.json")):
        _keys(json.loads(path.read_text()), keys)
    # Then the matcher takes exactly the ones listed as personal, and none of the others
    assert {key for key in keys if personal.category_of(key)} == PERSONAL_FIELDS_BY_VENDOR.get(vendor, set())


# --- the prefilter -------------------------------------------------------------------------------------

def _spelled(name: str, rng: random.Random) -> str:
    """`name` as a sender might write it: any case, separators anywhere."""
    out = []
    for char in name:
        out.append(char.upper() if rng.random() < 0.5 else char)
        if rng.random() < 0.3:
            out.append(rng.choice("_-. "))
    return "".join(out)


def _hidden(key: str, value: str, depth: int, rng: random.Random):
    """`{key: value}` under `depth` levels of objects, lists and JSON inside strings."""
    document: object = {key: value}
    for _ in range(depth):
        document = rng.choice([lambda d: {"inner": d}, lambda d: [1, d], lambda d: {"text": json.dumps(d)},
                               lambda d: {"text": json.dumps(d, indent=1)}])(document)
    return document


def test_the_prefilter_finds_every_name_in_any_spelling_at_any_depth_and_the_walk_removes_it():
    # Given every name, spelled at random, hidden at random depths (JSON in strings in strings...)
    rng = random.Random(16)
    policy = personal.parse_policy(",".join(f"{c}=drop" for c in personal.CATEGORIES))
    for name in personal.NAMES:
        for depth in range(4):
            text = json.dumps({"record": _hidden(_spelled(name, rng), "S3CR3T-VALUE", depth, rng)},
                              ensure_ascii=False)
            # Then the prefilter says "maybe", and the walk leaves nothing of the value
            assert policy.matcher.candidate(text), (name, text)
            assert "S3CR3T-VALUE" not in personal.scrub_payload(text.encode(), policy).decode(), (name, text)


def test_the_prefilter_passes_records_holding_no_candidate_without_reading_them():
    # Given the documented location and GPS records (no personal field), Then nothing is a candidate
    for record in (load_record("jointech", "mqtt-location"), load_record("mettax", "doc-gps"),
                   load_record("ai-camera", "doc-heartbeat")):
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        assert not personal.IDENTITY.candidate(text)
    # And a value that is a name, or a name inside a longer key, is no key
    assert not personal.IDENTITY.candidate('{"mode":"pin","alarmName":"x","spin":1}')
    # But a key spelled with escapes inside JSON in a string is, whatever its letters, and so is
    # one written with blanks before its colon
    assert personal.IDENTITY.candidate(json.dumps({"t": '{"\\u0070in": "1"}'}))
    assert personal.IDENTITY.candidate(json.dumps({"t": '{"Id_Number"\n\t: "1"}'}))
    # And a name that only case folding makes one (ß folds to ss)
    assert personal.IDENTITY.candidate('{"PAßWORD": "1"}') and personal.category_of("PAßWORD") == "password"


# --- accepted records: make_event, the one place every event passes ----------------------------------

def _event(data: dict, event_id: str | None = None, identity: dict | None = None):
    return make_event(vendor="v", device_id="d1", kind="k", occurred_at=NOW, received_at=NOW, transport="http",
                      data_json=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                      identity_json=None if identity is None else json.dumps(identity, separators=(",", ":")),
                      event_id=event_id)


SHAPES = {
    "data.pin": {"pin": "975318642", "id_number": "110101199003077777"},
    "user.extra.pin": {"user": {"extra": {"pin": "975318642"}, "PIN": "975318643", "idNumber": "110101199003077777"}},
    "visitor.idNumber": {"visitor": {"IDNUMBER": "110101199003077777"}, "people": [{"Pin": "975318642"}]},
    "json in a string": {"note": json.dumps({"who": {"ID_NUMBER": "110101199003077777", "pin": "975318642"}})},
    "lock password": {"eventType": 1, "password": "975318642", "card": "0003116836"},
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=list(SHAPES))
def test_an_accepted_record_keeps_no_pin_or_password_and_masked_numbers_in_any_shape(deployment, shape):
    # Given the default deployment, When any vendor's record in any shape becomes an event
    event = _event(shape, event_id="e1")
    # Then no PIN, password or whole ID number is in its data; the last four digits are
    assert "975318642" not in event.dataJson and "975318643" not in event.dataJson
    assert "110101199003077777" not in event.dataJson
    if "110101199003077777" in json.dumps(shape):
        assert "7777" in event.dataJson
    assert "0003116836" in event.dataJson or "card" not in shape  # a lock's card number is kept


def test_a_record_without_personal_data_is_stored_as_it_came(deployment):
    text = json.dumps(load_record("jointech", "mqtt-location"))
    event = make_event(vendor="v", device_id="d1", kind="k", occurred_at=NOW, received_at=NOW, transport="http",
                       data_json=text)
    assert event.dataJson is text


def test_the_deployment_decides_what_is_kept_of_the_rest(deployment):
    deployment("name=drop,ic_number=keep,mobile=mask")
    data = _event({"name": "王五", "icNumber": "7730012345678", "mobile": "13800138000", "pin": "1234",
                   "groups": [{"name": "Staff", "id": 1}]}, event_id="e1").data
    # a group's name says which group, not who: kept whatever `name` says
    assert data == {"icNumber": "7730012345678", "mobile": "*******8000", "groups": [{"name": "Staff", "id": 1}]}


def test_a_stored_photos_reference_stays_when_photos_are_masked(deployment):
    deployment("photo=mask")
    ref = {"key": "media/face-terminal/T1/2025/02/07/u1/rgb_image.jpg", "contentType": "image/jpeg", "bytes": 5}
    data = _event({"rgb_image": ref, "avatar": "img-12345678"}, event_id="e1").data
    assert data == {"rgb_image": ref, "avatar": "********5678"}


def test_content_derived_ids_do_not_depend_on_what_the_policy_keeps(deployment):
    # Given one record with personal fields, its id derived from content
    record = {"eventType": 1, "password": "975318642", "name": "王五", "idNumber": "110101199003077777"}
    ids = set()
    for spec in ("", "name=drop,id_number=drop", "name=mask,id_number=mask"):
        deployment(spec)
        ids.add(_event(record).eventId)
    # Then every deployment gives it the same id...
    assert len(ids) == 1
    # ...which is the id of the record without them: no hash of a PIN to guess it back from
    [event_id] = ids
    assert event_id == _event({"eventType": 1}).eventId
    assert event_id != _event({"eventType": 2, "password": "975318642"}).eventId


def test_a_derived_id_uses_the_identity_text_without_personal_fields(deployment):
    # Jointech: the webhook-only fields are left out of the identity, and so is the password
    with_password = _event({"a": 1, "fileIndex": "7", "password": "975318642"}, identity={"a": 1, "password": "x"})
    assert with_password.eventId == _event({"a": 1}).eventId


@pytest.mark.parametrize("vendor, fixture, transport", [
    ("jointech", "webhook-event", "http"), ("jointech", "mqtt-event", "mqtt"),
])
def test_the_jointech_unlock_password_is_never_stored(deployment, vendor, fixture, transport):
    # Given a lock event with its unlock password, by webhook or MQTT (topic fields as the rule adds them)
    record = dict(load_record(vendor, fixture), password="975318642", pin="123456789", id_number="110101199003077777")
    route = {"kind": "event"}
    if transport == "mqtt":
        record.update(accessKey="ak", deviceNum=record["assetId"], kind="event")
        route.update(deviceNum=record["assetId"])
        push = RawPush(vendor, "mqtt", b"", route=route, document=record)
    else:
        push = RawPush(vendor, "http", json.dumps(record).encode(), route=route)
    [event] = get_adapter(vendor).normalize(push, NOW)
    assert "975318642" not in event.dataJson and "password" not in event.data
    assert "123456789" not in event.dataJson and "110101199003077777" not in event.dataJson


# --- refused payloads: quarantine ------------------------------------------------------------------------

PIN, ID, IC = "975318642", "110101199003077777", "7730012345678"
USER = {"name": "王五", "pin": PIN, "id_number": ID, "ic_number": IC}


def scrubbed(payload: str | bytes, spec: str | None = None) -> str:
    raw = payload.encode() if isinstance(payload, str) else payload
    return personal.scrub_payload(raw, personal.parse_policy(spec)).decode()


@pytest.mark.parametrize("shape", [
    {"data": {"user": USER}},
    {"data": {"user": [USER, {"user": USER}]}},
    {"data": {"user": json.dumps(USER)}},
    {"data": json.dumps({"user": json.dumps(USER)})},
    {"data": {"deep": [{"deeper": {"people": [USER]}}]}},
    {"data": [json.dumps([json.dumps({"user": USER})])]},
    {"Data": {"USER": {"PIN": PIN, "ID_NUMBER": ID, "Ic-Number": IC, "name": "王五"}}},
])
def test_the_pin_goes_and_numbers_are_masked_in_any_shape(shape):
    # Given a rejected payload holding a person's PIN and numbers nested, listed or stringified
    text = scrubbed(json.dumps(shape, ensure_ascii=False))
    # Then none is left as sent, the masked forms are there, and it still reads as JSON
    assert PIN not in text and ID not in text and IC not in text
    assert "**************7777" in text.replace("\\", "")
    assert "王五" in text  # names are kept by default
    json.loads(text)


def test_keys_spelled_with_escapes_are_the_fields_they_spell():
    text = scrubbed('{"data": {"user": {"\\u0070in": "%s", "\\u0069d_number": "%s"}}}' % (PIN, ID))
    assert json.loads(text) == {"data": {"user": {"id_number": "**************7777"}}}


def test_a_key_given_twice_keeps_neither_value_of_a_dropped_field():
    text = scrubbed('{"user": {"pin": "%s"}, "user": {"pin": "1"}, "n": NaN}' % PIN)
    assert PIN not in text and text == '{"user":{},"n":NaN}'  # NaN as sent: a replay refuses it again
    # The first value is gone from what was read even when the last holds nothing to scrub
    text = scrubbed('{"user": {"pin": "%s"}, "user": {"name": "x"}}' % PIN)
    assert text == '{"user":{"name":"x"}}'


@pytest.mark.parametrize("payload", [
    '{"type": 0, "data": {"user": {"\\u0070in": "%s", "id_number": "%s"}, "uuid": ' % (PIN, ID),
    "pin=%s&id_number=%s" % (PIN, ID),
    b"\xff\xfe pin %s" % PIN.encode(),
])
def test_text_that_does_not_parse_keeps_only_a_summary(payload):
    # Given a payload that is not JSON (truncated, a form, not even UTF-8)
    raw = payload.encode() if isinstance(payload, str) else payload
    kept = json.loads(scrubbed(raw))
    # Then nothing of its content is kept: its digest, size and shape without letters or digits
    assert kept["sha256"] == hashlib.sha256(raw).hexdigest() and kept["bytes"] == len(raw)
    assert set(kept) == {"redacted", "sha256", "bytes", "shape"}
    assert not any(c.isalnum() and c not in "a0" for c in kept["shape"])


def test_a_broken_record_inside_a_string_is_summarized_but_plain_text_is_kept():
    broken = json.dumps(USER)[:-5]
    kept = json.loads(scrubbed(json.dumps({"note": broken, "remark": "[VIP] guest", "quoted": '"hi"',
                                           "mode": '"pin"'})))
    assert PIN not in json.dumps(kept) and json.loads(kept["note"])["sha256"]
    assert kept["remark"] == "[VIP] guest" and kept["quoted"] == '"hi"' and kept["mode"] == '"pin"'


def test_a_payload_with_nothing_to_scrub_is_kept_byte_for_byte():
    raw = '{ "type": 0,  "data": {"user": {"name": "王五"}, "statusJson": "{\\"a\\": 1}"} }'
    assert scrubbed(raw) == raw


def test_the_deployment_policy_applies_in_quarantine_too():
    text = scrubbed(json.dumps({"data": {"user": USER, "rgb_image": "/9j/", "groups": [{"name": "Staff"}]}},
                               ensure_ascii=False),
                    "name=drop,id_number=drop,ic_number=mask,photo=drop")
    assert json.loads(text) == {"data": {"user": {"ic_number": "*********5678"}, "groups": [{"name": "Staff"}]}}


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_a_form_body_is_scrubbed_as_a_form_and_stays_one(charset):
    # Given Mettax's form encoding: a record in `data`, and a field named like a personal field
    from urllib.parse import parse_qsl, urlencode

    record = {"deviceId": "1", "driver": {"Pin": PIN, "idNumber": ID, "name": "王五"}}
    raw = urlencode({"data": json.dumps(record, ensure_ascii=False), "PIN": PIN}, encoding=charset).encode()
    # When it is kept
    kept = personal.scrub_form(raw, personal.parse_policy(None), charset)
    # Then it is a form holding the record without the PIN, with the number masked
    fields = dict(parse_qsl(kept.decode(), encoding=charset))
    assert set(fields) == {"data"} and PIN.encode() not in kept
    assert json.loads(fields["data"])["driver"] == {"idNumber": "**************7777", "name": "王五"}
    plain = urlencode({"data": json.dumps({"deviceId": "1"})}, encoding=charset).encode()
    assert personal.scrub_form(plain, personal.parse_policy(None), charset) is plain


def test_mettax_keeps_a_refused_form_replayable_without_personal_data(deployment):
    # Given a Mettax form push (no content type: a body not starting like JSON is a form)
    from urllib.parse import parse_qsl, urlencode

    record = dict(load_record("mettax", "doc-gps"), lat="north", PIN=PIN, visitor={"ID_NUMBER": ID})
    raw = urlencode({"data": json.dumps(record)}).encode()
    # When its quarantine body is made
    kept = get_adapter("mettax").quarantine_body(RawPush("mettax", "http", raw))
    # Then it is still the form Mettax sent, its record without the PIN, the number masked
    [(name, value)] = parse_qsl(kept.decode())
    assert name == "data" and PIN not in value and json.loads(value)["visitor"] == {"ID_NUMBER": "*" * 14 + "7777"}


@pytest.mark.parametrize("encoding", ["json-string", "json-object", "form", "multipart"])
def test_mettax_quarantine_reads_each_encoding_and_keeps_no_pin(deployment, encoding):
    from devicegate.core.errors import InvalidPayload
    from tests.unit.test_mettax_adapter import ENCODINGS

    # Given a refused Mettax record (a latitude that is no number) with a PIN, in each encoding
    record = dict(load_record("mettax", "doc-gps"), lat="north", vendorNote={"Pin": PIN, "idNumber": ID})
    body, content_type = ENCODINGS[encoding](record)
    push = RawPush("mettax", "http", body, headers={"content-type": content_type})
    # When quarantine keeps it, Then the PIN and the whole number are gone
    adapter = get_adapter("mettax")
    kept = adapter.quarantine_body(push)
    assert PIN.encode() not in kept and ID.encode() not in kept
    if encoding == "multipart":
        # a multipart body is not rewritten: with a personal field in it, a summary
        assert json.loads(kept)["sha256"] == hashlib.sha256(body).hexdigest()
        clean = ENCODINGS[encoding](dict(record, vendorNote={}))[0]
        assert adapter.quarantine_body(RawPush("mettax", "http", clean, headers={"content-type": content_type})) \
            is clean
    else:
        # the rest is still a body a replay reads and refuses for the same field
        with pytest.raises(InvalidPayload) as refused:
            adapter.normalize(RawPush("mettax", "http", kept, headers={"content-type": content_type}), NOW)
        assert [p.field for p in refused.value.problems] == ["data.lat"]


def test_named_fields_that_cannot_be_rewritten_are_kept_only_without_personal_data():
    policy = personal.parse_policy(None)
    raw = b"--b\r\n..."
    assert personal.keep_unless_personal(raw, [("data", '{"deviceId": "1"}')], policy) is raw
    for fields in ([("data", '{"PIN": "1"}')], [("pin", "1")], None):
        assert json.loads(personal.keep_unless_personal(raw, fields, policy))["redacted"]


def test_a_scrubbed_record_replays_to_what_ingest_would_have_stored(deployment):
    # Given a valid record with a PIN and numbers, as quarantine would keep it
    adapter = get_adapter("face-terminal")
    record = load_record("face-terminal", "variation-record-with-photo-and-pin")
    record["data"]["user"]["extra"] = {"PIN": PIN, "Id-Number": ID}
    raw = json.dumps(record, ensure_ascii=False).encode()
    kept = adapter.quarantine_body(RawPush("face-terminal", "http", raw))
    # When it is replayed, Then it makes the event the original would have made
    [direct] = adapter.normalize(RawPush("face-terminal", "http", raw), NOW)
    [replayed] = adapter.normalize(RawPush("face-terminal", "http", kept), NOW)
    assert replayed.dataJson == direct.dataJson and b"4321" not in kept and PIN.encode() not in kept


@pytest.mark.parametrize("vendor", vendor_names())
def test_every_vendor_quarantines_without_pins_or_passwords(deployment, vendor):
    # Given a refused JSON payload of any vendor planting credentials and numbers
    body = json.dumps({"PIN": PIN, "x": {"password": "S3CR3T-PASSWORD"}, "ID_NUMBER": ID}).encode()
    # When its adapter decides what quarantine keeps
    kept = get_adapter(vendor).quarantine_body(RawPush(vendor, "http", body,
                                                       headers={"content-type": "application/json"}))
    # Then it holds neither, and the number masked
    assert PIN.encode() not in kept and b"S3CR3T" not in kept and ID.encode() not in kept and b"7777" in kept


def test_the_module_lists_what_the_docs_list():
    # The deploy guide's table names every spelling matched, category by category
    docs = (ROOT / "docs" / "deploy.md").read_text()
    section = docs.split("## Personal data", 1)[1].split("\n## ", 1)[0]
    for category, names in personal.SPELLINGS.items():
        assert f"`{category}`" in section, category
        for name in names:
            assert f"`{name}`" in section, name

