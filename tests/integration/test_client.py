"""The typed client (devicegate.client) against the moto stack: every access pattern of
docs/consuming.md as a method, typed, and a list that says when there is more."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devicegate.client import DeviceGate, NotAnEvent, parse_body, parse_record
from devicegate.client.models import AlarmLifecycle, DeviceRow, DeviceState, Event, QuarantinedPayload
from devicegate.vendors.jointech.adapter import JointechAdapter
from tests.integration.test_cli_queries import _push_history
from tests.integration.test_jointech_ingest import mqtt, post, run_outbox
from tests.support import load_event

DEVICE = "8052400203"


@pytest.fixture
def gate(stack) -> DeviceGate:
    return DeviceGate(stack.table, stack.session.client("dynamodb"))


def test_a_timeline_is_typed_newest_first_and_says_when_there_is_more(stack, gate):
    # Given three locations and an alarm of one device
    _push_history()
    # When reading its timeline two at a time, then whole, then one kind
    first = gate.timeline("jointech", DEVICE, limit=2)
    whole = gate.timeline("jointech", DEVICE, limit=None)
    alarms = gate.timeline("jointech", DEVICE, kind="alarm", limit=4)
    # Then the first page says there is more, the whole list does not, and events are typed
    assert first.more and [e.occurredAt for e in first.items] == [
        datetime(2025, 2, 7, 10, tzinfo=UTC), datetime(2025, 2, 7, 9, 30, tzinfo=UTC)]
    assert not whole.more and len(whole.items) == 4
    assert [e.kind for e in alarms.items] == ["alarm"] and not alarms.more
    # ... a limit exactly the list's length has no more
    assert not gate.timeline("jointech", DEVICE, limit=4).more
    location = whole.items[0]
    assert isinstance(location, Event) and location.type == "devicegate.jointech.location"
    assert location.power is not None and location.power.batteryPct == 80
    # ... and one event reads back by its id, with or without its time
    again = gate.event("jointech", DEVICE, location.eventId)
    stored_time = gate.plain.timeline("jointech", DEVICE, limit=1).items[0]["occurredAt"]
    assert again == location == gate.event("jointech", DEVICE, location.eventId, occurred_at=stored_time)
    assert gate.event("jointech", DEVICE, "no-such-id") is None


def test_state_devices_and_fleet_alarms(stack, gate):
    _push_history()
    mqtt(load_event("jointech/iot-mqtt-alarm.json"))
    run_outbox(stack)
    state = gate.state("jointech", DEVICE)
    assert isinstance(state, DeviceState) and state.lastSeen == datetime(2025, 2, 7, 10, tzinfo=UTC)
    assert state.power is not None and state.power.batteryPct == 80 and state.online is True
    assert gate.state("jointech", "never-heard") is None
    devices = gate.devices("jointech")
    assert not devices.more and all(isinstance(d, DeviceRow) for d in devices.items)
    assert {d.deviceId for d in devices.items} == {DEVICE, "8454601010"}
    one = gate.devices("jointech", limit=1)
    assert one.more and len(one.items) == 1
    alarms = gate.alarms(since="2025-01-01")
    assert [a.deviceId for a in alarms.items] == [DEVICE] and not alarms.more
    assert gate.alarms(limit=1).more
    assert gate.alarms(vendor="mettax").items == []
    assert gate.offline().items == [] and not gate.offline().more


def test_alarm_lifecycles(stack, gate):
    from tests.integration.test_face_terminal_ingest import _alarm, push

    push(_alarm(1, 1684381433398, "T-OPEN"), {"device": "TERM-1"})
    push(_alarm(1, 1684381433999, "T-DONE"), {"device": "TERM-1"})
    push(_alarm(3, 1684381500000, "T-DONE"), {"device": "TERM-1"})
    run_outbox(stack)
    [open_one] = gate.alarms_in_status("face-terminal").items
    assert isinstance(open_one, AlarmLifecycle) and (open_one.alarmId, open_one.status) == ("T-OPEN", "open")
    lifecycles = {a.alarmId: a for a in gate.device_alarms("face-terminal", "TERM-1").items}
    assert lifecycles["T-DONE"].status == "released" and set(lifecycles["T-DONE"].steps) == {"open", "released"}
    assert lifecycles["T-DONE"].code == "10001"


def test_linked_events_and_assemblies_of_mettax(stack, gate):
    from tests.integration.test_mettax_ingest import post as mettax_post

    for name in ("http-doc-face-check-result.json", "http-doc-face-check-picture.json", "http-doc-alarm.json",
                 "http-doc-alarm-file.json"):
        mettax_post(load_event(f"mettax/{name}"))
    [assembly] = gate.assemblies("mettax", "333777444585").items
    assert set(assembly.parts) == {"result", "picture"} and assembly.kind == "face-check"
    files = gate.linked("mettax", "alarm:1924683352005763072")
    assert [e.kind for e in files.items] == ["alarm-file"] and not files.more


def test_quarantine_list_and_one_payload(stack, gate, monkeypatch):
    def broken(self, push, received_at):
        raise RuntimeError("bug")

    monkeypatch.setattr(JointechAdapter, "normalize", broken)
    post(load_event("jointech/http-webhook-alarm.json"))
    [waiting] = gate.quarantined("jointech").items
    assert isinstance(waiting, QuarantinedPayload) and waiting.seenCount == 1 and waiting.body
    one = gate.quarantined_payload("jointech", waiting.id)
    assert one is not None and one.id == waiting.id and one.body == waiting.body
    assert gate.quarantined_payload("jointech", "0" * 40) is None


def test_a_shard_count_other_than_the_default_reads_every_shard(stack):
    # The table was written with the template's Shards (8); a reader told 16 still finds them
    # (shards 8-15 are empty), one told fewer would not: Shards comes from the stack's output.
    _push_history()
    run_outbox(stack)
    wide = DeviceGate(stack.table, stack.session.client("dynamodb"), shards=16)
    assert {d.deviceId for d in wide.devices("jointech").items} == {DEVICE}


def test_a_limit_below_one_is_a_mistake(gate):
    with pytest.raises(ValueError, match="limit"):
        gate.timeline("jointech", DEVICE, limit=0)


def test_queue_messages_parse_from_every_queue_shape(stack):
    # Given a published location, read from EventsQueue with its attributes
    _push_history()
    run_outbox(stack)
    sqs = stack.session.client("sqs")
    got = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1, MessageAttributeNames=["All"],
                              AttributeNames=["All"])["Messages"][0]
    # When parsed as boto3 gives it, as a Lambda record, and wrapped by SNS without raw delivery
    event = parse_record(got)
    lambda_record = {"messageId": got["MessageId"], "body": got["Body"], "messageAttributes": {
        k: {"stringValue": v["StringValue"], "dataType": "String"} for k, v in got["MessageAttributes"].items()}}
    envelope = json.dumps({"Type": "Notification", "Message": got["Body"], "MessageAttributes": {
        k: {"Type": "String", "Value": v["StringValue"]} for k, v in got["MessageAttributes"].items()}})
    # Then each is the same typed CloudEvent
    assert parse_record(lambda_record) == event == parse_body(envelope) == parse_body(got["Body"])
    assert event.type == "devicegate.jointech.location" and event.data.deviceId == DEVICE
    assert event.data.power is not None
    # ... and attributes that contradict the body, or a body that is no event, are refused
    lambda_record["messageAttributes"]["vendor"]["stringValue"] = "mettax"
    with pytest.raises(NotAnEvent, match="vendor"):
        parse_record(lambda_record)
    with pytest.raises(NotAnEvent):
        parse_body('{"hello": 1}')
    with pytest.raises(NotAnEvent):
        parse_body("not json")


def test_from_stack_reads_the_table_and_shards_from_the_outputs(stack):
    # Given a stack whose outputs name the table and 4 shards
    template = {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {"EventsTableName": {"Value": stack.table}, "Shards": {"Value": "4"}}}
    stack.session.client("cloudformation").create_stack(StackName="dg", TemplateBody=json.dumps(template))
    _push_history()
    run_outbox(stack)
    # When the client is built from it (botocore's own clients, no boto3 needed)
    gate = DeviceGate.from_stack("dg", region="us-east-1")
    # Then it reads that table, over that many shards
    assert gate.table == stack.table and gate.plain.shards == 4
    assert gate.state("jointech", DEVICE) is not None


def test_without_a_client_one_is_made_on_first_use(stack):
    _push_history()
    assert DeviceGate(stack.table).timeline("jointech", DEVICE, limit=1).more


def test_the_cli_says_there_may_be_more_only_when_the_client_found_more(stack, cli):
    # Given one alarm in the fleet
    _push_history()
    # When listing alarms one at a time: exactly the list, nothing said
    code, out = cli("alarms", "--limit", "1", "--json")
    assert code == 0 and len(json.loads(out)) == 1 and "older ones are not shown" not in cli.err
    # ... and with a second alarm, the page of one says there is more
    mqtt(load_event("jointech/iot-mqtt-alarm.json"))
    code, out = cli("alarms", "--limit", "1", "--json")
    assert code == 0 and len(json.loads(out)) == 1 and "(the newest 1 alarms; older ones are not shown" in cli.err


def test_the_fleet_list_is_typed_newest_first_across_vendors_and_says_when_there_is_more(stack, gate):
    # Given events of two Jointech devices and a face terminal record, their devices listed
    from tests.integration.test_fleet_events import _fleet

    stored = _fleet(stack)
    # When the fleet's events are read whole, then two, then one vendor's alarms
    whole = gate.fleet(limit=None)
    two = gate.fleet(limit=2)
    alarms = gate.fleet(vendors=["jointech"], kind="alarm")
    # Then every stored event is there once, newest first, typed; the short page says there is more
    assert sorted(e.eventId for e in whole.items) == sorted(i["eventId"] for i in stored)
    assert [e.occurredAt for e in whole.items] == sorted((e.occurredAt for e in whole.items), reverse=True)
    assert two.more and two.items == whole.items[:2] and not whole.more
    assert [(e.vendor, e.kind) for e in alarms.items] == [("jointech", "alarm")]


def test_the_tail_yields_typed_events_stored_after_it_started(stack, gate, monkeypatch):
    # Given an alarm stored before the tail starts (the waits between polls skipped)
    from devicegate.store import stream_tail

    monkeypatch.setattr(stream_tail, "wait", lambda seconds: None)
    post(load_event("jointech/http-webhook-alarm.json"))
    seen: list[Event] = []
    polls = []

    def stop() -> bool:
        # Asked before each read, once the tail stands at the stream's end: the first time, the
        # device's history is stored; the tail stops once it has shown it, or after 50 reads
        if not polls:
            _push_history()
        polls.append(1)
        return len(seen) >= 4 or len(polls) > 50

    # When tailing Jointech's events
    for event in gate.tail(vendor="jointech", stop=stop):
        seen.append(event)
    # Then the four stored after it started come, typed, in the order they were stored
    assert [(e.kind, e.occurredAt.hour) for e in seen] == [("location", 8), ("location", 9), ("location", 10),
                                                           ("alarm", 9)]
    assert all(isinstance(e, Event) for e in seen)


def test_many_devices_states_are_read_at_once_and_typed(stack, gate):
    # Given two devices heard from
    _push_history()
    run_outbox(stack)
    # When reading their states and one never heard from
    states = gate.states("jointech", [DEVICE, "never-heard"])
    # Then each heard one is there, typed, as state() gives it alone; the other is absent
    assert set(states) == {DEVICE}
    assert states[DEVICE] == gate.state("jointech", DEVICE)
    assert states[DEVICE].power is not None and states[DEVICE].power.batteryPct == 80
