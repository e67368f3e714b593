"""Small pure parts of the layer: time, codec, JSON decoding, tokens, settings, event ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devicegate.core import jsonbody
from devicegate.core.envelope import RawPush, make_event, record_json
from devicegate.core.errors import InvalidPayload, StorageUnavailable
from devicegate.core.timeutil import iso_utc, parse_time
from devicegate.infra.settings import parse_retention
from devicegate.ingest.auth import TokenVerifier
from devicegate.store.codec import from_attr, to_attr
from devicegate.vendors.jointech.adapter import TRANSPORT_FIELDS as JOINTECH_TRANSPORT_FIELDS
from devicegate.vendors.jointech.models import Alarm
from tests.support import load_record

UTC = UTC


@pytest.mark.parametrize("text, expected", [
    ("2022-09-01T08:59:56Z", datetime(2022, 9, 1, 8, 59, 56, tzinfo=UTC)),
    ("2022-09-01T08:14:03.564Z", datetime(2022, 9, 1, 8, 14, 3, 564000, tzinfo=UTC)),
    ("2020-03-31T10:10:01+08", datetime(2020, 3, 31, 2, 10, 1, tzinfo=UTC)),  # hour-only offset
    ("2020-03-31T10:10:01+08:00", datetime(2020, 3, 31, 2, 10, 1, tzinfo=UTC)),
    ("2025-02-07T07:15:14", datetime(2025, 2, 7, 7, 15, 14, tzinfo=UTC)),  # naive means UTC
])
def test_parse_time_accepts_what_vendors_send(text, expected):
    assert parse_time(text) == expected


# Epochs are read with their unit (timeutil.from_epoch): tests/unit/test_time_units_and_horizon.py.
@pytest.mark.parametrize("bad", ["", "yesterday", None, True, "2025-13-01T00:00:00Z", 1738912514, "1738912514"])
def test_parse_time_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        parse_time(bad)


def test_iso_utc_is_fixed_width_so_it_sorts_as_text():
    times = [datetime(2025, 1, 1, 0, 0, 0, 5000, tzinfo=UTC), datetime(2025, 1, 1, 0, 0, 0, 120000, tzinfo=UTC)]
    texts = [iso_utc(t) for t in times]
    assert texts == ["2025-01-01T00:00:00.005Z", "2025-01-01T00:00:00.120Z"] and sorted(texts) == texts


def test_codec_round_trips_json_like_values():
    value = {"a": 1, "b": 2.5, "c": "文字", "d": [True, None, {"e": -3}], "f": {}, "g": ""}
    assert from_attr(to_attr(value)) == value


def test_codec_keeps_out_of_range_numbers_as_text_instead_of_failing_the_write():
    assert to_attr(1e300) == {"S": "1e+300"} and to_attr(10 ** 40) == {"S": str(10 ** 40)}


def test_jsonbody_rejects_nan_and_infinity_literals():
    # (Numbers overflowing to infinity, like 1e999, are refused by the models: see
    # test_overflowing_numbers_are_400 in the integration tests.)
    with pytest.raises(InvalidPayload):
        jsonbody.loads('{"a": NaN}')
    with pytest.raises(InvalidPayload):
        jsonbody.loads('{"a": -Infinity}')


def test_jsonbody_depth_limit_ignores_brackets_inside_strings():
    shallow = json.dumps({"text": "[" * 100 + "{" * 100})
    assert jsonbody.loads(shallow)["text"].startswith("[[[")
    with pytest.raises(InvalidPayload, match="nested"):
        jsonbody.loads("[" * 17 + "]" * 17)


def test_event_id_depends_on_identifying_content_only():
    # Given the same record with its keys in another order (MQTT re-serializes), with an extra
    # field, without the webhook-only fileIndex, and then with a changed value or another device
    record = load_record("jointech", "webhook-alarm")
    shuffled = dict(reversed(list(record.items())))
    with_extra = dict(record, vendorNote="x")
    without_file_index = {k: v for k, v in record.items() if k != "fileIndex"}

    def event_id(rec, device=None):
        model = Alarm.model_validate(dict(rec, assetId=device or rec["assetId"]))
        data_json, identity_json = record_json(model, JOINTECH_TRANSPORT_FIELDS)
        return make_event(vendor="jointech", device_id=model.assetId, kind="alarm", occurred_at=model.dateTime,
                          received_at=datetime.now(UTC), transport="http", data_json=data_json,
                          identity_json=identity_json).eventId

    # Then key order, extras and transport-only fields never matter; content and device do
    assert event_id(record) == event_id(shuffled) == event_id(with_extra) == event_id(without_file_index)
    assert len({event_id(record), event_id(dict(record, speed=5)), event_id(record, "other")}) == 3


def test_unpaired_surrogates_are_invalid_payloads_not_crashes():
    with pytest.raises(InvalidPayload):
        make_event(vendor="v", device_id="d", kind="k", occurred_at=datetime.now(UTC),
                   received_at=datetime.now(UTC), transport="mqtt", data_json="{\"x\":\"" + chr(0xD800) + "\"}")


def _push(token="", headers=None) -> RawPush:
    return RawPush("jointech", "http", b"{}", token=token, headers=headers or {})


def test_token_verifier_accepts_current_and_previous_and_rereads_after_cache():
    secret = {"current": "token-one-1", "previous": "token-two-2"}
    now = [0.0]
    verifier = TokenVerifier(lambda: json.dumps(secret), clock=lambda: now[0])
    assert verifier.verify(_push("token-one-1")) and verifier.verify(_push("token-two-2"))
    assert not verifier.verify(_push("token-three"))
    # Rotation finishes: previous removed; after the cache period the old token stops working
    secret = {"current": "token-one-1"}
    assert verifier.verify(_push("token-two-2"))  # still cached
    now[0] += 301
    assert not verifier.verify(_push("token-two-2"))


def test_token_verifier_keeps_known_tokens_while_the_secret_cannot_be_refreshed():
    from devicegate.core.errors import StorageUnavailable

    # Given tokens read once, then Secrets Manager down when the cache period is over
    now, down = [0.0], [False]

    def fetch():
        if down[0]:
            raise StorageUnavailable("token secret read failed: EndpointConnectionError")
        return json.dumps({"current": "token-one-1"})

    verifier = TokenVerifier(fetch, clock=lambda: now[0])
    assert verifier.verify(_push("token-one-1"))
    down[0], now[0] = True, 301.0
    # Then pushes are still checked against the known tokens, not all refused
    assert verifier.verify(_push("token-one-1")) and not verifier.verify(_push("token-two-2"))
    # But with a cold cache there is nothing to check against: the push is a retryable failure
    with pytest.raises(StorageUnavailable):
        TokenVerifier(fetch, clock=lambda: now[0]).verify(_push("token-one-1"))


def test_token_verifier_ignores_short_tokens_and_fails_closed():
    verifier = TokenVerifier(lambda: json.dumps({"current": "short"}))
    assert not verifier.verify(_push("short"))


def test_token_verifier_header_only_when_configured():
    fetch = lambda: json.dumps({"current": "header-token-1"})  # noqa: E731
    push = _push("-", {"x-token": "header-token-1"})
    assert not TokenVerifier(fetch).verify(push)
    assert TokenVerifier(fetch, header_name="X-Token").verify(push)


def test_token_verifier_reports_a_broken_secret_as_unavailable():
    with pytest.raises(StorageUnavailable):
        TokenVerifier(lambda: "not json").verify(_push("x"))


def test_retention_spec():
    assert parse_retention("default=90, location=30,jointech.alarm=365") == {
        "default": 90, "location": 30, "jointech.alarm": 365}
    with pytest.raises(ValueError):
        parse_retention("location=0")


def test_default_aws_timeouts_answer_before_the_function_times_out(monkeypatch):
    # Given the clients every ingest function uses (no sender deadline)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from devicegate.infra.aws import client

    config = client("dynamodb").meta.config
    # Then a token refresh and a put, both failing slowly, still end before the 15 s timeout,
    # so the sender gets the gateway's own "retry" answer rather than a Lambda timeout
    per_call = config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout)
    assert 2 * per_call < 15
