"""The MQTT half of `devicegate local` (local_mqtt.py, local_iot_rules.py): the topic-rule SQL it
understands, the events it builds, Lambda's async retries and the rule's error action, the iot-data
Publish shim, the broker."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devicegate.ingest.iot import event_from_topic
from devicegate_local import mqtt as local_mqtt
from devicegate_local import stack as local_stack
from devicegate_local.cfn_template import load_template
from devicegate_local.iot_rules import (
    IOT_MAX_PAYLOAD_BYTES,
    AsyncInvokeConfig,
    LambdaTarget,
    Message,
    RuleEngine,
    RuleQuery,
    S3ErrorAction,
    SelectItem,
    TopicRule,
    async_invoke_config,
    basic_ingest_filter,
    build_output,
    decode_document,
    error_action_record,
    parse_rule_sql,
    rule_topic,
    substitute,
    topic_matches,
    topic_rules,
)
from devicegate_local.mqtt import (
    IOT_DATA_ENDPOINT_VARIABLE,
    Broker,
    BrokerError,
    IotDataServer,
    RuleSubscriber,
    find_mosquitto,
)
from devicegate_local.resources import Resolver, TemplateError, create_resources, function_specs
from tests.support import ROOT, load_event, load_record

TEMPLATE = ROOT / "template.yaml"
NOW_MS = 1738912514000
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:devicegate-local-JointechMqttFunction"
FAILURE_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:failures"


def template_sql(rule: str) -> str:
    return load_template(TEMPLATE)["Resources"][rule]["Properties"]["TopicRulePayload"]["Sql"]


# --------------------------------------------------------------------------- SQL


def test_the_template_device_rule_is_understood():
    # When the device rule's Sql is parsed
    query = parse_rule_sql(template_sql("JointechMqttRule"), "JointechMqttRule")
    # Then it takes the whole message plus three topic levels, from the four-level upload topics
    assert query == RuleQuery(
        (SelectItem("*"), SelectItem("topic", "accessKey", 2), SelectItem("topic", "deviceNum", 3),
         SelectItem("topic", "kind", 4)),
        "upload/+/+/+",
    )


def test_the_template_sublock_rule_is_understood():
    query = parse_rule_sql(template_sql("JointechSublockRule"), "JointechSublockRule")
    assert query.topic_filter == "upload/+/+/+/sublock"
    assert query.items[-1] == SelectItem("literal", "kind", "sublock")
    assert SelectItem("topic", "subLockNum", 4) in query.items


def test_every_item_kind_parses_whatever_the_case_and_spacing():
    # Given one item of each kind the local rules support, keywords in mixed case
    sql = "select *, TOPIC( 3 ) as device, 'x,y' As tag, timestamp() AS at, clientid() AS who FROM '#'"
    # Then each becomes its item, in order
    assert parse_rule_sql(sql) == RuleQuery(
        (SelectItem("*"), SelectItem("topic", "device", 3), SelectItem("literal", "tag", "x,y"),
         SelectItem("timestamp", "at"), SelectItem("clientid", "who")),
        "#",
    )


@pytest.mark.parametrize("sql, problem", [
    ("SELECT * FROM 'upload/+/+/+' WHERE kind = 'alarm'", "WHERE"),
    ("SELECT *, topic() AS t FROM 'a/b'", "topic(n)"),
    ("SELECT *, topic(0) AS t FROM 'a/b'", "from 1"),
    ("SELECT *, upper(kind) AS k FROM 'a/b'", "upper"),
    ("SELECT *, topic(2) FROM 'a/b'", "AS"),
    ("SELECT state.reported AS s FROM 'a/b'", "'state'"),
    ("SELECT *, \"x\" AS y FROM 'a/b'", "not emulated"),
    ("SELECT *, topic(2) AS a.b FROM 'a/b'", "'.'"),
    ("SELECT *, 1 AS one FROM 'a/b'", "not emulated"),
    ("SELECT * FROM 'a/#/b'", "last level"),
    ("SELECT * FROM 'a/b+'", "whole level"),
    ("SELECT * FROM a", "quoted topic filter"),
    ("SELECT *", "FROM"),
    ("DELETE FROM 'a'", "SELECT"),
    ("SELECT * FROM 'a' LIMIT 1", "LIMIT"),
])
def test_what_the_local_rules_cannot_play_fails_the_start_naming_the_rule(sql, problem):
    # When a rule's Sql uses something the emulation does not support
    with pytest.raises(TemplateError) as refused:
        parse_rule_sql(sql, "SomeRule")
    # Then the error names the rule and the offending part instead of approximating it
    assert "SomeRule" in str(refused.value) and problem in str(refused.value)


# --------------------------------------------------------------------------- the rule's output


@pytest.mark.parametrize("name, topic", [
    ("mqtt-location", "upload/ak-demo/8052400203/location"),
    ("mqtt-alarm", "upload/ak-demo/8454601010/alarm"),
    ("mqtt-event", "upload/ak-demo/8454601010/event"),
    ("mqtt-cmd-success", "upload/ak-demo/794308010642/cmd"),
    ("mqtt-sublock", "upload/ak-demo/8052400203/E0171E0366/sublock"),
])
def test_output_is_the_sample_event_the_function_is_tested_with(name, topic):
    # Given a documented record published on its topic, and the rule whose filter takes it
    rule = "JointechSublockRule" if topic.endswith("/sublock") else "JointechMqttRule"
    query = parse_rule_sql(template_sql(rule), rule)
    # When the local rule builds the Lambda event
    event = build_output(query, load_record("jointech", name), topic, NOW_MS)
    # Then it is exactly the sample rule event (events/jointech/iot-*.json) and what replay rebuilds
    assert event == load_event(f"jointech/iot-{name}.json")
    assert event == event_from_topic(topic, load_record("jointech", name))
    # And a record that failed on its Basic Ingest topic replays the same
    assert event == event_from_topic(f"$aws/rules/devicegate_jointech_upload/{topic}", load_record("jointech", name))


@pytest.mark.parametrize("name, topic", [
    ("mqtt-location", "upload/ak-demo/8052400203/location"),
    ("mqtt-sublock", "upload/ak-demo/8052400203/E0171E0366/sublock"),
])
def test_by_basic_ingest_a_rule_reads_the_same_levels(name, topic):
    # Given a record published by Basic Ingest, as the Mosquitto bridge does, on
    # $aws/rules/<the rule's name>/<its topic>
    rule = "JointechSublockRule" if topic.endswith("/sublock") else "JointechMqttRule"
    rule_name = f"devicegate_local_{rule}"
    seen, basic_ingest = rule_topic(rule_name, f"$aws/rules/{rule_name}/{topic}")
    # When the local rule builds the Lambda event from it
    event = build_output(parse_rule_sql(template_sql(rule), rule), load_record("jointech", name), seen, NOW_MS)
    # Then the rule saw the topic without the prefix (topic(n) does not count it, as in IoT Core),
    # so the event is the sample rule event, as for the plain topic
    assert (seen, basic_ingest) == (topic, True)
    assert event == load_event(f"jointech/iot-{name}.json")


def test_only_a_rules_own_basic_ingest_topics_are_its_own():
    # A plain topic is seen as it is; another rule's Basic Ingest topic is not this rule's
    assert rule_topic("r_upload", "upload/ak/d/location") == ("upload/ak/d/location", False)
    assert rule_topic("r_upload", "$aws/rules/r_upload_2/upload/ak/d/location")[1] is False
    # The rule's prefix alone is a message with an empty topic (IoT Core takes it; topic(n) is undefined)
    assert rule_topic("r_upload", "$aws/rules/r_upload") == ("", True)
    # And the filter a subscriber uses matches exactly those, never a plain topic
    assert basic_ingest_filter("r_upload") == "$aws/rules/r_upload/#"
    assert topic_matches("$aws/rules/r_upload/#", "$aws/rules/r_upload")
    assert topic_matches("$aws/rules/r_upload/#", "$aws/rules/r_upload/upload/ak/d/location")
    assert not topic_matches("$aws/rules/r_upload/#", "$aws/rules/r_upload_2/upload/ak/d/location")
    assert not topic_matches("upload/+/+/+", "upload/ak/d/e/sublock")


def test_later_items_win_and_missing_topic_levels_are_left_out():
    # Given a message that carries a field a SELECT item also names
    query = parse_rule_sql("SELECT 'first' AS kind, *, topic(2) AS accessKey, topic(9) AS deep, "
                           "timestamp() AS at, clientid() AS who FROM 'upload/#'")
    output = build_output(query, {"accessKey": "from-payload", "kind": "from-payload"}, "upload/ak", NOW_MS)
    # Then the later item overwrites the earlier one, as in IoT, and topic(9) of a two-level topic is absent
    assert output == {"kind": "from-payload", "accessKey": "ak", "at": NOW_MS, "who": "n/a"}


@pytest.mark.parametrize("payload, expected", [
    (b'{"a": 1}', {"a": 1}),
    (b"[1, 2]", None),
    (b'"text"', None),
    (b"(794308010642,1,001,BASE,1)", None),
    (b"\xff\xfe\x00", None),
    (b"[" * 20000 + b"]" * 20000, None),
])
def test_only_json_objects_make_an_event(payload, expected):
    assert decode_document(payload) == expected


# --------------------------------------------------------------------------- error-action keys


def test_error_action_key_substitutions():
    # Given the template's error-action key
    key = load_template(TEMPLATE)["Resources"]["JointechMqttRule"]["Properties"]["TopicRulePayload"][
        "ErrorAction"]["S3"]["Key"]
    # When it is filled in for one message
    filled = substitute(key, topic="upload/ak/8052400203/location", now_ms=NOW_MS, new_uuid=lambda: "u-1")
    # Then the topic (as one segment), the time in ms and the uuid are in place
    assert filled == f"quarantine/iot-errors/jointech/upload_ak_8052400203_location/{NOW_MS}-u-1.json"
    assert substitute("${topic(3)}/${clientid()}", topic="a/b/c", now_ms=0) == "c/n/a"


@pytest.mark.parametrize("topic", ["upload/ak/../location", "upload/./../..", "..", "$aws/rules/r/../x", "a//b"])
def test_no_topic_makes_an_error_key_segment_of_dots_or_nothing(topic):
    # Given the template's error-action key and a topic whose levels are dots or empty
    key = load_template(TEMPLATE)["Resources"]["JointechSublockRule"]["Properties"]["TopicRulePayload"][
        "ErrorAction"]["S3"]["Key"]
    # When it is filled in
    filled = substitute(key, topic=topic, now_ms=NOW_MS, new_uuid=lambda: "u-1")
    # Then every segment of the key is a name, none a path step a tool would resolve
    segments = filled.split("/")
    assert segments[:3] == ["quarantine", "iot-errors", "jointech"] and len(segments) == 5, filled
    assert all(segment.strip(".") for segment in segments), filled


@pytest.mark.parametrize("key", ["x/${principal()}", "x/${topic(2) + 1}", "x/${timestamp(3)}",
                                 "x/${regexp_replace(topic(), '(a)', '$1')}", "x/${regexp_replace(topic(), 'a')}"])
def test_unknown_substitutions_are_refused(key):
    with pytest.raises(TemplateError):
        substitute(key, topic="a/b", now_ms=0)


# --------------------------------------------------------------------------- rules from the template


@pytest.fixture
def resolved(aws_env):
    """The template resolved against moto, as `devicegate local` resolves it."""
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        resolver = Resolver(load_template(TEMPLATE))
        created = create_resources(resolver, session, token="dev-token")
        yield resolver, function_specs(resolver, ROOT), created


def test_rules_are_read_from_the_template(resolved):
    resolver, specs, created = resolved
    # When the topic rules are read
    rules, disabled = topic_rules(resolver, specs)
    # Then both Jointech rules invoke the local MQTT function and park errors in the payload bucket
    assert [rule.logical_id for rule in rules] == ["JointechMqttRule", "JointechSublockRule"] and disabled == []
    for rule in rules:
        assert [t.function_id for t in rule.targets] == ["JointechMqttFunction"]
        assert rule.error_action.bucket == created.buckets["PayloadBucket"]
        assert rule.error_action.key.startswith("quarantine/iot-errors/jointech/${regexp_replace(topic(), ")
    # And the function's async settings are the template's
    config = async_invoke_config(resolver, "JointechMqttFunction")
    assert config.max_retries == 2 and config.on_failure_type == "SQS"
    assert created.queue_url_for_arn(config.on_failure_arn) == created.queues["IngestFailureQueue"]


def test_rule_actions_the_stack_cannot_play_fail_the_start(resolved):
    resolver, specs, _ = resolved
    payload = resolver.resources["JointechMqttRule"]["Properties"]["TopicRulePayload"]
    payload["Actions"].append({"Republish": {"Topic": "x", "RoleArn": "r"}})
    with pytest.raises(TemplateError, match="JointechMqttRule: action 1 .*Republish"):
        topic_rules(resolver, specs)


def test_a_disabled_rule_is_not_played(resolved):
    resolver, specs, _ = resolved
    resolver.resources["JointechSublockRule"]["Properties"]["TopicRulePayload"]["RuleDisabled"] = True
    rules, disabled = topic_rules(resolver, specs)
    assert [rule.logical_id for rule in rules] == ["JointechMqttRule"] and disabled == ["JointechSublockRule"]


# --------------------------------------------------------------------------- the rules engine


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:  # noqa: N803 - boto3's names
        self.objects[(Bucket, Key)] = Body


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:  # noqa: N803 - boto3's names
        self.sent.append((QueueUrl, json.loads(MessageBody)))


class FlakyFunction:
    """Fails its first `failures` invocations, like a function whose storage is down."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    def __call__(self, function_id: str, event: dict[str, Any], request_id: str | None = None) -> Any:
        self.calls.append((function_id, event, request_id))
        if len(self.calls) <= self.failures:
            raise RuntimeError("storage unavailable")
        return {"outcome": "accepted"}


