"""The app-facing models (devicegate.client.models) say the same as the dicts the functions build
(core/vocabulary.py's TypedDicts, the envelope's fields): one name per fact, wherever it is read."""

from __future__ import annotations

import typing

import pytest

from devicegate.client import models
from devicegate.core import vocabulary
from devicegate.core.envelope import ENVELOPE_FIELDS

PAIRS = [(vocabulary.Position, models.Position), (vocabulary.Alarm, models.Alarm),
         (vocabulary.Person, models.Person), (vocabulary.Passage, models.Passage),
         (vocabulary.Power, models.Power), (vocabulary.Facts, models.Facts)]


@pytest.mark.parametrize(("built", "model"), PAIRS, ids=[m.__name__ for _, m in PAIRS])
def test_every_block_has_the_same_fields_as_what_the_functions_build(built, model):
    assert set(typing.get_type_hints(built)) == set(model.model_fields)


def test_the_envelope_model_has_every_stored_field():
    assert set(ENVELOPE_FIELDS) | {"dataRef"} == set(models.Event.model_fields)


def test_a_built_position_reads_back_typed():
    block = vocabulary.position(31.2, 121.5, speed_kmh=40.0, heading_deg=90.0, fix_time="2024-01-01T00:00:00.000Z")
    read = models.Position.model_validate(block)
    assert (read.latitude, read.speedKmh, read.valid, read.fixTime.isoformat()) == (
        31.2, 40.0, True, "2024-01-01T00:00:00+00:00")


def test_a_wrong_type_is_refused_and_an_unknown_field_ignored():
    with pytest.raises(ValueError, match="latitude"):
        models.Position.model_validate({"latitude": "north", "longitude": 1})
    assert models.Power.model_validate({"batteryPct": 50, "later": 1}).batteryPct == 50
