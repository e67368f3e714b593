"""What the gateway answers when it must not say "accepted": bad tokens, bad input, storage down."""

from __future__ import annotations

import hashlib
import json

import pytest

from devicegate.store import keys
from functions.jointech_mqtt import app as mqtt_app
from tests.integration.test_jointech_ingest import mqtt, post
from tests.support import load_event, load_record, with_body, with_path

LOCATION = "jointech/http-webhook-location.json"


def _record(**changes) -> str:
    record = load_record("jointech", "webhook-location")
    record.update(changes)
    return json.dumps(record)


# --- authentication ---------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["wrong-token", "-", "", "dev-token-", "DEV-TOKEN", "dev-toke"])
def test_wrong_or_missing_token_is_403_with_nothing_stored_and_no_token_logged(stack, logs, token):
    # Given a push whose path token is not the configured one
    event = with_path(load_event(LOCATION), token, "location")

    # When it arrives
    status, body = post(event)

    # Then it is refused with a generic body, nothing is stored, and no log line holds the token
    assert status == 403
    assert body == {"result": 403, "message": "forbidden"}
    assert stack.event_items() == [] and stack.quarantine_items() == []
    text = logs()
    assert "rejected push with a wrong or missing token" in text  # the logs were really captured
    assert "dev-token" not in text
    if token not in ("", "-"):
        assert token not in text


def test_custom_header_is_accepted_as_the_secret_when_configured(stack, monkeypatch):
    # Given a deployment that names the push rule's custom header
    monkeypatch.setenv("JOINTECH_AUTH_HEADER", "X-Devicegate-Token")
    from tests.conftest import _clear_caches

    _clear_caches()
    event = with_path(load_event(LOCATION), "-", "location")

    # When the rule sends the token in that header (path segment is a placeholder), and not
    status_ok, _ = post(with_body(event, event["body"], **{"x-devicegate-token": "dev-token"}))
    status_bad, _ = post(with_body(event, event["body"], **{"x-devicegate-token": "nope-nope"}))

    # Then only the right header value is accepted
    assert (status_ok, status_bad) == (200, 403)
    assert len(stack.event_items()) == 1


def test_both_tokens_are_valid_during_rotation(stack):
    # Given an operator rotating: new token in "current", old one kept in "previous"
    stack.session.client("secretsmanager").put_secret_value(
        SecretId=stack.secret_arn, SecretString=json.dumps({"current": "new-token-123", "previous": "dev-token"}))
    from tests.conftest import _clear_caches

    _clear_caches()
    # When pushes come with either token, and with a retired one
    old = post(with_path(load_event(LOCATION), "dev-token", "location"))[0]
    new = post(with_path(with_body(load_event(LOCATION), _record(mileage=17)), "new-token-123", "location"))[0]
    retired = post(with_path(with_body(load_event(LOCATION), _record(mileage=18)), "older-token", "location"))[0]
    # Then both current tokens work and the retired one does not
    assert (old, new, retired) == (200, 200, 403)


# --- invalid input: 4xx naming the fields, payload in quarantine -----------------------------

def test_invalid_record_is_400_naming_fields_and_kept_in_quarantine(stack):
    # Given a location whose time and latitude are wrong
    body = _record(gpsTime="yesterday-ish", latitude=123.4)

    # When it is pushed
    status, answer = post(with_body(load_event(LOCATION), body))

    # Then the answer names both fields, and the raw payload waits in quarantine with the reason
    assert status == 400
    assert {e["field"] for e in answer["errors"]} == {"gpsTime", "latitude"}
    [item] = stack.quarantine_items()
    assert item["body"] == body
    assert item["reason"] == "invalid location record"
    assert {p["field"] for p in item["problems"]} == {"gpsTime", "latitude"}
    assert item["kind"] == "location" and item["seenCount"] == 1
    assert stack.event_items() == []


def test_the_same_bad_payload_is_quarantined_once_with_a_count(stack):
    event = with_body(load_event(LOCATION), "{not json")
    for _ in range(3):
        assert post(event)[0] == 400
    [item] = stack.quarantine_items()
    assert item["seenCount"] == 3


