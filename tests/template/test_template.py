"""Checks of template.yaml, the SAM template that deploys devicegate.

They lint the template the way CI and `./run lint` do (cfn-lint on the SAM source, cfn-lint
on the translated CloudFormation, `sam validate --lint`), prove that every handler and
every event source it wires up exists in the repository (code and sample events), and
hold the template to its security and local-stack contracts: least privilege, no secret
in outputs or access logs, and environment variables that can share one process.
"""

from __future__ import annotations

import copy
import importlib
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import lint, lint_file
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from devicegate_local.cfn_template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
#: An app's template deployed next to the gateway (examples/consumer): linted as the gateway's is.
CONSUMER_TEMPLATE_PATH = REPO_ROOT / "examples" / "consumer" / "template.yaml"
LINTED = pytest.mark.parametrize("path", [TEMPLATE_PATH, CONSUMER_TEMPLATE_PATH], ids=["gateway", "consumer"])
EVENTS_DIR = REPO_ROOT / "events"
LINT_REGION = "us-east-1"

# Managed policies SAM itself attaches to function roles: basic logging and X-Ray tracing
# (any Tracing, the Tracing parameter's included). Anything else would be a grant this template did not ask for — notably
# AWSLambdaDynamoDBExecutionRole, which SAM adds for a DynamoDB event and which reads every
# stream in the account (the outbox's stream mapping is its own resource for that reason).
SAM_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
STREAM_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                  "dynamodb:ListStreams"}

# Resource types whose properties hold an IAM policy document.
POLICY_DOCUMENT_PROPERTIES = {
    "AWS::IAM::Policy": "PolicyDocument",
    "AWS::IAM::ManagedPolicy": "PolicyDocument",
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    # IoT policies use IAM's grammar; what a device certificate may do is held to the same rules.
    "AWS::IoT::Policy": "PolicyDocument",
    # AWS::KMS::Key is left out on purpose: in a key policy, Resource "*" means "this key".
}

# Actions with no resource type in IAM's service authorization reference: they can only be
# granted on Resource "*" (and read one account-wide value each).
NO_RESOURCE_TYPE_ACTIONS = {"iot:DescribeEndpoint"}


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
@cache
def _template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def _resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _resources(template, "AWS::Serverless::Function")


def _function_property(template: dict[str, Any], function: dict[str, Any], name: str) -> Any:
    """A function property, falling back to Globals.Function like SAM does."""
    properties = function.get("Properties", {})
    if name in properties:
        return properties[name]
    return template.get("Globals", {}).get("Function", {}).get(name)


def _function_events(template: dict[str, Any], event_type: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(function id, event id, event properties) of every function event of one type."""
    found = []
    for function_id, function in _functions(template).items():
        for event_id, event in function.get("Properties", {}).get("Events", {}).items():
            if event.get("Type") == event_type:
                found.append((function_id, event_id, event.get("Properties", {})))
    return found


def _stream_sources(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(function id, source id, properties) of every DynamoDB stream source: SAM DynamoDB events
    and explicit AWS::Lambda::EventSourceMapping resources on a table's stream."""
    found = list(_function_events(template, "DynamoDB"))
    for mapping_id, mapping in _resources(template, "AWS::Lambda::EventSourceMapping").items():
        properties = mapping.get("Properties", {})
        source = properties.get("EventSourceArn", {})
        if isinstance(source, dict) and str(source.get("Fn::GetAtt", ["", ""])[1]) == "StreamArn":
            function = properties["FunctionName"]
            function_id = function.get("Ref") if isinstance(function, dict) else str(function)
            found.append((function_id, mapping_id, properties))
    return found


def _http_route_keys(template: dict[str, Any]) -> list[str]:
    """Route keys ("POST /hooks/...") API Gateway creates for the HttpApi function events."""
    return sorted(
        f"{props.get('Method', 'ANY').upper()} {props['Path']}"
        for _, _, props in _function_events(template, "HttpApi")
    )


def _iot_rules(template: dict[str, Any]) -> dict[str, str]:
    """IoT topic rule logical id -> its SQL statement."""
    return {
        name: rule["Properties"]["TopicRulePayload"]["Sql"]
        for name, rule in _resources(template, "AWS::IoT::TopicRule").items()
    }


def _select_aliases(sql: str) -> dict[str, str | None]:
    """Fields a rule's SELECT adds: alias -> constant value ('x' AS y) or None (computed)."""
    select = re.split(r"\bFROM\b", sql, maxsplit=1, flags=re.IGNORECASE)[0]
    aliases: dict[str, str | None] = {}
    for match in re.finditer(r"(\S+)\s+AS\s+(\w+)", select, flags=re.IGNORECASE):
        expression, alias = match.groups()
        constant = re.fullmatch(r"'([^']*)'", expression)
        aliases[alias] = constant.group(1) if constant else None
    return aliases


def _sample_events() -> list[tuple[Path, Any]]:
    """Every JSON document under events/ (recursively), parsed."""
    samples = []
    for path in sorted(EVENTS_DIR.rglob("*.json")):
        try:
            samples.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except json.JSONDecodeError as exc:  # a broken sample is a bug, not "no sample"
            pytest.fail(f"{path.relative_to(REPO_ROOT)} is not valid JSON: {exc}")
    return samples


def _matches_filter(pattern: Any, data: Any) -> bool:
    """Enough of Lambda's event-filter pattern language for this template's filters:
    nested objects, lists of literal values and {"prefix": ...}."""
    if isinstance(pattern, dict):
        return isinstance(data, dict) and all(
            key in data and _matches_filter(sub, data[key]) for key, sub in pattern.items()
        )
    if isinstance(pattern, list):
        for option in pattern:
            if isinstance(option, dict):
                if set(option) != {"prefix"}:
                    raise NotImplementedError(f"filter operator {option} not supported by this check")
                if isinstance(data, str) and data.startswith(option["prefix"]):
                    return True
            elif data == option:
                return True
        return False
    raise NotImplementedError(f"filter pattern {pattern!r} not supported by this check")


def _translate(template: dict[str, Any]) -> dict[str, Any]:
    """SAM -> CloudFormation with no network: local code paths become placeholder S3 URIs
    (as `sam package` would make them) and managed policies are only ever given as ARNs."""
    template = copy.deepcopy(template)
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        for uri_property in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(uri_property), str):
                properties[uri_property] = f"s3://devicegate-placeholder/{name}.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=LINT_REGION))
    return translator.translate(template, parameter_values={}, get_managed_policy_map=lambda: {})


