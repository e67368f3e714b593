"""The outbox's retry contract, with in-memory fakes for the queue and the state table."""

from __future__ import annotations

import json

from devicegate.core.errors import StorageUnavailable
from devicegate.outbox.batch import process_batch
from devicegate.outbox.messages import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, Outgoing, cloud_event, message_body
from devicegate.outbox.stream import StreamRecord
from devicegate.store.devices import Applied


def _event(n: int, occurred: str = "2025-02-07T10:00:00.000Z") -> dict:
    return {"vendor": "jointech", "deviceId": f"dev{n % 2}", "kind": "location", "eventId": f"e{n}",
            "occurredAt": occurred, "receivedAt": "2025-02-07T10:00:01.000Z", "transport": "http", "data": {}}


class FakeQueue:
    """Enforces SQS's limits: at most 10 messages and 1 MiB per call, attributes included."""

    max_message_bytes = MAX_MESSAGE_BYTES
    max_batch_bytes = MAX_BATCH_BYTES

    def __init__(self, fail_ids=()):
        self.sent: list[str] = []
        self.calls: list[int] = []
        self.fail_ids = set(fail_ids)

    def publish(self, messages):
        assert len(messages) <= 10 and sum(m.size for m in messages) <= 1_048_576
        self.calls.append(len(messages))
        decoded = [(m.sequence, json.loads(m.body)) for m in messages]
        failed = [ident for ident, m in decoded if m["id"] in self.fail_ids]
        self.sent += [m["id"] for ident, m in decoded if m["id"] not in self.fail_ids]
        return failed


class FakeState:
    """The state store's contract in memory: newest wins per group, one write per device news."""

    def __init__(self, fail_on=None, refuse_device=None):
        self.groups: dict[tuple, str] = {}
        self.heard_at: dict[tuple, str] = {}
        self.writes = 0
        self.calls = 0
        self.fail_on = fail_on
        self.refuse_device = refuse_device  # its write is refused as such (ValidationException)
        self.failures: list = []

    def record_failure(self, failure, now):
        self.failures.append(failure)

    def apply_many(self, news, now):
        self.calls += 1
        if any(g.event_id == self.fail_on for n in news for g in n.groups.values()):
            raise StorageUnavailable("boom")
        applied = []
        for one in news:
            if one.device_id == self.refuse_device:
                applied.append(Applied(changed=False, failure="ValidationException"))
                continue
            applied.append(Applied(changed=True))
            self.writes += 1
            for group, value in one.groups.items():
                key = (one.vendor, one.device_id, group)
                if key not in self.groups or self.groups[key] < value.at:
                    self.groups[key] = value.at
            if one.heard_at:
                self.heard_at[(one.vendor, one.device_id)] = max(self.heard_at.get((one.vendor, one.device_id), ""),
                                                                 one.heard_at)
        return applied


def _records(n: int) -> list[StreamRecord]:
    return [StreamRecord(f"seq{i:03d}", _event(i)) for i in range(n)]


def test_a_clean_batch_publishes_every_record_once_in_order():
    queue, state = FakeQueue(), FakeState()
    failed = process_batch(_records(23), queue, state, lambda e: {"position": {"lat": 1}})
    assert failed == []
    assert queue.sent == [f"e{i}" for i in range(23)]


def test_a_publish_failure_reports_it_and_everything_after_it():
    # Given the queue refuses event e12 (second chunk of ten)
    queue, state = FakeQueue(fail_ids={"e12"}), FakeState()
    # When the batch is processed
    failed = process_batch(_records(23), queue, state, lambda e: {})
    # Then Lambda is told to resume at seq012; nothing after the failing chunk was sent
    assert failed == [f"seq{i:03d}" for i in range(12, 23)]
    assert queue.sent == [f"e{i}" for i in range(20) if i != 12]


def test_a_state_failure_publishes_nothing_and_fails_the_whole_batch():
    # Given 15 events (two chunks of messages) and the state write failing
    queue, state = FakeQueue(), FakeState(fail_on="e1")
    failed = process_batch(_records(15), queue, state, lambda e: {})
    # Then nothing is published (state comes first, for the whole batch) and Lambda retries it all
    assert queue.sent == []
    assert failed == [f"seq{i:03d}" for i in range(15)]


def test_a_raising_state_hook_leaves_that_event_s_groups_alone_and_still_publishes():
    # Given an adapter hook that raises for one event
    def patch(event):
        if event["eventId"] == "e3":
            raise KeyError("lat")
        return {"position": {"n": event["eventId"]}}

    queue, state = FakeQueue(), FakeState()
    records = [StreamRecord(f"s{i}", _event(i, occurred=f"2025-02-07T10:00:0{i}.000Z")) for i in range(4)]
    failed = process_batch(records, queue, state, patch)
    # Then every message goes out, and dev1's position is from e1 (e3's patch was dropped)
    assert failed == [] and queue.sent == ["e0", "e1", "e2", "e3"]
    assert state.groups[("jointech", "dev1", "position")] == "2025-02-07T10:00:01.000Z"
    assert state.groups[("jointech", "dev1", "summary")] == "2025-02-07T10:00:03.000Z"


