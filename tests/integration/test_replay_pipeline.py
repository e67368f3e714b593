"""Replay goes through the live Pipeline (authentication skipped): a replayed record is assembled,
answered and stored exactly as it would have been live. A dry run is the same run with the
writes withheld, so it predicts the real run's outcome; one bad item never stops either."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devicegate.infra.settings import get_settings
from devicegate.ingest.replay import WritesWithheld, replay
from devicegate.store.events import DynamoEventStore
from devicegate.store.queries import device_assemblies, quarantined
from devicegate.vendors.jointech.adapter import JointechAdapter
from tests.integration.test_ai_camera_ingest import heartbeat
from tests.integration.test_ai_camera_ingest import post as post_camera
from tests.integration.test_jointech_ingest import post as post_jointech
from tests.integration.test_mettax_ingest import SUCCESS, face_check, push_record, run_outbox
from tests.support import load_event, load_record, with_body

VEHICLE = "333777444585"


def event_store(ddb: Any, s3: Any) -> DynamoEventStore:
    """The functions' store over the clients of a replay run."""
    settings = get_settings()
    return DynamoEventStore(ddb, s3, settings.table_name, settings.payload_bucket, settings.retention_for,
                            settings.quarantine_retention_days)


def run_replay(stack, vendor: str = "jointech", **options: Any) -> list:
    return list(replay(stack.ddb, stack.session.client("s3"), stack.table, event_store, vendor, **options))
GROUP = f"{VEHICLE}_198669678696111100"


@pytest.fixture
def broken(monkeypatch):
    """An adapter bug while a record arrives: it is quarantined (replayable once fixed)."""

    def break_it(adapter_class):
        original = adapter_class.normalize
        monkeypatch.setattr(adapter_class, "normalize", lambda self, push, at: 1 / 0)
        return lambda: monkeypatch.setattr(adapter_class, "normalize", original)

    return break_it


def test_a_replayed_face_check_part_waits_for_its_live_second_part(stack, broken):
    from devicegate.vendors.mettax.adapter import MettaxAdapter

    # Given the comparison result of a face check quarantined by an adapter bug, then the bug fixed
    fix = broken(MettaxAdapter)
    status, _ = push_record(face_check("result"), "face-check")
    assert status == 400 and len(stack.quarantine_items("mettax")) == 1
    fix()
    # When it is replayed, and the driver picture then arrives live
    [outcome] = run_replay(stack, "mettax")
    assert outcome.status == "stored"
    assert push_record(face_check("picture"), "face-check") == (200, SUCCESS)
    messages = run_outbox(stack)
    # Then the replayed part was kept on the check's assembly item like a live one, and the
    # complete check is stored once and published once
    [check] = device_assemblies(stack.ddb, stack.table, "mettax", VEHICLE)
    assert sorted(check["parts"]) == ["picture", "result"]
    [item] = stack.event_items("mettax")
    assert item["eventId"] == f"face-check-{GROUP}" and item["data"]["complete"] is True
    assert [m["id"] for m in messages] == [item["eventId"]]
    # And the quarantine item is marked replayed (it leaves the list)
    [kept] = stack.quarantine_items("mettax")
    assert "replayedAt" in kept and "gsi1pk" not in kept


def test_a_replayed_camera_heartbeat_is_answered_like_a_live_one(stack, broken):
    from devicegate.vendors.ai_camera.adapter import AiCameraAdapter

    # Given a heartbeat quarantined by an adapter bug, then the bug fixed
    fix = broken(AiCameraAdapter)
    status, _ = post_camera(heartbeat(event_id=7))
    assert status == 400
    fix()
    # When it is replayed, and a live heartbeat of the same camera follows
    [outcome] = run_replay(stack, "ai-camera")
    live_status, live = post_camera(heartbeat(event_id=8))
    # Then the replay stored it and built the same kind of answer the camera gets live
    assert outcome.status == "stored" and live_status == 200
    assert outcome.answer["operator"] == live["operator"] == "heartbeat-Ack"
    assert outcome.answer["info"]["eventId"] == 7
    assert outcome.answer["info"]["heartbeatInterval"] == live["info"]["heartbeatInterval"]
    assert len(stack.event_items("ai-camera")) == 2