def _statements(document: Any) -> list[dict[str, Any]]:
    """A document's statements; a conditional one (Fn::If) counts as both of its branches, so
    every rule holds whichever way the stack's parameters go."""
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    out: list[dict[str, Any]] = []
    for statement in statements if isinstance(statements, list) else [statements]:
        if isinstance(statement, dict) and set(statement) == {"Fn::If"}:
            out += [branch for branch in statement["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}]
        else:
            out.append(statement)
    return out


def _policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) for every permission statement the template writes itself."""
    for name, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        properties = resource.get("Properties", {})
        if kind == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                for statement in _statements(policy.get("PolicyDocument")):
                    yield f"{name}/{policy.get('PolicyName')}", statement
        elif kind in POLICY_DOCUMENT_PROPERTIES:
            for statement in _statements(properties.get(POLICY_DOCUMENT_PROPERTIES[kind])):
                yield name, statement
        elif kind == "AWS::Serverless::Function":
            for index, policy in enumerate(properties.get("Policies", []) or []):
                # Inline documents only; strings are managed policies, other mappings are
                # SAM policy templates whose scope SAM defines.
                if isinstance(policy, dict) and "Statement" in policy:
                    for statement in _statements(policy):
                        yield f"{name}/Policies[{index}]", statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _needs_every_resource(statement: dict[str, Any]) -> bool:
    """True when every action of the statement can only be granted on "*"."""
    return set(_as_list(statement.get("Action", []))) <= NO_RESOURCE_TYPE_ACTIONS


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _placeholder_env(template: dict[str, Any], function: dict[str, Any]) -> dict[str, str]:
    """The function's environment with references replaced by stand-ins: parameters by
    their defaults, resources by their logical id."""
    parameters = template.get("Parameters", {})
    env: dict[str, str] = {}
    for source in (
        template.get("Globals", {}).get("Function", {}),
        function.get("Properties", {}),
    ):
        for key, value in source.get("Environment", {}).get("Variables", {}).items():
            if isinstance(value, dict) and "Ref" in value:
                ref = value["Ref"]
                value = parameters.get(ref, {}).get("Default", ref)
            elif isinstance(value, dict):
                value = next(iter(value))  # e.g. Fn::GetAtt: any non-empty stand-in
            env[key] = str(value)
    return env


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _template()


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return _translate(template)


def _format_matches(matches: list[Any]) -> str:
    return "\n".join(str(match) for match in matches)


# ---------------------------------------------------------------------------------------
# 1-3: linting
# ---------------------------------------------------------------------------------------
@LINTED
def test_cfn_lint_passes_on_the_sam_template(path: Path) -> None:
    # Given the SAM template as committed
    # When cfn-lint checks it (it applies the SAM transform itself), as `./run lint` does
    matches = lint_file(path)
    # Then it reports no error and no warning
    assert matches == [], _format_matches(matches)


def test_sam_translation_succeeds_and_lints_clean(translated: dict[str, Any]) -> None:
    # Given the template translated to plain CloudFormation by the SAM translator
    # (the translated fixture fails here if the translator rejects the template)
    assert "Transform" not in translated
    assert translated["Resources"]
    # When cfn-lint checks the translated template
    matches = lint(json.dumps(translated), regions=[LINT_REGION])
    # Then it reports no error and no warning
    assert matches == [], _format_matches(matches)


def _find_sam() -> str | None:
    # `./run` installs SAM as a uv tool into ~/.local/bin, which may not be on PATH here.
    found = shutil.which("sam")
    if found:
        return found
    tool = Path.home() / ".local" / "bin" / "sam"
    return str(tool) if tool.is_file() and os.access(tool, os.X_OK) else None


@LINTED
def test_sam_validate_lint_passes(path: Path) -> None:
    # Given the SAM CLI (required in CI, optional on a developer machine)
    sam = _find_sam()
    if sam is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("sam is not installed; CI must run `sam validate --lint` (./run sam installs it)")
        pytest.skip("sam CLI not found on PATH or in ~/.local/bin; `./run sam` installs it")
    # When it validates and lints the template
    result = subprocess.run(
        [sam, "validate", "--lint", "--region", LINT_REGION, "-t", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        check=False,
    )
    # Then it accepts the template
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "is a valid SAM Template" in output, output


# ---------------------------------------------------------------------------------------
# 4: handlers exist
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("function_id", sorted(_functions(_template())))
def test_function_handler_is_importable(function_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a function's CodeUri and Handler, and an environment shaped like the deployed one
    template = _template()
    function = _functions(template)[function_id]
    code_uri = _function_property(template, function, "CodeUri")
    handler = _function_property(template, function, "Handler")
    assert isinstance(code_uri, str) and isinstance(handler, str), "CodeUri and Handler must be plain strings"
    module_name, _, handler_name = handler.rpartition(".")
    code_dir = (REPO_ROOT / code_uri).resolve()
    assert code_dir.is_relative_to(REPO_ROOT), f"{function_id}: CodeUri {code_uri} leaves the repository"
    module_file = code_dir.joinpath(*module_name.split(".")).with_suffix(".py")
    assert module_file.is_file(), f"{function_id}: {module_file.relative_to(REPO_ROOT)} does not exist"
    for key, value in _placeholder_env(template, function).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", LINT_REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # When the module SAM would load is imported as a package module
    # (functions/<dir>/app.py -> functions.<dir>.app; the repo root is on pytest's path)
    dotted = ".".join(code_dir.relative_to(REPO_ROOT).parts + tuple(module_name.split(".")))
    module = importlib.import_module(dotted)
    # Then it has the handler, and the handler is callable
    assert callable(getattr(module, handler_name, None)), f"{dotted} has no callable {handler_name}"


# ---------------------------------------------------------------------------------------
# 5: every event source has a sample event
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("route_key", _http_route_keys(_template()))
def test_every_http_route_has_a_v2_sample_event(route_key: str) -> None:
    # Given an HTTP API route the template creates
    method, path = route_key.split(" ", 1)
    path_regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
    # When the sample events are searched for that route key
    samples = [
        (sample_path, sample)
        for sample_path, sample in _sample_events()
        if isinstance(sample, dict) and sample.get("routeKey") == route_key
    ]
    # Then there is at least one, and each is a payload-format 2.0 event of that route
    assert samples, f"no sample event in events/ has routeKey {route_key!r}"
    for sample_path, sample in samples:
        where = sample_path.relative_to(REPO_ROOT)
        assert sample.get("version") == "2.0", f"{where}: version must be '2.0'"
        assert isinstance(sample.get("rawPath"), str), f"{where}: rawPath missing"
        assert path_regex.match(sample["rawPath"]), f"{where}: rawPath does not fit {path}"
        http = sample.get("requestContext", {}).get("http", {})
        assert http.get("method") == method, f"{where}: requestContext.http.method must be {method}"
        assert "body" in sample, f"{where}: body missing"


@pytest.mark.parametrize("rule_id", sorted(_iot_rules(_template())))
def test_every_iot_rule_has_a_sample_event(rule_id: str) -> None:
    # Given an IoT topic rule and the fields its SELECT adds to the message
    rules = _iot_rules(_template())
    wanted = _select_aliases(rules[rule_id])
    assert wanted, f"{rule_id}: no 'AS' fields found in its SQL"
    every_alias = set().union(*(_select_aliases(sql) for sql in rules.values()))
    # When the sample events are searched for messages this rule would deliver
    # (exactly this rule's added fields among all rules' fields, constants equal)
    samples = [
        sample_path
        for sample_path, sample in _sample_events()
        if isinstance(sample, dict)
        and set(sample) & every_alias == set(wanted)
        and all(constant is None or sample[alias] == constant for alias, constant in wanted.items())
    ]
    # Then there is at least one
    assert samples, f"no sample event in events/ carries exactly the fields {rule_id} adds: {wanted}"


@pytest.mark.parametrize(
    "function_id,event_id,source",
    _stream_sources(_template()),
    ids=[f"{function_id}.{event_id}" for function_id, event_id, _ in _stream_sources(_template())],
)
def test_every_dynamodb_stream_source_has_a_sample_event(function_id: str, event_id: str,
                                                         source: dict[str, Any]) -> None:
    # Given a DynamoDB stream event source and its filter
    patterns = [json.loads(f["Pattern"]) for f in source.get("FilterCriteria", {}).get("Filters", [])]
    # When the sample events are searched for DynamoDB stream batches
    batches = [
        (sample_path, sample["Records"])
        for sample_path, sample in _sample_events()
        if isinstance(sample, dict)
        and isinstance(sample.get("Records"), list)
        and sample["Records"]
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:dynamodb" for r in sample["Records"])
    ]
    # Then there is one, and at least one of its records passes the source's filter
    assert batches, "no sample event in events/ has Records[].eventSource == 'aws:dynamodb'"
    if patterns:
        passing = [
            sample_path
            for sample_path, records in batches
            if any(any(_matches_filter(p, record) for p in patterns) for record in records)
        ]
        assert passing, f"no DynamoDB sample has a record that passes {function_id}.{event_id}'s filter"


@pytest.mark.parametrize(
    "function_id,event_id",
    [(function_id, event_id) for function_id, event_id, _ in _function_events(_template(), "Schedule")],
)
def test_every_schedule_has_a_sample_event(function_id: str, event_id: str) -> None:
    # Given a scheduled function
    # When the sample events are searched for EventBridge scheduled events
    samples = [path for path, sample in _sample_events()
               if isinstance(sample, dict) and sample.get("source") == "aws.events"
               and sample.get("detail-type") == "Scheduled Event"]
    # Then there is one
    assert samples, f"no scheduled-event sample in events/ for {function_id}.{event_id}"


def test_the_sweep_writes_only_device_rows_parts_and_its_own_events(template: dict[str, Any]) -> None:
    # Given the sweep's and the outbox's policy statements that put items
    puts = {
        function_id: [
            prefix
            for where, statement in _policy_statements(template) if where.startswith(f"{function_id}/")
            if "dynamodb:PutItem" in _as_list(statement["Action"])
            for prefix in statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
        ]
        for function_id in ("DeviceSweepFunction", "OutboxFunction")
    }
    # Then they may put only device items and events (keyed by device, so the grant cannot name
    # the kinds they write: the code's conditional puts do), and the sweep the id markers of the
    # face checks it assembles
    assert puts == {"DeviceSweepFunction": ["D#*", "E#*", "EID#mettax#*"],
                    "OutboxFunction": ["D#*", "E#*"]}


# ---------------------------------------------------------------------------------------
# 6: least privilege and secrets
# ---------------------------------------------------------------------------------------
def test_no_statement_grants_every_action_or_every_resource(template: dict[str, Any]) -> None:
    # Given every permission statement the template writes itself
    statements = list(_policy_statements(template))
    assert statements
    # When their actions and resources are read
    broad = [
        f"{where}: {json.dumps(statement)}"
        for where, statement in statements
        if "*" in _as_list(statement.get("Action", []))
        or ("*" in _as_list(statement.get("Resource", [])) and not _needs_every_resource(statement))
        or "NotAction" in statement
        or "NotResource" in statement
    ]
    # Then none grants "*" (nor uses NotAction/NotResource to the same effect), except actions
    # that IAM only accepts on "*"
    assert broad == [], "\n".join(broad)


def test_translated_roles_only_get_what_sam_must_add(translated: dict[str, Any]) -> None:
    # Given the roles in the translated template (ours and the ones SAM generates)
    roles = _resources(translated, "AWS::IAM::Role")
    assert roles
    # When their managed policies and inline statements are read
    unexpected = {
        f"{name}: {arn}"
        for name, role in roles.items()
        for arn in role["Properties"].get("ManagedPolicyArns", [])
        if arn not in SAM_MANAGED_POLICIES
    }
    broad = [
        f"{where}: {json.dumps(statement)}"
        for where, statement in _policy_statements(translated)
        if "*" in _as_list(statement.get("Action", []))
        or ("*" in _as_list(statement.get("Resource", [])) and not _needs_every_resource(statement))
    ]
    # Then only SAM's standard managed policies are attached and no inline statement is "*"
    assert not unexpected, sorted(unexpected)
    assert broad == [], "\n".join(broad)


def test_table_writes_are_confined_to_leading_keys(template: dict[str, Any]) -> None:
    # Given every statement that grants DynamoDB item actions (stream reads are the next test's)
    item_statements = [
        (where, statement)
        for where, statement in _policy_statements(template)
        if statement.get("Effect") == "Allow"
        and any(str(action).startswith("dynamodb:") for action in _as_list(statement.get("Action", [])))
        and not set(_as_list(statement.get("Action"))) <= STREAM_ACTIONS
    ]
    assert item_statements
    # When their conditions are read
    unconfined = [
        where
        for where, statement in item_statements
        if not statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
    ]
    # Then each is confined to partition-key prefixes, except reads of whole index partitions
    # (the sweep's device lists), which are confined to the named indexes instead
    index_reads = [
        where
        for where, statement in item_statements
        if set(_as_list(statement.get("Action"))) == {"dynamodb:Query"}
        and all("/index/gsi" in str(resource) for resource in _as_list(statement.get("Resource")))
    ]
    # The apps' read policy reads what consuming.md documents, the whole table; it writes nothing
    # (its own test below).
    assert [where for where in unconfined if where not in index_reads and where != "AppReadPolicy"] == [], unconfined


def _grants(template: dict[str, Any], function_id: str, action: str) -> list[str]:
    """The LeadingKeys patterns under which a function may call a table action."""
    return [pattern for where, statement in _policy_statements(template) if where.startswith(f"{function_id}/")
            if f"dynamodb:{action}" in _as_list(statement.get("Action"))
            for pattern in statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys", [])]


def _reaches(patterns: list[str], key: str) -> bool:
    from fnmatch import fnmatchcase

    # IAM's StringLike: * is any run of characters, ? one; the keys here hold neither [ nor ].
    return any(fnmatchcase(key, pattern) for pattern in patterns)


def test_the_outbox_and_the_sweep_write_only_what_they_own(template: dict[str, Any]) -> None:
    # Given the keys of the items that apps and the commands function own, for every vendor, and
    # the items the outbox and the sweep move forward
    from devicegate.store import keys
    from devicegate.vendors import vendor_names

    foreign = {f"{vendor} {what}": key for vendor in vendor_names() for what, key in (
        ("configuration", keys.config_pk(vendor, "d1")), ("command text", keys.command_texts_pk(vendor, "d1")),
        ("quarantine", keys.quarantine_pk(vendor, "q1")))}
    events = [keys.event_pk(vendor, "d1") for vendor in vendor_names()]
    owned = {"OutboxFunction": [keys.device_pk("mettax", "d1"), keys.alarms_pk("face-terminal", "d1"),
                                keys.commands_pk("jointech", "d1"), keys.state_failure_pk("jointech", "d1")],
             "DeviceSweepFunction": [keys.device_pk("ai-camera", "d1"), keys.parts_pk("mettax", "d1"),
                                     keys.commands_pk("jointech", "d1")]}
    for function_id, own in owned.items():
        # When their UpdateItem, PutItem and Query grants are read
        updates, queries = _grants(template, function_id, "UpdateItem"), _grants(template, function_id, "Query")
        puts = _grants(template, function_id, "PutItem")
        # Then they reach the items they own, and no configuration, command text or quarantine
        assert all(_reaches(updates + puts, key) for key in own), (function_id, updates, puts)
        assert [what for what, key in foreign.items() if _reaches(updates + puts + queries, key)] == [], function_id
        # And an event only to create it (a conditional PutItem), never to change or query it
        assert not any(_reaches(updates + queries, key) for key in events), function_id
    # And the outbox reaches the commands of vendors with commands only (their answers resolve them)
    assert not _reaches(_grants(template, "OutboxFunction", "UpdateItem"), keys.commands_pk("mettax", "d1"))
    assert _grants(template, "OutboxFunction", "Query") == ["C#jointech#*"]


def test_waiting_commands_add_only_what_sending_counting_and_publishing_them_needs(template: dict[str, Any]) -> None:
    # Given the keys a waiting command touches: the device's row (its waitingCommands count), the
    # command's text, and the device's event partition (its lifecycle events)
    from devicegate.store import keys

    jointech_row, mettax_row = keys.device_pk("jointech", "d1"), keys.device_pk("mettax", "d1")
    text = keys.command_texts_pk("jointech", "d1")
    # When the outbox's, the sweep's and the commands function's grants are read
    # Then the outbox reads a text by key only (no Query, no write) for the vendor with commands
    assert _grants(template, "OutboxFunction", "GetItem") == ["CX#jointech#*"]
    assert not _reaches(_grants(template, "OutboxFunction", "Query"), text)
    assert not _reaches(_grants(template, "OutboxFunction", "PutItem") + _grants(template, "OutboxFunction",
                                                                                   "UpdateItem"), text)
    # And it and the sweep update (ADD the count on) the rows of that vendor's devices only
    for function_id in ("OutboxFunction", "DeviceSweepFunction"):
        updates = _grants(template, function_id, "UpdateItem")
        assert _reaches(updates, jointech_row) and not _reaches(updates, mettax_row), function_id
    # And the outbox publishes on the deployment's Jointech command topics, nothing else
    iot = [st for where, st in _policy_statements(template) if where.startswith("OutboxFunction/")
           and any(str(a).startswith("iot:") for a in _as_list(st["Action"]))]
    assert [(st["Action"], st["Resource"]) for st in iot] == [("iot:Publish", {"Fn::Sub": (
        "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/download/${JointechAccessKey}/*")})]
    # And the commands function writes events of Jointech devices only, put-only
    assert sorted(_grants(template, "JointechCommandsFunction", "PutItem")) == ["C#jointech#*", "CX#jointech#*",
                                                                               "E#jointech#*"]
    assert not _reaches(_grants(template, "JointechCommandsFunction", "UpdateItem"), keys.event_pk("jointech", "d1"))


def test_waiting_command_expiry_parameters_keep_to_the_bounds_the_code_assumes(template: dict[str, Any]) -> None:
    # Given the waiting commands' parameters and the bounds the code holds them to
    from devicegate.core.commands import MAX_WAIT_S, MIN_WAIT_S

    parameters = template["Parameters"]
    # Then the expiry ranges are Flespi's 60 s to 30 days, the unsafe one at most an hour, attempts 1-10
    for name in ("WaitingCommandDefaultExpirySeconds", "WaitingCommandMaxExpirySeconds"):
        assert (parameters[name]["MinValue"], parameters[name]["MaxValue"]) == (MIN_WAIT_S, MAX_WAIT_S), name
    assert (parameters["UnsafeWaitingCommandMaxExpirySeconds"]["MinValue"],
            parameters["UnsafeWaitingCommandMaxExpirySeconds"]["MaxValue"]) == (MIN_WAIT_S, 3600)
    assert (parameters["CommandMaxAttempts"]["MinValue"], parameters["CommandMaxAttempts"]["MaxValue"]) == (1, 10)
    # And the commands function is given all four
    variables = template["Resources"]["JointechCommandsFunction"]["Properties"]["Environment"]["Variables"]
    assert {variables[v]["Ref"] for v in ("COMMAND_WAIT_DEFAULT_SECONDS", "COMMAND_WAIT_MAX_SECONDS",
                                           "COMMAND_WAIT_UNSAFE_MAX_SECONDS", "COMMAND_MAX_ATTEMPTS")} == {
        "WaitingCommandDefaultExpirySeconds", "WaitingCommandMaxExpirySeconds",
        "UnsafeWaitingCommandMaxExpirySeconds", "CommandMaxAttempts"}


def test_the_outbox_reads_back_offloaded_records_and_nothing_else_of_the_bucket(template: dict[str, Any]) -> None:
    # Given the outbox's S3 grants
    grants = [(tuple(_as_list(st["Action"])), _as_list(st["Resource"])) for where, st in _policy_statements(template)
              if where.startswith("OutboxFunction/") and any(a.startswith("s3:") for a in _as_list(st["Action"]))]
    # Then it may read the objects records were offloaded to (payloads/...), never a photo or quarantine
    assert grants == [(("s3:GetObject",), [{"Fn::Sub": "${PayloadBucket.Arn}/payloads/*"}])]


def test_the_table_cannot_be_deleted_by_accident(template: dict[str, Any]) -> None:
    table = template["Resources"]["EventsTable"]
    # Neither by a stack delete or replacement, nor by a DeleteTable call outside CloudFormation
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"]["DeletionProtectionEnabled"] is True


def test_senselink_keeps_reserved_concurrency_unless_the_parameter_is_zero(template: dict[str, Any],
                                                                          translated: dict[str, Any]) -> None:
    # Given the SenseLink function (5 s deadline) and the reservation parameter
    parameter = template["Parameters"]["SenseLinkReservedConcurrency"]
    assert parameter["Default"] > 0 and parameter["MinValue"] == 0
    reserved = template["Resources"]["SenseLinkWebhookFunction"]["Properties"]["ReservedConcurrentExecutions"]
    # Then it is reserved with the parameter, and left out entirely when the parameter is 0
    assert reserved == {"Fn::If": ["HasSenseLinkReservation", {"Ref": "SenseLinkReservedConcurrency"},
                                   {"Ref": "AWS::NoValue"}]}
    assert template["Conditions"]["HasSenseLinkReservation"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "SenseLinkReservedConcurrency"}, 0]}]}
    # And no other function is capped by a reservation (SenseLink's is the one the deadline needs)
    capped = [name for name, resource in translated["Resources"].items()
              if resource["Type"] == "AWS::Lambda::Function" and "ReservedConcurrentExecutions" in resource["Properties"]]
    assert capped == ["SenseLinkWebhookFunction"]


def test_given_up_state_writes_raise_an_alarm(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["StateFailureAlarm"]["Properties"]
    [query] = alarm["Metrics"]
    # Summed over every vendor and kind, as the outbox emits it (emit_counts "stateWriteFailed")
    assert query["Expression"] == "SELECT SUM(stateWriteFailed) FROM SCHEMA(Devicegate, kind, service, vendor)"
    assert alarm["Threshold"] == 0 and alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_sweep_queries_only_its_work_index_which_holds_no_event_data(template: dict[str, Any]) -> None:
    # Given the sweep's Query grants and the table's indexes
    queries = [statement for where, statement in _policy_statements(template)
               if where.startswith("DeviceSweepFunction/") and "dynamodb:Query" in _as_list(statement["Action"])]
    indexes = {i["IndexName"]: i for i in template["Resources"]["EventsTable"]["Properties"]["GlobalSecondaryIndexes"]}
    # Then its one Query grant is on gsi5, with no other resource and no condition to widen it
    assert [_as_list(st["Resource"]) for st in queries] == [[{"Fn::Sub": "${EventsTable.Arn}/index/gsi5"}]]
    # And gsi5 projects keys only: no event data, person or payload, and no write unless a key moves
    assert indexes["gsi5"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # And the sweep reads whole items only of pending parts, devices and camera configurations
    assert _grants(template, "DeviceSweepFunction", "GetItem") == ["P#*"]
    assert _grants(template, "DeviceSweepFunction", "BatchGetItem") == ["D#*", "CFG#ai-camera#*"]


def test_stream_reads_only_reach_the_events_table_stream(template: dict[str, Any],
                                                         translated: dict[str, Any]) -> None:
    # Given every statement granting a stream action, in the template and as SAM translates it
    grants = [(where, statement) for where, statement in _policy_statements(translated)
              if set(_as_list(statement.get("Action"))) & STREAM_ACTIONS]
    managed = {arn for role in _resources(translated, "AWS::IAM::Role").values()
               for arn in role["Properties"].get("ManagedPolicyArns", [])}
    # Then only the outbox reads a stream, only the events table's, and no managed policy does
    assert [where.split("/")[0] for where, _ in grants] == ["OutboxFunctionRole"]
    for _, statement in grants:
        assert _as_list(statement["Resource"]) == [{"Fn::Sub": "${EventsTable.Arn}/stream/*"}]
    assert "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole" not in managed
    # And the stream mapping is the explicit resource that reads it, on the function's role
    [(function_id, mapping_id, mapping)] = _stream_sources(template)
    assert (function_id, mapping_id) == ("OutboxFunction", "OutboxStreamMapping")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert template["Resources"]["OutboxStreamMapping"]["DependsOn"] == "OutboxFunctionRole"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_iot_error_role_trusts_only_this_stacks_rules(template: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the error action's role and the rules that use it
    from devicegate_local import resources as local_resources

    role = template["Resources"]["IotErrorActionRole"]["Properties"]
    [trust] = _statements(role["AssumeRolePolicyDocument"])
    rules = {rule_id: template["Resources"][rule_id]["Properties"] for rule_id in _iot_rules(template)}
    # When the trusted source ARNs and the rule names are resolved for a stack named "dg-prod"
    for name, value in {"AWS::StackName": "dg-prod", "AWS::Partition": "aws", "AWS::Region": "eu-west-1",
                        "AWS::AccountId": "123456789012"}.items():
        monkeypatch.setitem(local_resources.PSEUDO_PARAMETERS, name, value)
    resolve = local_resources.Resolver(template).resolve
    trusted = sorted(resolve(trust["Condition"]["ArnEquals"]["aws:SourceArn"]))
    names = sorted(resolve(rule["RuleName"]) for rule in rules.values())
    # Then exactly the two rules are trusted, by full ARN (no wildcard), and the names are valid
    assert names == ["dg_prod_jointech_sublock", "dg_prod_jointech_upload"]
    assert trusted == [f"arn:aws:iot:eu-west-1:123456789012:rule/{name}" for name in names]
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", name) for name in names)
    assert "ArnLike" not in trust["Condition"]
    assert trust["Principal"] == {"Service": "iot.amazonaws.com"}
    for rule in rules.values():
        error_action = rule["TopicRulePayload"]["ErrorAction"]["S3"]
        assert error_action["RoleArn"] == {"Fn::GetAtt": ["IotErrorActionRole", "Arn"]}


def test_the_payload_bucket_logs_every_access_to_a_private_log_bucket(template: dict[str, Any]) -> None:
    # Given the payload bucket (face photos, quarantined payloads) and its log bucket
    resources = template["Resources"]
    logging = resources["PayloadBucket"]["Properties"]["LoggingConfiguration"]
    log_bucket = resources[logging["DestinationBucketName"]["Ref"]]["Properties"]
    policies = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"
                and r["Properties"]["Bucket"] == logging["DestinationBucketName"]]
    # Then access logs go to their own bucket, private, encrypted and expiring
    assert logging["LogFilePrefix"] == "payload-bucket/"
    assert all(log_bucket["PublicAccessBlockConfiguration"].values())
    assert log_bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert log_bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"]
    # And only S3's log delivery may write there, only for the payload bucket of this account
    [policy] = policies
    [allow] = [st for st in _statements(policy["PolicyDocument"]) if st["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert _as_list(allow["Action"]) == ["s3:PutObject"]
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::GetAtt": ["PayloadBucket", "Arn"]}
    assert allow["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_destinations_can_be_written_by_their_functions(translated: dict[str, Any]) -> None:
    # Given the on-failure destinations of the async invoke config and the stream mapping
    destinations = {
        "JointechMqttFunctionRole": "IngestFailureQueue",
        "OutboxFunctionRole": "OutboxFailureQueue",
    }
    for role, queue in destinations.items():
        # When the role's inline statements are read
        grants = [
            statement
            for where, statement in _policy_statements(translated)
            if where.startswith(f"{role}/")
            and "sqs:SendMessage" in _as_list(statement.get("Action"))
            and {"Fn::GetAtt": [queue, "Arn"]} in _as_list(statement.get("Resource"))
        ]
        # Then the function may send to its destination queue
        assert grants, f"{role} cannot sqs:SendMessage to {queue}"


def test_outputs_never_expose_the_secret_value(template: dict[str, Any]) -> None:
    # Given the outputs and the secrets of the template
    outputs = template["Outputs"]
    secrets = set(_resources(template, "AWS::SecretsManager::Secret"))
    assert secrets
    for name, output in outputs.items():
        nodes = list(_walk(output["Value"]))
        # When the output's value is walked
        dynamic_refs = [n for n in nodes if isinstance(n, str) and "{{resolve:" in n]
        secret_atts = [
            n for n in nodes if isinstance(n, dict) and _as_list(n.get("Fn::GetAtt", [None]))[0] in secrets
        ]
        # Then it neither resolves a secret nor reads a secret attribute (a Ref is the ARN)
        assert not dynamic_refs, f"output {name} resolves a dynamic reference"
        assert not secret_atts, f"output {name} reads an attribute of a secret"
    # And the token secret is published by ARN, the webhook URLs keep the {token} placeholder
    assert outputs["JointechTokenSecretArn"]["Value"] == {"Ref": "JointechTokenSecret"}
    for name, output in outputs.items():
        if name.startswith("Jointech") and name.endswith("WebhookUrl"):
            assert "/hooks/jointech/{token}" in output["Value"]["Fn::Sub"], name
    assert outputs["FaceTerminalWebhookUrl"]["Value"]["Fn::Sub"].endswith("/hooks/face-terminal/{token}")
    assert outputs["SenseLinkWebhookUrl"]["Value"]["Fn::Sub"].endswith("/hooks/senselink/{token}")
    assert outputs["FaceTerminalTokenSecretArn"]["Value"] == {"Ref": "FaceTerminalTokenSecret"}
    assert outputs["SenseLinkTokenSecretArn"]["Value"] == {"Ref": "SenseLinkTokenSecret"}
    # And no function is handed the secret's value instead of its ARN
    assert not [n for n in _walk(template["Resources"]) if isinstance(n, str) and "{{resolve:secretsmanager" in n]


def test_access_log_records_route_key_never_the_raw_path(template: dict[str, Any]) -> None:
    # Given the HTTP API access log format
    log_format = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]
    # When it is read as the JSON object each log line becomes
    fields = json.loads(log_format)
    # Then it logs the route key (with the literal {token}) and never the path carrying the token
    assert "$context.routeKey" in log_format
    for forbidden in ("$context.path", "$context.rawPath", "$context.resourcePath"):
        assert forbidden not in log_format, forbidden
    for wanted in ("$context.requestId", "$context.status", "$context.integrationErrorMessage"):
        assert wanted in fields.values(), wanted


def test_route_settings_match_the_routes(template: dict[str, Any], translated: dict[str, Any]) -> None:
    # Given the routes the function events create
    routes = _http_route_keys(template)
    assert routes == ["GET /devices/jointech/{deviceNum}/commands", "POST /devices/jointech/{deviceNum}/commands",
                      "POST /devices/jointech/{deviceNum}/commands/{commandId}/cancel",
                      "POST /hooks/ai-camera/{token}", "POST /hooks/face-terminal/{token}",
                      "POST /hooks/jointech/{token}", "POST /hooks/jointech/{token}/{kind}",
                      "POST /hooks/mettax/{token}", "POST /hooks/mettax/{token}/{service}",
                      "POST /hooks/senselink/{token}"]
    # When the deployed stage's per-route settings are read
    stage = next(iter(_resources(translated, "AWS::ApiGatewayV2::Stage").values()))["Properties"]
    # Then every route is throttled, and no setting names a route that does not exist
    # (API Gateway rejects the stage with "Unable to find Route by key" otherwise)
    assert sorted(stage["RouteSettings"]) == routes
    for settings in [stage["DefaultRouteSettings"], *stage["RouteSettings"].values()]:
        assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
        assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}


def test_command_routes_need_iam_and_webhook_routes_do_not(template: dict[str, Any],
                                                            translated: dict[str, Any]) -> None:
    # Given the HttpApi routes as the translated API defines them (OpenAPI body)
    api = next(iter(_resources(translated, "AWS::ApiGatewayV2::Api").values()))["Properties"]["Body"]
    security = {f"{method.upper()} {path}": operation.get("security")
                for path, operations in api["paths"].items() for method, operation in operations.items()}
    # When the routes' authorization is read
    iam = sorted(route for route, needs in security.items() if needs == [{"AWS_IAM": []}])
    # Then exactly the command routes need SigV4 (AWS_IAM) and no webhook route needs any: vendors
    # cannot sign, their token is checked by the functions
    assert iam == ["GET /devices/jointech/{deviceNum}/commands", "POST /devices/jointech/{deviceNum}/commands",
                   "POST /devices/jointech/{deviceNum}/commands/{commandId}/cancel"]
    assert all(security[route] is None for route in security if route.split(" ")[1].startswith("/hooks/"))
    assert api["components"]["securitySchemes"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    # And the API has no default authorizer that would put the webhooks behind IAM too
    assert template["Resources"]["HttpApi"]["Properties"]["Auth"] == {"EnableIamAuthorizer": True}


def test_the_commands_function_publishes_only_on_its_command_topics(template: dict[str, Any]) -> None:
    # Given the commands function's own statements
    statements = [st for where, st in _policy_statements(template) if where.startswith("JointechCommandsFunction/")]
    # When its IoT and table grants are read
    iot = [st for st in statements if any(str(a).startswith("iot:") for a in _as_list(st["Action"]))]
    table = [st for st in statements if any(str(a).startswith("dynamodb:") for a in _as_list(st["Action"]))]
    # Then it may publish, and only on download/{the deployment's access key}/..., check that a
    # Jointech device exists and write only Jointech commands (status, texts, tokens, counters)
    assert [st["Action"] for st in iot] == ["iot:Publish"]
    assert iot[0]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"
                                             "topic/download/${JointechAccessKey}/*"}
    grants = {st["Sid"]: (sorted(_as_list(st["Action"])), st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
              for st in table}
    # (and, for a command kept for the next contact, count it on the device's row and write its
    # command.queued / command.cancelled events in the device's event partition, put-only)
    assert grants == {
        "CheckJointechDevices": (["dynamodb:ConditionCheckItem", "dynamodb:UpdateItem"], ["D#jointech#*"]),
        "TrackJointechCommands": (["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
                                  ["C#jointech#*", "CX#jointech#*"]),
        "PutJointechCommandEvents": (["dynamodb:PutItem"], ["E#jointech#*"]),
    }
    # And the longest timeout the template allows is the one the outbox's matching window assumes
    from devicegate.core.commands import MAX_TIMEOUT_S

    assert template["Parameters"]["CommandTimeoutSeconds"]["MaxValue"] == MAX_TIMEOUT_S


# ---------------------------------------------------------------------------------------
# the Mosquitto bridge to IoT Core (onprem/devicegate_onprem/mosquitto-bridge.conf)
# ---------------------------------------------------------------------------------------
BRIDGE_RESOURCES = {
    "JointechBridgeThing": "AWS::IoT::Thing",
    "JointechBridgePolicy": "AWS::IoT::Policy",
    "IotDataEndpoint": "Custom::IotDataEndpoint",
    "IotEndpointFunction": "AWS::Lambda::Function",
    "IotEndpointFunctionRole": "AWS::IAM::Role",
    "IotEndpointLogGroup": "AWS::Logs::LogGroup",
}


def test_the_bridge_policy_allows_exactly_its_four_grants(template: dict[str, Any]) -> None:
    # Given the IoT policy the bridge's certificate gets
    statements = template["Resources"]["JointechBridgePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    # When its statements are read as (effect, actions, resources)
    grants = sorted(
        (st["Effect"], tuple(_as_list(st["Action"])), tuple(r["Fn::Sub"] for r in _as_list(st["Resource"])))
        for st in statements
    )
    # Then it may connect with the bridge's two client ids, publish records by Basic Ingest to the
    # two Jointech rules only, subscribe to and receive commands under download/{ak}/ - one action
    # each, nothing else (no publish on a topic anyone can subscribe to)
    arn = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"
    assert grants == sorted([
        ("Allow", ("iot:Connect",), (arn + "client/${JointechBridgeThing}", arn + "client/${JointechBridgeThing}-sublock")),
        ("Allow", ("iot:Publish",), (arn + "topic/$aws/rules/${JointechMqttRule}/upload/${JointechAccessKey}/*",
                                     arn + "topic/$aws/rules/${JointechSublockRule}/upload/${JointechAccessKey}/*")),
        ("Allow", ("iot:Subscribe",), (arn + "topicfilter/download/${JointechAccessKey}/*",)),
        ("Allow", ("iot:Receive",), (arn + "topic/download/${JointechAccessKey}/*",)),
    ])
    assert all(set(st) <= {"Sid", "Effect", "Action", "Resource"} for st in statements), statements


def _deployed_bridge(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch, access_key: str) -> Any:
    """A resolver for the stack "dg-prod" deployed with `access_key`, whose Ref of a rule or of the
    thing is its name, as CloudFormation's is."""
    from devicegate_local import resources as local_resources

    for name, value in {"AWS::StackName": "dg-prod", "AWS::Partition": "aws", "AWS::Region": "eu-west-1",
                        "AWS::AccountId": "123456789012"}.items():
        monkeypatch.setitem(local_resources.PSEUDO_PARAMETERS, name, value)
    resolver = local_resources.Resolver(copy.deepcopy(template), {"JointechAccessKey": access_key})
    resolver.attributes["JointechBridgeThing"] = {
        "Ref": resolver.resolve(template["Resources"]["JointechBridgeThing"]["Properties"]["ThingName"])}
    for rule_id in _iot_rules(template):
        resolver.attributes[rule_id] = {"Ref": resolver.resolve(template["Resources"][rule_id]["Properties"]["RuleName"])}
    return resolver


def test_the_bridge_publishes_only_on_the_basic_ingest_topics_of_the_jointech_rules(
        template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the stack "dg-prod" deployed with an access key, its rules and the bridge's policy
    from devicegate_local.iot_rules import parse_rule_sql

    resolver = _deployed_bridge(template, monkeypatch, "AK1")
    statements = resolver.resolve(template["Resources"]["JointechBridgePolicy"]["Properties"]["PolicyDocument"])
    publish = sorted(r for st in _statements(statements) if "iot:Publish" in _as_list(st["Action"])
                     for r in _as_list(st["Resource"]))
    # When each rule's Basic Ingest topic is built from its name and its FROM filter (the access
    # key's level filled in; from the first wildcard on, "*", which in a policy spans levels)
    expected = []
    for rule_id, sql in _iot_rules(template).items():
        levels = parse_rule_sql(sql, rule_id).topic_filter.split("/")
        assert levels[:2] == ["upload", "+"], rule_id  # topic(2) is the access key
        fixed = list(itertools.takewhile(lambda level: level not in ("+", "#"), ["upload", "AK1", *levels[2:]]))
        rule = resolver.attributes[rule_id]["Ref"]
        expected.append(f"arn:aws:iot:eu-west-1:123456789012:topic/$aws/rules/{rule}/{'/'.join(fixed)}/*")
    # Then the policy allows publishing on exactly those, one per Jointech rule, and nothing else
    assert publish == sorted(expected) == [
        "arn:aws:iot:eu-west-1:123456789012:topic/$aws/rules/dg_prod_jointech_sublock/upload/AK1/*",
        "arn:aws:iot:eu-west-1:123456789012:topic/$aws/rules/dg_prod_jointech_upload/upload/AK1/*",
    ]


def test_the_shipped_bridge_uses_exactly_what_the_policy_allows(
        template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the policy of "dg-prod" and the shipped bridge configuration rendered for it
    from devicegate_onprem.mqtt_bridge import SHIPPED_CONFIG, BridgeSettings, check_config, render_file

    resolver = _deployed_bridge(template, monkeypatch, "AK1")
    statements = _statements(resolver.resolve(
        template["Resources"]["JointechBridgePolicy"]["Properties"]["PolicyDocument"]))
    allowed = {action: sorted(r.split(":", 5)[5] for st in statements if action in _as_list(st["Action"])
                              for r in _as_list(st["Resource"])) for action in ("iot:Connect", "iot:Publish")}
    settings = BridgeSettings(
        access_key="AK1", vendor_host="mqtt.assetscontrols.com", vendor_port=1883, vendor_username=None,
        vendor_password=None, vendor_client_id="c", iot_endpoint="e-ats.iot.eu-west-1.amazonaws.com",
        thing_name=resolver.attributes["JointechBridgeThing"]["Ref"], ca_file="/c", cert_file="/c", key_file="/k")
    # When its connections to IoT Core are read
    report = check_config(render_file(settings, SHIPPED_CONFIG))
    # Then it connects with exactly the client ids the policy allows, and publishes on exactly the
    # topics it allows: adding a connection needs both changed, or this fails
    assert report.problems == [] and report.notes == []
    assert sorted(f"client/{client_id}" for client_id in report.client_ids) == allowed["iot:Connect"] == [
        "client/dg-prod-jointech-bridge", "client/dg-prod-jointech-bridge-sublock"]
    assert report.publish_resources == allowed["iot:Publish"]


def test_the_bridge_knows_the_templates_rule_names_and_filters(
        template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the names and FROM filters of the rules as deployed for "dg-prod"
    from devicegate_local.iot_rules import parse_rule_sql
    from devicegate_onprem import mqtt_bridge

    resolver = _deployed_bridge(template, monkeypatch, "AK1")
    deployed = {resolver.attributes[rule_id]["Ref"]: parse_rule_sql(sql, rule_id).topic_filter
                for rule_id, sql in _iot_rules(template).items()}
    # Then `devicegate mqtt-bridge` derives the same names from the thing's, and knows each rule's filter
    thing = resolver.attributes["JointechBridgeThing"]["Ref"]
    assert sorted(mqtt_bridge.rule_names(thing)) == sorted(deployed)
    assert {suffix: deployed[name] for name in deployed for suffix in mqtt_bridge.RULE_FILTERS
            if name.endswith(suffix)} == mqtt_bridge.RULE_FILTERS


def test_the_bridge_exists_only_with_an_access_key(template: dict[str, Any]) -> None:
    # Given the bridge's resources and outputs
    resources, outputs = template["Resources"], template["Outputs"]
    # Then each is there with its type, under the condition that JointechAccessKey is set
    assert {name: resources.get(name, {}).get("Type") for name in BRIDGE_RESOURCES} == BRIDGE_RESOURCES
    assert template["Conditions"]["HasJointechBridge"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "JointechAccessKey"}, ""]}]}
    assert {name: resources[name].get("Condition") for name in BRIDGE_RESOURCES} == dict.fromkeys(
        BRIDGE_RESOURCES, "HasJointechBridge")
    # And the outputs the docs and `devicegate mqtt-bridge config --stack` read name the thing, the
    # policy and the endpoint the custom resource found
    assert {name: (outputs[name]["Condition"], outputs[name]["Value"]) for name in
            ("JointechBridgeThingName", "JointechBridgePolicyName", "IotDataEndpoint")} == {
        "JointechBridgeThingName": ("HasJointechBridge", {"Ref": "JointechBridgeThing"}),
        "JointechBridgePolicyName": ("HasJointechBridge", {"Ref": "JointechBridgePolicy"}),
        "IotDataEndpoint": ("HasJointechBridge", {"Fn::GetAtt": ["IotDataEndpoint", "Address"]}),
    }
    from devicegate_onprem.mqtt_bridge import OUTPUT_ENDPOINT, OUTPUT_THING, PARAMETER_ACCESS_KEY

    assert {OUTPUT_ENDPOINT, OUTPUT_THING} <= set(outputs) and PARAMETER_ACCESS_KEY in template["Parameters"]


