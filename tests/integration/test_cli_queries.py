"""The query CLI and the access patterns behind it, against the moto stack."""

from __future__ import annotations

import json

import pytest

from devicegate.vendors.jointech.adapter import JointechAdapter
from devicegate_cli import commands
from devicegate_cli.main import main
from tests.integration.test_jointech_ingest import mqtt, post, run_outbox
from tests.support import load_event, load_record, with_body


def _push_history():
    base = load_event("jointech/http-webhook-location.json")
    for hour, battery in ((8, 90), (9, 85), (10, 80)):
        record = load_record("jointech", "mqtt-location")
        record.update(gpsTime=f"2025-02-07T{hour:02d}:00:00Z", battery=battery, locType=1)
        post(with_body(base, json.dumps(record)))
    alarm = load_record("jointech", "mqtt-alarm")
    alarm.update(assetId="8052400203", dateTime="2025-02-07T09:30:00Z")
    post(with_body(load_event("jointech/http-webhook-alarm.json"), json.dumps(alarm)))


def test_events_newest_first_with_kind_and_since(stack, cli):
    # Given three locations and an alarm for one device
    _push_history()
    # When listing all, only alarms, and since 09:00
    _, everything = cli("events", "--vendor", "jointech", "--device", "8052400203", "--json")
    _, alarms = cli("events", "--vendor", "jointech", "--device", "8052400203", "--kind", "alarm", "--json")
    _, recent = cli("events", "--vendor", "jointech", "--device", "8052400203", "--since", "2025-02-07T09:00:00Z",
                    "--limit", "2", "--json")
    # Then order, filter and limit follow the options
    times = [e["occurredAt"] for e in json.loads(everything)]
    assert times == ["2025-02-07T10:00:00.000Z", "2025-02-07T09:30:00.000Z",
                     "2025-02-07T09:00:00.000Z", "2025-02-07T08:00:00.000Z"]
    assert [e["kind"] for e in json.loads(alarms)] == ["alarm"]
    assert [e["occurredAt"] for e in json.loads(recent)] == times[:2]
    assert set(json.loads(everything)[0]) >= {"vendor", "deviceId", "kind", "eventId", "occurredAt",
                                              "receivedAt", "data"}


def test_events_human_output_is_a_table(stack, cli):
    _push_history()
    code, out = cli("events", "--vendor", "jointech", "--device", "8052400203")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["OCCURREDAT", "KIND", "EVENTID", "SUMMARY"]
    assert len(lines) == 5 and "alarmName=Swiping illegal RFID card" in out


def test_state_json_has_vendor_device_last_seen_and_values(stack, cli):
    _push_history()
    run_outbox(stack)
    code, out = cli("state", "--vendor", "jointech", "--device", "8052400203", "--json")
    state = json.loads(out)
    assert code == 0
    assert state["vendor"] == "jointech" and state["deviceId"] == "8052400203"
    assert state["lastSeen"] == "2025-02-07T10:00:00.000Z"
    assert state["state"]["power"]["batteryPct"] == 80
    assert state["state"]["alarm"]["code"] == "44" and state["state"]["alarm"]["severity"] == "critical"
    code, human = cli("state", "--vendor", "jointech", "--device", "8052400203")
    assert "last seen 2025-02-07T10:00:00.000Z" in human


def test_state_of_an_unknown_device_is_a_clear_error(stack, cli):
    code, _ = cli("state", "--vendor", "jointech", "--device", "nope")
    assert code == 1


