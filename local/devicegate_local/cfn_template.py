"""Load a CloudFormation / SAM YAML template into plain Python data.

CloudFormation's short-form tags (``!Ref X``, ``!GetAtt A.B``, ``!Sub ...``) are turned
into the long form (``{"Ref": "X"}``, ``{"Fn::GetAtt": ["A", "B"]}``,
``{"Fn::Sub": ...}``), which is what the SAM translator, cfn-lint and any code that
walks the template expect. Unlike PyYAML's defaults, dates such as ``2012-10-17`` stay
strings (CloudFormation never reads them as timestamps) and a duplicate key in a
mapping is an error (CloudFormation rejects it too, instead of keeping the last one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TemplateError", "load_template", "parse_template"]

# Short tag -> long-form key. !Ref, !Condition and !GetAtt are special-cased below.
_FN_TAGS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "ToJsonString",
    "Length",
)


class TemplateError(ValueError):
    """The file is not a well-formed CloudFormation template."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader with CloudFormation tags, no timestamps and no duplicate keys."""


# Copy the resolver table so removing the timestamp resolver affects this loader only.
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _node_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _construct_mapping(loader: _CfnLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise TemplateError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


def _ref(loader: _CfnLoader, node: yaml.Node) -> dict:
    return {"Ref": _node_value(loader, node)}


def _condition(loader: _CfnLoader, node: yaml.Node) -> dict:
    return {"Condition": _node_value(loader, node)}


def _get_att(loader: _CfnLoader, node: yaml.Node) -> dict:
    value = _node_value(loader, node)
    if isinstance(value, str):
        # "Resource.Attribute" (the attribute itself may contain dots, e.g. Endpoint.Address)
        resource, sep, attribute = value.partition(".")
        if not sep:
            raise TemplateError(f"!GetAtt {value!r} at line {node.start_mark.line + 1} needs Resource.Attribute")
        value = [resource, attribute]
    return {"Fn::GetAtt": value}


def _fn(name: str):
    def construct(loader: _CfnLoader, node: yaml.Node) -> dict:
        return {f"Fn::{name}": _node_value(loader, node)}

    return construct


_CfnLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_CfnLoader.add_constructor("!Ref", _ref)
_CfnLoader.add_constructor("!Condition", _condition)
_CfnLoader.add_constructor("!GetAtt", _get_att)
for _name in _FN_TAGS:
    _CfnLoader.add_constructor(f"!{_name}", _fn(_name))


def parse_template(text: str) -> dict[str, Any]:
    """Parse template text (YAML or JSON) into long-form CloudFormation data."""
    try:
        data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError("a template must be a mapping at the top level")
    # Normalise to plain JSON data, the form CloudFormation itself works on.
    return json.loads(json.dumps(data))


def load_template(path: str | Path) -> dict[str, Any]:
    """Read a CloudFormation / SAM template file into long-form CloudFormation data."""
    return parse_template(Path(path).read_text(encoding="utf-8"))