BAD_BODIES = {
    "malformed JSON": "{\"assetId\": \"1\",",
    "JSON array": "[1, 2, 3]",
    "empty body": "",
    "NaN number": _record(speed=0).replace('"speed": 0', '"speed": NaN'),
    "wrong types": _record(speed={"fast": True}, battery=[1]),
    "deep nesting": "[" * 5000 + "]" * 5000,
    "deep nesting in an object": '{"assetId": "1", "gpsTime": "2025-01-01T00:00:00Z", "x": ' + "{\"a\":" * 40 + "1" + "}" * 40 + "}",
    "device id with #": _record(assetId="8022#300001"),
    "device id with /": _record(assetId="8022/300001"),
    "device id with unicode": _record(assetId="设备8022"),
    "device id empty": _record(assetId=""),
    "missing time": json.dumps({"assetId": "8022300001"}),
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_bad_input_gets_a_clear_4xx_never_a_5xx(stack, name):
    # Given a hostile or broken body
    status, answer = post(with_body(load_event(LOCATION), BAD_BODIES[name]))
    # Then the answer is a 4xx in Jointech's shape with at least one named problem, and it is kept
    assert 400 <= status < 500, answer
    assert answer["result"] == status and answer["errors"]
    assert len(stack.quarantine_items()) == 1
    assert stack.event_items() == []


def test_non_utf8_body_is_rejected_and_kept_as_a_summary(stack):
    # Given a body that is not text: its personal data (if any) cannot be told apart
    body = b"\xff\xfe\x00garbage"
    status, answer = post(with_body(load_event(LOCATION), body))
    # Then it is refused, and quarantine keeps its digest, size and shape, nothing of its content
    assert status == 400 and answer["errors"][0]["problem"] == "not UTF-8"
    [item] = stack.quarantine_items()
    kept = json.loads(item["body"])
    assert kept["sha256"] == hashlib.sha256(body).hexdigest() and kept["bytes"] == len(body)
    assert "garbage" not in item["body"] and "bodyBase64" not in item


def test_body_over_the_limit_is_413_and_kept(stack):
    # Given a 300 KB body (Jointech records are about 1 KB; the limit is 256 KiB)
    big = _record(describe="x" * 300_000)
    status, answer = post(with_body(load_event(LOCATION), big))
    assert status == 413 and answer["result"] == 413
    [item] = stack.quarantine_items()
    assert item["bodySize"] == len(big.encode()) and item["body"] == big


def test_quarantined_payload_too_big_for_an_item_goes_to_s3(stack, monkeypatch):
    from devicegate.store import events as storage

    monkeypatch.setattr(storage, "MAX_INLINE_BYTES", 1000)
    body = _record(speed="fast", describe="x" * 2000)
    status, _ = post(with_body(load_event(LOCATION), body))
    assert status == 400
    [item] = stack.quarantine_items()
    bucket, key = item["bodyRef"].removeprefix("s3://").split("/", 1)
    stored = stack.session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == body.encode() and key.startswith("quarantine/jointech/")


def test_unknown_kind_in_the_path_is_400_and_kept(stack):
    status, answer = post(with_path(load_event(LOCATION), "dev-token", "weather"))
    assert status == 400 and answer["errors"][0]["field"] == "kind"
    [item] = stack.quarantine_items()
    assert item["kind"] == "invalid-kind" and item["route"] == {"kind": "weather"}


def test_unlabelled_record_on_the_single_url_is_400(stack):
    status, answer = post(with_path(with_body(load_event(LOCATION), '{"assetId": "1"}'), "dev-token", None))
    assert status == 400 and "cannot tell" in answer["reason"]


def test_wrong_content_type_is_still_read_as_json(stack):
    status, _ = post(load_event("jointech/http-variation-text-plain.json"))
    assert status == 200 and len(stack.event_items()) == 1


def test_devices_with_delimiter_like_ids_never_share_a_partition():
    # Given device ids that would collide if keys were joined naively
    ids = ["a", "a#K#alarm", "a/b", "a%2Fb", "设备", "a#"]
    # Then every device partition and event partition is distinct
    partitions = {keys.device_pk("x", i) for i in ids} | {keys.event_pk("x", i) for i in ids}
    assert len(partitions) == 2 * len(ids)


def test_mqtt_topic_device_must_match_the_record(stack):
    event = load_event("jointech/iot-mqtt-alarm.json")
    event["deviceNum"] = "someone-else"
    assert mqtt(event)["outcome"] == "invalid"
    [item] = stack.quarantine_items()
    assert item["transport"] == "mqtt" and item["problems"][0]["field"] == "assetId"


# --- storage failures: the sender must retry ---------------------------------------------------

def test_storage_down_answers_503_so_jointech_retries(stack):
    # Given the table is unavailable
    stack.ddb.delete_table(TableName=stack.table)
    # When a valid push arrives
    status, answer = post(load_event(LOCATION))
    # Then the sender is told to retry, in its own shape
    assert status == 503 and answer["result"] == 503


def test_storage_down_makes_the_mqtt_function_raise_for_lambda_retry(stack):
    stack.ddb.delete_table(TableName=stack.table)
    with pytest.raises(mqtt_app.RetryLater):
        mqtt(load_event("jointech/iot-mqtt-location.json"))


def test_quarantine_down_answers_503_not_400(stack):
    # A rejected payload is only answered 4xx once it is kept; otherwise the sender must retry.
    stack.ddb.delete_table(TableName=stack.table)
    status, _ = post(with_body(load_event(LOCATION), "{not json"))
    assert status == 503


def test_secret_unavailable_answers_503_not_403(stack):
    stack.session.client("secretsmanager").delete_secret(SecretId=stack.secret_arn, ForceDeleteWithoutRecovery=True)
    status, _ = post(load_event(LOCATION))
    assert status == 503
    assert stack.event_items() == []


# --- nothing secret or personal in logs ---------------------------------------------------------

def test_logs_never_hold_payload_values_card_numbers_or_passwords(stack, logs):
    # Given an unlock event carrying a card number and an unlock password, a retransmission of it,
    # and an invalid copy (whose errors must not echo the values either)
    record = load_record("jointech", "webhook-event")
    record.update(card="CARD-77123456", password="PIN-998877")
    event = with_body(load_event("jointech/http-webhook-event.json"), json.dumps(record))
    bad = dict(record, dateTime="PIN-998877-not-a-time", latitude="CARD-77123456")
    # When all three are pushed
    post(event)
    post(event)
    status, answer = post(with_body(event, json.dumps(bad)))
    # Then the logs and the 400 answer carry field names, never the values
    text = logs()
    assert "retransmission recognised" in text and "payload quarantined" in text
    for secret in ("CARD-77123456", "PIN-998877", "dev-token"):
        assert secret not in text
        assert secret not in json.dumps(answer)
    assert status == 400 and {e["field"] for e in answer["errors"]} == {"dateTime", "latitude"}


# --- hostile values inside otherwise valid records -------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("gpsTime", "0001-01-01T00:00:00+08:00"),  # no UTC equivalent
    ("statusJson", "[" * 40 + "]" * 40),  # deep JSON inside a string
    ("expandInfo", '{"temperature": NaN}'),
])
def test_hostile_values_are_400_naming_the_field(stack, logs, field, value):
    status, answer = post(with_body(load_event(LOCATION), _record(**{field: value})))
    assert status == 400 and [e["field"] for e in answer["errors"]] == [field]
    assert "adapter failed" not in logs()  # a clear rejection, not an internal error


