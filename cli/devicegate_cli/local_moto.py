"""Where moto's DynamoDB departs from DynamoDB in a way the local stack cannot live with, put
right in the moto running in this process (ThreadedMotoServer shares this process's backends).

A cancelled TransactWriteItems (a command refused because the device is unknown or over its rate
limit, a repeated clientToken, a device heard from while the sweep marked it offline) must leave
no trace, stream included. moto rolls back by putting a deep copy of each table, taken before the
transaction, in place of the table; the copy brings a copy of the stream shard. Two things follow:
every shard iterator handed out before (the stream poller's) keeps reading the old shard object,
which no write reaches any more, so the outbox stops for good; and the old shard keeps the
records of the writes that were rolled back, so the poller would deliver events that were never
stored. DynamoDB has one stream per table and writes nothing to it for a cancelled transaction.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

# Held around every transaction and every stream read: a reader must not see the records of a
# transaction's first writes before the transaction is known to stand.
_STREAM_LOCK = threading.RLock()
_PATCHED = "_devicegate_keeps_streams"


def keep_streams_through_cancelled_transactions() -> None:
    """Make a cancelled transaction leave each table's one stream shard as it was (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    if getattr(DynamoDBBackend.transact_write_items, _PATCHED, False):
        return
    original = DynamoDBBackend.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _STREAM_LOCK:
            shards = {name: (table.stream_shard, len(table.stream_shard.items))
                      for name, table in self.tables.items() if table.stream_shard is not None}
            try:
                return original(self, transact_items)
            finally:
                for name, (shard, length) in shards.items():
                    table = self.tables.get(name)
                    if table is not None and table.stream_shard is not shard:  # rolled back to the copy
                        del shard.items[length:]
                        shard.table = table
                        table.stream_shard = shard

    setattr(transact_write_items, _PATCHED, True)
    _replace(DynamoDBBackend, "transact_write_items", transact_write_items)
    for name in ("get_shard_iterator", "get_records"):
        _replace(DynamoDBStreamsBackend, name, _locked(getattr(DynamoDBStreamsBackend, name)))


def _replace(backend: type, name: str, method: Any) -> None:
    # Replaced on the class: the server's backends are this process's instances of it.
    setattr(backend, name, method)


def _locked(method: Any) -> Any:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _STREAM_LOCK:
            return method(*args, **kwargs)

    return locked
