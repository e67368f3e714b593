"""The pure parts of `devicegate local`: routing, API Gateway events and responses, Lambda's
stream filtering / batching rules, template resolution. No moto server, no subprocess."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest

from devicegate_local.http import (
    MAX_BODY_BYTES,
    LocalHttpServer,
    Route,
    build_http_event,
    map_handler_result,
    match_route,
)
from devicegate_local.lambda_context import LambdaContext
from devicegate_local.resources import (
    FunctionSpec,
    Resolver,
    TemplateError,
    creation_order,
    merge_globals,
    merged_environment,
    queue_attributes,
)
from devicegate_local.streams import (
    InvalidBatchResponse,
    StreamPoller,
    StreamSource,
    drop_moto_upsert_artifacts,
    failure_destination_record,
    first_failed_index,
    lambda_stream_record,
    matches_pattern,
    parse_filters,
    passes_filters,
)

OUTBOX_PATTERN = {"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "E#"}]}}}}
ROUTES = [
    Route("POST", "/hooks/jointech/{token}", "Webhook"),
    Route("POST", "/hooks/jointech/{token}/{kind}", "Webhook"),
    Route("GET", "/files/{path+}", "Files"),
    Route("GET", "/files/latest", "Latest"),
    Route("ANY", "/any/{id}", "Any"),
]


# --------------------------------------------------------------------------- routes


def test_route_extracts_path_parameters():
    # When a two-parameter path is requested
    matched = match_route(ROUTES, "POST", "/hooks/jointech/dev-token/location")
    # Then the {token}/{kind} route serves it with both parameters
    assert matched is not None
    route, params = matched
    assert route.route_key == "POST /hooks/jointech/{token}/{kind}"
    assert params == {"token": "dev-token", "kind": "location"}


def test_single_parameter_matches_exactly_one_segment():
    # When the path has one segment after the prefix, the one-parameter route is chosen
    route, params = match_route(ROUTES, "POST", "/hooks/jointech/dev-token")
    assert route.route_key == "POST /hooks/jointech/{token}"
    assert params == {"token": "dev-token"}
    # And three segments after the prefix match neither route
    assert match_route(ROUTES, "POST", "/hooks/jointech/a/b/c") is None
    # And an empty segment is not a parameter value
    assert match_route(ROUTES, "POST", "/hooks/jointech/") is None


def test_greedy_parameter_takes_the_rest_of_the_path():
    route, params = match_route(ROUTES, "GET", "/files/a/b/c.txt")
    assert route.target == "Files"
    assert params == {"path": "a/b/c.txt"}
    # But a greedy parameter needs at least one segment
    assert match_route(ROUTES, "GET", "/files") is None


def test_literal_route_wins_over_greedy_one():
    # Given /files/latest and /files/{path+} both match, API Gateway picks the literal route
    route, params = match_route(ROUTES, "GET", "/files/latest")
    assert route.target == "Latest"
    assert params == {}


def test_method_must_match_unless_any():
    # When a POST-only route is requested with GET, there is no route
    assert match_route(ROUTES, "GET", "/hooks/jointech/dev-token") is None
    # And an ANY route serves every method
    assert match_route(ROUTES, "DELETE", "/any/7")[1] == {"id": "7"}


def test_unknown_path_has_no_route():
    assert match_route(ROUTES, "POST", "/hooks/other/dev-token") is None


# --------------------------------------------------------------------------- v2 events


def _event(body: bytes, **overrides: Any) -> dict[str, Any]:
    route = Route("POST", "/hooks/jointech/{token}/{kind}", "Webhook")
    kwargs: dict[str, Any] = {
        "route": route,
        "path_params": {"token": "dev-token", "kind": "location"},
        "method": "POST",
        "raw_path": "/hooks/jointech/dev-token/location",
        "raw_query": "a=1&a=2&b=x%20y",
        "headers": [
            ("Content-Type", "application/json"),
            ("X-Dup", "one"),
            ("x-dup", "two"),
            ("User-Agent", "jointech/1.0"),
            ("Cookie", "s=1; t=2"),
        ],
        "body": body,
        "source_ip": "10.0.0.9",
        "domain_name": "127.0.0.1",
        "now": datetime(2022, 9, 1, 8, 59, 56, 964000, tzinfo=UTC),
        "request_id": "req-1",
    }
    kwargs.update(overrides)
    return build_http_event(**kwargs)


def test_v2_event_has_api_gateway_shape():
    # When a UTF-8 JSON request is turned into an event
    event = _event(b'{"assetId":"8022300001"}')
    # Then it carries payload format 2.0's fields, as API Gateway fills them
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /hooks/jointech/{token}/{kind}"
    assert event["rawPath"] == "/hooks/jointech/dev-token/location"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["pathParameters"] == {"token": "dev-token", "kind": "location"}
    # And header names are lower case, duplicates comma-joined, cookies split out
    assert event["headers"] == {"content-type": "application/json", "x-dup": "one,two", "user-agent": "jointech/1.0"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["body"] == '{"assetId":"8022300001"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == "local"
    assert context["domainName"] == "127.0.0.1"
    assert context["http"] == {
        "method": "POST",
        "path": "/hooks/jointech/dev-token/location",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.9",
        "userAgent": "jointech/1.0",
    }
    assert context["requestId"] == "req-1"
    assert context["routeKey"] == event["routeKey"]
    assert context["stage"] == "$default"
    assert context["time"] == "01/Sep/2022:08:59:56 +0000"
    assert context["timeEpoch"] == 1662022796964


def test_v2_event_base64_encodes_a_non_utf8_body():
    # When the body bytes are not UTF-8
    raw = b"\xff\xfe\x00binary"
    event = _event(raw)
    # Then the body travels base64-encoded and says so
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_v2_event_leaves_out_what_the_request_lacks():
    # When there is no body, query string, cookie or path parameter
    event = _event(b"", raw_query="", headers=[("Host", "x")], path_params={})
    # Then those keys are absent, as in API Gateway's events
    for key in ("body", "queryStringParameters", "cookies", "pathParameters"):
        assert key not in event
    assert event["isBase64Encoded"] is False


def test_v2_event_is_accepted_by_powertools_http_resolver():
    # Given the event Powertools' APIGatewayHttpResolver routes on
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

    event = APIGatewayProxyEventV2(_event(b"{}"))
    # Then the fields it reads come out as API Gateway would send them
    assert event.request_context.http.method == "POST"
    assert event.path_parameters == {"token": "dev-token", "kind": "location"}
    assert event.raw_path == "/hooks/jointech/dev-token/location"


# --------------------------------------------------------------------------- responses


def test_full_response_is_written_as_given():
    # When the handler returns a full payload-2.0 response
    response = map_handler_result(
        {"statusCode": 403, "headers": {"x-a": "1"}, "body": '{"result":403}', "cookies": ["a=1", "b=2"]}
    )
    # Then status, headers, cookies (one set-cookie each) and body are used as they are
    assert response.status == 403
    assert ("x-a", "1") in response.headers
    assert [v for k, v in response.headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert response.body == b'{"result":403}'


def test_base64_response_body_is_decoded():
    response = map_handler_result(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    )
    assert response.body == b"\x00\x01"


def test_dict_without_status_code_becomes_a_200_json_body():
    # When the handler returns a plain dict, HTTP API infers a 200 application/json response
    response = map_handler_result({"result": 200})
    assert response.status == 200
    assert ("content-type", "application/json") in response.headers
    assert json.loads(response.body) == {"result": 200}


def test_string_result_is_the_body_of_a_200():
    response = map_handler_result("hello")
    assert (response.status, response.body) == (200, b"hello")


def test_invalid_status_code_is_rejected():
    # API Gateway answers 500 for a malformed integration response
    with pytest.raises(ValueError):
        map_handler_result({"statusCode": "200"})


# --------------------------------------------------------------------------- the HTTP server


@pytest.fixture
def http_server():
    calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(function_id: str, event: dict[str, Any]) -> Any:
        calls.append((function_id, event))
        if event["pathParameters"]["token"] == "boom":
            raise RuntimeError("handler blew up")
        return {"statusCode": 200, "body": json.dumps({"got": event["pathParameters"]})}

    server = LocalHttpServer("127.0.0.1", 0, [Route("POST", "/hooks/jointech/{token}", "Webhook")], invoke,
                             body_timeout_s=0.5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()
    server.server_close()


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_server_invokes_the_route_handler(http_server):
    base, calls = http_server
    # When a request reaches a served route
    status, body = _post(base + "/hooks/jointech/secret-token", b"{}")
    # Then the function gets the event and its response is relayed
    assert status == 200
    assert json.loads(body) == {"got": {"token": "secret-token"}}
    assert calls[0][0] == "Webhook"
    # And the event's domainName is the Host the client used, without the port
    assert calls[0][1]["requestContext"]["domainName"] == "127.0.0.1"
    assert calls[0][1]["requestContext"]["http"]["method"] == "POST"


def test_server_answers_404_without_invoking(http_server):
    base, calls = http_server
    status, body = _post(base + "/nope", b"{}")
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    assert calls == []


def test_handler_exception_is_a_500_with_the_traceback_on_stderr(http_server, capsys):
    base, _ = http_server
    # When the handler raises
    status, body = _post(base + "/hooks/jointech/boom", b"{}")
    # Then the client sees API Gateway's 500 and the developer sees the traceback
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    err = capsys.readouterr().err
    assert "RuntimeError: handler blew up" in err
    # And the log line names the route key, never the raw path with its token
    assert "POST /hooks/jointech/{token} 500" in err


def test_oversized_body_is_413_without_invoking(http_server):
    base, calls = http_server
    # When the body is over API Gateway's 10 MiB limit
    status, body = _post(base + "/hooks/jointech/dev-token", b"x" * (MAX_BODY_BYTES + 1))
    # Then the client gets API Gateway's 413 and the handler is never called
    assert (status, json.loads(body)) == (413, {"message": "Request Entity Too Large"})
    assert calls == []
    # While a body of exactly the limit is still accepted
    assert _post(base + "/hooks/jointech/dev-token", b"x" * MAX_BODY_BYTES)[0] == 200


def _raw_request(base: str, head: str, body: bytes = b"", half_close: bool = False) -> tuple[int, dict, float]:
    """Send bytes as they are (urllib would fix the framing); (status, JSON body, seconds taken)."""
    import socket
    import time

    host, port = base.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _length(reply):
            data = connection.recv(65536)
            if not data:
                break
            reply += data
    status = int(reply.split(b" ", 2)[1])
    return status, json.loads(reply.split(b"\r\n\r\n", 1)[1] or b"null"), time.monotonic() - started


def _length(reply: bytes) -> int:
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


REQUEST = "POST /hooks/jointech/dev-token HTTP/1.1\nHost: 127.0.0.1\n"


@pytest.mark.parametrize("head, body, half_close, problem", [
    (REQUEST + "Content-Length: abc\n", b"{}", False, "Content-Length"),
    (REQUEST + "Content-Length: -1\n", b"{}", False, "Content-Length"),
    (REQUEST + "Content-Length: 0x2\n", b"{}", False, "Content-Length"),
    (REQUEST + "Content-Length: 2\nContent-Length: 3\n", b"{}", False, "Content-Length"),
    (REQUEST + "Content-Length: 100\n", b"{}", True, "100"),
    (REQUEST + "Content-Length: 100\n", b"{}", False, "stopped"),
    (REQUEST, b'{"assetId": "8022300001"}', False, "no Content-Length"),
    (REQUEST + "Transfer-Encoding: chunked\n", b"zz\r\n{}\r\n0\r\n\r\n", False, "chunk"),
    (REQUEST + "Transfer-Encoding: chunked\n", b"5\r\n{}", True, "chunk"),
], ids=["not-a-number", "negative", "hex", "conflicting", "longer-than-the-body", "longer-and-the-client-waits",
        "missing-with-a-body", "bad-chunk-size", "chunk-cut-short"])
def test_a_body_that_does_not_match_its_framing_is_a_400_without_invoking(http_server, head, body, half_close,
                                                                           problem):
    base, calls = http_server
    # When the request's Content-Length (or chunking) does not describe the body it sends
    status, answer, seconds = _raw_request(base, head, body, half_close)
    # Then the front end answers 400 saying what is wrong, promptly, and the handler never runs
    assert status == 400 and problem in answer["message"], answer
    assert seconds < 3 and calls == []


def test_a_post_without_content_length_or_body_still_reaches_its_route(http_server):
    # Given `curl -X POST` without -d: no Content-Length, no body
    base, calls = http_server
    status, _, _ = _raw_request(base, REQUEST + "Connection: close\n")
    # Then it is a request with an empty body, as HTTP/1.1 reads it
    assert status == 200 and "body" not in calls[0][1]


def test_repeated_equal_content_lengths_are_one_length(http_server):
    base, calls = http_server
    status, _, _ = _raw_request(base, REQUEST + "Content-Length: 2\nContent-Length: 2\n", b"{}")
    assert status == 200 and calls[0][1]["body"] == "{}"


def test_request_log_never_contains_the_token(http_server, capsys):
    base, _ = http_server
    _post(base + "/hooks/jointech/very-secret-token", b"{}")
    err = capsys.readouterr().err
    assert "POST /hooks/jointech/{token} 200" in err
    assert "very-secret-token" not in err


# --------------------------------------------------------------------------- filter patterns


def _record(event_name: str, pk: str) -> dict[str, Any]:
    return {"eventName": event_name, "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": "E"}}}}


@pytest.mark.parametrize(
    ("event_name", "pk", "expected"),
    [
        ("INSERT", "E#jointech#abc", True),
        ("MODIFY", "E#jointech#abc", False),
        ("INSERT", "D#jointech#8022300001", False),
        ("REMOVE", "D#jointech#8022300001", False),
        ("INSERT", "Q#jointech#abc", False),
    ],
)
def test_outbox_pattern_passes_only_event_inserts(event_name, pk, expected):
    # Given the outbox's FilterCriteria pattern, When a record of that kind arrives
    # Then only INSERTs of E# items reach the function
    assert matches_pattern(OUTBOX_PATTERN, _record(event_name, pk)) is expected


def test_outbox_pattern_as_the_template_writes_it():
    # Given the filter as a JSON string, as in FilterCriteria.Filters[].Pattern
    patterns = parse_filters({"Filters": [{"Pattern": json.dumps(OUTBOX_PATTERN)}]})
    assert passes_filters(patterns, _record("INSERT", "E#x")) is True
    assert passes_filters(patterns, _record("INSERT", "D#x")) is False
    # And a record passes when any of several filters matches it, or when there are none
    either = parse_filters({"Filters": [{"Pattern": '{"eventName":["MODIFY"]}'}, {"Pattern": '{"eventName":["REMOVE"]}'}]})
    assert passes_filters(either, _record("REMOVE", "E#x")) is True
    assert passes_filters(either, _record("INSERT", "E#x")) is False
    assert passes_filters([], _record("INSERT", "D#x")) is True


def test_exists_and_missing_fields():
    record = {"dynamodb": {"NewImage": {"kind": {"S": "alarm"}}}}
    assert matches_pattern({"dynamodb": {"NewImage": {"kind": [{"exists": True}]}}}, record)
    assert not matches_pattern({"dynamodb": {"NewImage": {"kind": [{"exists": False}]}}}, record)
    assert matches_pattern({"dynamodb": {"OldImage": {"kind": [{"exists": False}]}}}, record)
    # A missing field never equals a value
    assert not matches_pattern({"dynamodb": {"OldImage": {"kind": {"S": ["alarm"]}}}}, record)


def test_other_supported_operators():
    record = {"n": 5, "s": "Alarm", "tags": ["a", "b"], "z": None}
    assert matches_pattern({"n": [{"numeric": [">", 1, "<=", 5]}]}, record)
    assert not matches_pattern({"n": [{"numeric": [">", 5]}]}, record)
    assert matches_pattern({"s": [{"anything-but": ["Other"]}]}, record)
    assert not matches_pattern({"s": [{"anything-but": "Alarm"}]}, record)
    assert matches_pattern({"s": [{"equals-ignore-case": "alarm"}]}, record)
    assert matches_pattern({"s": [{"suffix": "rm"}]}, record)
    assert matches_pattern({"tags": ["b"]}, record)  # any element of an array
    assert matches_pattern({"z": [None]}, record)
    assert not matches_pattern({"n": ["5"]}, record)  # a string never equals a number
    assert matches_pattern({"$or": [{"n": [1]}, {"s": ["Alarm"]}]}, record)


def test_unsupported_pattern_fails_at_startup():
    with pytest.raises(ValueError):
        parse_filters({"Filters": [{"Pattern": '{"a":[{"wildcard":"x*"}]}'}]})


# --------------------------------------------------------------------------- stream records


STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000"


def _raw(seq: int, event_name: str = "INSERT", pk: str = "E#jointech#1", image: dict | None = None) -> dict:
    keys = {"pk": {"S": pk}, "sk": {"S": "E"}}
    return {
        "eventID": f"id{seq}",
        "eventName": event_name,
        "eventVersion": "1.0",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2024, 1, 1, 0, 0, seq, tzinfo=UTC),
            "Keys": keys,
            "NewImage": image if image is not None else {**keys, "blob": {"B": b"\x00\x01"}},
            "SequenceNumber": str(100 + seq),
            "SizeBytes": 10,
            "StreamViewType": "NEW_IMAGE",
        },
    }


def test_stream_record_is_shaped_like_lambdas():
    # When a GetRecords record (boto3-decoded) is converted
    record = lambda_stream_record(_raw(1), STREAM_ARN)
    # Then it is the record Lambda delivers: version 1.1, source ARN, epoch seconds, base64 binaries
    assert record["eventVersion"] == "1.1"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == STREAM_ARN
    assert record["dynamodb"]["ApproximateCreationDateTime"] == 1704067201
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}
    assert record["dynamodb"]["SequenceNumber"] == "101"
    json.dumps(record)  # JSON-serialisable, as an invocation payload must be
    # And Powertools' DynamoDB stream model accepts it
    from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel

    DynamoDBStreamModel.model_validate({"Records": [record]})


def test_moto_upsert_artifact_is_dropped():
    # Given moto's two INSERTs for one UpdateItem upsert (keys only, then the item)
    keys_only = lambda_stream_record(_raw(1, pk="D#x", image={"pk": {"S": "D#x"}, "sk": {"S": "E"}}), STREAM_ARN)
    full = lambda_stream_record(_raw(2, pk="D#x"), STREAM_ARN)
    other = lambda_stream_record(_raw(3, pk="E#y"), STREAM_ARN)
    # Then only the full INSERT remains, like DynamoDB's single record
    assert drop_moto_upsert_artifacts([keys_only, full, other]) == [full, other]
    # But a genuine keys-only INSERT followed by another key's INSERT stays
    assert drop_moto_upsert_artifacts([keys_only, other]) == [keys_only, other]


def _records(count: int) -> list[dict[str, Any]]:
    return [lambda_stream_record(_raw(i), STREAM_ARN) for i in range(1, count + 1)]


def test_batch_item_failures_give_the_lowest_failed_record():
    records = _records(4)
    assert first_failed_index(None, records) is None
    assert first_failed_index({"batchItemFailures": []}, records) is None
    answer = {"batchItemFailures": [{"itemIdentifier": "104"}, {"itemIdentifier": "102"}]}
    assert first_failed_index(answer, records) == 1
    for invalid in ({"itemIdentifier": ""}, {"itemIdentifier": None}, {"id": "101"}, {"itemIdentifier": "999"}):
        with pytest.raises(InvalidBatchResponse):
            first_failed_index({"batchItemFailures": [invalid]}, records)


class _FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:  # noqa: N803 - boto3's names
        self.sent.append({"QueueUrl": QueueUrl, "Body": json.loads(MessageBody)})


def _poller(invoke, **source_options: Any) -> tuple[StreamPoller, _FakeSqs]:
    options: dict[str, Any] = {"report_item_failures": True, **source_options}
    source = StreamSource(
        function_id="Outbox",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:devicegate-local-Outbox",
        stream_arn=STREAM_ARN,
        on_failure_arn="arn:aws:sqs:us-east-1:123456789012:devicegate-local-OutboxFailureQueue",
        **options,
    )
    sqs = _FakeSqs()
    urls = {source.on_failure_arn: "http://moto/queue/failures"}
    return StreamPoller(source, None, sqs, invoke, urls.get, threading.Event(), retry_base_s=0), sqs


def test_partial_failure_retries_from_the_lowest_failed_record():
    batches: list[list[str]] = []

    def invoke(function_id: str, event: dict[str, Any]) -> Any:
        sequence = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        batches.append(sequence)
        return {"batchItemFailures": [{"itemIdentifier": "103"}]} if len(batches) == 1 else None

    poller, sqs = _poller(invoke, max_retries=3)
    # When the first invocation reports record 103 (of 101..104) as failed
    poller.process_batch("shard-1", _records(4))
    # Then Lambda re-sends 103 and everything after it, and the batch then succeeds
    assert batches == [["101", "102", "103", "104"], ["103", "104"]]
    assert sqs.sent == []


def test_exhausted_retries_describe_the_records_on_the_failure_queue():
    calls = []

    def invoke(function_id: str, event: dict[str, Any]) -> Any:
        calls.append(len(event["Records"]))
        raise RuntimeError("queue down")

    poller, sqs = _poller(invoke, max_retries=2)
    # When every invocation raises
    poller.process_batch("shard-1", _records(3))
    # Then the batch is tried once plus MaximumRetryAttempts times, then described on the queue
    assert calls == [3, 3, 3]
    assert len(sqs.sent) == 1
    assert sqs.sent[0]["QueueUrl"] == "http://moto/queue/failures"
    body = sqs.sent[0]["Body"]
    info = body["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == ("101", "103", 3)
    assert info["shardId"] == "shard-1"
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["responseContext"]["functionError"] == "Unhandled"
    # And it is the invocation record Powertools' on-failure model parses
    from aws_lambda_powertools.utilities.parser.models.dynamodb import (
        DynamoDBStreamLambdaOnFailureDestinationModel,
    )

    DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(body)


def test_bisect_isolates_the_poison_record():
    seen: list[list[str]] = []

    def invoke(function_id: str, event: dict[str, Any]) -> Any:
        sequence = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        seen.append(sequence)
        if "102" in sequence:
            raise RuntimeError("poison")
        return None

    poller, sqs = _poller(invoke, max_retries=1, bisect=True, report_item_failures=False)
    # When one record of four always makes the function fail
    poller.process_batch("shard-1", _records(4))
    # Then halves are tried until only the poison record fails, and only it is discarded
    assert ["103", "104"] in seen
    assert ["101"] in seen
    assert len(sqs.sent) == 1
    info = sqs.sent[0]["Body"]["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == ("102", "102")


@pytest.fixture
def moto_as_the_local_stack_runs_it(aws_env, moto_patches_undone):
    """moto in this process with the local stack's corrections (local_moto.py), undone afterwards:
    the other tests' moto is moto as it comes."""
    import boto3
    from moto import mock_aws

    from devicegate_local.moto import keep_streams_through_cancelled_transactions

    keep_streams_through_cancelled_transactions()
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def _wait(condition, timeout_s: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_the_outbox_keeps_up_after_a_cancelled_transaction(moto_as_the_local_stack_runs_it):
    from botocore.exceptions import ClientError

    session = moto_as_the_local_stack_runs_it
    ddb = session.client("dynamodb")
    ddb.create_table(TableName="events", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    stream_arn = ddb.describe_table(TableName="events")["Table"]["LatestStreamArn"]
    delivered: list[str] = []
    source = StreamSource("Outbox", "arn:outbox", stream_arn, "TRIM_HORIZON",
                          filters=parse_filters({"Filters": [{"Pattern": json.dumps(OUTBOX_PATTERN)}]}))
    stop = threading.Event()
    poller = StreamPoller(source, session.client("dynamodbstreams"), None,
                          lambda _, event: delivered.extend(r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]),
                          lambda arn: None, stop)
    # Given the outbox polling the table's stream, and an event it has published
    poller.start()
    try:
        ddb.put_item(TableName="events", Item={"pk": {"S": "E#1"}})
        assert _wait(lambda: delivered == ["E#1"])
        # When a transaction is cancelled (a command to an unknown device: its check fails) after
        # moto has applied one of its writes
        with pytest.raises(ClientError, match="TransactionCanceled"):
            ddb.transact_write_items(TransactItems=[
                {"ConditionCheck": {"TableName": "events", "Key": {"pk": {"S": "D#unknown"}},
                                    "ConditionExpression": "attribute_exists(pk)"}},
                {"Put": {"TableName": "events", "Item": {"pk": {"S": "E#never-stored"}}}},
            ])
        # And an event is stored afterwards
        ddb.put_item(TableName="events", Item={"pk": {"S": "E#2"}})
        # Then the outbox gets the new event, and never the write the transaction took back
        assert _wait(lambda: "E#2" in delivered), delivered
    finally:
        stop.set()
        poller.join(5)
    assert delivered == ["E#1", "E#2"]
    assert "Item" not in ddb.get_item(TableName="events", Key={"pk": {"S": "E#never-stored"}})


def test_failure_record_without_function_error_omits_it():
    body = failure_destination_record(
        records=_records(1), shard_id="s", stream_arn=STREAM_ARN, function_arn="arn", invoke_count=2,
        function_error=None,
    )
    assert "functionError" not in body["responseContext"]
    assert body["timestamp"].endswith("Z")


# --------------------------------------------------------------------------- template resolution


TEMPLATE = {
    "Parameters": {"Level": {"Type": "String", "Default": "INFO"}, "Days": {"Type": "Number", "Default": 30}},
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}, "maxReceiveCount": 5},
            "SqsManagedSseEnabled": True,
        }},
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
    },
}


