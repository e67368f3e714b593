"""Command items in DynamoDB (devicegate.commands): the one-transaction create, the device's
commands in one Query, the conditional status transitions, and the pending list the sweep reads.

Status item: pk C#{vendor}#{device}, sk C#{commandId}, everything but the text; pending ones also
in gsi5 CMDPENDING / {timeoutAt}#{vendor}#{device}#{commandId}, with the device's rate counters
(sk RL#{minute}). Text item: pk CX#{vendor}#{device}, same sk, the command text, with the
idempotency tokens (sk CT#{token}, which hold the text they were used for). The text lives apart
because a lock command may carry its password: the sweep, which moves statuses, is granted C#
items only, and the outbox reads a text by key only to send a command waiting for the device's
next contact. One POST writes both in one transaction with its checks.

A waiting command (`whenOnline`) is status `queued`, listed in gsi5 CMDWAIT#{shard} /
{waitUntil}#... and counted on the device's state item (WAITING_MARKER); each step of its
lifecycle is one transaction with its `command.*` event in the device's event partition.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from devicegate.core.adapter import CommandReply
from devicegate.core.commands import (
    CANCELLED,
    CLOCK_SLACK_S,
    EXPIRED,
    FAILED,
    LIFECYCLE,
    MAX_TIMEOUT_S,
    MAX_WAIT_S,
    PENDING,
    QUEUED,
    RATE_WINDOW_S,
    STATUS_AT,
    SUCCEEDED,
    SWEEP_GRACE_S,
    TIMED_OUT,
    DuplicateRequest,
    RateLimited,
    UnknownDevice,
    public_view,
    stamp,
)
from devicegate.core.envelope import NormalizedEvent, canonical_json, make_event
from devicegate.core.errors import ItemRefused, StorageUnavailable
from devicegate.core.timeutil import days_after, epoch_seconds, iso_utc, parse_time
from devicegate.infra.aws import (
    CONDITION_FAILED,
    cancellation_reasons,
    error_code,
    failures,
    maybe_processed,
    query_pages,
    refused_item,
    unavailable,
)
from devicegate.infra.observability import logger
from devicegate.store import keys
from devicegate.store.codec import from_item, to_attr
from devicegate.store.items import event_item
from devicegate.store.limits import bounded

_NAMES = {"#st": "status"}  # STATUS is a DynamoDB reserved word
#: A device's answer as a command's status item copies it (decoded values, or an error text).
MAX_ANSWER_BYTES = 4096
#: What matching a reply needs of each command (a projection keeps the Query small).
_MATCH_FIELDS = ("commandId", "status", "matchKey", "word", "serial", "timeoutAt", "responseEventId",
                 "whenOnline", "attempts", "waitUntil", "requestedAt", "command", "requeuedByEventId")
#: What a waiting command's lifecycle events carry of it (never its text: it may hold a password).
_EVENT_FIELDS = ("commandId", "command", "word", "serial", "requestedAt", "waitUntil", "attempts", "maxAttempts",
                 "allowUnsafe", "clientToken")
#: The device's state item counts its waiting commands here (store.devices keeps it on every
#: write); the outbox, which reads that item for every batch anyway, sends what waits when it
#: sees a count, so an ordinary event of a device with nothing waiting costs nothing more.
WAITING_MARKER = "waitingCommands"


class DynamoCommandStore:
    """The command items of every device, in the events table."""

    def __init__(self, dynamodb: Any, table: str, retention_days: Callable[[str, str], int] | None = None):
        self._ddb = dynamodb
        self._table = table
        self._retention_days = retention_days or (lambda vendor, kind: 365)

    def create(self, vendor: str, device_id: str, item: dict[str, Any], limit: int, now: datetime,
               client_token: str | None = None) -> None:
        """Store a new pending command (`item`: the command as apps see it, text included), in one
        transaction with the checks that may refuse it."""
        pk = {"S": keys.commands_pk(vendor, device_id)}
        texts_pk = keys.command_texts_pk(vendor, device_id)
        epoch = epoch_seconds(now)
        window = epoch // RATE_WINDOW_S
        status_item = {k: v for k, v in item.items() if k != "text"}
        waiting = item["status"] == QUEUED
        status_item.update(pk=pk["S"], sk=keys.command_sk(item["commandId"]), **(
            # Kept for the next contact: listed by its expiry (gsi5, the sweep expires it).
            {"gsi5pk": keys.commands_waiting_pk(vendor, device_id),
             "gsi5sk": keys.pending_command_sk(item["waitUntil"], vendor, device_id, item["commandId"])}
            if waiting else
            # Listed as pending (gsi5, the sweep's work list) until its answer or its deadline.
            {"gsi5pk": keys.commands_pending_pk(vendor, device_id),
             "gsi5sk": keys.pending_command_sk(item["timeoutAt"], vendor, device_id, item["commandId"])}))
        text_item = {"pk": texts_pk, "sk": keys.command_sk(item["commandId"]), "text": item["text"],
                     "expiresAt": item["expiresAt"]}
        summary = {"pk": {"S": keys.device_pk(vendor, device_id)}, "sk": {"S": keys.STATE_SK}}
        device_check: dict[str, Any] = (
            # The device must have reported at least once: its state item exists. A waiting
            # command also counts itself there (the marker the outbox looks at), and moves the
            # item's version so that a device write read before it merges again instead of
            # dropping the count.
            {"Update": {"TableName": self._table, "Key": summary, "ConditionExpression": "attribute_exists(pk)",
                        "UpdateExpression": f"ADD {WAITING_MARKER} :one, #v :one",
                        "ExpressionAttributeNames": {"#v": "version"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}}
            if waiting else
            {"ConditionCheck": {"TableName": self._table, "Key": summary,
                                "ConditionExpression": "attribute_exists(pk)"}})
        actions: list[dict[str, Any]] = [
            device_check,
            {"Update": {"TableName": self._table, "Key": {"pk": pk, "sk": {"S": keys.command_rate_sk(window)}},
                        "UpdateExpression": "ADD #n :one SET expiresAt = :exp",
                        "ConditionExpression": "attribute_not_exists(#n) OR #n < :max",
                        "ExpressionAttributeNames": {"#n": "count"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":max": {"N": str(limit)},
                                                      ":exp": {"N": str((window + 2) * RATE_WINDOW_S)}}}},
            {"Put": {"TableName": self._table, "Item": {k: to_attr(v) for k, v in status_item.items()},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": self._table, "Item": {k: to_attr(v) for k, v in text_item.items()},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
        if client_token:
            token_item = {"pk": texts_pk, "sk": keys.command_token_sk(client_token), "commandId": item["commandId"],
                          "text": item["text"], "expiresAt": item["expiresAt"]}
            actions.append({"Put": {"TableName": self._table, "Item": {k: to_attr(v) for k, v in token_item.items()},
                                    "ConditionExpression": "attribute_not_exists(pk)"}})
        if waiting:
            actions.append(self._event_put(lifecycle_event(vendor, device_id, status_item, QUEUED, now), now))
        for attempt in range(3):
            try:
                self._ddb.transact_write_items(TransactItems=actions)
                return
            except failures() as exc:
                reasons = cancellation_reasons(exc)
                if not reasons:
                    # No answer: the transaction may have landed all the same. Told "retry later"
                    # the app would leave it stored but never sent (with its clientToken, a retry
                    # would even be answered with it as if sent); so look, and go on if it did.
                    if maybe_processed(exc) and self._stored(status_item):
                        return
                    raise unavailable("command store", exc) from None
            # Positions in `actions`: 0 device check, 1 rate counter, 2-3 command, 4 token (then,
            # for a waiting command, its command.queued event).
            failed = [r == "ConditionalCheckFailed" for r in reasons] + [False] * len(actions)
            if failed[2]:
                # The command's own id (fresh and random) is taken: by this very transaction,
                # whose answer was lost and which botocore sent again. Its other refusals (the
                # token, the counter now at the limit) are its own writes too.
                return
            if client_token and failed[4]:
                raise DuplicateRequest(*self._by_token(vendor, device_id, client_token, item["text"]))
            if failed[0]:
                raise UnknownDevice(device_id)
            if failed[1]:
                raise RateLimited(limit, RATE_WINDOW_S - epoch % RATE_WINDOW_S)
            # TransactionConflict: another request for this device wrote its counter at the same
            # moment. Short, jittered retries; DynamoDB settles such conflicts in milliseconds.
            time.sleep(0.02 * (attempt + 1) + random.random() * 0.02)
        raise StorageUnavailable(f"command store kept conflicting: {','.join(str(r) for r in reasons)}")

    def _stored(self, status_item: dict[str, Any]) -> bool:
        try:
            found = self._ddb.get_item(TableName=self._table, ConsistentRead=True, ProjectionExpression="pk",
                                       Key={"pk": {"S": status_item["pk"]}, "sk": {"S": status_item["sk"]}})
        except failures() as exc:
            raise unavailable("command store check", exc) from None
        return "Item" in found

    def _by_token(self, vendor: str, device_id: str, client_token: str, text: str) -> tuple[dict | None, bool]:
        pk = keys.command_texts_pk(vendor, device_id)
        try:
            found = self._ddb.get_item(TableName=self._table, ConsistentRead=True,
                                       Key={"pk": {"S": pk}, "sk": {"S": keys.command_token_sk(client_token)}})
        except failures() as exc:
            raise unavailable("command token read", exc) from None
        token = from_item(found.get("Item") or {})
        if token.get("text") != text:
            return None, False
        commands = self.query(vendor, device_id, command_id=token.get("commandId"))
        return (public_view(commands[0]) if commands else None), True

    def query(self, vendor: str, device_id: str, limit: int = 50, before: str | None = None,
              command_id: str | None = None) -> list[dict[str, Any]]:
        """A device's commands newest first, or the one with `command_id`, with their texts: one
        Query of the status items, one of the text items over the same range of ids."""
        items = self._query_range(keys.commands_pk(vendor, device_id), limit, before, command_id)
        items = [i for i in items if i.get("commandId") != before][:limit]
        if not items:
            return items
        oldest, newest = items[-1]["commandId"], items[0]["commandId"]
        texts = {t["sk"]: t.get("text") for t in self._query_range(
            keys.command_texts_pk(vendor, device_id), len(items), None, None, (oldest, newest))}
        for item in items:
            text = texts.get(keys.command_sk(item["commandId"]))
            if text is not None:
                item["text"] = text
        return items

    def _query_range(self, pk: str, limit: int, before: str | None, command_id: str | None,
                     between: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        values: dict[str, Any] = {":pk": {"S": pk}}
        if between is not None:
            condition = "pk = :pk AND sk BETWEEN :lo AND :hi"
            values[":lo"], values[":hi"] = ({"S": keys.command_sk(c)} for c in between)
        elif command_id is not None:
            condition = "pk = :pk AND sk = :sk"
            values[":sk"] = {"S": keys.command_sk(command_id)}
        else:
            # BETWEEN, inclusive: the cursor's own item comes back and is dropped below.
            condition = "pk = :pk AND sk BETWEEN :lo AND :hi"
            values[":lo"] = {"S": keys.command_sk("")}
            values[":hi"] = {"S": keys.command_sk(before if before else "~")}
        kwargs: dict[str, Any] = {"TableName": self._table, "KeyConditionExpression": condition,
                                  "ExpressionAttributeValues": values, "ScanIndexForward": False,
                                  "Limit": limit + (1 if before else 0)}
        try:
            page = self._ddb.query(**kwargs)
        except failures() as exc:
            raise unavailable("command query", exc) from None
        return [from_item(i) for i in page.get("Items", [])]

    def mark_unsent(self, vendor: str, device_id: str, command_id: str, now: datetime, error: str) -> bool:
        return self._transition(vendor, device_id, command_id, FAILED, now, {"error": error},
                                "#st = :pending")

    def resolve(self, vendor: str, reply: CommandReply) -> str | None:
        """Mark the command `reply` answers succeeded or failed; its id, or None when the reply
        answers no command still waiting (or already resolved one: a retried outbox batch)."""
        received = parse_time(reply.received_at)
        lo = stamp(received - timedelta(seconds=MAX_TIMEOUT_S))
        hi = stamp(received + timedelta(seconds=CLOCK_SLACK_S)) + "~"
        try:
            page = self._ddb.query(
                TableName=self._table, ConsistentRead=True,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues={":pk": {"S": keys.commands_pk(vendor, reply.device_id)},
                                           ":lo": {"S": keys.command_sk(lo)}, ":hi": {"S": keys.command_sk(hi)}},
                # Placeholders throughout: several of these names are DynamoDB reserved words.
                ProjectionExpression=", ".join(f"#p{i}" for i in range(len(_MATCH_FIELDS))),
                ExpressionAttributeNames={f"#p{i}": name for i, name in enumerate(_MATCH_FIELDS)})
        except failures() as exc:
            raise unavailable("command match query", exc) from None
        items = [from_item(i) for i in page.get("Items", [])]
        if any(reply.event_id in (i.get("responseEventId"), i.get("requeuedByEventId")) for i in items):
            return None  # this reply was matched before (the outbox retried its batch)
        status = SUCCEEDED if reply.ok else FAILED
        details: dict[str, Any] = {"responseEventId": reply.event_id, "respondedAt": reply.responded_at,
                                   "replyReceivedAt": reply.received_at}
        if reply.command_type:
            details["responseType"] = reply.command_type
        # The answer is copied from a record: bounded like every copied value (store.limits), the
        # whole answer stays in the event `responseEventId` names.
        answer: dict[str, Any] = {}
        if reply.response is not None:
            answer["response"] = reply.response
        if reply.error is not None:
            answer["error"] = reply.error
        answer, cut = bounded(answer, MAX_ANSWER_BYTES)
        details.update(answer)
        if cut:
            details["responseTruncated"] = True
        for candidate in match_order(items, reply):
            if candidate.get("whenOnline"):
                if not reply.ok and reply.match_key is None and self._requeue_unreachable(vendor, reply, candidate):
                    return candidate["commandId"]
                # A waiting command's answer is a step of its lifecycle: with its event.
                if self._lifecycle(vendor, reply.device_id, candidate, status, parse_time(reply.received_at),
                                   "#st = :from AND timeoutAt >= :received AND attribute_not_exists(responseEventId)",
                                   PENDING, details=details, values={":received": {"S": reply.received_at}}):
                    return candidate["commandId"]
                continue
            # Still waiting, answered in time, answered by nothing else. A command the sweep timed
            # out although its answer came in time (the outbox was late) is corrected.
            if self._transition(vendor, reply.device_id, candidate["commandId"], status, parse_time(reply.received_at),
                                details, "(#st = :pending OR #st = :timed_out) AND timeoutAt >= :received "
                                         "AND attribute_not_exists(responseEventId)",
                                {":received": {"S": reply.received_at}, ":timed_out": {"S": TIMED_OUT}}):
                return candidate["commandId"]
        return None

    def overdue(self, now: datetime) -> Iterator[tuple[str, str]]:
        """(pk, sk) of pending commands whose deadline passed more than SWEEP_GRACE_S ago, from
        every shard of the pending list (gsi5 CMDPENDING#{n})."""
        cutoff = iso_utc(now - timedelta(seconds=SWEEP_GRACE_S))
        for partition in keys.all_shards(keys.COMMANDS_PENDING_PREFIX):
            for raw in query_pages(self._ddb, "pending commands query", TableName=self._table, IndexName="gsi5",
                                   ProjectionExpression="pk, sk",
                                   KeyConditionExpression="gsi5pk = :pk AND gsi5sk < :cutoff",
                                   ExpressionAttributeValues={":pk": {"S": partition}, ":cutoff": {"S": cutoff}}):
                yield raw["pk"]["S"], raw["sk"]["S"]

    def time_out(self, pk: str, sk: str, now: datetime) -> bool:
        return self._update({"pk": {"S": pk}, "sk": {"S": sk}}, TIMED_OUT, now, {}, "#st = :pending")

    # -- waiting commands (`whenOnline`) ---------------------------------------------------------
    def waiting(self, vendor: str, device_id: str, now: datetime) -> list[dict[str, Any]]:
        """The device's waiting commands, oldest first: one Query of its commands of the longest
        expiry the template allows (a waiting command is never older), keeping the queued ones."""
        lo = stamp(now - timedelta(seconds=MAX_WAIT_S + CLOCK_SLACK_S))
        return [from_item(raw) for raw in query_pages(
            self._ddb, "waiting commands query", TableName=self._table, ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi", FilterExpression="#st = :queued",
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={":pk": {"S": keys.commands_pk(vendor, device_id)},
                                       ":lo": {"S": keys.command_sk(lo)}, ":hi": {"S": keys.command_sk("~")},
                                       ":queued": {"S": QUEUED}})]

    def text(self, vendor: str, device_id: str, command_id: str) -> str | None:
        """A command's text (its CX# item), read to send a waiting command at the next contact."""
        try:
            found = self._ddb.get_item(TableName=self._table, ConsistentRead=True, ProjectionExpression="#t",
                                       ExpressionAttributeNames={"#t": "text"},
                                       Key={"pk": {"S": keys.command_texts_pk(vendor, device_id)},
                                            "sk": {"S": keys.command_sk(command_id)}})
        except failures() as exc:
            raise unavailable("command text read", exc) from None
        text = from_item(found.get("Item") or {}).get("text")
        return text if isinstance(text, str) else None

    def mark_sent(self, vendor: str, device_id: str, command: dict[str, Any], now: datetime, timeout_s: int) -> bool:
        """queued -> pending (sent), one attempt more, before it is published: False when it is no
        longer waiting (sent by a concurrent batch, cancelled, expired)."""
        attempts = int(command.get("attempts") or 0) + 1
        timeout_at = iso_utc(now + timedelta(seconds=timeout_s))
        sent = dict(command, attempts=attempts)
        if self._lifecycle(vendor, device_id, sent, PENDING, now, "#st = :from", QUEUED, marker=-1,
                           details={"attempts": attempts, "timeoutAt": timeout_at, "sentAt": iso_utc(now)},
                           index=(keys.commands_sent_pk(vendor, device_id),
                                  _sent_sk(timeout_at, command["waitUntil"], vendor, device_id, command["commandId"])),
                           stamp_status=False):
            return True
        # Refused: moved on by someone else, or by this very transaction, whose answer was lost
        # and which botocore sent again. Then the command is this attempt, sent at this moment,
        # and it is this caller's to publish.
        [now_item] = self._query_range(keys.commands_pk(vendor, device_id), 1, None, command["commandId"]) or [{}]
        return (now_item.get("status"), now_item.get("attempts"), now_item.get("sentAt")) == (
            PENDING, attempts, iso_utc(now))

    def cancel(self, vendor: str, device_id: str, command: dict[str, Any], now: datetime) -> bool:
        """queued -> cancelled; False when it is not waiting (any more)."""
        return self._lifecycle(vendor, device_id, command, CANCELLED, now, "#st = :from", QUEUED, marker=-1)

    def expired_waiting(self, now: datetime) -> Iterator[tuple[str, str, str]]:
        """(pk, sk, waitUntil) of waiting commands past their expiry, from every shard of the
        waiting list (gsi5 CMDWAIT#{n})."""
        for partition in keys.all_shards(keys.COMMANDS_WAITING_PREFIX):
            for raw in query_pages(self._ddb, "waiting commands expiry query", TableName=self._table,
                                   IndexName="gsi5", ProjectionExpression="pk, sk, gsi5sk",
                                   KeyConditionExpression="gsi5pk = :pk AND gsi5sk < :now",
                                   ExpressionAttributeValues={":pk": {"S": partition}, ":now": {"S": iso_utc(now)}}):
                yield raw["pk"]["S"], raw["sk"]["S"], raw["gsi5sk"]["S"].split("#", 1)[0]

    def expire(self, pk: str, sk: str, wait_until: str, now: datetime) -> bool:
        vendor, device_id, command_id = _parts(pk, sk)
        return self._lifecycle(vendor, device_id, {"commandId": command_id, "waitUntil": wait_until}, EXPIRED, now,
                               "#st = :from", QUEUED, marker=-1)

    def sent_overdue(self, now: datetime) -> Iterator[tuple[str, str, str]]:
        """(pk, sk, waitUntil) of sent waiting commands unanswered SWEEP_GRACE_S past their
        deadline (gsi5 CMDSENT#{n})."""
        cutoff = iso_utc(now - timedelta(seconds=SWEEP_GRACE_S))
        for partition in keys.all_shards(keys.COMMANDS_SENT_PREFIX):
            for raw in query_pages(self._ddb, "sent waiting commands query", TableName=self._table,
                                   IndexName="gsi5", ProjectionExpression="pk, sk, gsi5sk",
                                   KeyConditionExpression="gsi5pk = :pk AND gsi5sk < :cutoff",
                                   ExpressionAttributeValues={":pk": {"S": partition}, ":cutoff": {"S": cutoff}}):
                yield raw["pk"]["S"], raw["sk"]["S"], raw["gsi5sk"]["S"].split("#", 2)[1]

    def requeue_or_time_out(self, pk: str, sk: str, wait_until: str, now: datetime) -> str | None:
        """An attempt unanswered: back to queued for the next contact while attempts remain and
        its expiry has not passed, else timed_out (the lifecycle's `failed`). The status it took,
        or None when it had moved on (answered meanwhile)."""
        vendor, device_id, command_id = _parts(pk, sk)
        command = {"commandId": command_id, "waitUntil": wait_until}
        if wait_until > iso_utc(now) and self._lifecycle(
                # The attempts it was given when queued (maxAttempts, CommandMaxAttempts then).
                vendor, device_id, command, QUEUED, now, "#st = :from AND attempts < maxAttempts", PENDING, marker=1,
                index=(keys.commands_waiting_pk(vendor, device_id),
                       keys.pending_command_sk(wait_until, vendor, device_id, command_id))):
            return QUEUED
        if self._lifecycle(vendor, device_id, command, TIMED_OUT, now, "#st = :from", PENDING,
                           extra={"error": "no answer to the last attempt"}):
            return TIMED_OUT
        return None

    def _requeue_unreachable(self, vendor: str, reply: CommandReply, command: dict[str, Any]) -> bool:
        """The cloud's own failure (`Device not online！`) for a command sent at a contact: the
        device went away again before it got it. Queued again for the next contact while
        attempts remain and its expiry has not passed (else it fails as any command would)."""
        device_id, ident = reply.device_id, command["commandId"]
        return self._lifecycle(
            vendor, device_id, command, QUEUED, parse_time(reply.received_at),
            "#st = :from AND attempts < maxAttempts AND waitUntil > :received "
            "AND attribute_not_exists(responseEventId)", PENDING, marker=1,
            values={":received": {"S": reply.received_at}},
            details={"requeuedByEventId": reply.event_id},
            extra={"error": reply.error} if reply.error else None,
            index=(keys.commands_waiting_pk(vendor, device_id),
                   keys.pending_command_sk(command["waitUntil"], vendor, device_id, ident)))

    def _event_put(self, event: NormalizedEvent, now: datetime) -> dict[str, Any]:
        stored = event_item(event, days_after(now, self._retention_days(event.vendor, "command")))
        return {"Put": {"TableName": self._table, "Item": stored, "ConditionExpression": "attribute_not_exists(pk)"}}

    def _lifecycle(self, vendor: str, device_id: str, command: dict[str, Any], status: str, now: datetime,
                   condition: str, leaves: str, *, marker: int = 0, details: dict[str, Any] | None = None,
                   values: dict[str, Any] | None = None, index: tuple[str, str] | None = None,
                   extra: dict[str, Any] | None = None, stamp_status: bool = True) -> bool:
        """One step of a waiting command's lifecycle, in one transaction: its status item
        (conditional on the status it leaves), the device's waiting count (`marker`), and the
        `command.*` event the outbox publishes. A retry finds the status moved and writes
        nothing: each step is stored, and so published, once."""
        at = iso_utc(now)
        names = dict(_NAMES)
        attr_values: dict[str, Any] = {":st": {"S": status}, ":at": {"S": at}, ":from": {"S": leaves}, **(values or {})}
        sets = ["#st = :st", "statusAt = :at"]
        if stamp_status:
            sets.append(f"{STATUS_AT[status]} = :at")
        for number, (name, value) in enumerate({**(details or {}), **(extra or {})}.items()):
            names[f"#d{number}"] = name
            attr_values[f":d{number}"] = to_attr(value)
            sets.append(f"#d{number} = :d{number}")
        if index is not None:
            attr_values[":g5"], attr_values[":g5s"] = {"S": index[0]}, {"S": index[1]}
            expression = f"SET {', '.join(sets)}, gsi5pk = :g5, gsi5sk = :g5s"
        else:
            expression = f"SET {', '.join(sets)} REMOVE gsi5pk, gsi5sk"
        actions: list[dict[str, Any]] = [{"Update": {
            "TableName": self._table, "UpdateExpression": expression,
            "Key": {"pk": {"S": keys.commands_pk(vendor, device_id)}, "sk": {"S": keys.command_sk(command["commandId"])}},
            "ConditionExpression": f"attribute_exists(pk) AND {condition}",
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": attr_values}}]
        if marker:
            actions.append({"Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": keys.device_pk(vendor, device_id)}, "sk": {"S": keys.STATE_SK}},
                "UpdateExpression": f"ADD {WAITING_MARKER} :n, #v :one", "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":n": {"N": str(marker)}, ":one": {"N": "1"}}}})
        actions.append(self._event_put(lifecycle_event(vendor, device_id, {**command, **(details or {})}, status, now,
                                                       extra), now))
        for pause in (0.05, 0.2, None):
            try:
                self._ddb.transact_write_items(TransactItems=actions)
                return True
            except failures() as exc:
                reasons = cancellation_reasons(exc)
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False  # the command moved on (or this step was written by a retry)
                if refused_item(exc):
                    raise ItemRefused(f"command {LIFECYCLE[status]}", error_code(exc)) from None
                if pause is None or not reasons:
                    raise unavailable(f"command {LIFECYCLE[status]}", exc) from None
            time.sleep(pause)
        return False  # not reached

    def _transition(self, vendor: str, device_id: str, command_id: str, status: str, now: datetime,
                    details: dict[str, Any], condition: str, values: dict[str, Any] | None = None) -> bool:
        key = {"pk": {"S": keys.commands_pk(vendor, device_id)}, "sk": {"S": keys.command_sk(command_id)}}
        return self._update(key, status, now, details, condition, values)

    def _update(self, key: dict[str, Any], status: str, now: datetime, details: dict[str, Any], condition: str,
                values: dict[str, Any] | None = None) -> bool:
        """One status transition, conditional on the status it leaves; off the pending list."""
        at = iso_utc(now)
        names = dict(_NAMES)
        attr_values = {":st": {"S": status}, ":at": {"S": at}, ":pending": {"S": PENDING}, **(values or {})}
        sets = ["#st = :st", "statusAt = :at", f"{STATUS_AT[status]} = :at"]
        for index, (name, value) in enumerate(details.items()):
            names[f"#d{index}"] = name
            attr_values[f":d{index}"] = to_attr(value)
            sets.append(f"#d{index} = :d{index}")
        try:
            self._ddb.update_item(
                TableName=self._table, Key=key, UpdateExpression=f"SET {', '.join(sets)} REMOVE gsi5pk, gsi5sk",
                ConditionExpression=f"attribute_exists(pk) AND {condition}",
                ExpressionAttributeNames=names, ExpressionAttributeValues=attr_values)
        except failures() as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            if refused_item(exc):
                raise ItemRefused("command update", error_code(exc)) from None
            raise unavailable("command update", exc) from None
        return True


def _sent_sk(timeout_at: str, wait_until: str, vendor: str, device_id: str, command_id: str) -> str:
    """gsi5 sort key of a waiting command's attempt: by its deadline, with its expiry (what the
    sweep decides by whether it may wait for another contact, read from the index alone)."""
    return f"{timeout_at}#{wait_until}#{vendor}#{keys.device_key(device_id)}#{command_id}"


def _parts(pk: str, sk: str) -> tuple[str, str, str]:
    """(vendor, device id, command id) of a command status item's keys."""
    from urllib.parse import unquote

    _, vendor, device_key = pk.split("#", 2)
    return vendor, unquote(device_key), sk.removeprefix("C#")


def lifecycle_event(vendor: str, device_id: str, command: dict[str, Any], status: str, now: datetime,
                    extra: dict[str, Any] | None = None) -> NormalizedEvent:
    """The `command.{queued|sent|answered|failed|expired|cancelled}` event of one step of a
    waiting command, with the device's vendor; its id derives from the command, the step and its
    time, so a step written again by a retry is the same event (and its transaction is refused)."""
    name = LIFECYCLE[status]
    at = iso_utc(now)
    data = {k: command[k] for k in _EVENT_FIELDS if command.get(k) is not None}
    data.update(status=status, lifecycle=name, statusAt=at, **(extra or {}))
    for answer in ("responseType", "responseEventId", "error"):
        if command.get(answer) is not None:
            data[answer] = command[answer]
    digest = hashlib.sha256(f"{vendor}\n{device_id}\n{command['commandId']}\n{status}\n{at}".encode(
        "utf-8", "surrogatepass")).hexdigest()[:32]
    return make_event(vendor=vendor, device_id=device_id, kind=f"command.{name}", occurred_at=now, received_at=now,
                      transport="gateway", data_json=canonical_json(data), event_id=f"command.{name}-{digest}")


def match_order(items: list[dict[str, Any]], reply: CommandReply) -> list[dict[str, Any]]:
    """The commands `reply` may answer, most likely first. A reply naming its command (BASE1)
    answers a command with that key, or failing that one with the same word; a reply naming
    none (the cloud's MQTT_CMD failures) answers any. Among those: the echoed serial first,
    then the oldest, since a device answers in the order it was asked."""
    eligible = []
    for item in items:
        if item.get("status") not in (PENDING, TIMED_OUT) or item.get("timeoutAt", "") < reply.received_at:
            continue
        exact = reply.match_key is not None and item.get("matchKey") == reply.match_key
        same_word = reply.word is not None and item.get("word") == reply.word
        if reply.match_key is not None and not (exact or same_word):
            continue
        # A reply that echoes a serial answers only the command sent with it: typed commands get
        # a serial of their own, so a late answer (or one to a console command) cannot resolve
        # another command of the same kind.
        if reply.serial is not None and item.get("serial") not in (None, reply.serial):
            continue
        # Oldest first, whatever its status: a device answers in the order it was asked, and a
        # command the sweep timed out early still takes the answer received in its time.
        eligible.append(((not exact, not same_word, item["commandId"]), item))
    return [item for _, item in sorted(eligible, key=lambda pair: pair[0])]


def resolve_reply(store: Any, vendor: str, reply: CommandReply) -> str | None:
    matched = store.resolve(vendor, reply)
    if matched is None:
        logger.info("command reply matched no waiting command",
                    extra={"vendor": vendor, "device": reply.device_id, "command_type": reply.command_type})
    else:
        logger.info("command resolved", extra={"vendor": vendor, "device": reply.device_id, "command_id": matched,
                                               "ok": reply.ok})
    return matched


def expire_waiting(store: Any, now: datetime) -> int:
    """Let go, unsent, every waiting command past its expiry; how many were."""
    return sum(1 for pk, sk, until in list(store.expired_waiting(now)) if store.expire(pk, sk, until, now))


def retry_or_fail_sent(store: Any, now: datetime) -> int:
    """Every unanswered attempt of a waiting command: queued again for the next contact, or
    timed out after its last attempt; how many changed."""
    return sum(1 for pk, sk, until in list(store.sent_overdue(now))
               if store.requeue_or_time_out(pk, sk, until, now))


def time_out_overdue(store: Any, now: datetime) -> int:
    """Mark every command past its deadline (and the grace) timed out; how many were."""
    count = 0
    for pk, sk in store.overdue(now):
        if store.time_out(pk, sk, now):
            count += 1
    return count