def test_slave_timestamp_beyond_any_calendar_is_400(stack):
    record = load_record("jointech", "webhook-sublock")
    record.update(subGpsTimestamp=1e20, subGpsTime="")
    status, answer = post(with_body(load_event("jointech/http-webhook-sublock.json"), json.dumps(record)))
    assert status == 400 and answer["errors"][0]["field"] == "subGpsTimestamp"


def test_unpaired_surrogate_over_mqtt_is_quarantined_not_a_crash(stack):
    # Given an IoT rule event whose extra field holds a lone surrogate (valid JSON escape, invalid text)
    event = load_event("jointech/iot-mqtt-alarm.json")
    event["note"] = chr(0xD800)
    # When the MQTT function handles it, then it is quarantined (not raised into Lambda's retries)
    assert mqtt(event)["outcome"] == "invalid"
    [item] = stack.quarantine_items()
    assert item["transport"] == "mqtt" and "\\ud800" in item["body"]


def test_large_non_utf8_body_is_413_and_kept_as_a_small_summary(stack):
    # Given a 340 KB binary body
    body = b"\xff" * 340_000
    status, _ = post(with_body(load_event(LOCATION), body))
    # Then it is refused as too large, and kept as a summary that fits the item
    assert status == 413
    [item] = stack.quarantine_items()
    assert json.loads(item["body"])["bytes"] == len(body) and "bodyRef" not in item