def test_resolver_uses_parameter_defaults_pseudo_parameters_and_local_names():
    resolver = Resolver(TEMPLATE)
    resolver.attributes["Queue"] = {"Ref": "http://q", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"}
    resolved = resolver.resolve({
        "level": {"Ref": "Level"},
        "days": {"Ref": "Days"},
        "sub": {"Fn::Sub": "${AWS::Region}/${AWS::AccountId}/${Queue.Arn}/${!Literal}/${AWS::URLSuffix}"},
        "key": {"Fn::GetAtt": ["Key", "Arn"]},
        "queue": {"Ref": "Queue"},
    })
    assert resolved == {
        "level": "INFO",
        "days": "30",
        "sub": "us-east-1/123456789012/arn:aws:sqs:us-east-1:123456789012:q/${Literal}/amazonaws.com",
        "key": "arn:aws:kms:us-east-1:123456789012:devicegate-local-Key",
        "queue": "http://q",
    }


def test_referenced_queues_are_created_first():
    # Given Queue's RedrivePolicy points at Dlq, Then Dlq is created before it
    assert creation_order(TEMPLATE["Resources"], ["Queue", "Dlq"]) == ["Dlq", "Queue"]


def test_queue_properties_become_sqs_attributes():
    attributes = queue_attributes({
        "RedrivePolicy": {"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5},
        "SqsManagedSseEnabled": True,
        "VisibilityTimeout": 60,
        "Tags": [{"Key": "a", "Value": "b"}],
    })
    assert attributes == {
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5}),
        "SqsManagedSseEnabled": "true",
        "VisibilityTimeout": "60",
    }


