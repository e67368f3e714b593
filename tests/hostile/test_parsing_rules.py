"""The parsing rules every route shares (devicegate.jsonbody, fields.IdRule), without AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devicegate.core import jsonbody
from devicegate.core.envelope import canonical_json, media_key
from devicegate.core.errors import InvalidPayload
from devicegate.core.fields import LONG_PRINTABLE_ID, PRINTABLE_ID, TOPIC_ID


def refusal(text: str, field: str = "body") -> tuple[str, str]:
    with pytest.raises(InvalidPayload) as caught:
        jsonbody.loads(text, field)
    [problem] = caught.value.problems
    return problem.field, problem.problem


@pytest.mark.parametrize("text, field", [
    ('{"assetId": NaN}', "assetId"),
    ('{"assetId": Infinity}', "assetId"),
    ('{"a": 1, "speed": -Infinity}', "speed"),
    ('{"speed": 1e999}', "speed"),
    ('{"speed": -1e999}', "speed"),
    ('{"speed": 1' + "0" * 400 + '.5}', "speed"),
    ('{"data": {"user": [{"x": 1}, {"score": 1E+400}]}}', "data.user.1.score"),
    ("[1, NaN]", "body.1"),
    ("NaN", "body"),
])
def test_a_number_that_is_not_finite_is_refused_naming_its_path(text, field):
    # Given JSON holding NaN, an infinity or a number beyond a float's range, When it is parsed,
    # Then it is refused, the path to the number named
    assert refusal(text) == (field, jsonbody.NOT_FINITE)


@pytest.mark.parametrize("text, field", [
    ('{"assetId": "A", "assetId": "B"}', "assetId"),
    ('{"data": {"uuid": 1, "x": [{"k": 1, "k": 1}]}}', "data.x.0.k"),
])
def test_a_key_given_twice_is_refused_naming_it(text, field):
    assert refusal(text) == (field, jsonbody.DUPLICATE_KEY)


def test_inside_another_field_the_path_has_its_prefix():
    # Mettax's `data` string is parsed on its own: its fields are named under `data`
    assert refusal('{"deviceId": NaN}', "data") == ("data.deviceId", jsonbody.NOT_FINITE)
    assert refusal('[{"deviceId": "1"}, {"lat": 1e999}]', "data")[0] == "data.1.lat"


def test_text_that_merely_spells_nan_or_big_exponents_is_fine():
    document = {"describe": "NaN Infinity 1e999", "big": 10 ** 30, "small": 1e-999, "e": 1.5e300}
    assert jsonbody.loads(canonical_json(document)) == {**document, "small": 0.0}


def test_refused_early_but_broken_later_is_malformed_json():
    assert refusal('{"a": NaN, "b": }') == ("body", "not JSON")


def test_a_parsed_document_is_checked_for_numbers_and_depth():
    # IoT rules hand Lambda parsed JSON: 1e999 arrives as a float infinity
    with pytest.raises(InvalidPayload) as caught:
        jsonbody.check_document({"assetId": "1", "expand": {"t": [float("inf")]}})
    assert caught.value.problems[0].field == "expand.t.0"
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["n"] = node = {}
    with pytest.raises(InvalidPayload, match="nested too deeply"):
        jsonbody.check_document(deep)


def test_field_names_built_from_keys_are_bounded():
    field, _ = refusal('{"' + "k" * 5000 + '": NaN}')
    assert len(field) <= jsonbody.MAX_FIELD_NAME


def test_lenient_reading_says_when_the_rules_were_broken():
    assert jsonbody.loads_lenient('{"a": 1}') == ({"a": 1}, True)
    document, exact = jsonbody.loads_lenient('{"pin": "1", "pin": "2", "n": NaN}')
    assert document["pin"] == "2" and not exact


@pytest.mark.parametrize("value", ["..", ".", "...", "", "   ", "\t", "A\nB", "a b", "\u00a0", "设备", "x" * 129,
                                   float("inf"), float("nan"), 8022300001.0, True, None, ["a"]])
def test_no_rule_takes_what_no_device_is_called(value):
    # Given an id no device has (dots alone, blank, control or non-ASCII characters, a float...)
    for rule in (TOPIC_ID, PRINTABLE_ID, LONG_PRINTABLE_ID):
        # Then every vendor's rule refuses it, saying what an id must be
        with pytest.raises(ValueError):
            rule.check(value)


def test_ids_are_trimmed_with_fullmatch_and_numbers_taken_when_whole():
    assert TOPIC_ID.check(" 8022300001\n") == "8022300001"  # no `$` hole: trimmed, never kept
    assert TOPIC_ID.check(8022300001) == "8022300001"
    assert PRINTABLE_ID.check("a/b#c") == "a/b#c" and not TOPIC_ID.accepts("a/b")
    assert TOPIC_ID.check("a..b") == "a..b" and TOPIC_ID.accepts("dev:1.2") and not TOPIC_ID.accepts("dev\n")
    assert LONG_PRINTABLE_ID.check("S" * 128) and not PRINTABLE_ID.accepts("S" * 65)


def test_require_names_the_field_outside_a_model():
    with pytest.raises(InvalidPayload) as caught:
        TOPIC_ID.require("..", "x-devicegate-source")
    assert caught.value.problems[0].field == "x-devicegate-source"


def test_no_object_key_segment_is_dots_alone():
    at = datetime(2023, 5, 29, tzinfo=UTC)
    assert media_key("face-terminal", "S1", at, "..", "rgb_image", "jpg") == \
        "media/face-terminal/S1/2023/05/29/%2E%2E/rgb_image.jpg"
    assert media_key("face-terminal", "a/b", at, "e-1", "rgb_image", "jpg").split("/")[2] == "a%2Fb"


def test_a_computed_non_finite_value_is_named_too():
    with pytest.raises(InvalidPayload) as caught:
        canonical_json({"ok": 1, "ratio": [0, float("nan")]})
    assert caught.value.problems[0].field == "ratio.1"


# --- integers of bounded length -------------------------------------------------------------------

@pytest.mark.parametrize("text, field", [
    ('{"speed": ' + "1" * 5000 + "}", "speed"),
    ('{"data": {"readings": [1, -' + "9" * 41 + "]}}", "data.readings.1"),
    ('{"a": NaN, "n": ' + "1" * 5000 + "}", "a"),  # the first in document order
])
def test_an_over_long_integer_is_refused_with_our_message_naming_its_path(text, field):
    named, problem = refusal(text)
    assert named == field
    assert problem == (jsonbody.TOO_LONG if field != "a" else jsonbody.NOT_FINITE)
    assert "sys.set_int_max_str_digits" not in problem


def test_integers_up_to_the_limit_are_numbers():
    assert jsonbody.loads('{"n": ' + "9" * jsonbody.MAX_INT_DIGITS + "}") == {"n": 10 ** jsonbody.MAX_INT_DIGITS - 1}
    assert refusal('{"n": ' + "9" * (jsonbody.MAX_INT_DIGITS + 1) + "}") == ("n", jsonbody.TOO_LONG)


def test_an_over_long_integer_inside_a_json_string_is_named_by_the_string_and_the_inner_path():
    # Given Jointech's statusJson holding a 5,000-digit integer
    from devicegate.core.fields import json_in_string

    with pytest.raises(ValueError) as refused:
        json_in_string('{"lockStatus": ' + "1" * 5000 + "}")
    assert "number too long at lockStatus" in str(refused.value)


def test_an_over_long_integer_in_a_parsed_document_is_named():
    # Given an IoT rule's message (Lambda parsed it: integers of any length up to Python's limit)
    with pytest.raises(InvalidPayload) as caught:
        jsonbody.check_document({"assetId": "1", "expand": {"t": [1, 10 ** 50]}})
    assert caught.value.problems[0].as_dict() == {"field": "expand.t.1", "problem": jsonbody.TOO_LONG}
    assert jsonbody.check_document({"n": 10 ** 39, "m": -(10 ** 39)}) == {"n": 10 ** 39, "m": -(10 ** 39)}


def test_lenient_reading_takes_an_over_long_integer_and_only_a_repeated_key_is_inexact():
    # An integer past Python's limit is read (as its magnitude); nothing the text said is lost
    # that could hide a value, so the document counts as exact: quarantine keeps such a payload
    # byte for byte when it has nothing to scrub
    document, exact = jsonbody.loads_lenient('{"pin": "1", "n": ' + "1" * 5000 + "}")
    assert document["pin"] == "1" and document["n"] == float("inf") and exact
    # A repeated key's first value is gone from the document: that is what `exact` says
    document, exact = jsonbody.loads_lenient('{"idNumber": "AB123456", "idNumber": ""}')
    assert document == {"idNumber": ""} and not exact


# --- depth ----------------------------------------------------------------------------------------

def test_too_deep_names_the_path_down_to_where_it_went_too_deep():
    # Given a record whose field holds 100,000 nested arrays (the pre-scan keeps it from the parser)
    text = '{"data": {"a": {"b": ' + "[" * 100_000 + "]" * 100_000 + "}}}"
    field, problem = refusal(text)
    # Then the refusal names data.a.b and the indexes down to the 16th level, not `body`
    assert field == "data.a.b." + ".".join(["0"] * 13) and problem == jsonbody.TOO_DEEP


def test_too_deep_paths_count_array_positions_and_decode_keys():
    inner = "[" * 20 + "]" * 20
    text = '{"x": "[[[[{{{{", "data": {"k\\u00e9\\"y": [1, "a,b", {"z": ' + inner + "}]}}"
    assert refusal(text)[0] == 'data.ké"y.2.z.' + ".".join(["0"] * 12)
    assert refusal("[" * 17 + "]" * 17)[0] == "body." + ".".join(["0"] * 16)


def test_too_deep_inside_a_json_string_names_the_string_and_the_inner_path():
    from devicegate.core.fields import json_in_string

    with pytest.raises(ValueError) as refused:
        json_in_string('{"t": ' + "[" * 30 + "]" * 30 + "}")
    assert "JSON nested too deeply at t.0.0" in str(refused.value)


# --- Unicode text ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, field", [
    ('{"cells": "460,0,\\ud800,1"}', "cells"),
    ('{"data": {"user": {"name": "\\udc00x"}}}', "data.user.name"),
    ('{"data": [{"ok": "\\ud83d\\ude00"}, "\\uDBFF"]}', "data.1"),  # a pair is fine, a lone high is not
    ('{"k\\ud800": 1}', "k\\ud800"),  # a key: named with the escape, so the name is storable text
])
def test_a_lone_surrogate_is_refused_where_it_sits(text, field):
    assert refusal(text) == (field, jsonbody.NOT_UNICODE)


def test_text_that_only_spells_an_escape_or_holds_a_pair_is_fine():
    assert jsonbody.loads('{"a": "\\\\ud800", "b": "\\ud83d\\ude00", "c": "货箱"}') == {
        "a": "\\ud800", "b": "\U0001f600", "c": "货箱"}


def test_a_lone_surrogate_in_a_parsed_document_is_refused_where_it_sits():
    # Given an MQTT message as Lambda hands it over ("\ud800" decoded into a lone surrogate)
    with pytest.raises(InvalidPayload) as caught:
        jsonbody.check_document({"assetId": "8052400203", "cells": "460,0,\ud800"})
    assert caught.value.problems[0].as_dict() == {"field": "cells", "problem": jsonbody.NOT_UNICODE}
    assert jsonbody.check_document({"name": "货箱 \U0001f600"})


def test_a_lone_surrogate_at_ingest_names_the_jointech_field_not_body():
    # Given the Jointech location of issue 16 (item 6): `cells` holds an escaped lone surrogate
    from devicegate.core.envelope import RawPush
    from devicegate.vendors.jointech.adapter import JointechAdapter
    from tests.support import load_record

    text = json.dumps(load_record("jointech", "webhook-location")).replace('"cells": "', '"cells": "\\ud800')
    for push in (RawPush("jointech", "http", text.encode(), route={"kind": "location"}),
                 RawPush("jointech", "mqtt", b"", route={"kind": "location"}, document=json.loads(text))):
        with pytest.raises(InvalidPayload) as caught:
            JointechAdapter().normalize(push, datetime(2026, 1, 1, tzinfo=UTC))
        assert [p.field for p in caught.value.problems] == ["cells"], push.transport

# --- numbers sent as text -------------------------------------------------------------------------

def _jointech(**changes) -> list[str]:
    """The fields a Jointech location with `changes` is refused for ([] when accepted)."""
    from devicegate.core.envelope import RawPush
    from devicegate.vendors.jointech.adapter import JointechAdapter
    from tests.support import load_record

    record = dict(load_record("jointech", "webhook-location"), **changes)
    push = RawPush("jointech", "http", json.dumps(record).encode(), route={"kind": "location"})
    try:
        JointechAdapter().normalize(push, datetime(2026, 1, 1, tzinfo=UTC))
    except InvalidPayload as exc:
        return [f"{p.field}: {p.problem}" for p in exc.problems]
    return []


@pytest.mark.parametrize("text", ["12_000", " 1_0 ", "0x10", "1e5", "1.0", "+5", "007", " 10", "١٢", "1" * 41])
def test_integer_text_must_be_a_json_integer(text):
    # Given battery (an integer field) sent as text that is no JSON integer
    [problem] = _jointech(battery=text)
    # Then it is refused naming the field, in our words
    assert problem.startswith("battery: an integer sent as text must be written as a JSON integer")


@pytest.mark.parametrize("text", ["12_000", " 1_0 ", "0x10", "+5", "007", "1.", ".5", "NaN", "Infinity", "1e"])
def test_number_text_must_be_a_json_number(text):
    [problem] = _jointech(speed=text)
    assert problem.startswith("speed: a number sent as text must be written as a JSON number")


@pytest.mark.parametrize("changes", [
    {"speed": "35.926264"}, {"speed": "0"}, {"speed": "-1000.0"}, {"speed": "1e5"}, {"speed": "-0"},
    {"battery": "0"}, {"battery": "-1"}, {"battery": "100"},
    {"statusJson": '{"lockStatus": "1", "lockRope": "-1"}'},
])
def test_number_text_as_vendors_send_it_is_read(changes):
    assert _jointech(**changes) == []


def test_number_text_rule_covers_optional_fields_with_validators_of_their_own():
    # Given Mettax's optional accUpdateTime (epoch seconds, `EpochTime | None`) as "1_724_808_355"
    from devicegate.core.envelope import RawPush
    from devicegate.vendors.mettax.adapter import MettaxAdapter
    from tests.support import load_record

    record = dict(load_record("mettax", "doc-device-info"), accUpdateTime="1_724_808_355")
    push = RawPush("mettax", "http", json.dumps({"data": json.dumps(record)}).encode(),
                   route={"service": "device-info"}, headers={"content-type": "application/json"})
    with pytest.raises(InvalidPayload) as caught:
        MettaxAdapter().normalize(push, datetime(2026, 1, 1, tzinfo=UTC))
    assert [p.field for p in caught.value.problems] == ["data.accUpdateTime"]


def test_number_text_rule_reaches_json_inside_strings():
    [problem] = _jointech(statusJson='{"lockStatus": "1_0"}')
    assert problem.startswith("statusJson.lockStatus: an integer sent as text")

# --- inline photos --------------------------------------------------------------------------------

# A real (tiny) JPEG: SOI, JFIF APP0, a comment, EOI; its base64 ends in padding and holds '+' and
# '/', which the URL-safe alphabet writes '-' and '_'.
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000fffe0005fbefbeffd9")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(8)


def _b64(data: bytes, url_safe: bool = False, padded: bool = True) -> str:
    import base64

    text = (base64.urlsafe_b64encode if url_safe else base64.b64encode)(data).decode()
    return text if padded else text.rstrip("=")


@pytest.mark.parametrize("text", [
    _b64(JPEG), _b64(JPEG, padded=False), _b64(JPEG, url_safe=True), _b64(JPEG, url_safe=True, padded=False),
    "data:image/jpeg;base64," + _b64(JPEG), _b64(JPEG)[:10] + "\n" + _b64(JPEG)[10:], _b64(PNG, padded=False),
])
def test_a_photo_in_either_base64_alphabet_padded_or_not_is_read(text):
    from devicegate.core.media import decode_image

    assert "-" in _b64(JPEG, url_safe=True) and "+" in _b64(JPEG) and _b64(JPEG).endswith("=")  # the cases differ
    assert decode_image(text, "data.rgb_image") in (JPEG, PNG)


@pytest.mark.parametrize("content, problem", [
    (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "decoded content is not a JPEG or PNG image"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "decoded content is not a JPEG or PNG image"),
    (b"just some text", "decoded content is not a JPEG or PNG image"),
    (b"PK\x03\x04 an archive", "decoded content is not a JPEG or PNG image"),
])
def test_content_that_is_not_an_image_is_never_a_photo(content, problem):
    from devicegate.core.media import decode_image

    for text in (_b64(content), _b64(content, url_safe=True, padded=False)):
        with pytest.raises(InvalidPayload) as caught:
            decode_image(text, "data.alarm_photo")
        assert caught.value.problems[0].as_dict() == {"field": "data.alarm_photo", "problem": problem}


@pytest.mark.parametrize("text", [_b64(JPEG)[:-4] + "-_+/", _b64(JPEG).rstrip("=") + "AB", "#### not base64"])
def test_text_that_is_no_base64_is_refused(text):
    from devicegate.core.media import decode_image

    with pytest.raises(InvalidPayload) as caught:
        decode_image(text, "data.rgb_image")
    assert caught.value.problems[0].field == "data.rgb_image"


@pytest.mark.parametrize("record, field", [("variation-record-with-photo-and-pin", "rgb_image"),
                                           ("variation-alarm-with-photo-and-serial", "alarm_photo")])
def test_the_face_terminal_stores_url_safe_photos_and_refuses_markup(record, field):
    from devicegate.core.envelope import RawPush
    from devicegate.vendors.face_terminal.adapter import FaceTerminalAdapter
    from tests.support import load_record

    def normalize(photo: str):
        pushed = load_record("face-terminal", record)
        pushed["data"][field] = photo
        push = RawPush("face-terminal", "http", json.dumps(pushed).encode())
        # The default PersonalData keeps photos.
        return FaceTerminalAdapter().normalize(push, datetime(2026, 1, 1, tzinfo=UTC))

    # Given the terminal's photo unpadded in the URL-safe alphabet, Then it is stored as a JPEG
    [event] = normalize(_b64(JPEG, url_safe=True, padded=False))
    [media] = event.media
    assert media.body == JPEG and media.content_type == "image/jpeg"
    # Given an SVG instead, Then the record is refused naming the field (kept in quarantine)
    with pytest.raises(InvalidPayload) as caught:
        normalize(_b64(b"<svg onload='alert(1)'/>"))
    assert [p.field for p in caught.value.problems] == [f"data.{field}"]
