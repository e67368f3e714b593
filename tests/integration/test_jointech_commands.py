"""Commands to Jointech devices, in one process on moto: the IAM route -> the command item ->
IoT data plane (moto records what was published) -> the device's answer through the MQTT function
and the outbox -> the sweep for the unanswered."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta

import pytest

from devicegate.store import keys
from devicegate.store.codec import from_item
from functions.device_sweep import app as sweep_app
from functions.jointech_commands import app as commands_app
from tests.integration.test_jointech_ingest import mqtt, post, run_outbox
from tests.support import EVENTS, context, load_event, load_record, new_environment, with_body

DEVICE = "794308010642"  # the device of the documented command and its answer
OFFLINE_DEVICE = "8294630003"  # the device of the documented "Device not online！" answer
ACCESS_KEY = "ak-demo"
#: The samples of commands sent now (those kept for the next contact, and cancels, are
#: tests/integration/test_waiting_commands.py's).
SAMPLES = sorted(p.name for p in (EVENTS / "jointech-commands").glob("http-post-*.json")
                 if "whenOnline" not in json.loads(p.read_text())["body"] and not p.name.endswith("-cancel.json"))


@pytest.fixture
def gateway(stack, monkeypatch):
    return prepare_gateway(stack, monkeypatch)


def prepare_gateway(stack, monkeypatch):
    """The moto stack with a deployment access key, and the devices of the samples known."""

    monkeypatch.setenv("JOINTECH_ACCESS_KEY", ACCESS_KEY)
    new_environment()
    for device in (DEVICE, "742207000010", OFFLINE_DEVICE):
        report_location(device)
    run_outbox(stack)
    published().clear()
    return stack


def report_location(device: str) -> None:
    record = load_record("jointech", "webhook-location")
    record["assetId"] = device
    assert post(with_body(load_event("jointech/http-webhook-location.json"), json.dumps(record)))[0] == 200


def published() -> list[tuple[str, bytes]]:
    """What moto's IoT data plane was asked to publish: (topic, payload)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iotdata.models import iotdata_backends

    return iotdata_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].published_payloads


def request(event: dict) -> tuple[int, dict, dict]:
    response = commands_app.lambda_handler(event, context("JointechCommandsFunction"))
    return response["statusCode"], json.loads(response["body"]), response["headers"]


def send(body: dict | str, device: str = DEVICE) -> tuple[int, dict, dict]:
    event = load_event("jointech-commands/http-post-raw-base-info.json")
    event["pathParameters"] = {"deviceNum": device}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/devices/jointech/{device}/commands"
    return request(with_body(event, body if isinstance(body, str) else json.dumps(body)))


def listing(device: str = DEVICE, **query: str) -> tuple[int, dict]:
    event = load_event("jointech-commands/http-get-list.json")
    event["pathParameters"] = {"deviceNum": device}
    event["queryStringParameters"] = query or None
    status, body, _ = request(event)
    return status, body


def command_items(stack, device: str = DEVICE) -> list[dict]:
    """The device's command status items (the texts are apart: command_texts)."""
    items = stack.ddb.query(TableName=stack.table, KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
                            ExpressionAttributeValues={":p": {"S": keys.commands_pk("jointech", device)},
                                                       ":c": {"S": "C#"}})["Items"]
    return [from_item(i) for i in items]


def command_texts(stack, device: str = DEVICE) -> dict[str, str]:
    """sk -> text of the device's command text items."""
    items = stack.ddb.query(TableName=stack.table, KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
                            ExpressionAttributeValues={":p": {"S": keys.command_texts_pk("jointech", device)},
                                                       ":c": {"S": "C#"}})["Items"]
    return {i["sk"]["S"]: i["text"]["S"] for i in items}


def answer(event_name: str) -> None:
    """The device's answer arriving by MQTT, then the outbox over the table's stream."""
    assert mqtt(load_event(f"jointech/{event_name}"))["outcome"] == "accepted"


def sweep_at(monkeypatch, at: datetime) -> dict:
    monkeypatch.setattr(sweep_app, "now_utc", lambda: at)
    return sweep_app.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"},
                                    context("DeviceSweepFunction"))


