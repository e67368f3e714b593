"""Template → local resources: intrinsic resolution, moto resources, function specs.

Everything is derived from template.yaml so the local stack cannot drift from what SAM deploys:
tables, queues, buckets and secrets are created in moto from their Properties, and each
function's environment is the template's, with references resolved to the local names.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devicegate_local.lambda_context import LOCAL_ACCOUNT_ID
from devicegate_local.names import LOCAL_REGION, LOCAL_STACK_NAME, local_physical_name

log = logging.getLogger("devicegate.local")

FUNCTION_TYPE = "AWS::Serverless::Function"
CREATED_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
)
MAPPING_TYPE = "AWS::Lambda::EventSourceMapping"
# Not created in moto but played by the stack itself (local_streams.py, local_iot_rules.py).
PLAYED_TYPES = (MAPPING_TYPE, "AWS::IoT::TopicRule")

_NO_VALUE = object()  # AWS::NoValue: the enclosing key or list item disappears
PSEUDO_PARAMETERS: dict[str, Any] = {
    "AWS::Region": LOCAL_REGION,
    "AWS::AccountId": LOCAL_ACCOUNT_ID,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::Partition": "aws",
    "AWS::StackName": LOCAL_STACK_NAME,
    "AWS::StackId": (
        f"arn:aws:cloudformation:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stack/{LOCAL_STACK_NAME}/local"
    ),
    "AWS::NotificationARNs": [],
    "AWS::NoValue": _NO_VALUE,
}
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class TemplateError(Exception):
    """The template asks for something the local stack cannot provide."""


def find_template(start: Path | None = None) -> Path | None:
    """template.yaml in `start` (default: the current directory) or the nearest parent."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "template.yaml"
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------- intrinsics


def references(value: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, Fn::GetAtt, ${X} / ${X.Attr} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        elif set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            found.add(target[0] if isinstance(target, list) else str(target).split(".")[0])
        elif set(value) == {"Fn::Sub"}:
            sub = value["Fn::Sub"]
            text, variables = (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})
            for name in _SUB_VAR.findall(text):
                if not name.startswith("!") and name.split(".")[0] not in variables:
                    found.add(name.split(".")[0])
            found |= references(variables)
        else:
            for item in value.values():
                found |= references(item)
    return found


