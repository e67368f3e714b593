"""End to end over MQTT: paho → the stack's mosquitto → the template's IoT topic rules (played
locally, on their topics and by Basic Ingest as the Mosquitto bridge publishes) → the MQTT
function → DynamoDB → stream → outbox → SQS; and the iot-data Publish stand-in → mosquitto → a
subscriber, the way device commands go down.
"""

from __future__ import annotations

import base64
import json
import queue
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.e2e.test_local_stack import device_events, receive_messages
from tests.support import EVENTS

pytestmark = pytest.mark.e2e
mqtt = pytest.importorskip("paho.mqtt.client")

ACCESS_KEY = "ak-e2e"
RECORDS = sorted((EVENTS / "jointech" / "records").glob("mqtt-*.json"))
ARRIVAL_TIMEOUT_S = 20
DRAIN_S = 3  # keep reading the queue this long after the expected messages came, to catch a duplicate


def topic_of(name: str, record: dict[str, Any]) -> tuple[str, str]:
    """(topic, kind) a Jointech record is published on: upload/{accessKey}/{deviceNum}/{kind}, or
    upload/{accessKey}/{deviceNum}/{subLockNum}/sublock for a slave lock."""
    if name == "mqtt-sublock":
        return f"upload/{ACCESS_KEY}/{record['assetId']}/{record['subAssetID']}/sublock", "sublock"
    kind = name.split("-")[1]  # mqtt-location, mqtt-cmd-not-online...
    return f"upload/{ACCESS_KEY}/{record['assetId']}/{kind}", kind


class Client:
    """A paho client on the stack's broker, connected and looping."""

    def __init__(self, port: int) -> None:
        self.received: queue.Queue[Any] = queue.Queue()
        self._subscribed: queue.Queue[int] = queue.Queue()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-{uuid.uuid4().hex[:8]}")
        self._client.on_message = lambda client, userdata, message: self.received.put(message)
        self._client.on_subscribe = lambda client, userdata, mid, codes, properties: self._subscribed.put(mid)
        self._client.connect("127.0.0.1", port, keepalive=30)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self._client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"the broker did not acknowledge {topic}"

    def subscribe(self, topic: str) -> None:
        _, mid = self._client.subscribe(topic, qos=1)
        assert self._subscribed.get(timeout=10) == mid

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture(scope="module")
def client(local_stack) -> Iterator[Client]:
    connected = Client(local_stack.mqtt_port)
    yield connected
    connected.close()


def mqtt_items(stack, device: str, kind: str) -> list[dict[str, Any]]:
    return [item for item in device_events(stack, device)
            if item["kind"]["S"] == kind and item["transport"]["S"] == "mqtt"]


def wait_for(condition, timeout_s: float = ARRIVAL_TIMEOUT_S, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every_s)


def drain(stack, wanted: set[str]) -> Counter:
    """Queue messages by CloudEvent id: until every wanted id came, then DRAIN_S more."""
    seen: Counter = Counter()
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while not wanted <= set(seen) and time.monotonic() < deadline:
        seen.update(message["id"] for message in receive_messages(stack, 1))
    seen.update(message["id"] for message in receive_messages(stack, DRAIN_S))
    return seen


@pytest.fixture(scope="module")
def delivered(local_stack, client):
    """Given a fresh stack, when every documented Jointech MQTT message is published on its
    upload/… topic at QoS 1: the records, their stored items and the queue messages."""
    published = []
    for path in RECORDS:
        record = json.loads(path.read_text())
        topic, kind = topic_of(path.stem, record)
        client.publish(topic, path.read_bytes())
        published.append((path.stem, record["assetId"], kind))

    def all_stored() -> dict[str, list[dict[str, Any]]] | None:
        items = {name: mqtt_items(local_stack, device, kind) for name, device, kind in published}
        return items if all(items.values()) else None

    items = wait_for(all_stored)
    assert items, f"not every MQTT message was stored:\n{local_stack.log()[-3000:]}"
    ids = {item["eventId"]["S"] for found in items.values() for item in found}
    return published, items, drain(local_stack, ids)