# --- sending -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sample", SAMPLES)
def test_each_sample_command_is_stored_pending_then_published_on_the_devices_topic(gateway, sample):
    # Given an app's signed request as API Gateway hands it over (the IAM caller in its context)
    event = load_event(f"jointech-commands/{sample}")
    device = event["pathParameters"]["deviceNum"]
    body = json.loads(event["body"])

    # When the commands function handles it
    status, view, headers = request(event)

    # Then it answers 202 with the command id, and the documented text went out once, QoS 1, on
    # download/{accessKey}/{deviceNum}/cmd
    assert status == 202 and view["status"] == "pending"
    assert headers["location"] == f"/devices/jointech/{device}/commands?id={view['commandId']}"
    expected_text = body.get("raw") or {"query_base_info": f"({device},1,001,BASE,1)",
                                        "query_time": f"({device},1,001,BASE,2)"}[body["command"]]
    assert published() == [(f"download/{ACCESS_KEY}/{device}/cmd", expected_text.encode())]
    # And the command item says who asked, when and what, until when it waits, and is listed pending
    [item] = command_items(gateway, device)
    assert item["sk"] == f"C#{view['commandId']}" and item["status"] == "pending"
    assert item.get("command") == body.get("command")
    # And its text is on its own item, not on the status item the outbox and the sweep may update
    assert "text" not in item and command_texts(gateway, device) == {item["sk"]: expected_text}
    assert view["text"] == expected_text
    assert item["requestedBy"] == {"userArn": "arn:aws:iam::123456789012:user/dispatch-app",
                                   "accountId": "123456789012", "userId": "AIDACKCEVSQ6C2EXAMPLE"}
    assert item["requestId"] == "JKJaXmPLvHcESHA=" and item["requestedAt"] == item["statusAt"]
    requested = datetime.fromisoformat(item["requestedAt"])
    assert datetime.fromisoformat(item["timeoutAt"]) - requested == timedelta(seconds=300)
    assert item["expiresAt"] - int(requested.timestamp()) in range(90 * 86400 - 1, 90 * 86400 + 1)
    assert item["gsi5pk"] == keys.commands_pending_pk("jointech", item["deviceId"]) and item["gsi5sk"].startswith(item["timeoutAt"] + "#")
    assert item.get("clientToken") == body.get("clientToken")
    # And the access key and the caller's access key id are not in what the app sees
    assert ACCESS_KEY not in json.dumps(view) and "AKIA" not in json.dumps(view)


@pytest.mark.parametrize("body, field", [
    ("{not json", "body"),
    ("[1, 2]", "body"),
    ({}, "body"),
    ({"raw": "(794308010642,1,001,BASE,1)", "command": "query_time"}, "raw"),
    ({"command": "unlock"}, "command"),
    ({"command": "query_base_info", "serial": "0x1"}, "serial"),
    ({"raw": "(794308010642,1,001,BASE,1)", "serial": "002"}, "serial"),
    ({"raw": 794308010642}, "raw"),
    ({"raw": "794308010642,1,001,BASE,1"}, "raw"),
    ({"raw": "(794308010642,1,001,BASE,1)(794308010642,1,001,BASE,2)"}, "raw"),
    ({"raw": "(742207000010,1,001,BASE,1)"}, "raw"),
    ({"raw": "(794308010642,1,001,base,1)"}, "raw"),
    ({"raw": "(794308010642,1,001)"}, "raw"),
    ({"raw": "(794308010642,1,001,BASE,1\n)"}, "raw"),
    ({"raw": "(794308010642,1,001,BASE,ö)"}, "raw"),
    ({"raw": "(794308010642,1,001,BASE," + "1" * 300 + ")"}, "raw"),
    ({"command": "query_base_info", "priority": "high"}, "priority"),
    ({"command": "query_base_info", "clientToken": "has space"}, "clientToken"),
])
def test_bad_commands_are_answered_400_naming_the_field_and_never_sent(gateway, body, field):
    # Given a body that is not a command the device can be sent
    # When an app posts it
    status, answer_body, _ = send(body)
    # Then it gets 400 with the field at fault, and nothing is stored or published
    assert status == 400, answer_body
    assert field in [e["field"] for e in answer_body["errors"]]
    assert command_items(gateway) == [] and published() == []


