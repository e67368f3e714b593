"""The personal-data policy: parsing the deployment parameter, masking, and its template pattern."""

from __future__ import annotations

import json
import re
from datetime import UTC

import pytest
import yaml

from devicegate.core import personal
from tests.support import ROOT


def test_default_masks_card_numbers_keeps_names_and_always_drops_the_pin():
    policy = personal.parse_policy(None)
    assert policy["id_number"] == policy["ic_number"] == "mask"
    assert policy["name"] == "keep" and policy["photo"] == "keep"
    assert policy["pin"] == "drop"


def test_pin_cannot_be_kept_even_when_asked():
    assert personal.parse_policy("pin=keep,name=mask")["pin"] == "drop"


@pytest.mark.parametrize("spec", ["nmae=drop", "name=hide", "name", "name=keep,=drop"])
def test_a_mistyped_policy_is_refused_with_the_categories(spec):
    with pytest.raises(personal.PolicyError, match="expected one of name"):
        personal.parse_policy(spec)


@pytest.mark.parametrize("value, masked", [("110101199003077777", "**************7777"), ("1234", "****"),
                                           ("12345", "*2345"), ("", ""), (987654321, "*****4321")])
def test_mask_keeps_the_last_four(value, masked):
    assert personal.mask(value) == masked


def test_apply_drops_and_masks_in_place():
    record = {"name": "王五", "id_number": "110101199003077777", "pin": "4321", "other": 1}
    personal.apply(record, {"name": "name", "id_number": "id_number", "pin": "pin"},
                   personal.parse_policy("name=drop,id_number=mask"))
    assert record == {"id_number": "**************7777", "other": 1}


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.mark.parametrize("spec, allowed", [
    ("id_number=mask,ic_number=mask", True), ("name=drop, photo=drop", True), ("", True),
    ("nmae=drop", False), ("name=hide", False),
])
def test_the_template_parameter_admits_exactly_what_the_functions_parse(spec, allowed):
    # A value the functions could not parse must be refused at deploy time, not quarantine records
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)
    pattern = template["Parameters"]["PersonalData"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, spec)) is allowed
    if allowed:
        personal.parse_policy(spec)


# --- quarantine: the policy on whatever shape a rejected payload has ------------------------------

PIN, ID, IC = "975318642", "110101199003077777", "7730012345678"
FACE_FIELDS = {"name": "name", "id_number": "id_number", "ic_number": "ic_number", "pin": "pin",
               "rgb_image": "photo"}
USER = {"name": "王五", "pin": PIN, "id_number": ID, "ic_number": IC}


def scrubbed(payload: str | bytes, spec: str | None = None) -> str:
    raw = payload.encode() if isinstance(payload, str) else payload
    return personal.scrub_payload(raw, FACE_FIELDS, personal.parse_policy(spec)).decode()


@pytest.mark.parametrize("shape", [
    {"data": {"user": USER}},
    {"data": {"user": [USER, {"user": USER}]}},
    {"data": {"user": json.dumps(USER)}},
    {"data": json.dumps({"user": json.dumps(USER)})},
    {"data": {"deep": [{"deeper": {"people": [USER]}}]}},
    {"data": [json.dumps([json.dumps({"user": USER})])]},
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
    import hashlib

    assert kept["sha256"] == hashlib.sha256(raw).hexdigest() and kept["bytes"] == len(raw)
    assert set(kept) == {"redacted", "sha256", "bytes", "shape"}
    assert not any(c.isalnum() and c not in "a0" for c in kept["shape"])


def test_a_broken_record_inside_a_string_is_summarized_but_plain_text_is_kept():
    broken = json.dumps(USER)[:-5]
    kept = json.loads(scrubbed(json.dumps({"note": broken, "remark": "[VIP] guest", "quoted": '"hi"'})))
    assert PIN not in json.dumps(kept) and json.loads(kept["note"])["sha256"]
    assert kept["remark"] == "[VIP] guest" and kept["quoted"] == '"hi"'


def test_a_payload_with_nothing_to_scrub_is_kept_byte_for_byte():
    raw = '{ "type": 0,  "data": {"user": {"name": "王五"}, "statusJson": "{\\"a\\": 1}"} }'
    assert scrubbed(raw) == raw


def test_the_deployment_policy_applies_in_quarantine_too():
    text = scrubbed(json.dumps({"data": {"user": USER, "rgb_image": "/9j/"}}, ensure_ascii=False),
                    "name=drop,id_number=drop,ic_number=mask,photo=drop")
    assert json.loads(text) == {"data": {"user": {"ic_number": "*********5678"}}}


def test_a_scrubbed_record_replays_to_what_ingest_would_have_stored():
    # Given a valid record with a PIN and numbers, as quarantine would keep it
    from datetime import datetime

    from devicegate.core.envelope import RawPush
    from devicegate.vendors.face_terminal.adapter import ALL_FIELDS, FaceTerminalAdapter
    from tests.support import load_record

    policy = personal.parse_policy(None)
    record = load_record("face-terminal", "variation-record-with-photo-and-pin")
    raw = json.dumps(record, ensure_ascii=False).encode()
    kept = personal.scrub_payload(raw, ALL_FIELDS, policy)
    # When it is replayed, Then it makes the event the original would have made
    adapter, now = FaceTerminalAdapter(policy), datetime.now(UTC)
    [direct] = adapter.normalize(RawPush("face-terminal", "http", raw), now)
    [replayed] = adapter.normalize(RawPush("face-terminal", "http", kept), now)
    assert replayed.dataJson == direct.dataJson and b"4321" not in kept