def test_every_documented_message_is_stored_under_its_topic(delivered):
    published, items, _ = delivered
    # Then each message is one event of the topic's kind for the topic's device, received over MQTT
    assert len(published) == len(RECORDS) == 7
    for name, device, kind in published:
        assert len(items[name]) == 1, (name, items[name])
        [item] = items[name]
        assert (item["deviceId"]["S"], item["kind"]["S"], item["transport"]["S"]) == (device, kind, "mqtt"), name
        # And the topic's parts the rule added are not part of the stored record
        assert not {"accessKey", "deviceNum", "kind", "subLockNum"} & set(json.loads(item["data"]["S"]))


def test_every_documented_message_is_published_once(delivered):
    _, items, seen = delivered
    # Then the queue got exactly one CloudEvent per stored event, even after draining a while
    for name, [item] in items.items():
        assert seen[item["eventId"]["S"]] == 1, (name, seen)


def test_a_retransmitted_message_is_stored_and_published_once(local_stack, client, delivered):
    # Given a location record the stack has not seen
    record = json.loads((EVENTS / "jointech/records/mqtt-location.json").read_text())
    record.update(assetId="8052400299", gpsTime="2025-02-08T01:02:03Z")
    payload = json.dumps(record).encode()
    topic = f"upload/{ACCESS_KEY}/8052400299/location"
    # When the device sends it twice (a QoS 1 retransmission after a lost PUBACK)
    client.publish(topic, payload)
    client.publish(topic, payload)
    # Then one event is stored and one message queued
    items = wait_for(lambda: mqtt_items(local_stack, "8052400299", "location"))
    assert len(items) == 1, items
    seen = drain(local_stack, {items[0]["eventId"]["S"]})
    assert seen[items[0]["eventId"]["S"]] == 1, seen
    assert len(mqtt_items(local_stack, "8052400299", "location")) == 1
    # And the stack logged both invocations: the second was recognised, not dropped on the way
    assert wait_for(lambda: local_stack.log().count('"duplicates": 1') >= 1, timeout_s=5)


def deployed_rule_name(logical_id: str) -> str:
    """The name IoT reports for a rule: its RuleName as the local stack resolves it, else its logical id."""
    from devicegate_local.cfn_template import load_template
    from devicegate_local.resources import Resolver
    from tests.support import ROOT

    template = load_template(ROOT / "template.yaml")
    properties = template["Resources"][logical_id]["Properties"]
    return str(Resolver(template).resolve(properties.get("RuleName")) or logical_id)