RULE = TopicRule(
    logical_id="JointechMqttRule",
    name="JointechMqttRule",
    query=parse_rule_sql("SELECT *, topic(3) AS deviceNum, topic(4) AS kind FROM 'upload/+/+/+'"),
    targets=(LambdaTarget(FUNCTION_ARN, "JointechMqttFunction"),),
    error_action=S3ErrorAction("bucket", "quarantine/iot-errors/${topic()}/${timestamp()}-${newuuid()}.json"),
)
TOPIC = "upload/ak/8052400203/location"


def engine_with(function: FlakyFunction, retries: int = 2) -> tuple[RuleEngine, FakeS3, FakeSqs]:
    s3, sqs = FakeS3(), FakeSqs()
    engine = RuleEngine(
        function, s3, sqs, {FAILURE_QUEUE_ARN: "http://queue/failures"}.get,
        {"JointechMqttFunction": AsyncInvokeConfig(retries, "SQS", FAILURE_QUEUE_ARN)},
        retry_delays=(0.0, 0.0), quiet=True,
    )
    return engine, s3, sqs


def run_until_idle(engine: RuleEngine, message: Message, wait_s: float = 5.0) -> None:
    engine.start()
    engine.submit(message)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and (engine._retries or not engine._inbox.empty()):
        time.sleep(0.01)
    time.sleep(0.05)
    engine.stop()


