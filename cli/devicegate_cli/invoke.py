"""`devicegate invoke FUNCTION [-e FILE]`: one template function invoked once, without Docker, as
`sam local invoke` would: with exactly the environment the template declares for it (and what
Lambda itself sets), in a process of its own, against the running local stack or (`--fresh`) a
moto emulation built from template.yaml for this one run. The handler's answer is printed on
stdout as JSON; the function's own output (its log lines) goes to stderr.

What `-e` takes (the rule docs/local.md states):

- a Lambda event, passed as it is: an API Gateway HTTP API 2.0 event (`version` "2.0" with a
  `routeKey`), a batch of `Records` (DynamoDB stream), an EventBridge event (`source` and
  `detail-type`), or, for a function an IoT topic rule invokes, a document that already has every
  field the rule's SELECT adds (events/jointech/iot-*.json). events/<vendor>/*.json are these.
- anything else is a vendor's body (events/<vendor>/records/*.json, or a body of your own):
  for a function with HTTP routes it is wrapped into the HTTP API event API Gateway would build
  for the route `--path` names (default: the function's route whose only parameter is {token},
  filled with the stack's token); for a function behind an IoT topic rule it is the MQTT message,
  and `--topic` names the topic it was published on (the rule's SELECT makes the event).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devicegate_cli.edge import OneLineParser, UsageError, at_the_edge

#: A Lambda event that names another function than the one asked for is a mistake; these are
#: the shapes of event the template's triggers deliver.
_SCHEDULE_KEYS = ("source", "detail-type")


@dataclass
class Emulation:
    """Where `invoke` runs functions: the template's functions, routes and topic rules, an
    Invoker with the emulation's endpoint, and the token every vendor secret holds."""

    specs: dict[str, Any]
    routes: list[Any]
    rules: list[Any]
    invoker: Any
    session: Any
    resources: dict[str, Any]


def _template() -> tuple[Path, dict[str, Any]]:
    from devicegate_local.cfn_template import load_template
    from devicegate_local.resources import find_template

    path = find_template()
    if path is None:
        raise UsageError("no template.yaml here or in a folder above (run it inside the project)")
    return path, load_template(path)


@contextlib.contextmanager
def emulation(fresh: bool) -> Iterator[Emulation]:
    """The running local stack's emulation, or a fresh in-process one that ends with the block."""
    import boto3

    from devicegate_local.functions import Invoker
    from devicegate_local.iot_rules import topic_rules
    from devicegate_local.names import LOCAL_CREDENTIALS, LOCAL_REGION, LOCAL_TOKEN, running_stack
    from devicegate_local.resources import Resolver, create_resources, function_specs
    from devicegate_local.stack import EndpointSession, aws_environment, http_routes, local_parameters

    path, template = _template()
    running = None if fresh else running_stack()
    # The running stack's parameter values (--parameter-overrides), else the local stack's defaults.
    resolver = Resolver(template, dict((running or {}).get("parameters") or local_parameters(template, [])))
    session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
    server = None
    extra: dict[str, str] = {}
    if fresh:
        from devicegate_local.moto import MotoServer

        server = MotoServer("127.0.0.1", 0)
        server.start()
        endpoint = f"http://127.0.0.1:{server.port}"
        create_resources(resolver, EndpointSession(session, endpoint),
                         os.environ.get("DEVICEGATE_LOCAL_TOKEN") or LOCAL_TOKEN)
    else:
        if running is None or not running.get("moto"):
            raise UsageError("no local stack is running here (start one with ./run local, or pass --fresh for a "
                             "fresh emulation of this run only)")
        endpoint = str(running["moto"])
        _attach_running(resolver, EndpointSession(session, endpoint))
        extra = dict(running.get("functionEnvironment") or {})
    invoker = None
    try:
        specs = function_specs(resolver, path.parent)
        invoker = Invoker(specs, {**aws_environment(endpoint), **extra}, concurrency=1)
        yield Emulation({s.logical_id: s for s in specs}, http_routes(specs), topic_rules(resolver, specs)[0],
                        invoker, EndpointSession(session, endpoint), resolver.resources)
    finally:
        if invoker is not None:
            invoker.stop(grace_s=1.0)
        if server is not None:
            server.stop()


