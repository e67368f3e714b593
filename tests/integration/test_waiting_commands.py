"""Commands kept for the device's next contact (`whenOnline`), in one process on moto: queued by
the IAM route, sent by the outbox when the device is next heard from, answered, retried, expired
by the sweep or cancelled; each step one `command.*` event on the queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from devicegate.store import keys
from functions.outbox import app as outbox_app
from tests.integration.test_jointech_commands import (
    DEVICE,
    command_items,
    prepare_gateway,
    published,
    request,
    send,
    sweep_at,
)
from tests.integration.test_jointech_ingest import mqtt, post
from tests.support import context, load_event, load_record, new_environment, with_body

TOPIC = f"download/ak-demo/{DEVICE}/cmd"
_minute = count(1)


@pytest.fixture
def gateway(stack, monkeypatch):
    return prepare_gateway(stack, monkeypatch)


def contact(device: str = DEVICE) -> None:
    """The device heard from: a new location record (a new time, so not a retransmission)."""
    record = load_record("jointech", "webhook-location")
    record["assetId"] = device
    record["gpsTime"] = f"2022-09-01T09:{next(_minute):02d}:00Z"
    assert post(with_body(load_event("jointech/http-webhook-location.json"), json.dumps(record)))[0] == 200


def answer_base1(serial: str = "001") -> None:
    """The device's BASE1 answer to a query_base_info sent with `serial`, by MQTT."""
    event = load_event("jointech/iot-mqtt-cmd-success.json")
    fields = json.loads(event["content"])
    fields[2] = serial
    event["content"] = json.dumps(fields)
    event["dateTime"] = f"2025-02-07T04:{next(_minute):02d}:00.000Z"
    assert mqtt(event)["outcome"] == "accepted"


def queue(body: dict | None = None) -> dict:
    status, view, _ = send({"command": "query_base_info", "whenOnline": True, **(body or {})})
    assert status == 202, view
    return view


