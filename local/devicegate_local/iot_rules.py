"""The template's AWS IoT topic rules, played by `devicegate local` for messages its broker gets.

Deployed, IoT Core runs each rule's `SELECT *, topic(2) AS accessKey, ... FROM 'upload/+/+/+'`
and invokes the rule's Lambda action asynchronously; a message a rule cannot deliver goes to its
error action. A rule gets the messages its FROM filter matches and, by Basic Ingest, those
published on `$aws/rules/<its name>/<topic>` (the Mosquitto bridge's way, bridge/). Here the same rules are read from template.yaml (so the local and the deployed path
cannot drift), with a parser for exactly the SQL the template uses: anything else fails the start
instead of being approximated. The event each SELECT builds goes to the same function through
the stack's Invoker, with Lambda's async retries, the function's OnFailure queue and the rule's S3
error action, each in the shape AWS uses (`devicegate redrive` reads them).
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import queue
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devicegate_local.resources import FunctionSpec, Resolver, TemplateError, merge_globals

log = logging.getLogger("devicegate.local")

SQL_VERSION = "2016-03-23"
TOPIC_RULE_TYPE = "AWS::IoT::TopicRule"
IOT_MAX_PAYLOAD_BYTES = 128 * 1024  # IoT Core refuses larger messages
# Lambda retries a failed async invocation after about 1 and then 2 more minutes; the local stack
# keeps the order and the count but waits seconds, so a developer sees the outcome.
LOCAL_RETRY_DELAYS_S = (1.0, 2.0)
# clientid() is the publisher's MQTT client id; a subscriber never learns it, so the local rules
# answer what IoT answers for messages that did not come over MQTT.
UNKNOWN_CLIENT_ID = "n/a"
# Basic Ingest: a message published on $aws/rules/<rule name>/<topic> goes to that one rule, past
# IoT Core's message broker (no messaging charge, nobody can subscribe to it). The rule sees
# <topic>: the prefix is not available to topic(n) (AWS IoT developer guide, "Reducing messaging
# costs with Basic Ingest"), so the same SELECT reads the same levels either way. The rule is
# chosen by its name, not by its FROM filter (a rule used only by Basic Ingest may leave FROM
# out): whoever publishes there must send it only topics its SELECT reads right.
BASIC_INGEST_PREFIX = "$aws/rules/"


# --------------------------------------------------------------------------- rule SQL


@dataclass(frozen=True)
class SelectItem:
    """One item of a rule's SELECT: `*`, or an expression (`topic`, `literal`, `timestamp`,
    `clientid`) with the name it is given."""

    kind: str
    name: str = ""
    argument: Any = None


@dataclass(frozen=True)
class RuleQuery:
    items: tuple[SelectItem, ...]
    topic_filter: str


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'[^']*')|(?P<number>\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[(),*])"
    r"|(?P<other>\S))"  # anything else reaches the parser, which says where it stopped
)
_NO_ARGUMENT_FUNCTIONS = {"timestamp", "clientid"}


def _tokens(text: str, where: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise TemplateError(f"{where}: cannot read {text[position:].strip()[:30]!r} (not emulated locally)")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Cursor:
    def __init__(self, tokens: list[tuple[str, str]], where: str) -> None:
        self.tokens = tokens
        self.index = 0
        self.where = where

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        kind, value = self.peek()
        if kind == "name" and value.upper() == word:
            self.index += 1
            return True
        return False

    def expect(self, kind: str, value: str | None = None) -> str:
        got_kind, got_value = self.take()
        if got_kind != kind or (value is not None and got_value != value):
            wanted = value or kind
            raise TemplateError(f"{self.where}: expected {wanted} but found {got_value or 'the end'!r}")
        return got_value

    def fail(self, problem: str) -> TemplateError:
        return TemplateError(f"{self.where}: {problem} (the local stack emulates only what template.yaml uses)")


def parse_rule_sql(sql: str, rule: str = "rule") -> RuleQuery:
    """`SELECT <items> FROM '<filter>'` of AWS IoT SQL 2016-03-23, limited to the items the
    template uses: `*`, `topic(n) AS x`, `'literal' AS x`, `timestamp() AS x`, `clientid() AS x`.
    Anything else (WHERE, other functions, nested fields) is a TemplateError naming the rule."""
    where = f"{rule} Sql"
    cursor = _Cursor(_tokens(sql, where), where)
    if not cursor.keyword("SELECT"):
        raise cursor.fail("a rule's Sql must start with SELECT")
    items: list[SelectItem] = []
    while True:
        items.append(_select_item(cursor))
        if cursor.peek() == ("punct", ","):
            cursor.take()
            continue
        break
    if not cursor.keyword("FROM"):
        raise cursor.fail(f"expected FROM after the SELECT items, found {cursor.peek()[1] or 'the end'!r}")
    kind, quoted = cursor.take()
    if kind != "string":
        raise cursor.fail("FROM needs a quoted topic filter, e.g. FROM 'upload/+/+/+'")
    topic_filter = quoted[1:-1]
    _check_topic_filter(topic_filter, where)
    if cursor.keyword("WHERE"):
        raise cursor.fail("WHERE clauses are not emulated")
    if cursor.peek()[0] != "end":
        raise cursor.fail(f"unexpected {cursor.peek()[1]!r} after FROM '{topic_filter}'")
    return RuleQuery(tuple(items), topic_filter)


def _select_item(cursor: _Cursor) -> SelectItem:
    kind, value = cursor.take()
    if (kind, value) == ("punct", "*"):
        return SelectItem("*")
    if kind == "string":
        item = SelectItem("literal", argument=value[1:-1])
    elif kind == "name" and cursor.peek() == ("punct", "("):
        function = value.lower()
        cursor.take()
        if function == "topic":
            if cursor.peek()[0] != "number":
                raise cursor.fail("topic() without a level is not emulated; use topic(n)")
            level = int(cursor.take()[1])
            if level < 1:
                raise cursor.fail("topic(n) counts levels from 1")
            item = SelectItem("topic", argument=level)
        elif function in _NO_ARGUMENT_FUNCTIONS:
            item = SelectItem(function)
        else:
            raise cursor.fail(f"function {value}() is not emulated")
        cursor.expect("punct", ")")
    else:
        raise cursor.fail(f"SELECT item starting {value!r} is not emulated (only *, topic(n), 'literal', "
                          "timestamp(), clientid())")
    if not cursor.keyword("AS"):
        raise cursor.fail(f"SELECT item {item.kind} needs AS <name>")
    name_kind, name = cursor.take()
    if name_kind != "name":
        raise cursor.fail(f"AS needs a plain field name, found {name!r}")
    return SelectItem(item.kind, name, item.argument)


def _check_topic_filter(topic_filter: str, where: str) -> None:
    levels = topic_filter.split("/")
    if not topic_filter:
        raise TemplateError(f"{where}: empty topic filter")
    for index, level in enumerate(levels):
        if level == "#" and index != len(levels) - 1:
            raise TemplateError(f"{where}: '#' must be the last level of {topic_filter!r}")
        if level not in ("+", "#") and ("+" in level or "#" in level):
            raise TemplateError(f"{where}: wildcards must fill a whole level in {topic_filter!r}")


def decode_document(payload: bytes) -> dict[str, Any] | None:
    """The message as a JSON object, or None: SELECT * with named items needs an object, so IoT
    cannot build a Lambda action's event from anything else."""
    return read_document(payload)[0]


