"""Time sanity end to end on moto: a record stamped ahead of its receipt is stored and published,
but the device's latest state follows the correct-clock records after it; a record beyond the
horizon is refused naming its field and kept in quarantine."""

from __future__ import annotations

import json
from datetime import timedelta

from devicegate.core.timeutil import CLOCK_TOLERANCE, iso_utc, now_utc
from devicegate.ingest.wiring import http_pipeline
from functions.jointech_webhook import app as webhook_app
from functions.outbox import app as outbox_app
from tests.support import context, load_event, load_record, with_body

DEVICE = "8022300001"


def post(gps_time: str, latitude: float) -> tuple[int, dict]:
    record = dict(load_record("jointech", "webhook-location"), gpsTime=gps_time, latitude=latitude, longitude=113.9,
                  locType=1)
    event = with_body(load_event("jointech/http-webhook-location.json"), json.dumps(record))
    response = webhook_app.lambda_handler(event, context("JointechWebhookFunction"))
    return response["statusCode"], json.loads(response["body"])


def run_outbox(stack) -> None:
    assert outbox_app.lambda_handler({"Records": stack.new_stream_records()},
                                     context("OutboxFunction")) == {"batchItemFailures": []}


def test_a_record_stamped_23_hours_ahead_is_stored_but_does_not_freeze_state(stack, monkeypatch):
    start = now_utc().replace(microsecond=0)
    pipeline = http_pipeline("jointech")
    # Given a location received now but stamped 23 hours ahead (a zone mis-set on the device)
    monkeypatch.setattr(pipeline, "clock", lambda: start)
    ahead = start + timedelta(hours=23)
    assert post(iso_utc(ahead), 22.1)[0] == 200
    run_outbox(stack)
    # Then it is stored with its own time and moves state, ordered by its receipt plus the tolerance
    [stored] = stack.event_items()
    assert stored["occurredAt"] == iso_utc(ahead)
    assert stack.state("jointech", DEVICE)["position"]["at"] == iso_utc(start + CLOCK_TOLERANCE)

    # When correct-clock locations come after it: ten minutes later, and an hour later
    for minutes, latitude in ((10, 22.2), (60, 22.3)):
        received = start + timedelta(minutes=minutes)
        monkeypatch.setattr(pipeline, "clock", lambda received=received: received)
        assert post(iso_utc(received - timedelta(seconds=2)), latitude)[0] == 200
        run_outbox(stack)
        # Then the device's position follows each of them, not the record stamped ahead
        position = stack.state("jointech", DEVICE)["position"]
        assert position["value"]["latitude"] == latitude
        assert position["at"] == iso_utc(received - timedelta(seconds=2))
    # And every record is stored and published
    assert len(stack.event_items()) == 3 and len(stack.queue_messages()) == 3


def test_a_record_stamped_in_2100_is_refused_naming_its_field_and_kept(stack):
    # Given a location stamped in the year 2100
    status, answer = post("2100-01-01T00:00:00Z", 22.1)
    # Then it is refused naming gpsTime, kept in quarantine, and nothing is stored
    assert status == 400 and [e["field"] for e in answer["errors"]] == ["gpsTime"]
    [kept] = stack.quarantine_items()
    assert [p["field"] for p in kept["problems"]] == ["gpsTime"]
    assert stack.event_items() == []