def test_an_unknown_device_is_404_and_nothing_is_stored(gateway):
    # Given a device number that never reported to the gateway
    # When a command is posted for it
    status, body, _ = send({"raw": "(123456789,1,001,BASE,1)"}, device="123456789")
    # Then 404 names the device number, and neither a command, its text nor a rate count is left
    assert status == 404 and body["errors"][0]["field"] == "deviceNum"
    assert published() == []
    for pk in (keys.device_pk("jointech", "123456789"), keys.commands_pk("jointech", "123456789"),
               keys.command_texts_pk("jointech", "123456789")):
        rows = gateway.ddb.query(TableName=gateway.table, KeyConditionExpression="pk = :p",
                                 ExpressionAttributeValues={":p": {"S": pk}})
        assert rows["Items"] == []


def test_a_device_number_that_cannot_be_a_topic_level_is_400(gateway):
    status, body, _ = send({"raw": "(a+b,1,001,BASE,1)"}, device="a+b")
    assert status == 400 and body["errors"][0]["field"] == "deviceNum" and published() == []


def test_too_many_commands_for_a_device_are_429_with_retry_after(gateway, monkeypatch):
    # Given a deployment allowing 2 commands per device and minute

    monkeypatch.setenv("JOINTECH_COMMAND_RATE_LIMIT", "2")
    new_environment()
    # When an app sends three in a row (unless the minute turns between them: then the fourth)
    statuses = [send({"command": "query_time"})[0] for _ in range(2)]
    status, body, headers = send({"command": "query_time"})
    if status == 202:  # the calendar minute turned: the new window allows 2 again
        statuses.append(status)
        send({"command": "query_time"})
        status, body, headers = send({"command": "query_time"})
    # Then the one over the limit is 429 with Retry-After (seconds left in the minute), not stored
    assert statuses[:2] == [202, 202] and status == 429
    assert 1 <= int(headers["retry-after"]) <= 60 and body["retryAfterSeconds"] == int(headers["retry-after"])
    assert body["limit"] == 2
    assert len(command_items(gateway)) == len(published()) == len(statuses) + (1 if len(statuses) > 2 else 0)
    # And another device is not affected
    assert send({"command": "query_time"}, device="742207000010")[0] == 202


def test_a_client_token_makes_a_retried_request_return_the_same_command(gateway):
    # Given a command sent with a client token
    first = send({"command": "query_base_info", "clientToken": "retry-1"})
    # When the app retries it (its first answer was lost), and reuses the token for another command
    again = send({"command": "query_base_info", "clientToken": "retry-1"})
    other = send({"command": "query_time", "clientToken": "retry-1"})
    # Then the retry gets 200 with the same command, sent once; the other use is 409
    assert first[0] == 202 and again[0] == 200 and again[1] == first[1]
    assert other[0] == 409 and other[1]["errors"][0]["field"] == "clientToken"
    assert len(command_items(gateway)) == len(published()) == 1


def test_a_request_without_an_iam_identity_is_403_and_nothing_is_sent(gateway):
    # Given the route reached without API Gateway's IAM authorizer context (deployed without
    # Auth, or an unsigned local request)
    event = load_event("jointech-commands/http-post-raw-base-info.json")
    del event["requestContext"]["authorizer"]
    # When it is handled
    status, body, _ = request(event)
    # Then it is refused, and the command was neither stored nor sent
    assert status == 403 and "SigV4" in body["message"]
    assert command_items(gateway) == [] and published() == []
    listed = load_event("jointech-commands/http-get-list.json")
    del listed["requestContext"]["authorizer"]
    assert request(listed)[0] == 403


def test_without_an_access_key_commands_answer_503_and_are_not_stored(gateway, monkeypatch):

    monkeypatch.setenv("JOINTECH_ACCESS_KEY", "")
    new_environment()
    status, body, _ = send({"command": "query_time"})
    assert status == 503 and "access key" in body["message"] and command_items(gateway) == []


class _FailingIotData:
    def __init__(self, error: Exception):
        self.error = error

    def publish(self, **kwargs):
        raise self.error


