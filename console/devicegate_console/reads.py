"""Everything the console reads, in one place: the typed client's plain reads
(devicegate.client.TableReads: the access patterns apps and the CLI read through, pages that say
when there is more) over the clients of the target the command was given, the S3 object of a
large quarantined payload, and the presigned URLs the browser loads an event's pictures with. The pages never call DynamoDB or S3 themselves. Its one write, an
edited quarantined payload replayed, goes through the replay the CLI uses (ingest.replay) and is
audited on the item."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from devicegate.client import Page, TableReads
from devicegate.store import quarantine

#: What a map's track reads of each event (shaping.track_points): not its vendor payload.
TRACK_FIELDS = ("occurredAt", "eventId", "kind", "facts")
#: How long a picture's presigned URL is valid (seconds): long enough for the page to load it,
#: short enough that a copied link soon stops working.
PHOTO_URL_SECONDS = 300
#: The alarm lifecycle statuses the alarms page lists, in the order an alarm moves through them.
ALARM_STATUSES = ("open", "releasing", "release_failed", "released")


def typed_commands() -> list[dict[str, str]]:
    """The typed Jointech commands the device page's form offers: name and what each asks."""
    from devicegate.vendors.jointech.commands import TYPED

    return [{"name": c.name, "description": c.description} for c in TYPED.values()]


def command_statuses() -> tuple[dict[str, str], tuple[str, ...]]:
    """The command lifecycle as apps read it (a stored status to its word: pending is "sent",
    succeeded "answered"), and the statuses still open (kept for the next contact, or sent)."""
    from devicegate.core.commands import LIFECYCLE, PENDING, QUEUED

    return dict(LIFECYCLE), (QUEUED, PENDING)


