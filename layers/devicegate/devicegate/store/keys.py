"""Every DynamoDB key the gateway writes, in one place (docs/consuming.md, "The table").

Device ids are percent-encoded inside keys: a device named `a#K#alarm` or `x/y` must never land in
another device's partition, and quoting is injective, so two ids never share a key.

Partition-key prefixes double as the IAM boundary (dynamodb:LeadingKeys): each kind of item that
a different function owns has its own prefix, so a grant can name exactly the items a function
writes. E# events and EID# their id markers, Q# quarantine, P# parts (ingest functions); D# device
state (outbox, sweep; a SenseLink bridge's own item: its heartbeats);
A# alarm lifecycles (outbox); SF# state writes the outbox gave up on (outbox); C# command status
items (commands function, outbox, sweep); CX# command texts and idempotency tokens (commands
function only: a text may hold a lock's password); CFG# device configuration (apps write it,
ingest and sweep read it).
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from devicegate.infra.settings import get_deployment

#: A device's configuration item (pk CFG#{vendor}#{device}), written by apps, read by the gateway.
CONFIG_SK = "CONFIG"
#: The one state item of a device (pk D#{vendor}#{device}): every state group, liveness, index keys.
STATE_SK = "S"
#: gsi3 (app-facing, ALL, every use sparse): alarm events by time, devices offline now.
ALARM_PREFIX = "ALARM"
OFFLINE_PREFIX = "OFFLINE"
#: gsi5 (KEYS_ONLY, the sweep's work lists): devices by the bucket in which they become overdue,
#: records sent in parts still waiting, commands still waiting for an answer.
DUE_PREFIX = "DUE"
PARTS_PREFIX = "PARTS"
COMMANDS_PENDING_PREFIX = "CMDPENDING"
#: A waiting command (`whenOnline`) kept for the device's next contact, by its `waitUntil` (the
#: sweep expires it), and one of its attempts sent, by its `timeoutAt` (the sweep queues it again
#: for the next contact, or fails it after the last attempt).
COMMANDS_WAITING_PREFIX = "CMDWAIT"
COMMANDS_SENT_PREFIX = "CMDSENT"


def shard_count() -> int:
    """The deployment's Shards (SHARDS, as infra.settings parsed it; the default when unset)."""
    return get_deployment().shards


def shard(vendor: str, device_id: str, shards: int | None = None) -> int:
    """The write shard of a device: stable (a hash of vendor and id, never Python's salted
    hash()), so every item of one device lands in the same shard of each fleet-wide list."""
    digest = hashlib.sha256(f"{vendor}\n{device_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") % (shards or shard_count())


def sharded(prefix: str, number: int) -> str:
    return f"{prefix}#{number}"


def all_shards(prefix: str, shards: int | None = None) -> list[str]:
    """Every partition of a sharded list: what a reader queries (in parallel) and merges."""
    return [sharded(prefix, n) for n in range(shards or shard_count())]


def device_key(device_id: str) -> str:
    key = quote(device_id, safe="")
    # The id rule already refuses dots-only ids; should one get here anyway, it must not become
    # the `.` or `..` segment of an S3 key built from it.
    return key.replace(".", "%2E") if not key.strip(".") else key


def event_pk(vendor: str, device_id: str) -> str:
    """A device's events: one partition per device, sorted by time (event_sk), so its timeline,
    its timeline of one kind (a filter) and a time window are one Query of the table itself."""
    return f"E#{vendor}#{device_key(device_id)}"


def event_sk(occurred_at: str, event_id: str) -> str:
    return f"{occurred_at}#{event_id}"


def event_id_pk(vendor: str, device_id: str) -> str:
    """Id markers of events whose time is the gateway's receipt (no device time): a
    retransmission has another receipt time, so the id (sk) finds the event's key instead."""
    return f"EID#{vendor}#{device_key(device_id)}"


def timeline_of(device_item_pk: str) -> str:
    """The event partition (event_pk) of the device whose state item is `device_item_pk`
    (D#{vendor}#{key}, as the device list gsi2 gives it): the key, already encoded, kept."""
    vendor, key = device_item_pk.removeprefix("D#").split("#", 1)
    return f"E#{vendor}#{key}"


def device_pk(vendor: str, device_id: str) -> str:
    """Partition of a device's state items; also the device-timeline key of gsi1."""
    return f"D#{vendor}#{device_key(device_id)}"


def alarm_pk(vendor: str, device_id: str) -> str:
    """gsi3 partition of alarm events by time: the device's shard of ALARM."""
    return sharded(ALARM_PREFIX, shard(vendor, device_id))


def alarm_sk(occurred_at: str, vendor: str, event_id: str) -> str:
    return f"{occurred_at}#{vendor}#{event_id}"


def vendor_devices_pk(vendor: str, number: int) -> str:
    """gsi2 (KEYS_ONLY) partition listing one shard of a vendor's devices (sk the device key)."""
    return f"V#{vendor}#{number}"


def offline_pk(vendor: str, device_id: str) -> str:
    return sharded(OFFLINE_PREFIX, shard(vendor, device_id))


def offline_sk(vendor: str, device_id: str) -> str:
    return f"{vendor}#{device_key(device_id)}"


def due_pk(vendor: str, device_id: str) -> str:
    return sharded(DUE_PREFIX, shard(vendor, device_id))


