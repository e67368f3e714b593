"""AI camera end to end in one process: heartbeats answered with the camera's own configuration
or the deployment default (read for every heartbeat, the last one read kept for outages),
retransmissions, other operators, device info in state, and the offline sweep following each
camera's heartbeat interval."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from devicegate.core.timeutil import parse_time
from devicegate.store import keys
from devicegate.store.codec import to_attr
from devicegate.store.queries import device_state, offline_devices
from functions.ai_camera_webhook import app as webhook_app
from functions.device_sweep import app as sweep_app
from functions.outbox import app as outbox_app
from tests.support import EVENTS, context, load_event, with_body

SERIAL = "I320013590DEA0BE21F6958"
CONFIG = json.loads((EVENTS / "ai-camera" / "config-example.json").read_text())



def post(event: dict) -> tuple[int, dict]:
    response = webhook_app.lambda_handler(event, context("AiCameraWebhookFunction"))
    return response["statusCode"], json.loads(response["body"])


def heartbeat(event_id=1, serial: str = SERIAL, time: str = "2020-03-31T10:10:01+08") -> dict:
    event = load_event("ai-camera/http-doc-heartbeat.json")
    body = json.loads(event["body"])
    body["info"].update(eventId=event_id, time=time)
    body["deviceInfo"]["serialNumber"] = serial
    return with_body(event, json.dumps(body))


def write_config(stack, serial: str, config: dict) -> None:
    """What an app (or `devicegate strategy set`) writes."""
    stack.ddb.put_item(TableName=stack.table, Item={
        "pk": {"S": keys.config_pk("ai-camera", serial)}, "sk": {"S": keys.CONFIG_SK},
        "config": to_attr(config), "updatedAt": {"S": "2026-01-01T00:00:00.000Z"}, "updatedBy": {"S": "ops"}})


def run_outbox(stack) -> list[dict]:
    assert outbox_app.lambda_handler({"Records": stack.new_stream_records()},
                                     context("OutboxFunction")) == {"batchItemFailures": []}
    return stack.queue_messages()


def test_a_heartbeat_without_configuration_gets_the_deployment_default(stack):
    # Given a camera no app has configured (the template's default: 60 s, realTime, no strategy)
    # When it sends the documented heartbeat
    status, answer = post(load_event("ai-camera/http-doc-heartbeat.json"))
    # Then it is acknowledged with the default, eventId echoed, server time in its own offset
    assert status == 200
    assert answer["operator"] == "heartbeat-Ack" and answer["result"] == {"errorNo": 0, "description": "ok"}
    info = answer["info"]
    assert info["eventId"] == 1 and info["heartbeatInterval"] == 60 and info["eventSendMode"] == "realTime"
    assert "strategy" not in info  # the camera keeps its own switches
    assert info["time"].endswith("+08")
    told = datetime.strptime(info["time"] + "00", "%Y%m%dT%H%M%S%z")
    assert abs((told - datetime.now(UTC)).total_seconds()) < 60
    # And the heartbeat is stored once, as an event of kind heartbeat
    [item] = stack.event_items("ai-camera")
    assert item["kind"] == "heartbeat" and item["occurredAt"] == "2020-03-31T02:10:01.000Z"


def test_a_heartbeat_gets_the_strategy_an_operator_set_for_that_camera(stack):
    # Given a configuration item for this camera (all switches, 30 s heartbeats)
    write_config(stack, SERIAL, CONFIG)
    # When it beats, and a second camera without one beats too
    status, answer = post(heartbeat())
    other_status, other = post(heartbeat(serial="I320013590DEA0BE21F0002"))
    # Then each is told its own: the configured strategy, and the default
    assert status == other_status == 200
    assert answer["info"]["strategy"] == CONFIG["strategy"]
    assert answer["info"]["heartbeatInterval"] == CONFIG["heartbeatInterval"]
    assert "strategy" not in other["info"] and other["info"]["heartbeatInterval"] == 60


def test_a_retransmitted_heartbeat_is_acknowledged_the_same_and_stored_once(stack):
    # Given a configured camera
    write_config(stack, SERIAL, CONFIG)
    # When the same heartbeat arrives twice (power cut, missed answer), with a string eventId
    first = post(heartbeat(event_id="hb-77"))
    second = post(heartbeat(event_id="hb-77"))
    # Then both get the same acknowledgement (time aside), one event is stored and queued
    for answer in (first[1], second[1]):
        answer["info"].pop("time")
    assert first == second and first[1]["info"]["eventId"] == "hb-77"
    assert len(stack.event_items("ai-camera")) == 1
    assert len(run_outbox(stack)) == 1


def counted_reads(monkeypatch) -> list[dict]:
    """The configuration reads the camera's function makes, counted as they go through."""
    from devicegate.ingest.wiring import http_pipeline

    configs = http_pipeline("ai-camera").configs
    reads: list[dict] = []
    real = configs._ddb.get_item
    monkeypatch.setattr(configs._ddb, "get_item", lambda **kw: reads.append(kw) or real(**kw), raising=False)
    return reads