def read_document(payload: bytes) -> tuple[dict[str, Any] | None, str]:
    """(the message as a JSON object, "") or (None, why the rule cannot build an event from it)."""
    try:
        document = json.loads(payload)
    except ValueError:  # also non-UTF-8 bytes
        return None, "the payload is not a JSON object"
    except RecursionError:
        # Deeper than the parser's recursion limit: no event can be built from it here, and a
        # function handed a document that deep would only fail further down.
        return None, "the payload is JSON nested too deeply to be read"
    if not isinstance(document, dict):
        return None, "the payload is not a JSON object"
    return document, ""


def build_output(query: RuleQuery, document: dict[str, Any], topic: str, now_ms: int,
                 client_id: str = UNKNOWN_CLIENT_ID) -> dict[str, Any]:
    """What the rule's SELECT makes of `document` published on `topic`: items in order, a later
    item overwriting an earlier field of the same name (as IoT does); topic(n) past the topic's
    last level is undefined in IoT, so the field is left out."""
    levels = topic.split("/")
    output: dict[str, Any] = {}
    for item in query.items:
        if item.kind == "*":
            output.update(document)
        elif item.kind == "topic":
            if item.argument <= len(levels):
                output[item.name] = levels[item.argument - 1]
        elif item.kind == "literal":
            output[item.name] = item.argument
        elif item.kind == "timestamp":
            output[item.name] = now_ms
        elif item.kind == "clientid":
            output[item.name] = client_id
    return output


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether an MQTT topic filter ("+" one level, "#" the rest, the parent included) matches `topic`."""
    levels = topic.split("/")
    for index, level in enumerate(topic_filter.split("/")):
        if level == "#":
            return True
        if index >= len(levels) or level not in ("+", levels[index]):
            return False
    return len(levels) == len(topic_filter.split("/"))


def basic_ingest_filter(rule_name: str) -> str:
    """The filter of a rule's Basic Ingest topics (it matches $aws/rules/<name> itself too)."""
    return f"{BASIC_INGEST_PREFIX}{rule_name}/#"


