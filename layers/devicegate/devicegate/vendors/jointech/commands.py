"""Jointech platform commands: the text a device is sent on `download/{accessKey}/{deviceNum}/cmd`,
and how its answer (a `cmd` record) names the command it answers.

What the vendor document shows (MQTT "3.6 Platform send command", "3.4 Command response report",
webhook "4. Command response data"):

    sent       (794308010642,1,001,BASE,1)
    answered   commandType "BASE1", content "[\"794308010642\",\"8\",\"001\",\"BASE\",\"1\",...]"
    answered   commandType "BASE2", content "[\"742207000010\",\"8\",\"001\",\"BASE\",\"2\",\"20220901081402\"]"
    failed     commandType "MQTT_CMD", content "Device not online！" / "Device has not been registered！"

So a command is "(" + comma-separated fields + ")": the device number, a flag (1 in the command,
8 in the answer), a serial ("001" in every example; the answer echoes it), the command word, then
its parameters. The answer's commandType is the word followed by the first parameter. Every other
command is left by the document to per-model protocol documents it does not include, so the typed
commands are the two it shows; any other command is sent raw, checked for the same shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from devicegate.core.adapter import CommandReply
from devicegate.core.errors import FieldProblem
from devicegate.core.fields import TOPIC_ID

#: Far above the documented command (27 characters); a device reads a short line, and a bounded
#: text keeps an item, a log of who sent what, and an IoT message small.
MAX_TEXT = 256
#: The cloud's own failures ("Device not online！") carry this type instead of the command's.
PLATFORM_TYPE = "MQTT_CMD"
DEFAULT_SERIAL = "001"

_WORD = re.compile(r"[A-Z][A-Z0-9_]{0,15}")
_DIGITS = re.compile(r"[0-9]{1,8}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True)
class TypedCommand:
    """A documented command an app may name instead of writing its text."""

    name: str
    word: str
    params: tuple[str, ...]
    description: str


TYPED: dict[str, TypedCommand] = {c.name: c for c in (
    TypedCommand("query_base_info", "BASE", ("1",),
                 "base information; the answer's array carries model and firmware, manufacturer, modem "
                 "firmware, ICCID, IMEI and cell (MCC, MNC, cell id, LAC) after the echoed fields"),
    TypedCommand("query_time", "BASE", ("2",),
                 "the device clock; the answer's array ends with it as yyyyMMddHHmmss (UTC in the example)"),
)}


@dataclass(frozen=True)
class Rendered:
    """A command ready to send, and what its answer will be recognised by."""

    text: str
    word: str
    match_key: str  # the commandType its answer carries: word + first parameter ("BASE1")
    serial: str
    typed: str | None = None  # the typed command's name, when it was one


#: Command words known only to read (the documented queries). Every other command, typed or raw,
#: may open or unlock something: the vendor leaves unlock, relay and parameter commands to
#: per-model documents, so no list of them could be complete, and a lock that opens hours after
#: the request is a safety problem. Such a command is kept for the device's next contact only
#: when the app says so (`allowUnsafe`), and then for a short time at most.
READ_ONLY_WORDS = frozenset({"BASE"})


def may_actuate(rendered: Rendered) -> bool:
    """Whether the command may open, unlock or switch something on the device."""
    return rendered.word not in READ_ONLY_WORDS


def valid_device(device: str) -> bool:
    """A device number that can be a topic level (no MQTT wildcard, no level separator): the rule
    the asset ids of its records follow (fields.TOPIC_ID), so every device that reports can be
    commanded and no other."""
    return TOPIC_ID.accepts(device or "")


def topic(access_key: str, device: str) -> str:
    return f"download/{access_key}/{device}/cmd"


def render(device: str, document: dict[str, Any]) -> tuple[Rendered | None, list[FieldProblem]]:
    """The request body (`{"raw": TEXT}` or `{"command": NAME, "serial"?}`) as a command for
    `device`, or the problems naming the fields at fault."""
    raw, name = document.get("raw"), document.get("command")
    if raw is not None and name is not None:
        return None, [FieldProblem("raw", "give either raw or command, not both")]
    if raw is None and name is None:
        return None, [FieldProblem("body", "needs raw (the command text) or command (a typed command: "
                                           f"{', '.join(sorted(TYPED))})")]
    if raw is not None:
        if "serial" in document:
            return None, [FieldProblem("serial", "only for typed commands; a raw command carries its own")]
        return parse_raw(device, raw)
    if not isinstance(name, str) or name not in TYPED:
        return None, [FieldProblem("command", f"unknown command; known: {', '.join(sorted(TYPED))}")]
    serial = document.get("serial", DEFAULT_SERIAL)
    if not isinstance(serial, str) or not _DIGITS.fullmatch(serial):
        return None, [FieldProblem("serial", "1 to 8 digits, as text")]
    typed = TYPED[name]
    text = "(" + ",".join((device, "1", serial, typed.word, *typed.params)) + ")"
    return Rendered(text, typed.word, _key(typed.word, typed.params), serial, typed.name), []


def parse_raw(device: str, raw: Any) -> tuple[Rendered | None, list[FieldProblem]]:
    if not isinstance(raw, str):
        return None, [FieldProblem("raw", "must be a string")]
    if not 0 < len(raw) <= MAX_TEXT:
        return None, [FieldProblem("raw", f"1 to {MAX_TEXT} characters")]
    if not _PRINTABLE.fullmatch(raw):
        return None, [FieldProblem("raw", "printable ASCII only (no control or non-ASCII characters)")]
    if not (raw.startswith("(") and raw.endswith(")")) or "(" in raw[1:-1] or ")" in raw[1:-1]:
        return None, [FieldProblem("raw", "must be one parenthesised command, e.g. (794308010642,1,001,BASE,1)")]
    fields = raw[1:-1].split(",")
    if len(fields) < 4:
        return None, [FieldProblem("raw", "needs at least device number, flag, serial and command word")]
    problems = []
    if fields[0] != device:
        problems.append(FieldProblem("raw", "the first field must be the device number of the URL"))
    if not _DIGITS.fullmatch(fields[1]):
        problems.append(FieldProblem("raw", "the second field (1 in a command) must be digits"))
    if not _DIGITS.fullmatch(fields[2]):
        problems.append(FieldProblem("raw", "the third field (the serial, e.g. 001) must be digits"))
    if not _WORD.fullmatch(fields[3]):
        problems.append(FieldProblem("raw", "the fourth field must be a command word in capitals, e.g. BASE"))
    if problems:
        return None, problems
    return Rendered(raw, fields[3], _key(fields[3], fields[4:]), fields[2]), []


def _key(word: str, params: tuple[str, ...] | list[str]) -> str:
    return word + (params[0] if params else "")


def _leading_word(text: str) -> str | None:
    match = re.match(r"[A-Za-z_]+", text)
    return match.group(0) if match else None


def command_reply(event: dict[str, Any]) -> CommandReply | None:
    """What a stored `cmd` event says about the command it answers."""
    if event.get("kind") != "cmd":
        return None
    data = event.get("data") or {}
    command_type = data.get("commandType") or None
    response = data.get("response") if data.get("ok") else None
    fields = [str(v) for v in response] if isinstance(response, list) else []
    word = fields[3] if len(fields) > 3 else None
    if command_type and command_type.upper() == PLATFORM_TYPE:
        key = None  # the cloud's failure names no command: it answers the oldest one waiting
    elif command_type:
        key = command_type
        word = word or _leading_word(command_type)
    else:
        key = _key(word, fields[4:5]) if word else None
    return CommandReply(
        device_id=event["deviceId"], received_at=event["receivedAt"], responded_at=event["occurredAt"],
        event_id=event["eventId"], ok=bool(data.get("ok")), match_key=key, word=word,
        serial=fields[2] if len(fields) > 2 else None, command_type=command_type,
        response=response if isinstance(response, list) else None,
        error=None if data.get("ok") else (data.get("error") or data.get("content") or "no content"),
    )