def test_devices_and_fleet_alarms_and_event_by_id(stack, cli):
    _push_history()
    mqtt(load_event("jointech/iot-mqtt-alarm.json"))
    run_outbox(stack)
    _, devices = cli("devices", "--vendor", "jointech", "--json")
    assert {d["deviceId"]: d["lastSeen"] for d in json.loads(devices)} == {
        "8052400203": "2025-02-07T10:00:00.000Z", "8454601010": "2020-04-01T00:00:25.000Z"}
    _, alarms = cli("alarms", "--since", "2025-01-01T00:00:00Z", "--json")
    [alarm] = json.loads(alarms)
    assert alarm["deviceId"] == "8052400203"
    _, one = cli("event", "--vendor", "jointech", "--device", alarm["deviceId"], "--id", alarm["eventId"])
    assert json.loads(one)["eventId"] == alarm["eventId"]


def test_replay_reingests_quarantined_payloads_after_a_fix(stack, cli, monkeypatch):
    # Given a bug in the adapter that quarantined a valid record
    original = JointechAdapter.normalize

    def broken(self, push, received_at):
        raise RuntimeError("bug")

    monkeypatch.setattr(JointechAdapter, "normalize", broken)
    status, _ = post(load_event("jointech/http-webhook-alarm.json"))
    assert status == 400 and stack.event_items() == []
    _, listed = cli("quarantine", "--vendor", "jointech", "--json")
    [entry] = json.loads(listed)

    # When the fix is deployed and the operator replays
    monkeypatch.setattr(JointechAdapter, "normalize", original)
    code, out = cli("replay", "--vendor", "jointech")
    run_outbox(stack)

    # Then the record is stored once and published once, and leaves the quarantine list
    assert code == 0 and entry["id"] in out and "stored" in out
    assert len(stack.event_items()) == 1 and len(stack.queue_messages()) == 1
    _, listed_after = cli("quarantine", "--vendor", "jointech", "--json")
    assert json.loads(listed_after) == []
    [kept] = stack.quarantine_items()
    assert kept["replayedEventIds"] == [stack.event_items()[0]["eventId"]]


def test_replay_leaves_still_invalid_payloads_and_says_so(stack, cli):
    post(with_body(load_event("jointech/http-webhook-location.json"), "{broken"))
    code, out = cli("replay", "--vendor", "jointech")
    assert code == 2 and "still-invalid" in out
    assert len(json.loads(cli("quarantine", "--vendor", "jointech", "--json")[1])) == 1


def test_replay_of_an_mqtt_payload_keeps_its_topic_route(stack, cli, monkeypatch):
    original = JointechAdapter.normalize
    monkeypatch.setattr(JointechAdapter, "normalize", lambda self, push, at: 1 / 0)
    mqtt(load_event("jointech/iot-mqtt-sublock.json"))
    monkeypatch.setattr(JointechAdapter, "normalize", original)
    code, _ = cli("replay", "--vendor", "jointech")
    [item] = stack.event_items()
    assert code == 0 and item["kind"] == "sublock" and item["transport"] == "mqtt"


def test_redrive_reingests_events_parked_in_the_ingest_failure_queue(stack, cli):
    # Given two MQTT events Lambda gave up on (storage was down), as its failure destination
    # records them, one of them also invalid
    sqs = stack.session.client("sqs")
    url = sqs.get_queue_url(QueueName="devicegate-local-IngestFailureQueue")["QueueUrl"]
    good = load_event("jointech/iot-mqtt-alarm.json")
    bad = dict(load_event("jointech/iot-mqtt-location.json"), gpsTime="not a time")
    for payload in (good, bad):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
            "version": "1.0", "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": payload, "responseContext": {"statusCode": 200, "functionError": "Unhandled"}}))
    # When the operator redrives the queue
    code, out = cli("redrive", "--vendor", "jointech", "--source", "ingest-queue")
    # Then the good one is stored, the bad one quarantined, and the queue is empty
    assert code == 0 and "stored" in out and "quarantined" in out
    [item] = stack.event_items()
    assert item["kind"] == "alarm" and item["transport"] == "mqtt"
    [kept] = stack.quarantine_items()
    assert kept["kind"] == "location" and kept["route"]["deviceNum"] == "8052400203"
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None