def test_globals_merge_like_sam():
    merged = merge_globals(
        {"Variables": {"A": "1", "B": "1"}, "Layers": ["l1"]},
        {"Variables": {"B": "2", "C": "3"}, "Layers": ["l2"]},
    )
    assert merged == {"Variables": {"A": "1", "B": "2", "C": "3"}, "Layers": ["l1", "l2"]}


def _spec(logical_id: str, env: dict[str, str]) -> FunctionSpec:
    from pathlib import Path

    return FunctionSpec(logical_id, logical_id, Path("."), "app.h", 128, 3, env, {})


def test_conflicting_environment_is_an_error():
    # Given two functions share one process, the same name may not mean two things
    assert merged_environment([_spec("A", {"X": "1"}), _spec("B", {"X": "1", "Y": "2"})]) == {"X": "1", "Y": "2"}
    with pytest.raises(TemplateError, match="X"):
        merged_environment([_spec("A", {"X": "1"}), _spec("B", {"X": "2"})])


# --------------------------------------------------------------------------- context


def test_lambda_context_carries_what_powertools_reads():
    context = LambdaContext.for_function("devicegate-local-Fn", memory_mb=256, timeout_s=2)
    assert context.function_name == "devicegate-local-Fn"
    assert context.function_version == "$LATEST"
    assert context.memory_limit_in_mb == 256
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:devicegate-local-Fn"
    assert context.log_group_name == "/aws/lambda/devicegate-local-Fn"
    assert 1900 < context.get_remaining_time_in_millis() <= 2000
    # And every invocation gets its own request id
    assert LambdaContext.for_function("f").aws_request_id != LambdaContext.for_function("f").aws_request_id


