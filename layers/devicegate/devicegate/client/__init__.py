"""What apps use to read devicegate: typed events and state (models), the access patterns of
docs/consuming.md as methods (DeviceGate), and a queue parser (parse_record, parse_body). Not
imported by the functions."""

from devicegate.client.models import (
    Alarm,
    AlarmLifecycle,
    Assembly,
    CloudEvent,
    DeviceRow,
    DeviceState,
    Event,
    Facts,
    Page,
    Passage,
    Person,
    Position,
    Power,
    QuarantinedPayload,
)
from devicegate.client.queue import NotAnEvent, attributes_of, parse_body, parse_record
from devicegate.client.table import DeviceGate, TableReads

#: The same class, for those who look for a "Client".
Client = DeviceGate

__all__ = [
    "Alarm", "AlarmLifecycle", "Assembly", "Client", "CloudEvent", "DeviceGate", "DeviceRow", "DeviceState",
    "Event", "Facts", "NotAnEvent", "Page", "Passage", "Person", "Position", "Power", "QuarantinedPayload",
    "TableReads", "attributes_of", "parse_body", "parse_record",
]