def test_redrive_reingests_messages_the_iot_rule_could_not_deliver(stack, cli):
    import base64

    # Given an IoT rule errorAction record in the bucket (topic + original payload, base64)
    record = load_record("jointech", "mqtt-sublock")
    s3 = stack.session.client("s3")
    key = "quarantine/iot-errors/jointech/upload_ak_8052400203_E0171E0366_sublock/1738912514000-x.json"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=json.dumps({
        "ruleName": "JointechSublockRule", "topic": "upload/ak/8052400203/E0171E0366/sublock",
        "base64OriginalPayload": base64.b64encode(json.dumps(record).encode()).decode(),
        "failures": [{"failedAction": "LambdaAction", "errorMessage": "throttled"}]}))
    # When the operator redrives them
    code, out = cli("redrive", "--vendor", "jointech", "--source", "iot-errors")
    # Then the slave-lock record is stored as the rule would have delivered it, and the object is gone
    assert code == 0 and "stored" in out
    [item] = stack.event_items()
    assert item["kind"] == "sublock" and item["data"]["subAssetID"] == "E0171E0366"
    assert "Contents" not in s3.list_objects_v2(Bucket=stack.bucket, Prefix="quarantine/iot-errors/")


def test_a_redrive_takes_only_the_named_vendors_iot_errors_and_refuses_a_vendor_without_mqtt(stack, cli):
    import base64

    # Given a Jointech MQTT message the IoT rule could not deliver
    record = load_record("jointech", "mqtt-location")
    s3 = stack.session.client("s3")
    key = "quarantine/iot-errors/jointech/upload_ak_8052400203_location/1738912514000-x.json"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=json.dumps({
        "ruleName": "JointechRecordRule", "topic": "upload/ak/8052400203/location",
        "base64OriginalPayload": base64.b64encode(json.dumps(record).encode()).decode(), "failures": []}))
    # When the operator redrives (and first dry-runs) another vendor's errors, or an unknown vendor's
    for argv in (["--vendor", "mettax"], ["--vendor", "mettax", "--dry-run"], ["--vendor", "jointeck"]):
        code, out = cli("redrive", "--source", "iot-errors", *argv)
        # Then it is refused in one line naming why, and the Jointech object is untouched
        assert code == 2 and out == "" and len(cli.err.strip().splitlines()) == 1 and "Traceback" not in cli.err
    assert cli("redrive", "--source", "ingest-queue", "--vendor", "face-terminal") == (2, "")
    assert "face-terminal sends nothing through AWS IoT Core" in cli.err
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=stack.bucket, Prefix="quarantine/")["Contents"]] == [key]
    assert stack.quarantine_items("mettax") == [] and stack.event_items() == []
    # And the named vendor's redrive takes it, predicted by the dry run, and nothing filed under
    # another vendor (a second MQTT vendor's rules write under their own name)
    elsewhere = "quarantine/iot-errors/acme/upload_x/1-y.json"
    s3.put_object(Bucket=stack.bucket, Key=elsewhere, Body=b"{}")
    code, out = cli("redrive", "--vendor", "jointech", "--source", "iot-errors", "--dry-run")
    assert code == 0 and out.startswith(f"{key}  would-replay") and "acme" not in out
    code, out = cli("redrive", "--vendor", "jointech", "--source", "iot-errors")
    assert code == 0 and f"{key}  stored" in out and "acme" not in out and len(stack.event_items()) == 1
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=stack.bucket, Prefix="quarantine/")["Contents"]] == [
        elsewhere]


def test_replay_uses_the_deployed_retention(stack, cli, monkeypatch):
    # Given a quarantined location (adapter bug), replayed with the template's RetentionDays
    original = JointechAdapter.normalize
    monkeypatch.setattr(JointechAdapter, "normalize", lambda self, push, at: 1 / 0)
    post(load_event("jointech/http-webhook-location.json"))
    monkeypatch.setattr(JointechAdapter, "normalize", original)
    cli("replay", "--vendor", "jointech")
    [item] = stack.event_items()
    # Then the event expires after the location retention (30 days), not the default (90)
    from datetime import datetime

    received = datetime.fromisoformat(item["receivedAt"]).timestamp()
    assert round((item["expiresAt"] - received) / 86400) == 30