def _refusals():
    from botocore.exceptions import ClientError, EndpointConnectionError

    return [(ClientError({"Error": {"Code": "ForbiddenException", "Message": "no"}}, "Publish"), "ForbiddenException"),
            (EndpointConnectionError(endpoint_url="https://iot"), "EndpointConnectionError")]


@pytest.mark.parametrize("error, code", _refusals())
def test_a_refused_publish_is_503_and_the_stored_command_is_marked_failed(gateway, error, code):
    # Given the IoT data plane refusing the publish (the role lacks iot:Publish on the topic), or
    # not reachable at all: either way the message was not sent
    from devicegate.commands import http as command_http
    from devicegate.commands.service import IotDataPublisher

    service = command_http.command_service("jointech")
    service.publisher = IotDataPublisher(_FailingIotData(error))
    # When a command is sent
    status, body, headers = send({"command": "query_base_info"})
    # Then the app is told it was not sent (503, retry), and the command is failed, not pending
    assert status == 503 and "not sent" in body["message"] and headers["retry-after"]
    [item] = command_items(gateway)
    assert item["status"] == body["status"] == "failed" and code in item["error"]
    assert "gsi5pk" not in item and item["failedAt"] == item["statusAt"]


def test_a_publish_that_timed_out_leaves_the_command_pending_for_its_answer(gateway):
    from botocore.exceptions import ReadTimeoutError

    from devicegate.commands import http as command_http
    from devicegate.commands.service import IotDataPublisher

    service = command_http.command_service("jointech")
    service.publisher = IotDataPublisher(_FailingIotData(ReadTimeoutError(endpoint_url="https://iot")))
    status, body, headers = send({"command": "query_base_info"})
    # Accepted and pending, without Retry-After: it may have gone out, so a retry could send it twice
    assert status == 202 and "may have been sent" in body["message"] and body["status"] == "pending"
    assert "retry-after" not in {name.lower() for name in headers}
    [item] = command_items(gateway)
    assert item["status"] == "pending" and item["gsi5pk"] == keys.commands_pending_pk("jointech", item["deviceId"])


# --- answers -----------------------------------------------------------------------------------

def test_the_devices_success_answer_marks_its_command_succeeded_with_the_decoded_response(gateway):
    # Given a pending query_base_info
    _, sent, _ = send({"command": "query_base_info"})
    # When the device's documented answer (BASE1, content a JSON array) arrives by MQTT and the
    # outbox runs
    answer("iot-mqtt-cmd-success.json")
    run_outbox(gateway)
    # Then the command succeeded, with the decoded array, the answer's time and event, off the
    # pending list
    [item] = command_items(gateway)
    content = json.loads(load_record("jointech", "mqtt-cmd-success")["content"])
    assert item["status"] == "succeeded" and item["response"] == content
    assert item["respondedAt"] == "2025-02-07T03:52:39.964Z" and item["responseType"] == "BASE1"
    assert item["succeededAt"] == item["statusAt"] and "gsi5pk" not in item
    [event] = [e for e in gateway.event_items() if e["eventId"] == item["responseEventId"]]
    assert event["kind"] == "cmd"
    # And the app reads it with one Query
    status, one = listing(id=sent["commandId"])
    assert status == 200 and one["status"] == "succeeded" and one["response"] == content


def test_device_not_online_marks_the_oldest_waiting_command_failed_with_the_text(gateway):
    # Given two commands waiting for the same device
    first = send({"raw": f"({OFFLINE_DEVICE},1,001,BASE,1)"}, device=OFFLINE_DEVICE)[1]
    second = send({"raw": f"({OFFLINE_DEVICE},1,001,BASE,2)"}, device=OFFLINE_DEVICE)[1]
    # When the cloud answers "Device not online！" (commandType MQTT_CMD, plain text)
    answer("iot-mqtt-cmd-not-online.json")
    run_outbox(gateway)
    # Then the oldest is failed with the text as sent (full-width ！), the other still waits
    items = {i["commandId"]: i for i in command_items(gateway, OFFLINE_DEVICE)}
    assert items[first["commandId"]]["status"] == "failed"
    assert items[first["commandId"]]["error"] == "Device not online！"
    assert items[first["commandId"]]["responseType"] == "MQTT_CMD"
    assert items[second["commandId"]]["status"] == "pending"