def test_a_device_whose_state_write_is_refused_fails_alone_and_every_event_is_published():
    # Given a batch of 100 devices, one of whose state items DynamoDB refuses as such
    records = [StreamRecord(f"s{i:03d}", dict(_event(i), deviceId=f"dev{i}")) for i in range(100)]
    queue, state = FakeQueue(), FakeState(refuse_device="dev42")
    # When the outbox processes the batch
    failed = process_batch(records, queue, state, lambda e: {"position": {"n": e["eventId"]}})
    # Then nothing is retried, every event is published once, and the one failure is recorded
    assert failed == [] and queue.sent == [f"e{i}" for i in range(100)]
    assert [(f.device_id, f.what, f.error, f.event_ids) for f in state.failures] == [
        ("dev42", "device", "ValidationException", ("e42",))]
    assert state.writes == 99


def test_a_raising_alarm_hook_fails_that_event_alone():
    # Given an alarm event whose lifecycle hook raises, beside an ordinary one
    records = [StreamRecord("s1", dict(_event(1), kind="alarm")), StreamRecord("s2", _event(2))]
    queue, state = FakeQueue(), FakeState()

    def transition(event):
        raise KeyError("status")

    failed = process_batch(records, queue, state, lambda e: {}, transition_for=transition)
    # Then both are published and the alarm's failure is recorded
    assert failed == [] and queue.sent == ["e1", "e2"]
    assert [(f.what, f.error, f.event_ids) for f in state.failures] == [("alarm", "KeyError", ("e1",))]


def test_an_offloaded_record_is_projected_from_the_record_read_back():
    # Given an event whose record went to S3 (its item holds {} and a dataRef)
    event = dict(_event(1), data={}, dataRef="s3://bucket/payloads/x.json")
    seen = []
    state = FakeState()
    process_batch([StreamRecord("s1", event)], FakeQueue(), state,
                  lambda e: seen.append(e["data"]) or {"lastEvent": {"card": e["data"]["card"][:4]}},
                  load_data=lambda ref: {"card": "1234567"})
    # Then the state hook saw the record, not {}
    assert seen == [{"card": "1234567"}]


def test_a_record_stamped_23_hours_ahead_does_not_hold_state_against_later_correct_records():
    # Given a record received at 10:00:01 but stamped 23 hours ahead (a zone mis-set on the device)
    state = FakeState()
    ahead = dict(_event(1, occurred="2025-02-08T09:00:01.000Z"), eventId="ahead")
    process_batch([StreamRecord("s1", ahead)], FakeQueue(), state, lambda e: {"position": {"n": e["eventId"]}})
    # Then it moves state, ordered by its receipt plus the tolerance, not by its own stamp
    assert state.groups[("jointech", "dev1", "position")] == "2025-02-07T10:05:01.000Z"
    # When correct-clock records come after the tolerance, in a later batch and in the same batch
    later = dict(_event(1, occurred="2025-02-07T10:06:00.000Z"), eventId="later",
                 receivedAt="2025-02-07T10:06:00.500Z")
    process_batch([StreamRecord("s2", later)], FakeQueue(), state, lambda e: {"position": {"n": e["eventId"]}})
    # Then state follows them
    assert state.groups[("jointech", "dev1", "position")] == "2025-02-07T10:06:00.000Z"
    both = FakeState()
    process_batch([StreamRecord("s1", ahead), StreamRecord("s2", later)], FakeQueue(), both,
                  lambda e: {"position": {}})
    assert both.groups[("jointech", "dev1", "position")] == "2025-02-07T10:06:00.000Z"


def test_a_record_a_little_ahead_keeps_its_own_time_within_the_tolerance():
    # Given a device clock 2 minutes fast (within the 5-minute tolerance)
    state = FakeState()
    fast = _event(1, occurred="2025-02-07T10:02:01.000Z")
    process_batch([StreamRecord("s1", fast)], FakeQueue(), state, lambda e: {"position": {}})
    # Then state is ordered by the record's own time
    assert state.groups[("jointech", "dev1", "position")] == "2025-02-07T10:02:01.000Z"


