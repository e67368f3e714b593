"""`devicegate events` without --device, and `devicegate tail` (`events --follow`): the fleet's
events in one list, newest first, merged from the device timelines (store.queries.fleet_events),
and the new ones as they are stored, read from the table's stream beside the outbox
(store.stream_tail). docs/consuming.md, "The fleet's events", says what each costs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from devicegate_cli.commands import (
    Target,
    _check_window,
    _kinds_of,
    _limit,
    _say_if_more,
    print_events,
    resolve_target,
    shown_time,
    summarize,
)
from devicegate_cli.edge import UsageError

#: Columns of the fleet's list and of the tail (whose lines are printed as they come: fixed widths).
COLUMNS = ["occurredAt", "vendor", "deviceId", "kind", "eventId", "summary"]
_WIDTHS = {"occurredAt": 24, "vendor": 13, "deviceId": 20, "kind": 14, "eventId": 32}


def fleet_command(args: argparse.Namespace) -> int:
    _check(args)
    t = resolve_target(args)
    if args.follow:
        return _follow(t, args)
    page = _history(t, args, _limit(args))
    _say_if_more(page, args, "events")
    return print_events(page.items, args.json, COLUMNS)


def _check(args: argparse.Namespace) -> None:
    """Every contradiction is one line before anything is read."""
    from devicegate.vendors import vendor_names

    if args.device and not args.vendor:
        raise UsageError("--device needs its --vendor")
    if args.follow and args.until:
        raise UsageError("--until cannot end a --follow, which prints events as they are stored (use --count N "
                         "to stop after N events, or leave out --follow)")
    if args.count and not args.follow:
        raise UsageError("--count goes with --follow (a list stops at --limit)")
    _check_window(args)
    if args.kind:
        vendors = [args.vendor] if args.vendor else vendor_names()
        if not [v for v in vendors if args.kind in _kinds_of(v)]:
            kinds = sorted({k for v in vendors for k in _kinds_of(v)})
            if args.vendor:
                raise UsageError(f"{args.vendor} has no kind {args.kind!r}; its kinds: {', '.join(kinds)}")
            raise UsageError(f"no vendor has a kind {args.kind!r}; the kinds: {', '.join(kinds)}")


def _vendors(args: argparse.Namespace) -> list[str]:
    """The vendors whose devices can have what was asked: a kind only some vendors have reads
    only their devices."""
    from devicegate.vendors import vendor_names

    vendors = [args.vendor] if args.vendor else vendor_names()
    return [v for v in vendors if not args.kind or args.kind in _kinds_of(v)]


def _history(t: Target, args: argparse.Namespace, limit: int | None) -> Any:
    """A page of the device's or the fleet's events, through the typed client's plain reads."""
    reads = t.reads()
    if args.device:
        return reads.timeline(args.vendor, args.device, kind=args.kind, since=args.since, until=args.until,
                              limit=limit)
    return reads.fleet(vendors=_vendors(args), kind=args.kind, since=args.since, until=args.until, limit=limit)


def stream_arn(t: Target) -> str:
    """The table's stream: the stack's output EventsTableStreamArn when deployed, else the
    table's own LatestStreamArn (DescribeTable)."""
    from devicegate.store.stream_tail import stream_arn as of_table

    if t.stack:
        stack = t.client("cloudformation").describe_stacks(StackName=t.stack)["Stacks"][0]
        arn = next((o["OutputValue"] for o in stack.get("Outputs", []) if o["OutputKey"] == "EventsTableStreamArn"), "")
        if arn:
            return str(arn)
    return of_table(t.client("dynamodb"), t.table)


def _follow(t: Target, args: argparse.Namespace) -> int:
    from devicegate.store.stream_tail import NoStream, StreamTail

    try:
        arn = stream_arn(t)
    except NoStream as exc:
        print(f"devicegate tail: {exc}: nothing to follow", file=sys.stderr)
        return 1
    told: set[str] = set()

    def busy(code: str, wait_s: float) -> None:
        # Said once: a tail that keeps being throttled keeps backing off and catches up later.
        if code not in told:
            told.add(code)
            print(f"devicegate tail: the stream refused a read ({code}): more readers than DynamoDB serves at once "
                  f"(the outbox and another tail?); waiting up to {wait_s:g}s between reads, nothing is skipped",
                  file=sys.stderr, flush=True)

    tail = StreamTail(t.client("dynamodbstreams"), arn, vendor=args.vendor, kind=args.kind, on_busy=busy)
    try:
        _print_following(t, args, tail)
    except KeyboardInterrupt:
        pass  # the way a tail ends: not a failure
    return 0


def _print_following(t: Target, args: argparse.Namespace, tail: Any) -> None:
    # The stream's end is taken before the history is read: an event stored in between is in
    # both, and printed once.
    tail.start()
    printed: set[tuple[str, str, str]] = set()
    count = 0
    line = _json_line if args.json else _text_line
    if not args.json:
        print("  ".join(c.upper().ljust(_WIDTHS.get(c, 0)) for c in COLUMNS).rstrip(), flush=True)
    if args.since:
        history = _history(t, args, _limit(args))
        _say_if_more(history, args, "events since --since")
        for event in reversed(history.items):
            printed.add(_identity(event))
            line(event)
            count += 1
            if args.count and count >= args.count:
                return
    print("(following new events; Ctrl-C to stop)", file=sys.stderr, flush=True)
    for event in tail.events():
        if args.device and event.get("deviceId") != args.device or _identity(event) in printed:
            continue
        line(event)
        count += 1
        if args.count and count >= args.count:
            return


def _identity(event: dict[str, Any]) -> tuple[str, str, str]:
    return (str(event.get("vendor")), str(event.get("deviceId")), str(event.get("eventId")))


def _text_line(event: dict[str, Any]) -> None:
    cells = [summarize(event) if c == "summary" else "-" if event.get(c) is None else str(shown_time(event[c]))
             for c in COLUMNS]
    print("  ".join(cell.ljust(_WIDTHS.get(c, 0)) for c, cell in zip(COLUMNS, cells, strict=True)).rstrip(),
          flush=True)


def _json_line(event: dict[str, Any]) -> None:
    from devicegate_cli import commands

    if commands.LOCAL_TIME:
        from devicegate_cli.presentation import times_in_local_zone

        event = times_in_local_zone(event)
    print(json.dumps(event, ensure_ascii=False, separators=(",", ":")), flush=True)