def test_an_answer_matches_the_command_of_its_type_not_just_the_oldest(gateway):
    # Given a query_time sent before a query_base_info
    time_cmd = send({"command": "query_time"})[1]
    info_cmd = send({"command": "query_base_info"})[1]
    # When the BASE1 answer arrives
    answer("iot-mqtt-cmd-success.json")
    run_outbox(gateway)
    # Then it resolves the query_base_info (BASE1), and the query_time (BASE2) still waits
    items = {i["commandId"]: i["status"] for i in command_items(gateway)}
    assert items == {time_cmd["commandId"]: "pending", info_cmd["commandId"]: "succeeded"}


def test_a_retransmitted_or_reprocessed_answer_resolves_nothing_twice(gateway):
    # Given two identical commands waiting, and the answer to one of them stored
    first = send({"command": "query_base_info"})[1]
    second = send({"command": "query_base_info"})[1]
    answer("iot-mqtt-cmd-success.json")
    records = gateway.new_stream_records()
    from functions.outbox import app as outbox_app

    # When the outbox handles that answer, then handles the same stream records again (a retried
    # batch), and the device (or the webhook rule) sends the same answer once more
    for _ in range(2):
        assert outbox_app.lambda_handler({"Records": records}, context("OutboxFunction")) == {"batchItemFailures": []}
    assert mqtt(load_event("jointech/iot-mqtt-cmd-success.json"))["outcome"] == "duplicate"
    post(load_event("jointech/http-mqtt-cmd-success.json"))
    run_outbox(gateway)
    # Then only the oldest command was resolved, once; the other still waits for its own answer
    items = {i["commandId"]: i for i in command_items(gateway)}
    assert items[first["commandId"]]["status"] == "succeeded"
    assert items[second["commandId"]]["status"] == "pending"


def test_an_answer_for_no_waiting_command_changes_nothing(gateway, logs):
    # Given no command sent to the device
    # When an answer arrives anyway (sent from the vendor's console, say)
    answer("iot-mqtt-cmd-success.json")
    run_outbox(gateway)
    # Then the event is stored as always, no command appears, and the log says so
    assert command_items(gateway) == []
    assert "command reply matched no waiting command" in logs()


# --- timeouts ----------------------------------------------------------------------------------

def test_an_unanswered_command_times_out_by_the_sweep_once(gateway, monkeypatch):
    # Given a pending command with the default 300 s timeout
    _, sent, _ = send({"command": "query_time"})
    timeout_at = datetime.fromisoformat(sent["timeoutAt"])
    # When the sweep runs before the deadline, just after it (within its 60 s grace), and later
    before = sweep_at(monkeypatch, timeout_at - timedelta(seconds=10))
    grace = sweep_at(monkeypatch, timeout_at + timedelta(seconds=30))
    after = sweep_at(monkeypatch, timeout_at + timedelta(seconds=61))
    again = sweep_at(monkeypatch, timeout_at + timedelta(seconds=400))
    # Then it is timed out exactly once, stamped, and off the pending list
    assert [r["commandsTimedOut"] for r in (before, grace, after, again)] == [0, 0, 1, 0]
    [item] = command_items(gateway)
    assert item["status"] == "timed_out" and item["timedOutAt"] == item["statusAt"] and "gsi5pk" not in item
    assert item["timedOutAt"] == (timeout_at + timedelta(seconds=61)).isoformat(timespec="milliseconds")[:-6] + "Z"


def test_an_answer_received_after_the_deadline_does_not_resolve_the_command(gateway, monkeypatch):
    # Given a command that timed out
    _, sent, _ = send({"command": "query_base_info"})
    timeout_at = datetime.fromisoformat(sent["timeoutAt"])
    sweep_at(monkeypatch, timeout_at + timedelta(seconds=61))
    # When its answer is received after the deadline
    from devicegate.ingest import wiring as runtime

    monkeypatch.setattr(runtime.mqtt_pipeline("jointech"), "clock", lambda: timeout_at + timedelta(seconds=90))
    answer("iot-mqtt-cmd-success.json")
    run_outbox(gateway)
    # Then the command stays timed out
    [item] = command_items(gateway)
    assert item["status"] == "timed_out" and "response" not in item


