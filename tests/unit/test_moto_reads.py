"""The local stack's moto reads (devicegate_local.moto_reads) answer every request exactly as
moto itself does: the same requests, against the same items, give the same parsed answers with
and without the patch (items and their order, Count and ScannedCount, LastEvaluatedKey page after
page, projections, filters, index projections, binary values, errors)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devicegate_local import moto_reads
from devicegate_local.cfn_template import load_template
from devicegate_local.resources import Resolver, create_resources
from tests.support import ROOT, seed_fleet


def _requests(table: str, busy: str, quiet: list[str], home: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """`home`: the gsi2pk of quiet[3], which the writes below move and put back."""
    pk = {"S": f"E#mettax#{busy}"}
    between = {":pk": pk, ":lo": {"S": "2025-02-07T00:10"}, ":hi": {"S": "2025-02-07T00:40"}}
    q = {"TableName": table}
    return [
        # A device's timeline: whole, newest first, a time range, page by page in both directions.
        ("query", q | {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": pk}}),
        ("query", q | {"KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
                       "ExpressionAttributeValues": between, "ScanIndexForward": False, "Limit": 7}),
        ("query", q | {"KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
                       "ExpressionAttributeValues": between, "Limit": 11}),
        ("query", q | {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :day)", "Limit": 50,
                       "ExpressionAttributeValues": {":pk": pk, ":day": {"S": "2025-02-07T00:2"}}}),
        ("query", q | {"KeyConditionExpression": "pk = :pk AND sk < :hi", "ScanIndexForward": False,
                       "ExpressionAttributeValues": {":pk": pk, ":hi": {"S": "2025-02-07T00:05"}}}),
        # ... filtered (a page's Limit counts what was read, not what passed), projected, counted.
        ("query", q | {"KeyConditionExpression": "pk = :pk", "FilterExpression": "eventId >= :id",
                       "ExpressionAttributeValues": {":pk": pk, ":id": {"S": "e0000290"}}, "Limit": 40}),
        ("query", q | {"KeyConditionExpression": "pk = :pk AND sk >= :lo", "Limit": 25,
                       "ProjectionExpression": "occurredAt, eventId, #k", "ExpressionAttributeNames": {"#k": "kind"},
                       "ExpressionAttributeValues": {":pk": pk, ":lo": {"S": "2025-02-07T00:30"}}}),
        ("query", q | {"KeyConditionExpression": "pk = :pk", "Select": "COUNT", "ExpressionAttributeValues": {":pk": pk}}),
        ("query", q | {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "E#none#x"}}}),
        # Projections: nested paths, a projection with a filter, QueryFilter; pages cut at 1 MB of
        # whole items although the answer holds a few bytes of each.
        ("query", q | {"KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi", "Limit": 60,
                       "ScanIndexForward": False, "ProjectionExpression": "#f0, #f1, #f2, #f3",
                       "ExpressionAttributeNames": {"#f0": "occurredAt", "#f1": "eventId", "#f2": "kind", "#f3": "facts"},
                       "ExpressionAttributeValues": between}),
        ("query", q | {"KeyConditionExpression": "pk = :pk", "ProjectionExpression": "m.deep[2], b, ns",
                       "ExpressionAttributeValues": {":pk": {"S": "T#odd"}}}),
        ("query", q | {"KeyConditionExpression": "pk = :pk", "ProjectionExpression": "eventId, occurredAt",
                       "FilterExpression": "begins_with(#k, :k)", "ExpressionAttributeNames": {"#k": "kind"},
                       "ExpressionAttributeValues": {":pk": pk, ":k": {"S": "loc"}}, "Limit": 30}),
        ("query", q | {"KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [pk]}},
                       "QueryFilter": {"eventId": {"ComparisonOperator": "BEGINS_WITH",
                                                   "AttributeValueList": [{"S": "e00001"}]}}}),
        ("query", q | {"KeyConditionExpression": "pk = :pk", "ProjectionExpression": "small",
                       "ExpressionAttributeValues": {":pk": {"S": "T#big"}}}),
        ("query", q | {"KeyConditionExpression": "pk = :pk", "ProjectionExpression": "small", "ScanIndexForward": False,
                       "Limit": 4, "ExpressionAttributeValues": {":pk": {"S": "T#big"}}}),
        # The kinds of value DynamoDB answers with, binary ones included.
        ("query", q | {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "T#odd"}}}),
        # The device list (gsi2, keys only), shard by shard, two at a time; ties on an index's sort key.
        *[("query", q | {"IndexName": "gsi2", "KeyConditionExpression": "gsi2pk = :pk", "Limit": 2,
                         "ExpressionAttributeValues": {":pk": {"S": f"V#jointech#{n}"}}}) for n in range(8)],
        ("query", q | {"IndexName": "gsi3", "KeyConditionExpression": "gsi3pk = :pk AND gsi3sk BETWEEN :lo AND :hi",
                       "ScanIndexForward": False, "Limit": 3,
                       "ExpressionAttributeValues": {":pk": {"S": "TIES"}, ":lo": {"S": "a"}, ":hi": {"S": "z"}}}),
        ("query", q | {"IndexName": "gsi3", "KeyConditionExpression": "gsi3pk = :pk", "FilterExpression": "n > :n",
                       "ExpressionAttributeValues": {":pk": {"S": "TIES"}, ":n": {"N": "2"}}}),
        ("query", q | {"IndexName": "gsi2", "KeyConditionExpression": "gsi2pk = :pk", "Limit": 3,
                       "ProjectionExpression": "pk, online", "ExpressionAttributeValues": {":pk": {"S": "V#jointech#1"}}}),
        ("query", q | {"IndexName": "gsi2", "KeyConditionExpression": "gsi2pk = :pk", "FilterExpression": "sk = :s",
                       "ExpressionAttributeValues": {":pk": {"S": "V#jointech#2"}, ":s": {"S": "S"}}}),
        ("query", q | {"IndexName": "gsi3", "KeyConditionExpression": "gsi3pk = :pk", "ProjectionExpression": "n, pk",
                       "Limit": 2, "ExpressionAttributeValues": {":pk": {"S": "TIES"}}}),
        ("query", q | {"IndexName": "gsi3", "KeyConditionExpression": "gsi3pk = :pk", "ProjectionExpression": "big",
                       "ExpressionAttributeValues": {":pk": {"S": "BIG"}}}),
        # Writes between reads: a device moved to another shard of the list and back, one added and removed.
        ("update_item", {"TableName": table, "Key": {"pk": {"S": f"D#jointech#{quiet[3]}"}, "sk": {"S": "S"}},
                         "UpdateExpression": "SET gsi2pk = :p", "ExpressionAttributeValues": {":p": {"S": "V#jointech#9"}}}),
        ("query", q | {"IndexName": "gsi2", "KeyConditionExpression": "gsi2pk = :pk",
                       "ExpressionAttributeValues": {":pk": {"S": "V#jointech#9"}}}),
        ("put_item", {"TableName": table, "Item": {"pk": {"S": "D#jointech#new"}, "sk": {"S": "S"},
                                                   "gsi2pk": {"S": "V#jointech#9"}, "gsi2sk": {"S": "new"}}}),
        ("query", q | {"IndexName": "gsi2", "KeyConditionExpression": "gsi2pk = :pk",
                       "ExpressionAttributeValues": {":pk": {"S": "V#jointech#9"}}}),
        ("delete_item", {"TableName": table, "Key": {"pk": {"S": "D#jointech#new"}, "sk": {"S": "S"}}}),
        ("update_item", {"TableName": table, "Key": {"pk": {"S": f"D#jointech#{quiet[3]}"}, "sk": {"S": "S"}},
                         "UpdateExpression": "SET gsi2pk = :p", "ExpressionAttributeValues": {":p": home}}),
        ("query", q | {"IndexName": "gsi2", "KeyConditionExpression": "gsi2pk = :pk",
                       "ExpressionAttributeValues": {":pk": {"S": "V#jointech#9"}}}),
        ("query", q | {"IndexName": "nope", "KeyConditionExpression": "gsi3pk = :pk",
                       "ExpressionAttributeValues": {":pk": {"S": "TIES"}}}),
        # Device states in one batch (some never heard from), whole and projected; one GetItem.
        ("batch_get_item", {"RequestItems": {table: {"Keys": [
            {"pk": {"S": f"D#jointech#{d}"}, "sk": {"S": "S"}} for d in [*quiet, "absent"]]}}}),
        ("batch_get_item", {"RequestItems": {table: {"Keys": [
            {"pk": {"S": f"D#jointech#{d}"}, "sk": {"S": "S"}} for d in quiet[:5]],
            "ProjectionExpression": "deviceId, online"}}}),
        ("batch_get_item", {"RequestItems": {table: {"Keys": [{"pk": {"S": "T#odd"}, "sk": {"S": "1"}}]}}}),
        ("get_item", {"TableName": table, "Key": {"pk": {"S": "T#odd"}, "sk": {"S": "0"}}}),
        ("get_item", {"TableName": table, "Key": {"pk": {"S": f"D#jointech#{quiet[0]}"}, "sk": {"S": "S"}},
                      "ProjectionExpression": "heardAt"}),
        ("get_item", {"TableName": table, "Key": {"pk": {"S": "absent"}, "sk": {"S": "S"}}}),
    ]


def _answers(ddb: Any, requests: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Each request's answers, a Query's page after page (following LastEvaluatedKey)."""
    answers: list[Any] = []
    for operation, params in requests:
        pages = []
        while True:
            try:
                answer = getattr(ddb, operation)(**params)
            except ClientError as exc:
                pages.append(("error", exc.response["Error"]))
                break
            answer.pop("ResponseMetadata")
            pages.append(answer)
            if operation != "query" or "LastEvaluatedKey" not in answer:
                break
            params = params | {"ExclusiveStartKey": answer["LastEvaluatedKey"]}
        answers.append(pages)
    return answers