def rule_topic(rule_name: str, topic: str) -> tuple[str, bool]:
    """(the topic a rule sees for a message published on `topic`, whether it came by Basic Ingest)."""
    prefix = f"{BASIC_INGEST_PREFIX}{rule_name}"
    if topic == prefix:
        return "", True
    if topic.startswith(prefix + "/"):
        return topic[len(prefix) + 1:], True
    return topic, False


# --------------------------------------------------------------------------- error-action keys

_SUBSTITUTION = re.compile(r"\$\{([^}]*)\}")


def _substitution_value(expression: str, where: str, topic: str, now_ms: int, client_id: str,
                        new_uuid: Callable[[], str]) -> str:
    cursor = _Cursor(_tokens(expression, where), where)
    value = _substitution_call(cursor, expression, topic, now_ms, client_id, new_uuid)
    if cursor.peek()[0] != "end":
        raise cursor.fail(f"substitution ${{{expression}}} is not emulated")
    return value


def _substitution_call(cursor: _Cursor, expression: str, topic: str, now_ms: int, client_id: str,
                       new_uuid: Callable[[], str]) -> str:
    """One function call of a substitution: topic(), topic(n), timestamp() (ms), newuuid(),
    clientid(), or regexp_replace(<one of those>, '<pattern>', '<replacement>')."""
    kind, name = cursor.take()
    if kind != "name":
        raise cursor.fail(f"substitution ${{{expression}}} is not emulated")
    function = name.lower()
    cursor.expect("punct", "(")
    if function == "regexp_replace":
        subject = _substitution_call(cursor, expression, topic, now_ms, client_id, new_uuid)
        cursor.expect("punct", ",")
        pattern = cursor.expect("string")[1:-1]
        cursor.expect("punct", ",")
        replacement = cursor.expect("string")[1:-1]
        cursor.expect("punct", ")")
        # IoT's regular expressions are Java's; for a character class and a replacement without
        # group references (all the template uses) Python's re means the same.
        if "$" in replacement or "\\" in replacement:
            raise cursor.fail(f"substitution ${{{expression}}}: group references are not emulated")
        return re.sub(pattern, replacement, subject)
    level = int(cursor.take()[1]) if cursor.peek()[0] == "number" else None
    cursor.expect("punct", ")")
    if level is not None and function != "topic":
        raise cursor.fail(f"substitution ${{{expression}}} is not emulated")
    if function == "topic":
        if level is None:
            return topic
        levels = topic.split("/")
        return levels[level - 1] if 1 <= level <= len(levels) else ""
    if function == "timestamp":
        return str(now_ms)
    if function == "newuuid":
        return new_uuid()
    if function == "clientid":
        return client_id
    raise cursor.fail(f"substitution ${{{expression}}} is not emulated")