def test_a_replay_of_what_is_still_refused_counts_no_new_sighting(stack):
    # Given a payload refused for its content (not a bug: replaying cannot fix it)
    bad = face_check("result")
    bad["deviceCt"] = "never"
    assert push_record(bad, "face-check")[0] == 400
    [before] = stack.quarantine_items("mettax")
    # When it is replayed
    [outcome] = run_replay(stack, "mettax")
    # Then it is still invalid, stays in quarantine, and is not counted as seen again
    assert outcome.status == "still-invalid"
    [after] = stack.quarantine_items("mettax")
    assert after["seenCount"] == before["seenCount"] == 1 and "replayedAt" not in after


# ---------------------------------------------------------------------------------------------
# One bad item never stops a run; a dry run predicts the real run

LOCATION = "jointech/http-webhook-location.json"
#: A real run's outcome as its dry run names it.
PREDICTED = {"stored": "would-replay", "duplicate": "would-replay"}


def location(**changes: Any) -> str:
    record = load_record("jointech", "webhook-location")
    record.update(changes)
    return json.dumps(record)  # ASCII escapes: "\ud800" stays an escape in the body


def push_location(body: str | bytes) -> int:
    return post_jointech(with_body(load_event(LOCATION), body))[0]


def quarantined_by_a_bug(broken, *bodies: str) -> None:
    """Valid locations kept in quarantine by an adapter bug, then the bug fixed."""
    fix = broken(JointechAdapter)
    for body in bodies:
        assert push_location(body) == 400
    fix()


def quarantine_id(item: dict[str, Any]) -> str:
    return item["pk"].rsplit("#", 1)[-1]


def snapshot(stack) -> tuple[list, list]:
    """Everything a replay could write: the table's items and the bucket's objects."""
    items = sorted(json.dumps(i, sort_keys=True) for i in stack.ddb.scan(TableName=stack.table)["Items"])
    s3 = stack.session.client("s3")
    objects = sorted((o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket=stack.bucket).get("Contents", []))
    return items, objects


@pytest.mark.parametrize("dry_run", [False, True], ids=["replay", "dry-run"])
def test_a_lone_surrogate_between_two_good_payloads_is_reported_and_both_are_replayed(stack, broken, dry_run):
    # Given, in order of arrival, a good location (kept by an adapter bug), one whose cells holds
    # an escaped lone surrogate (refused), and another good one
    quarantined_by_a_bug(broken, location(gpsTime="2025-02-07T08:00:00Z"))
    assert push_location(location(gpsTime="2025-02-07T08:01:00Z", cells="\ud800")) == 400
    quarantined_by_a_bug(broken, location(gpsTime="2025-02-07T08:02:00Z"))
    [bad] = [i for i in stack.quarantine_items() if "\\ud800" in i.get("body", "")]
    # When the operator replays them (or asks what a replay would do)
    outcomes = run_replay(stack, "jointech", dry_run=dry_run)
    # Then the run went past the bad one: it is reported still invalid, naming the field ingest
    # named, and both good ones are replayed
    good = "would-replay" if dry_run else "stored"
    assert [o.status for o in outcomes] == [good, "still-invalid", good]
    assert outcomes[1].id == quarantine_id(bad) and outcomes[1].fields == [p["field"] for p in bad["problems"]]
    # ...which is the field the surrogate sits in, not `body`
    assert outcomes[1].fields == ["cells"]
    assert len(stack.event_items()) == (0 if dry_run else 2)


