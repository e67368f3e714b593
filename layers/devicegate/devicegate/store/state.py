"""Device state: every write of a device's latest-state groups, its liveness and its alarms'
lifecycles (the outbox decides what to write from the stream; this module owns the item layout
and the conditions that keep each group moving forward only)."""

from __future__ import annotations

from typing import Any

from devicegate.core.adapter import AlarmTransition, CommandReply
from devicegate.infra.aws import CONDITION_FAILED, error_code, failures, unavailable
from devicegate.store import keys
from devicegate.store.codec import to_attr
from devicegate.store.liveness import Liveness


class DynamoStateStore:
    def __init__(self, dynamodb: Any, table: str, retention_days=None):
        self._ddb = dynamodb
        self._table = table
        self._liveness = Liveness(dynamodb, table, retention_days)

    def heard(self, vendor: str, device_id: str, at: str) -> bool:
        return self._liveness.heard(vendor, device_id, at)

    def resolve_command(self, vendor: str, reply: CommandReply) -> str | None:
        from devicegate.store.commands import DynamoCommandStore, resolve_reply

        return resolve_reply(DynamoCommandStore(self._ddb, self._table), vendor, reply)

    def advance(self, vendor: str, device_id: str, group: str, at: str, event_id: str, value: dict[str, Any]) -> bool:
        values = {":v": to_attr(value), ":at": {"S": at}, ":e": {"S": event_id}, ":vendor": {"S": vendor},
                  ":dev": {"S": device_id}, ":g": {"S": group}}
        sets = "#val = :v, #at = :at, eventId = :e, vendor = :vendor, deviceId = :dev, #grp = :g"
        if group == "summary":
            # The summary item is what "all devices of a vendor" lists (gsi5 V#vendor).
            values[":g5"] = {"S": keys.vendor_devices_pk(vendor)}
            values[":g5s"] = {"S": keys.device_key(device_id)}
            sets += ", gsi5pk = :g5, gsi5sk = :g5s"
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": {"S": keys.device_pk(vendor, device_id)}, "sk": {"S": keys.state_sk(group)}},
                UpdateExpression=f"SET {sets}",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#val": "value", "#at": "at", "#grp": "group"},
                ExpressionAttributeValues=values,
            )
        except failures() as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise unavailable("state update", exc) from None
        return True

    def advance_alarm(self, vendor: str, device_id: str, step: AlarmTransition, event_id: str) -> bool:
        """One item per alarm (pk A#{vendor}#{device}, sk A#{alarm id}), listed by status in gsi1
        (AL#{vendor}#{status}). Steps may arrive in any order (a terminal's backlog, retries): each
        step's own time is kept once (`steps.{status}`), while `status` only moves to a step that
        happened later (same time: the later step in the lifecycle)."""
        key = {"pk": {"S": keys.alarms_pk(vendor, device_id)}, "sk": {"S": keys.alarm_item_sk(step.alarm_id)}}
        values: dict[str, Any] = {":at": {"S": step.at}, ":e": {"SS": [event_id]}, ":empty": {"M": {}}}
        # steps.{status} needs the map to exist first: created by the first update of the item.
        record_step = "#steps = if_not_exists(#steps, :empty)"
        try:
            try:
                values.update({":st": {"S": step.status}, ":rank": {"N": str(step.rank)},
                               ":d": to_attr(step.details), ":vendor": {"S": vendor}, ":dev": {"S": device_id},
                               ":id": {"S": step.alarm_id},
                               ":g1": {"S": keys.alarm_status_pk(vendor, step.status)},
                               ":g1s": {"S": f"{step.at}#{keys.device_key(device_id)}#{step.alarm_id}"}})
                self._ddb.update_item(
                    TableName=self._table, Key=key,
                    UpdateExpression=(f"SET {record_step}, #st = :st, statusAt = :at, statusRank = :rank, "
                                      "details = :d, vendor = :vendor, deviceId = :dev, alarmId = :id, "
                                      "gsi1pk = :g1, gsi1sk = :g1s ADD eventIds :e"),
                    ConditionExpression=("attribute_not_exists(statusAt) OR statusAt < :at OR "
                                         "(statusAt = :at AND statusRank < :rank)"),
                    ExpressionAttributeNames={"#steps": "steps", "#st": "status"},
                    ExpressionAttributeValues=values,
                )
                moved = True
            except failures() as exc:
                if error_code(exc) != CONDITION_FAILED:
                    raise
                moved = False
            # The step's own time, whether or not it is the newest (an "open" arriving after
            # "released" still tells when the alarm was raised).
            self._ddb.update_item(
                TableName=self._table, Key=key,
                UpdateExpression="SET #steps.#step = if_not_exists(#steps.#step, :at) ADD eventIds :e",
                ExpressionAttributeNames={"#steps": "steps", "#step": step.status},
                ExpressionAttributeValues={":at": {"S": step.at}, ":e": {"SS": [event_id]}},
            )
        except failures() as exc:
            raise unavailable("alarm update", exc) from None
        return moved


