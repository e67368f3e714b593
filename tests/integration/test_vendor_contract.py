"""The contract every vendor of the registry keeps, over its samples in events/<vendor>/: each
invocation event is answered with the vendor's own answer, stored once, published once, and a
repeat stores and publishes nothing. Shared assertions, one parametrization from the registry: a
vendor wired in halfway (no samples, a handler that stores twice, an answer in another shape)
fails here alone, whatever its own test file says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devicegate.core.adapter import Outcome
from devicegate.core.envelope import NormalizedEvent
from devicegate.core.errors import InvalidPayload
from devicegate.ingest.handlers import mqtt_handler, webhook_handler
from devicegate.ingest.http import http_push
from devicegate.vendors import get_adapter, vendor_names
from functions.outbox import app as outbox_app
from tests.support import EVENTS, context

#: Samples the vendors' docs show being refused (docs/vendors/senselink.md: SenseLink's connection
#: frames are no record or alarm; answered with its refusal, kept in quarantine).
REFUSED = {"senselink/http-ws-doc-connected.json", "senselink/http-ws-doc-denied.json"}


def _is_http(event: Any) -> bool:
    return isinstance(event, dict) and event.get("version") == "2.0" and "routeKey" in event


def _is_mqtt(vendor: str, event: Any) -> bool:
    # What an IoT topic rule hands over: the message with the fields its SELECT takes from the topic.
    fields = get_adapter(vendor).topic_fields
    return isinstance(event, dict) and not _is_http(event) and bool(set(fields) & set(event))


def samples() -> list[tuple[str, str]]:
    found = []
    for vendor in vendor_names():
        for path in sorted((EVENTS / vendor).glob("*.json")):
            event = json.loads(path.read_text())
            if _is_http(event) or _is_mqtt(vendor, event):
                found.append((vendor, path.name))
    return found


SAMPLES = samples()


def test_every_registered_vendor_has_samples_in_events():
    # Given the registry; Then each vendor has a folder events/<vendor>/ with invocation events in it
    missing = [v for v in vendor_names() if not (EVENTS / v).is_dir()]
    assert missing == [], f"vendors without events/<vendor>/: {missing}"
    empty = [v for v in vendor_names() if not any(vendor == v for vendor, _ in SAMPLES)]
    assert empty == [], f"vendors without an invocation event in events/<vendor>/: {empty}"


def _invoke(vendor: str, event: dict[str, Any]) -> dict[str, Any]:
    if _is_http(event):
        return webhook_handler(vendor)(event, context(f"{vendor}-webhook"))
    return mqtt_handler(vendor)(event, context(f"{vendor}-mqtt"))


def _codes(value: Any) -> Any:
    """A vendor answer's numbers (its status codes), not its texts (which may name a reason)."""
    return {k: _codes(v) for k, v in value.items() if not isinstance(v, str)} if isinstance(value, dict) else value


def _contains(whole: Any, part: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and _contains(whole[k], v) for k, v in part.items())
    return bool(whole == part)


def assert_answered(vendor: str, event: dict[str, Any], result: dict[str, Any], *outcomes: Outcome) -> None:
    """The vendor's own answer for one of `outcomes` (HTTP), or the MQTT function's outcome."""
    if not _is_http(event):
        assert result["outcome"] in {o.value for o in outcomes}, result
        return
    body = json.loads(result["body"])
    expected = [get_adapter(vendor).answer(o) for o in outcomes]
    assert any(result["statusCode"] == e.status and _contains(body, _codes(e.body)) for e in expected), (
        f"{vendor} answered {result['statusCode']} {body}; expected one of {[(e.status, e.body) for e in expected]}")


def expected_events(vendor: str, event: dict[str, Any]) -> int:
    """How many whole events the sample is (parts of a record and liveness beats are none yet)."""
    adapter = get_adapter(vendor)
    if _is_http(event):
        params = event.get("pathParameters") or {}
        route = {n: params[n] for n in adapter.route_path_params if params.get(n) is not None}
        push = http_push(vendor, event, params.get("token"), route)
    else:
        from devicegate.ingest.iot import iot_push

        push = iot_push(vendor, event)
    try:
        normalized = adapter.normalize(push, _now())
    except InvalidPayload:
        return 0
    return sum(1 for e in normalized if isinstance(e, NormalizedEvent) and e.part is None)


