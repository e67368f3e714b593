"""Faults on the ingest path: every webhook and the Jointech MQTT function, each of their AWS calls
in every shape that applies (tests/faults/injector.py).

Targets and their calls (the token read always meets a cold cache: each case is a new
execution environment):

    jointech (kind route)      token, event PutItem
    jointech (single URL)      token, event PutItem
    jointech (invalid record)  quarantine UpdateItem
    face-terminal (photo)      token, photo PutObject, id marker PutItem, event PutItem   (uuid is
                                                                      the identity: the marker)
    senselink (record)         token, id marker PutItem, event PutItem   on its 5 s-deadline clients
    senselink (heartbeat)      (after the token, as a record) the bridge's item BatchGetItem, its
                               PutItem, the consistent re-read after a lost race (the put
                               retried after its answer was lost)
    mettax (gps)               token, event PutItem
    mettax (face check)        part UpdateItem, assembled event PutItem
    mettax (alarm file)        id marker PutItem, event PutItem       no device time: the marker
                                                                      keys the resend
    ai-camera (heartbeat)      token, event PutItem, configuration GetItem (its answer carries it)
    jointech MQTT              event PutItem

Every case: the answer is the vendor's retryable failure (never a 500, never an exception; the
MQTT function raises RetryLater and nothing else) or, when a retry absorbed the fault (botocore's,
or the store's own for keys a batch read handed back), its success; "accepted" only once the
record is in the table (checked right at the answer); within the deadline; the sender's resend, a
minute later (a receipt time of its own), is accepted and stores the record once, an event
without device time under its first copy's key; the outbox queues each event once.

Matrix: 11 targets, 25 calls: 9 reads x 6 shape variants + 16 writes x 8, plus the 2 other network
errors on each target's first call (11 x 2) and the 2 throttled answers of the 2 batch reads
= 208 cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from devicegate.core.timeutil import iso_utc, now_utc
from devicegate.ingest.pipeline import Pipeline
from devicegate.ingest.wiring import http_pipeline, mqtt_pipeline
from devicegate.store import keys
from devicegate.store.codec import from_item, to_attr
from functions.ai_camera_webhook import app as ai_camera_app
from functions.face_terminal_webhook import app as face_terminal_app
from functions.jointech_mqtt import app as mqtt_app
from functions.jointech_webhook import app as jointech_app
from functions.mettax_webhook import app as mettax_app
from functions.senselink_webhook import app as senselink_app
from tests.faults.injector import LOST_ANSWER, Injector
from tests.faults.matrix import (
    STATE_READ,
    STATE_REREAD,
    STATE_WRITE,
    Op,
    answer_of,
    assert_each_event_queued_once,
    cases,
    run_outbox_to_the_end,
    where_key,
)
from tests.support import EVENTS, Stack, context, load_event, with_body

#: The answer each vendor is promised for "keep it and retry" (their adapters, written out here).
RETRY_LATER = {
    "jointech": (503, {"result": 503, "message": "temporarily unavailable, retry later"}),
    "face-terminal": (503, {"code": 503, "msg": "temporarily unavailable, keep the record and retry",
                            "message": "temporarily unavailable, keep the record and retry", "data": {}}),
    "senselink": (503, {"code": 503, "message": "temporarily unavailable, retry"}),
    "mettax": (503, {"code": 503, "message": "temporarily unavailable, retry later"}),
    "ai-camera": (503, {"result": {"errorNo": 503, "description": "temporarily unavailable, retry"}}),
}
SENSELINK_DEADLINE_S = 5.0
CAMERA = "I320013590DEA0BE21F6958"
CAMERA_CONFIG = json.loads((EVENTS / "ai-camera" / "config-example.json").read_text())
BRIDGE = "bridge:lobby-server"  # the SenseLink bridge of the heartbeat fixture, as a device
#: When the sender's resend arrives: later than the first copy, so an event timed by its receipt
#: gets another time, and only its id marker can hand it the first copy's key.
RESENT_AFTER = timedelta(minutes=1)

TOKEN = Op("token", "secretsmanager", "GetSecretValue", writes=False)
EVENT = Op("event", "dynamodb", "PutItem", where=where_key("E#"))
MARKER = Op("marker", "dynamodb", "PutItem", where=where_key("EID#"))
PHOTO = Op("photo", "s3", "PutObject")
CONFIG = Op("config", "dynamodb", "GetItem", writes=False)
QUARANTINE = Op("quarantine", "dynamodb", "UpdateItem")
PART = Op("part", "dynamodb", "UpdateItem", where=where_key("P#"))


@dataclass(frozen=True)
class Ingest:
    vendor: str
    function: str  # the template's logical id: its Timeout bounds the answer
    handler: Callable[..., Any]
    push: Callable[[], dict[str, Any]]
    given: Callable[[Stack], None] | None = None
    kept: str = "event"  # what a push leaves: an "event", a "heartbeat" (liveness), a "quarantine" item
    mqtt: bool = False
    #: The record carries no time of its own: its event is timed by its receipt, keyed by an id marker.
    receipt_timed: bool = False
    #: The vendor's id alone is the record's identity (NormalizedEvent.unique_id): an id marker too.
    unique_id: bool = False

    @property
    def id_marker(self) -> bool:
        return self.receipt_timed or self.unique_id

    def pipeline(self) -> Pipeline:
        """The function's pipeline, as its execution environment keeps it."""
        return mqtt_pipeline(self.vendor) if self.mqtt else http_pipeline(self.vendor)

    def deliver(self) -> Any:
        """One delivery: the HTTP answer (status, body), or the MQTT function's result."""
        if self.mqtt:
            try:
                return self.handler(self.push(), context(self.function))
            except mqtt_app.RetryLater:
                return "retry-later"
        return answer_of(self.handler(self.push(), context(self.function)))

    @property
    def retry_later(self) -> Any:
        return "retry-later" if self.mqtt else RETRY_LATER[self.vendor]