def test_a_failing_function_is_retried_and_then_parked_in_its_failure_queue():
    # Given a function that keeps failing, with MaximumRetryAttempts 2 and an SQS OnFailure queue
    function = FlakyFunction(failures=99)
    engine, s3, sqs = engine_with(function)
    # When a message reaches the rule (through the worker thread, as from paho)
    run_until_idle(engine, Message(RULE, TOPIC, b'{"assetId": "8052400203"}', NOW_MS))
    # Then Lambda's three attempts ran with one request id, and the event went to the queue in
    # the documented destination record
    assert len(function.calls) == 3 and len({call[2] for call in function.calls}) == 1
    [(queue_url, record)] = sqs.sent
    assert queue_url == "http://queue/failures"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["requestId"] == function.calls[0][2]
    assert record["requestContext"]["functionArn"].startswith(FUNCTION_ARN)
    assert record["requestPayload"] == {"assetId": "8052400203", "deviceNum": "8052400203", "kind": "location"}
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responseContext"]["functionError"] == "Unhandled"
    # And nothing went to the error action: IoT's asynchronous invoke itself succeeded
    assert s3.objects == {}


def test_a_retry_that_succeeds_parks_nothing():
    function = FlakyFunction(failures=1)
    engine, s3, sqs = engine_with(function)
    run_until_idle(engine, Message(RULE, TOPIC, b'{"assetId": "8052400203"}', NOW_MS))
    assert len(function.calls) == 2 and sqs.sent == [] and s3.objects == {}


