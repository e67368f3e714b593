"""The personal-data policy: parsing the deployment parameter, masking, and its template pattern."""

from __future__ import annotations

import re

import pytest
import yaml

from devicegate import personal
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
