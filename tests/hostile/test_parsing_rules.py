"""The parsing rules every route shares (devicegate.jsonbody, fields.IdRule), without AWS."""

from __future__ import annotations

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