def test_a_payload_that_is_not_json_goes_to_the_error_action_as_redrive_reads_it():
    # Given a message that is not a JSON object
    function = FlakyFunction(failures=0)
    engine, s3, _ = engine_with(function)
    payload = b"(794308010642,1,001,BASE,1)"
    # When the rule handles it
    engine.handle(Message(RULE, TOPIC, payload, NOW_MS))
    # Then the function is not invoked and the error action wrote IoT's error record under the key
    assert function.calls == []
    [((bucket, key), body)] = s3.objects.items()
    assert bucket == "bucket" and key.startswith(f"quarantine/iot-errors/{TOPIC}/{NOW_MS}-") and key.endswith(".json")
    record = json.loads(body)
    assert record["ruleName"] == "JointechMqttRule" and record["topic"] == TOPIC
    assert base64.b64decode(record["base64OriginalPayload"]) == payload
    [failure] = record["failures"]
    assert failure["failedAction"] == "LambdaAction" and failure["failedResource"] == FUNCTION_ARN


DEEP_ARRAY = b"[" * 20000 + b"]" * 20000
DEEP_OBJECT = b'{"a":' * 20000 + b"1" + b"}" * 20000  # about 100 KB: under IoT's message limit


@pytest.mark.parametrize("payload, problem", [
    (DEEP_ARRAY, "nested too deeply"),
    (DEEP_OBJECT, "nested too deeply"),
    (b'{"assetId": "\xff\xfe"}', "not a JSON object"),
], ids=["deep-array", "deep-object", "not-utf8"])
def test_a_payload_the_rule_cannot_read_goes_to_the_error_action_and_the_worker_carries_on(payload, problem):
    # Given the worker thread, as paho's messages reach it
    function = FlakyFunction(failures=0)
    engine, s3, _ = engine_with(function)
    engine.start()
    # When a payload no event can be built from arrives, then an ordinary one
    engine.submit(Message(RULE, TOPIC, payload, NOW_MS))
    engine.submit(Message(RULE, TOPIC, b'{"assetId": "8052400203"}', NOW_MS))
    assert wait_until(lambda: len(function.calls) == 1)
    alive = engine._thread.is_alive()
    engine.stop()
    # Then the first is in the error action in IoT's format, saying why, and the second was delivered
    [body] = s3.objects.values()
    record = json.loads(body)
    assert base64.b64decode(record["base64OriginalPayload"]) == payload and record["topic"] == TOPIC
    assert problem in record["failures"][0]["errorMessage"]
    assert function.calls[0][1]["deviceNum"] == "8052400203" and alive