def test_an_answer_received_in_time_wins_over_a_sweep_that_ran_ahead_of_the_outbox(gateway, monkeypatch):
    # Given a command answered in time, but the sweep marking it timed out before the outbox got
    # to the answer (the outbox lagging by more than the grace)
    send({"command": "query_base_info"})
    answer("iot-mqtt-cmd-success.json")
    sweep_at(monkeypatch, datetime.fromisoformat(command_items(gateway)[0]["timeoutAt"]) + timedelta(minutes=10))
    assert command_items(gateway)[0]["status"] == "timed_out"
    # When the outbox then handles the answer
    run_outbox(gateway)
    # Then the command is succeeded: its answer came before its deadline (the timeout is kept)
    [item] = command_items(gateway)
    assert item["status"] == "succeeded" and "timedOutAt" in item


# --- listing -----------------------------------------------------------------------------------

def test_a_devices_commands_are_listed_newest_first_with_paging(gateway):
    # Given three commands for a device
    ids = [send({"command": name})[1]["commandId"] for name in ("query_time", "query_base_info", "query_time")]
    # When an app lists them two at a time
    status, page = listing(limit="2")
    _, rest = listing(limit="2", before=page["next"])
    # Then they come newest first, and the second page has the oldest
    assert status == 200 and [c["commandId"] for c in page["commands"]] == ids[::-1][:2]
    assert [c["commandId"] for c in rest["commands"]] == ids[:1] and "next" not in rest
    assert all("pk" not in c and "gsi5pk" not in c for c in page["commands"])
    # And each comes with its text, joined from the text items
    assert all(c["text"].startswith(f"({DEVICE},1,001,BASE,") for c in page["commands"] + rest["commands"])
    # And bad queries are 400, an unknown id 404, a device without commands an empty list
    assert listing(limit="0")[0] == 400 and listing(id="../x")[0] == 400
    assert listing(id="20250101T000000000Z-0000000000")[0] == 404
    assert listing(device="742207000010") == (200, {"deviceNum": "742207000010", "commands": []})


def test_logs_carry_no_command_text_caller_or_access_key(gateway, logs):
    # Given a command sent, refused, answered and listed
    send({"raw": f"({DEVICE},1,001,BASE,1)"})
    send({"raw": "(794308010642,1,001,lower)"})
    answer("iot-mqtt-cmd-success.json")
    run_outbox(gateway)
    listing()
    # When everything the functions logged is read
    text = logs()
    # Then it has the command id and word, but not the text, the caller, the access key, the answer
    assert "command sent" in text and "command resolved" in text
    for secret in (f"({DEVICE},1,001,BASE,1)", "dispatch-app", "AIDACKCEVSQ6C2EXAMPLE", "AKIAIOSFODNN7EXAMPLE",
                   f"download/{ACCESS_KEY}", "898604B81022C1046673", "868822046635957"):
        assert secret not in text, secret


def test_the_sample_list_event_is_answered(gateway):
    send({"command": "query_time"})
    status, body, _ = request(copy.deepcopy(load_event("jointech-commands/http-get-list.json")))
    assert status == 200 and len(body["commands"]) == 1


@pytest.mark.parametrize("query", [{"limit": "²"}, {"limit": "0"}, {"id": "ｃｍｄ"}, {"before": "x/y"}])
def test_odd_query_values_are_a_clear_400(gateway, query):
    status, body = listing(**query)
    assert status == 400 and body["errors"]


def test_an_answer_echoing_another_serial_resolves_no_command(gateway):
    # Given a pending query sent with serial 002
    _, sent, _ = send({"command": "query_base_info", "serial": "002"})
    # When the documented answer, which echoes serial 001, arrives
    answer("iot-mqtt-cmd-success.json")
    run_outbox(gateway)
    # Then the command still waits for its own answer
    [item] = command_items(gateway)
    assert item["status"] == "pending" and item["serial"] == "002"