def test_the_access_key_is_one_topic_level_in_the_template_and_the_cli(template: dict[str, Any]) -> None:
    # Given the parameter's pattern and the renderer's check
    from devicegate_onprem.mqtt_bridge import ACCESS_KEY

    pattern = template["Parameters"]["JointechAccessKey"]["AllowedPattern"]
    # Then Jointech's keys pass both, and nothing that would widen a topic or a policy ARN does
    # ("/" a level, "+" "#" MQTT wildcards, "*" "?" policy wildcards, "${" a policy variable)
    assert re.fullmatch(pattern, "B176C0FF1DFF41D0126BFF7908C76E17")
    assert ACCESS_KEY.fullmatch("B176C0FF1DFF41D0126BFF7908C76E17")
    for bad in ("a/b", "a+", "a#", "a*", "a?", "${iot:ClientId}", "a b"):
        assert not re.fullmatch(pattern, bad) and not ACCESS_KEY.fullmatch(bad), bad
    assert re.fullmatch(pattern, "")  # empty: no bridge


def test_the_endpoint_lookup_can_only_read_the_endpoint_and_write_its_logs(template: dict[str, Any]) -> None:
    # Given the custom resource's function and role
    resources = template["Resources"]
    function = resources["IotEndpointFunction"]["Properties"]
    statements = [st for where, st in _policy_statements(template) if where.startswith("IotEndpointFunctionRole/")]
    # Then the role reads the endpoint (an action IAM grants on "*" only) and writes the function's
    # own log group, nothing more
    assert [(st["Action"], st["Resource"]) for st in statements] == [
        ("iot:DescribeEndpoint", "*"),
        (["logs:CreateLogStream", "logs:PutLogEvents"], {"Fn::GetAtt": ["IotEndpointLogGroup", "Arn"]}),
    ]
    assert function["Role"] == {"Fn::GetAtt": ["IotEndpointFunctionRole", "Arn"]}
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "IotEndpointLogGroup"}
    assert resources["IotEndpointLogGroup"]["Properties"]["RetentionInDays"] == 30
    # And CloudFormation never waits longer for the custom resource than it takes to fail
    assert function["Timeout"] < resources["IotDataEndpoint"]["Properties"]["ServiceTimeout"] <= 300
    assert resources["IotDataEndpoint"]["Properties"]["EndpointType"] == "iot:Data-ATS"


