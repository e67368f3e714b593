"""moto's DynamoDB reads as the console makes them (Query on the table or an index, BatchGetItem,
GetItem), without the costs that made a page of 1,000 devices take seconds in moto and
milliseconds in DynamoDB. Installed by the local stack where it starts moto
(moto.patch_as_the_local_stack, from MotoServer) and by bench/console.py; the answers are
moto's own, request for request (tests/unit/test_moto_reads.py compares them with unpatched
moto's).

1. A Query walks every item of the table: moto lists them all, sorts them all, then keeps the
   query's partition (or, on an index, the items whose index key matches). With 11,000 items
   that is tens of milliseconds per Query, and a sharded list is 8 Queries per vendor. Here moto's
   own Query runs over the partition's items only: a table's partition is one dict lookup; an
   index's comes from the table's items by that index's hash key, built in one pass and kept
   until the next write. moto then sorts, filters, pages and projects those items exactly as it
   would have, because they are every item its walk would have kept.
2. Where the answer can only hold some attributes (a KEYS_ONLY index; a ProjectionExpression of
   plain names, no filter), moto walks entries of those attributes that weigh what their whole
   items weigh (its pages end at 1 MB of whole items), instead of copying every whole item and
   converting it to plain JSON once per projected name.
3. moto's response serializer walks the operation's output shape for every attribute value of
   every item (most of a 1 MB Query page's time, and 4 s of a fleet's BatchGetItems). DynamoDB's
   protocol is JSON whose item values are already in wire form, so the answer is written with
   json.dumps; binary values base64 as moto's serializer writes them.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
from typing import Any

_INSTALLED = "_devicegate_moto_reads"
# The partition moto's next Table.all_items() call in this thread answers with (a Query in
# progress), as (table, items). Per thread: in process (mock_aws) calls run side by side.
_QUERYING = threading.local()
# DynamoDB actions that change no item; every other one counts as a write (_WRITES), which ends
# what _by_value kept.
_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables", "DescribeTimeToLive",
                    "DescribeContinuousBackups", "ListTagsOfResource", "DescribeEndpoints", "DescribeLimits"})
# moto's handlers of the item writes (counted themselves too: see install).
_WRITING = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")
_LOCK = threading.Lock()
_WRITES = [0]
_BY_VALUE: dict[tuple[int, str], tuple[Any, int, dict[Any, list[Any]]]] = {}


def install() -> None:
    """Patch moto's DynamoDB Query, BatchGetItem and GetItem (idempotent)."""
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    if getattr(Table.query, _INSTALLED, False):
        return
    _patch(Table, "all_items", _all_items(Table.all_items))
    _patch(Table, "query", _query(Table.query))
    for action in ("query", "batch_get_item", "get_item"):
        _patch(DynamoHandler, action, _answered_as_json(getattr(DynamoHandler, action)))
    _patch(DynamoHandler, "call_action", _counting_writes(DynamoHandler.call_action))
    # ...and the writing handlers themselves: moto_fastpaths calls put_item without call_action.
    for action in _WRITING:
        _patch(DynamoHandler, action, _counted(getattr(DynamoHandler, action)))


def uninstall() -> None:
    """moto's own Query, BatchGetItem and GetItem again (what the parity test compares with)."""
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    for owner, name in ((Table, "all_items"), (Table, "query"), (DynamoHandler, "query"),
                        (DynamoHandler, "batch_get_item"), (DynamoHandler, "get_item"),
                        (DynamoHandler, "call_action"), *((DynamoHandler, a) for a in _WRITING)):
        method = getattr(owner, name)
        if getattr(method, _INSTALLED, False):
            setattr(owner, name, method.__wrapped__)


def _patch(owner: type, name: str, method: Any) -> None:
    setattr(method, _INSTALLED, True)
    setattr(owner, name, method)


