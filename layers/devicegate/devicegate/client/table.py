"""The access patterns of docs/consuming.md as methods, over store.queries (the one copy of the
calls): `DeviceGate` returns the typed models of client.models; its `plain` attribute
(`TableReads`) returns the same pages as the plain values the table holds, times as stored
(what the `devicegate` CLI prints, byte for byte).

Every list is a Page: its items and whether the list holds more than `limit` (each list is read
one item past its limit to know, so nothing is ever cut without saying so); `limit=None` reads
the whole list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from pydantic import BaseModel

from devicegate.client.models import (
    AlarmLifecycle,
    Assembly,
    CloudEvent,
    DeviceRow,
    DeviceState,
    Event,
    Page,
    QuarantinedPayload,
)
from devicegate.infra.settings import DEFAULT_SHARDS
from devicegate.store import quarantine, queries

M = TypeVar("M", bound=BaseModel)
Rows = Page[dict[str, Any]]


def _page(read: Callable[[int | None], list[dict[str, Any]]], limit: int | None) -> Rows:
    """`read(n)` lists at most n items (None: all); one more than `limit` says whether there are more."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be 1 or more (None for the whole list), not {limit!r}")
    items = read(None if limit is None else limit + 1)
    if limit is not None and len(items) > limit:
        return Rows(items=items[:limit], more=True)
    return Rows(items=items, more=False)


def _without_index_keys(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("gsi")}