def _attach_running(resolver: Any, session: Any) -> None:
    """What Ref and GetAtt return for the resources the running stack created (its names are
    predictable; ARNs, queue URLs and stream ARNs are asked of moto)."""
    from devicegate_local.names import local_physical_name
    from devicegate_local.resources import CREATED_TYPES, creation_order

    created = [lid for lid, resource in resolver.resources.items()
               if (resource or {}).get("Type") in CREATED_TYPES and resolver.enabled(lid)]
    # In the order the stack created them: a resource's properties may refer to an earlier one.
    for logical_id in creation_order(resolver.resources, created):
        resource = resolver.resources[logical_id]
        kind = resource["Type"]
        properties = resolver.resolve(resource.get("Properties") or {})
        fifo = str(properties.get("FifoQueue", properties.get("FifoTopic", ""))).lower() == "true"  # as resources.py
        name = local_physical_name(logical_id, kind, fifo=fifo)
        if kind == "AWS::DynamoDB::Table":
            table = session.client("dynamodb").describe_table(TableName=name)["Table"]
            attributes = {"Ref": name, "Arn": table["TableArn"]}
            if table.get("LatestStreamArn"):
                attributes["StreamArn"] = table["LatestStreamArn"]
        elif kind == "AWS::SQS::Queue":
            sqs = session.client("sqs")
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            attributes = {"Ref": url, "QueueUrl": url, "Arn": arn, "QueueName": name}
        elif kind == "AWS::S3::Bucket":
            attributes = {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com",
                          "RegionalDomainName": f"{name}.s3.us-east-1.amazonaws.com"}
        elif kind == "AWS::SecretsManager::Secret":
            arn = session.client("secretsmanager").describe_secret(SecretId=name)["ARN"]
            attributes = {"Ref": arn, "Id": arn}
        elif kind == "AWS::SNS::Topic":
            topics = [t["TopicArn"] for page in session.client("sns").get_paginator("list_topics").paginate()
                      for t in page["Topics"]]
            arn = next((t for t in topics if t.rsplit(":", 1)[-1] == name), None)
            if arn is None:
                raise UsageError(f"the running local stack has no topic {name}: was it started from another template?")
            attributes = {"Ref": arn, "TopicArn": arn, "TopicName": name}
        elif kind == "AWS::SNS::Subscription":
            continue  # nothing in a function's environment refers to a subscription
        else:  # a type the stack creates but this list does not know yet: say so, not a wrong lookup
            raise UsageError(f"devicegate invoke cannot find the running stack's {kind} {logical_id}")
        resolver.attributes[logical_id] = attributes


# --- which event, for which function ---------------------------------------------------------

def _rules_of(function_id: str, rules: list[Any]) -> list[Any]:
    return [r for r in rules if any(t.function_id == function_id for t in r.targets)]


def _rule_fields(rule: Any) -> set[str]:
    return {item.name for item in rule.query.items if item.kind != "*"}


def function_of(event: Any, em: Emulation) -> str | None:
    """The function a Lambda event is meant for (its route, rule, stream or schedule), or None
    when it is not a Lambda event of this template's triggers."""
    if not isinstance(event, dict):
        return None
    if event.get("version") == "2.0" and "routeKey" in event:
        return next((r.target for r in em.routes if r.route_key == event["routeKey"]), None)
    if isinstance(event.get("Records"), list):
        sources = {str((r or {}).get("eventSource")) for r in event["Records"] if isinstance(r, dict)}
        if sources == {"aws:dynamodb"}:
            return _stream_function(em)
        return None
    if all(k in event for k in _SCHEDULE_KEYS):
        arns = " ".join(str(a) for a in event.get("resources") or [])
        for spec in em.specs.values():
            for event_id, trigger in spec.events.items():
                if (trigger or {}).get("Type") == "Schedule" and f"{spec.logical_id}{event_id}" in arns:
                    return str(spec.logical_id)
        return None
    for rule in em.rules:
        if _rule_fields(rule) <= set(event):
            return next((t.function_id for t in rule.targets if t.function_id), None)
    return None