def test_cloud_event_shape():
    event = _event(7)
    message = cloud_event(event)
    assert message == {
        "specversion": "1.0", "id": "e7", "source": "devicegate/jointech/dev1", "type": "devicegate.jointech.location",
        "subject": "dev1", "time": "2025-02-07T10:00:00.000Z", "datacontenttype": "application/json",
        "dataschema": "urn:devicegate:schema:devicegate.jointech.location:1", "data": event,
    }
    assert cloud_event(event, "s3://b/k")["dataref"] == "s3://b/k"


def test_big_records_are_batched_by_size_and_all_published():
    # Given twelve events of about 200 KB each (five of them exceed one SQS call)
    records = [StreamRecord(f"seq{i:03d}", dict(_event(i), data={"blob": "x" * 200_000})) for i in range(12)]
    queue = FakeQueue()
    # When the outbox publishes them
    failed = process_batch(records, queue, FakeState(), lambda e: {})
    # Then every call stays within SQS's limits (FakeQueue asserts) and every event is sent once
    assert failed == [] and queue.sent == [f"e{i}" for i in range(12)]
    assert max(queue.calls) <= 4


def test_a_record_too_big_for_a_message_goes_as_a_claim_check():
    event = dict(_event(1), data={"blob": "x" * (MAX_MESSAGE_BYTES + 10)})
    message = json.loads(message_body(event, table="tbl"))
    assert "data" not in message["data"] and message["dataref"] == (
        "dynamodb://tbl?pk=E%23jointech%23dev1&sk=2025-02-07T10%3A00%3A00.000Z%23e1")


def test_messages_are_ascii_so_sqs_never_rejects_a_character():
    event = dict(_event(1), data={"describe": "货箱门 \ufffe"})
    body = message_body(event)
    assert body.isascii() and json.loads(body)["data"]["data"]["describe"] == "货箱门 \ufffe"


def test_state_is_one_write_per_device_for_the_whole_batch():
    # Given 25 events of two devices (three chunks of messages), each touching "position"
    state = FakeState()
    records = [StreamRecord(f"s{i}", _event(i, occurred=f"2025-02-07T10:00:{i:02d}.000Z")) for i in range(25)]
    process_batch(records, FakeQueue(), state, lambda e: {"position": {"n": e["eventId"]}})
    # Then the state store got one call, with one news per device, and the newest values
    assert state.calls == 1 and state.writes == 2
    assert state.groups[("jointech", "dev1", "position")] == "2025-02-07T10:00:23.000Z"
    assert state.groups[("jointech", "dev0", "position")] == "2025-02-07T10:00:24.000Z"
    assert state.heard_at == {("jointech", "dev0"): "2025-02-07T10:00:01.000Z",
                              ("jointech", "dev1"): "2025-02-07T10:00:01.000Z"}


def test_sqs_publisher_maps_failed_entries_back_to_their_records():
    from devicegate.outbox.messages import SqsPublisher

    class Sqs:
        def send_message_batch(self, QueueUrl, Entries):
            self.entries = Entries
            return {"Successful": [{"Id": "0"}, {"Id": "2"}], "Failed": [{"Id": "1", "Code": "InternalError"}]}

    sqs = Sqs()
    messages = [Outgoing(f"seq{c}", c.lower(), "jointech:dev1", f"dedup{c}") for c in "ABC"]
    failed = SqsPublisher(sqs, "url").publish(messages)
    assert failed == ["seqB"] and [e["MessageBody"] for e in sqs.entries] == ["a", "b", "c"]
    # Every entry carries its FIFO identity: the device's group and the event's dedup id
    assert [(e["MessageGroupId"], e["MessageDeduplicationId"]) for e in sqs.entries] == [
        ("jointech:dev1", "dedupA"), ("jointech:dev1", "dedupB"), ("jointech:dev1", "dedupC")]


def test_fifo_identity_is_stable_per_event_and_per_device_and_fits_sqs_limits():
    from devicegate.outbox.messages import deduplication_id, message_group

    # Given the same event published twice, and devices with awkward ids
    assert deduplication_id("jointech", "d1", "e1") == deduplication_id("jointech", "d1", "e1")
    assert deduplication_id("jointech", "d1", "e1") != deduplication_id("mettax", "d1", "e1")
    # Two devices' events with one vendor id (two terminals, one record uuid) are two messages
    assert deduplication_id("face-terminal", "T-1", "u1") != deduplication_id("face-terminal", "T-2", "u1")
    # Then groups are per device, printable ASCII and at most 128 characters, however long the id
    assert message_group("jointech", "a/b#c") == "jointech:a%2Fb%23c"
    long = message_group("senselink", "x" * 200)
    assert len(long) <= 128 and long != message_group("senselink", "x" * 201)
    assert all(33 <= ord(c) < 127 for c in message_group("face-terminal", "终端 1"))