def cancel(command_id: str, device: str = DEVICE) -> tuple[int, dict]:
    event = load_event("jointech-commands/http-post-cancel.json")
    event["pathParameters"] = {"deviceNum": device, "commandId": command_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = (
        f"/devices/jointech/{device}/commands/{command_id}/cancel")
    status, body, _ = request(event)
    return status, body


def waiting_count(stack, device: str = DEVICE) -> int:
    return int((stack.device_item("jointech", device) or {}).get("waitingCommands") or 0)


def drain(stack) -> None:
    """The outbox over everything the stream holds, until it holds nothing new (a dispatch writes
    command.sent events, which are stream records of their own)."""
    for _ in range(5):
        records = stack.new_stream_records()
        if not records:
            return
        assert outbox_app.lambda_handler({"Records": records}, context("OutboxFunction")) == {"batchItemFailures": []}


def lifecycle(stack) -> list[str]:
    """The command.* kinds the queue received, in order."""
    return [m["type"].removeprefix("devicegate.jointech.") for m in stack.queue_messages()
            if m["type"].startswith("devicegate.jointech.command.")]


def by_id(stack, command_id: str) -> dict:
    return next(c for c in command_items(stack) if c["commandId"] == command_id)


# --- queued, then sent at the next contact -----------------------------------------------------------

def test_waiting_commands_are_kept_and_sent_at_the_next_contact_in_order(gateway):
    # Given two commands sent with whenOnline (distinct serials), and no contact since
    first = queue({"serial": "002"})
    second = queue({"command": "query_time", "serial": "003"})

    # Then nothing went to the device, both are queued with an expiry, and the device's row counts them
    assert published() == []
    assert [first["status"], second["status"]] == ["queued", "queued"]
    assert "timeoutAt" not in first and first["waitUntil"] > first["requestedAt"]
    assert waiting_count(gateway) == 2

    # When the device is next heard from (any record), and the outbox handles it
    contact()
    drain(gateway)

    # Then both went out on its download topic, oldest first, each now sent (pending) with a deadline
    assert published() == [(TOPIC, f"({DEVICE},1,002,BASE,1)".encode()), (TOPIC, f"({DEVICE},1,003,BASE,2)".encode())]
    for view in (first, second):
        item = by_id(gateway, view["commandId"])
        assert item["status"] == "pending" and item["attempts"] == 1 and item["timeoutAt"] > item["sentAt"]
    assert waiting_count(gateway) == 0

    # When the device answers the first one
    answer_base1("002")
    drain(gateway)

    # Then it is answered (succeeded), and the queue heard every step once, in order
    assert by_id(gateway, first["commandId"])["status"] == "succeeded"
    assert lifecycle(gateway) == ["command.queued", "command.queued", "command.sent", "command.sent",
                                  "command.answered"]


def test_each_step_is_one_event_and_a_retried_outbox_batch_doubles_none(gateway):
    # Given a queued command and the device's contact
    view = queue()
    contact()
    # When the outbox handles the contact's batch twice (a retried batch), then the rest
    records = gateway.new_stream_records()
    for _ in range(2):
        assert outbox_app.lambda_handler({"Records": records}, context("OutboxFunction")) == {"batchItemFailures": []}
    drain(gateway)
    # Then the command went out once, and each step is one event, with the device's vendor
    assert published() == [(TOPIC, f"({DEVICE},1,001,BASE,1)".encode())]
    messages = [m for m in gateway.queue_messages() if m["type"].startswith("devicegate.jointech.command.")]
    assert [m["type"] for m in messages] == ["devicegate.jointech.command.queued", "devicegate.jointech.command.sent"]
    assert {m["data"]["vendor"] for m in messages} == {"jointech"} and {m["subject"] for m in messages} == {DEVICE}
    assert {m["data"]["data"]["commandId"] for m in messages} == {view["commandId"]}
    # And no event carries the command's text
    assert not any(f"({DEVICE}," in json.dumps(m) for m in messages)


def test_lifecycle_events_are_not_contact_and_move_no_state(gateway):
    # Given a device's state after its last record
    before = gateway.device_item("jointech", DEVICE)
    # When a command is queued for it and its command.queued event goes through the outbox
    queue()
    drain(gateway)
    # Then nothing was sent (the gateway's own event is not the device talking), its last
    # contact and state are as they were
    after = gateway.device_item("jointech", DEVICE)
    assert published() == []
    assert (after["heardAt"], after["state"]) == (before["heardAt"], before["state"])


# --- attempts, expiry, cancel ----------------------------------------------------------------------------

def test_an_unanswered_attempt_is_sent_again_at_the_next_contact_up_to_the_attempts(gateway, monkeypatch):
    # Given a deployment giving each waiting command 2 attempts, and a queued command
    monkeypatch.setenv("COMMAND_MAX_ATTEMPTS", "2")
    new_environment()
    view = queue()
    assert view["maxAttempts"] == 2
    sweeps = []
    for _ in range(3):
        # When the device makes contact, the command goes out and nobody answers; the sweep runs
        # past the attempt's deadline
        contact()
        drain(gateway)
        item = by_id(gateway, view["commandId"])
        if item["status"] == "pending":
            sweeps.append(sweep_at(monkeypatch, datetime.fromisoformat(item["timeoutAt"]) + timedelta(seconds=61)))
        drain(gateway)
    # Then it was sent twice (two contacts), queued again after the first, timed out after the second
    assert len(published()) == 2
    assert [s["commandAttemptsClosed"] for s in sweeps] == [1, 1]
    item = by_id(gateway, view["commandId"])
    assert (item["status"], item["attempts"], item["error"]) == ("timed_out", 2, "no answer to the last attempt")
    assert waiting_count(gateway) == 0
    assert lifecycle(gateway) == ["command.queued", "command.sent", "command.queued", "command.sent", "command.failed"]


def test_device_not_online_after_a_contact_queues_the_attempt_again_once(gateway):
    # Given a waiting command sent at a contact
    view = queue()
    contact()
    drain(gateway)
    assert by_id(gateway, view["commandId"])["status"] == "pending"
    # When Jointech's cloud answers that the device is not online (it went away again), and the
    # outbox handles that answer twice (a retried batch)
    event = dict(load_event("jointech/iot-mqtt-cmd-not-online.json"), assetId=DEVICE, deviceNum=DEVICE,
                 dateTime=f"2025-01-07T10:{next(_minute):02d}:00.000Z")
    assert mqtt(event)["outcome"] == "accepted"
    records = gateway.new_stream_records()
    for _ in range(2):
        assert outbox_app.lambda_handler({"Records": records}, context("OutboxFunction")) == {"batchItemFailures": []}
    drain(gateway)
    # Then the command waits again for the next contact (one attempt spent), counted once
    item = by_id(gateway, view["commandId"])
    assert (item["status"], item["attempts"], item["error"]) == ("queued", 1, "Device not online！")
    assert waiting_count(gateway) == 1
    # And the next contact sends it again
    contact()
    drain(gateway)
    assert len(published()) == 2 and by_id(gateway, view["commandId"])["attempts"] == 2
    assert lifecycle(gateway) == ["command.queued", "command.sent", "command.queued", "command.sent"]


def test_a_waiting_command_past_its_expiry_is_expired_by_the_sweep_and_never_sent(gateway, monkeypatch):
    # Given a command kept for a minute
    view = queue({"expiresIn": 60})
    until = datetime.fromisoformat(view["waitUntil"])
    # When the sweep runs before and after its expiry, and again
    runs = [sweep_at(monkeypatch, at)["commandsExpired"] for at in (until - timedelta(seconds=5),
                                                                   until + timedelta(seconds=1),
                                                                   until + timedelta(seconds=300))]
    # Then it is expired once, counted off, and the device's next contact sends nothing
    assert runs == [0, 1, 0]
    assert by_id(gateway, view["commandId"])["status"] == "expired" and waiting_count(gateway) == 0
    contact()
    drain(gateway)
    assert published() == []
    assert lifecycle(gateway) == ["command.queued", "command.expired"]


def test_a_waiting_command_can_be_cancelled_and_a_sent_one_cannot(gateway):
    # Given a queued command and one sent now
    waiting = queue()
    status, sent, _ = send({"command": "query_time", "serial": "005"})
    assert status == 202
    # When the queued one is cancelled
    status, cancelled = cancel(waiting["commandId"])
    # Then it is cancelled, counted off, and not sent at the next contact
    assert (status, cancelled["status"]) == (200, "cancelled") and "cancelledAt" in cancelled
    assert waiting_count(gateway) == 0
    published().clear()
    contact()
    drain(gateway)
    assert published() == []
    # And cancelling it again answers it again (a cancel is idempotent, as a retry after a lost
    # answer needs); the command already sent is a 409 naming its status; an unknown id 404
    again, body = cancel(waiting["commandId"])
    assert (again, body["status"], body["cancelledAt"]) == (200, "cancelled", cancelled["cancelledAt"])
    refused, body = cancel(sent["commandId"])
    assert (refused, body["status"]) == (409, "pending") and "not waiting" in body["message"]
    assert cancel("20250101T000000000Z-0000000000")[0] == 404
    assert lifecycle(gateway) == ["command.queued", "command.cancelled"]


def test_the_sample_events_queue_a_command_and_cancel_one(gateway):
    # Given the when-online sample as API Gateway hands it over
    status, view, headers = request(load_event("jointech-commands/http-post-typed-query-base-info-when-online.json"))
    # Then it is queued for an hour (its expiresIn), not sent
    assert (status, view["status"], published()) == (202, "queued", [])
    assert headers["location"].endswith(f"?id={view['commandId']}")
    # And the cancel sample, pointed at it, cancels it
    assert cancel(view["commandId"])[0] == 200
    event = load_event("jointech-commands/http-post-cancel.json")
    assert request(event)[0] == 404  # the sample's own id names no command of this stack


# --- safety and the request ---------------------------------------------------------------------------

UNLOCK = f"({DEVICE},1,001,UNLOCK,1)"


@pytest.mark.parametrize("body, field", [
    ({"raw": UNLOCK, "whenOnline": True}, "whenOnline"),
    ({"raw": UNLOCK, "whenOnline": True, "allowUnsafe": True, "expiresIn": 3600}, "expiresIn"),
    ({"command": "query_time", "whenOnline": True, "expiresIn": 59}, "expiresIn"),
    ({"command": "query_time", "whenOnline": True, "expiresIn": 8 * 86400}, "expiresIn"),
    ({"command": "query_time", "whenOnline": True, "expiresIn": "1h"}, "expiresIn"),
    ({"command": "query_time", "whenOnline": "yes"}, "whenOnline"),
    ({"command": "query_time", "expiresIn": 600}, "expiresIn"),
    ({"command": "query_time", "allowUnsafe": True}, "allowUnsafe"),
])
def test_unsafe_or_ill_formed_waiting_requests_are_400_and_nothing_is_kept(gateway, body, field):
    status, answer, _ = send(body)
    assert status == 400 and field in [e["field"] for e in answer["errors"]], answer
    assert command_items(gateway) == [] and published() == [] and waiting_count(gateway) == 0


def test_a_command_that_may_unlock_waits_only_when_asked_and_briefly(gateway):
    # When an unlock-like command is sent with whenOnline and allowUnsafe, no expiry given
    status, view, _ = send({"raw": UNLOCK, "whenOnline": True, "allowUnsafe": True})
    # Then it is kept for the short default (UnsafeWaitingCommandMaxExpirySeconds, 300 s), marked so
    waited = datetime.fromisoformat(view["waitUntil"]) - datetime.fromisoformat(view["requestedAt"])
    assert (status, view["status"], view["allowUnsafe"], waited) == (202, "queued", True, timedelta(seconds=300))
    # And a command sent now is unchanged by all this: pending, published at once, no event
    status, now, _ = send({"command": "query_time", "serial": "007"})
    assert (status, now["status"], len(published())) == (202, "pending", 1)
    assert "whenOnline" not in now


# --- what an ordinary event costs ----------------------------------------------------------------------

class Calls:
    """Counts the requests a client makes."""

    def __init__(self, client):
        self._client, self.counts = client, {}

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def counted(**kwargs):
            self.counts[name] = self.counts.get(name, 0) + 1
            return method(**kwargs)
        return counted


def _outbox_with_counted_clients(stack, monkeypatch) -> Calls:
    from devicegate.infra import aws
    from devicegate.outbox import wiring

    calls = Calls(stack.ddb)
    iot = Calls(stack.session.client("iot-data"))
    monkeypatch.setattr(wiring, "client", lambda service: calls if service == "dynamodb" else aws.client(service))
    monkeypatch.setattr(wiring, "LazyClient", lambda service: iot)
    calls.iot = iot  # type: ignore[attr-defined]
    new_environment()
    return calls


def test_an_ordinary_event_of_a_device_with_nothing_waiting_costs_no_request_more(gateway, monkeypatch):
    # Given the outbox's clients counted, and an event of a device without waiting commands
    calls = _outbox_with_counted_clients(gateway, monkeypatch)
    contact()
    # When the outbox handles it
    drain(gateway)
    # Then the device's row is read once and written once, and nothing else is asked of DynamoDB
    # or IoT Core: no query for commands, no text read, no publish
    assert calls.counts == {"batch_get_item": 1, "put_item": 1}
    assert calls.iot.counts == {}  # type: ignore[attr-defined]


def test_a_device_with_a_waiting_command_costs_a_query_a_read_a_transaction_and_a_publish(gateway, monkeypatch):
    # Given a queued command, and the outbox's clients counted
    queue()
    drain(gateway)
    calls = _outbox_with_counted_clients(gateway, monkeypatch)
    contact()
    # When the outbox handles the contact (the batch; its command.sent event comes in the next)
    records = gateway.new_stream_records()
    assert outbox_app.lambda_handler({"Records": records}, context("OutboxFunction")) == {"batchItemFailures": []}
    # Then, besides the row's read and write: one Query, one text read, one transaction, one publish
    assert calls.counts == {"batch_get_item": 1, "put_item": 1, "query": 1, "get_item": 1, "transact_write_items": 1}
    assert calls.iot.counts == {"publish": 1}  # type: ignore[attr-defined]


# --- durable ---------------------------------------------------------------------------------------------

def test_a_waiting_command_survives_a_fresh_process_wired_from_settings(gateway):
    # Given a queued command
    view = queue()
    # When every function's wiring is made again from the environment (a cold start, a
    # redeploy: nothing is kept in memory between contacts)
    new_environment()
    contact()
    drain(gateway)
    # Then the command, read back from the table, goes out at the contact
    assert published() == [(TOPIC, f"({DEVICE},1,001,BASE,1)".encode())]
    assert by_id(gateway, view["commandId"])["status"] == "pending"


def test_the_state_row_keeps_the_count_through_a_concurrent_device_write(gateway):
    # Given the outbox about to write a device's row it read before a command was queued
    from devicegate.store.devices import DeviceNews, DeviceStore, GroupNews

    store = DeviceStore(gateway.ddb, gateway.table)
    read_before = store.get("jointech", DEVICE)
    queue()
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    news = DeviceNews("jointech", DEVICE, {"summary": GroupNews(at, "e-late", {"lastKind": "location"})}, heard_at=at)
    # When it writes (its version lock is refused: the queued command moved the row on), then merges again
    store.apply(news, read_before, datetime.now(UTC))
    # Then the count is still there
    assert waiting_count(gateway) == 1
    assert keys.device_pk("jointech", DEVICE) == gateway.device_item("jointech", DEVICE)["pk"]