def test_a_payload_whose_body_is_gone_fails_alone_and_the_run_goes_on(stack, broken):
    # Given a payload too large to keep inline (its body in S3) between two good ones, and its
    # object deleted meanwhile
    quarantined_by_a_bug(broken, location(gpsTime="2025-02-07T08:00:00Z"))
    assert push_location(location(remark="x" * 400_000)) == 413
    quarantined_by_a_bug(broken, location(gpsTime="2025-02-07T08:02:00Z"))
    [large] = [i for i in stack.quarantine_items() if "bodyRef" in i]
    bucket, key = large["bodyRef"].removeprefix("s3://").split("/", 1)
    stack.session.client("s3").delete_object(Bucket=bucket, Key=key)
    # When the operator replays
    outcomes = run_replay(stack)
    # Then that one failed, saying with what, and the two good ones are stored
    assert [o.status for o in outcomes] == ["stored", "failed", "stored"]
    assert outcomes[1].id == quarantine_id(large) and outcomes[1].detail.startswith("NoSuchKey at ")
    assert len(stack.event_items()) == 2


def test_a_dry_run_refuses_a_9_mb_payload_exactly_as_the_real_run(stack):
    # Given a 9 MB location, refused at ingest as too large
    assert push_location(location(remark="x" * (9 * 1024 * 1024))) == 413
    # When the operator asks what a replay would do, then replays
    [predicted] = run_replay(stack, "jointech", dry_run=True)
    [done] = run_replay(stack, "jointech")
    # Then the dry run said what the replay did: still invalid, too large, the body at fault
    assert (predicted.status, predicted.detail, predicted.fields) == ("still-invalid", "payload too large", ["body"])
    assert (done.status, done.detail, done.fields) == (predicted.status, predicted.detail, predicted.fields)


def test_dry_run_outcomes_are_the_real_runs_and_a_dry_run_writes_nothing(stack, broken, monkeypatch):
    # Given a quarantine holding one payload of every outcome: good (kept by an adapter bug), good
    # and meanwhile received again, still invalid, too large, a lone surrogate, body gone, good by MQTT
    from tests.integration.test_jointech_ingest import mqtt

    again = location(gpsTime="2025-02-07T08:03:00Z")
    quarantined_by_a_bug(broken, location(gpsTime="2025-02-07T08:00:00Z"), again)
    fix = broken(JointechAdapter)
    mqtt(load_event("jointech/iot-mqtt-sublock.json"))
    fix()
    assert push_location(again) == 200
    assert push_location(location(gpsTime="not a time")) == 400
    assert push_location(location(remark="x" * 400_000)) == 413
    assert push_location(location(remark="y" * 400_000)) == 413
    assert push_location(location(cells="\ud800")) == 400
    gone = min((i for i in stack.quarantine_items() if "bodyRef" in i), key=quarantine_id)
    bucket, key = gone["bodyRef"].removeprefix("s3://").split("/", 1)
    stack.session.client("s3").delete_object(Bucket=bucket, Key=key)
    before = snapshot(stack)
    # When the operator runs a dry run, then the replay
    predicted = run_replay(stack, "jointech", dry_run=True)
    assert snapshot(stack) == before
    done = run_replay(stack, "jointech")
    # Then each outcome, its detail and its fields were predicted, and every kind of outcome was there
    assert [(o.id, PREDICTED.get(o.status, o.status), o.detail, o.fields) for o in done] == [
        (o.id, o.status, o.detail, o.fields) for o in predicted]
    assert {o.status for o in done} == {"stored", "duplicate", "still-invalid", "failed"}
    assert len(done) == 7