def test_no_payload_stops_the_worker():
    # Given every kind of payload a device could send that the rule cannot take
    function = FlakyFunction(failures=0)
    engine, s3, _ = engine_with(function)
    engine.start()
    for payload in (DEEP_ARRAY, DEEP_OBJECT, b"\xff" * 64, b"x" * (IOT_MAX_PAYLOAD_BYTES + 1), b"", b"null"):
        engine.submit(Message(RULE, TOPIC, payload, NOW_MS))
    # When an ordinary message comes after them
    engine.submit(Message(RULE, TOPIC, b'{"n": 1}', NOW_MS))
    # Then it is still delivered: the player thread lived through them all
    assert wait_until(lambda: len(function.calls) == 1)
    assert engine._thread.is_alive()
    engine.stop()
    # And all but the oversized one (IoT Core refuses those at the broker) are in the error action
    assert len(s3.objects) == 5


def test_a_function_outside_the_template_cannot_be_invoked_so_the_error_action_runs():
    function = FlakyFunction(failures=0)
    engine, s3, _ = engine_with(function)
    elsewhere = "arn:aws:lambda:us-east-1:999999999999:function:other"
    rule = TopicRule(RULE.logical_id, RULE.name, RULE.query, (LambdaTarget(elsewhere, None),), RULE.error_action)
    engine.handle(Message(rule, TOPIC, b'{"assetId": "8052400203"}', NOW_MS))
    [body] = s3.objects.values()
    assert json.loads(body)["failures"][0]["failedResource"] == elsewhere and function.calls == []