def _all_items(original: Any) -> Any:
    @functools.wraps(original)
    def all_items(self: Any) -> list[Any]:
        querying = getattr(_QUERYING, "partition", None)
        if querying is not None and querying[0] is self:
            return list(querying[1])
        return original(self)

    return all_items


def _query(original: Any) -> Any:
    import inspect

    signature = inspect.signature(original)

    @functools.wraps(original)
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        asked = signature.bind(self, *args, **kwargs).arguments
        index_name = asked.get("index_name")
        items = _partition(self, asked.get("hash_key"), index_name, asked.get("hash_key_conditions"))
        if items is None:  # a Query this does not narrow (no hash key given): moto's own walk
            return original(self, *args, **kwargs)
        names = _answered_names(self, index_name, asked)
        if names is not None:
            entry = _entry_class()
            items = [entry(item, names) for item in items]
        _QUERYING.partition = (self, items)
        try:
            return original(self, *args, **kwargs)
        finally:
            _QUERYING.partition = None

    return query


def _partition(table: Any, hash_key: Any, index_name: str | None, conditions: Any) -> list[Any] | None:
    """Every item moto's Query would keep of its walk over all_items(); a superset is as good
    (moto checks each item again), a subset would change the answer."""
    if index_name is None:
        if hash_key is None or not table.range_key_attr:
            return None
        found = list(table.items.get(hash_key, {}).values())
    else:
        if not conditions:
            return None
        # moto keeps an item when every hash condition holds: the first one alone is a superset.
        name, value = conditions[0]
        found = list(_by_value(table, name).get(value, ()))
    # In any order: moto sorts what it kept by the query's keys, the table's keys breaking ties.
    return found


def _by_value(table: Any, name: str) -> dict[Any, list[Any]]:
    """The table's items by their value of `name` (an index's hash key), built in one pass and
    kept until the next write: a fleet page's 80 Queries (8 shards of 2 lists of 5 vendors) then
    walk the table once, not 80 times. Keys are moto's DynamoType, whose hash and equality are
    its own comparison (a number by its value, not its text)."""
    with _LOCK:
        kept = _BY_VALUE.get((id(table), name))
        if kept is not None and kept[0] is table and kept[1] == _WRITES[0]:
            return kept[2]
        seen = _WRITES[0]
    found: dict[Any, list[Any]] = {}
    for partition in table.items.values():
        for item in (partition.values() if table.range_key_attr else (partition,)):
            held = item.attrs.get(name)
            if held is not None:
                found.setdefault(held, []).append(item)
    with _LOCK:
        # A write that ended while this was built has counted: what it built is not kept past it.
        _BY_VALUE[(id(table), name)] = (table, seen, found)
    return found


def _counting_writes(original: Any) -> Any:
    @functools.wraps(original)
    def call_action(self: Any) -> Any:
        action = self._get_action()
        try:
            return original(self)
        finally:
            if action not in _READS:  # any other action may have changed items (the safe side)
                with _LOCK:
                    _WRITES[0] += 1

    return call_action


def _counted(original: Any) -> Any:
    @functools.wraps(original)
    def write(self: Any) -> Any:
        try:
            return original(self)
        finally:
            with _LOCK:
                _WRITES[0] += 1

    return write


def _answered_names(table: Any, index_name: str | None, asked: dict[str, Any]) -> set[str] | None:
    """The attributes a Query's answer can hold, when that is known before moto reads the items:
    a KEYS_ONLY index's keys, or the names of a ProjectionExpression of plain top-level names with
    no filter (a filter may read any attribute). None: the whole items."""
    if asked.get("filter_kwargs"):  # QueryFilter: moto checks it on the whole item
        return None
    keys = {table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])}
    if index_name is not None:
        index = table.get_index(index_name)
        keys |= {k["AttributeName"] for k in index.schema}
        projection = (index.projection or {}).get("ProjectionType")
        if projection == "KEYS_ONLY":
            return keys
        if projection not in (None, "ALL"):
            return None
    from moto.dynamodb.comparisons import OpDefault

    paths = asked.get("projection_expressions")
    if not paths or type(asked.get("filter_expression")) not in (type(None), OpDefault):  # OpDefault: no filter
        return None
    if any(len(path) != 1 or not _plain_name(path[0]) for path in paths):
        return None
    return keys | {path[0] for path in paths}