def test_redrive_republishes_outbox_batches_that_gave_up(stack, cli):
    # Given a stored event whose stream batch the outbox gave up on (its failure record, in the
    # format Lambda writes to OutboxFailureQueue), and nothing published yet
    post(load_event("jointech/http-webhook-alarm.json"))
    [record] = stack.new_stream_records()
    sqs = stack.session.client("sqs")
    failures = sqs.get_queue_url(QueueName="devicegate-local-OutboxFailureQueue")["QueueUrl"]
    seq = record["dynamodb"]["SequenceNumber"]
    arn = stack.ddb.describe_table(TableName=stack.table)["Table"]["LatestStreamArn"]
    shard = stack.session.client("dynamodbstreams").describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    sqs.send_message(QueueUrl=failures, MessageBody=json.dumps({"version": "1.0", "DDBStreamBatchInfo": {
        "shardId": shard["ShardId"], "startSequenceNumber": seq, "endSequenceNumber": seq, "batchSize": 1,
        "streamArn": arn}}))
    # When the operator redrives the outbox failures
    code, out = cli("redrive", "--vendor", "jointech", "--source", "outbox-failures")
    # Then the event reaches the queue once, device state is set, and the failure record is gone
    assert code == 0 and "published" in out
    [message] = stack.queue_messages()
    assert message["type"] == "devicegate.jointech.alarm"
    assert stack.state("jointech", "875011000025")["alarm"]["value"]["code"] == "46"
    assert sqs.receive_message(QueueUrl=failures).get("Messages") is None



def test_alarm_lifecycles_from_the_shell(stack, cli):
    # Given a face terminal that raised two alarms and released one
    from tests.integration.test_face_terminal_ingest import _alarm, push

    push(_alarm(1, 1684381433398, "T-OPEN"), {"device": "TERM-1"})
    push(_alarm(1, 1684381433999, "T-DONE"), {"device": "TERM-1"})
    push(_alarm(3, 1684381500000, "T-DONE"), {"device": "TERM-1"})
    run_outbox(stack)

    # When the operator lists the open alarms, and the device's alarms
    code, out = cli("alarms", "--vendor", "face-terminal", "--status", "open", "--json")
    assert code == 0
    assert [(a["alarmId"], a["status"]) for a in json.loads(out)] == [("T-OPEN", "open")]
    code, out = cli("alarms", "--vendor", "face-terminal", "--device", "TERM-1")
    # Then the table shows both with their status and the alarm's name
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["STATUSAT", "DEVICEID", "ALARMID", "STATUS", "WHAT"]
    # (a released alarm still says what it was: its raise step's code and name)
    assert any("T-DONE" in line and "released" in line and "10001 tamper" in line for line in lines[1:])
    assert any("T-OPEN" in line and "open" in line and "10001 tamper" in line for line in lines[1:])


def test_face_terminal_events_show_names_of_codes_not_of_people(stack, cli):
    from tests.integration.test_face_terminal_ingest import post as face_post

    face_post(load_event("face-terminal/http-variation-record-with-photo-and-pin.json"))
    code, out = cli("events", "--vendor", "face-terminal", "--device", "PSC700C0MC22F02542")
    assert code == 0 and "recognitionTypeName=employee" in out and "王五" not in out