# ---------------------------------------------------------------------------------------
# Schedules (the device sweep)
# ---------------------------------------------------------------------------------------
def test_rate_expressions_become_periods_and_cron_is_reported_not_emulated():
    from types import SimpleNamespace

    from devicegate_local.schedule import rate_seconds, schedules

    # Given rate and cron expressions
    assert (rate_seconds("rate(5 minutes)"), rate_seconds("rate(1 hour)"), rate_seconds("rate(2 days)")) == (
        300, 3600, 172800)
    assert rate_seconds("cron(0 12 * * ? *)") is None
    # When functions' Schedule events are read
    specs = [SimpleNamespace(logical_id="Sweep", events={"S": {"Type": "Schedule",
                                                               "Properties": {"Schedule": "rate(5 minutes)"}}}),
             SimpleNamespace(logical_id="Nightly", events={"N": {"Type": "Schedule",
                                                                 "Properties": {"Schedule": "cron(0 3 * * ? *)"}}}),
             SimpleNamespace(logical_id="Off", events={"O": {"Type": "Schedule",
                                                             "Properties": {"Schedule": "rate(1 minute)",
                                                                            "Enabled": False}}})]
    found, skipped = schedules(specs)
    # Then the rate one runs at its period (or the override), the others are named as not run
    assert [(s.function_id, s.period_s) for s in found] == [("Sweep", 300)]
    assert [s.period_s for s in schedules(specs, every=2.0)[0]] == [2.0]
    assert len(skipped) == 2 and "only rate() is emulated" in skipped[0] and "disabled" in skipped[1]


