"""Jointech command texts and answers (vendor document, MQTT 3.4 and 3.6), the order in which an
answer is matched to waiting commands, and the local stack's SigV4 check on IAM routes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devicegate.core.adapter import CommandReply
from devicegate.core.commands import command_id
from devicegate.core.envelope import RawPush
from devicegate.store.commands import match_order
from devicegate.vendors.jointech import commands as jt
from devicegate.vendors.jointech.adapter import JointechAdapter
from devicegate_local.http import local_iam_identity, route_needs_iam
from tests.support import load_record

RECEIVED = datetime(2025, 2, 7, 3, 52, 40, tzinfo=UTC)


def stored_event(name: str) -> dict:
    """A documented cmd record as the outbox sees it (normalized, data decoded)."""
    import json

    record = load_record("jointech", name)
    push = RawPush("jointech", "mqtt", json.dumps(record).encode(), route={"kind": "cmd"})
    event = JointechAdapter().normalize(push, RECEIVED)[0]
    return {"vendor": "jointech", "kind": "cmd", "deviceId": event.deviceId, "eventId": event.eventId,
            "occurredAt": event.occurredAt, "receivedAt": event.receivedAt, "data": json.loads(event.dataJson)}


@pytest.mark.parametrize("body, text, key", [
    ({"command": "query_base_info"}, "(794308010642,1,001,BASE,1)", "BASE1"),
    ({"command": "query_time"}, "(794308010642,1,001,BASE,2)", "BASE2"),
    ({"command": "query_time", "serial": "002"}, "(794308010642,1,002,BASE,2)", "BASE2"),
    ({"raw": "(794308010642,1,001,BASE,1)"}, "(794308010642,1,001,BASE,1)", "BASE1"),
    ({"raw": "(794308010642,1,007,XYZ,5,10.0.0.1,8080)"}, "(794308010642,1,007,XYZ,5,10.0.0.1,8080)", "XYZ5"),
    ({"raw": "(794308010642,1,001,RESET)"}, "(794308010642,1,001,RESET)", "RESET"),
])
def test_commands_render_to_the_documented_text_and_the_key_their_answer_carries(body, text, key):
    rendered, problems = jt.render("794308010642", body)
    assert problems == [] and (rendered.text, rendered.match_key) == (text, key)


def test_the_documented_command_and_its_answer_agree():
    # Given the document's command and the answer it shows for it
    rendered, _ = jt.render("794308010642", {"command": "query_base_info"})
    reply = jt.command_reply(stored_event("mqtt-cmd-success"))
    # Then the answer's type, echoed word and serial are the command's
    assert rendered.text == "(794308010642,1,001,BASE,1)"
    assert (reply.match_key, reply.word, reply.serial, reply.ok) == ("BASE1", "BASE", "001", True)
    assert reply.response[:5] == ["794308010642", "8", "001", "BASE", "1"] and reply.error is None
    assert reply.responded_at == "2025-02-07T03:52:39.964Z"


@pytest.mark.parametrize("name, text", [("mqtt-cmd-not-online", "Device not online！"),
                                        ("mqtt-cmd-not-registered", "Device has not been registered！")])
def test_the_clouds_failures_name_no_command_and_keep_their_text(name, text):
    reply = jt.command_reply(stored_event(name))
    assert reply.match_key is None and reply.ok is False and reply.error == text and reply.response is None


def test_an_answer_without_a_type_is_keyed_by_its_echoed_fields():
    event = stored_event("mqtt-cmd-success")
    event["data"].pop("commandType")
    assert jt.command_reply(event).match_key == "BASE1"


def test_other_kinds_are_no_reply():
    assert JointechAdapter().command_reply({"kind": "location", "data": {}}) is None


def _item(ident: str, key: str, serial: str = "001", status: str = "pending") -> dict:
    return {"commandId": ident, "matchKey": key, "word": key.rstrip("0123456789"), "serial": serial,
            "status": status, "timeoutAt": "2025-02-07T04:00:00.000Z"}


def _reply(key: str | None, word: str | None = None, serial: str | None = None) -> CommandReply:
    return CommandReply(device_id="d", received_at="2025-02-07T03:55:00.000Z", responded_at="", event_id="e",
                        ok=key is not None, match_key=key, word=word, serial=serial)


def test_an_answer_prefers_its_own_type_then_its_serial_then_the_oldest():
    items = [_item("1", "BASE2"), _item("2", "BASE1", "002"), _item("3", "BASE1", "001"), _item("4", "GPS1")]
    order = [i["commandId"] for i in match_order(items, _reply("BASE1", "BASE", "001"))]
    # BASE1 with the echoed serial, then the same word; never another serial or another word
    assert order == ["3", "1"]


def test_a_failure_naming_no_command_answers_the_oldest_waiting_one_of_any_type():
    items = [_item("2", "GPS1"), _item("1", "BASE1"), _item("0", "BASE1", status="succeeded")]
    assert [i["commandId"] for i in match_order(items, _reply(None))] == ["1", "2"]


def test_commands_past_their_deadline_at_receipt_are_not_candidates():
    late = dict(_item("1", "BASE1"), timeoutAt="2025-02-07T03:54:59.999Z")
    assert match_order([late], _reply("BASE1", "BASE")) == []


def test_command_ids_sort_by_time():
    early = command_id(datetime(2025, 2, 7, 3, 52, 39, 964000, tzinfo=UTC))
    late = command_id(datetime(2025, 2, 7, 3, 52, 40, 1000, tzinfo=UTC))
    assert early.startswith("20250207T035239964Z-") and early < late


def test_topic_and_device_numbers():
    assert jt.topic("B176C0FF1DFF41D0126BFF7908C76E17", "8041254836") == \
        "download/B176C0FF1DFF41D0126BFF7908C76E17/8041254836/cmd"
    assert jt.valid_device("8041254836") and not jt.valid_device("a/b") and not jt.valid_device("+")
    assert not jt.valid_device("#") and not jt.valid_device("")


# --- the local stack's stand-in for the IAM authorizer ---------------------------------------

SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20250207/us-east-1/execute-api/aws4_request, "
                           "SignedHeaders=host;x-amz-date, Signature=" + "a" * 64,
          "X-Amz-Date": "20250207T073005Z"}


def test_local_iam_routes_accept_a_sigv4_signature_for_execute_api_only():
    identity = local_iam_identity(SIGNED)
    assert identity["userArn"] == "arn:aws:iam::123456789012:user/local"
    assert local_iam_identity({}) is None
    assert local_iam_identity({**SIGNED, "X-Amz-Date": ""}) is None
    assert local_iam_identity({**SIGNED, "Authorization": SIGNED["Authorization"].replace("execute-api", "s3")}) is None
    assert local_iam_identity({**SIGNED, "Authorization": "Bearer abc"}) is None


def test_only_events_with_the_aws_iam_authorizer_are_iam_routes():
    assert route_needs_iam({"Auth": {"Authorizer": "AWS_IAM"}})
    assert not route_needs_iam({}) and not route_needs_iam({"Auth": {"Authorizer": "NONE"}})
