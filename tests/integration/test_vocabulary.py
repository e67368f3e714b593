"""One vocabulary in the envelope (core/vocabulary.py, docs/consuming.md "Vocabulary"): the same
facts from different vendors arrive under the same names and units, on the queue, in the event
item and in the device's state."""

from __future__ import annotations

import json

import pytest

from devicegate.core.vocabulary import BLOCKS, METHODS, ROLES, SEVERITIES
from functions.face_terminal_webhook import app as face_app
from functions.jointech_webhook import app as jointech_app
from functions.mettax_webhook import app as mettax_app
from functions.outbox import app as outbox_app
from functions.senselink_webhook import app as senselink_app
from tests.support import context, load_event, load_record, new_environment, with_body

PLACE = {"latitude": 22.577894, "longitude": 113.938709}


def _post(app, name: str, event: dict) -> None:
    response = app.lambda_handler(event, context(name))
    assert response["statusCode"] == 200, response["body"]


def jointech(record: dict, kind: str = "location") -> None:
    _post(jointech_app, "JointechWebhookFunction",
          with_body(load_event(f"jointech/http-webhook-{kind}.json"), json.dumps(record)))


def mettax(record: dict, service: str = "gps") -> None:
    event = with_body(load_event("mettax/http-doc-gps.json"), json.dumps({"data": json.dumps(record)}),
                      **{"content-type": "application/json"})
    event["pathParameters"]["service"] = service
    _post(mettax_app, "MettaxWebhookFunction", event)


def face_terminal(document: dict) -> None:
    _post(face_app, "FaceTerminalWebhookFunction", with_body(load_event("face-terminal/http-doc-record.json"),
                                                             json.dumps(document)))


def senselink(document: dict) -> None:
    _post(senselink_app, "SenseLinkWebhookFunction", with_body(load_event("senselink/http-sub-record-employee.json"),
                                                               json.dumps(document)))


def published(stack) -> list[dict]:
    """The CloudEvents the outbox sends for what was stored since the last call."""
    outbox_app.lambda_handler({"Records": stack.new_stream_records()}, context("OutboxFunction"))
    return stack.queue_messages()


def test_the_same_place_from_jointech_and_mettax_is_the_same_position(stack):
    # Given a Jointech satellite fix and a Mettax GPS record of one place, at one time, at 36 km/h heading 154
    location = load_record("jointech", "webhook-location")
    location.update(PLACE, gpsTime="2024-08-27T21:20:30Z", speed=36, direction=154, locType=1)
    gps = load_record("mettax", "doc-gps")
    gps.update(lat=PLACE["latitude"], lon=PLACE["longitude"], speed=36, course=154, deviceCt=1724793630)

    # When both are ingested and published
    jointech(location)
    mettax(gps)
    messages = {m["data"]["vendor"]: m["data"] for m in published(stack)}

    # Then both carry one position block: the same names, units and values for the facts both state
    by_jointech, by_mettax = messages["jointech"]["facts"]["position"], messages["mettax"]["facts"]["position"]
    same = {**PLACE, "speedKmh": 36, "headingDeg": 154, "valid": True, "fixTime": "2024-08-27T21:20:30.000Z"}
    assert by_jointech == same
    # ...and Mettax, which counts satellites, says how many (Jointech states a signal level only)
    assert by_mettax == {**same, "satellites": 9}
    # The event item holds the same block, and so does each device's state, under the same name
    for vendor, device, block in (("jointech", location["assetId"], by_jointech),
                                  ("mettax", gps["deviceId"], by_mettax)):
        [item] = stack.event_items(vendor)
        assert json.loads(item["facts"])["position"] == block
        assert stack.state(vendor, device)["position"]["value"] == block


def test_a_record_without_a_fix_has_no_position_block(stack):
    # Given the documented Jointech location without a fix (0/0, locType 0), and a command answer
    jointech(load_record("jointech", "webhook-location"))
    jointech(load_record("jointech", "webhook-cmd"), kind="cmd")
    # When they are published
    messages = published(stack)
    # Then neither says where the device is: no position block, and none in the state
    assert len(messages) == 2
    assert all("position" not in m["data"].get("facts", {}) for m in messages)
    assert "position" not in stack.state("jointech", "8022300001")