def test_replayed_face_terminal_record_keeps_its_photo_and_device_and_never_its_pin(stack, cli, monkeypatch):
    # Given an adapter bug that quarantined a terminal alarm with a photo (attributed by ?device=)
    # and a record carrying a PIN
    from devicegate.vendors.face_terminal.adapter import FaceTerminalAdapter
    from tests.integration.test_face_terminal_ingest import objects
    from tests.integration.test_face_terminal_ingest import post as face_post

    original = FaceTerminalAdapter.normalize

    def broken(self, push, received_at):
        raise RuntimeError("bug")

    monkeypatch.setattr(FaceTerminalAdapter, "normalize", broken)
    alarm = load_event("face-terminal/http-doc-alarm-raised-with-device.json")
    record = load_event("face-terminal/http-variation-record-with-photo-and-pin.json")
    assert face_post(alarm)[0] == 400 and face_post(record)[0] == 400

    # When the fix is deployed and the operator replays
    monkeypatch.setattr(FaceTerminalAdapter, "normalize", original)
    code, out = cli("replay", "--vendor", "face-terminal")

    # Then both are stored as ingest would have stored them: the alarm on its terminal, the
    # record with its photo in S3, and no PIN anywhere
    assert code == 0 and out.count("  stored  ") == 2 and out.splitlines()[-1] == "2 stored"
    items = {i["kind"]: i for i in stack.event_items("face-terminal")}
    assert items["alarm"]["deviceId"] == "PSC700C0MC22F02542"
    assert "pin" not in items["record"]["data"]["user"]
    assert items["record"]["data"]["rgb_image"]["key"] in objects(stack)


# --- endpoints ---------------------------------------------------------------------------------

LOCAL_MOTO = "http://127.0.0.1:5000"


@pytest.fixture
def endpoint_env(aws_env, monkeypatch, tmp_path):
    """No endpoint configured anywhere: no AWS_ENDPOINT_URL* variables, an empty config file."""
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_", "DEVICEGATE_ENDPOINT")):
            monkeypatch.delenv(name)
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return monkeypatch


@pytest.mark.parametrize("env, options, expected", [
    ({}, [], {"dynamodb": LOCAL_MOTO, "s3": LOCAL_MOTO, "dynamodbstreams": LOCAL_MOTO}),
    ({"AWS_ENDPOINT_URL": "http://global:1"}, [],
     {"dynamodb": "http://global:1", "s3": "http://global:1", "sqs": "http://global:1"}),
    ({"AWS_ENDPOINT_URL": "http://global:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://ddb:2",
      "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": "http://streams:3"}, [],
     {"dynamodb": "http://ddb:2", "dynamodbstreams": "http://streams:3", "s3": "http://global:1"}),
    ({"AWS_ENDPOINT_URL_S3": "http://s3:4"}, [], {"s3": "http://s3:4", "dynamodb": LOCAL_MOTO}),
    ({"AWS_ENDPOINT_URL": "http://global:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://ddb:2"},
     ["--endpoint-url", "http://explicit:5"], {"dynamodb": "http://explicit:5", "s3": "http://explicit:5"}),
    ({"DEVICEGATE_ENDPOINT": "http://devicegate:6", "AWS_ENDPOINT_URL_DYNAMODB": "http://ddb:2"}, [],
     {"dynamodb": "http://devicegate:6", "sqs": "http://devicegate:6"}),
    ({"AWS_ENDPOINT_URL": "http://global:1", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}, [],
     {"dynamodb": LOCAL_MOTO}),
], ids=["local-default", "aws-endpoint-url", "service-specific-wins", "only-that-service", "explicit-wins",
        "devicegate-endpoint", "botocore-told-to-ignore"])
def test_every_command_takes_its_endpoints_from_one_place(endpoint_env, env, options, expected):
    # Given the endpoint settings of the shell (and the command line)
    for name, value in env.items():
        endpoint_env.setenv(name, value)
    # When any query command resolves where it talks to (strategy's and redrive's clients are the same)
    for command in (["devices", "--offline"], ["quarantine", "--vendor", "jointech"],
                    ["redrive", "--vendor", "jointech", "--source", "outbox-failures"]):
        target = commands.resolve_target(commands.build_parser().parse_args([*command, *options]))
        # Then each service goes where botocore's rules say, the local stack being the last resort
        assert {service: target.client(service).meta.endpoint_url for service in expected} == expected