class Resolver:
    """Resolves CloudFormation intrinsics against the local stack.

    `attributes[logical_id]` holds what Ref ("Ref") and Fn::GetAtt (attribute name) return for
    resources the local stack created; other resources get predictable synthetic values.
    """

    def __init__(self, template: dict[str, Any], overrides: dict[str, str] | None = None) -> None:
        self.template = template
        # Parameter values given like `sam deploy --parameter-overrides`; the rest take Default.
        self.overrides = dict(overrides or {})
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.attributes: dict[str, dict[str, Any]] = {}
        self._conditions: dict[str, bool] = {}

    # -- public

    def resolve(self, value: Any) -> Any:
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self._evaluate(conditions[name]))
        return self._conditions[name]

    def enabled(self, logical_id: str) -> bool:
        """False when the resource's Condition evaluates to false (it would not be deployed)."""
        name = (self.resources.get(logical_id) or {}).get("Condition")
        return True if name is None else self.condition(name)

    def ref(self, name: str) -> Any:
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        parameters = self.template.get("Parameters") or {}
        if name in parameters:
            spec = parameters[name] or {}
            if name in self.overrides:
                return self.overrides[name]
            if "Default" not in spec:
                raise TemplateError(f"parameter {name!r} has no Default; the local stack needs one")
            default = spec["Default"]
            if str(spec.get("Type", "")).startswith("List<") or spec.get("Type") == "CommaDelimitedList":
                return [item.strip() for item in str(default).split(",")] if default != "" else []
            return default if isinstance(default, str) else str(default)
        return self.get_att(name, "Ref")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            raise TemplateError(f"reference to unknown resource or parameter {logical_id!r}")
        known = self.attributes.get(logical_id)
        if known is not None:
            if attribute not in known:
                raise TemplateError(f"local stack has no attribute {attribute!r} for {logical_id}")
            return known[attribute]
        resource_type = self.resources[logical_id].get("Type", "")
        if resource_type in CREATED_TYPES:
            raise TemplateError(f"{logical_id} is referenced before the local stack created it")
        return synthetic_attribute(logical_id, resource_type, attribute)

    # -- internals

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key, arg)
        resolved = {key: self._resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _function(self, name: str, arg: Any) -> Any:
        if name == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(logical_id, self._resolve(attribute))
        if name == "Fn::Sub":
            return self._sub(arg)
        if name == "Fn::Join":
            separator, items = arg
            return str(separator).join(str(item) for item in self._resolve(items))
        if name == "Fn::Select":
            index, items = self._resolve(arg)
            return items[int(index)]
        if name == "Fn::Split":
            separator, text = self._resolve(arg)
            return str(text).split(separator)
        if name == "Fn::If":
            condition, when_true, when_false = arg
            return self._resolve(when_true if self.condition(condition) else when_false)
        if name == "Fn::FindInMap":
            mapping, key, attribute = self._resolve(arg)[:3]
            return (self.template.get("Mappings") or {})[mapping][key][attribute]
        if name == "Fn::Base64":
            import base64

            return base64.b64encode(str(self._resolve(arg)).encode()).decode()
        if name == "Fn::GetAZs":
            return [f"{LOCAL_REGION}{zone}" for zone in "abc"]
        if name == "Fn::ToJsonString":
            return json.dumps(self._resolve(arg), separators=(",", ":"))
        if name in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._evaluate({name: arg})
        raise TemplateError(f"intrinsic {name} is not supported by the local stack")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
        variables = self._resolve(variables or {})

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".")[0] in self.resources:
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return _SUB_VAR.sub(replace, text)

    def _evaluate(self, expression: Any) -> Any:
        if isinstance(expression, dict) and len(expression) == 1:
            (key, arg), = expression.items()
            if key == "Fn::Equals":
                left, right = (self._resolve(item) for item in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._evaluate(arg[0])
            if key == "Fn::And":
                return all(self._evaluate(item) for item in arg)
            if key == "Fn::Or":
                return any(self._evaluate(item) for item in arg)
            if key == "Condition":
                return self.condition(arg)
        return self._resolve(expression)


def synthetic_attribute(logical_id: str, resource_type: str, attribute: str) -> str:
    """Ref/GetAtt of a resource the local stack does not create (IAM, SNS, IoT, alarms...)."""
    name = local_physical_name(logical_id, resource_type)
    service = resource_type.split("::")[1].lower() if resource_type.count("::") >= 2 else "local"
    if resource_type == FUNCTION_TYPE:
        arn = f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{name}"
    elif service == "iam":
        arn = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:{resource_type.split('::')[2].lower()}/{name}"
    else:
        arn = f"arn:aws:{service}:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{name}"
    if attribute == "Ref":
        return arn if resource_type == "AWS::SNS::Topic" else name
    if attribute == "Arn":
        return arn
    return f"{name}-{attribute}"


# --------------------------------------------------------------------------- moto resources


@dataclass
class LocalResources:
    """What the local stack created: physical names by logical id, for the banner and pollers."""

    tables: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL
    queue_names: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    secret_names: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)  # logical id -> topic ARN

    def merge(self, other: LocalResources) -> None:
        """Another template's resources (an app's, next to the gateway's), for one banner and lookup."""
        for name in ("tables", "queues", "queue_names", "buckets", "secrets", "secret_names", "topics"):
            getattr(self, name).update(getattr(other, name))

    def queue_url_for_arn(self, arn: str) -> str | None:
        name = arn.rsplit(":", 1)[-1]
        for logical_id, queue_name in self.queue_names.items():
            if queue_name == name:
                return self.queues[logical_id]
        return None


def referrers(resources: dict[str, Any], logical_id: str) -> list[str]:
    """Types of the resources whose Properties refer to `logical_id` (e.g. what triggers it)."""
    return sorted(
        {
            spec.get("Type", "?")
            for spec in resources.values()
            if isinstance(spec, dict) and logical_id in references(spec.get("Properties") or {})
        }
    )


def creation_order(resources: dict[str, Any], wanted: Iterable[str]) -> list[str]:
    """`wanted` logical ids ordered so every resource comes after those it references."""
    wanted = sorted(wanted)
    pending = set(wanted)
    ordered: list[str] = []
    while pending:
        ready = [
            lid
            for lid in wanted
            if lid in pending and not (references(resources[lid].get("Properties") or {}) & (pending - {lid}))
        ]
        if not ready:
            raise TemplateError(f"circular references between {sorted(pending)}")
        ordered.extend(ready)
        pending -= set(ready)
    return ordered


