"""Replay goes through the live Pipeline (authentication skipped): a replayed record is assembled,
answered and stored exactly as it would have been live."""

from __future__ import annotations

import pytest

from devicegate.ingest.replay import replay
from devicegate.ingest.wiring import event_store
from devicegate.store.queries import device_assemblies
from tests.integration.test_ai_camera_ingest import heartbeat
from tests.integration.test_ai_camera_ingest import post as post_camera
from tests.integration.test_mettax_ingest import SUCCESS, face_check, push_record, run_outbox

VEHICLE = "333777444585"
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
    [outcome] = replay(stack.ddb, stack.session.client("s3"), stack.table, event_store(), "mettax")
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
    [outcome] = replay(stack.ddb, stack.session.client("s3"), stack.table, event_store(), "ai-camera")
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
    [outcome] = replay(stack.ddb, stack.session.client("s3"), stack.table, event_store(), "mettax")
    # Then it is still invalid, stays in quarantine, and is not counted as seen again
    assert outcome.status == "still-invalid"
    [after] = stack.quarantine_items("mettax")
    assert after["seenCount"] == before["seenCount"] == 1 and "replayedAt" not in after
