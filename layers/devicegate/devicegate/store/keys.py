"""Every DynamoDB key the gateway writes, in one place (see README "Data model").

Device ids are percent-encoded inside keys: a device named `a#K#alarm` or `x/y` must never land in
another device's partition, and quoting is injective, so two ids never share a key.

Partition-key prefixes double as the IAM boundary (dynamodb:LeadingKeys): each kind of item that
a different function owns has its own prefix, so a grant can name exactly the items a function
writes. E# events, Q# quarantine, P# parts (ingest functions); D# device state (outbox, sweep);
A# alarm lifecycles (outbox); C# command status items (commands function, outbox, sweep); CX#
command texts and idempotency tokens (commands function only: a text may hold a lock's password);
CFG# device configuration (apps write it, ingest and sweep read it).
"""

from __future__ import annotations

from urllib.parse import quote

EVENT_SK = "E"
#: A device's configuration item (pk CFG#{vendor}#{device}), written by apps, read by the gateway.
CONFIG_SK = "CONFIG"
#: gsi3 (app-facing, overloaded, every use sparse): fleet-wide alarm events by time, and every
#: device offline now.
ALARM_PARTITION = "ALARM"
OFFLINE_PARTITION = "OFFLINE"
#: gsi5 (the sweep's work lists, sparse; projects only keys and non-personal liveness fields, so
#: the one function that queries it cannot read event data through it): records sent in parts
#: still waiting (sk {firstReceivedAt}#{vendor}#{device}#{group}), commands still waiting for an
#: answer (sk {timeoutAt}#{vendor}#{device}#{id}) and each vendor's devices (V#{vendor}).
PARTS_PARTITION = "PARTS"
COMMANDS_PENDING_PARTITION = "CMDPENDING"


def device_key(device_id: str) -> str:
    key = quote(device_id, safe="")
    # The id rule already refuses dots-only ids; should one get here anyway, it must not become
    # the `.` or `..` segment of an S3 key built from it.
    return key.replace(".", "%2E") if not key.strip(".") else key


def event_pk(vendor: str, event_id: str) -> str:
    return f"E#{vendor}#{event_id}"


def device_pk(vendor: str, device_id: str) -> str:
    """Partition of a device's state items; also the device-timeline key of gsi1."""
    return f"D#{vendor}#{device_key(device_id)}"


def device_kind_pk(vendor: str, device_id: str, kind: str) -> str:
    return f"{device_pk(vendor, device_id)}#{kind}"


def timeline_sk(occurred_at: str, event_id: str) -> str:
    return f"{occurred_at}#{event_id}"


def alarm_sk(occurred_at: str, vendor: str, event_id: str) -> str:
    return f"{occurred_at}#{vendor}#{event_id}"


def state_sk(group: str) -> str:
    return f"S#{group}"


def vendor_devices_pk(vendor: str) -> str:
    """gsi5 partition listing a vendor's devices (their summary items, sk the device key)."""
    return f"V#{vendor}"


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
    tokens (CT#...): apart from the status items so that the outbox and the sweep, which move
    statuses, have no grant that reaches a text."""
    return f"CX#{vendor}#{device_key(device_id)}"


def quarantine_pk(vendor: str, digest: str) -> str:
    return f"Q#{vendor}#{digest}"


def quarantine_list_pk(vendor: str) -> str:
    return f"Q#{vendor}"


def alarm_item_sk(alarm_id: str) -> str:
    """An alarm's lifecycle item, in its device's alarm partition (alarms_pk). An id whose encoding would not fit a
    sort key (1 KB; non-ASCII triples or more) is hashed; the item keeps the id itself anyway."""
    encoded = quote(alarm_id, safe="")
    if len(encoded) > 400:
        import hashlib

        encoded = "~" + hashlib.sha256(alarm_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"A#{encoded}"


def alarm_status_pk(vendor: str, status: str) -> str:
    """gsi1 partition listing a vendor's alarms in one status (AL#face-terminal#open)."""
    return f"AL#{vendor}#{status}"


def parts_pk(vendor: str, device_id: str) -> str:
    """Assembly items of records sent in parts (sk {kind}#{group}): a device's face checks."""
    return f"P#{vendor}#{device_key(device_id)}"


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
