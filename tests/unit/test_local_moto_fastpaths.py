"""The local stack's moto fast paths answer as moto does without them."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from devicegate_local import moto_fastpaths


def _conditional_writes(ddb: Any) -> list[Any]:
    """What moto answers to a series of conditional writes: stored, refused, or invalid."""
    ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    answers: list[Any] = []

    def put(**kwargs: Any) -> None:
        try:
            ddb.put_item(TableName="t", **kwargs)
            answers.append("stored")
        except ClientError as exc:
            answers.append((exc.response["Error"]["Code"], exc.response["Error"]["Message"]))

    for _ in range(2):  # each twice: the second one meets what the first one left behind
        put(Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)")
        put(Item={"pk": {"S": "b"}, "n": {"N": "1"}}, ConditionExpression="attribute_not_exists(#p)",
            ExpressionAttributeNames={"#p": "pk"})
        # The same expression with other values is another condition.
        put(Item={"pk": {"S": "b"}, "n": {"N": "2"}}, ConditionExpression="n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}})
        put(Item={"pk": {"S": "b"}, "n": {"N": "3"}}, ConditionExpression="n = :n",
            ExpressionAttributeValues={":n": {"N": "2"}})
        # A name the expression does not use: found from what the parse found, kept or not.
        put(Item={"pk": {"S": "c"}}, ConditionExpression="attribute_not_exists(pk)",
            ExpressionAttributeNames={"#unused": "x"})
    answers.append(ddb.get_item(TableName="t", Key={"pk": {"S": "b"}})["Item"])
    return answers


def test_conditional_writes_answer_as_moto_does_with_the_parsed_conditions_kept(aws_env, moto_patches_undone):
    from moto import mock_aws

    # Given the answers of moto as it is
    with mock_aws():
        expected = _conditional_writes(boto3.client("dynamodb", region_name="us-east-1"))
    # When moto keeps each parsed condition
    moto_fastpaths.install()
    with mock_aws():
        answers = _conditional_writes(boto3.client("dynamodb", region_name="us-east-1"))
    # Then every write is stored, refused or found invalid as before, the second time as the first
    assert answers == expected
    assert expected[:4] == ["stored", "stored", "stored", "stored"]
    assert expected[5:9] == [("ConditionalCheckFailedException", "The conditional request failed")] * 4
    assert expected[4][0] == expected[9][0] == "ValidationException"
    assert expected[10]["n"] == {"N": "3"}


def test_the_kept_conditions_are_bounded(aws_env, moto_patches_undone, monkeypatch):
    from moto.dynamodb.comparisons import ConditionExpressionParser

    # Given a cache of two conditions
    monkeypatch.setattr(moto_fastpaths, "CONDITION_CACHE_SIZE", 2)
    moto_fastpaths.install()
    trees = [ConditionExpressionParser(f"n = :v{k}", {}, {f":v{k}": {"N": "1"}}).parse() for k in range(3)]
    # When the first of three is parsed again, and the last
    again_first = ConditionExpressionParser("n = :v0", {}, {":v0": {"N": "1"}}).parse()
    again_last = ConditionExpressionParser("n = :v2", {}, {":v2": {"N": "1"}}).parse()
    # Then the first was let go (parsed anew), the last kept
    assert again_first is not trees[0]
    assert again_last is trees[2]



def _client_through_dispatch(service: str, dispatch: Any, region: str) -> Any:
    """A boto3 client whose requests reach moto as the functions' do: the transport's environ,
    answered by the stack's DirectDispatch."""
    from botocore.awsrequest import AWSResponse

    from devicegate_local.transport import _Body, wsgi_environ

    def send(request: Any, **_: Any) -> Any:
        body = request.body.read() if hasattr(request.body, "read") else request.body
        body = body.encode() if isinstance(body, str) else body or b""
        headers = [(name, value.decode() if isinstance(value, bytes) else value)
                   for name, value in request.headers.items()]
        status, answer_headers, data = dispatch(wsgi_environ(request.method, request.url, headers, body))
        return AWSResponse(request.url, int(status.split(" ", 1)[0]), dict(answer_headers), _Body(data))

    client = boto3.client(service, region_name=region, endpoint_url="http://127.0.0.1:1")
    client.meta.events.register_first("before-send", send)
    return client


def _puts(ddb: Any, table: str) -> tuple[list[Any], list[Any], list[Any]]:
    """The answers to the gateway's kinds of PutItem and some it never makes, the items they left
    and the stream records they wrote."""
    from devicegate_local.moto import InProcessStreams

    arn = ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk")],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    event = {"pk": {"S": "E#face-terminal#T1"}, "sk": {"S": "1700000000#u1"}, "data": {"S": "{\"a\": \"王五\"}"},
             "n": {"N": "1.50"}, "tags": {"SS": ["a", "b"]}, "m": {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}]}}}}
    marker = {"pk": {"S": "EID#face-terminal#T1"}, "sk": {"S": "u1"}}
    calls: list[dict[str, Any]] = [
        {"Item": event},  # an event
        {"Item": marker, "ConditionExpression": "attribute_not_exists(pk)"},  # an id marker
        {"Item": marker, "ConditionExpression": "attribute_not_exists(pk)"},  # a retransmission
        {"Item": marker, "ConditionExpression": "attribute_not_exists(pk)",
         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
        {"Item": {**event, "n": {"N": "2"}}, "ReturnValues": "ALL_OLD"},  # asks for something back
        {"Item": {**event, "n": {"N": "3"}}, "ReturnConsumedCapacity": "TOTAL"},
        {"Item": {"pk": {"S": ""}, "sk": {"S": "x"}}},  # an empty key
        {"Item": {"pk": {"S": "bin"}, "sk": {"S": "x"}, "photo": {"B": b"\xff\xd8\xff"}}},  # binary
        {"Item": {"pk": {"S": "cond"}, "sk": {"S": "x"}}, "ConditionExpression": "#u = :v",
         "ExpressionAttributeNames": {"#u": "unknown"}, "ExpressionAttributeValues": {":v": {"S": "x"}}},
    ]
    answers: list[Any] = []
    for call in calls:
        try:
            answer = ddb.put_item(TableName=table, **call)
            answer.pop("ResponseMetadata")
            answers.append(answer)
        except ClientError as exc:
            answers.append({key: exc.response.get(key) for key in ("Error", "Item")})
    items = sorted(ddb.scan(TableName=table)["Items"], key=lambda item: (item["pk"]["S"], item["sk"]["S"]))
    streams = InProcessStreams()
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = [(record["eventName"], {key: value for key, value in record["dynamodb"].items()
                                      if key in ("Keys", "NewImage", "OldImage", "StreamViewType")})
               for record in streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]]
    return answers, items, records


