"""The device page's commands: listed, sent and cancelled through the command API, as `devicegate
command` does (devicegate_cli.device_commands: its Api, signed with SigV4 — the operator's own
credentials for a deployment, the local stack's placeholders locally). Not a second client of
that API: the console reuses the CLI's, and reads no command item itself, so a command sent here
is checked, rate-limited and recorded exactly as one sent from an app or the shell."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

#: How many of a device's commands the page lists (newest first).
LISTED = 20


@dataclass
class Outcome:
    """What the API answered a send or a cancel: its HTTP status and body (the command, or why not)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status in (200, 202)

    @property
    def command(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    @property
    def problems(self) -> list[str]:
        body = self.command
        found = [f"{p.get('field')}: {p.get('problem')}" for p in body.get("errors") or [] if isinstance(p, dict)]
        return found


class CommandsUnavailable(Exception):
    """The console cannot reach the command API (why, in words for the page)."""


@dataclass
class Commands:
    """The command API of the console's target, or why there is none (`why_not`)."""

    api: Any = None  # devicegate_cli.device_commands.Api
    why_not: str | None = None

    @classmethod
    def for_target(cls, stack: str | None, profile: str | None, region: str | None,
                   endpoint_url: str | None) -> Commands:
        """The CLI's own resolution (resolve_api): the stack's HttpApiUrl output with --stack, else
        the running local stack's HTTP routes."""
        from devicegate_cli.device_commands import CommandCliError, resolve_api

        args = argparse.Namespace(stack=stack, profile=profile, region=region, endpoint_url=endpoint_url,
                                  api_url=None)
        try:
            return cls(api=resolve_api(args))
        except CommandCliError as exc:
            return cls(why_not=str(exc))
        except Exception as exc:  # AWS refused the stack's description: say so, serve the rest
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            return cls(why_not=f"the stack's command API could not be found ({code})")

    @staticmethod
    def vendor_takes_commands(vendor: str) -> bool:
        """The vendors `devicegate command` sends to (its VENDOR: Jointech)."""
        from devicegate_cli.device_commands import VENDOR

        return vendor == VENDOR

    @staticmethod
    def typed() -> list[dict[str, str]]:
        """The typed commands a form offers: name and what it asks."""
        from devicegate_console.reads import typed_commands

        return typed_commands()

    def _call(self, method: str, device: str, body: dict[str, Any] | None = None,
              query: dict[str, str] | None = None, suffix: str = "") -> Outcome:
        from devicegate_cli.device_commands import CommandCliError

        if self.api is None:
            raise CommandsUnavailable(self.why_not or "this console has no command API")
        try:
            reply = self.api.request(method, device, body, query=query, suffix=suffix)
        except CommandCliError as exc:  # unreachable: the CLI's own words
            raise CommandsUnavailable(str(exc)) from None
        return Outcome(reply.status, reply.body)

    def listed(self, device: str) -> list[dict[str, Any]]:
        """The device's commands, newest first (the API's list), each with the times a person reads."""
        outcome = self._call("GET", device, query={"limit": str(LISTED)})
        if outcome.status != 200:
            raise CommandsUnavailable(f"the command API answered HTTP {outcome.status}: "
                                      f"{outcome.command.get('message', '')}".rstrip(": "))
        return [shown(c) for c in outcome.command.get("commands", [])]

    def send(self, device: str, form: dict[str, str]) -> Outcome:
        """The send form as the API's request body (what `devicegate command send` builds from its
        options): a typed or a raw command, now or kept for the next contact."""
        from devicegate_cli.device_commands import duration_arg

        body: dict[str, Any]
        if form.get("what") == "raw":
            body = {"raw": form.get("raw", "")}
        else:
            body = {"command": form.get("command", "")}
            if form.get("serial"):
                body["serial"] = form["serial"]
        if form.get("when") == "online":
            body["whenOnline"] = True
            if form.get("expires_in", "").strip():
                try:
                    body["expiresIn"] = duration_arg(form["expires_in"])
                except argparse.ArgumentTypeError as exc:
                    return Outcome(400, {"message": "the expiry is not a duration",
                                         "errors": [{"field": "expiresIn", "problem": str(exc)}]})
            if form.get("allow_unsafe") == "1":
                body["allowUnsafe"] = True
        return self._call("POST", device, body)

    def cancel(self, device: str, command_id: str) -> Outcome:
        import re

        if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", command_id):
            return Outcome(400, {"message": f"{command_id!r} is not a command id"})
        return self._call("POST", device, suffix=f"/{command_id}/cancel")


#: Where each answer's time is stamped (devicegate.core.commands.STATUS_AT).
_ANSWERED = ("succeededAt", "failedAt", "timedOutAt")
_ENDED = ("expiredAt", "cancelledAt")


def shown(command: dict[str, Any]) -> dict[str, Any]:
    """A command as the page lists it: its lifecycle word, and its requested / sent / answered
    (or ended) times."""
    from devicegate_console.reads import command_statuses

    lifecycle, still_open = command_statuses()
    status = str(command.get("status") or "")
    waiting = bool(command.get("whenOnline"))
    response = command.get("response")
    return dict(command,
                lifecycle=lifecycle.get(status, status),
                what=command.get("command") or command.get("text"),
                requested=command.get("requestedAt") or command.get("queuedAt"),
                sent=command.get("sentAt") if waiting else command.get("requestedAt"),
                answered=next((command[k] for k in _ANSWERED if command.get(k)), None),
                ended=next((command[k] for k in _ENDED if command.get(k)), None),
                answer=",".join(str(v) for v in response) if isinstance(response, list) else command.get("error"),
                open=status in still_open,
                cancellable=status == "queued")