def test_writes_withheld_sends_no_write_and_answers_all_old_with_the_item_as_it_is(stack):
    # Given an item in the table
    key = {"pk": {"S": "X#1"}, "sk": {"S": "S"}}
    stack.ddb.put_item(TableName=stack.table, Item={**key, "n": {"N": "1"}})
    dry = WritesWithheld(stack.ddb)
    # When a dry run updates it, asking for the old item, and puts another
    old = dry.update_item(TableName=stack.table, Key=key, UpdateExpression="SET n = :two",
                          ExpressionAttributeValues={":two": {"N": "2"}}, ReturnValues="ALL_OLD")
    dry.put_item(TableName=stack.table, Item={"pk": {"S": "X#2"}, "sk": {"S": "S"}})
    # Then it got what the update would have answered, and the table did not change
    assert old == {"Attributes": {**key, "n": {"N": "1"}}}
    assert dry.withheld == ["UpdateItem", "PutItem"]
    assert [i["pk"]["S"] for i in stack.ddb.scan(TableName=stack.table)["Items"] if i["pk"]["S"].startswith("X#")] == [
        "X#1"]
    assert stack.ddb.get_item(TableName=stack.table, Key=key)["Item"]["n"] == {"N": "1"}
    # And what is no API call and not known harmless is refused
    with pytest.raises(AttributeError, match="not available in a dry run"):
        WritesWithheld(stack.session.client("s3")).upload_file("/dev/null", stack.bucket, "k")


def test_a_failure_inside_the_pipeline_is_that_items_outcome_with_its_reason(stack, broken, monkeypatch):
    # Given two good locations in quarantine, and a store that fails on the first put (a bug)
    quarantined_by_a_bug(broken, location(gpsTime="2025-02-07T08:00:00Z"), location(gpsTime="2025-02-07T08:01:00Z"))
    original, calls = DynamoEventStore.put_event, []

    def put_event(self, event):
        calls.append(event.eventId)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return original(self, event)

    monkeypatch.setattr(DynamoEventStore, "put_event", put_event)
    # When the operator replays
    first, second = run_replay(stack)
    # Then the first failed, saying what was raised and where (not "storage unavailable"), and the
    # run went on with the second
    assert first.status == "failed"
    assert first.detail.startswith("RuntimeError at test_replay_pipeline.py:") and "a bug" not in first.detail
    assert second.status == "stored" and len(stack.event_items()) == 1


@pytest.fixture
def cli(stack, monkeypatch, capfd):
    from devicegate_cli import commands
    from devicegate_cli.main import main

    monkeypatch.setattr(commands, "resolve_target",
                        lambda args: commands.Target(stack.session, None, stack.table, stack.bucket))

    def run(*argv: str) -> tuple[int, str, str]:
        # File descriptors, not sys.stdout: the layer's log handler holds the stream it started with.
        capfd.readouterr()  # what the handlers printed before
        code = main(list(argv))
        out, err = capfd.readouterr()
        return code, out, err

    return run


def test_the_cli_prints_a_line_per_item_and_a_count_per_outcome_without_a_traceback(stack, broken, cli):
    # Given a good location, a lone surrogate and a payload whose body is gone, in quarantine
    quarantined_by_a_bug(broken, location(gpsTime="2025-02-07T08:00:00Z"))
    assert push_location(location(cells="\ud800")) == 400
    assert push_location(location(remark="x" * 400_000)) == 413
    [large] = [i for i in stack.quarantine_items() if "bodyRef" in i]
    bucket, key = large["bodyRef"].removeprefix("s3://").split("/", 1)
    stack.session.client("s3").delete_object(Bucket=bucket, Key=key)
    ids = {quarantine_id(i) for i in stack.quarantine_items()}
    for dry_run, good in ((["--dry-run"], "would-replay"), ([], "stored")):
        # When the operator runs a dry run, then the replay
        code, out, err = cli("replay", "--vendor", "jointech", *dry_run)
        # Then each item has its line, the last line counts each outcome, and the exit status
        # says not everything was replayed
        lines = out.splitlines()
        assert code == 2 and "Traceback" not in out + err
        # (the layer's own log lines on stderr: stdout is the report)
        assert '"message":"replay of one item failed"' in err and '"message"' not in out
        assert {line.split()[0] for line in lines[:-1]} == ids and len(lines) == 4, out
        assert lines[-1] == f"1 failed, 1 still-invalid, 1 {good}"
        [surrogate] = [line for line in lines if " still-invalid " in line]
        assert surrogate.endswith("fields: " + ",".join(p["field"] for p in next(
            i for i in stack.quarantine_items() if quarantine_id(i) == surrogate.split()[0])["problems"]))


