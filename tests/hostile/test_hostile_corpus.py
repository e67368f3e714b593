"""Hostile input, every vendor and route, through the real handlers on moto: non-finite numbers,
unusable ids, repeated keys, personal data in odd shapes, over-long integers, lone surrogates,
nesting past the limit, numbers as text that are no JSON numbers, times beyond the horizon and
photos that are no images (the cases: tests/hostile/corpus.py).

Whatever comes in: never a 5xx; a refusal names the offending field and keeps the payload in
quarantine; nothing becomes a device that no device is; and no PIN, password or unmasked ID/IC
number is anywhere in the table (every item, every attribute), the bucket (every object), the
queue (every message) or the logs, accepted or refused."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import unquote

import pytest

from devicegate.core import personal
from devicegate.store.codec import from_item
from devicegate.vendors import get_adapter, vendor_names
from functions.outbox import app as outbox_app
from tests.hostile.corpus import COMMAND_DEVICE, FAMILIES, MASKED, PERSONAL_VALUES, ROUTES, Route
from tests.support import context, load_event, load_record, new_environment, with_body


def quarantine_sightings(stack, vendor: str) -> dict[str, tuple[int, list[str]]]:
    return {q["pk"]: (q["seenCount"], [p["field"] for p in q["problems"]]) for q in stack.quarantine_items(vendor)}


def all_items(stack) -> list[dict]:
    items, start = [], {}
    while True:
        page = stack.ddb.scan(TableName=stack.table, **start)
        items += [from_item(i) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def all_objects(stack) -> dict[str, bytes]:
    s3 = stack.session.client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket)
            for o in page.get("Contents", [])]
    return {key: s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read() for key in keys}


_DEVICE_KEY = re.compile(r"^(?:D|P|A|C|CX|CFG)#[a-z-]+#([^#]*)")
_DEVICE_PATH = re.compile(r"^(?:media|payloads)/[a-z-]+/([^/]*)/")


def devices_anywhere(items: list[dict], objects: dict[str, bytes], messages: list[dict]) -> set[str]:
    """Every device id the gateway wrote down: item attributes and keys, object paths, messages."""
    found = set()
    for item in items:
        if item["pk"].startswith("Q#"):
            continue  # a quarantined payload names no device; its route facts are not one
        if "deviceId" in item:
            found.add(item["deviceId"])
        for value in item.values():
            match = _DEVICE_KEY.match(value) if isinstance(value, str) else None
            if match:
                found.add(unquote(match.group(1)))
    found |= {unquote(m.group(1)) for m in map(_DEVICE_PATH.match, objects) if m}
    found |= {m["data"]["deviceId"] for m in messages if "deviceId" in (m.get("data") or {})}
    return found


def personal_values_in(text: str) -> list[str]:
    return [value for value in PERSONAL_VALUES if value in text]


def prepare_commands(stack, monkeypatch) -> None:
    """The commands API with a deployment access key, and its device known (it reported)."""
    from functions.jointech_webhook import app as webhook

    monkeypatch.setenv("JOINTECH_ACCESS_KEY", "ak-demo")
    new_environment()
    record = dict(load_record("jointech", "webhook-location"), assetId=COMMAND_DEVICE)
    event = with_body(load_event("jointech/http-webhook-location.json"), json.dumps(record))
    assert webhook.lambda_handler(event, context("JointechWebhookFunction"))["statusCode"] == 200


@pytest.mark.parametrize("route_name, family", sorted(FAMILIES), ids=lambda value: value)
def test_hostile_input_is_refused_by_name_and_leaves_no_phantom_device_and_no_personal_data(
        stack, logs, monkeypatch, route_name, family):
    # Given a route and one family of hostile payloads for it
    route: Route = ROUTES[route_name]
    cases = FAMILIES[(route_name, family)]()
    assert cases
    if route.name == "commands":
        prepare_commands(stack, monkeypatch)

    # When each is delivered to the route's real handler
    before = quarantine_sightings(stack, route.vendor)
    for case in cases:
        if family == "personal":
            planted = case.payload if isinstance(case.payload, str) else json.dumps(case.payload)
            assert personal_values_in(planted), f"{case.id}: plants nothing to find"
        got = route.deliver(case.payload, case.options)

        # Then it is answered, never a 5xx, and either accepted (an id that only needed trimming,
        # a documented fallback) or refused with the field named and the payload kept
        assert got.status < 500, case.id
        after = quarantine_sightings(stack, route.vendor)
        touched = [fields for pk, (seen, fields) in after.items() if before.get(pk, (0,))[0] < seen]
        before = after
        if case.field is None:
            assert got.status == 200 and not got.refused and not touched, case.id
            continue
        assert got.refused, (case.id, got)
        if route.name == "commands":
            assert not touched, case.id  # an app's bad request is answered, not kept
        else:
            assert len(touched) == 1, case.id
        named = got.fields if not route.parsed else touched[0]
        assert case.field in named, (case.id, named)

    # And after the outbox ran, no device exists but the ones real payloads name...
    assert outbox_app.lambda_handler({"Records": stack.new_stream_records()},
                                     context("OutboxFunction")) == {"batchItemFailures": []}
    items, objects, messages = all_items(stack), all_objects(stack), stack.queue_messages()
    allowed = route.devices | {case.device for case in cases if case.device}
    assert devices_anywhere(items, objects, messages) <= allowed
    # ...and no PIN, password or unmasked card/ID number is in the table, the bucket, the queue
    # or the logs
    table = ""
    for item in items:
        text = json.dumps(item, default=str, ensure_ascii=False)
        if "bodyBase64" in item:
            text += base64.b64decode(item["bodyBase64"]).decode("utf-8", "replace")
        assert not personal_values_in(text), (item["pk"], personal_values_in(text))
        table += text
    for key, body in objects.items():
        assert not personal_values_in(body.decode("utf-8", "replace")), key
    published = json.dumps(messages, ensure_ascii=False)
    assert not personal_values_in(published), personal_values_in(published)
    written = logs()
    assert written, "the functions logged nothing: the capture is broken"
    assert not personal_values_in(written)
    if family == "personal":
        # The planted records were stored and published (their numbers masked), not lost
        assert any(personal.mask(value) in table for value in MASKED)
        assert any(personal.mask(value) in published for value in MASKED)


def test_the_corpus_covers_every_vendor_and_route():
    # Given the corpus, Then every vendor of the registry and every way in is in it
    assert {route.vendor for route in ROUTES.values()} == set(vendor_names())
    assert {"jointech-kind", "jointech-auto", "jointech-mqtt", "mettax-service", "mettax-auto", "mettax-form",
            "commands"} <= set(ROUTES)
    families = {family for _, family in FAMILIES}
    assert families == {"numbers", "ids", "duplicates", "sources", "personal", "bounds", "photos"}
    # Every route meets the bounds (long integers, lone surrogates, depth); every vendor's event time
    # the horizon; the vendor with inline photos their rule
    assert {name for name, family in FAMILIES if family == "bounds"} == set(ROUTES)
    assert {route.vendor for route in ROUTES.values() if route.time is not None} == \
        {route.vendor for route in ROUTES.values()}
    assert {name for name, family in FAMILIES if family == "photos"} == {"face-terminal"}
    # And personal data is planted in every vendor's records, by every transport it takes
    # (MQTT: the vendors whose adapters read IoT topic fields)
    planted = [ROUTES[name] for name, family in FAMILIES if family == "personal"]
    for vendor in vendor_names():
        transports = {"mqtt" if route.parsed else "http" for route in planted if route.vendor == vendor}
        assert transports == ({"http", "mqtt"} if get_adapter(vendor).topic_fields else {"http"}), vendor