def test_the_worker_keeps_serving_when_the_emulation_itself_fails():
    # Given a failure queue that cannot be written (moto gone) and a function that always fails
    function = FlakyFunction(failures=99)
    engine, _, sqs = engine_with(function, retries=0)

    def broken(**_: Any) -> None:
        raise ConnectionError("moto is gone")

    sqs.send_message = broken
    # When two messages arrive one after the other
    engine.start()
    engine.submit(Message(RULE, TOPIC, b'{"n": 1}', NOW_MS))
    engine.submit(Message(RULE, TOPIC, b'{"n": 2}', NOW_MS))
    assert wait_until(lambda: len(function.calls) == 2)
    engine.stop()
    # Then the second one was still handled: the worker thread did not die with the first
    assert [call[1]["n"] for call in function.calls] == [1, 2]


def wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_error_record_shape():
    record = error_action_record(rule_name="R", topic="a/b", payload=b"\x00\x01", failures=[])
    assert set(record) == {"ruleName", "topic", "cloudwatchTraceId", "clientId", "base64OriginalPayload", "failures"}


# --------------------------------------------------------------------------- iot-data Publish shim


@pytest.fixture
def iot_data():
    published: list[tuple[str, bytes, int, bool]] = []
    server = IotDataServer("127.0.0.1", 0, lambda *args: published.append(args), quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, published
    server.shutdown()
    server.server_close()


def test_botocore_iot_data_publish_reaches_the_broker_through_the_shim(iot_data, monkeypatch):
    server, published = iot_data
    # Given botocore pointed at the shim only through the per-service variable the stack sets
    # (AWS_ENDPOINT_URL would send every other service to moto)
    monkeypatch.setenv(IOT_DATA_ENDPOINT_VARIABLE, server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    client = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                           region_name="us-east-1").client("iot-data")
    # When a command is published the way the commands function does it
    answer = client.publish(topic="download/ak/794308010642/cmd", qos=1, payload=b"(794308010642,1,001,BASE,1)")
    # Then it was answered like IoT and handed to the broker on the decoded topic with its QoS
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert published == [("download/ak/794308010642/cmd", b"(794308010642,1,001,BASE,1)", 1, False)]


@pytest.mark.parametrize("path", ["/topics/a%2Fb?qos=2", "/topics/a%2F%2B?qos=1"])
def test_the_shim_refuses_what_iot_refuses(iot_data, path):
    server, published = iot_data
    request = urllib.request.Request(server.endpoint + path, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400 and refused.value.headers["x-amzn-ErrorType"] == "InvalidRequestException"
    assert published == []


# --------------------------------------------------------------------------- the broker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_missing_mosquitto_names_the_package_to_install(tmp_path, monkeypatch):
    # Given neither PATH nor the sbin folders hold mosquitto
    monkeypatch.setattr(local_mqtt, "_MOSQUITTO_DIRS", (str(tmp_path),))
    monkeypatch.setenv("PATH", str(tmp_path))
    # Then looking for it says which Debian package to install, and how to run without it
    with pytest.raises(BrokerError, match=r"apt-get install mosquitto.*--no-mqtt"):
        find_mosquitto()
    with pytest.raises(BrokerError, match="no executable mosquitto"):
        find_mosquitto(str(tmp_path / "mosquitto"))


def test_local_stack_refuses_to_start_without_mosquitto(monkeypatch, capsys):
    # Given a machine without the broker
    def missing() -> str:
        raise BrokerError("the MQTT broker mosquitto is not installed: sudo apt-get install mosquitto")

    monkeypatch.setattr(local_stack, "find_mosquitto", missing)
    # When the local stack is started
    code = local_stack.main_local(["--template", str(TEMPLATE), "--moto-port", str(_free_port()),
                                   "--http-port", str(_free_port()), "--mqtt-port", str(_free_port())])
    # Then it stops before starting anything, saying what to install
    assert code == 1
    assert "apt-get install mosquitto" in capsys.readouterr().err


def test_ports_must_differ():
    with pytest.raises(local_stack.StartupError, match="--mqtt-port"):
        local_stack._check_ports("127.0.0.1", 5000, 3000, 5000)


needs_mosquitto = pytest.mark.skipif(not any(Path(d, "mosquitto").exists() for d in ("/usr/sbin", "/usr/bin",
                                                                                     "/usr/local/sbin")),
                                     reason="mosquitto is not installed (apt-get install mosquitto)")


@needs_mosquitto
def test_broker_starts_on_its_port_and_leaves_nothing_behind():
    # Given a free port
    port = _free_port()
    broker = Broker("127.0.0.1", port)
    # When the broker is started and stopped
    broker.start()
    try:
        folder = broker.log_path.parent
        config = (folder / "mosquitto.conf").read_text()
        # Then it listened on loopback only, anonymously, without persistence
        assert f"listener {port} 127.0.0.1" in config and "allow_anonymous true" in config
        assert "persistence false" in config
        assert broker.running
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        broker.stop()
    # And afterwards neither the process, the port nor the temp dir remain
    assert not broker.running and not folder.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


@needs_mosquitto
def test_a_busy_port_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        broker = Broker("127.0.0.1", port)
        with pytest.raises(BrokerError, match=f"port {port} .*already in use.*--mqtt-port"):
            broker.start()
        assert not broker.running


class RecordingEngine:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def submit(self, message: Message) -> None:
        self.messages.append(message)


@needs_mosquitto
def test_a_rule_gets_its_topics_and_its_basic_ingest_topics_once_each():
    # Given the broker and the upload rule's subscriber
    import paho.mqtt.publish as publish

    port = _free_port()
    broker = Broker("127.0.0.1", port)
    broker.start()
    rule = TopicRule("JointechMqttRule", "dg_jointech_upload", RULE.query, RULE.targets, RULE.error_action)
    engine = RecordingEngine()
    subscriber = RuleSubscriber(rule, "127.0.0.1", port, engine)
    try:
        subscriber.start()
        # When records are published on a plain topic, on the rule's Basic Ingest topic, on
        # another rule's, and a sub-lock topic by Basic Ingest to this rule
        publish.multiple([
            {"topic": "upload/ak/8052400203/location", "payload": b"plain", "qos": 1},
            {"topic": "$aws/rules/dg_jointech_upload/upload/ak/8052400203/location", "payload": b"basic", "qos": 1},
            {"topic": "$aws/rules/dg_jointech_sublock/upload/ak/8052400203/E01/sublock", "payload": b"other", "qos": 1},
            {"topic": "$aws/rules/dg_jointech_upload/upload/ak/8052400203/E01/sublock", "payload": b"named", "qos": 1},
            {"topic": "upload/ak/marker/location", "payload": b"marker", "qos": 1},
        ], hostname="127.0.0.1", port=port)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(m.payload == b"marker" for m in engine.messages):
            time.sleep(0.02)
        time.sleep(0.2)
    finally:
        subscriber.stop()
        broker.stop()
    # Then the rule got its plain and its Basic Ingest message once each, both seen on the plain
    # topic; not the other rule's; and the sub-lock topic named for it too: IoT Core hands a Basic
    # Ingest message to the rule it names, whatever its FROM filter (the bridge must not send it)
    got = [(m.payload, m.topic, m.basic_ingest) for m in engine.messages]
    assert got == [
        (b"plain", "upload/ak/8052400203/location", False),
        (b"basic", "upload/ak/8052400203/location", True),
        (b"named", "upload/ak/8052400203/E01/sublock", True),
        (b"marker", "upload/ak/marker/location", False),
    ]


def test_the_banner_shows_each_rules_basic_ingest_topics():
    # Given the local MQTT side (not started) with the template's two rules under their local names
    template = load_template(TEMPLATE)
    rules = [TopicRule(rule_id, Resolver(template).resolve(template["Resources"][rule_id]["Properties"]["RuleName"]),
                       parse_rule_sql(template_sql(rule_id), rule_id), RULE.targets, None)
             for rule_id in ("JointechMqttRule", "JointechSublockRule")]
    mqtt = local_mqtt.LocalMqtt("127.0.0.1", 1883, 0, rules, RecordingEngine())
    # Then the banner names both filters of each rule and a Basic Ingest example for the upload rule
    lines = "\n".join(mqtt.banner_lines())
    assert "'upload/+/+/+', Basic Ingest '$aws/rules/devicegate_local_jointech_upload/#'" in lines
    assert "'upload/+/+/+/sublock', Basic Ingest '$aws/rules/devicegate_local_jointech_sublock/#'" in lines
    assert "-t '$aws/rules/devicegate_local_jointech_upload/upload/ak-demo/8052400203/location'" in lines
