"""What makes two records one event (docs/consuming.md): never two items under one event id, never
a stored event without its message, and an identity that includes the device."""

from __future__ import annotations

import json

import pytest

from devicegate.outbox.messages import event_source
from functions.face_terminal_webhook import app as face_app
from functions.mettax_webhook import app as mettax_app
from functions.outbox import app as outbox_app
from functions.senselink_webhook import app as senselink_app
from tests.support import context, load_event, load_record, with_body


def push(app, function: str, fixture: str, body: dict) -> int:
    event = with_body(load_event(fixture), json.dumps(body, ensure_ascii=False))
    return app.lambda_handler(event, context(function))["statusCode"]


def face_record(uuid: str, timestamp, serial: str = "PSC700C0MC22F02542") -> dict:
    body = json.loads(load_event("face-terminal/http-doc-record.json")["body"])
    body["data"].update(uuid=uuid, timestamp=timestamp, deviceSN=serial)
    return body


def senselink_record(sign_time) -> dict:
    body = json.loads(load_event("senselink/http-sub-record-employee.json")["body"])
    body["data"]["signTime"] = sign_time
    return body


def published(stack) -> list[dict]:
    assert outbox_app.lambda_handler({"Records": stack.new_stream_records()},
                                     context("OutboxFunction")) == {"batchItemFailures": []}
    return stack.queue_messages()


def assert_one_message_per_item(stack, vendor: str, messages: list[dict]) -> None:
    items = stack.event_items(vendor)
    identities = [(event_source(vendor, i["deviceId"]), i["eventId"]) for i in items]
    assert len(set(identities)) == len(identities), "two items under one identity"
    assert sorted((m["source"], m["id"]) for m in messages) == sorted(identities)


@pytest.mark.parametrize("first, second", [(1700000000, 1700000000.5), (1700000000, "1700000000")],
                         ids=["with-a-fraction", "as-text"])
def test_a_face_record_restating_its_time_is_the_same_record(stack, first, second):
    # Given a record, then the same uuid with its timestamp stated another way
    assert push(face_app, "FaceTerminalWebhookFunction", "face-terminal/http-doc-record.json",
                face_record("u-1", first)) == 200
    assert push(face_app, "FaceTerminalWebhookFunction", "face-terminal/http-doc-record.json",
                face_record("u-1", second)) == 200
    # Then it is one item and one message
    messages = published(stack)
    assert len(stack.event_items("face-terminal")) == 1 and len(messages) == 1
    assert_one_message_per_item(stack, "face-terminal", messages)


def test_a_senselink_record_restating_its_time_is_the_same_record(stack):
    # Given a record by subscription, then the same record id with signTime stated with a fraction
    assert push(senselink_app, "SenseLinkWebhookFunction", "senselink/http-sub-record-employee.json",
                senselink_record(1700000000)) == 200
    assert push(senselink_app, "SenseLinkWebhookFunction", "senselink/http-sub-record-employee.json",
                senselink_record(1700000000.25)) == 200
    messages = published(stack)
    assert len(stack.event_items("senselink")) == 1 and len(messages) == 1
    assert_one_message_per_item(stack, "senselink", messages)


def test_a_mettax_id_with_another_device_time_is_another_event_under_another_id(stack):
    gps = load_record("mettax", "doc-gps")
    for device_ct in (gps["deviceCt"], gps["deviceCt"] + 1):
        assert push(mettax_app, "MettaxWebhookFunction", "mettax/http-doc-gps.json",
                    {"data": json.dumps(dict(gps, deviceCt=device_ct))}) == 200
    messages = published(stack)
    assert len(stack.event_items("mettax")) == 2 and len(messages) == 2
    assert_one_message_per_item(stack, "mettax", messages)


def test_two_terminals_with_one_record_uuid_are_two_events_and_two_messages(stack):
    # Given two terminals that both produce a record with uuid "same"
    for serial in ("T-1", "T-2"):
        assert push(face_app, "FaceTerminalWebhookFunction", "face-terminal/http-doc-record.json",
                    face_record("same", 1700000000, serial)) == 200
    # Then each is stored and published, under a CloudEvents identity of its own device
    messages = published(stack)
    assert sorted(m["source"] for m in messages) == ["devicegate/face-terminal/T-1", "devicegate/face-terminal/T-2"]
    assert_one_message_per_item(stack, "face-terminal", messages)


def test_two_mettax_devices_with_one_record_id_are_two_events(stack):
    gps = load_record("mettax", "doc-gps")
    for device in ("105045133913", "105045133914"):
        assert push(mettax_app, "MettaxWebhookFunction", "mettax/http-doc-gps.json",
                    {"data": json.dumps(dict(gps, deviceId=device))}) == 200
    messages = published(stack)
    assert len(messages) == 2 and len({m["source"] for m in messages}) == 2
    assert_one_message_per_item(stack, "mettax", messages)