def failing_reads(monkeypatch) -> None:
    """From now on the table cannot be read (throttled, or unreachable)."""
    from botocore.exceptions import EndpointConnectionError

    from devicegate.ingest.wiring import http_pipeline

    def unreachable(**kw):
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    monkeypatch.setattr(http_pipeline("ai-camera").configs._ddb, "get_item", unreachable, raising=False)


def strategy_set(stack, monkeypatch, tmp_path, config: dict) -> None:
    """`devicegate strategy set --device SERIAL --file ...` against this stack."""
    from devicegate_cli import commands
    from devicegate_cli.main import main

    monkeypatch.setattr(commands, "resolve_target",
                        lambda args: commands.Target(stack.session, None, stack.table, stack.bucket))
    path = tmp_path / "strategy.json"
    path.write_text(json.dumps(config))
    assert main(["strategy", "set", "--device", SERIAL, "--file", str(path), "--by", "ops"]) == 0


def test_a_strategy_set_between_two_heartbeats_is_in_the_answer_to_the_next_one(stack, monkeypatch, tmp_path):
    # Given a camera answered with the deployment default (no strategy), its reads counted
    reads = counted_reads(monkeypatch)
    status, first = post(heartbeat(event_id=10))
    assert status == 200 and "strategy" not in first["info"]
    # When an operator sets its strategy with the CLI, right before the camera's next heartbeat
    strategy_set(stack, monkeypatch, tmp_path, CONFIG)
    status, second = post(heartbeat(event_id=11))
    # Then that very heartbeat is told the strategy and the interval: one read per heartbeat,
    # no cache in between
    assert status == 200
    assert second["info"]["strategy"] == CONFIG["strategy"]
    assert second["info"]["heartbeatInterval"] == CONFIG["heartbeatInterval"]
    assert len(reads) == 2


def test_a_failing_read_answers_with_the_strategy_this_environment_read_last(stack, monkeypatch, logs):
    # Given a configured camera whose configuration this environment has read
    write_config(stack, SERIAL, CONFIG)
    assert post(heartbeat(event_id=20))[1]["info"]["strategy"] == CONFIG["strategy"]
    # When the table cannot be read at its next heartbeat
    failing_reads(monkeypatch)
    status, answer = post(heartbeat(event_id=21))
    # Then it is still answered, with the strategy read last rather than the deployment default
    assert status == 200 and answer["result"]["errorNo"] == 0
    assert answer["info"]["strategy"] == CONFIG["strategy"]
    assert answer["info"]["heartbeatInterval"] == CONFIG["heartbeatInterval"]
    assert "answering with the last one read" in logs()
    # And a camera this environment never read is told to retry (503), not the default in place
    # of a configuration it may have: its heartbeat is stored, the retry answered in full
    other_status, other = post(heartbeat(event_id=1, serial="I320013590DEA0BE21F0002"))
    assert other_status == 503 and other["result"]["errorNo"] == 503


def test_an_unchanged_configuration_is_handed_out_as_the_same_map(stack):
    from devicegate.store.configs import DeviceConfigs

    # Given a configured camera, read once
    write_config(stack, SERIAL, CONFIG)
    configs = DeviceConfigs(stack.ddb, stack.table)
    first = configs.get("ai-camera", SERIAL)
    # When it is read again unchanged, then after an app changed it
    again = configs.get("ai-camera", SERIAL)
    write_config(stack, SERIAL, {**CONFIG, "heartbeatInterval": 45})
    changed = configs.get("ai-camera", SERIAL)
    # Then the unchanged read is the same object (the adapter validates once per change, not per
    # heartbeat) and the changed one is new
    assert again is first and first == CONFIG
    assert changed is not first and changed["heartbeatInterval"] == 45


def test_an_invalid_configuration_written_by_an_app_falls_back_to_the_default(stack):
    # Given an app that wrote a strategy with an unknown switch
    write_config(stack, SERIAL, {"heartbeatInterval": 30, "strategy": {"isTeleportDetectEnable": True}})
    # When the camera beats
    status, answer = post(heartbeat())
    # Then it is still acknowledged, with the deployment default
    assert status == 200 and answer["result"]["errorNo"] == 0
    assert answer["info"]["heartbeatInterval"] == 60 and "strategy" not in answer["info"]