def test_the_schedule_poller_invokes_its_function_with_a_scheduled_event():
    import threading

    from devicegate_local.schedule import Schedule, SchedulePoller

    # Given a poller every 50 ms
    calls: list[tuple[str, dict]] = []
    fired = threading.Event()

    def invoke(function_id, event):
        calls.append((function_id, event))
        fired.set()
        return {"ok": True}

    stop = threading.Event()
    poller = SchedulePoller(Schedule("DeviceSweepFunction", "Sweep", "rate(5 minutes)", 0.05), invoke, stop)
    # (threading.Thread has a _stop method on Python 3.11, which join() calls: not to be shadowed)
    assert "_stop" not in vars(poller)
    # When it runs for a moment
    poller.start()
    assert fired.wait(5)
    stop.set()
    poller.join(5)
    assert not poller.is_alive()
    # Then the function got EventBridge's scheduled event
    function_id, event = calls[0]
    assert function_id == "DeviceSweepFunction"
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
    assert event["resources"][0].endswith(":rule/DeviceSweepFunction-Sweep")


def test_parameter_overrides_replace_defaults_and_unknown_names_are_refused():
    from devicegate_local.resources import Resolver
    from devicegate_local.stack import StartupError, local_parameters

    template = {"Parameters": {"JointechAccessKey": {"Type": "String", "Default": ""},
                               "LogLevel": {"Type": "String", "Default": "INFO"}}, "Resources": {}}
    # Given the local default for the access key and an override of the log level
    values = local_parameters(template, ["LogLevel=DEBUG"])
    resolver = Resolver(template, values)
    # Then both take effect, and a name the template does not declare is an error
    assert (resolver.ref("JointechAccessKey"), resolver.ref("LogLevel")) == ("ak-demo", "DEBUG")
    with pytest.raises(StartupError):
        local_parameters(template, ["NoSuchParameter=1"])