def substitute(template: str, *, topic: str, now_ms: int, client_id: str = UNKNOWN_CLIENT_ID,
               new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()), where: str = "ErrorAction") -> str:
    """An IoT substitution template (`quarantine/iot-errors/${topic()}/${timestamp()}-${newuuid()}.json`)
    filled in for one message: topic(), topic(n), timestamp() (ms), newuuid(), clientid(), and
    regexp_replace() of one of them."""
    return _SUBSTITUTION.sub(
        lambda match: _substitution_value(match.group(1), where, topic, now_ms, client_id, new_uuid), template
    )


def error_action_record(*, rule_name: str, topic: str, payload: bytes, failures: list[dict[str, str]],
                        client_id: str = UNKNOWN_CLIENT_ID) -> dict[str, Any]:
    """The message IoT hands a rule's error action: one per rule and message, every failed action
    in `failures`; `devicegate redrive --source iot-errors` reads topic and base64OriginalPayload."""
    return {
        "ruleName": rule_name,
        "topic": topic,
        "cloudwatchTraceId": str(uuid.uuid4()),
        "clientId": client_id,
        "base64OriginalPayload": base64.b64encode(payload).decode("ascii"),
        "failures": failures,
    }


def async_failure_record(*, request_id: str, function_arn: str, payload: Any, invoke_count: int,
                         error: BaseException) -> dict[str, Any]:
    """The invocation record Lambda sends to an OnFailure destination once an async event's
    retries are exhausted; `devicegate redrive --source ingest-queue` reads requestPayload."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        # The Python runtime's answer for an unhandled exception.
        "responsePayload": {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "requestId": request_id,
            "stackTrace": traceback.format_list(traceback.extract_tb(error.__traceback__)),
        },
    }


# --------------------------------------------------------------------------- rules from the template


@dataclass(frozen=True)
class LambdaTarget:
    function_arn: str
    function_id: str | None  # None: not a function of this template, so it cannot be invoked here


@dataclass(frozen=True)
class S3ErrorAction:
    bucket: str
    key: str


@dataclass(frozen=True)
class TopicRule:
    logical_id: str
    name: str  # the ruleName IoT reports
    query: RuleQuery
    targets: tuple[LambdaTarget, ...]
    error_action: S3ErrorAction | None


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """A function's EventInvokeConfig, with Lambda's defaults."""

    max_retries: int = 2
    on_failure_type: str | None = None
    on_failure_arn: str | None = None


def _unqualified(arn: str) -> str:
    # arn:aws:lambda:region:account:function:name[:qualifier]
    return ":".join(arn.split(":")[:7])


def topic_rules(resolver: Resolver, specs: list[FunctionSpec]) -> tuple[list[TopicRule], list[str]]:
    """(the enabled AWS::IoT::TopicRule resources of the template, the logical ids of disabled ones)."""
    by_arn = {spec.arn: spec.logical_id for spec in specs}
    rules: list[TopicRule] = []
    disabled: list[str] = []
    for logical_id, resource in resolver.resources.items():
        if (resource or {}).get("Type") != TOPIC_RULE_TYPE or not resolver.enabled(logical_id):
            continue
        properties = resolver.resolve(resource.get("Properties") or {})
        payload = properties.get("TopicRulePayload") or {}
        if str(payload.get("RuleDisabled", False)).lower() == "true":
            disabled.append(logical_id)
            continue
        version = str(payload.get("AwsIotSqlVersion", "2015-10-08"))
        if version != SQL_VERSION:
            raise TemplateError(f"{logical_id}: AwsIotSqlVersion {version} is not emulated; use {SQL_VERSION}")
        query = parse_rule_sql(str(payload.get("Sql", "")), logical_id)
        targets = []
        for index, action in enumerate(payload.get("Actions") or []):
            kinds = sorted(action or {})
            if kinds != ["Lambda"]:
                raise TemplateError(f"{logical_id}: action {index} ({', '.join(kinds)}) is not emulated; "
                                    "only Lambda actions are")
            arn = str(action["Lambda"].get("FunctionArn", ""))
            targets.append(LambdaTarget(arn, by_arn.get(_unqualified(arn))))
        rules.append(TopicRule(
            logical_id=logical_id,
            name=str(properties.get("RuleName") or logical_id),
            query=query,
            targets=tuple(targets),
            error_action=_error_action(logical_id, payload.get("ErrorAction")),
        ))
    return rules, disabled


def _error_action(logical_id: str, spec: Any) -> S3ErrorAction | None:
    if not spec:
        return None
    if sorted(spec) != ["S3"]:
        raise TemplateError(f"{logical_id}: ErrorAction {', '.join(sorted(spec))} is not emulated; only S3 is")
    action = S3ErrorAction(bucket=str(spec["S3"].get("BucketName", "")), key=str(spec["S3"].get("Key", "")))
    # Fail at start, not on the first failed message, if the key uses a substitution we do not know.
    substitute(action.key, topic="a/b", now_ms=0, where=f"{logical_id} ErrorAction Key")
    return action


def async_invoke_config(resolver: Resolver, function_id: str) -> AsyncInvokeConfig:
    """EventInvokeConfig of a function, Globals.Function merged in as SAM does."""
    shared = ((resolver.template.get("Globals") or {}).get("Function") or {}).get("EventInvokeConfig")
    own = ((resolver.resources.get(function_id) or {}).get("Properties") or {}).get("EventInvokeConfig")
    config = own if shared is None else shared if own is None else merge_globals(shared, own)
    config = resolver.resolve(config or {})
    on_failure = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
    return AsyncInvokeConfig(
        max_retries=int(config.get("MaximumRetryAttempts", 2)),
        on_failure_type=on_failure.get("Type"),
        on_failure_arn=on_failure.get("Destination"),
    )


# --------------------------------------------------------------------------- the rules engine


@dataclass
class Message:
    rule: TopicRule
    topic: str  # as the rule sees it: without a Basic Ingest prefix
    payload: bytes
    received_ms: int
    basic_ingest: bool = False


@dataclass
class _AsyncInvocation:
    rule: TopicRule
    target: LambdaTarget
    event: dict[str, Any]
    basic_ingest: bool = False
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: int = 0


_STOP = object()


class RuleEngine:
    """Plays the rules for messages the subscribers received, on one worker thread: paho's
    network thread only queues them (a handler can take seconds; blocking paho that long would
    stall its keep-alives and acknowledgements)."""

    def __init__(
        self,
        invoke: Callable[..., Any],
        s3: Any,
        sqs: Any,
        queue_url_for_arn: Callable[[str], str | None],
        async_configs: dict[str, AsyncInvokeConfig],
        retry_delays: tuple[float, ...] = LOCAL_RETRY_DELAYS_S,
        quiet: bool = False,
    ) -> None:
        self._invoke = invoke
        self._s3 = s3
        self._sqs = sqs
        self._queue_url_for_arn = queue_url_for_arn
        self._async_configs = async_configs
        self._retry_delays = retry_delays
        self._quiet = quiet
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._retries: list[tuple[float, int, _AsyncInvocation]] = []
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    # -- called from paho's threads

    def submit(self, message: Message) -> None:
        self._inbox.put(message)

    # -- lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-rules", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._thread is None:
            return
        self._inbox.put(_STOP)
        self._thread.join(timeout_s)
        if self._retries:
            log.warning("stopping with %d MQTT rule invocation(s) waiting for a retry; they are dropped",
                        len(self._retries))
        self._thread = None

    def _run(self) -> None:
        while True:
            wait = max(0.0, self._retries[0][0] - time.monotonic()) if self._retries else None
            try:
                item = self._inbox.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if item is not None:
                self._guarded(self.handle, item)
            while self._retries and self._retries[0][0] <= time.monotonic():
                self._guarded(self._attempt, heapq.heappop(self._retries)[2])

    def _guarded(self, step: Callable[[Any], None], item: Any) -> None:
        try:
            step(item)
        except Exception:  # the emulator itself failed (moto down...): say so, keep serving later messages
            log.error("MQTT rules: the local emulation failed on a message:\n%s", traceback.format_exc().rstrip())

    # -- what a rule does with one message

    def handle(self, message: Message) -> None:
        rule = message.rule
        if len(message.payload) > IOT_MAX_PAYLOAD_BYTES:
            log.warning("MQTT %s: %d bytes, over IoT Core's 128 KB message limit; IoT would refuse it, "
                        "not delivered", message.topic, len(message.payload))
            return
        document, problem = read_document(message.payload)
        if document is None:
            failures = [
                {"failedAction": "LambdaAction", "failedResource": target.function_arn,
                 "errorMessage": f"{problem}, so SELECT * cannot build the event "
                                 f"for the Lambda action. Message arrived on: {message.topic}"}
                for target in rule.targets
            ]
            if failures:
                self._run_error_action(message, failures)
            return
        event = build_output(rule.query, document, message.topic, message.received_ms)
        failures = []
        for target in rule.targets:
            if target.function_id is None:
                failures.append({"failedAction": "LambdaAction", "failedResource": target.function_arn,
                                 "errorMessage": "the function is not part of this template, so the local "
                                                 f"stack cannot invoke it. Message arrived on: {message.topic}"})
                continue
            # IoT's Lambda action is an asynchronous invoke: accepted now, retried by Lambda.
            self._attempt(_AsyncInvocation(rule, target, event, message.basic_ingest))
        if failures:
            self._run_error_action(message, failures)

    def _attempt(self, invocation: _AsyncInvocation) -> None:
        function_id = invocation.target.function_id or ""
        invocation.attempts += 1
        started = time.monotonic()
        try:
            result = self._invoke(function_id, invocation.event, request_id=invocation.request_id)
        except Exception as exc:  # any unhandled error is a function error to Lambda's async invoke
            self._after_failure(invocation, exc)
            return
        if not self._quiet:
            log.info("MQTT %s%s -> %s: %s %.0fms", invocation.rule.logical_id,
                     " (Basic Ingest)" if invocation.basic_ingest else "", function_id,
                     json.dumps(result, default=str), (time.monotonic() - started) * 1000)

    def _after_failure(self, invocation: _AsyncInvocation, error: Exception) -> None:
        function_id = invocation.target.function_id or ""
        config = self._async_configs.get(function_id, AsyncInvokeConfig())
        if invocation.attempts <= config.max_retries:
            delays = self._retry_delays or (0.0,)
            delay = delays[min(invocation.attempts, len(delays)) - 1]
            log.warning("MQTT %s -> %s failed (%s: %s); Lambda retries it (attempt %d of %d) in %gs",
                        invocation.rule.logical_id, function_id, type(error).__name__, error,
                        invocation.attempts + 1, config.max_retries + 1, delay)
            heapq.heappush(self._retries, (time.monotonic() + delay, next(self._sequence), invocation))
            return
        record = async_failure_record(request_id=invocation.request_id, function_arn=invocation.target.function_arn,
                                      payload=invocation.event, invoke_count=invocation.attempts, error=error)
        queue_url = (self._queue_url_for_arn(config.on_failure_arn)
                     if config.on_failure_type == "SQS" and config.on_failure_arn else None)
        if queue_url is None:
            log.error("MQTT %s -> %s failed %d times (%s: %s); no local OnFailure queue, the event is dropped",
                      invocation.rule.logical_id, function_id, invocation.attempts, type(error).__name__, error)
            return
        self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record, default=str))
        log.warning("MQTT %s -> %s failed %d times (%s: %s); the event went to its OnFailure queue",
                    invocation.rule.logical_id, function_id, invocation.attempts, type(error).__name__, error)

    def _run_error_action(self, message: Message, failures: list[dict[str, str]]) -> None:
        rule = message.rule
        action = rule.error_action
        if action is None:
            log.error("MQTT %s: %s; the rule has no ErrorAction, the message is dropped",
                      rule.logical_id, failures[0]["errorMessage"])
            return
        key = substitute(action.key, topic=message.topic, now_ms=message.received_ms)
        body = error_action_record(rule_name=rule.name, topic=message.topic, payload=message.payload,
                                   failures=failures)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.put_object(Bucket=action.bucket, Key=key, Body=json.dumps(body).encode(),
                                ContentType="application/json")
        except (BotoCoreError, ClientError) as exc:  # IoT logs a failed error action and drops the message
            log.error("MQTT %s: the error action could not write s3://%s/%s (%s); the message is dropped",
                      rule.logical_id, action.bucket, key, exc)
            return
        log.warning("MQTT %s: %s -> s3://%s/%s", rule.logical_id, failures[0]["errorMessage"].split(". ")[0],
                    action.bucket, key)
