"""One record never holds back another: a device's state is bounded, a state write DynamoDB refuses
fails that device alone (recorded for operators), and a record too big for an item is offloaded,
keeps its state and is never refused, whatever its characters weigh in bytes."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from devicegate.infra.aws import client
from devicegate.store import keys
from devicegate.store.limits import MAX_ITEM_BYTES, utf8_size
from devicegate.store.state_failures import StateFailures
from functions.face_terminal_webhook import app as face_app
from functions.jointech_webhook import app as jointech_app
from functions.outbox import app as outbox_app
from tests.support import context, load_event, load_record, with_body, with_path


def post_jointech(record: dict, kind: str) -> tuple[int, dict]:
    event = with_path(with_body(load_event("jointech/http-webhook-location.json"), json.dumps(record)),
                      "dev-token", kind)
    response = jointech_app.lambda_handler(event, context("JointechWebhookFunction"))
    return response["statusCode"], json.loads(response["body"])


def run_outbox(stack) -> dict:
    return outbox_app.lambda_handler({"Records": stack.new_stream_records()}, context("OutboxFunction"))


def item_bytes(item: dict) -> int:
    return utf8_size(json.dumps(item, ensure_ascii=False))


def test_two_huge_free_texts_neither_break_the_device_item_nor_hold_back_a_bystander(stack):
    # Given, in one outbox batch, a lock event with a 240,000-character card and an alarm with a
    # 240,000-character description (each valid and under the 256 KiB body cap), and an unrelated
    # device's location
    event = dict(load_record("jointech", "webhook-event"), card="7" * 240_000)
    alarm = dict(load_record("jointech", "webhook-alarm"), assetId=event["assetId"], describe="d" * 240_000)
    bystander = load_record("jointech", "webhook-location")
    assert post_jointech(event, "event")[0] == 200
    assert post_jointech(alarm, "alarm")[0] == 200
    assert post_jointech(bystander, "location")[0] == 200

    # When the outbox runs over the three
    result = run_outbox(stack)

    # Then nothing is retried and all three are published, each once
    assert result == {"batchItemFailures": []}
    assert sorted(m["data"]["kind"] for m in stack.queue_messages()) == ["alarm", "event", "location"]
    # And the device's item holds its state, bounded, saying what was cut and where the whole is
    item = stack.device_item("jointech", event["assetId"])
    assert item is not None and item_bytes(item) < MAX_ITEM_BYTES // 10
    last_event, alarm = item["state"]["lastEvent"], item["state"]["alarm"]
    assert last_event["truncated"] is True and last_event["value"]["card"].startswith("7777")
    assert len(last_event["value"]["card"]) < 300 and last_event["value"]["eventType"] == 1
    # (the alarm's state is its vocabulary block, which copies no free text: nothing to cut)
    assert "truncated" not in alarm and alarm["value"]["code"] == "46"
    [stored] = [i for i in stack.event_items() if i["kind"] == "event"]
    assert last_event["eventId"] == stored["eventId"] and stored["data"]["card"] == event["card"]
    # And the bystander's state moved
    assert stack.state("jointech", bystander["assetId"])["power"]["value"]["batteryPct"] == bystander["battery"]
    # And nothing needed recording
    assert StateFailures(stack.ddb, stack.table).for_vendor("jointech") == []


def test_a_refused_state_write_fails_one_device_of_a_hundred_and_is_listed(stack, logs, cli):
    # Given 100 devices' locations in one outbox batch, and DynamoDB refusing one device's state
    # item as such (ValidationException: what a 400 KB item gets)
    location = load_record("jointech", "webhook-location")
    devices = [f"80223{n:05d}" for n in range(100)]
    for device in devices:
        assert post_jointech(dict(location, assetId=device), "location")[0] == 200
    poisoned = keys.device_pk("jointech", devices[42])

    def refuse(params, **_):
        if params.get("Item", {}).get("pk", {}).get("S") == poisoned:
            raise ClientError({"Error": {"Code": "ValidationException",
                                         "Message": "Item size has exceeded the maximum allowed size"}}, "PutItem")

    ddb = client("dynamodb")
    ddb.meta.events.register("before-parameter-build.dynamodb.PutItem", refuse)
    try:
        # When the outbox runs over the batch
        result = run_outbox(stack)
    finally:
        ddb.meta.events.unregister("before-parameter-build.dynamodb.PutItem", refuse)

    # Then no record is retried and every event is published once
    assert result == {"batchItemFailures": []}
    messages = stack.queue_messages()
    assert sorted(m["subject"] for m in messages) == sorted(devices)
    # And 99 devices have their state, the refused one none
    assert stack.device_item("jointech", devices[42]) is None
    assert all(stack.device_item("jointech", d) is not None for d in devices if d != devices[42])
    # And the failure is where an operator looks: an item listed per vendor, a metric, a log line
    [failure] = StateFailures(stack.ddb, stack.table).for_vendor("jointech")
    assert (failure["deviceId"], failure["what"], failure["error"], failure["count"]) == (
        devices[42], "device", "ValidationException", 1)
    [stored] = [i for i in stack.event_items() if i["deviceId"] == devices[42]]
    assert failure["eventIds"] == [stored["eventId"]]
    written = logs()
    assert '"stateWriteFailed"' in written and "state write given up for one device" in written
    # And `devicegate state-failures` lists it
    code, out = cli("state-failures", "--vendor", "jointech")
    assert code == 0 and devices[42] in out and "ValidationException" in out and stored["eventId"] in out
    assert cli("state-failures", "--vendor", "mettax") == (0, "(none)\n")


def test_a_record_too_big_for_an_item_in_bytes_is_offloaded_and_keeps_its_state(stack):
    # Given a face record whose user name is 300,000 CJK characters: 900 KB of UTF-8, though under
    # the 350,000 characters a character count would have let through as one item
    body = json.loads(load_event("face-terminal/http-doc-record.json")["body"])
    body["data"]["user"]["name"] = "张" * 300_000
    event = with_body(load_event("face-terminal/http-doc-record.json"), json.dumps(body, ensure_ascii=False))

    # When the terminal pushes it and the outbox runs
    response = face_app.lambda_handler(event, context("FaceTerminalWebhookFunction"))
    result = run_outbox(stack)

    # Then it is accepted (never refused for its size), stored with its record in S3
    assert response["statusCode"] == 200 and json.loads(response["body"])["code"] == 200
    [item] = stack.event_items("face-terminal")
    assert item["data"] == {} and item["dataRef"].startswith(f"s3://{stack.bucket}/payloads/face-terminal/")
    key = item["dataRef"].split("/", 3)[3]
    record = json.loads(stack.session.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read())
    assert record["user"]["name"] == body["data"]["user"]["name"]
    # And its state is the record's, not an empty one
    assert result == {"batchItemFailures": []}
    recognition = stack.state("face-terminal", item["deviceId"])["lastRecognition"]["value"]
    assert recognition and recognition.get("recognitionTypeName")
    # And its message names where the record is (too big for a message as ASCII JSON)
    [message] = stack.queue_messages()
    assert message["dataref"] == item["dataRef"] and message["id"] == item["eventId"]


def _senselink_push(name: str) -> tuple[object, str, dict]:
    from functions.senselink_webhook import app

    body = json.loads(load_event("senselink/http-sub-record-employee.json")["body"])
    body["data"]["name"] = name
    return app, "SenseLinkWebhookFunction", with_body(load_event("senselink/http-sub-record-employee.json"),
                                                      json.dumps(body, ensure_ascii=False))


def _mettax_push(name: str) -> tuple[object, str, dict]:
    from functions.mettax_webhook import app

    record = dict(load_record("mettax", "doc-rfid"), driverName=name)
    return app, "MettaxWebhookFunction", with_body(load_event("mettax/http-doc-rfid.json"),
                                                   json.dumps({"data": record}, ensure_ascii=False))


@pytest.mark.parametrize("vendor, build", [("senselink", _senselink_push), ("mettax", _mettax_push)])
def test_multibyte_records_over_an_item_are_offloaded_for_every_vendor(stack, vendor, build):
    # Given a record under the route's 1 MB cap whose name is 300,000 CJK characters (900 KB)
    app, function, event = build("张" * 300_000)
    # When it is pushed and the outbox runs
    response = app.lambda_handler(event, context(function))
    # Then it is accepted and stored with its record in S3, and published with its dataref
    assert response["statusCode"] == 200 and json.loads(response["body"])["code"] == 200
    [item] = stack.event_items(vendor)
    assert item["data"] == {} and item["dataRef"].startswith(f"s3://{stack.bucket}/payloads/{vendor}/")
    assert run_outbox(stack) == {"batchItemFailures": []}
    [message] = stack.queue_messages()
    assert message["dataref"] == item["dataRef"]