# ---------------------------------------------------------------------------------------
# Template forms: the outbox's stream mapping, FIFO queues, the access-log bucket
# ---------------------------------------------------------------------------------------
STREAM_SETTINGS = {
    "StartingPosition": "TRIM_HORIZON", "BatchSize": 100, "MaximumBatchingWindowInSeconds": 1,
    "ParallelizationFactor": 4, "BisectBatchOnFunctionError": True, "MaximumRetryAttempts": 10,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "FilterCriteria": {"Filters": [{"Pattern": json.dumps(OUTBOX_PATTERN, separators=(",", ":"))}]},
}
STREAM_ARN_OF_TABLE = {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
FAILURE_QUEUE_ARN = {"Fn::GetAtt": ["OutboxFailureQueue", "Arn"]}


def outbox_template(trigger: str, **mapping: Any) -> dict[str, Any]:
    """The outbox with its stream trigger as a SAM DynamoDB event ("event") or as an explicit
    AWS::Lambda::EventSourceMapping ("mapping", with `mapping` overriding its Properties), and
    its scheduled redrive next to it."""
    events: dict[str, Any] = {"Redrive": {"Type": "Schedule", "Properties": {
        "Schedule": {"Ref": "OutboxRedriveSchedule"}, "Description": "redrive", "Enabled": True}}}
    resources: dict[str, Any] = {
        "EventsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "BillingMode": "PAY_PER_REQUEST", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"}}},
        "OutboxFailureQueue": {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": True}},
        "OutboxFunction": {"Type": "AWS::Serverless::Function", "Properties": {
            "CodeUri": "functions/outbox/", "Handler": "app.lambda_handler", "Events": events}},
    }
    if trigger == "event":
        events["Stream"] = {"Type": "DynamoDB", "Properties": {
            "Stream": STREAM_ARN_OF_TABLE, **STREAM_SETTINGS,
            "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": FAILURE_QUEUE_ARN}}}}
    else:
        resources["OutboxStreamMapping"] = {
            "Type": "AWS::Lambda::EventSourceMapping", "DependsOn": "OutboxFunctionRole", "Properties": {
                "FunctionName": {"Ref": "OutboxFunction"}, "EventSourceArn": STREAM_ARN_OF_TABLE, **STREAM_SETTINGS,
                "DestinationConfig": {"OnFailure": {"Destination": FAILURE_QUEUE_ARN}}, **mapping}}
    return {"Parameters": {"OutboxRedriveSchedule": {"Type": "String", "Default": "rate(1 minute)"}},
            "Resources": resources}