def test_accepted_is_counted_once_per_record_that_is_done(monkeypatch):
    # Given a batch of 15 where the queue refuses e12
    import devicegate.outbox.batch as outbox

    emitted = []
    monkeypatch.setattr(outbox, "emit_counts", lambda vendor, kind, counts: emitted.append((vendor, kind, counts)))
    failed = process_batch(_records(15), FakeQueue(fail_ids={"e12"}), FakeState(), lambda e: {})
    # Then only the records Lambda will not redeliver are counted as accepted
    assert failed == ["seq012", "seq013", "seq014"]
    assert emitted == [("jointech", "location", {"accepted": 12})]


def test_every_message_carries_type_vendor_and_device_attributes_counted_in_its_size():
    from devicegate.outbox.batch import outgoing

    # Given an event of a device whose id needs encoding
    record = StreamRecord("s1", dict(_event(1), deviceId="a/b #1"))
    # When it becomes a message
    message = outgoing(record, "tbl", MAX_MESSAGE_BYTES)
    # Then its attributes say what and whose it is, as the body's type and source do
    body = json.loads(message.body)
    assert message.attributes == {"type": body["type"], "vendor": "jointech", "device": "a%2Fb%20%231"}
    assert body["source"].endswith("/" + message.attributes["device"])
    # ... and they count toward the size SQS and SNS limit (name, "String" and value)
    assert message.size == len(message.body) + sum(len(k) + 6 + len(v) for k, v in message.attributes.items())


def test_a_record_just_under_the_limit_without_attributes_goes_as_a_claim_check_with_them():
    from devicegate.outbox.batch import outgoing

    # Given a record whose body alone fits the publisher's limit, but not with its attributes
    bare = message_body(dict(_event(1), data={"blob": ""}))
    record = StreamRecord("s1", dict(_event(1), data={"blob": "x" * (1000 - len(bare) - 5)}))
    assert len(message_body(record.event)) <= 1000
    # Then the message is the claim check, and fits
    message = outgoing(record, "tbl", 1000)
    assert "dataref" in json.loads(message.body) and message.size <= 1000


def test_sqs_and_sns_publishers_send_the_attributes_and_map_failed_entries_back():
    from devicegate.outbox.messages import SnsPublisher, SqsPublisher

    class Client:
        def send_message_batch(self, QueueUrl, Entries):
            self.entries = Entries
            return {"Successful": [{"Id": "0"}], "Failed": [{"Id": "1", "Code": "InternalError"}]}

        def publish_batch(self, TopicArn, PublishBatchRequestEntries):
            self.entries = PublishBatchRequestEntries
            return {"Successful": [{"Id": "1"}], "Failed": [{"Id": "0", "Code": "InternalError"}]}

    messages = [Outgoing(f"seq{c}", c.lower(), "jointech:dev1", f"dedup{c}",
                         {"type": "devicegate.jointech.location", "vendor": "jointech", "device": "dev1"})
                for c in "AB"]
    wire = {"type": {"DataType": "String", "StringValue": "devicegate.jointech.location"},
            "vendor": {"DataType": "String", "StringValue": "jointech"},
            "device": {"DataType": "String", "StringValue": "dev1"}}
    sqs, sns = Client(), Client()
    assert SqsPublisher(sqs, "url").publish(messages) == ["seqB"]
    assert SnsPublisher(sns, "arn").publish(messages) == ["seqA"]
    assert [e["MessageAttributes"] for e in sqs.entries] == [wire, wire] == [e["MessageAttributes"] for e in sns.entries]
    # The topic gets the same FIFO identity as the queue would
    assert [(e["Message"], e["MessageGroupId"], e["MessageDeduplicationId"]) for e in sns.entries] == [
        (e["MessageBody"], e["MessageGroupId"], e["MessageDeduplicationId"]) for e in sqs.entries]


def test_sns_chunks_stay_within_its_256_kib_per_call():
    from devicegate.outbox.messages import SNS_MAX_BATCH_BYTES, SNS_MAX_MESSAGE_BYTES

    class Topic(FakeQueue):
        max_message_bytes = SNS_MAX_MESSAGE_BYTES
        max_batch_bytes = SNS_MAX_BATCH_BYTES

        def publish(self, messages):
            assert sum(m.size for m in messages) <= 262_144
            return super().publish(messages)

    # Given events of about 100 KB and one of 300 KB (over SNS's message limit)
    records = [StreamRecord(f"seq{i:03d}", dict(_event(i), data={"blob": "x" * (300_000 if i == 3 else 100_000)}))
               for i in range(6)]
    topic = Topic()
    assert process_batch(records, topic, FakeState(), lambda e: {}) == []
    # Then every event went once, in order, the big one as a claim check
    assert topic.sent == [f"e{i}" for i in range(6)] and topic.calls == [2, 3, 1]
