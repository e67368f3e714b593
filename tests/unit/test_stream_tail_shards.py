"""StreamTail over the shard life DynamoDB has and moto (one shard for ever) has not: shards that
close and split, iterators that expire, records trimmed after 24 hours."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from devicegate.store import stream_tail
from devicegate.store.stream_tail import StreamTail


def _record(seq: int, device: str = "1", pk: str | None = None) -> dict[str, Any]:
    image = {"pk": {"S": pk or f"E#jointech#{device}"}, "sk": {"S": f"2025-01-01T00:00:0{seq % 10}.000Z#e{seq}"},
             "vendor": {"S": "jointech"}, "deviceId": {"S": device}, "kind": {"S": "location"},
             "eventId": {"S": f"e{seq}"}, "occurredAt": {"S": "2025-01-01T00:00:00.000Z"}, "data": {"S": "{}"}}
    return {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image,
                                                "SequenceNumber": str(seq), "ApproximateCreationDateTime": seq}}


class FakeStreams:
    """Shards as lists of records; an iterator is (shard, position)."""

    def __init__(self) -> None:
        self.shards: dict[str, dict[str, Any]] = {}
        self.iterators_asked: list[tuple[str, str, str | None]] = []
        self.fail_next: dict[str, str] = {}  # shard -> error code of its next GetRecords

    def add(self, shard_id: str, records: list[dict[str, Any]], closed: bool = False) -> None:
        self.shards[shard_id] = {"records": records, "closed": closed}

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> dict[str, Any]:  # noqa: N803
        ids = sorted(self.shards)
        if ExclusiveStartShardId:
            ids = [i for i in ids if i > ExclusiveStartShardId]
        page, rest = ids[:2], ids[2:]  # two per page: the reader follows LastEvaluatedShardId
        shards = [{"ShardId": i, "SequenceNumberRange": {"StartingSequenceNumber": "0", **(
            {"EndingSequenceNumber": "9"} if self.shards[i]["closed"] else {})}} for i in page]
        return {"StreamDescription": {"Shards": shards, **({"LastEvaluatedShardId": page[-1]} if rest else {})}}

    def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,  # noqa: N803
                           SequenceNumber: str | None = None) -> dict[str, str]:  # noqa: N803
        self.iterators_asked.append((ShardId, ShardIteratorType, SequenceNumber))
        records = self.shards[ShardId]["records"]
        if ShardIteratorType == "LATEST":
            position = len(records)
        elif ShardIteratorType == "TRIM_HORIZON":
            position = 0
        else:
            position = next(n + 1 for n, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == SequenceNumber)
        return {"ShardIterator": f"{ShardId}|{position}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        shard_id, position = ShardIterator.split("|")
        if shard_id in self.fail_next:
            code = self.fail_next.pop(shard_id)
            raise ClientError({"Error": {"Code": code, "Message": code}}, "GetRecords")
        shard = self.shards[shard_id]
        records = shard["records"][int(position):]
        end = len(shard["records"])
        following = None if shard["closed"] else f"{shard_id}|{end}"
        return {"Records": records, **({"NextShardIterator": following} if following else {})}


def _tail(streams: FakeStreams) -> StreamTail:
    return StreamTail(streams, "arn:aws:dynamodb:us-east-1:1:table/t/stream/x", sleep=lambda s: None)


def test_it_starts_at_the_end_of_each_open_shard_and_leaves_closed_ones_alone():
    # Given three shards over two pages of DescribeStream: one closed, two open with records
    streams = FakeStreams()
    streams.add("a", [_record(1)], closed=True)
    streams.add("b", [_record(2)])
    streams.add("c", [_record(3)])
    tail = _tail(streams)
    tail.start()
    # Then only the open ones are read, from their end: nothing stored before it started
    assert sorted((s, t) for s, t, _ in streams.iterators_asked) == [("b", "LATEST"), ("c", "LATEST")]
    assert tail.poll() == [] and tail.shards == 2
    # When records are stored in both, one of them not an event
    streams.shards["b"]["records"] += [_record(5, "2")]
    streams.shards["c"]["records"] += [_record(4, "3"), _record(6, pk="D#jointech#3")]
    # Then the events come, by creation time across shards
    assert [e["eventId"] for e in tail.poll()] == ["e4", "e5"]


def test_a_shard_born_while_it_runs_is_read_from_its_start_and_a_closed_one_is_let_go(monkeypatch):
    streams = FakeStreams()
    streams.add("a", [])
    tail = _tail(streams)
    tail.start()
    # Given the shard closing after one more record, and its child shard already holding two
    streams.shards["a"]["records"].append(_record(1))
    streams.shards["a"]["closed"] = True
    streams.add("b", [_record(2), _record(3)])
    monkeypatch.setattr(stream_tail, "SHARD_REFRESH_S", 0.0)
    tail._next_refresh = 0.0
    # When the tail polls on (it looks for new shards)
    got = []
    for event in tail.events(stop=lambda: len(got) >= 3):
        got.append(event)
    # Then it read the parent to its end and the child from its start: nothing lost, nothing twice
    assert [e["eventId"] for e in got] == ["e1", "e2", "e3"]
    assert ("b", "TRIM_HORIZON", None) in streams.iterators_asked
    assert tail.shards == 1 and tail.poll() == []


def test_an_expired_iterator_is_taken_again_after_the_last_record_read():
    streams = FakeStreams()
    streams.add("a", [])
    tail = _tail(streams)
    tail.start()
    streams.shards["a"]["records"].append(_record(1))
    assert [e["eventId"] for e in tail.poll()] == ["e1"]
    # Given the iterator expired (a laptop asleep for more than 15 minutes) while a record came
    streams.shards["a"]["records"].append(_record(2))
    streams.fail_next["a"] = "ExpiredIteratorException"
    assert tail.poll() == []
    # Then the next poll starts after the last record read, and misses nothing
    assert [e["eventId"] for e in tail.poll()] == ["e2"]
    assert streams.iterators_asked[-1] == ("a", "AFTER_SEQUENCE_NUMBER", "1")


def test_records_trimmed_away_restart_at_the_oldest_kept():
    streams = FakeStreams()
    streams.add("a", [_record(1)])
    tail = _tail(streams)
    tail.start()
    streams.fail_next["a"] = "TrimmedDataAccessException"
    assert tail.poll() == []
    assert streams.iterators_asked[-1] == ("a", "TRIM_HORIZON", None)


def test_another_failure_is_the_callers():
    import pytest

    streams = FakeStreams()
    streams.add("a", [])
    tail = _tail(streams)
    tail.start()
    streams.fail_next["a"] = "AccessDeniedException"
    with pytest.raises(ClientError):
        tail.poll()