@pytest.fixture
def table_with_items(aws_env, moto_patches_undone):
    from moto import mock_aws

    moto_reads.uninstall()  # moto's own answers first, whatever an earlier test left installed
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        table = create_resources(Resolver(load_template(ROOT / "template.yaml")), session, token="t"
                                 ).tables["EventsTable"]
        ddb = session.client("dynamodb")
        quiet = seed_fleet(ddb, table, "jointech", 30, 1)
        [busy] = seed_fleet(ddb, table, "mettax", 1, 300, same_time=3)
        odd = {"pk": {"S": "T#odd"}, "b": {"B": b"\x00\xffraw"}, "bs": {"BS": [b"\x01", b"\x02"]},
               "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2.5"]}, "null": {"NULL": True}, "bool": {"BOOL": False},
               "m": {"M": {"deep": {"L": [{"N": "1"}, {"B": b"\x03"}, {"M": {"s": {"S": "é"}}}]}}}}
        for n in range(2):
            ddb.put_item(TableName=table, Item=odd | {"sk": {"S": str(n)}})
        for n in range(25):  # 2.5 MB: three pages (moto counts 1 MB of whole items) whatever a projection keeps
            ddb.put_item(TableName=table, Item={"pk": {"S": "T#big"}, "sk": {"S": f"{n:02d}"}, "small": {"N": str(n)},
                                                "big": {"S": "x" * 100_000}, "gsi3pk": {"S": "BIG"},
                                                "gsi3sk": {"S": f"{n % 3}"}})
        for n, pk in enumerate(["T#c", "T#a", "T#b", "T#a2"]):  # one gsi3 sort key for several items
            ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "x"}, "gsi3pk": {"S": "TIES"},
                                                "gsi3sk": {"S": "same" if n < 3 else "other"}, "n": {"N": str(n)}})
        home = ddb.get_item(TableName=table, Key={"pk": {"S": f"D#jointech#{quiet[3]}"}, "sk": {"S": "S"}}
                            )["Item"]["gsi2pk"]
        yield ddb, _requests(table, busy, quiet, home)