@pytest.fixture
def in_moto(aws_env):
    """Builds a synthetic template in moto as `devicegate local` does: (resolver, created, specs)."""
    from pathlib import Path

    import boto3
    from moto import mock_aws

    from devicegate_local.resources import create_resources, function_specs

    with mock_aws() as moto:

        def build(template: dict[str, Any]) -> tuple[Resolver, Any, list[FunctionSpec]]:
            moto.reset()  # each build is a fresh start of the stack
            resolver = Resolver(template)
            created = create_resources(resolver, boto3.Session(region_name="us-east-1"), token="dev-token")
            return resolver, created, function_specs(resolver, Path("."))

        yield build


def test_a_stream_mapping_resource_is_played_exactly_as_the_sam_event_it_replaces(in_moto):
    import dataclasses

    from devicegate_local.stack import _stream_sources

    sources = {}
    for trigger in ("event", "mapping"):
        # Given the outbox's stream trigger in one form or the other
        resolver, created, specs = in_moto(outbox_template(trigger))
        # When the stack reads its stream triggers
        [source], not_played = _stream_sources(specs, resolver)
        # Then it polls the table's stream for the outbox, failures going to its queue
        assert not_played == []
        assert source.stream_arn == resolver.get_att("EventsTable", "StreamArn")
        assert created.queue_url_for_arn(source.on_failure_arn) == created.queues["OutboxFailureQueue"]
        sources[trigger] = dataclasses.replace(source, stream_arn="", on_failure_arn="")
    # And with the very same settings either way
    assert sources["mapping"] == sources["event"]
    assert (sources["event"].function_id, sources["event"].function_arn) == (
        "OutboxFunction", "arn:aws:lambda:us-east-1:123456789012:function:devicegate-local-OutboxFunction")
    assert (sources["event"].starting_position, sources["event"].batch_size, sources["event"].batching_window_s,
            sources["event"].max_retries, sources["event"].bisect, sources["event"].report_item_failures) == (
        "TRIM_HORIZON", 100, 1.0, 10, True, True)
    assert sources["event"].filters == [OUTBOX_PATTERN]


@pytest.mark.parametrize("function_name", [
    "devicegate-local-OutboxFunction",
    "arn:aws:lambda:us-east-1:123456789012:function:devicegate-local-OutboxFunction",
    "arn:aws:lambda:us-east-1:123456789012:function:devicegate-local-OutboxFunction:live",
    "123456789012:function:devicegate-local-OutboxFunction",
    "devicegate-local-OutboxFunction:$LATEST",
    {"Fn::GetAtt": ["OutboxFunction", "Arn"]},
])
def test_a_mapping_names_its_function_in_any_form_lambda_takes(in_moto, function_name):
    from devicegate_local.stack import _stream_sources

    resolver, _, specs = in_moto(outbox_template("mapping", FunctionName=function_name))
    [source], _ = _stream_sources(specs, resolver)
    assert source.function_id == "OutboxFunction"


@pytest.mark.parametrize("change, why", [
    ({"Enabled": False}, "disabled"),
    ({"FunctionName": "someone-elses-function"}, "not a function of this template"),
    ({"EventSourceArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}, "only DynamoDB streams are polled"),
])
def test_a_mapping_the_stack_cannot_play_is_named_not_polled(in_moto, change, why):
    from devicegate_local.stack import _stream_sources

    resolver, _, specs = in_moto(outbox_template("mapping", **change))
    sources, not_played = _stream_sources(specs, resolver)
    assert sources == [] and len(not_played) == 1
    assert not_played[0].startswith("OutboxStreamMapping (") and why in not_played[0]


def test_a_mapping_on_a_queue_is_left_to_the_queue_poller(in_moto):
    # (devicegate_local.queues plays it: tests/unit/test_local_queues.py)
    from devicegate_local.stack import _stream_sources

    resolver, _, specs = in_moto(outbox_template("mapping", EventSourceArn="arn:aws:sqs:us-east-1:123456789012:q"))
    assert _stream_sources(specs, resolver) == ([], [])


def test_a_function_with_a_stream_mapping_also_runs_its_schedule(in_moto):
    from devicegate_local.schedule import schedules
    from devicegate_local.stack import _stream_sources

    # Given the outbox with its stream mapping and its periodic redrive
    resolver, _, specs = in_moto(outbox_template("mapping"))
    # Then both triggers are played: the stream, and the schedule at its rate or --schedule-every's
    [source], _ = _stream_sources(specs, resolver)
    [redrive], skipped = schedules(specs)
    assert source.function_id == redrive.function_id == "OutboxFunction" and skipped == []
    assert (redrive.event_id, redrive.expression, redrive.period_s) == ("Redrive", "rate(1 minute)", 60)
    assert [s.period_s for s in schedules(specs, every=3.0)[0]] == [3.0]
    assert redrive.event()["detail-type"] == "Scheduled Event"


def test_a_schedules_input_is_the_event_eventbridge_sends():
    from types import SimpleNamespace

    from devicegate_local.schedule import schedules

    spec = SimpleNamespace(logical_id="OutboxFunction", events={
        "Redrive": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)", "Input": '{"redrive": true}'}},
        "Off": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)", "State": "DISABLED"}}})
    [redrive], skipped = schedules([spec])
    assert redrive.event() == {"redrive": True} and "disabled" in skipped[0]


FIFO_QUEUES = {"Resources": {
    "EventsQueue": {"Type": "AWS::SQS::Queue", "Properties": {
        "FifoQueue": True, "ContentBasedDeduplication": False, "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId", "SqsManagedSseEnabled": True, "MessageRetentionPeriod": 1209600,
        "VisibilityTimeout": 60,
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]},
                          "maxReceiveCount": 5}}},
    "EventsDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": True,
                                                                        "SqsManagedSseEnabled": True}},
    "OutboxFailureQueue": {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": True}},
}}