def _now():
    from devicegate.core.timeutil import now_utc

    return now_utc()


def run_outbox(stack) -> None:
    assert outbox_app.lambda_handler({"Records": stack.new_stream_records()},
                                     context("OutboxFunction")) == {"batchItemFailures": []}


@pytest.mark.parametrize(("vendor", "sample"), SAMPLES, ids=[f"{v}/{s}" for v, s in SAMPLES])
def test_every_sample_is_answered_stored_once_published_once_and_a_repeat_stores_nothing(stack, vendor, sample):
    # Given a sample of the vendor's, as API Gateway or the IoT topic rule hands it to Lambda
    event = json.loads((EVENTS / vendor / sample).read_text())
    refused = f"{vendor}/{sample}" in REFUSED
    wanted = expected_events(vendor, event)
    # When its function handles it and the outbox runs
    first = _invoke(vendor, event)
    run_outbox(stack)
    items, messages = stack.event_items(vendor), stack.queue_messages()
    # Then the vendor gets its own answer: success, or the refusal its docs show
    if refused:
        assert_answered(vendor, event, first, Outcome.INVALID)
        assert items == [] and messages == [] and len(stack.quarantine_items(vendor)) == 1
    else:
        assert_answered(vendor, event, first, Outcome.ACCEPTED)
        assert stack.quarantine_items(vendor) == []
        # And each event it is is stored once and published once, as a message of the same event
        assert len(items) == wanted
        assert sorted(m["id"] for m in messages) == sorted(i["eventId"] for i in items)
        assert all(m["type"] == f"devicegate.{vendor}.{i['kind']}" for m, i in
                   zip(sorted(messages, key=lambda m: m["id"]), sorted(items, key=lambda i: i["eventId"]),
                       strict=True))
        _assert_routing_facts(vendor, event, items)
    # When the same push comes again (the vendor missed the answer)
    again = _invoke(vendor, event)
    run_outbox(stack)
    # Then it is answered as a success again (or refused again), and nothing more is stored or published
    assert_answered(vendor, event, again, Outcome.INVALID if refused else Outcome.ACCEPTED, Outcome.DUPLICATE)
    assert len(stack.event_items(vendor)) == len(items)
    assert stack.queue_messages() == []


def _assert_routing_facts(vendor: str, event: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """A kind the route or topic names is the stored kind; the topic's fields are routing facts,
    not part of the record."""
    adapter = get_adapter(vendor)
    named = {v for k, v in ((event.get("pathParameters") or {}) if _is_http(event) else event).items()
             if k in (*adapter.route_path_params, *adapter.topic_fields) and v in adapter.kinds}
    for item in items:
        assert not named or item["kind"] in named, (item["kind"], named)
        assert item["transport"] == ("http" if _is_http(event) else "mqtt")
        if not _is_http(event):
            assert not set(adapter.topic_fields) & set(item["data"]), item["data"]


def test_the_samples_the_docs_show_refused_are_the_only_refused_ones():
    # Given every sample; Then the adapter refuses exactly those the docs show refused
    refused = set()
    for vendor, sample in SAMPLES:
        event = json.loads((EVENTS / vendor / sample).read_text())
        if expected_events(vendor, event) == 0 and _refuses(vendor, event):
            refused.add(f"{vendor}/{sample}")
    assert refused == REFUSED


def _refuses(vendor: str, event: dict[str, Any]) -> bool:
    adapter = get_adapter(vendor)
    params = event.get("pathParameters") or {}
    route = {n: params[n] for n in adapter.route_path_params if params.get(n) is not None}
    try:
        adapter.normalize(http_push(vendor, event, params.get("token"), route), _now())
    except InvalidPayload:
        return True
    return False