# ---------------------------------------------------------------------------------------
# 7: one process, one environment
# ---------------------------------------------------------------------------------------
def test_function_env_vars_do_not_conflict(template: dict[str, Any]) -> None:
    # Given each function's effective environment (Globals merged with its own)
    global_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    seen: dict[str, tuple[str, Any]] = {}
    conflicts = []
    for function_id, function in sorted(_functions(template).items()):
        own = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
        # When the environments are merged into one, as the local stack does
        for key, value in {**global_env, **own}.items():
            if key in seen and seen[key][1] != value:
                conflicts.append(f"{key}: {seen[key][0]}={seen[key][1]!r} vs {function_id}={value!r}")
            seen.setdefault(key, (function_id, value))
    # Then a name shared by two functions always has the same value
    assert conflicts == [], "\n".join(conflicts)


# ---------------------------------------------------------------------------------------
# names the code relies on
# ---------------------------------------------------------------------------------------
def test_contract_resources_exist_with_their_types(template: dict[str, Any]) -> None:
    # Given the logical ids the Python code and the local stack look up by name
    expected = {
        "SharedLayer": "AWS::Serverless::LayerVersion",
        "HttpApi": "AWS::Serverless::HttpApi",
        "HttpApiAccessLogs": "AWS::Logs::LogGroup",
        "JointechWebhookFunction": "AWS::Serverless::Function",
        "JointechMqttFunction": "AWS::Serverless::Function",
        "JointechMqttRule": "AWS::IoT::TopicRule",
        "JointechSublockRule": "AWS::IoT::TopicRule",
        "JointechMqttRulePermission": "AWS::Lambda::Permission",
        "JointechSublockRulePermission": "AWS::Lambda::Permission",
        "IotErrorActionRole": "AWS::IAM::Role",
        "EventsTable": "AWS::DynamoDB::Table",
        "OutboxFunction": "AWS::Serverless::Function",
        "EventsQueue": "AWS::SQS::Queue",
        "EventsDeadLetterQueue": "AWS::SQS::Queue",
        "OutboxFailureQueue": "AWS::SQS::Queue",
        "IngestFailureQueue": "AWS::SQS::Queue",
        "PayloadBucket": "AWS::S3::Bucket",
        "PayloadBucketPolicy": "AWS::S3::BucketPolicy",
        "JointechTokenSecret": "AWS::SecretsManager::Secret",
        "FaceTerminalWebhookFunction": "AWS::Serverless::Function",
        "FaceTerminalTokenSecret": "AWS::SecretsManager::Secret",
        "SenseLinkWebhookFunction": "AWS::Serverless::Function",
        "SenseLinkTokenSecret": "AWS::SecretsManager::Secret",
        "AlarmTopic": "AWS::SNS::Topic",
        "AlarmEmailSubscription": "AWS::SNS::Subscription",
        "EventsDlqAlarm": "AWS::CloudWatch::Alarm",
        "OutboxFailureAlarm": "AWS::CloudWatch::Alarm",
        "IngestFailureAlarm": "AWS::CloudWatch::Alarm",
        "Api5xxAlarm": "AWS::CloudWatch::Alarm",
        "ThrottleAlarm": "AWS::CloudWatch::Alarm",
        "QuarantineAlarm": "AWS::CloudWatch::Alarm",
        "MettaxWebhookFunction": "AWS::Serverless::Function",
        "MettaxTokenSecret": "AWS::SecretsManager::Secret",
        "AiCameraWebhookFunction": "AWS::Serverless::Function",
        "AiCameraTokenSecret": "AWS::SecretsManager::Secret",
        "DeviceSweepFunction": "AWS::Serverless::Function",
        "SweepErrorAlarm": "AWS::CloudWatch::Alarm",
        "JointechCommandsFunction": "AWS::Serverless::Function",
    }
    # When the template's resources are read
    actual = {name: resource["Type"] for name, resource in template["Resources"].items()}
    # Then each exists with its type
    assert {name: actual.get(name) for name in expected} == expected