def test_the_config_files_services_section_counts_as_botocore_says(endpoint_env, tmp_path):
    (tmp_path / "config").write_text("[default]\nservices = here\n\n[services here]\ndynamodb =\n"
                                     "  endpoint_url = http://from-config:7\n")
    target = commands.resolve_target(commands.build_parser().parse_args(["devices", "--offline"]))
    assert target.client("dynamodb").meta.endpoint_url == "http://from-config:7"
    assert target.client("s3").meta.endpoint_url == LOCAL_MOTO


@pytest.fixture(scope="module")
def moto_server():
    """A moto server on a port of its own holding the template's resources, as a stack started
    with --moto-port would."""
    import urllib.request

    import boto3
    from moto.server import ThreadedMotoServer

    from devicegate_local.cfn_template import load_template
    from devicegate_local.names import LOCAL_CREDENTIALS
    from devicegate_local.resources import Resolver, create_resources
    from devicegate_local.stack import EndpointSession
    from tests.conftest import TEMPLATE

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    try:
        session = boto3.Session(region_name="us-east-1", **LOCAL_CREDENTIALS)
        create_resources(Resolver(load_template(TEMPLATE)), EndpointSession(session, endpoint), token="dev-token")
        yield endpoint
    finally:
        # The server shares this process's moto backends with the in-process tests that follow.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
        server.stop()


@pytest.fixture
def moto_elsewhere(moto_server, endpoint_env):
    """The CLI pointed at `moto_server` by AWS_ENDPOINT_URL only."""
    endpoint_env.setenv("AWS_ENDPOINT_URL", moto_server)
    endpoint_env.setenv("AWS_MAX_ATTEMPTS", "1")  # a wrong endpoint fails at once, not after retries
    return moto_server


COMMANDS_AGAINST_AN_EMPTY_STACK = [
    (["quarantine", "--vendor", "jointech", "--json"], 0, "[]"),
    (["devices", "--vendor", "jointech", "--json"], 0, "[]"),
    (["devices", "--offline", "--json"], 0, "[]"),
    (["events", "--vendor", "jointech", "--device", "8052400203", "--json"], 2, "no jointech device '8052400203'"),
    (["state", "--vendor", "jointech", "--device", "8052400203"], 1, "no state for jointech device"),
    (["links", "--vendor", "mettax", "--id", "x", "--json"], 0, "[]"),
    (["parts", "--vendor", "mettax", "--device", "x", "--json"], 0, "[]"),
    (["alarms", "--json"], 0, "[]"),
    (["alarms", "--vendor", "face-terminal", "--status", "open", "--json"], 0, "[]"),
    (["event", "--vendor", "jointech", "--device", "d", "--id", "x"], 1, "no jointech event x"),
    (["replay", "--vendor", "jointech", "--dry-run"], 0, "(none)"),
    (["redrive", "--vendor", "jointech", "--source", "ingest-queue", "--dry-run"], 0, "(none)"),
    (["redrive", "--vendor", "jointech", "--source", "iot-errors", "--dry-run"], 0, "(none)"),
    (["redrive", "--vendor", "jointech", "--source", "outbox-failures", "--dry-run"], 0, "(none)"),
    (["strategy", "get", "--device", "I320013590DEA0BE21F6958"], 0, "no device configuration"),
]


@pytest.mark.parametrize("argv, code, says", COMMANDS_AGAINST_AN_EMPTY_STACK,
                         ids=["-".join(w for w in argv if not w.startswith("-")) for argv, _, _ in
                              COMMANDS_AGAINST_AN_EMPTY_STACK])