def test_describe_with_deep_json_stays_text(stack):
    record = load_record("jointech", "webhook-event")
    record["describe"] = "{" + '"a":{' * 30 + "}" * 31
    status, _ = post(with_body(load_event("jointech/http-webhook-event.json"), json.dumps(record)))
    [item] = stack.event_items()
    assert status == 200 and "details" not in item["data"] and item["data"]["describe"] == record["describe"]


@pytest.mark.parametrize("path_kind", ["location", None])
def test_overflowing_numbers_are_400_in_typed_fields(stack, path_kind):
    # Given a speed that overflows to infinity, on the by-kind route and on the single URL
    body = _record().replace('"speed": 0', '"speed": 1e999')
    status, answer = post(with_path(with_body(load_event(LOCATION), body), "dev-token", path_kind))
    # Then it is a clear 4xx naming the field
    assert status == 400 and [e["field"] for e in answer["errors"]] == ["speed"]
    assert stack.event_items() == []


@pytest.mark.parametrize("path_kind", ["location", None])
def test_overflowing_numbers_in_unknown_fields_are_refused_naming_the_field(stack, path_kind):
    # Given an extra field holding a number JSON cannot hold (1e999 overflows to infinity)
    body = _record().replace('"speed": 0', '"speed": 0, "vendorExtra": 1e999')
    # When it is pushed on the kind route or the single URL
    status, answer = post(with_path(with_body(load_event(LOCATION), body), "dev-token", path_kind))
    # Then it is refused naming the field, nothing is stored, and the payload is quarantined
    assert status == 400 and "vendorExtra" in [e["field"] for e in answer["errors"]]
    assert stack.event_items() == []
    assert len(stack.quarantine_items()) == 1


def test_a_retried_quarantine_update_counts_the_sighting_once(stack):
    # Given a quarantine update that lands, but whose answer is lost so botocore sends it again
    from devicegate.ingest.wiring import http_pipeline

    store = http_pipeline("jointech").store
    real = store._ddb

    class AnswerLost:
        def update_item(self, **kwargs):
            real.update_item(**kwargs)  # landed...
            return real.update_item(**kwargs)  # ...and the retry carries the same call

        def __getattr__(self, name):
            return getattr(real, name)

    store._ddb = AnswerLost()
    try:
        status, _ = post(with_body(load_event(LOCATION), "{not json"))
    finally:
        store._ddb = real
    # Then the payload is kept, seen once
    assert status == 400
    [kept] = stack.quarantine_items()
    assert kept["seenCount"] == 1


@pytest.mark.parametrize("route", ["location", None])
def test_a_body_with_a_lone_surrogate_is_refused_and_kept_not_a_crash(stack, route):
    # Given a body whose JSON text holds a lone surrogate (API Gateway's event carries it as text,
    # but no UTF-8 byte sequence stands for it)
    body = _record().replace('"speed": 0', '"speed": 0, "note": "\ud800"')
    event = with_path(with_body(load_event(LOCATION), "x"), "dev-token", route)
    event["body"] = json.loads(json.dumps(body)).replace("\\ud800", "\ud800")
    assert "\ud800" in event["body"]
    # When it is pushed
    status, answer = post(event)
    # Then it is a clear 400 (not a 500 from the handler) and the payload is in quarantine
    assert status == 400 and answer["errors"][0]["field"] == "body"
    assert stack.event_items() == [] and len(stack.quarantine_items()) == 1