def _plain_name(name: str) -> bool:
    return "[" not in name and "." not in name


@functools.cache
def _entry_class() -> type:
    from botocore.utils import merge_dicts
    from moto.dynamodb.models.dynamo_type import Item, LimitedSizeDict, serializer
    from moto.dynamodb.models.utilities import find_nested_key

    class Entry(Item):
        """An item as a Query's answer can show it (its keys, the projected names), weighing
        what the whole item weighs: moto pages at 1 MB of whole items, as DynamoDB counts what it
        read. moto would copy every whole item, then convert each to plain JSON once per
        projected name (4 times per device for the KEYS_ONLY device list)."""

        def __init__(self, item: Any, names: set[str]) -> None:  # not Item's: the item was checked when written
            self.hash_key, self.range_key, self._whole = item.hash_key, item.range_key, item
            self._size: int | None = None
            # moto's own way past LimitedSizeDict's size check on every insert (Item.__deepcopy__)
            self.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
            dict.update(self.attrs, {name: value for name, value in item.attrs.items() if name in names})

        def size(self) -> int:
            # Asked twice per item a Query keeps; the item cannot change while moto answers.
            if self._size is None:
                self._size = int(self._whole.size())
            return self._size

        def project(self, projection_expressions: list[list[str]]) -> Any:
            # Item.project, converting the entry to plain JSON once rather than once per name
            # (the conversion is a pure function of the attributes); paths that name the same
            # attribute twice or go deeper are left to moto (merging them changes what it merges).
            names = [path[0] for path in projection_expressions if len(path) == 1 and _plain_name(path[0])]
            if len(names) != len(projection_expressions) or len(set(names)) != len(names):
                return super().project(projection_expressions)
            plain = self.to_regular_json()
            found: dict[str, Any] = {}
            for name in names:
                merge_dicts(found, find_nested_key([name], plain))
            return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=serializer.serialize(found)["M"])

        def __deepcopy__(self, memo: dict[int, Any]) -> Any:
            copied: Any = super().__deepcopy__(memo)
            copied._whole, copied._size = self._whole, self._size
            return copied

    return Entry


def _json_result() -> type:
    from moto.core.responses import ActionResult

    class Json(ActionResult):
        """An answer written as DynamoDB writes it, JSON, without moto's walk of the output shape."""

        def execute_result(self, context: Any) -> tuple[int, dict[str, str], str]:
            from moto import settings

            serializer = context.serializer_class(operation_model=context.operation_model,
                                                  pretty_print=settings.PRETTIFY_RESPONSES)
            answer = serializer._create_default_response()
            body = json.dumps(self.result, default=_blob, indent=4 if settings.PRETTIFY_RESPONSES else None)
            return answer["status_code"], {"Content-Type": serializer._get_protocol_specific_content_type()}, body

    return Json


def _blob(value: Any) -> str:
    # moto's item conversion leaves B and BS values as bytes for its serializer to base64.
    if isinstance(value, bytes):
        return base64.b64encode(value).strip().decode("utf-8")
    raise TypeError(f"{type(value).__name__} is not part of a DynamoDB answer")


def _answered_as_json(original: Any) -> Any:
    from moto.dynamodb.responses import DynamoResult

    json_result = _json_result()

    @functools.wraps(original)
    def answered(self: Any) -> Any:
        result = original(self)
        # DynamoResult holds plain values already (its items converted); anything else is moto's.
        return json_result(result.result) if type(result) is DynamoResult else result

    return answered