def test_commands_reach_the_stack_that_aws_endpoint_url_names(moto_elsewhere, capsys, argv, code, says):
    # Given a local stack whose moto is not on the default port, named by AWS_ENDPOINT_URL only
    # When an operator runs a command without --endpoint-url
    got = main(argv)
    out, err = capsys.readouterr()
    # Then it read that stack
    assert got == code and says in out + err, out + err
    assert "Could not connect" not in err and "is the local stack running" not in err


def test_command_with_a_stack_looks_it_up_at_the_endpoint_it_is_given(endpoint_env, capsys):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    endpoint_env.setenv("AWS_MAX_ATTEMPTS", "1")
    # When `devicegate command` looks up a deployed stack's API with --endpoint-url
    code = main(["command", "status", "--device", "794308010642", "--stack", "devicegate", "--region", "us-east-1",
                 "--endpoint-url", closed])
    # Then its CloudFormation call went there (nothing listens: a one-line error naming it)
    assert code == 1 and closed in capsys.readouterr().err


# --- mistakes: one clear line on stderr, a non-zero exit, never a traceback ----------------------

@pytest.mark.parametrize("argv, says", [
    (["events", "--vendor", "jointeck", "--device", "8052400203"], "unknown vendor 'jointeck'; one of: ai-camera"),
    (["events", "--vendor", "Jointech", "--device", "8052400203"], "unknown vendor 'Jointech'"),
    (["events", "--vendor", "jointech", "--device", "8052400203", "--since", "yesterday"],
     "'yesterday' is not an ISO 8601 time"),
    (["events", "--vendor", "jointech", "--device", "8052400203", "--limit", "-1"], "'-1' is not a number of items"),
    (["events", "--vendor", "jointech", "--device", "8052400203", "--limit", "0"], "'0' is not a number of items"),
    (["events", "--vendor", "jointech", "--device", "8052400203", "--kind", "locaton"],
     "jointech has no kind 'locaton'; its kinds: location, alarm"),
    (["events", "--vendor", "jointech", "--device", "8052400203", "--since", "2025-02-08", "--until", "2025-02-07"],
     "is not before --until"),
    (["events", "--vendor", "jointech", "--device", "no-such-device"], "no jointech device 'no-such-device'"),
    (["alarms", "--vendor", "face-terminal", "--status", "opened"], "invalid choice: 'opened'"),
    (["alarms", "--since", "2025-02-08T00:00:00Z", "--until", "2025-02-01T00:00:00Z"], "is not before --until"),
    (["quarantine", "--vendor", "jointeck"], "unknown vendor 'jointeck'"),
    (["replay", "--vendor", "jointeck"], "unknown vendor 'jointeck'"),
    (["redrive", "--vendor", "jointeck", "--source", "iot-errors"], "unknown vendor 'jointeck'"),
    (["events", "--vendor", "jointech", "--device", "8052400203", "--limit", "2", "--all"], "not allowed with"),
    # A profile or region with no --stack would be ignored: the local stack has neither.
    (["events", "--vendor", "jointech", "--device", "8052400203", "--profile", "prod"], "give its --stack too"),
    (["urls", "--region", "eu-west-1"], "give its --stack too"),
    # Every command's parser tells a mistake in one line, the ones with sub-actions included.
    (["command", "status"], "the following arguments are required: --device"),
    (["command", "status", "--device", "794308010642", "--limit", "0"], "'0' is not a number of items"),
    (["command", "status", "--device", "794308010642", "--region", "eu-west-1"], "give its --stack too"),
    (["command", "send", "--device", "794308010642"], "one of the arguments --raw --command is required"),
    (["strategy", "get"], "the following arguments are required: --device"),
    (["strategy", "nosuch"], "invalid choice: 'nosuch'"),
])
def test_a_mistake_is_one_line_and_a_non_zero_exit(stack, cli, argv, says):
    _push_history()
    code, out = cli(*argv)
    assert code == 2 and out == "", out
    [line] = cli.err.strip().splitlines()
    assert says in line and "Traceback" not in cli.err


