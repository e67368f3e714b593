"""Every DynamoDB key the gateway writes, in one place (see README "Data model").

Device ids are percent-encoded inside keys: a device named `a#K#alarm` or `x/y` must never land in
another device's partition, and quoting is injective, so two ids never share a key.
"""

from __future__ import annotations

from urllib.parse import quote

EVENT_SK = "E"
#: A device's configuration item (pk D#{vendor}#{device}), written by apps, read by the gateway.
CONFIG_SK = "CONFIG"
ALARM_PARTITION = "ALARM"
#: gsi3 partitions besides ALARM (gsi3 is overloaded, every use sparse): devices offline now,
#: and records sent in parts still waiting for the sweep.
OFFLINE_PARTITION = "OFFLINE"
PARTS_PARTITION = "PARTS"
#: gsi3 partition of commands still waiting for an answer (sk {timeoutAt}#{vendor}#{device}#{id}):
#: the sweep times them out with one Query; an answered command leaves it.
COMMANDS_PENDING_PARTITION = "CMDPENDING"


def device_key(device_id: str) -> str:
    return quote(device_id, safe="")


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
    return f"V#{vendor}"


def quarantine_pk(vendor: str, digest: str) -> str:
    return f"Q#{vendor}#{digest}"


def quarantine_list_pk(vendor: str) -> str:
    return f"Q#{vendor}"


def alarm_item_sk(alarm_id: str) -> str:
    """An alarm's lifecycle item, in its device's partition. An id whose encoding would not fit a
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
    """A command sent to a device, in the device's partition: ids sort by time, so one Query
    lists a device's commands newest first."""
    return f"C#{command_id}"


def command_rate_sk(window: int) -> str:
    """A device's command counter for one rate-limit window (epoch seconds // window length)."""
    return f"RL#{window}"


def command_token_sk(client_token: str) -> str:
    """An app's idempotency token for a command (`clientToken`): a retried request finds it."""
    return f"CT#{client_token}"


def pending_command_sk(timeout_at: str, vendor: str, device_id: str, command_id: str) -> str:
    return f"{timeout_at}#{vendor}#{device_key(device_id)}#{command_id}"