def test_table_keys_and_indexes(template: dict[str, Any]) -> None:
    # Given the events table
    table = template["Resources"]["EventsTable"]
    props = table["Properties"]
    # When its keys, indexes and lifecycle are read
    indexes = {
        index["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]]
        for index in props["GlobalSecondaryIndexes"]
    }
    # Then they are the single-table layout the storage code queries
    assert [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]] == [("pk", "HASH"), ("sk", "RANGE")]
    assert indexes == {f"gsi{n}": [(f"gsi{n}pk", "HASH"), (f"gsi{n}sk", "RANGE")] for n in (1, 2, 3, 4, 5)}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_iot_rules_invoke_the_mqtt_function_and_park_failures(template: dict[str, Any]) -> None:
    # Given the IoT topic rules
    for rule_id, rule in _resources(template, "AWS::IoT::TopicRule").items():
        payload = rule["Properties"]["TopicRulePayload"]
        # When their actions and error action are read
        error_key = payload["ErrorAction"]["S3"]["Key"]
        # Then they invoke the MQTT function, and failures go to quarantine/iot-errors/ with
        # IoT's own ${...} templates left intact for IoT (not consumed by Fn::Sub)
        assert payload["Actions"] == [{"Lambda": {"FunctionArn": {"Fn::GetAtt": ["JointechMqttFunction", "Arn"]}}}]
        # The rule's vendor first (a redrive takes only its own vendor's), then the topic as one
        # segment of letters, digits, '_' and '-': a raw level could be '..'
        assert error_key == ("quarantine/iot-errors/jointech/${regexp_replace(topic(), '[^A-Za-z0-9_-]', '_')}/"
                             "${timestamp()}-${newuuid()}.json"), rule_id
        permissions = [
            p["Properties"]
            for p in _resources(template, "AWS::Lambda::Permission").values()
            if p["Properties"].get("SourceArn") == {"Fn::GetAtt": [rule_id, "Arn"]}
        ]
        assert permissions and permissions[0]["Principal"] == "iot.amazonaws.com", rule_id


