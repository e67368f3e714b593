"""Reads of the table page after page (infra.aws.query_items), and of a sharded list: the same
Query on every shard, in parallel, merged (store.keys: lists many devices write are split in
SHARDS partitions so that no key takes the whole fleet's writes)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devicegate.infra.aws import query_items
from devicegate.store.codec import from_item

MAX_TIME = "9999"  # sorts after every ISO timestamp


def query(ddb: Any, table: str, limit: int | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """One Query, following pagination only to reach `limit` items (1 MB pages)."""
    return [from_item(i) for i in query_items(ddb, limit, TableName=table, **kwargs)]


def query_shards(ddb: Any, table: str, partitions: Iterable[str], index: str, limit: int | None = None,
              newest_first: bool = False, condition: str = "", values: dict[str, Any] | None = None,
              shards: int | None = None, **extra: Any) -> list[dict[str, Any]]:
    """The same Query on every shard of a list (in parallel: one round trip however many
    shards), merged in sort-key order; at most `limit` items overall. `extra` goes to each Query
    (a FilterExpression...)."""
    pk_name, sk_name = f"{index}pk", f"{index}sk"
    parts = list(partitions)

    def one(partition: str) -> list[dict[str, Any]]:
        return query(ddb, table, limit, IndexName=index, ScanIndexForward=not newest_first,
                      KeyConditionExpression=f"{pk_name} = :pk" + (f" AND {condition}" if condition else ""),
                      ExpressionAttributeValues={":pk": {"S": partition}, **(values or {})}, **extra)

    with ThreadPoolExecutor(max_workers=min(16, len(parts))) as pool:
        results = list(pool.map(one, parts))
    merged = heapq.merge(*results, key=lambda i: i.get(sk_name, ""), reverse=newest_first)
    return list(merged)[:limit] if limit else list(merged)