def create_resources(resolver: Resolver, session: Any, token: str) -> LocalResources:
    """Create every table, queue, bucket and secret of the template in moto."""
    resources = resolver.resources
    created = LocalResources()
    wanted = [
        lid
        for lid, spec in resources.items()
        if (spec or {}).get("Type") in CREATED_TYPES and resolver.enabled(lid)
    ]
    for lid, spec in resources.items():
        if (spec or {}).get("Type") not in (*CREATED_TYPES, *PLAYED_TYPES, FUNCTION_TYPE):
            log.debug("local stack skips %s (%s)", lid, (spec or {}).get("Type"))
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service)
        return clients[service]

    for lid in creation_order(resources, wanted):
        resource_type = resources[lid]["Type"]
        properties = resolver.resolve(resources[lid].get("Properties") or {})
        fifo = str(properties.get("FifoQueue", properties.get("FifoTopic", ""))).lower() == "true"
        name = local_physical_name(lid, resource_type, fifo=fifo)
        if resource_type == "AWS::DynamoDB::Table":
            resolver.attributes[lid] = _create_table(client("dynamodb"), name, properties)
            created.tables[lid] = name
        elif resource_type == "AWS::SQS::Queue":
            attributes = _create_queue(client("sqs"), name, properties)
            resolver.attributes[lid] = attributes
            created.queues[lid] = attributes["QueueUrl"]
            created.queue_names[lid] = name
        elif resource_type == "AWS::S3::Bucket":
            client("s3").create_bucket(Bucket=name)
            _configure_logging(client("s3"), lid, name, properties.get("LoggingConfiguration"))
            resolver.attributes[lid] = {
                "Ref": name,
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{LOCAL_REGION}.amazonaws.com",
            }
            created.buckets[lid] = name
        elif resource_type == "AWS::SecretsManager::Secret":
            # Local tokens are the same for every vendor; never generate a random one here.
            arn = client("secretsmanager").create_secret(
                Name=name, SecretString=json.dumps({"current": token})
            )["ARN"]
            resolver.attributes[lid] = {"Ref": arn, "Id": arn}
            created.secrets[lid] = arn
            created.secret_names[lid] = name
        elif resource_type == "AWS::SNS::Topic":
            attributes = {key: _attribute_text(properties[key]) for key in _TOPIC_ATTRIBUTES if key in properties}
            arn = client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
            resolver.attributes[lid] = {"Ref": arn, "TopicArn": arn, "TopicName": name}
            created.topics[lid] = arn
        elif resource_type == "AWS::SNS::Subscription":
            # The fan-out's topic -> queue subscriptions: moto delivers a FIFO topic's messages to
            # FIFO queues with their group and deduplication ids, raw (body and attributes).
            raw = _attribute_text(properties.get("RawMessageDelivery", False))
            arn = client("sns").subscribe(
                TopicArn=properties["TopicArn"], Protocol=properties["Protocol"], Endpoint=properties["Endpoint"],
                Attributes={"RawMessageDelivery": "true"} if raw == "true" else {})["SubscriptionArn"]
            resolver.attributes[lid] = {"Ref": arn, "Arn": arn}
    return created


#: AWS::SNS::Topic properties moto takes as CreateTopic attributes (FifoThroughputScope it does not).
_TOPIC_ATTRIBUTES = ("FifoTopic", "ContentBasedDeduplication", "DisplayName", "KmsMasterKeyId")


def _attribute_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _configure_logging(s3: Any, logical_id: str, name: str, logging_config: dict[str, Any] | None) -> None:
    """The bucket's LoggingConfiguration, in moto when it takes it. moto writes no access logs
    either way; it refuses a target bucket without the log-delivery ACL grant or a policy it can
    read, so a refusal is noted for --verbose and the stack starts without it."""
    if not logging_config or not logging_config.get("DestinationBucketName"):
        return
    from botocore.exceptions import ClientError

    status = {"LoggingEnabled": {"TargetBucket": logging_config["DestinationBucketName"],
                                 "TargetPrefix": logging_config.get("LogFilePrefix", "")}}
    try:
        s3.put_bucket_logging(Bucket=name, BucketLoggingStatus=status)
    except ClientError as exc:
        log.debug("local stack skips %s's LoggingConfiguration (to %s): moto refused it: %s", logical_id,
                  logging_config["DestinationBucketName"], exc)
        return
    log.debug("%s logs access to s3://%s/%s (moto stores the setting, writes no logs)", logical_id,
              status["LoggingEnabled"]["TargetBucket"], status["LoggingEnabled"]["TargetPrefix"])