@pytest.mark.parametrize("function_id, vendor, secret", [
    ("FaceTerminalWebhookFunction", "face-terminal", "FaceTerminalTokenSecret"),
    ("SenseLinkWebhookFunction", "senselink", "SenseLinkTokenSecret"),
    ("JointechWebhookFunction", "jointech", "JointechTokenSecret"),
    ("MettaxWebhookFunction", "mettax", "MettaxTokenSecret"),
    ("AiCameraWebhookFunction", "ai-camera", "AiCameraTokenSecret"),
])
def test_each_webhook_touches_only_its_own_vendors_rows_objects_and_secret(
        template: dict[str, Any], function_id: str, vendor: str, secret: str) -> None:
    # Given the function's own policy statements
    statements = [st for where, st in _policy_statements(template) if where.startswith(f"{function_id}/")]
    assert statements
    for statement in statements:
        actions = _as_list(statement["Action"])
        resources = _as_list(statement["Resource"])
        # Then table rows are this vendor's only, S3 prefixes end in /{vendor}/*, the secret is its own
        if any(a.startswith("dynamodb:") for a in actions):
            prefixes = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
            assert all(p.split("#")[1] == vendor for p in prefixes), prefixes
        if any(a.startswith("s3:") for a in actions):
            # Objects are written under the vendor's own prefixes; read back only its offloaded parts
            if actions == ["s3:GetObject"]:
                assert resources == [{"Fn::Sub": f"${{PayloadBucket.Arn}}/payloads/{vendor}/*/parts/*"}]
            else:
                assert actions == ["s3:PutObject"]
                assert all(r["Fn::Sub"].endswith(f"/{vendor}/*") for r in resources), resources
        if any(a.startswith("secretsmanager:") for a in actions):
            assert resources == [{"Ref": secret}]