def due_sk(bucket: str, vendor: str, device_id: str) -> str:
    """{the time the device becomes overdue, rounded up to its bucket}#{vendor}#{device}."""
    return f"{bucket}#{vendor}#{device_key(device_id)}"


def config_pk(vendor: str, device_id: str) -> str:
    return f"CFG#{vendor}#{device_key(device_id)}"


def alarms_pk(vendor: str, device_id: str) -> str:
    """Partition of a device's alarm lifecycle items (sk alarm_item_sk)."""
    return f"A#{vendor}#{device_key(device_id)}"


def commands_pk(vendor: str, device_id: str) -> str:
    """Partition of a device's command status items (sk C#{id}) and rate counters (RL#...)."""
    return f"C#{vendor}#{device_key(device_id)}"


def command_texts_pk(vendor: str, device_id: str) -> str:
    """Partition of a device's command texts (sk C#{id}, as its status item) and idempotency
    tokens (CT#...): apart from the status items so that the sweep, which moves statuses, has no
    grant that reaches a text, and the outbox only reads one by key, to send a command waiting
    for the device's next contact."""
    return f"CX#{vendor}#{device_key(device_id)}"


#: The one item of a quarantined payload (pk Q#{vendor}#{digest}).
QUARANTINE_SK = "Q"


def quarantine_pk(vendor: str, digest: str) -> str:
    return f"Q#{vendor}#{digest}"


def quarantine_list_pk(vendor: str, digest: str) -> str:
    """gsi1 partition of one shard of a vendor's quarantine (a flood of one bad payload shape
    from many devices spreads by the payload's digest)."""
    return quarantine_list_shard_pk(vendor, int(digest[:8], 16) % shard_count() if digest[:8].isalnum() else 0)


def quarantine_list_shard_pk(vendor: str, number: int) -> str:
    return f"Q#{vendor}#{number}"


def alarm_item_sk(alarm_id: str) -> str:
    """An alarm's lifecycle item, in its device's alarm partition (alarms_pk). An id whose encoding would not fit a
    sort key (1 KB; non-ASCII triples or more) is hashed; the item keeps the id itself anyway."""
    encoded = quote(alarm_id, safe="")
    if len(encoded) > 400:
        import hashlib

        encoded = "~" + hashlib.sha256(alarm_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"A#{encoded}"


def alarm_status_pk(vendor: str, status: str, device_id: str) -> str:
    """gsi1 partition listing one shard of a vendor's alarms in one status (AL#face-terminal#open#3)."""
    return alarm_status_shard_pk(vendor, status, shard(vendor, device_id))


def alarm_status_shard_pk(vendor: str, status: str, number: int) -> str:
    return f"AL#{vendor}#{status}#{number}"


def state_failure_pk(vendor: str, device_id: str) -> str:
    """Partition of a device's failed state writes (sk: what failed), store.state_failures."""
    return f"SF#{vendor}#{device_key(device_id)}"


def state_failures_pk(vendor: str, device_id: str) -> str:
    """gsi1 partition listing one shard of a vendor's failed state writes (SF#{vendor}#{shard})."""
    return state_failures_shard_pk(vendor, shard(vendor, device_id))


def state_failures_shard_pk(vendor: str, number: int) -> str:
    return f"SF#{vendor}#{number}"


def parts_pending_pk(vendor: str, device_id: str) -> str:
    return sharded(PARTS_PREFIX, shard(vendor, device_id))


def commands_pending_pk(vendor: str, device_id: str) -> str:
    return sharded(COMMANDS_PENDING_PREFIX, shard(vendor, device_id))


def commands_waiting_pk(vendor: str, device_id: str) -> str:
    return sharded(COMMANDS_WAITING_PREFIX, shard(vendor, device_id))


def commands_sent_pk(vendor: str, device_id: str) -> str:
    return sharded(COMMANDS_SENT_PREFIX, shard(vendor, device_id))


def parts_pk(vendor: str, device_id: str) -> str:
    """Assembly items of records sent in parts (sk {kind}#{group}): a device's face checks."""
    return f"P#{vendor}#{device_key(device_id)}"


def parts_sk(kind: str, group: str) -> str:
    return f"{kind}#{group}"


def parts_pending_sk(first_received_at: str, vendor: str, device_id: str, group: str) -> str:
    """gsi5 sort key of an assembly item still waiting: by its first part's receipt (the sweep's deadline)."""
    return f"{first_received_at}#{vendor}#{device_key(device_id)}#{group}"


def link_pk(vendor: str, link: str) -> str:
    """gsi4 partition of records the vendor ties together (NormalizedEvent.link)."""
    return f"L#{vendor}#{link}"


def command_sk(command_id: str) -> str:
    """A command sent to a device (status item and text item alike): ids sort by time, so one
    Query lists a device's commands newest first."""
    return f"C#{command_id}"


def command_rate_sk(window: int) -> str:
    """A device's command counter for one rate-limit window (epoch seconds // window length)."""
    return f"RL#{window}"


def command_token_sk(client_token: str) -> str:
    """An app's idempotency token for a command (`clientToken`): a retried request finds it."""
    return f"CT#{client_token}"


def pending_command_sk(timeout_at: str, vendor: str, device_id: str, command_id: str) -> str:
    return f"{timeout_at}#{vendor}#{device_key(device_id)}#{command_id}"