def _stream_function(em: Emulation) -> str | None:
    from devicegate_local.resources import MAPPING_TYPE, references

    for spec in em.specs.values():
        if any((e or {}).get("Type") == "DynamoDB" for e in spec.events.values()):
            return str(spec.logical_id)
    for resource in em.resources.values():
        if (resource or {}).get("Type") == MAPPING_TYPE:
            named = references((resource.get("Properties") or {}).get("FunctionName"))
            found = named & set(em.specs)
            if found:
                return found.pop()
    return None


def is_lambda_event(function_id: str, document: Any, em: Emulation) -> bool:
    if not isinstance(document, dict):
        return False
    if document.get("version") == "2.0" and "routeKey" in document and "requestContext" in document:
        return True
    if isinstance(document.get("Records"), list) or all(k in document for k in _SCHEDULE_KEYS):
        return True
    rules = _rules_of(function_id, em.rules)
    if rules:
        return any(_rule_fields(rule) <= set(document) for rule in rules)
    # A function with neither routes nor rules takes its event as it is.
    return not any(r.target == function_id for r in em.routes)


def _token(function_id: str, em: Emulation) -> str:
    """The current token of the function's webhook secret (the variable naming it ends in
    TOKEN_SECRET), as the vendor's push URL carries it."""
    spec = em.specs[function_id]
    names = [value for key, value in spec.environment.items() if key.endswith("TOKEN_SECRET")]
    if not names:
        raise UsageError(f"{function_id} has no token secret to fill the URL's {{token}} with; pass --path")
    secret = em.session.client("secretsmanager").get_secret_value(SecretId=names[0])["SecretString"]
    return str(json.loads(secret)["current"])


def http_event(function_id: str, body: bytes, em: Emulation, path: str | None,
               headers: list[tuple[str, str]]) -> dict[str, Any]:
    """The HTTP API 2.0 event API Gateway builds for `body` POSTed to the function's route."""
    from devicegate_local.http import build_http_event, local_iam_identity, match_route

    own = [r for r in em.routes if r.target == function_id]
    if path is None:
        plain = [r for r in own if [s for s in r.segments if s.startswith("{")] == ["{token}"]]
        if not plain:
            raise UsageError(f"{function_id}'s routes ({', '.join(r.route_key for r in own)}) need --path with "
                             "their parameters filled in")
        path = plain[0].path.replace("{token}", _token(function_id, em))
    raw_path, _, raw_query = path.partition("?")
    method = next((r.method for r in own if r.match(r.method, raw_path) is not None), "POST")
    matched = match_route(own, method, raw_path)
    if matched is None:
        raise UsageError(f"--path {path} is no route of {function_id} (its routes: "
                         f"{', '.join(r.route_key for r in own)})")
    route, params = matched
    names = {name.lower() for name, _ in headers}
    if "content-type" not in names and body:
        try:
            json.loads(body)
            headers = [*headers, ("content-type", "application/json")]
        except ValueError:
            headers = [*headers, ("content-type", "text/plain; charset=utf-8")]
    event = build_http_event(route=route, path_params=params, method=route.method, raw_path=raw_path,
                             raw_query=raw_query, headers=headers, body=body, source_ip="127.0.0.1",
                             domain_name="localhost")
    if route.iam:
        # API Gateway checked a signature before invoking; say who signed, as it would.
        signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=LOCAL/20250101/us-east-1/execute-api/aws4_request,"
                                   " SignedHeaders=host, Signature=" + "0" * 64, "X-Amz-Date": "20250101T000000Z"}
        event["requestContext"]["authorizer"] = {"iam": local_iam_identity(signed)}
    return event


def mqtt_event(function_id: str, document: Any, em: Emulation, topic: str | None) -> dict[str, Any]:
    """What the function's topic rule makes of `document` published on `topic`."""
    import time

    from devicegate_local.iot_rules import build_output, topic_matches

    rules = _rules_of(function_id, em.rules)
    filters = ", ".join(f"'{r.query.topic_filter}'" for r in rules)
    if topic is None:
        raise UsageError(f"{function_id} is invoked by IoT topic rules ({filters}): give the MQTT message's topic "
                         "with --topic, or an event the rule made (events/<vendor>/iot-*.json)")
    if not isinstance(document, dict):
        raise UsageError("an MQTT message must be a JSON object for the rule's SELECT * to make an event of it")
    rule = next((r for r in rules if topic_matches(r.query.topic_filter, topic)), None)
    if rule is None:
        raise UsageError(f"--topic {topic} matches none of {function_id}'s rules ({filters})")
    return build_output(rule.query, document, topic, int(time.time() * 1000))