def test_a_dry_run_of_the_ingest_failure_queue_predicts_the_redrive_and_leaves_the_queue_as_it_was(stack):
    from devicegate.ingest.replay import redrive_queue

    # Given two MQTT events Lambda gave up on, one of them invalid
    sqs = stack.session.client("sqs")
    url = sqs.get_queue_url(QueueName="devicegate-local-IngestFailureQueue")["QueueUrl"]
    good = load_event("jointech/iot-mqtt-alarm.json")
    bad = dict(load_event("jointech/iot-mqtt-location.json"), gpsTime="not a time")
    for payload in (good, bad):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"requestPayload": payload}))
    before = snapshot(stack)

    def redrive(dry_run: bool) -> list:
        return sorted(redrive_queue(sqs, url, stack.ddb, stack.session.client("s3"), stack.table, event_store,
                                    "jointech", dry_run=dry_run), key=lambda o: o.status)

    # When the operator runs a dry run, then at once the redrive
    predicted = redrive(dry_run=True)
    assert snapshot(stack) == before
    done = redrive(dry_run=False)
    # Then the dry run saw both messages, wrote nothing, left them for the redrive, and predicted it
    assert [o.status for o in predicted] == ["would-quarantine", "would-replay"]
    assert [o.status for o in done] == ["quarantined", "stored"]
    assert [(o.id, o.detail, o.fields) for o in done] == [(o.id, o.detail, o.fields) for o in predicted]
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None


def test_a_replayed_push_only_partly_stored_stays_in_quarantine_as_partial():
    # Given what the pipeline says of a push whose records were stored in part, replay not quarantining
    from devicegate.core.adapter import Answer, Outcome
    from devicegate.core.errors import FieldProblem
    from devicegate.ingest.pipeline import IngestResult
    from devicegate.ingest.replay import _outcome

    result = IngestResult(Outcome.PARTIAL, Answer(200, {}), stored=2, reason="1 of 3 records refused",
                          problems=[FieldProblem("data.1.lat", "not a number")], refused=1)
    # Then the item is not counted as replayed: its refused record would be lost with it
    outcome = _outcome("q1", result)
    assert (outcome.status, outcome.fields) == ("partial", ["data.1.lat"])


def test_bulk_replay_by_filter_takes_what_the_filter_names_and_can_be_run_again(stack, broken):
    from devicegate.core.timeutil import iso_utc, now_utc

    # Given two valid locations kept by an adapter bug, and one that is really invalid
    quarantined_by_a_bug(broken, location(gpsTime="2025-02-07T08:00:00Z"), location(gpsTime="2025-02-07T08:01:00Z"))
    assert push_location(location(gpsTime="not a time")) == 400
    # When the operator replays what the bug refused, by its reason (the time window is around now)
    earlier, later = iso_utc(now_utc().replace(year=2020)), iso_utc(now_utc().replace(year=2100))
    assert run_replay(stack, reason="PAYLOAD COULD NOT", until=earlier) == []  # none first received then
    first = run_replay(stack, reason="payload could not", since=earlier, until=later, dry_run=True)
    done = run_replay(stack, reason="payload could not", since=earlier, until=later)
    # Then exactly those two are replayed (the dry run said so), the invalid one stays
    assert [o.status for o in first] == ["would-replay"] * 2 and [o.status for o in done] == ["stored"] * 2
    assert len(stack.event_items()) == 2
    assert [q["reason"] for q in quarantined(stack.ddb, stack.table, "jointech", limit=None)] == [
        "invalid location record"]
    # And running it again (after an interruption, say) finds nothing more to do
    assert run_replay(stack, reason="payload could not") == []