def _create_table(dynamodb: Any, name: str, properties: dict[str, Any]) -> dict[str, Any]:
    billing = properties.get("BillingMode", "PROVISIONED")
    throughput = properties.get("ProvisionedThroughput") or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}

    def index(spec: dict[str, Any], with_throughput: bool) -> dict[str, Any]:
        out = {key: spec[key] for key in ("IndexName", "KeySchema", "Projection") if key in spec}
        if with_throughput and billing == "PROVISIONED":
            out["ProvisionedThroughput"] = spec.get("ProvisionedThroughput") or throughput
        return out

    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = throughput
    if properties.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = [index(i, True) for i in properties["GlobalSecondaryIndexes"]]
    if properties.get("LocalSecondaryIndexes"):
        kwargs["LocalSecondaryIndexes"] = [index(i, False) for i in properties["LocalSecondaryIndexes"]]
    stream = properties.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    dynamodb.create_table(**kwargs)
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and str(ttl.get("Enabled", "")).lower() == "true":
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    table = dynamodb.describe_table(TableName=name)["Table"]
    attributes = {"Ref": name, "Arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        attributes["StreamArn"] = table["LatestStreamArn"]
    return attributes


_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def queue_attributes(properties: dict[str, Any]) -> dict[str, str]:
    """CloudFormation AWS::SQS::Queue properties → SQS CreateQueue attributes (all strings)."""
    out: dict[str, str] = {}
    for key in _QUEUE_ATTRIBUTES:
        if key not in properties:
            continue
        value = properties[key]
        if isinstance(value, dict):
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _create_queue(sqs: Any, name: str, properties: dict[str, Any]) -> dict[str, Any]:
    url = sqs.create_queue(QueueName=name, Attributes=queue_attributes(properties))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "QueueUrl": url, "Arn": arn, "QueueName": name}


# --------------------------------------------------------------------------- functions


def merge_globals(global_value: Any, own_value: Any) -> Any:
    """SAM's Globals rule: maps merge (the function wins), lists concatenate, scalars override."""
    if isinstance(global_value, dict) and isinstance(own_value, dict):
        merged = dict(global_value)
        for key, value in own_value.items():
            merged[key] = merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(own_value, list):
        return global_value + own_value
    return own_value


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    memory_mb: int
    timeout_s: float
    environment: dict[str, str]
    events: dict[str, Any]

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{self.name}"


def import_handler(logical_id: str, code_dir: Path, handler: str) -> Callable[..., Any]:
    """Import `<CodeUri>/<module>.py` under a unique module name and return its handler."""
    module_path, _, attribute = handler.rpartition(".")
    if not module_path or not attribute:
        raise TemplateError(f"{logical_id}: Handler {handler!r} is not <module>.<function>")
    source = code_dir.joinpath(*module_path.split(".")).with_suffix(".py")
    if not source.is_file():
        raise TemplateError(f"{logical_id}: handler file {source} does not exist")
    module_name = f"devicegate_local_{logical_id}"
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise TemplateError(f"{logical_id}: cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # Lambda puts the code directory on sys.path (/var/task); do the same while importing.
    sys.path.insert(0, str(code_dir))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        try:
            sys.path.remove(str(code_dir))
        except ValueError:
            pass
    function = getattr(module, attribute, None)
    if not callable(function):
        raise TemplateError(f"{logical_id}: {source} has no callable {attribute!r}")
    return function


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def function_specs(resolver: Resolver, template_dir: Path) -> list[FunctionSpec]:
    """Every AWS::Serverless::Function with Globals.Function merged and intrinsics resolved."""
    globals_ = (resolver.template.get("Globals") or {}).get("Function") or {}
    specs = []
    for lid, resource in resolver.resources.items():
        if (resource or {}).get("Type") != FUNCTION_TYPE or not resolver.enabled(lid):
            continue
        own = resource.get("Properties") or {}
        merged = {key: value for key, value in globals_.items() if key not in own}
        for key, value in own.items():
            merged[key] = merge_globals(globals_[key], value) if key in globals_ else value
        code_uri = merged.get("CodeUri")
        if not isinstance(code_uri, str):
            raise TemplateError(f"{lid}: the local stack needs CodeUri as a local folder")
        variables = resolver.resolve((merged.get("Environment") or {}).get("Variables") or {})
        specs.append(
            FunctionSpec(
                logical_id=lid,
                name=local_physical_name(lid, FUNCTION_TYPE),
                code_dir=(template_dir / code_uri).resolve(),
                handler=str(resolver.resolve(merged.get("Handler", ""))),
                memory_mb=int(resolver.resolve(merged.get("MemorySize", 128))),
                timeout_s=float(resolver.resolve(merged.get("Timeout", 3))),
                environment={key: _env_value(value) for key, value in variables.items()},
                events=resolver.resolve(merged.get("Events") or {}),
            )
        )
    return specs


def merged_environment(specs: Iterable[FunctionSpec]) -> dict[str, str]:
    """All functions' variables in one mapping, for harnesses that call every handler in one
    process (the integration tests, bench/cost.py). The local stack gives each function only its
    own (local_functions.py)."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for spec in specs:
        for key, value in spec.environment.items():
            if key in merged and merged[key] != value:
                raise TemplateError(
                    f"environment variable {key} is {merged[key]!r} in {owner[key]} but {value!r} in "
                    f"{spec.logical_id}; these handlers share one process here, so "
                    "give them distinct names"
                )
            merged[key] = value
            owner.setdefault(key, spec.logical_id)
    return merged