def key_segment(topic: str) -> str:
    """How the rules' error-action key writes a topic (template.yaml: one segment, every character
    but letters, digits, '_' and '-' made '_')."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", topic)


def basic_ingest(rule_id: str, topic: str) -> str:
    """The topic the Mosquitto bridge publishes `topic` on for the rule `rule_id`."""
    return f"$aws/rules/{deployed_rule_name(rule_id)}/{topic}"


def test_a_record_by_basic_ingest_is_stored_once_also_when_it_comes_plain_too(local_stack, client):
    # Given a sub-lock record the stack has not seen
    record = json.loads((EVENTS / "jointech/records/mqtt-sublock.json").read_text())
    record.update(assetId="8052400297")
    payload = json.dumps(record).encode()
    topic = f"upload/{ACCESS_KEY}/8052400297/{record['subAssetID']}/sublock"
    # When the bridge publishes it by Basic Ingest to the sub-lock rule, and a device on its plain topic
    client.publish(basic_ingest("JointechSublockRule", topic), payload)
    client.publish(topic, payload)
    # Then the rule read the same topic levels both times: one sub-lock event, published once
    items = wait_for(lambda: mqtt_items(local_stack, "8052400297", "sublock"))
    assert len(items) == 1, (items, local_stack.log()[-3000:])
    seen = drain(local_stack, {items[0]["eventId"]["S"]})
    assert seen[items[0]["eventId"]["S"]] == 1, seen
    assert wait_for(lambda: "MQTT JointechSublockRule (Basic Ingest) -> JointechMqttFunction" in local_stack.log(),
                    timeout_s=5)


def test_a_payload_by_basic_ingest_that_is_not_json_lands_in_the_error_bucket_under_its_own_topic(
        local_stack, client):
    # Given a message that is not JSON, published by Basic Ingest to the upload rule
    payload = b"(794308010643,1,001,BASE,1)"
    topic = f"upload/{ACCESS_KEY}/794308010643/cmd"
    s3 = local_stack.client("s3")
    # When it is published
    client.publish(basic_ingest("JointechMqttRule", topic), payload)
    # Then the rule's error action keeps it under its own topic, without the Basic Ingest prefix
    # (${topic()} does not see it, as in IoT Core), for the rule it named
    prefix = f"quarantine/iot-errors/jointech/{key_segment(topic)}/"
    keys = wait_for(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=local_stack.bucket_name,
                                                                    Prefix=prefix).get("Contents", [])])
    assert len(keys) == 1, keys
    record = json.loads(s3.get_object(Bucket=local_stack.bucket_name, Key=keys[0])["Body"].read())
    assert (record["ruleName"], record["topic"]) == (deployed_rule_name("JointechMqttRule"), topic)
    assert base64.b64decode(record["base64OriginalPayload"]) == payload


def test_a_payload_that_is_not_json_lands_in_the_rule_error_bucket(local_stack, client):
    # Given a message that is not JSON on a rule's topic (a command string sent up by mistake)
    payload = b"(794308010642,1,001,BASE,1)"
    topic = f"upload/{ACCESS_KEY}/794308010642/cmd"
    prefix = f"quarantine/iot-errors/jointech/{key_segment(topic)}/"
    s3 = local_stack.client("s3")
    # When it is published
    client.publish(topic, payload)
    # Then the rule's error action keeps it under quarantine/iot-errors/jointech/{topic as one segment}/ in
    # IoT's error format
    keys = wait_for(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=local_stack.bucket_name,
                                                                    Prefix=prefix).get("Contents", [])])
    assert len(keys) == 1, keys
    record = json.loads(s3.get_object(Bucket=local_stack.bucket_name, Key=keys[0])["Body"].read())
    assert record["ruleName"] == deployed_rule_name("JointechMqttRule") and record["topic"] == topic
    assert base64.b64decode(record["base64OriginalPayload"]) == payload
    assert record["failures"][0]["failedAction"] == "LambdaAction"


def test_a_payload_nested_too_deep_to_read_lands_in_the_error_bucket_and_the_rules_go_on(local_stack, client):
    # Given a message 20,000 levels deep on a rule's topic (about 40 KB: IoT Core takes it)
    payload = b"[" * 20000 + b"]" * 20000
    topic = f"upload/{ACCESS_KEY}/8052400298/location"
    s3 = local_stack.client("s3")
    # When it is published, and an ordinary record after it
    client.publish(topic, payload)
    record = json.loads((EVENTS / "jointech/records/mqtt-location.json").read_text())
    record.update(assetId="8052400298", gpsTime="2025-02-08T04:05:06Z")
    client.publish(topic, json.dumps(record).encode())
    # Then the first is kept by the rule's error action, saying why
    prefix = f"quarantine/iot-errors/jointech/{key_segment(topic)}/"
    keys = wait_for(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=local_stack.bucket_name,
                                                                    Prefix=prefix).get("Contents", [])])
    assert len(keys) == 1, keys
    kept = json.loads(s3.get_object(Bucket=local_stack.bucket_name, Key=keys[0])["Body"].read())
    assert base64.b64decode(kept["base64OriginalPayload"]) == payload
    assert "nested too deeply" in kept["failures"][0]["errorMessage"]
    # And the rules still deliver: the ordinary record is stored
    assert wait_for(lambda: mqtt_items(local_stack, "8052400298", "location")), local_stack.log()[-3000:]


def test_iot_data_publish_reaches_a_subscriber_on_the_command_topic(local_stack, client):
    # Given a device (here a paho client) subscribed to its command topic
    topic = f"download/{ACCESS_KEY}/794308010642/cmd"
    client.subscribe(topic)
    # When a command is published the way the gateway's functions do, with botocore's iot-data client
    iot_data = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                             region_name="us-east-1").client("iot-data", endpoint_url=local_stack.iot_data_endpoint)
    answer = iot_data.publish(topic=topic, qos=1, payload=b"(794308010642,1,001,BASE,1)")
    # Then IoT's answer comes back and the device receives the command on its topic
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    message = client.received.get(timeout=10)
    assert (message.topic, message.payload) == (topic, b"(794308010642,1,001,BASE,1)")