class TableReads:
    """The access patterns as pages of plain values (numbers as int/float, times as the stored
    text). What the CLI prints; apps want DeviceGate's typed models."""

    def __init__(self, table: str, dynamodb: Any = None, shards: int = DEFAULT_SHARDS, streams: Any = None) -> None:
        self.table = table
        self.shards = shards
        self._ddb = dynamodb
        self._streams = streams

    @property
    def dynamodb(self) -> Any:
        # Created on first use (a reader that reads nothing never builds one), with botocore
        # alone: the gateway's layer, which an app's Lambda may use, ships botocore, not boto3.
        if self._ddb is None:
            from botocore.session import get_session

            self._ddb = get_session().create_client("dynamodb")
        return self._ddb

    def timeline(self, vendor: str, device_id: str, *, kind: str | None = None, since: str | None = None,
                 until: str | None = None, limit: int | None = 50, fields: Iterable[str] | None = None) -> Rows:
        """`fields`: only these envelope fields of each event (e.g. a map's occurredAt, eventId,
        kind, facts), read with a projection."""
        return _page(lambda n: queries.device_events(self.dynamodb, self.table, vendor, device_id, kind=kind,
                                                     since=since, until=until, limit=n, fields=fields), limit)

    def fleet(self, *, vendors: Iterable[str] | None = None, kind: str | None = None, since: str | None = None,
              until: str | None = None, limit: int | None = 50) -> Rows:
        return _page(lambda n: queries.fleet_events(self.dynamodb, self.table, _vendors(vendors), kind=kind,
                                                    since=since, until=until, limit=n, shards=self.shards), limit)

    def tail(self, *, vendor: str | None = None, kind: str | None = None,
             stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
        from devicegate.store.stream_tail import stream_arn, tail_events

        return tail_events(self.streams, stream_arn(self.dynamodb, self.table), vendor=vendor, kind=kind, stop=stop)

    @property
    def streams(self) -> Any:
        # The stream's API has endpoints of its own (streams.dynamodb.{region}.amazonaws.com); an
        # endpoint that is not AWS's (the local stack) serves both.
        if self._streams is None:
            from botocore.session import get_session

            endpoint = self.dynamodb.meta.endpoint_url
            own = None if endpoint.rstrip("/").endswith(".amazonaws.com") else endpoint
            self._streams = get_session().create_client("dynamodbstreams", region_name=self.dynamodb.meta.region_name,
                                                        endpoint_url=own)
        return self._streams

    def event(self, vendor: str, device_id: str, event_id: str, occurred_at: str | None = None
              ) -> dict[str, Any] | None:
        return queries.event_by_id(self.dynamodb, self.table, vendor, device_id, event_id, occurred_at)

    def state(self, vendor: str, device_id: str) -> dict[str, Any] | None:
        return queries.device_state(self.dynamodb, self.table, vendor, device_id)

    def states(self, vendor: str, device_ids: list[str]) -> dict[str, dict[str, Any]]:
        found = queries.device_states(self.dynamodb, self.table, [(vendor, d) for d in device_ids])
        return {device_id: state for (_, device_id), state in found.items()}

    def devices(self, vendor: str, *, limit: int | None = None) -> Rows:
        return _page(lambda n: queries.vendor_devices(self.dynamodb, self.table, vendor, limit=n,
                                                      shards=self.shards), limit)

    def devices_with_state(self, vendor: str, *, limit: int | None = None) -> Rows:
        """devices(), each row the device's whole state as state() gives it, from the same reads."""
        return _page(lambda n: queries.vendor_devices(self.dynamodb, self.table, vendor, limit=n,
                                                      shards=self.shards, whole=True), limit)

    def offline(self, vendor: str | None = None, *, limit: int | None = None) -> Rows:
        return _page(lambda n: queries.offline_devices(self.dynamodb, self.table, vendor, limit=n,
                                                       shards=self.shards), limit)

    def alarms(self, *, since: str | None = None, until: str | None = None, vendor: str | None = None,
               limit: int | None = 100) -> Rows:
        return _page(lambda n: queries.fleet_alarms(self.dynamodb, self.table, since=since, until=until, limit=n,
                                                    vendor=vendor, shards=self.shards), limit)

    def alarms_in_status(self, vendor: str, status: str = "open", *, limit: int | None = 100) -> Rows:
        return _page(lambda n: queries.alarms_in_status(self.dynamodb, self.table, vendor, status, limit=n,
                                                        shards=self.shards), limit)

    def device_alarms(self, vendor: str, device_id: str) -> Rows:
        # One device's alarms are one partition: always read whole.
        return Rows(items=queries.device_alarms(self.dynamodb, self.table, vendor, device_id), more=False)

    def linked(self, vendor: str, link: str, *, limit: int | None = 100) -> Rows:
        return _page(lambda n: queries.linked_events(self.dynamodb, self.table, vendor, link, limit=n), limit)

    def assemblies(self, vendor: str, device_id: str, *, kind: str | None = None, limit: int | None = 100) -> Rows:
        return _page(lambda n: queries.device_assemblies(self.dynamodb, self.table, vendor, device_id, kind,
                                                         limit=n), limit)

    def quarantined(self, vendor: str, *, since: str | None = None, until: str | None = None,
                    limit: int | None = 100) -> Rows:
        page = _page(lambda n: quarantine.quarantined(self.dynamodb, self.table, vendor, limit=n, since=since,
                                                      until=until, shards=self.shards), limit)
        return Rows(items=[_without_index_keys(i) for i in page.items], more=page.more)

    def quarantined_payload(self, vendor: str, item_id: str) -> dict[str, Any] | None:
        """One quarantined payload by its id, replayed or not (its keys, no index keys)."""
        item = quarantine.read(self.dynamodb, self.table, vendor, item_id)
        return _without_index_keys(item) if item is not None else None


def _vendors(vendors: Iterable[str] | None) -> list[str]:
    if vendors is None:
        from devicegate.vendors import vendor_names

        return vendor_names()
    return list(vendors)


def _typed(model: type[M], page: Rows) -> Page[M]:
    return Page[model](items=[model.model_validate(i) for i in page.items], more=page.more)  # type: ignore[valid-type]


class DeviceGate:
    """An app's reader of one devicegate deployment: its table (the stack's output
    EventsTableName) and its Shards (output Shards, default 8). Needs the policy of the stack's
    output AppReadPolicyArn, nothing more.

        gate = DeviceGate("devicegate-EventsTable-1A2B3C")      # or DeviceGate.from_stack("devicegate")
        state = gate.state("jointech", "8022300001")
        page = gate.timeline("jointech", "8022300001", kind="location", limit=10)
        for event in page.items: ...
        if page.more: ...                                        # older events than these exist

    Times taken as arguments (`since`, `until`, `occurred_at`) are UTC ISO 8601 text as the table
    writes them (`2025-02-07T08:00:00.000Z`; a prefix such as `2025-02-07` works as a bound).
    """

    def __init__(self, table: str, dynamodb: Any = None, *, shards: int = DEFAULT_SHARDS, streams: Any = None) -> None:
        self.plain = TableReads(table, dynamodb, shards, streams)

    @classmethod
    def from_stack(cls, stack_name: str, *, region: str | None = None, profile: str | None = None) -> DeviceGate:
        """The reader of a deployed stack, from its outputs (EventsTableName, Shards): one
        DescribeStacks call, which AppReadPolicy does not grant; where the app may not make it,
        pass the outputs to DeviceGate(...) itself."""
        from botocore.session import Session

        session = Session(profile=profile)
        stack = session.create_client("cloudformation", region_name=region).describe_stacks(
            StackName=stack_name)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return cls(outputs["EventsTableName"], session.create_client("dynamodb", region_name=region),
                   shards=int(outputs.get("Shards", DEFAULT_SHARDS)))

    @property
    def table(self) -> str:
        return self.plain.table

    def timeline(self, vendor: str, device_id: str, *, kind: str | None = None, since: str | None = None,
                 until: str | None = None, limit: int | None = 50) -> Page[Event]:
        """A device's events in [since, until), newest first; of one kind only with `kind`."""
        return _typed(Event, self.plain.timeline(vendor, device_id, kind=kind, since=since, until=until, limit=limit))

    def fleet(self, *, vendors: Iterable[str] | None = None, kind: str | None = None, since: str | None = None,
              until: str | None = None, limit: int | None = 50) -> Page[Event]:
        """The fleet's events in [since, until), newest first, of every vendor (or `vendors`), of
        one kind with `kind`: the device timelines merged (one Query per device: docs/consuming.md,
        "The fleet's events", says what a page costs)."""
        return _typed(Event, self.plain.fleet(vendors=vendors, kind=kind, since=since, until=until, limit=limit))

    def tail(self, *, vendor: str | None = None, kind: str | None = None,
             stop: Callable[[], bool] = lambda: False) -> Iterator[Event]:
        """The events stored from now on, as they are stored (the table's stream, oldest first),
        until `stop()` says so. An operator's tool, not an app's: it needs the stream's read
        actions, which AppReadPolicy does not grant (the stream serves two readers at a time, the
        outbox being one; apps have the queue)."""
        for found in self.plain.tail(vendor=vendor, kind=kind, stop=stop):
            yield Event.model_validate(found)

    def event(self, vendor: str, device_id: str, event_id: str, *, occurred_at: str | None = None) -> Event | None:
        """One event by its id. With its time (a queue message's `time`) one GetItem; without, a
        search of the device's timeline (fine for a person, not for a hot path)."""
        found = self.plain.event(vendor, device_id, event_id, occurred_at)
        return Event.model_validate(found) if found is not None else None

    def event_of(self, message: CloudEvent) -> Event:
        """A queue message's event whole: the message's own `data`, or, for a record too large for
        a message (a `dataref` to its table item), the item. A record too large for an item stays
        in S3 (its `dataRef`: s3://.../payloads/..., which AppReadPolicy lets an app read)."""
        if message.dataref and message.dataref.startswith("dynamodb://"):
            found = self.event(message.data.vendor, message.data.deviceId, message.id,
                               occurred_at=_stored_time(message))
            if found is None:
                raise LookupError(f"{message.source} {message.id}: no such event in {self.table}")
            return found
        return message.data

    def state(self, vendor: str, device_id: str) -> DeviceState | None:
        """A device's latest state (every group with the time it is from) and its liveness."""
        found = self.plain.state(vendor, device_id)
        return DeviceState.model_validate(found) if found is not None else None

    def states(self, vendor: str, device_ids: list[str]) -> dict[str, DeviceState]:
        """The latest state of many devices of a vendor by device id (100 per BatchGetItem, in
        parallel): a fleet view's positions and passages. A device never heard from is absent."""
        return {d: DeviceState.model_validate(s) for d, s in self.plain.states(vendor, device_ids).items()}

    def devices(self, vendor: str, *, limit: int | None = None) -> Page[DeviceRow]:
        """Every device of a vendor, with its last seen time and liveness (device id order per shard)."""
        return _typed(DeviceRow, self.plain.devices(vendor, limit=limit))

    def offline(self, vendor: str | None = None, *, limit: int | None = None) -> Page[DeviceRow]:
        """The devices offline now, of every vendor or of one."""
        return _typed(DeviceRow, self.plain.offline(vendor, limit=limit))

    def alarms(self, *, since: str | None = None, until: str | None = None, vendor: str | None = None,
               limit: int | None = 100) -> Page[Event]:
        """Alarm events of the whole fleet (or of one vendor's devices) in [since, until), newest first."""
        return _typed(Event, self.plain.alarms(since=since, until=until, vendor=vendor, limit=limit))

    def alarms_in_status(self, vendor: str, status: str = "open", *, limit: int | None = 100
                         ) -> Page[AlarmLifecycle]:
        """A vendor's alarm lifecycles now in `status` (open, releasing, release_failed, released), newest first."""
        return _typed(AlarmLifecycle, self.plain.alarms_in_status(vendor, status, limit=limit))

    def device_alarms(self, vendor: str, device_id: str) -> Page[AlarmLifecycle]:
        """Every alarm lifecycle of one device, the latest status change first."""
        return _typed(AlarmLifecycle, self.plain.device_alarms(vendor, device_id))

    def linked(self, vendor: str, link: str, *, limit: int | None = 100) -> Page[Event]:
        """Records the vendor ties together, oldest first (Mettax: a record id, `alarm:{alarmId}`
        an alarm's files, `capture:{captureId}` a capture's file)."""
        return _typed(Event, self.plain.linked(vendor, link, limit=limit))

    def assemblies(self, vendor: str, device_id: str, *, kind: str | None = None, limit: int | None = 100
                   ) -> Page[Assembly]:
        """A device's records sent in parts (Mettax face checks) with the parts come so far, newest first."""
        return _typed(Assembly, self.plain.assemblies(vendor, device_id, kind=kind, limit=limit))

    def quarantined(self, vendor: str, *, since: str | None = None, until: str | None = None,
                    limit: int | None = 100) -> Page[QuarantinedPayload]:
        """A vendor's payloads waiting in quarantine (first received in [since, until)), newest first."""
        return _typed(QuarantinedPayload, self.plain.quarantined(vendor, since=since, until=until, limit=limit))

    def quarantined_payload(self, vendor: str, item_id: str) -> QuarantinedPayload | None:
        """One quarantined payload by its id (a listing's `id`), replayed or not."""
        found = self.plain.quarantined_payload(vendor, item_id)
        return QuarantinedPayload.model_validate(dict(found, id=item_id)) if found is not None else None


def _stored_time(message: CloudEvent) -> str:
    """The event's time as its table key holds it (a claim check's `dataref` names the key)."""
    from urllib.parse import parse_qs

    sk = parse_qs((message.dataref or "").partition("?")[2]).get("sk", [""])[0]
    return sk.rpartition("#")[0]