def _invalid_location() -> dict[str, Any]:
    event = load_event("jointech/http-webhook-location.json")
    record = json.loads(event["body"])
    return with_body(event, json.dumps(dict(record, gpsTime="yesterday-ish", latitude=123.4)))


def _face_check_result_first(stack: Stack) -> None:
    # The comparison result came first; the picture (the case's push) completes the check.
    assert answer_of(mettax_app.lambda_handler(load_event("mettax/http-doc-face-check-result.json"),
                                               context("MettaxWebhookFunction")))[0] == 200


def _camera_configured(stack: Stack) -> None:
    # What an app (or `devicegate strategy set`) writes: the heartbeat's answer must carry it.
    stack.ddb.put_item(TableName=stack.table, Item={
        "pk": {"S": keys.config_pk("ai-camera", CAMERA)}, "sk": {"S": keys.CONFIG_SK},
        "config": to_attr(CAMERA_CONFIG), "updatedAt": {"S": "2026-01-01T00:00:00.000Z"}})


def _fixture(name: str) -> Callable[[], dict[str, Any]]:
    return lambda: load_event(name)


JOINTECH_KIND = Ingest("jointech", "JointechWebhookFunction", jointech_app.lambda_handler,
                       _fixture("jointech/http-webhook-location.json"))
JOINTECH_AUTO = Ingest("jointech", "JointechWebhookFunction", jointech_app.lambda_handler,
                       _fixture("jointech/http-auto-alarm.json"))
JOINTECH_INVALID = Ingest("jointech", "JointechWebhookFunction", jointech_app.lambda_handler, _invalid_location,
                          kept="quarantine")
FACE_PHOTO = Ingest("face-terminal", "FaceTerminalWebhookFunction", face_terminal_app.lambda_handler,
                    _fixture("face-terminal/http-variation-record-with-photo-and-pin.json"), unique_id=True)
