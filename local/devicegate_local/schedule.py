"""EventBridge schedules of the template's functions, played locally: a thread per Schedule
event invokes its function with the event EventBridge would send (the event's Input, when it
has one), every `rate(...)` period (or every --schedule-every seconds, to watch a sweep without
waiting minutes). A function may have schedules next to its other triggers (the outbox's
periodic redrive next to its stream mapping); each is played on its own."""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devicegate_local.functions import FunctionError, StackStopping
from devicegate_local.lambda_context import LOCAL_ACCOUNT_ID
from devicegate_local.names import LOCAL_REGION
from devicegate_local.resources import TemplateError

log = logging.getLogger("devicegate.local")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """`rate(5 minutes)` -> 300.0; None for cron() expressions (not emulated)."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def scheduled_event(rule_name: str, now: datetime | None = None) -> dict[str, Any]:
    """The event an EventBridge schedule rule hands its Lambda target."""
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID, "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": LOCAL_REGION,
        "resources": [f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/{rule_name}"], "detail": {},
    }


@dataclass
class Schedule:
    function_id: str
    event_id: str
    expression: str
    period_s: float
    input: Any = None  # the event's Input (parsed), which EventBridge sends instead of its own event

    def event(self) -> Any:
        if self.input is not None:
            return self.input
        return scheduled_event(f"{self.function_id}-{self.event_id}")


def schedules(specs: list[Any], every: float | None = None) -> tuple[list[Schedule], list[str]]:
    """(emulated schedules, descriptions of the ones that are not) from the functions' events."""
    found, skipped = [], []
    for spec in specs:
        for event_id, event in spec.events.items():
            if (event or {}).get("Type") != "Schedule":
                continue
            properties = event.get("Properties") or {}
            expression = str(properties.get("Schedule", ""))
            if (str(properties.get("Enabled", True)).lower() == "false"
                    or str(properties.get("State", "ENABLED")).upper() == "DISABLED"):
                skipped.append(f"{spec.logical_id}.{event_id} ({expression}, disabled)")
                continue
            period = rate_seconds(expression)
            if period is None:
                skipped.append(f"{spec.logical_id}.{event_id} ({expression}: only rate() is emulated)")
                continue
            try:
                given = json.loads(properties["Input"]) if "Input" in properties else None
            except (TypeError, ValueError):
                raise TemplateError(f"{spec.logical_id}.{event_id}: Input must be a JSON text") from None
            found.append(Schedule(spec.logical_id, event_id, expression, every or period, given))
    return found, skipped


class SchedulePoller(threading.Thread):
    def __init__(self, schedule: Schedule, invoke: Callable[[str, dict[str, Any]], Any], stop: threading.Event):
        super().__init__(name=f"schedule-{schedule.function_id}-{schedule.event_id}", daemon=True)
        self.schedule = schedule
        self._invoke = invoke
        # Not `_stop`: threading.Thread has a method of that name, which join() calls.
        self._stop_event = stop

    def run(self) -> None:
        # EventBridge fires the first time one period after the rule is created.
        while not self._stop_event.wait(self.schedule.period_s):
            try:
                result = self._invoke(self.schedule.function_id, self.schedule.event())
                log.info("%s ran on schedule: %s", self.schedule.function_id, result)
            except StackStopping:
                return
            except Exception as exc:  # a failed run is logged; EventBridge would simply fire again
                log.warning("%s failed on schedule: %s: %s", self.schedule.function_id, type(exc).__name__, exc)
                if isinstance(exc, FunctionError) and exc.trace:
                    log.warning("%s", exc.trace.rstrip())
