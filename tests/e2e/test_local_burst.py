"""The local stack at its front door, end to end: a burst of simultaneous connections, what no route
serves, an event over Lambda's 6 MB (the front end's parts: tests/unit/test_local_front_end.py)."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

import pytest

from tests.e2e.test_local_stack import LOCATION, LOCATION_PATH, device_events

pytestmark = pytest.mark.e2e


def _post(stack: Any, path: str, body: bytes, method: str = "POST") -> tuple[int, Any]:
    host, port = stack.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_forty_terminals_posting_at_the_same_moment_are_all_answered(local_stack):
    # Given 40 devices, each with a record of its own, sending at the same moment
    devices = [f"80227{n:05d}" for n in range(40)]
    start = threading.Barrier(len(devices))
    answers: dict[str, Any] = {}

    def send(device: str) -> None:
        body = json.dumps({**LOCATION, "assetId": device}).encode()
        start.wait()
        try:
            answers[device] = _post(local_stack, LOCATION_PATH, body)
        except OSError as exc:  # a reset or a refused connection: what this test is about
            answers[device] = (type(exc).__name__, str(exc))

    threads = [threading.Thread(target=send, args=(device,)) for device in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every one was answered, none reset, and every record was stored
    assert {device: answer for device, answer in answers.items() if answer[0] != 200} == {}
    assert all(answer[1]["result"] == 200 for answer in answers.values())
    assert all(device_events(local_stack, device) for device in devices[::13])


@pytest.mark.parametrize("method", ["BREW", "GET", "DELETE"])
def test_a_method_no_route_serves_is_a_json_404(local_stack, method):
    status, answer = _post(local_stack, LOCATION_PATH, b"", method)
    assert (status, answer) == (404, {"message": "Not Found"})


def test_a_body_whose_event_is_over_6_mb_is_refused_before_the_function(local_stack):
    # When a body under API Gateway's 10 MB would make an event over Lambda's 6 MB
    device = "8022399999"
    body = json.dumps({**LOCATION, "assetId": device, "padding": "x" * 6_500_000}).encode()
    status, answer = _post(local_stack, LOCATION_PATH, body)
    # Then the answer is API Gateway's for Lambda's refusal, and nothing reached the handler
    assert (status, answer) == (413, {"message": "Request Too Long"})
    assert device_events(local_stack, device) == []
