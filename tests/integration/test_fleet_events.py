"""The fleet's events in one list (store.queries.fleet_events, `devicegate events` without
--device) and the tail of the table's stream (store.stream_tail, `devicegate tail`), on moto."""

from __future__ import annotations

import json

import pytest

from devicegate.store import keys, queries
from devicegate.store.stream_tail import StreamTail, is_event_record, stream_arn
from devicegate.vendors import vendor_names
from tests.integration.test_cli_queries import _push_history
from tests.integration.test_face_terminal_ingest import post as face_post
from tests.integration.test_jointech_ingest import post, run_outbox
from tests.integration.test_mettax_ingest import post as mettax_post
from tests.support import load_event, load_record, with_body


def _fleet(stack) -> list[dict]:
    """Jointech (four events of one device, one of another), a face terminal record, a Mettax
    GPS fix; the outbox run, so every device is on its vendor's list."""
    _push_history()
    record = load_record("jointech", "mqtt-location")
    record.update(assetId="8052400999", gpsTime="2025-02-07T09:15:00Z", locType=1)
    post(with_body(load_event("jointech/http-webhook-location.json"), json.dumps(record)))
    assert face_post(load_event("face-terminal/http-doc-record.json"))[0] == 200
    assert mettax_post(load_event("mettax/http-doc-gps.json"))[0] == 200
    run_outbox(stack)
    return [i for v in vendor_names() for i in stack.event_items(v)]


def test_the_fleet_list_is_every_devices_events_newest_first(stack):
    # Given events of three vendors, four devices
    stored = _fleet(stack)
    # When the fleet's events are listed
    listed = queries.fleet_events(stack.ddb, stack.table, vendor_names(), limit=None)
    # Then every stored event is there once, newest first, as device_events shows them
    assert sorted(e["eventId"] for e in listed) == sorted(i["eventId"] for i in stored)
    times = [e["occurredAt"] for e in listed]
    assert times == sorted(times, reverse=True)
    assert {e["vendor"] for e in listed} == {"jointech", "face-terminal", "mettax"}
    one = queries.device_events(stack.ddb, stack.table, "jointech", "8052400203", limit=1)[0]
    assert next(e for e in listed if e["eventId"] == one["eventId"]) == one


def test_the_fleet_list_filters_by_vendor_kind_and_window_and_stops_at_its_limit(stack):
    _fleet(stack)
    everything = queries.fleet_events(stack.ddb, stack.table, vendor_names(), limit=None)
    # By vendor: only that vendor's devices are read
    jointech = queries.fleet_events(stack.ddb, stack.table, ["jointech"], limit=None)
    assert [e for e in everything if e["vendor"] == "jointech"] == jointech
    assert {e["deviceId"] for e in jointech} == {"8052400203", "8052400999"}
    # By kind, across vendors
    alarms = queries.fleet_events(stack.ddb, stack.table, vendor_names(), kind="alarm", limit=None)
    assert [(e["vendor"], e["kind"]) for e in alarms] == [("jointech", "alarm")]
    # By window [since, until): the 09:00 location and the other device's 09:15 fix, not 09:30 or 10:00
    window = queries.fleet_events(stack.ddb, stack.table, ["jointech"], since="2025-02-07T09:00:00.000Z",
                                  until="2025-02-07T09:30:00.000Z", limit=None)
    assert [(e["deviceId"], e["occurredAt"]) for e in window] == [
        ("8052400999", "2025-02-07T09:15:00.000Z"), ("8052400203", "2025-02-07T09:00:00.000Z")]
    # A limit keeps the newest, across devices
    newest = queries.fleet_events(stack.ddb, stack.table, vendor_names(), limit=3)
    assert newest == everything[:3]