def test_senselink_answers_within_its_deadline_and_photos_have_their_retention(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    # SenseLink gives up on answers slower than 5 s: the function can never run longer
    assert resources["SenseLinkWebhookFunction"]["Properties"]["Timeout"] <= 5
    # Photos (personal data) expire on their own schedule, a deployment parameter
    rules = resources["PayloadBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    media = [r for r in rules if r.get("Prefix") == "media/"]
    assert media and media[0]["ExpirationInDays"] == {"Ref": "MediaRetentionDays"}
    # And the personal-data policy reaches every function
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["PERSONAL_DATA"] == {"Ref": "PersonalData"}
    assert template["Parameters"]["PersonalData"]["Default"] == "id_number=mask,ic_number=mask"


# ---------------------------------------------------------------------------------------
# the vendor seam: a vendor in the registry is wired in everywhere, or a test says where not
# ---------------------------------------------------------------------------------------
def _vendor_functions(template: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """vendor -> (function id, properties) of the webhook function serving /hooks/{vendor}/..."""
    found = {}
    for function_id, function in _functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            path = event.get("Properties", {}).get("Path", "")
            if event.get("Type") == "HttpApi" and path.startswith("/hooks/"):
                found[path.split("/")[2]] = (function_id, function["Properties"])
    return found


def _metric_ids(alarm: dict[str, Any]) -> dict[str, Any]:
    return {m["Id"]: m for m in alarm["Properties"]["Metrics"] if "MetricStat" in m}


@pytest.mark.parametrize("vendor", __import__("devicegate.vendors", fromlist=["vendor_names"]).vendor_names())
def test_every_vendor_in_the_registry_is_wired_in_completely(template: dict[str, Any], vendor: str) -> None:
    resources = template["Resources"]
    # Given the vendor's webhook function
    functions = _vendor_functions(template)
    assert vendor in functions, f"no function serves /hooks/{vendor}/{{token}}"
    function_id, props = functions[vendor]
    # Then its handler is the one factory call for this vendor
    app = REPO_ROOT / props["CodeUri"] / "app.py"
    assert f'webhook_handler("{vendor}")' in app.read_text(), f"{app} is not webhook_handler({vendor!r})"
    # And every route of it has its throttling settings
    routes = [f"{e['Properties']['Method']} {e['Properties']['Path']}" for e in props["Events"].values()
              if e["Type"] == "HttpApi"]
    settings = resources["HttpApi"]["Properties"]["RouteSettings"]
    assert [r for r in routes if r not in settings] == []
    # And its own log group with a retention
    group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources[group]["Type"] == "AWS::Logs::LogGroup" and resources[group]["Properties"]["RetentionInDays"]
    # And its own token secret, which only it may read
    env = props["Environment"]["Variables"]
    secret = env[f"{vendor.upper().replace('-', '_')}_TOKEN_SECRET"]["Ref"]
    assert resources[secret]["Type"] == "AWS::SecretsManager::Secret"
    readers = [where.split("/")[0] for where, st in _policy_statements(template)
               if "secretsmanager:GetSecretValue" in _as_list(st.get("Action")) and {"Ref": secret} in _as_list(st["Resource"])]
    assert readers == [function_id]
    # And its throttles count in the throttle alarm
    alarm = resources["ThrottleAlarm"]
    ids = [i for i, m in _metric_ids(alarm).items()
           if m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] == {"Ref": function_id}]
    expression = next(m["Expression"] for m in alarm["Properties"]["Metrics"] if "Expression" in m)
    assert len(ids) == 1 and re.search(rf"\b{ids[0]}\b", expression), f"{function_id} missing from ThrottleAlarm"
    # And an output hands the integrator its URL
    urls = [name for name, output in template["Outputs"].items()
            if f"/hooks/{vendor}/{{token}}" in json.dumps(output["Value"])]
    assert urls, f"no output names the {vendor} webhook URL"
    # And it has fixtures (records the events/ generator turns into invocation events)
    assert list((EVENTS_DIR / vendor / "records").glob("*.json")), f"no events/{vendor}/records"


def test_every_ingest_function_in_the_template_serves_a_registry_vendor(template: dict[str, Any]) -> None:
    from devicegate.vendors import vendor_names

    # Given every function whose throttles the alarm counts (the ingest functions)
    counted = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
               for m in _metric_ids(template["Resources"]["ThrottleAlarm"]).values()}
    webhooks = {function_id for function_id, _ in _vendor_functions(template).values()}
    # Then every webhook function serves a vendor the registry knows, and every one is counted
    assert set(_vendor_functions(template)) == set(vendor_names())
    assert webhooks <= counted


def test_the_offline_default_is_the_vendors_own(template: dict[str, Any]) -> None:
    from devicegate.sweep import offline_after_spec, parse_offline_after
    from devicegate.vendors import get_adapter, vendor_names

    # Given the OfflineAfter parameter's default and each vendor's own interval
    default = template["Parameters"]["OfflineAfter"]["Default"]
    own = offline_after_spec([get_adapter(v) for v in vendor_names()])
    # Then they say the same, so a deployment that keeps the default gets the adapters' intervals
    assert parse_offline_after(default) == parse_offline_after(own)


# ---------------------------------------------------------------------------------------
# observability and sizing: deployment choices, each one parameter
# ---------------------------------------------------------------------------------------
def test_every_function_logs_json_filtered_at_the_deployment_levels(template: dict[str, Any],
                                                                   translated: dict[str, Any]) -> None:
    from aws_lambda_powertools.shared.constants import LAMBDA_ADVANCED_LOGGING_LEVELS

    # Given every Lambda function the stack deploys (SAM's, Globals merged, and the plain one)
    functions = _resources(translated, "AWS::Lambda::Function")
    assert set(_functions(template)) | {"IotEndpointFunction"} <= set(functions)
    # Then each logs JSON into its own group, Lambda's lines at SystemLogLevel and the code's at
    # LogLevel in Lambda's words
    for function_id, function in functions.items():
        config = function["Properties"]["LoggingConfig"]
        assert config["LogFormat"] == "JSON", function_id
        assert config["SystemLogLevel"] == {"Ref": "SystemLogLevel"}, function_id
        assert config["ApplicationLogLevel"] == {"Fn::FindInMap": ["LambdaLogLevel", {"Ref": "LogLevel"},
                                                                   "Application"]}, function_id
        assert translated["Resources"][config["LogGroup"]["Ref"]]["Type"] == "AWS::Logs::LogGroup"
    parameters = template["Parameters"]
    assert parameters["SystemLogLevel"]["Default"] == "WARN"
    assert parameters["SystemLogLevel"]["AllowedValues"] == ["DEBUG", "INFO", "WARN"]
    # And every LogLevel is one Lambda knows, meaning what Powertools takes it for: Lambda sets
    # AWS_LAMBDA_LOG_LEVEL from ApplicationLogLevel, which Powertools prefers to POWERTOOLS_LOG_LEVEL
    levels = template["Mappings"]["LambdaLogLevel"]
    assert set(levels) == set(parameters["LogLevel"]["AllowedValues"])
    for level, mapped in levels.items():
        assert LAMBDA_ADVANCED_LOGGING_LEVELS[mapped["Application"]] == level
    assert template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


def test_the_tracing_parameter_drives_every_function(template: dict[str, Any], translated: dict[str, Any]) -> None:
    # Given the Tracing parameter (HTTP APIs start no traces: PassThrough records none)
    parameter = template["Parameters"]["Tracing"]
    assert parameter["Default"] == "PassThrough" and set(parameter["AllowedValues"]) == {"Active", "PassThrough"}
    # Then Globals take it, no function overrides it, and every SAM function gets it as its mode
    assert template["Globals"]["Function"]["Tracing"] == {"Ref": "Tracing"}
    assert [f for f, fn in _functions(template).items() if "Tracing" in fn["Properties"]] == []
    modes = {function_id: translated["Resources"][function_id]["Properties"].get("TracingConfig")
             for function_id in _functions(template)}
    assert {function_id: {"Mode": {"Ref": "Tracing"}} for function_id in modes} == modes


def test_ingest_functions_take_the_memory_parameter_unless_their_sender_has_a_deadline(
        template: dict[str, Any]) -> None:
    from devicegate.vendors import get_adapter

    # Given the functions that run once per push: every vendor's webhook and the MQTT function
    ingest = {function_id: (get_adapter(vendor), props) for vendor, (function_id, props)
              in _vendor_functions(template).items()}
    ingest["JointechMqttFunction"] = (get_adapter("jointech"), template["Resources"]["JointechMqttFunction"]["Properties"])
    parameter = template["Parameters"]["IngestMemorySize"]
    assert parameter["Default"] == 256 and parameter["AllowedValues"] == [128, 256, 512, 1024]
    for function_id, (adapter, props) in ingest.items():
        # Then each takes IngestMemorySize, except a webhook whose sender gives up on slow answers
        # (SenseLink, 5 s): its cold start must fit in them, and CPU follows memory
        if adapter.answer_deadline_s is not None and function_id != "JointechMqttFunction":
            assert props["MemorySize"] >= 512, function_id
        else:
            assert props["MemorySize"] == {"Ref": "IngestMemorySize"}, function_id
    # And the others keep the Globals' 512
    others = [fn for function_id, fn in _functions(template).items() if function_id not in ingest]
    assert others and [fn["Properties"]["MemorySize"] for fn in others if "MemorySize" in fn["Properties"]] == []
    assert template["Globals"]["Function"]["MemorySize"] == 512


# ---------------------------------------------------------------------------------------
# fan-out (ConsumerApps) and the app's managed policy, resolved as CloudFormation would
# ---------------------------------------------------------------------------------------
def _deployed(overrides: dict[str, str] | None = None) -> tuple[Any, dict[str, Any]]:
    """(resolver, resources that would be deployed) for the parameters given."""
    from devicegate_local.resources import Resolver, synthetic_attribute

    class Deployed(Resolver):
        # Every resource by a predictable stand-in name and ARN: nothing is created.
        def get_att(self, logical_id: str, attribute: str) -> Any:
            return synthetic_attribute(logical_id, self.resources[logical_id]["Type"], attribute)

    resolver = Deployed(_template(), overrides)
    return resolver, {name: r for name, r in _template()["Resources"].items() if resolver.enabled(name)}


FANOUT_TYPES = {"AWS::SNS::Subscription", "AWS::SQS::QueuePolicy"}


def test_fanout_off_by_default_deploys_exactly_todays_resources(template: dict[str, Any]) -> None:
    # Given the default parameters (ConsumerApps empty)
    assert template["Parameters"]["ConsumerApps"]["Default"] == ""
    resolver, deployed = _deployed()
    # Then no topic but the alarms' one, no subscription, no queue but today's four
    assert [n for n, r in deployed.items() if r["Type"] == "AWS::SNS::Topic"] == ["AlarmTopic"]
    assert not [n for n, r in deployed.items() if r["Type"] in FANOUT_TYPES]
    assert sorted(n for n, r in deployed.items() if r["Type"] == "AWS::SQS::Queue") == [
        "EventsDeadLetterQueue", "EventsQueue", "IngestFailureQueue", "OutboxFailureQueue"]
    # ... and the outbox has no topic variable and sends to EventsQueue itself
    outbox = template["Resources"]["OutboxFunction"]["Properties"]
    assert resolver.resolve(outbox["Environment"]["Variables"]).keys() == {
        "OUTBOX_QUEUE_URL", "OUTBOX_FAILURE_QUEUE_URL",
        # what sending a waiting command at the device's next contact needs (outbox.waiting)
        "JOINTECH_ACCESS_KEY", "JOINTECH_COMMAND_TIMEOUT_SECONDS"}
    publish = [s for s in resolver.resolve(outbox["Policies"])[0]["Statement"] if s["Sid"] == "PublishEvents"]
    assert publish == [{"Sid": "PublishEvents", "Effect": "Allow", "Action": "sqs:SendMessage",
                        "Resource": resolver.resolve({"Fn::GetAtt": ["EventsQueue", "Arn"]})}]
    assert not [n for n, o in template["Outputs"].items() if resolver.condition(o.get("Condition", "FanOut"))
                and n.startswith(("EventsTopic", "ConsumerApp"))]


def test_fanout_on_subscribes_events_queue_and_one_queue_per_app_raw(template: dict[str, Any]) -> None:
    # Given two apps named
    resolver, deployed = _deployed({"ConsumerApps": "billing,dashboard"})
    topic = deployed["EventsTopic"]["Properties"]
    # Then a FIFO topic without content-based dedup (the outbox gives the ids)
    assert topic["FifoTopic"] is True and topic["ContentBasedDeduplication"] is False
    # ... EventsQueue and two app queues (each with its dead-letter queue, EventsQueue's settings) subscribed raw
    subscriptions = {r["Properties"]["Endpoint"]["Fn::GetAtt"][0]: r["Properties"]
                     for r in deployed.values() if r["Type"] == "AWS::SNS::Subscription"}
    assert sorted(subscriptions) == ["ConsumerApp1Queue", "ConsumerApp2Queue", "EventsQueue"]
    assert all(s["RawMessageDelivery"] is True and s["Protocol"] == "sqs" and s["TopicArn"] == {"Ref": "EventsTopic"}
               for s in subscriptions.values())
    events = template["Resources"]["EventsQueue"]["Properties"]
    for n, app in ((1, "billing"), (2, "dashboard")):
        queue = resolver.resolve(deployed[f"ConsumerApp{n}Queue"]["Properties"])
        assert queue.pop("QueueName") == f"devicegate-local-{app}.fifo"
        assert queue.pop("RedrivePolicy")["deadLetterTargetArn"] == resolver.resolve(
            {"Fn::GetAtt": [f"ConsumerApp{n}DeadLetterQueue", "Arn"]})
        assert queue == {k: v for k, v in events.items() if k != "RedrivePolicy"}
        assert deployed[f"ConsumerApp{n}DeadLetterQueue"]["Properties"]["FifoQueue"] is True
    assert "ConsumerApp3Queue" not in deployed
    # ... each dead-letter queue alarmed as EventsDeadLetterQueue is
    assert {n for n, r in deployed.items() if r["Type"] == "AWS::CloudWatch::Alarm" and n.startswith("ConsumerApp")} == {
        "ConsumerApp1DlqAlarm", "ConsumerApp2DlqAlarm"}
    # ... the topic alone may send to those queues
    policy = resolver.resolve(deployed["EventsTopicQueuePolicy"]["Properties"])
    assert len(policy["Queues"]) == 3
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert len(statement["Resource"]) == 3 and "aws:SourceArn" in statement["Condition"]["ArnEquals"]
    # ... and the outbox publishes to the topic (its only publish grant)
    outbox = template["Resources"]["OutboxFunction"]["Properties"]
    assert resolver.resolve(outbox["Environment"]["Variables"])["OUTBOX_TOPIC_ARN"]
    publish = [s for s in resolver.resolve(outbox["Policies"])[0]["Statement"] if s["Sid"] == "PublishEvents"]
    assert [(s["Action"], s["Resource"]) for s in publish] == [("sns:Publish", resolver.ref("EventsTopic"))]


#: What docs/consuming.md's examples (and store/queries.py) call, and on what: the app's policy
#: must allow each and nothing more. Deployed, an app takes the queue URLs from the outputs (no
#: GetQueueUrl).
APP_CALLS = {
    ("dynamodb:Query", "table"), ("dynamodb:Query", "index"), ("dynamodb:GetItem", "table"),
    ("dynamodb:BatchGetItem", "table"),
    ("sqs:ReceiveMessage", "queues"), ("sqs:DeleteMessage", "queues"),
    ("sqs:ChangeMessageVisibility", "queues"), ("sqs:GetQueueAttributes", "queues"),
    ("s3:GetObject", "media"), ("s3:GetObject", "payloads"),
}


def _app_policy(overrides: dict[str, str] | None = None) -> list[dict[str, Any]]:
    resolver, deployed = _deployed(overrides)
    return resolver.resolve(deployed["AppReadPolicy"]["Properties"]["PolicyDocument"])["Statement"]


@pytest.mark.parametrize("apps", ["", "billing,dashboard"], ids=["one-queue", "fan-out"])
def test_the_app_policy_allows_what_consuming_md_calls_and_nothing_else(template: dict[str, Any], apps: str) -> None:
    import fnmatch
    import re

    resolver, deployed = _deployed({"ConsumerApps": apps})
    table = resolver.resolve({"Fn::GetAtt": ["EventsTable", "Arn"]})
    bucket = resolver.resolve({"Fn::GetAtt": ["PayloadBucket", "Arn"]})
    queues = [resolver.resolve({"Fn::GetAtt": [q, "Arn"]}) for q in ("EventsQueue", "ConsumerApp1Queue",
                                                                        "ConsumerApp2Queue") if q in deployed]
    where = {"table": [table], "index": [f"{table}/index/gsi1", f"{table}/index/gsi5"], "queues": queues,
             "media": [f"{bucket}/media/face-terminal/T1/photo.jpg"], "payloads": [f"{bucket}/payloads/mettax/x.json"]}
    statements = _app_policy({"ConsumerApps": apps})

    def allowed(action: str, resource: str) -> bool:
        return any(s["Effect"] == "Allow" and action in _as_list(s["Action"])
                   and any(fnmatch.fnmatchcase(resource, pattern) for pattern in _as_list(s["Resource"]))
                   for s in statements)

    # Then every call of the documented access patterns is allowed on its resource
    missing = [(action, r) for action, kind in APP_CALLS for r in where[kind] if not allowed(action, r)]
    assert missing == []
    # ... and nothing else: exactly those actions, none a wildcard or a write, no condition to widen
    granted = {a for s in statements for a in _as_list(s["Action"])}
    assert granted == {action for action, _ in APP_CALLS}
    assert not [a for a in granted if "*" in a or re.search(r":(Put|Update|Delete(?!Message)|Batch(?!Get)|Send|Scan)", a)]
    # ... on this stack's table, queues and two prefixes of its bucket only: never the quarantine,
    # another queue of the stack (the outbox's failures, the dead-letter queues) or a KMS key
    resources = {r for s in statements for r in _as_list(s["Resource"])}
    assert resources == {table, f"{table}/index/*", *queues, f"{bucket}/media/*", f"{bucket}/payloads/*"}
    assert not allowed("s3:GetObject", f"{bucket}/quarantine/jointech/x")
    assert not allowed("sqs:ReceiveMessage", resolver.resolve({"Fn::GetAtt": ["OutboxFailureQueue", "Arn"]}))
    assert not any(a.startswith("kms:") for a in granted)
    assert template["Outputs"]["AppReadPolicyArn"]["Value"] == {"Ref": "AppReadPolicy"}


#: Every read method of the typed client, called as an app would (devicegate.client.DeviceGate).
#: A method added to the client without a line here fails the test below: each must be proven
#: within the app's policy.
CLIENT_CALLS: dict[str, Any] = {
    "fleet": lambda g: g.fleet(kind="location", since="2025", limit=2),
    "timeline": lambda g: g.timeline("jointech", "8052400203", kind="location", since="2025", limit=2),
    "event": lambda g: (g.event("jointech", "8052400203", "x"),
                        g.event("jointech", "8052400203", "x", occurred_at="2025-02-07T08:00:00.000Z")),
    "event_of": lambda g: g.event_of(_claim_check(g)),
    "state": lambda g: g.state("jointech", "8052400203"),
    "states": lambda g: g.states("jointech", ["8052400203", "never-heard"]),
    "devices": lambda g: g.devices("jointech"),
    "offline": lambda g: g.offline(),
    "alarms": lambda g: g.alarms(since="2020"),
    "alarms_in_status": lambda g: g.alarms_in_status("face-terminal", "open"),
    "device_alarms": lambda g: g.device_alarms("face-terminal", "TERM-1"),
    "linked": lambda g: g.linked("mettax", "alarm:1"),
    "assemblies": lambda g: g.assemblies("mettax", "333777444585", kind="face-check"),
    "quarantined": lambda g: g.quarantined("jointech", since="2020"),
    "quarantined_payload": lambda g: g.quarantined_payload("jointech", "0" * 40),
}


def _claim_check(gate: Any) -> Any:
    """A queue message whose record travelled as a claim check to its table item."""
    from urllib.parse import urlencode

    from devicegate.client import CloudEvent

    [event] = gate.timeline("jointech", "8052400203", limit=1).items
    stored = gate.plain.timeline("jointech", "8052400203", limit=1).items[0]
    ref = "dynamodb://{}?{}".format(gate.table, urlencode({
        "pk": f"E#jointech#{event.deviceId}", "sk": f"{stored['occurredAt']}#{event.eventId}"}))
    return CloudEvent.model_validate({
        "specversion": "1.0", "id": event.eventId, "source": f"devicegate/jointech/{event.deviceId}",
        "type": event.type, "subject": event.deviceId, "time": stored["occurredAt"], "dataref": ref,
        "data": {k: v for k, v in stored.items() if k != "data"}})


def _client_requests(stack: Any) -> set[tuple[str, str]]:
    """(IAM action, table or index) of every request the client's methods make, over a table
    holding a device, its events and a quarantined payload."""
    from devicegate.client import DeviceGate
    from tests.integration.test_cli_queries import _push_history
    from tests.integration.test_jointech_ingest import run_outbox

    _push_history()
    run_outbox(stack)
    ddb = stack.session.client("dynamodb")
    made: set[tuple[str, str]] = set()

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        tables = list(params.get("RequestItems") or {}) or [params["TableName"]]
        for table in tables:
            assert table == stack.table
            made.add((f"dynamodb:{model.name}", f"index/{params['IndexName']}" if params.get("IndexName") else "table"))

    ddb.meta.events.register("before-parameter-build.dynamodb", record)
    gate = DeviceGate(stack.table, ddb)
    for call in CLIENT_CALLS.values():
        call(gate)
    return made


def test_every_client_method_is_checked_against_the_app_policy() -> None:
    import inspect

    from devicegate.client import DeviceGate

    methods = {name for name, member in inspect.getmembers(DeviceGate) if not name.startswith("_")
               and (inspect.isfunction(member) or inspect.ismethod(member))}
    # from_stack reads the stack's outputs (cloudformation:DescribeStacks), which an app's role may
    # lack; tail reads the table's stream, an operator's tool AppReadPolicy leaves out on purpose
    # (the stream serves two readers at a time, the outbox being one: docs/consuming.md)
    assert methods - {"from_stack", "tail"} == set(CLIENT_CALLS)


@pytest.mark.parametrize("apps", ["", "billing,dashboard"], ids=["one-queue", "fan-out"])
def test_the_app_policy_is_enough_for_every_call_of_the_client(stack: Any, apps: str) -> None:
    import fnmatch

    # Given what the client's methods request of DynamoDB
    made = _client_requests(stack)
    assert {action for action, _ in made} == {"dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem"}
    # When each is held to the app's policy, on the deployed table's ARN and its indexes'
    resolver, _ = _deployed({"ConsumerApps": apps})
    table = resolver.resolve({"Fn::GetAtt": ["EventsTable", "Arn"]})
    statements = _app_policy({"ConsumerApps": apps})
    refused = [(action, where) for action, where in sorted(made)
               if not any(s["Effect"] == "Allow" and action in _as_list(s["Action"])
                          and any(fnmatch.fnmatchcase(table if where == "table" else f"{table}/{where}", pattern)
                                  for pattern in _as_list(s["Resource"])) for s in statements)]
    # Then the policy allows every one
    assert refused == []
    # ... and every one is among the calls the policy's own test holds it to (and nothing more)
    assert {(action, "table" if where == "table" else "index") for action, where in made} <= APP_CALLS


#: What Lambda's SQS poller does with the function's role on the queue it maps (the Lambda
#: developer guide, "Lambda execution role permissions" for Amazon SQS).
SQS_POLLER_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


@pytest.mark.parametrize("apps", ["", "billing,dashboard"], ids=["one-queue", "fan-out"])
def test_the_consumers_role_is_the_app_policy_and_it_is_enough_for_its_queue(apps: str) -> None:
    import fnmatch

    # Given the consumer's template, translated as SAM deploys it
    consumer = load_template(CONSUMER_TEMPLATE_PATH)
    translated = _translate(consumer)["Resources"]
    [role] = [r["Properties"] for r in translated.values() if r["Type"] == "AWS::IAM::Role"]
    # Then its role has the app policy and Lambda's logging policy, nothing else: no inline
    # statement, and not AWSLambdaSQSQueueExecutionRole (every queue of the account), which SAM
    # would add for an `SQS` event
    assert role["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole", {"Ref": "AppReadPolicyArn"}]
    assert "Policies" not in role
    # ... its one event source is a mapping of the queue it is given to the function
    [mapping] = [r["Properties"] for r in translated.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["EventSourceArn"] == {"Ref": "EventsQueueArn"}
    assert mapping["FunctionName"] == {"Ref": "ConsumerFunction"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # ... and the gateway's app policy lets Lambda's poller work every queue an app may be given
    # (EventsQueue, each app's fan-out queue: the outputs its parameter takes), and no other
    resolver, _ = _deployed({"ConsumerApps": apps})
    statements = _app_policy({"ConsumerApps": apps})
    outputs = {name: resolver.resolve(o["Value"]) for name, o in _template()["Outputs"].items()
               if name.endswith("QueueArn") and ("Condition" not in o or resolver.condition(o["Condition"]))}

    def allowed(action: str, arn: str) -> bool:
        return any(s["Effect"] == "Allow" and action in _as_list(s["Action"])
                   and any(fnmatch.fnmatchcase(arn, p) for p in _as_list(s["Resource"])) for s in statements)

    assert set(outputs) == {"EventsQueueArn", *(f"ConsumerApp{n}QueueArn" for n in (1, 2) if apps)}
    assert [(a, q) for q in outputs.values() for a in SQS_POLLER_ACTIONS if not allowed(a, q)] == []
    for other in ("EventsDeadLetterQueue", "OutboxFailureQueue", "IngestFailureQueue"):
        assert not allowed("sqs:ReceiveMessage", resolver.resolve({"Fn::GetAtt": [other, "Arn"]}))
    assert {name: consumer["Parameters"][name]["Type"] for name in consumer["Parameters"]} == dict.fromkeys(
        ("EventsQueueArn", "EventsTableName", "AppReadPolicyArn", "DevicegateLayerArn"), "String")
    assert _template()["Outputs"]["DevicegateLayerArn"]["Value"] == {"Ref": "SharedLayer"}
