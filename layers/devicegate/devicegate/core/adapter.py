"""The small interface every vendor adapter implements; the pipeline around it is written once."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from devicegate.core import personal
from devicegate.core.envelope import Heartbeat, NormalizedEvent, RawPush, RefusedRecord
from devicegate.core.errors import FieldProblem
from devicegate.core.vocabulary import BLOCKS


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    #: A push of several records, some stored (or found stored) and some refused, each refused
    #: one kept in quarantine alone. Answered as delivered (retrying cannot fix what was refused,
    #: and would only store nothing again), naming the refused records' fields.
    PARTIAL = "partial"
    INVALID = "invalid"
    TOO_LARGE = "too_large"
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Answer:
    """What goes back to the sender: status and a JSON body in the vendor's own shape."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    #: Set on module-level constant answers, so transports may serialize them once.
    constant: bool = False


class VendorAdapter(ABC):
    """decode -> validate -> normalize for one vendor, plus the answers that vendor expects.

    Adapters hold no AWS clients and do no I/O: the pipeline does auth, dedup, storage and
    quarantine around them, so an adapter is tested with payloads alone.
    """

    vendor: ClassVar[str]
    #: Bodies above this are refused (413) and kept in quarantine; API Gateway allows 10 MB.
    max_body_bytes: ClassVar[int] = 256 * 1024
    #: Kinds this vendor sends; used for routing checks, docs and the CLI.
    kinds: ClassVar[tuple[str, ...]] = ()

    #: Seconds within which the sender needs its answer, if it gives up on slower ones (SenseLink:
    #: 5 s). AWS calls then get timeouts that fit, two attempts each included (devicegate.aws.client).
    answer_deadline_s: ClassVar[float | None] = None
    #: Fields an IoT topic rule adds to an MQTT message from its topic (`topic(n) AS name`): they
    #: are routing facts (RawPush.route), not part of the record.
    topic_fields: ClassVar[tuple[str, ...]] = ()
    #: Path parameters (after {token}) and query parameters of the vendor's webhook routes that
    #: are routing facts (RawPush.route): Jointech's {kind}, Mettax's {service}, ?device=.
    route_path_params: ClassVar[tuple[str, ...]] = ()
    route_query_params: ClassVar[tuple[str, ...]] = ()
    #: Fields of `data` that say what an event is at a glance (the CLI's one-line summary); never
    #: a person's name or number.
    summary_fields: ClassVar[tuple[str, ...]] = ()
    #: Seconds of silence after which the sweep marks a device offline (the template's
    #: OfflineAfter overrides it per deployment); None for devices that only speak when something
    #: happens (a quiet door). Vendors whose devices are told an interval override offline_after.
    offline_after_s: ClassVar[int | None] = 3600
    #: The sweep reads a device's configuration item to decide (offline_after(config)).
    offline_from_config: ClassVar[bool] = False

    @abstractmethod
    def normalize(self, push: RawPush, received_at: datetime) -> Sequence[NormalizedEvent | Heartbeat | RefusedRecord]:
        """Turn one push into events (or liveness beats), or raise InvalidPayload naming the bad
        fields. A push carrying several records (Mettax's `data` array) is judged record by record:
        a record that cannot become an event is a RefusedRecord in the result, quarantined alone
        while the others are stored. (A Sequence, so an adapter that never sends beats may say
        list[NormalizedEvent].)"""

    @abstractmethod
    def answer(self, outcome: Outcome, problems: list[FieldProblem] | None = None, reason: str = "") -> Answer:
        """The vendor-shaped reply for an outcome (a retrying status for UNAVAILABLE, the
        delivered status for PARTIAL, with the refused records' problems)."""

    def check_deployment(self) -> None:
        """Called when a function serving this vendor starts: raise on a broken deployment
        setting, so the cold start fails naming it instead of every answer failing later."""
        return None

    def offline_after(self, config: dict[str, Any] | None) -> int | None:
        """The silence after which one device is offline, from its configuration item (None:
        apps wrote none) when offline_from_config; else the vendor's default."""
        return self.offline_after_s

    def state_patch(self, event: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Latest-state groups this event updates, e.g. {"lock": {...}, "environment": {...}}.
        The vocabulary blocks are groups of their own, added by the outbox for every vendor
        (`vocabulary_patch`): a vendor's groups hold what the vocabulary has no name for.

        Runs in the outbox, off the hot path; each group moves forward only with a newer event.
        """
        return {}

    def vocabulary_patch(self, event: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The state groups of an event's vocabulary blocks (position, alarm, passage, power), each
        under its block's name. A vendor whose records may be older than the state they would
        replace (Mettax's backfill) overrides this to return none for those."""
        found = event.get("facts") or {}
        return {name: found[name] for name in BLOCKS if name in found}

    def alarm_transition(self, event: dict[str, Any]) -> AlarmTransition | None:
        """For an alarm event of a vendor whose alarms have a lifecycle (raised -> released), the
        step this event is; the outbox keeps one lifecycle item per alarm from these."""
        return None

    def command_reply(self, event: dict[str, Any]) -> CommandReply | None:
        """For a stored event answering a command sent to the device (devicegate.commands), what it
        says about that command; the outbox marks the command it answers succeeded or failed."""
        return None

    def assemble(self, device_id: str, group: str, parts: dict[str, str], received_at: datetime,
                 transport: str) -> NormalizedEvent:
        """For vendors that send one record in parts (NormalizedEvent.part): the one event apps
        and the queue see, from each part's dataJson by part name. Called when every part is
        there, and by the sweep with the parts there are once the rest is overdue (the event
        then says which are missing). The event id depends on `group` only, so a retransmitted
        part, or a sweep racing the last part, can never make a second event."""
        raise NotImplementedError(f"{self.vendor} sends no records in parts")

    def config_device(self, events: list[NormalizedEvent]) -> str | None:
        """The device whose configuration item (CFG#{vendor}#{device} / CONFIG, written by apps)
        the accepted answer needs, or None (most vendors: a constant answer)."""
        return None

    def accepted_answer(self, outcome: Outcome, events: list[NormalizedEvent],
                        config: dict[str, Any] | None) -> Answer:
        """The answer once the events are stored (outcome ACCEPTED or DUPLICATE). Vendors whose
        answer carries content (the AI camera's strategy) build it here from `config`: the
        device's configuration item, None when it has none."""
        return self.answer(outcome)

    def quarantine_kind(self, push: RawPush) -> str:
        return push.route.get("kind") or "unknown"

    def quarantine_body(self, push: RawPush) -> bytes:
        """The payload as kept in quarantine: the deployment's personal-data policy applied to it
        wherever its fields are (core/personal.py: no PIN or password kept, numbers masked), so a
        replay stores what ingest would have; text that does not parse as JSON is kept as a
        summary only. A vendor that takes bodies in another encoding (Mettax's forms) overrides
        this to read them, never to keep them as sent."""
        return personal.scrub_payload(push.raw_bytes(), personal.deployment_policy())


@dataclass(frozen=True)
class AlarmTransition:
    """One step of an alarm's lifecycle, as an alarm event reports it."""

    alarm_id: str  # the vendor's alarm serial (trace id), stable over the alarm's life
    status: str  # open | releasing | release_failed | released | unknown
    rank: int  # order of the statuses, to break a tie between two steps stamped the same time
    at: str  # when this step happened (the event's occurredAt)
    details: dict[str, Any] = field(default_factory=dict)  # code, name, description... (no personal data)
    #: What the alarm is, where this step says it (a release step may not: the face terminal's
    #: says only "released on the device"). The lifecycle keeps the first code and name it is
    #: told through every later step, whatever order the steps come in.
    code: str | int | None = None
    name: str | None = None


@dataclass(frozen=True)
class CommandReply:
    """A device's (or its cloud's) answer to a command, as a stored event reports it."""

    device_id: str
    received_at: str  # when the gateway received the answer: it must come before the deadline
    responded_at: str  # the answer's own time
    event_id: str
    ok: bool
    #: What names the command answered ("BASE1"); None when the answer names none (the cloud's
    #: "Device not online！"), which then answers the oldest command still waiting.
    match_key: str | None
    word: str | None = None  # the command word, for answers whose type is spelled differently
    serial: str | None = None  # the serial the answer echoes, preferred when several commands wait
    command_type: str | None = None
    response: list[Any] | None = None  # the decoded answer, on success
    error: str | None = None  # the failure text, otherwise
