"""Alarm lifecycles and command answers: the state writes the outbox makes per event (a device's
state groups and liveness are one item, store.devices; this module owns the alarm item layout and
the conditions that keep each lifecycle moving forward only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devicegate.core.adapter import AlarmTransition, CommandReply
from devicegate.core.errors import ItemRefused
from devicegate.core.offline import OfflinePolicy
from devicegate.infra.aws import CONDITION_FAILED, error_code, failures, refused_item, unavailable
from devicegate.store import keys
from devicegate.store.codec import to_attr
from devicegate.store.devices import Applied, DeviceNews, DeviceStore
from devicegate.store.limits import bounded
from devicegate.store.state_failures import StateFailure, StateFailures


class DynamoStateStore:
    """What the outbox writes: device items (store.devices), alarm lifecycles, command answers."""

    def __init__(self, dynamodb: Any, table: str, retention_days=None, policy: OfflinePolicy | None = None,
                 failures_retention_days: int = 30):
        self._ddb = dynamodb
        self._table = table
        self._retention_days = retention_days
        self._devices = DeviceStore(dynamodb, table, retention_days)
        self._policy = policy
        self._failures = StateFailures(dynamodb, table, failures_retention_days)

    def record_failure(self, failure: StateFailure, now: datetime) -> None:
        self._failures.record(failure, now)

    def apply_many(self, news: list[DeviceNews], now: datetime) -> list[Applied]:
        return self._devices.apply_many(news, now, self._policy)

    def resolve_command(self, vendor: str, reply: CommandReply) -> str | None:
        from devicegate.store.commands import DynamoCommandStore, resolve_reply

        return resolve_reply(DynamoCommandStore(self._ddb, self._table, self._retention_days), vendor, reply)

    def advance_alarm(self, vendor: str, device_id: str, step: AlarmTransition, event_id: str) -> bool:
        """One item per alarm (pk A#{vendor}#{device}, sk A#{alarm id}), listed by status in gsi1
        (AL#{vendor}#{status}#{shard}). Steps may arrive in any order (a terminal's backlog,
        retries): each step's own time is kept once (`step_{status}`), while `status` only moves
        to a step that happened later (same time: the later step in the lifecycle).

        One UpdateItem in the usual case (the step is the newest): it moves the status and keeps
        the step's time together. Only a step older than the status takes a second, smaller one."""
        key = {"pk": {"S": keys.alarms_pk(vendor, device_id)}, "sk": {"S": keys.alarm_item_sk(step.alarm_id)}}
        names = {"#step": f"step_{step.status}"}
        details = to_attr(bounded(step.details)[0])
        # What the alarm is stays what the first step to say it said, whichever step comes later
        # (a release step may name nothing: the face terminal's says "released on the device").
        keep_step = "#step = if_not_exists(#step, :at), firstDetails = if_not_exists(firstDetails, :d)"
        identity: dict[str, Any] = {":d": details}
        for attribute, value in (("code", step.code), ("codeName", step.name)):
            if value is not None:
                names[f"#{attribute}"] = attribute
                identity[f":{attribute}"] = to_attr(value)
                keep_step += f", #{attribute} = if_not_exists(#{attribute}, :{attribute})"
        try:
            try:
                self._ddb.update_item(
                    TableName=self._table, Key=key,
                    UpdateExpression=(f"SET {keep_step}, #st = :st, statusAt = :at, statusRank = :rank, "
                                      "details = :d, vendor = :vendor, deviceId = :dev, alarmId = :id, "
                                      "gsi1pk = :g1, gsi1sk = :g1s ADD eventIds :e"),
                    ConditionExpression=("attribute_not_exists(statusAt) OR statusAt < :at OR "
                                         "(statusAt = :at AND statusRank < :rank)"),
                    ExpressionAttributeNames={**names, "#st": "status"},
                    ExpressionAttributeValues={
                        **identity, ":at": {"S": step.at}, ":e": {"SS": [event_id]}, ":st": {"S": step.status},
                        ":rank": {"N": str(step.rank)}, ":vendor": {"S": vendor},
                        ":dev": {"S": device_id}, ":id": {"S": step.alarm_id},
                        ":g1": {"S": keys.alarm_status_pk(vendor, step.status, device_id)},
                        ":g1s": {"S": f"{step.at}#{keys.device_key(device_id)}#{step.alarm_id}"}},
                )
                return True
            except failures() as exc:
                if error_code(exc) != CONDITION_FAILED:
                    raise
            # An older step than the status: its own time still tells when it happened (an
            # "open" arriving after "released" still says when the alarm was raised).
            self._ddb.update_item(
                TableName=self._table, Key=key, UpdateExpression=f"SET {keep_step} ADD eventIds :e",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={**identity, ":at": {"S": step.at}, ":e": {"SS": [event_id]}},
            )
        except failures() as exc:
            if refused_item(exc):
                raise ItemRefused("alarm update", error_code(exc)) from None
            raise unavailable("alarm update", exc) from None
        return False