def test_a_face_terminal_passage_and_a_senselink_passage_have_one_shape(stack):
    # Given an employee passing a face terminal and one passing a SenseLink device, both by face
    face_terminal(load_record("face-terminal", "doc-record"))
    senselink(load_record("senselink", "sub-record-employee"))
    # When they are published
    passages = {m["data"]["vendor"]: m["data"]["facts"]["passage"] for m in published(stack)}
    # Then both passage blocks say the same things the same way
    for passage in passages.values():
        assert {k: passage[k] for k in ("granted", "method", "direction")} == {
            "granted": True, "method": "face", "direction": "unknown"}
        assert passage["person"]["role"] == "employee"
        assert 0 < passage["score"] <= 1
    assert passages["face-terminal"].keys() == passages["senselink"].keys()
    # ...and the terminal's state has it as its latest passage
    assert stack.state("face-terminal", "PSC700C0MC22F02542")["passage"]["value"] == passages["face-terminal"]


def test_a_stranger_is_a_stranger_and_not_granted(stack):
    face_terminal(load_record("face-terminal", "variation-stranger-no-user"))
    [message] = published(stack)
    passage = message["data"]["facts"]["passage"]
    assert passage["person"] == {"role": "stranger"}
    assert passage["method"] in METHODS and passage["person"]["role"] in ROLES


PLANTED = {"name": "Planted Name-7731", "ic_number": "IC-99887766", "id_number": "ID-55443322",
           "job_number": "JOB-1122", "remark": "planted remark 4455", "pin": "842197"}


@pytest.mark.parametrize("policy, person_id", [
    ("", "5"),  # the default keeps user ids
    ("user_id=mask", "*"),  # masked: all but the last 4 characters (shorter: all)
    ("user_id=drop,name=keep,ic_number=keep,job_number=keep", None),
])
def test_a_passage_names_a_person_only_by_what_personal_data_allows(stack, monkeypatch, policy, person_id):
    # Given a deployment's PersonalData policy, and a terminal record with planted personal values
    monkeypatch.setenv("PERSONAL_DATA", policy)
    new_environment()
    document = load_record("face-terminal", "doc-record")
    document["data"]["user"].update(PLANTED, user_id="5")
    # When it is stored and published
    face_terminal(document)
    [message] = published(stack)
    facts = message["data"]["facts"]
    # Then the passage's person is a role, and the user id as the policy keeps it (or none)
    assert facts["passage"]["person"] == ({"role": "employee"} if person_id is None
                                          else {"role": "employee", "id": person_id})
    # ...and no planted value is anywhere in the blocks, even where the policy keeps it in data
    text = json.dumps(facts, ensure_ascii=False)
    assert not [value for value in PLANTED.values() if value in text]


def test_every_vendors_alarm_has_an_alarm_block(stack):
    # Given an alarm from every vendor that sends alarms, two of them with a lifecycle
    jointech(load_record("jointech", "webhook-alarm"), kind="alarm")
    mettax_event = load_event("mettax/http-doc-alarm.json")
    _post(mettax_app, "MettaxWebhookFunction", mettax_event)
    _post(face_app, "FaceTerminalWebhookFunction", load_event("face-terminal/http-doc-alarm-raised-with-device.json"))
    _post(face_app, "FaceTerminalWebhookFunction", load_event("face-terminal/http-variation-alarm-released.json"))
    _post(senselink_app, "SenseLinkWebhookFunction", load_event("senselink/http-ws-alarm-releasing.json"))
    # When they are published
    alarms = [(m["data"]["vendor"], m["data"]["facts"]["alarm"]) for m in published(stack)
              if m["data"]["kind"] == "alarm"]
    # Then each says its code, name and severity the one way (a terminal's release step names no
    # code: the vendor sends none, the alarm's lifecycle item keeps the one it was raised with)
    assert {vendor for vendor, _ in alarms} == {"jointech", "mettax", "face-terminal", "senselink"}
    for _, alarm in alarms:
        assert alarm["severity"] in SEVERITIES
        if alarm.get("status") != "released":
            assert isinstance(alarm["code"], str) and alarm["name"]
    # ...and the vendors with lifecycles say the step, in the lifecycle items' words
    statuses = sorted(alarm["status"] for vendor, alarm in alarms if vendor in ("face-terminal", "senselink"))
    assert statuses == ["open", "released", "releasing"]
    assert all("status" not in alarm for vendor, alarm in alarms if vendor in ("jointech", "mettax"))


def test_blocks_are_the_vocabulary_and_nothing_else(stack):
    # Given every documented sample of the vendors with facts
    jointech(load_record("jointech", "mqtt-location"))
    mettax(load_record("mettax", "doc-device-info"), "device-info")
    # Then only the four blocks appear, and a power block speaks in percent, volts and a flag
    facts = [m["data"].get("facts", {}) for m in published(stack)]
    assert all(set(f) <= set(BLOCKS) for f in facts)
    powers = [f["power"] for f in facts if "power" in f]
    assert powers and all(set(p) <= {"batteryPct", "voltageV", "external"} for p in powers)