@dataclass
class Reads:
    """The console's data access over one target: its DynamoDB and S3 clients and its table."""

    ddb: Any
    s3: Any
    table: str
    #: How a replay builds the functions' event store over its clients (devicegate_cli.commands.
    #: store_over: the deployment's retention); None: the console replays nothing.
    store_over: Callable[[Any, Any], Any] | None = None
    #: The deployment's Shards (the sharded lists read every shard).
    shards: int | None = None
    #: The target's DynamoDB Streams client (the Live page's tail), made with the target's own
    #: credentials and endpoint; None: the typed client makes one from the default session.
    streams: Any = None
    #: The payload bucket (its media/ objects: the pictures a record carried); "": none shown.
    bucket: str = ""
    plain: TableReads = field(init=False)

    def __post_init__(self) -> None:
        self.plain = TableReads(self.table, self.ddb, streams=self.streams,
                                **({"shards": self.shards} if self.shards else {}))

    def vendors(self) -> list[str]:
        from devicegate.vendors import vendor_names

        return vendor_names()

    def kinds(self, vendor: str) -> list[str]:
        from devicegate.store.liveness import GATEWAY_KINDS
        from devicegate.vendors import get_adapter

        return [*get_adapter(vendor).kinds, *sorted(GATEWAY_KINDS)]

    def devices(self, vendor: str) -> list[dict[str, Any]]:
        """Every device of the vendor, each row its whole state (device_state's: the fleet page's
        position column from the same read as its list)."""
        return self.plain.devices_with_state(vendor, limit=None).items

    def device_state(self, vendor: str, device_id: str) -> dict[str, Any] | None:
        return self.plain.state(vendor, device_id)

    def device_states(self, vendor: str, device_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each device's whole state (the fleet page's position and passage column): the device
        rows leave the groups out."""
        return self.plain.states(vendor, device_ids)

    def events(self, vendor: str, device_id: str, kind: str | None = None, since: str | None = None,
               until: str | None = None, limit: int | None = 50) -> Page[dict[str, Any]]:
        return self.plain.timeline(vendor, device_id, kind=kind, since=since, until=until, limit=limit)

    def track_events(self, vendor: str, device_id: str, since: str | None, until: str | None,
                     limit: int) -> Page[dict[str, Any]]:
        """The events a map's track is drawn from, newest first, with TRACK_FIELDS only."""
        return self.plain.timeline(vendor, device_id, since=since, until=until, limit=limit, fields=TRACK_FIELDS)

    def tail(self, stop: Callable[[], bool]) -> Iterator[dict[str, Any]]:
        """The fleet's events as they are stored (the table's stream), until `stop()`: the Live
        page's one stream reader (live.Fanout shares it among the console's tabs)."""
        return self.plain.tail(stop=stop)

    def device_alarms(self, vendor: str, device_id: str) -> list[dict[str, Any]]:
        return self.plain.device_alarms(vendor, device_id).items

    def alarms(self, vendor: str, status: str, limit: int | None = 100) -> list[dict[str, Any]]:
        return self.plain.alarms_in_status(vendor, status, limit=limit).items

    def photo_url(self, key: str) -> str:
        """A GET of the payload bucket's object `key` signed with the operator's own credentials,
        valid PHOTO_URL_SECONDS: the browser loads the picture from S3 itself, and the console
        neither relays its bytes nor hands out anything that outlives the page."""
        return str(self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                  ExpiresIn=PHOTO_URL_SECONDS))

    def photo_origin(self) -> str | None:
        """The origin the presigned URLs point at (the local moto endpoint, or the bucket's S3 host
        in its region): what the Content Security Policy lets images come from. Signing is done
        here, without a request."""
        if not self.bucket:
            return None
        parts = urlsplit(self.photo_url("media/"))
        return f"{parts.scheme}://{parts.netloc}"

    def quarantined(self, vendor: str, limit: int | None = 100) -> Page[dict[str, Any]]:
        return self.plain.quarantined(vendor, limit=limit)

    def quarantine_item(self, vendor: str, item_id: str) -> dict[str, Any] | None:
        item = self.plain.quarantined_payload(vendor, item_id)
        if item is not None:
            item["id"] = item_id
        return item

    def quarantine_body(self, item: dict[str, Any]) -> bytes | None:
        """The payload as quarantine kept it (already scrubbed of what the personal-data policy
        drops): inline text, inline base64, or the S3 object a large one went to."""
        if "body" in item:
            return str(item["body"]).encode()
        if "bodyBase64" in item:
            return base64.b64decode(item["bodyBase64"])
        if not item.get("bodyRef"):
            return None
        bucket, _, key = str(item["bodyRef"]).removeprefix("s3://").partition("/")
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def try_edited(self, item: dict[str, Any], body: bytes) -> Any:
        """What replaying `body` in place of `item`'s payload would do: the same run with every
        write withheld (ingest.replay's dry run), nothing recorded."""
        from devicegate.ingest.replay import replay_edited

        if self.store_over is None:
            raise RuntimeError("this console was started without a way to replay")
        return replay_edited(self.ddb, self.s3, self.table, self.store_over, item, body, dry_run=True)

    def replay_matching(self, vendor: str, reason: str | None, dry_run: bool) -> list[Any]:
        """Every quarantined payload of `vendor` whose reason holds `reason` (any case; every one
        without it) through the live pipeline: ingest.replay.replay, which `devicegate replay
        --vendor V [--reason R] [--dry-run]` runs. One outcome per item (ReplayOutcome)."""
        from devicegate.ingest.replay import replay

        if self.store_over is None:
            raise RuntimeError("this console was started without a way to replay")
        return list(replay(self.ddb, self.s3, self.table, self.store_over, vendor, dry_run=dry_run, reason=reason))

    def replay_edited(self, item: dict[str, Any], body: bytes, edit: dict[str, Any]) -> Any:
        """`item`'s payload replaced by `body` through the live pipeline, the edit (`edit`: who,
        when, what changed) recorded on the item first, so it is audited whatever the replay does.
        The replay's outcome (ingest.replay.ReplayOutcome)."""
        from devicegate.ingest.replay import replay_edited

        if self.store_over is None:
            raise RuntimeError("this console was started without a way to replay")
        quarantine.record_edit(self.ddb, self.table, item, edit)
        return replay_edited(self.ddb, self.s3, self.table, self.store_over, item, body)