def test_other_operators_are_stored_as_their_own_kind_and_acknowledged(stack):
    # Given a detection event the document does not cover
    event = load_event("ai-camera/http-variation-unknown-operator.json")
    # When it is pushed twice
    first, second = post(event), post(event)
    # Then it is acknowledged as {operator}-Ack, stored once with everything it carried
    assert first == second
    status, answer = first
    assert status == 200 and answer["operator"] == "personDetect-Ack"
    assert answer["result"] == {"errorNo": 0, "description": "ok"} and answer["info"]["eventId"] == 1024
    [item] = stack.event_items("ai-camera")
    assert item["kind"] == "personDetect" and item["data"]["detection"]["personCount"] == 2
    [message] = run_outbox(stack)
    assert message["type"] == "devicegate.ai-camera.personDetect"


def test_device_info_is_kept_in_device_state(stack):
    # Given a heartbeat that names the camera's address, type and versions
    post(load_event("ai-camera/http-doc-heartbeat.json"))
    # When the outbox runs
    run_outbox(stack)
    # Then the device's state shows them
    info = device_state(stack.ddb, stack.table, "ai-camera", SERIAL)["state"]["deviceInfo"]
    assert info["IP"] == "192.168.1.233" and info["MAC"] == "5a:58:12:7f:23:a2"
    assert info["deviceType"] == "0x0002" and info["deviceVersion"] == "V1.0.0"
    assert info["strategyVersion"] == "v1.0.0"


@pytest.mark.parametrize("body, status", [
    ("{not json", 400),
    (json.dumps({"operator": "heartbeat", "deviceInfo": {}, "info": {"eventId": 1, "time": "2020-03-31T10:10:01+08"}}),
     400),
    (json.dumps({"operator": "heartbeat", "deviceInfo": {"serialNumber": SERIAL}, "info": {"eventId": 1,
                                                                                          "time": "yesterday"}}), 400),
])
def test_bad_input_is_refused_in_the_cameras_shape_and_kept(stack, body, status):
    code, answer = post(with_body(load_event("ai-camera/http-doc-heartbeat.json"), body))
    assert code == status and answer["result"]["errorNo"] == status and answer["errors"]
    assert stack.event_items("ai-camera") == []
    assert len(stack.quarantine_items("ai-camera")) == 1


def test_a_camera_goes_offline_after_three_missed_heartbeats_of_its_own_interval(stack, monkeypatch):
    # Given two cameras heard from now: one told to beat every 30 s, one on the default 60 s
    write_config(stack, SERIAL, CONFIG)
    post(heartbeat())
    post(heartbeat(serial="I320013590DEA0BE21F0002"))
    run_outbox(stack)
    heard = parse_time(stack.state("ai-camera", SERIAL)["summary"]["heardAt"])

    def sweep(after_s: int) -> dict:
        monkeypatch.setattr(sweep_app, "now_utc", lambda: heard + timedelta(seconds=after_s))
        return sweep_app.lambda_handler({}, context("DeviceSweepFunction"))

    # When the sweep runs 3 x 30 + 30 s later (plus a little), then 3 x 60 + 30 s later
    assert sweep(125)["markedOffline"] == 1
    offline = [d["deviceId"] for d in offline_devices(stack.ddb, stack.table, "ai-camera")]
    assert offline == [SERIAL]
    assert sweep(215)["markedOffline"] == 1
    # Then each went offline after its own interval, with one device.offline event each
    assert sorted(d["deviceId"] for d in offline_devices(stack.ddb, stack.table, "ai-camera")) == sorted(
        [SERIAL, "I320013590DEA0BE21F0002"])
    messages = run_outbox(stack)
    # (offline since last contact + its interval, three heartbeats: as for every vendor)
    assert sorted(m["data"]["data"]["offlineAfterSeconds"] for m in messages) == [90, 180]

    # When the 30 s camera beats again
    post(heartbeat(event_id=2, time="2020-03-31T10:20:00+08"))
    run_outbox(stack)
    # Then it is back online
    assert [d["deviceId"] for d in offline_devices(stack.ddb, stack.table, "ai-camera")] == [
        "I320013590DEA0BE21F0002"]
    assert copy.deepcopy(stack.state("ai-camera", SERIAL)["summary"])["online"] is True
