"""Everything the console reads, in one place: the app-facing queries (store.queries and the
quarantine's list and item), over the clients of the target the command was given. The pages
never call DynamoDB or S3 themselves, so moving the console onto the typed client
(devicegate.client) is a change of this file alone. Its one write, an edited quarantined payload
replayed, goes through the replay the CLI uses (ingest.replay) and is audited on the item."""

from __future__ import annotations

import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from devicegate.store import quarantine, queries

#: Device states per BatchGetItem (DynamoDB's most).
BATCH = 100
#: The alarm lifecycle statuses the alarms page lists, in the order an alarm moves through them.
ALARM_STATUSES = ("open", "releasing", "release_failed", "released")


@dataclass
class Reads:
    """The console's data access over one target: its DynamoDB and S3 clients and its table."""

    ddb: Any
    s3: Any
    table: str
    #: How a replay builds the functions' event store over its clients (devicegate_cli.commands.
    #: store_over: the deployment's retention); None: the console replays nothing.
    store_over: Callable[[Any, Any], Any] | None = None

    def vendors(self) -> list[str]:
        from devicegate.vendors import vendor_names

        return vendor_names()

    def kinds(self, vendor: str) -> list[str]:
        from devicegate.store.liveness import GATEWAY_KINDS
        from devicegate.vendors import get_adapter

        return [*get_adapter(vendor).kinds, *sorted(GATEWAY_KINDS)]

    def devices(self, vendor: str) -> list[dict[str, Any]]:
        return queries.vendor_devices(self.ddb, self.table, vendor)

    def device_state(self, vendor: str, device_id: str) -> dict[str, Any] | None:
        return queries.device_state(self.ddb, self.table, vendor, device_id)

    def device_states(self, vendor: str, device_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each device's whole state (the fleet page's position and passage column), 100 devices
        per BatchGetItem: the store's own batch read, which vendor_devices also uses (its rows
        leave the groups out). The typed client will hand both over in one read."""
        pairs = [(vendor, d) for d in device_ids]
        chunks = [pairs[n:n + BATCH] for n in range(0, len(pairs), BATCH)]
        found: dict[str, dict[str, Any]] = {}
        # The batches in parallel, as the store reads a sharded list's shards.
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(chunks)))) as pool:
            for batch in pool.map(lambda chunk: queries._states(self.ddb, self.table, chunk), chunks):
                found.update({device_id: queries.state_view(item) for (_, device_id), item in batch.items()})
        return found

    def events(self, vendor: str, device_id: str, kind: str | None = None, since: str | None = None,
               until: str | None = None, limit: int | None = 50) -> list[dict[str, Any]]:
        return queries.device_events(self.ddb, self.table, vendor, device_id, kind=kind, since=since,
                                     until=until, limit=limit)

    def device_alarms(self, vendor: str, device_id: str) -> list[dict[str, Any]]:
        return queries.device_alarms(self.ddb, self.table, vendor, device_id)

    def alarms(self, vendor: str, status: str, limit: int | None = 100) -> list[dict[str, Any]]:
        return queries.alarms_in_status(self.ddb, self.table, vendor, status, limit=limit)

    def quarantined(self, vendor: str, limit: int | None = 100) -> list[dict[str, Any]]:
        return quarantine.quarantined(self.ddb, self.table, vendor, limit=limit)

    def quarantine_item(self, vendor: str, item_id: str) -> dict[str, Any] | None:
        item = quarantine.read(self.ddb, self.table, vendor, item_id)
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

    def replay_edited(self, item: dict[str, Any], body: bytes, edit: dict[str, Any]) -> Any:
        """`item`'s payload replaced by `body` through the live pipeline, the edit (`edit`: who,
        when, what changed) recorded on the item first, so it is audited whatever the replay does.
        The replay's outcome (ingest.replay.ReplayOutcome)."""
        from devicegate.ingest.replay import replay_edited

        if self.store_over is None:
            raise RuntimeError("this console was started without a way to replay")
        quarantine.record_edit(self.ddb, self.table, item, edit)
        return replay_edited(self.ddb, self.s3, self.table, self.store_over, item, body)
