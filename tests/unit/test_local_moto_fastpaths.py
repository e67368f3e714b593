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