SENSELINK_RECORD = Ingest("senselink", "SenseLinkWebhookFunction", senselink_app.lambda_handler,
                          _fixture("senselink/http-sub-record-employee.json"), unique_id=True)
SENSELINK_BEAT = Ingest("senselink", "SenseLinkWebhookFunction", senselink_app.lambda_handler,
                        _fixture("senselink/http-ws-doc-heartbeat.json"), kept="heartbeat")
METTAX_GPS = Ingest("mettax", "MettaxWebhookFunction", mettax_app.lambda_handler, _fixture("mettax/http-doc-gps.json"))
METTAX_FACE = Ingest("mettax", "MettaxWebhookFunction", mettax_app.lambda_handler,
                     _fixture("mettax/http-doc-face-check-picture.json"), given=_face_check_result_first)
CAMERA_BEAT = Ingest("ai-camera", "AiCameraWebhookFunction", ai_camera_app.lambda_handler,
                     _fixture("ai-camera/http-doc-heartbeat.json"), given=_camera_configured)
METTAX_FILE = Ingest("mettax", "MettaxWebhookFunction", mettax_app.lambda_handler,
                     _fixture("mettax/http-doc-alarm-file.json"), receipt_timed=True)
MQTT = Ingest("jointech", "JointechMqttFunction", mqtt_app.lambda_handler,
              _fixture("jointech/iot-webhook-location.json"), mqtt=True)

CASES = cases([
    ("jointech-kind", JOINTECH_KIND, (TOKEN, EVENT)),
    ("jointech-auto", JOINTECH_AUTO, (TOKEN, EVENT)),
    ("jointech-invalid", JOINTECH_INVALID, (QUARANTINE,)),
    ("face-terminal-photo", FACE_PHOTO, (TOKEN, PHOTO, MARKER, EVENT)),
    ("senselink-record", SENSELINK_RECORD, (TOKEN, MARKER, EVENT)),
    ("senselink-heartbeat", SENSELINK_BEAT, (STATE_READ, STATE_WRITE, STATE_REREAD)),
    ("mettax-gps", METTAX_GPS, (TOKEN, EVENT)),
    ("mettax-face-check", METTAX_FACE, (PART, EVENT)),
    ("mettax-alarm-file", METTAX_FILE, (MARKER, EVENT)),
    ("ai-camera-heartbeat", CAMERA_BEAT, (TOKEN, EVENT, CONFIG)),
    ("jointech-mqtt", MQTT, (EVENT,)),
])


@pytest.mark.parametrize("target, op, shape, attempts", CASES)
def test_a_push_whose_call_fails_is_retried_by_its_sender_and_stored_once(world, stack, faults: Injector, logs,
                                                                        monkeypatch, target: Ingest, op: Op,
                                                                        shape, attempts):
    # Given a cold function (no token cached) and what the push builds on
    if target.given:
        target.given(stack)
    fault = op.arm(faults, shape, attempts)
    faults.elapsed = 0.0

    # When the sender pushes and the call fails in this shape
    first = target.deliver()
    elapsed = faults.elapsed
    faults.disarm()

    # Then the fault was met, and the sender is told to keep the record and retry (or, when a
    # retry absorbed the fault, that it is accepted, the record durable already)
    assert fault.hits >= 1, f"{fault.label()} never happened: the case tests nothing"
    if fault.absorbed:
        assert_accepted(stack, target, first)
    else:
        assert first == target.retry_later
    # ...the failure classified (StorageUnavailable), not caught as a bug by the pipeline's last
    # resort, which would answer the same
    assert "ingest raised" not in logs()
    # ...in time: before the function's timeout (Lambda's own 5xx otherwise); SenseLink within the
    # 80 % of its 5 s that devicegate.aws sizes its clients for
    budget = SENSELINK_DEADLINE_S * 0.8 if target.vendor == "senselink" else world.timeouts[target.function]
    assert elapsed <= budget

    # When the sender delivers it again, a minute later (its retry; after a success, a
    # retransmission)
    resent = iso_utc(now_utc() + RESENT_AFTER / 2)  # after the first copy's receipt, before the resend's
    monkeypatch.setattr(target.pipeline(), "clock", lambda: now_utc() + RESENT_AFTER)
    second = target.deliver()

    # Then it is accepted, and kept exactly once
    assert_accepted(stack, target, second)
    landed_before = fault.absorbed or shape == LOST_ANSWER
    assert_kept_once(stack, target, deliveries_counted=1 + landed_before)
    if target.receipt_timed:
        # ...timed by the receipt of the copy whose id marker landed first: the first copy's
        # whenever its marker did (the event's own write is what failed, or the marker's answer)
        first_claimed = op.label != MARKER.label or landed_before
        [event] = stack.event_items(target.vendor)
        assert (event["receivedAt"] < resent) is first_claimed
    # And the outbox queues each stored event exactly once
    run_outbox_to_the_end(stack)
    assert_each_event_queued_once(stack, [target.vendor])