def test_a_put_item_through_the_fast_path_answers_stores_and_streams_as_moto_does(aws_env, moto_patches_undone,
                                                                                  monkeypatch):
    from devicegate_local.moto import MotoServer

    server = MotoServer("127.0.0.1", 0)
    taken: list[bool] = []
    fast = moto_fastpaths.put_item

    def watched(environ: dict[str, Any]) -> Any:
        answer = fast(environ)
        taken.append(answer is not None)
        return answer

    # Given the gateway's puts, and some it never makes, answered by moto's whole way
    monkeypatch.setattr(moto_fastpaths, "put_item", lambda environ: None)
    # (the same table name in two regions: moto's answers name the table)
    expected = _puts(_client_through_dispatch("dynamodb", server.dispatch, "eu-west-1"), "events")
    # When the same puts reach the stack's moto with its PutItem fast path
    monkeypatch.setattr(moto_fastpaths, "put_item", watched)
    answers = _puts(_client_through_dispatch("dynamodb", server.dispatch, "eu-central-1"), "events")
    # Then the answers, the items stored and the stream records are the same
    assert answers == expected
    # And the fast path served the event and the new marker; the refused puts, those asking for
    # something back and the binary one went moto's way
    assert taken == [True, True, False, False, False, False, False, False, False]
    assert expected[0][2]["Error"]["Code"] == "ConditionalCheckFailedException"
    assert expected[0][3]["Item"] == {"pk": {"S": "EID#face-terminal#T1"}, "sk": {"S": "u1"}}
    assert expected[0][6]["Error"]["Code"] == "ValidationException"
    assert {"pk": {"S": "bin"}, "sk": {"S": "x"}, "photo": {"B": b"\xff\xd8\xff"}} in expected[1]


def _s3_calls(s3: Any, bucket: str) -> list[Any]:
    """What moto answers to the gateway's S3 calls and to some it never makes (metadata whose
    names S3 keeps as sent, a conditional put, a missing key), without request ids and times."""
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    answers: list[Any] = []

    def call(method: str, **kwargs: Any) -> None:
        try:
            answer = getattr(s3, method)(Bucket=bucket, **kwargs)
        except ClientError as exc:
            answer = {"Error": exc.response["Error"], "status": exc.response["ResponseMetadata"]["HTTPStatusCode"]}
        answer.pop("LastModified", None)
        metadata = answer.pop("ResponseMetadata", {})
        headers = {name: value for name, value in metadata.get("HTTPHeaders", {}).items()
                   if name not in ("x-amzn-requestid", "date", "last-modified")}
        body = answer.pop("Body", None)
        answers.append((answer, headers, body.read() if body is not None else None))

    call("put_object", Key="media/face-terminal/T1/u1.jpg", Body=b"\xff\xd8\xff\xe0photo", ContentType="image/jpeg")
    call("put_object", Key="quarantine/u2 ü.json", Body=b"{}", ContentType="application/json",
         Metadata={"my_key": "a", "Other-Key": "b"})
    call("put_object", Key="media/face-terminal/T1/u1.jpg", Body=b"again", IfNoneMatch="*")
    call("head_object", Key="quarantine/u2 ü.json")
    call("get_object", Key="media/face-terminal/T1/u1.jpg")
    call("get_object", Key="missing")
    return answers


def test_s3_calls_with_the_headers_listed_once_answer_as_moto_does(aws_env, moto_patches_undone, monkeypatch):
    from moto.core.request import EnvironHeaders

    from devicegate_local.moto import MotoServer

    server = MotoServer("127.0.0.1", 0)
    listed = moto_fastpaths.listed_headers
    # Given moto's answers with its own view of the headers
    monkeypatch.setattr(moto_fastpaths, "listed_headers", EnvironHeaders)
    expected = _s3_calls(_client_through_dispatch("s3", server.dispatch, "eu-west-1"), "bucket-one")
    # When the headers are listed once per request
    monkeypatch.setattr(moto_fastpaths, "listed_headers", listed)
    answers = _s3_calls(_client_through_dispatch("s3", server.dispatch, "eu-west-1"), "bucket-two")
    # Then every answer is the same: metadata names as sent, the refused put, the missing key
    assert answers == expected
    assert expected[3][0]["Metadata"] == {"my_key": "a", "other-key": "b"}
    assert expected[2][0]["Error"]["Code"] == "PreconditionFailed"
    assert expected[5][0]["Error"]["Code"] == "NoSuchKey"
