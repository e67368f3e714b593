"""The template and the settings model agree: every variable a function is given is one the
settings know, and a value the gateway cannot run with stops a function at its cold start, naming
the variable, before any request is served with a default in its place."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from devicegate.infra.settings import Settings, SettingsError, get_settings
from tests.support import context, load_event, new_environment
from tests.template.test_template import _functions, _placeholder_env, _template

#: A value each variable refuses, and the words of the refusal.
BAD = {
    "OFFLINE_AFTER": ("jointech=abc", "bad OFFLINE_AFTER entry 'jointech=abc'"),
    "RETENTION_DAYS": ("location=0", "bad retention entry 'location=0'"),
    "PERSONAL_DATA": ("name=shred", "bad personal data entry 'name=shred'"),
    "QUARANTINE_RETENTION_DAYS": ("0", "greater than or equal to 1"),
    "SHARDS": ("eight", "integer"),
    "PARTS_TIMEOUT_SECONDS": ("-5", "greater than or equal to 1"),
    "SENSELINK_TIMEZONE": ("Asia/Tokyo", "UTC offset"),
    "JOINTECH_COMMAND_RATE_LIMIT": ("0", "greater than or equal to 1"),
    "JOINTECH_COMMAND_TIMEOUT_SECONDS": ("5", "whole seconds from 10"),
}


def _declared_variables() -> dict[str, set[str]]:
    """Each variable's name -> where the template declares it (Globals, or the functions)."""
    template = _template()
    found: dict[str, set[str]] = {}
    for key in ((template.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables", {}):
        found.setdefault(key, set()).add("Globals")
    for function_id, function in _functions(template).items():
        for key in (function.get("Properties") or {}).get("Environment", {}).get("Variables", {}):
            found.setdefault(key, set()).add(function_id)
    return found


def test_every_variable_of_the_template_is_a_field_of_the_settings():
    # Given every Environment.Variables key of template.yaml, the Globals' and each function's
    declared = _declared_variables()
    # When they are looked up among the settings model's fields
    known = {field.alias for field in Settings.model_fields.values()}
    # Then each is one the settings parse and check: nothing is read beside them
    assert set(declared) - known == set(), {name: declared[name] for name in set(declared) - known}


def test_every_refused_value_above_is_of_a_variable_the_template_sets():
    assert set(BAD) <= set(_declared_variables())


@pytest.mark.parametrize("variable", sorted(BAD))
def test_an_invalid_value_is_refused_naming_the_variable(variable, monkeypatch):
    # Given a function's environment as the template gives it, one value broken
    template = _template()
    for function in _functions(template).values():
        for key, value in _placeholder_env(template, function).items():
            monkeypatch.setenv(key, value)
    value, problem = BAD[variable]
    monkeypatch.setenv(variable, value)
    new_environment()
    # When the settings are read (every wiring reads them first)
    with pytest.raises(SettingsError) as raised:
        get_settings()
    # Then the error names the variable, the value and what is wrong with it
    assert str(raised.value).startswith(f"{variable}: {value!r} is not valid"), str(raised.value)
    assert problem in str(raised.value)
    new_environment()


def _webhook(module: Any) -> None:
    module.lambda_handler(load_event("jointech/http-mqtt-location.json"), context("JointechWebhookFunction"))


def _outbox(module: Any) -> None:
    module.lambda_handler({"Records": []}, context("OutboxFunction"))


def _sweep(module: Any) -> None:
    module.lambda_handler({}, context("DeviceSweepFunction"))


@pytest.mark.parametrize(("function_id", "invoke"), [("JointechWebhookFunction", _webhook),
                                                     ("OutboxFunction", _outbox),
                                                     ("DeviceSweepFunction", _sweep)])
def test_a_function_with_an_invalid_value_fails_its_first_invocation_naming_it(function_id, invoke, monkeypatch):
    # Given the function's own environment from the template with OFFLINE_AFTER broken
    template = _template()
    function = _functions(template)[function_id]
    for key, value in _placeholder_env(template, function).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("OFFLINE_AFTER", "jointech=abc")
    new_environment()
    handler = function["Properties"]["Handler"].rpartition(".")[0]
    module = importlib.import_module(f"functions.{function['Properties']['CodeUri'].strip('/').split('/')[-1]}.{handler}")
    # When its first invocation arrives (a new execution environment)
    # Then it fails before doing anything, naming the variable
    with pytest.raises(SettingsError, match="OFFLINE_AFTER: 'jointech=abc' is not valid"):
        invoke(module)
    new_environment()