def assert_accepted(stack: Stack, target: Ingest, answer: Any) -> None:
    """The vendor's success answer, and what it promises already durable."""
    if target.mqtt:
        assert answer != "retry-later" and answer["outcome"] in ("accepted", "duplicate")
    elif target.kept == "quarantine":
        status, body = answer
        assert status == 400 and {e["field"] for e in body["errors"]} == {"gpsTime", "latitude"}
    else:
        status, body = answer
        assert status == 200
        if target.vendor == "ai-camera":
            # Answered from the camera's own configuration, never a default in its place
            assert body["operator"] == "heartbeat-Ack" and body["result"]["errorNo"] == 0
            assert body["info"]["heartbeatInterval"] == CAMERA_CONFIG["heartbeatInterval"]
        else:
            assert body.get("code", body.get("result")) == 200
    if target.kept == "event":
        items = stack.event_items(target.vendor)
        assert items, "accepted before the event was stored"
        for item in items:
            for ref in _media_refs(item["data"]):
                # Objects first: an event never references a photo that is not there.
                stack.session.client("s3").head_object(Bucket=stack.bucket, Key=ref["key"])
    elif target.kept == "heartbeat":
        assert stack.state(target.vendor, BRIDGE)["summary"]["online"] is True
    else:
        assert stack.quarantine_items(target.vendor), "rejected before the payload was kept"


def assert_kept_once(stack: Stack, target: Ingest, deliveries_counted: int) -> None:
    if target.kept == "event":
        [event] = stack.event_items(target.vendor)
        markers = id_markers(stack, target.vendor)
        if target.id_marker:
            # One marker, and the event under the key it claimed
            [marker] = markers
            assert marker["sk"] == event["eventId"] and marker["eventSk"] == event["sk"]
            if target.receipt_timed:
                assert event["occurredAt"] == event["receivedAt"]
        else:
            assert markers == []
    elif target.kept == "heartbeat":
        assert stack.event_items(target.vendor) == []  # liveness only: nothing stored, nothing published
        assert list(stack.state(target.vendor, BRIDGE)) == ["summary"]
    else:
        # One item for the payload; its count is the deliveries whose write landed (a write
        # retried by botocore itself is not counted twice).
        [item] = stack.quarantine_items(target.vendor)
        assert item["seenCount"] == deliveries_counted


def id_markers(stack: Stack, vendor: str) -> list[dict[str, Any]]:
    return [from_item(i) for i in stack.ddb.scan(TableName=stack.table)["Items"]
            if i["pk"]["S"].startswith(f"EID#{vendor}#")]


def _media_refs(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        if set(data) == {"key", "contentType", "bytes"}:
            return [data]
        return [ref for value in data.values() for ref in _media_refs(value)]
    if isinstance(data, list):
        return [ref for value in data for ref in _media_refs(value)]
    return []