def test_the_fleet_list_reads_no_more_than_limit_events_of_a_device(stack):
    # Given two Jointech devices, one with four events and one with one
    _fleet(stack)
    calls: list[dict] = []
    original = stack.ddb.query

    def recording(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    ddb = stack.ddb
    ddb.query = recording  # type: ignore[method-assign]
    # When two events are asked for
    listed = queries.fleet_events(ddb, stack.table, ["jointech"], limit=2)
    # Then the device list is one Query per shard, and each device's timeline one Query asking
    # for at most two items: a page's reads are bounded, however long a device's history
    timelines = [c for c in calls if "IndexName" not in c]
    assert len(listed) == 2
    assert len([c for c in calls if c.get("IndexName") == "gsi2"]) == keys.shard_count()
    assert sorted(c["ExpressionAttributeValues"][":pk"]["S"] for c in timelines) == [
        "E#jointech#8052400203", "E#jointech#8052400999"]
    assert [c["Limit"] for c in timelines] == [2, 2]


def test_an_empty_fleet_lists_nothing(stack):
    assert queries.fleet_events(stack.ddb, stack.table, vendor_names()) == []


# --- the tail ----------------------------------------------------------------------------------

def test_the_tail_yields_events_stored_after_it_started_and_nothing_else(stack):
    # Given an event stored before the tail starts
    post(load_event("jointech/http-webhook-alarm.json"))
    streams = stack.session.client("dynamodbstreams")
    tail = StreamTail(streams, stream_arn(stack.ddb, stack.table), sleep=lambda s: None)
    tail.start()
    assert tail.poll() == []
    # When events are stored, and the outbox writes device state items (not events)
    _push_history()
    run_outbox(stack)
    # Then the tail yields the new events, in the order they were stored, as envelopes
    got = tail.poll()
    assert [e["occurredAt"] for e in got] == ["2025-02-07T08:00:00.000Z", "2025-02-07T09:00:00.000Z",
                                              "2025-02-07T10:00:00.000Z", "2025-02-07T09:30:00.000Z"]
    assert got[-1]["kind"] == "alarm" and isinstance(got[-1]["data"], dict)
    assert got[0] == queries.device_events(stack.ddb, stack.table, "jointech", "8052400203",
                                           until="2025-02-07T08:00:01Z", limit=1)[0]
    # And nothing more once read (the state items the outbox wrote are not events)
    assert tail.poll() == []


def test_the_tail_filters_by_vendor_and_kind(stack):
    streams = stack.session.client("dynamodbstreams")
    arn = stream_arn(stack.ddb, stack.table)
    alarms = StreamTail(streams, arn, kind="alarm", sleep=lambda s: None)
    faces = StreamTail(streams, arn, vendor="face-terminal", sleep=lambda s: None)
    alarms.start()
    faces.start()
    _fleet(stack)
    assert [(e["vendor"], e["kind"]) for e in alarms.poll()] == [("jointech", "alarm")]
    assert [(e["vendor"], e["kind"]) for e in faces.poll()] == [("face-terminal", "record")]


def test_the_tail_backs_off_when_the_stream_is_busy_and_skips_nothing(stack):
    from botocore.exceptions import ClientError

    streams = stack.session.client("dynamodbstreams")
    busy: list[tuple[str, float]] = []
    tail = StreamTail(streams, stream_arn(stack.ddb, stack.table), on_busy=lambda c, s: busy.append((c, s)),
                      sleep=lambda s: None)
    tail.start()
    original = streams.get_records
    refusals = iter(range(3))

    def third_reader(**kwargs):
        if next(refusals, None) is not None:
            raise ClientError({"Error": {"Code": "LimitExceededException", "Message": "too many readers"}},
                              "GetRecords")
        return original(**kwargs)

    streams.get_records = third_reader  # type: ignore[method-assign]
    post(load_event("jointech/http-webhook-alarm.json"))
    # When the stream refuses three reads in a row
    assert [tail.poll() for _ in range(3)] == [[], [], []]
    # Then the tail waited longer each time, said so, and then read what was stored meanwhile
    assert [s for _, s in busy] == [2.0, 4.0, 8.0] and {c for c, _ in busy} == {"LimitExceededException"}
    assert [e["kind"] for e in tail.poll()] == ["alarm"]
    assert tail.backoff_s == 0.0


def test_only_inserted_event_items_count():
    image = {"pk": {"S": "E#jointech#1"}, "sk": {"S": "t#x"}, "eventId": {"S": "x"}}
    assert is_event_record({"eventName": "INSERT", "dynamodb": {"Keys": {"pk": image["pk"]}, "NewImage": image}})
    for name, pk, new in (("MODIFY", "E#jointech#1", image), ("REMOVE", "E#jointech#1", None),
                          ("INSERT", "D#jointech#1", image), ("INSERT", "EID#jointech#1", image),
                          ("INSERT", "E#jointech#1", {"pk": image["pk"], "sk": image["sk"]})):
        record = {"eventName": name, "dynamodb": {"Keys": {"pk": {"S": pk}}, **({"NewImage": new} if new else {})}}
        assert not is_event_record(record), (name, pk)


# --- the CLI -----------------------------------------------------------------------------------

def test_events_without_device_lists_the_fleet_and_says_when_it_stopped(stack, cli):
    _fleet(stack)
    code, out = cli("events", "--json")
    assert code == 0
    listed = json.loads(out)
    assert len(listed) == 7 and cli.err == ""
    code, out = cli("events", "--limit", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["OCCURREDAT", "VENDOR", "DEVICEID", "KIND", "EVENTID", "SUMMARY"]
    assert len(lines) == 3 and "the newest 2 events; older ones are not shown" in cli.err
    code, out = cli("events", "--vendor", "jointech", "--kind", "alarm", "--json")
    assert code == 0 and [e["kind"] for e in json.loads(out)] == ["alarm"]


def test_tail_prints_new_events_then_stops_at_count(stack, cli, monkeypatch):
    from devicegate.store import stream_tail

    # Given events stored while the tail reads (each poll of an idle stream stores one more)
    pushes = iter([lambda: post(load_event("jointech/http-webhook-alarm.json")),
                   lambda: face_post(load_event("face-terminal/http-doc-record.json"))])
    monkeypatch.setattr(stream_tail, "wait", lambda s: next(pushes, lambda: None)())
    # When the fleet is followed until two events came, as JSON lines
    code, out = cli("tail", "--count", "2", "--json")
    # Then each event is one line, in the order stored
    assert code == 0, cli.err
    assert [(e["vendor"], e["kind"]) for e in map(json.loads, out.splitlines())] == [
        ("jointech", "alarm"), ("face-terminal", "record")]
    assert "following new events" in cli.err


@pytest.mark.parametrize(("argv", "says"), [
    (["events", "--kind", "teleport"], "no vendor has a kind 'teleport'"),
    (["events", "--vendor", "mettax", "--kind", "sublock"], "mettax has no kind 'sublock'"),
    (["events", "--vendor", "jointeck"], "unknown vendor 'jointeck'"),
    (["events", "--device", "8052400203"], "--device needs its --vendor"),
    (["events", "--since", "2025-02-08", "--until", "2025-02-07"], "is not before --until"),
    (["events", "--follow", "--until", "2025-02-07"], "--until cannot end a --follow"),
    (["tail", "--until", "2025-02-07"], "--until cannot end a --follow"),
    (["events", "--count", "3"], "--count goes with --follow"),
    (["events", "--vendor", "jointech", "--device", "1", "--count", "3"], "--count goes with --follow"),
    (["tail", "--count", "0"], "is not a number of items"),
    (["tail", "--since", "yesterday"], "is not an ISO 8601 time"),
    (["tail", "--kind", "alarm", "--vendor", "ai-camera"], "ai-camera has no kind 'alarm'"),
])
def test_each_fleet_mistake_is_one_line_and_exit_2(stack, cli, argv, says):
    code, out = cli(*argv)
    assert code == 2 and out == ""
    assert len(cli.err.strip().splitlines()) == 1 and says in cli.err, cli.err


def test_follow_since_prints_the_history_oldest_first_then_new_events_each_once(stack, cli, monkeypatch):
    from devicegate.store import stream_tail
    from devicegate_cli import fleet

    # Given a device's history, and an alarm of that device stored after the tail took the
    # stream's end but before the history was read (so it is in both)
    _push_history()
    run_outbox(stack)
    real_history = fleet._history

    def history_after_a_push(t, args, limit):
        alarm = load_record("jointech", "mqtt-alarm")
        alarm.update(assetId="8052400203", dateTime="2025-02-07T11:00:00Z")
        post(with_body(load_event("jointech/http-webhook-alarm.json"), json.dumps(alarm)))
        return real_history(t, args, limit)

    monkeypatch.setattr(fleet, "_history", history_after_a_push)
    later = iter([lambda: face_post(load_event("face-terminal/http-doc-record.json"))])
    monkeypatch.setattr(stream_tail, "wait", lambda s: next(later, lambda: None)())
    # When the fleet is followed since a day of that history, until six events came
    code, out = cli("events", "--follow", "--since", "2025-02-07T00:00:00Z", "--count", "6", "--json")
    # Then the history comes oldest first, then what the stream brings: the alarm stored in
    # between is printed once, and the face terminal's record stored later follows
    assert code == 0, cli.err
    shown = [(e["deviceId"], e["occurredAt"][11:16]) for e in map(json.loads, out.splitlines())]
    assert shown == [("8052400203", "08:00"), ("8052400203", "09:00"), ("8052400203", "09:30"),
                     ("8052400203", "10:00"), ("8052400203", "11:00"), ("PSC700C0MC22F02542", "07:01")]


def test_tail_of_one_device(stack, cli, monkeypatch):
    from devicegate.store import stream_tail

    pushes = iter([_push_history, lambda: post(load_event("jointech/http-webhook-alarm.json"))])
    monkeypatch.setattr(stream_tail, "wait", lambda s: next(pushes, lambda: None)())
    code, out = cli("tail", "--vendor", "jointech", "--device", "875011000025", "--count", "1")
    assert code == 0, cli.err
    [header, line] = out.splitlines()
    assert header.split()[:3] == ["OCCURREDAT", "VENDOR", "DEVICEID"]
    assert line.split()[:4] == ["2020-04-01T00:00:13.000Z", "jointech", "875011000025", "alarm"]
