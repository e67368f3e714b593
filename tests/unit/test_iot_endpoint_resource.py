"""The IotDataEndpoint custom resource's inline function (template.yaml, IotEndpointFunction).

The code CloudFormation runs is taken from the template itself and called with CloudFormation's
request shapes; its answer goes to a local HTTP server standing in for the presigned S3 URL. What
matters is that CloudFormation always gets an answer - a stack must never wait on this function.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from devicegate_local.cfn_template import load_template
from tests.support import ROOT

ENDPOINT = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"


@dataclass
class ResponseUrl:
    url: str
    answers: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def response_url() -> Iterator[ResponseUrl]:
    received = ResponseUrl("")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.answers.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                     "body": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}/cfn-response?X-Amz-Signature=abc"
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


class FakeIot:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def describe_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error:
            raise self.error
        return {"endpointAddress": ENDPOINT}


def _handler(iot: FakeIot) -> Any:
    code = load_template(ROOT / "template.yaml")["Resources"]["IotEndpointFunction"]["Properties"]["Code"]["ZipFile"]
    namespace: dict[str, Any] = {}
    exec(compile(code, "IotEndpointFunction/index.py", "exec"), namespace)
    namespace["boto3"] = SimpleNamespace(client=lambda service, config=None: iot)
    return namespace["handler"]


def _request(kind: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"RequestType": kind, "ResponseURL": url, "RequestId": "req-1", "LogicalResourceId": "IotDataEndpoint",
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/gw/1",
            "ResourceType": "Custom::IotDataEndpoint",
            "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "EndpointType": "iot:Data-ATS"}, **extra}


CONTEXT = SimpleNamespace(log_stream_name="2025/01/01/[$LATEST]abc")


def test_create_answers_with_the_ats_endpoint(response_url: ResponseUrl) -> None:
    # Given IoT answering DescribeEndpoint
    iot = FakeIot()
    # When CloudFormation creates the resource
    _handler(iot)(_request("Create", response_url.url), CONTEXT)
    # Then the ATS endpoint was asked for, and CloudFormation got SUCCESS with it as Address, by a
    # PUT with an empty content type (what the presigned URL was signed for)
    assert iot.calls == [{"endpointType": "iot:Data-ATS"}]
    [answer] = response_url.answers
    assert answer["path"] == "/cfn-response?X-Amz-Signature=abc"
    assert answer["content_type"] == ""
    assert answer["body"] == {
        "Status": "SUCCESS", "Reason": "see log stream 2025/01/01/[$LATEST]abc",
        "PhysicalResourceId": "iot-data-ats-endpoint",
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/gw/1",
        "RequestId": "req-1", "LogicalResourceId": "IotDataEndpoint", "Data": {"Address": ENDPOINT}}


def test_update_keeps_the_physical_id(response_url: ResponseUrl) -> None:
    _handler(FakeIot())(_request("Update", response_url.url, PhysicalResourceId="iot-data-ats-endpoint"), CONTEXT)
    # Same id: CloudFormation sees no replacement and sends no Delete for an "old" resource
    assert response_url.answers[0]["body"]["PhysicalResourceId"] == "iot-data-ats-endpoint"
    assert response_url.answers[0]["body"]["Data"] == {"Address": ENDPOINT}


def test_delete_answers_success_without_calling_iot(response_url: ResponseUrl) -> None:
    # Given IoT that would fail (e.g. the role is already gone during a stack delete)
    iot = FakeIot(error=RuntimeError("AccessDenied"))
    # When CloudFormation deletes the resource
    _handler(iot)(_request("Delete", response_url.url, PhysicalResourceId="iot-data-ats-endpoint"), CONTEXT)
    # Then nothing is called and the delete succeeds (nothing was ever created)
    assert iot.calls == []
    assert response_url.answers[0]["body"]["Status"] == "SUCCESS"


def test_a_failure_is_answered_as_failed_instead_of_left_hanging(response_url: ResponseUrl) -> None:
    # Given IoT refusing the call
    iot = FakeIot(error=PermissionError("not authorized to perform iot:DescribeEndpoint"))
    # When CloudFormation creates the resource
    _handler(iot)(_request("Create", response_url.url), CONTEXT)
    # Then CloudFormation is told FAILED with the reason (and rolls back) rather than kept waiting
    [answer] = response_url.answers
    assert answer["body"]["Status"] == "FAILED"
    assert answer["body"]["Reason"] == "PermissionError: not authorized to perform iot:DescribeEndpoint"
    assert answer["body"]["Data"] == {}
    assert answer["body"]["PhysicalResourceId"] == "iot-data-ats-endpoint"