def lambda_event(function_id: str, raw: bytes, em: Emulation, *, path: str | None = None,
                 topic: str | None = None, headers: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The event `function_id` is invoked with for the bytes of `-e` (the rule of this module's
    docstring). UsageError when the event is another function's."""
    try:
        document: Any = json.loads(raw) if raw.strip() else {}
    except ValueError:
        document = None
    if is_lambda_event(function_id, document, em) and (path is None and topic is None):
        meant = function_of(document, em)
        if meant is not None and meant != function_id:
            raise UsageError(f"this event is for {meant}, not {function_id}")
        return dict(document)
    if any(r.target == function_id for r in em.routes):
        return http_event(function_id, raw, em, path, list(headers or []))
    if _rules_of(function_id, em.rules):
        return mqtt_event(function_id, document, em, topic)
    raise UsageError("the event is not JSON" if document is None else f"{function_id} takes no such event")


# --- the command -------------------------------------------------------------------------------

def _header(value: str) -> tuple[str, str]:
    name, sep, text = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME:VALUE")
    return name.strip(), text.strip()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(
        prog="devicegate invoke",
        description="Invoke one function of template.yaml once, as `sam local invoke` does but without Docker: "
                    "with exactly its own template environment, against the running local stack (or --fresh). "
                    "The handler's answer is printed on stdout (JSON); the function's log lines on stderr.",
        epilog="-e takes a Lambda event as it is (events/<vendor>/*.json), or a vendor's body "
               "(events/<vendor>/records/*.json): wrapped into the HTTP API event of the function's route "
               "(--path), or, for an MQTT function, made into the event by its topic rule (--topic). "
               "See docs/local.md.")
    parser.add_argument("function", metavar="FUNCTION", help="the function's logical id in template.yaml")
    parser.add_argument("-e", "--event", metavar="FILE",
                        help="the event or vendor body (a file, or - for stdin; default: an empty event {})")
    parser.add_argument("--fresh", action="store_true",
                        help="a fresh emulation built from template.yaml for this run, not the running stack")
    parser.add_argument("--path", help="the request path for a vendor body (default: the route with only {token})")
    parser.add_argument("--header", type=_header, action="append", default=[], metavar="NAME:VALUE",
                        help="a request header for a vendor body (repeatable)")
    parser.add_argument("--topic", help="the MQTT topic a vendor message was published on (MQTT functions)")
    return parser.parse_args(argv)


def _read_event(name: str | None) -> bytes:
    if name is None:
        return b"{}"
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read -e {name}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _function_output_on_stderr() -> Iterator[Any]:
    """The functions' processes inherit this one's stdout, where Lambda's runtime sends what a
    handler prints; here it goes to stderr, and the answer alone to stdout (yielded)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with os.fdopen(os.dup(saved), "w", encoding="utf-8") as answer:
            yield answer
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run(args: argparse.Namespace) -> int:
    from devicegate_local.functions import FunctionError, InvokeError

    raw = _read_event(args.event)
    with emulation(args.fresh) as em:
        if args.function not in em.specs:
            raise UsageError(f"no function {args.function!r} in template.yaml; one of: {', '.join(sorted(em.specs))}")
        event = lambda_event(args.function, raw, em, path=args.path, topic=args.topic, headers=args.header)
        with _function_output_on_stderr() as answer:
            try:
                result = em.invoker(args.function, event)
            except FunctionError as error:
                if error.trace:
                    print(error.trace.rstrip(), file=sys.stderr)
                print(f"devicegate invoke: {args.function} failed: {error.error_type}: {error.message}",
                      file=sys.stderr)
                return 1
            except InvokeError as error:
                print(f"devicegate invoke: {error}", file=sys.stderr)
                return 1
            json.dump(result, answer, ensure_ascii=False, indent=2)
            answer.write("\n")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from devicegate_local.resources import TemplateError

    # A broken template.yaml is the target failing too (its TemplateError names the file's fault).
    return at_the_edge("invoke", lambda: int(run(args)), local_hint=not args.fresh, target_errors=(TemplateError,))