def test_a_listing_says_when_it_stopped_at_its_limit_and_all_takes_everything(stack, cli):
    _push_history()  # four events of one device
    code, out = cli("events", "--vendor", "jointech", "--device", "8052400203", "--limit", "2", "--json")
    assert code == 0 and len(json.loads(out)) == 2 and "the newest 2 events; older ones are not shown" in cli.err
    code, out = cli("events", "--vendor", "jointech", "--device", "8052400203", "--all", "--json")
    assert code == 0 and len(json.loads(out)) == 4 and cli.err == ""


def test_fleet_alarms_of_one_vendor_are_that_vendors_only(stack, cli):
    from tests.integration.test_face_terminal_ingest import _alarm, push

    _push_history()  # a Jointech alarm
    push(_alarm(1, 1684381433398, "T-1"), {"device": "TERM-1"})
    run_outbox(stack)
    _, everything = cli("alarms", "--json")
    _, jointech = cli("alarms", "--vendor", "jointech", "--json")
    assert sorted(a["vendor"] for a in json.loads(everything)) == ["face-terminal", "jointech"]
    assert [a["vendor"] for a in json.loads(jointech)] == ["jointech"]


def test_wide_output_cuts_no_cell(stack, cli):
    record = load_record("jointech", "mqtt-alarm")
    record.update(assetId="8052400203", describe="d" * 120)
    post(with_body(load_event("jointech/http-webhook-alarm.json"), json.dumps(record)))
    _, narrow = cli("events", "--vendor", "jointech", "--device", "8052400203")
    _, wide = cli("events", "--vendor", "jointech", "--device", "8052400203", "--wide")
    assert "…" in narrow and "…" not in wide and "d" * 100 not in narrow


def test_a_closed_pipe_ends_quietly_and_ctrl_c_in_one_line(stack, cli, monkeypatch):
    _push_history()

    def closed(*args, **kwargs):
        raise BrokenPipeError

    monkeypatch.setattr(commands, "print_events", closed)
    assert cli("events", "--vendor", "jointech", "--device", "8052400203") == (141, "")
    assert cli.err == ""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "print_events", interrupted)
    assert cli("events", "--vendor", "jointech", "--device", "8052400203") == (130, "")
    assert cli.err.strip() == "devicegate: interrupted"


def test_help_lists_every_command(stack, cli):
    from devicegate_cli.main import _OWN_PARSERS

    code, out = cli("--help")
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()}
    assert code == 0 and set(_OWN_PARSERS) <= listed
    assert {"events", "state", "devices", "alarms", "quarantine", "state-failures", "replay", "redrive"} <= listed


def test_a_command_whose_package_is_not_installed_says_what_to_install(monkeypatch, capsys):
    # An operator's machine with `pip install .` only: the LAN tools (devicegate-onprem) and the
    # local stack's libraries (the `local` extra) are not there.
    import sys

    from devicegate_cli.main import main

    # Imports fail as if it were not installed (its modules may be loaded by earlier tests).
    for name in ["devicegate_onprem", *(n for n in sys.modules if n.startswith("devicegate_onprem."))]:
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["senselink-bridge", "--help"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "pip install ./onprem" in err and "devicegate_onprem" in err
    # The local stack's libraries load when it starts (its --help needs none of them).
    import devicegate_local.stack

    def start_without_yaml(argv):
        import yaml  # noqa: F401  (the template loader's first import)

    monkeypatch.setitem(sys.modules, "yaml", None)
    monkeypatch.setattr(devicegate_local.stack, "main_local", start_without_yaml)
    assert main(["local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "--extra local" in err and "'yaml'" in err

    def broken(argv):
        import no_such_module_of_ours  # noqa: F401  (a bug, not a missing extra: its traceback stays)

    monkeypatch.setattr(devicegate_local.stack, "main_local", broken)
    with pytest.raises(ModuleNotFoundError):
        main(["local"])