def test_the_patched_reads_answer_as_moto_does(table_with_items):
    ddb, requests = table_with_items
    # Given moto's own answers to the console's kinds of request (and a few more)
    unpatched = _answers(ddb, requests)
    # When the same requests are made to the moto the local stack runs
    moto_reads.install()
    patched = _answers(ddb, requests)
    # Then every answer is the same, page for page
    for (operation, params), before, after in zip(requests, unpatched, patched, strict=True):
        assert after == before, (operation, params)
    # (and the requests did reach pages, filters, binary values, ties and errors)
    flat = [page for pages in unpatched for page in pages]
    assert sum(1 for p in flat if isinstance(p, dict) and "LastEvaluatedKey" in p) > 20
    assert [len(p["Items"]) for p in unpatched[requests.index(next(r for r in requests if r[1].get(
        "ProjectionExpression") == "small"))]] == [9, 9, 7]
    assert any(p == ("error", p[1]) for p in flat if isinstance(p, tuple))
    assert any(isinstance(p, dict) and p.get("Items") and "b" in p["Items"][0] for p in flat)


def test_a_query_walks_its_partition_and_its_answer_skips_the_shape_walk(table_with_items, monkeypatch):
    from moto.core.serialize import JSONSerializer
    from moto.dynamodb.models.table import Table

    ddb, requests = table_with_items
    timeline = requests[0]
    track = next(r for r in requests if r[1].get("ProjectionExpression", "").startswith("#f0"))
    device_list = next(r for r in requests if r[1].get("IndexName") == "gsi2")
    moto_reads.install()
    walked: list[list[Any]] = []
    serialized: list[str] = []
    all_items, serialize = Table.all_items, JSONSerializer.serialize
    monkeypatch.setattr(Table, "all_items", lambda self: walked.append(found := all_items(self)) or found)
    monkeypatch.setattr(JSONSerializer, "serialize",
                        lambda self, result: serialized.append(self.operation_model.name) or serialize(self, result))
    # When a device's timeline (300 events of the table's 371 items) and a shard of the device list are read
    ddb.query(**timeline[1])
    ddb.query(**device_list[1])
    ddb.query(**track[1])
    # Then moto's Query went over those 300 events, and over the shard's devices only, as the
    # KEYS_ONLY index holds them (their keys: not the state moto would copy and convert)
    assert len(walked[0]) == 300
    assert 0 < len(walked[1]) < 30
    assert {name for entry in walked[1] for name in entry.attrs} == {"pk", "sk", "gsi2pk", "gsi2sk"}
    # and over a track's projected fields (with the keys), not the events' payloads
    assert {name for entry in walked[2] for name in entry.attrs} == {"pk", "sk", "occurredAt", "eventId", "kind",
                                                                     "facts"}
    # and neither answer went through moto's serializer (a table description still does)
    assert serialized == []
    ddb.describe_table(TableName=timeline[1]["TableName"])
    assert serialized == ["DescribeTable"]


def test_a_put_item_handled_past_call_action_ends_what_the_index_kept(table_with_items):
    from moto.dynamodb.responses import DynamoHandler

    ddb, requests = table_with_items
    moto_reads.install()
    table = requests[0][1]["TableName"]
    shard = {"TableName": table, "IndexName": "gsi2", "KeyConditionExpression": "gsi2pk = :pk",
             "ExpressionAttributeValues": {":pk": {"S": "V#jointech#0"}}}
    before = ddb.query(**shard)["Count"]
    # When a device item is put as moto_fastpaths' PutItem puts it: moto's handler, called directly
    handler = DynamoHandler()
    handler.body = {"TableName": table, "Item": {"pk": {"S": "D#jointech#fast"}, "sk": {"S": "S"},
                                                 "gsi2pk": {"S": "V#jointech#0"}, "gsi2sk": {"S": "fast"}}}
    handler.region, handler.current_account = "us-east-1", "123456789012"
    handler.put_item()
    # Then the shard's next Query lists it
    assert ddb.query(**shard)["Count"] == before + 1