def test_fifo_queues_get_fifo_names_and_are_found_by_logical_id(in_moto):
    import boto3

    from devicegate_cli.commands import Target
    from devicegate_local.names import local_queue_url

    # Given FIFO queues without a QueueName (CloudFormation then makes one ending in .fifo)
    resolver, created, _ = in_moto(FIFO_QUEUES)
    # Then the local names keep the devicegate-local-<LogicalId> scheme, with the suffix
    assert created.queue_names == {"EventsDeadLetterQueue": "devicegate-local-EventsDeadLetterQueue.fifo",
                                   "EventsQueue": "devicegate-local-EventsQueue.fifo",
                                   "OutboxFailureQueue": "devicegate-local-OutboxFailureQueue"}
    assert resolver.get_att("EventsQueue", "QueueName") == "devicegate-local-EventsQueue.fifo"
    sqs = boto3.client("sqs", region_name="us-east-1")
    attributes = sqs.get_queue_attributes(QueueUrl=created.queues["EventsQueue"], AttributeNames=["All"])["Attributes"]
    assert (attributes["FifoQueue"], attributes["ContentBasedDeduplication"], attributes["DeduplicationScope"],
            attributes["FifoThroughputLimit"]) == ("true", "false", "messageGroup", "perMessageGroupId")
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith("EventsDeadLetterQueue.fifo")
    # And whatever finds a queue by logical id finds it, FIFO or not (the CLI, the e2e helpers)
    target = Target(boto3.Session(region_name="us-east-1"), None, "t", "b")
    for logical_id in created.queues:
        assert target.physical(logical_id) == local_queue_url(sqs, logical_id) == created.queues[logical_id]
    assert created.queue_url_for_arn(resolver.get_att("EventsQueue", "Arn")) == created.queues["EventsQueue"]
    # And the outbox's sends (a group per device, a deduplication id per event) are taken once
    for _ in range(2):
        sqs.send_message(QueueUrl=created.queues["EventsQueue"], MessageBody="{}", MessageGroupId="jointech#1",
                         MessageDeduplicationId="event-1")
    assert len(sqs.receive_message(QueueUrl=created.queues["EventsQueue"], MaxNumberOfMessages=10)["Messages"]) == 1


ACCESS_LOGGED_BUCKETS = {"Resources": {
    "PayloadBucket": {"Type": "AWS::S3::Bucket", "Properties": {
        "LoggingConfiguration": {"DestinationBucketName": {"Ref": "PayloadAccessLogBucket"},
                                 "LogFilePrefix": "payload-bucket/"}}},
    "PayloadAccessLogBucket": {"Type": "AWS::S3::Bucket", "Properties": {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "LifecycleConfiguration": {"Rules": [{"Id": "Expire", "Status": "Enabled", "ExpirationInDays": 90}]}}},
    "PayloadAccessLogBucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
        "Bucket": {"Ref": "PayloadAccessLogBucket"},
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Sid": "S3ServerAccessLogs", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${PayloadAccessLogBucket.Arn}/payload-bucket/*"},
            "Condition": {"ArnLike": {"aws:SourceArn": {"Fn::GetAtt": ["PayloadBucket", "Arn"]}}}}]}}},
}}


def test_an_access_log_bucket_is_created_and_a_refused_logging_setting_does_not_stop_the_start(in_moto, monkeypatch):
    import io
    import logging

    import boto3

    # Given a bucket logging to another one that moto will not accept as a target (no ACL grant)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    local_log = logging.getLogger("devicegate.local")
    # setLevel, not the attribute: the logger caches isEnabledFor answers an earlier test got
    level = local_log.level
    local_log.setLevel(logging.DEBUG)
    local_log.addHandler(handler)
    try:
        # When the stack creates them
        _, created, _ = in_moto(ACCESS_LOGGED_BUCKETS)
    finally:
        local_log.removeHandler(handler)
        local_log.setLevel(level)
    # Then both buckets exist, and the setting left out is named for --verbose
    names = {bucket["Name"] for bucket in boto3.client("s3", region_name="us-east-1").list_buckets()["Buckets"]}
    assert names == set(created.buckets.values()) == {"devicegate-local-payloadbucket",
                                                     "devicegate-local-payloadaccesslogbucket"}
    skipped = "skips PayloadBucket's LoggingConfiguration (to devicegate-local-payloadaccesslogbucket)"
    assert skipped in stream.getvalue()


def test_a_logging_setting_moto_takes_is_applied_as_s3_names_it():
    from devicegate_local.resources import _configure_logging

    calls = []

    class S3:
        def put_bucket_logging(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    _configure_logging(S3(), "PayloadBucket", "devicegate-local-payloadbucket",
                       {"DestinationBucketName": "devicegate-local-payloadaccesslogbucket",
                        "LogFilePrefix": "payload-bucket/"})
    assert calls == [{"Bucket": "devicegate-local-payloadbucket", "BucketLoggingStatus": {"LoggingEnabled": {
        "TargetBucket": "devicegate-local-payloadaccesslogbucket", "TargetPrefix": "payload-bucket/"}}}]
