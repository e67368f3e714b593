"""The console's pages: server-rendered HTML (Starlette + Jinja2), one small stylesheet, three
scripts for the maps (a device's track with its playback, the fleet's positions, several devices'
tracks), one for the Live page (server-sent events from live.Fanout: one stream reader for every
tab) and one that follows a device's open commands. Every read of the table goes through reads.Reads; commands go
through the command API with the CLI's client (commands.Commands)."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import hmac
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from devicegate_console import shaping
from devicegate_console.commands import Commands, CommandsUnavailable
from devicegate_console.live import Fanout, Subscriber
from devicegate_console.reads import ALARM_STATUSES, PHOTO_URL_SECONDS, Reads
from devicegate_console.safety import Guard

HERE = Path(__file__).parent
#: Events per timeline page.
PAGE_SIZE = 50
#: Quarantined payloads listed per vendor on the quarantine page and read for a device's page (newest first).
QUARANTINE_SCAN = 500
#: ...and counted per vendor on the fleet page (a warning: "100+" says enough).
QUARANTINE_COUNT = 100
#: Events a track is read from at most (the newest, when its range holds more).
TRACK_LIMIT = 5000
DEFAULT_STOP_MINUTES = 5.0
#: Devices whose tracks one map draws at most (each is one /track read, up to TRACK_LIMIT events).
MAX_TRACKS = 6
#: One colour per track, told apart on a map and in its legend (none is a marker's green or red).
TRACK_COLOURS = ("#2456b3", "#d9730d", "#7b3fb3", "#0f8a8a", "#c2185b", "#6b6b00")
#: Rows the Live page keeps (the newest; older ones leave the page as new ones come).
LIVE_ROWS = 200
#: A comment line on an idle Live stream this often (seconds), so a proxy or the browser keeps it open.
LIVE_KEEPALIVE_S = 15.0
#: OpenStreetMap's tile template: what --tiles defaults to (its usage policy allows light use).
OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"


@dataclass
class Settings:
    """How the command started the console: what it reads, where tiles come from, what to call it."""

    reads: Reads
    token: str
    port: int
    tiles: str | None = OSM_TILES
    target: str = "the local stack"
    #: The command API (the CLI's client of it), or why there is none; None: not looked for.
    commands: Commands | None = None

    @property
    def csrf(self) -> str:
        """What the console's forms carry, and a request that changes something must bring back:
        derived from the access token, so it is as secret and lives as long."""
        return hmac.new(self.token.encode(), b"devicegate console forms", hashlib.sha256).hexdigest()


class NotFound(Exception):
    pass


class Pages:
    """The console's pages over one target's reads. Plain functions, not coroutines: the reads
    block (boto3), so Starlette runs each page in its thread pool, and one slow page does not
    hold the others up."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.reads = settings.reads
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(["html"]))
        self.templates.filters.update(
            local=shaping.local_time, ago=shaping.ago, pretty=shaping.pretty, zone=shaping.zone,
            q=lambda value: quote(str(value), safe=""),
            group_value=lambda group: {k: v for k, v in group.items() if k not in ("at", "eventId")})
        self.templates.globals.update(target=settings.target, statuses=ALARM_STATUSES,
                                      photo_minutes=PHOTO_URL_SECONDS // 60)
        #: The Live page's one stream reader, shared by every tab (live.Fanout).
        self.live = Fanout(self.reads.tail)
        self.commands = settings.commands or Commands(why_not="this console was started without a command API")

    def page(self, template: str, http_status: int = 200, **values: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(now=datetime.now(UTC), **values)
        return HTMLResponse(html, status_code=http_status)

    def vendor_of(self, value: str | None) -> str | None:
        if value and value not in self.reads.vendors():
            raise NotFound(f"no vendor {value!r}")
        return value or None

    def fleet(self, request: Request) -> HTMLResponse:
        reads = self.reads
        vendor = self.vendor_of(request.query_params.get("vendor"))
        offline_only = request.query_params.get("offline") == "1"
        sections = []
        for name in reads.vendors():
            devices = reads.devices(name)
            waiting = reads.quarantined(name, limit=QUARANTINE_COUNT)
            quarantined = len(waiting.items)
            online = sum(1 for d in devices if d.get("online") is not False)
            counts = {"devices": len(devices), "online": online, "offline": len(devices) - online,
                      "quarantined": quarantined, "more": waiting.more}
            rows = []
            if vendor in (None, name):
                shown = [d for d in devices if not offline_only or d.get("online") is False]
                # Each row is the device's whole state: its position column needs no second read.
                rows = [dict(d, where=shaping.where(d), positioned=bool(_position(d))) for d in shown]
                rows.sort(key=lambda d: d.get("lastSeen") or "", reverse=True)
            sections.append({"vendor": name, "counts": counts, "rows": rows, "shown": vendor in (None, name)})
        return self.page("fleet.html", sections=sections, vendor=vendor, offline_only=offline_only,
                         vendors=reads.vendors(), max_tracks=MAX_TRACKS)

    def fleet_map(self, request: Request) -> HTMLResponse:
        """Every listed device's latest position on one map (the fleet page's filters)."""
        vendor = self.vendor_of(request.query_params.get("vendor"))
        offline_only = request.query_params.get("offline") == "1"
        markers = []
        for name in self.reads.vendors():
            if vendor not in (None, name):
                continue
            shown = [d for d in self.reads.devices(name) if not offline_only or d.get("online") is False]
            states = self.reads.device_states(name, [d["deviceId"] for d in shown])
            for device in shown:
                position = ((states.get(device["deviceId"]) or {}).get("state") or {}).get("position") or {}
                if "latitude" in position and "longitude" in position:
                    markers.append({"vendor": name, "deviceId": device["deviceId"], "lat": position["latitude"],
                                    "lon": position["longitude"], "at": position.get("at"),
                                    "online": device.get("online") is not False,
                                    "href": f"/device/{quote(name, safe='')}/{quote(device['deviceId'], safe='')}"})
        return self.page("map.html", markers=markers, vendor=vendor, offline_only=offline_only,
                         vendors=self.reads.vendors(), tiles=self.settings.tiles)

    def tracks(self, request: Request) -> HTMLResponse:
        """The tracks of the devices ticked on the fleet page (`device=VENDOR/ID`, up to MAX_TRACKS)
        over one range, one colour each. The page's script reads each from /track/..., the device
        page's read; the range's end is by default the newest of their latest positions."""
        picked = list(dict.fromkeys(request.query_params.getlist("device")))
        chosen, unknown = [], []
        for value in picked[:MAX_TRACKS]:
            vendor, _, device_id = value.partition("/")
            state = self.reads.device_state(vendor, device_id) if vendor in self.reads.vendors() and device_id else None
            if state is None:
                unknown.append(value)
            else:
                chosen.append((vendor, device_id, _position(state).get("at")))
        latest = max((at for _, _, at in chosen if at), default=None)
        window = TrackRange.of(request.query_params, latest)
        fields = window.form()
        tracks = [{"vendor": vendor, "deviceId": device_id, "colour": TRACK_COLOURS[n % len(TRACK_COLOURS)],
                   "href": f"/device/{quote(vendor, safe='')}/{quote(device_id, safe='')}",
                   "src": f"/track/{quote(vendor, safe='')}/{quote(device_id, safe='')}?" + urlencode(fields)}
                  for n, (vendor, device_id, _) in enumerate(chosen)]
        return self.page("tracks.html", tracks=tracks, span=fields, picked=len(picked), dropped=picked[MAX_TRACKS:],
                         unknown=unknown, max_tracks=MAX_TRACKS, tiles=self.settings.tiles)

    def device(self, request: Request) -> HTMLResponse:
        reads = self.reads
        vendor = self.vendor_of(request.path_params["vendor"]) or ""
        device_id = request.path_params["device_id"]
        state = reads.device_state(vendor, device_id)
        if state is None:
            raise NotFound(f"no {vendor} device {device_id!r} has reported")
        params = request.query_params
        kind = params.get("kind") or None
        kinds = reads.kinds(vendor)
        if kind and kind not in kinds:
            raise NotFound(f"{vendor} has no kind {kind!r}")
        until = params.get("until") or None
        events, older = _timeline(reads, vendor, device_id, kind, until)
        # The map's points come from /track/... once the page is shown: a long track is the
        # slowest read of the page, and the timeline need not wait for it.
        latest = (state.get("state") or {}).get("position")
        track = None
        if latest:
            track = TrackRange.of(params, latest.get("at")).form()
            track["src"] = f"/track/{quote(vendor, safe='')}/{quote(device_id, safe='')}?" + urlencode(track)
        return self.page("device.html", vendor=vendor, device_id=device_id, state=state, events=events,
                         kinds=kinds, kind=kind, until=until, older=older, tiles=self.settings.tiles, track=track,
                         commands=self.command_block(vendor, device_id, params),
                         alarms=reads.device_alarms(vendor, device_id),
                         quarantined=_device_quarantine(reads, vendor, device_id))

    def track(self, request: Request) -> JSONResponse:
        vendor = self.vendor_of(request.path_params["vendor"]) or ""
        device_id = request.path_params["device_id"]
        state = self.reads.device_state(vendor, device_id)
        if state is None:
            raise NotFound(f"no {vendor} device {device_id!r} has reported")
        latest = (state.get("state") or {}).get("position") or {}
        return JSONResponse(_track(self.reads, vendor, device_id, TrackRange.of(request.query_params, latest.get("at"))))

    def alarms(self, request: Request) -> HTMLResponse:
        vendor = self.vendor_of(request.query_params.get("vendor"))
        status = request.query_params.get("status") or None
        if status and status not in ALARM_STATUSES:
            raise NotFound(f"no alarm status {status!r}")
        rows = []
        for name in self.reads.vendors():
            for each in ALARM_STATUSES:
                if vendor in (None, name) and status in (None, each):
                    rows += self.reads.alarms(name, each)
        for alarm in rows:
            alarm["stepList"] = sorted(alarm.get("steps", {}).items(), key=lambda s: s[1])
        rows.sort(key=lambda a: a.get("statusAt") or "", reverse=True)
        return self.page("alarms.html", rows=rows, vendor=vendor, status=status, vendors=self.reads.vendors())

    def quarantine_list(self, request: Request) -> HTMLResponse:
        vendor = self.vendor_of(request.query_params.get("vendor"))
        reason = request.query_params.get("reason", "").strip() or None
        sections = []
        for name in self.reads.vendors():
            if vendor not in (None, name):
                continue
            # One vendor: all of its payloads are read, so the replay form counts every one the
            # filter matches, not only those listed.
            entries = [i for i in self.reads.quarantined(name, limit=None if vendor else QUARANTINE_SCAN).items
                       if shaping.reason_holds(i, reason)]
            sections.append({"vendor": name, "entries": entries[:QUARANTINE_SCAN], "matching": len(entries)})
        return self.page("quarantine.html", sections=sections, vendor=vendor, reason=reason,
                         vendors=self.reads.vendors(), limit=QUARANTINE_SCAN, csrf=self.settings.csrf,
                         replays=self.reads.store_over is not None)

    async def replay_selection(self, request: Request) -> HTMLResponse:
        """Every quarantined payload the quarantine page's filters match (a vendor, a part of the
        reason), replayed as `devicegate replay --vendor V --reason R` replays them, or tried
        (`action=dry-run`: every write withheld); one outcome per item and a count per outcome."""
        form = await self._checked_form(request)
        if form is None:
            return self._refused_change()
        vendor = self.vendor_of(form.get("vendor")) or ""
        if not vendor:
            raise NotFound("a replay names its vendor")
        if self.reads.store_over is None:
            return self.page("error.html", http_status=409, title="Not replayed here",
                             message="This console cannot tell the deployment's retention: replay with devicegate replay.")
        reason = (form.get("reason") or "").strip() or None
        dry_run = form.get("action") == "dry-run"
        outcomes = await run_in_threadpool(self.reads.replay_matching, vendor, reason, dry_run)
        counts = Counter(o.status for o in outcomes)
        return self.page("quarantine_replay.html", vendor=vendor, reason=reason, dry_run=dry_run, outcomes=outcomes,
                         counts=sorted(counts.items()), words=shaping.REPLAY_WORDS, csrf=self.settings.csrf)

    def quarantine_item(self, request: Request, outcome: Any = None, edited: str | None = None,
                        tried: bool = False) -> HTMLResponse:
        vendor = self.vendor_of(request.path_params["vendor"]) or ""
        item = self.reads.quarantine_item(vendor, request.path_params["item_id"])
        if item is None:
            raise NotFound("no such quarantined payload")
        payload = shaping.payload_text(self.reads.quarantine_body(item))
        return self.page("quarantine_item.html", vendor=vendor, item=item, payload=payload, outcome=outcome,
                         edited=payload if edited is None else edited, tried=tried,
                         editable="body" in item and not item.get("replayedAt") and self.reads.store_over is not None,
                         csrf=self.settings.csrf)

    async def replay_item(self, request: Request) -> HTMLResponse:
        """Edit and replay: the form's payload through the live pipeline in place of what was
        kept, the edit audited on the item. Only from the console's own form (its CSRF token,
        compared in constant time, on top of the Origin check and the SameSite cookie)."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        offered = (form.get("csrf") or [""])[0]
        if not hmac.compare_digest(offered.encode(), self.settings.csrf.encode()):
            return self.page("error.html", http_status=403, title="Refused",
                             message="This change did not come from the console's own page: reload it and try again.")
        vendor = self.vendor_of(request.path_params["vendor"]) or ""
        item = await run_in_threadpool(self.reads.quarantine_item, vendor, request.path_params["item_id"])
        if item is None:
            raise NotFound("no such quarantined payload")
        if "body" not in item or item.get("replayedAt") or self.reads.store_over is None:
            return self.page("error.html", http_status=409, title="Not editable here",
                             message="Only a text payload still waiting in quarantine is edited here; "
                                     "replay the others with devicegate replay.")
        # A form's text comes back with CRLF line ends (HTML says so): the payload had LF.
        after = (form.get("payload") or [""])[0].replace("\r\n", "\n").encode()
        if (form.get("action") or [""])[0] == "try":
            outcome = await run_in_threadpool(self.reads.try_edited, item, after)
            return await run_in_threadpool(self.quarantine_item, request, outcome, after.decode(), True)
        before = str(item["body"]).encode()
        edit = {"by": f"{getpass.getuser()} (devicegate console)", "at": shaping.iso_now(),
                "changed": shaping.changed_fields(before, after), "sizeBefore": len(before), "sizeAfter": len(after)}
        outcome = await run_in_threadpool(self.reads.replay_edited, item, after, edit)
        return await run_in_threadpool(self.quarantine_item, request, outcome)

    # --- live ------------------------------------------------------------------------------------

    def live_page(self, request: Request) -> HTMLResponse:
        vendor = self.vendor_of(request.query_params.get("vendor"))
        kind = request.query_params.get("kind") or None
        kinds = sorted({k for name in self.reads.vendors() for k in self.reads.kinds(name)})
        if kind and kind not in kinds:
            raise NotFound(f"no kind {kind!r}")
        src = "/live/stream" + (f"?{urlencode({k: v for k, v in (('vendor', vendor), ('kind', kind)) if v})}"
                                if vendor or kind else "")
        return self.page("live.html", vendor=vendor, kind=kind, kinds=kinds, vendors=self.reads.vendors(),
                         src=src, rows=LIVE_ROWS, tabs=self.live.subscribers, failure=self.live.failure)

    async def live_stream(self, request: Request) -> Response:
        """Server-sent events: `ready` once the shared tail reads from now, then one `data:` line
        (a shaping.live_row) per event stored that passes the page's filters; `failed` if the
        stream cannot be read. Leaving the page closes the connection, which unsubscribes it."""
        vendor = self.vendor_of(request.query_params.get("vendor"))
        kind = request.query_params.get("kind") or None
        subscriber = self.live.subscribe(Subscriber(asyncio.get_running_loop(), vendor, kind))

        async def feed() -> Any:
            try:
                announced, idle = False, 0.0
                yield ": devicegate console live\n\n"
                while True:
                    if not announced and subscriber.ready.is_set():
                        announced = True
                        yield f"event: ready\ndata: {json.dumps({'since': shaping.iso_now()})}\n\n"
                    try:
                        event = await asyncio.wait_for(subscriber.queue.get(), 0.5)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        idle += 0.5
                        if idle >= LIVE_KEEPALIVE_S:
                            idle = 0.0
                            yield ": keepalive\n\n"
                        continue
                    idle = 0.0
                    if event is None:
                        failure = self.live.failure or "the stream stopped"
                        yield f"event: failed\ndata: {json.dumps({'message': failure})}\n\n"
                        return
                    yield f"data: {json.dumps(shaping.live_row(event), default=str)}\n\n"
            finally:
                self.live.unsubscribe(subscriber)

        return StreamingResponse(feed(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    # --- commands --------------------------------------------------------------------------------

    def command_block(self, vendor: str, device_id: str, params: Any) -> dict[str, Any] | None:
        """The device page's commands section: None for a vendor that takes none; else the list
        (or why it cannot be read or sent), the typed commands, and the last send's result."""
        if not Commands.vendor_takes_commands(vendor):
            return None
        block: dict[str, Any] = {"typed": Commands.typed(), "why_not": self.commands.why_not, "rows": [],
                                 "sent": params.get("sent"), "cancelled": params.get("cancelled"),
                                 "csrf": self.settings.csrf,
                                 "src": f"/commands/{quote(vendor, safe='')}/{quote(device_id, safe='')}",
                                 "error": None}
        if self.commands.why_not is None:
            try:
                block["rows"] = self.commands.listed(device_id)
            except CommandsUnavailable as exc:
                block["error"] = str(exc)
        block["open"] = any(c["open"] for c in block["rows"])
        # What the send was answered (its status then; the list has it now).
        block["sent_status"] = str(params.get("status") or "")
        return block

    def command_list(self, request: Request) -> HTMLResponse:
        """The commands table alone (the page's script polls it while a command is open)."""
        vendor = self.vendor_of(request.path_params["vendor"]) or ""
        device_id = request.path_params["device_id"]
        block = self.command_block(vendor, device_id, request.query_params)
        if block is None:
            raise NotFound(f"{vendor} takes no commands")
        return self.page("command_list.html", commands=block, vendor=vendor, device_id=device_id)

    async def _checked_form(self, request: Request) -> dict[str, str] | None:
        """The posted form, when it carries the console's CSRF token (compared in constant time);
        None otherwise."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        offered = (form.get("csrf") or [""])[0]
        if not hmac.compare_digest(offered.encode(), self.settings.csrf.encode()):
            return None
        return {k: v[0] for k, v in form.items()}

    def _refused_change(self) -> HTMLResponse:
        return self.page("error.html", http_status=403, title="Refused",
                         message="This change did not come from the console's own page: reload it and try again.")

    def _command_answer(self, vendor: str, device_id: str, title: str, outcome: Any) -> HTMLResponse:
        body = outcome.command
        message = f"The command API answered HTTP {outcome.status}: {body.get('message') or body.get('status') or ''}"
        return self.page("error.html", http_status=outcome.status if 400 <= outcome.status < 600 else 502,
                         title=title, message=message.rstrip(": "), problems=outcome.problems,
                         back=f"/device/{quote(vendor, safe='')}/{quote(device_id, safe='')}#commands")

    async def send_command(self, request: Request) -> Response:
        form = await self._checked_form(request)
        if form is None:
            return self._refused_change()
        vendor = self.vendor_of(request.path_params["vendor"]) or ""
        device_id = request.path_params["device_id"]
        if not Commands.vendor_takes_commands(vendor):
            raise NotFound(f"{vendor} takes no commands")
        try:
            outcome = await run_in_threadpool(self.commands.send, device_id, form)
        except CommandsUnavailable as exc:
            return self.page("error.html", http_status=503, title="Not sent", message=str(exc))
        if not outcome.ok:
            return self._command_answer(vendor, device_id, "Not sent", outcome)
        sent = {"sent": str(outcome.command.get("commandId")), "status": str(outcome.command.get("status"))}
        return RedirectResponse(f"/device/{quote(vendor, safe='')}/{quote(device_id, safe='')}?{urlencode(sent)}"
                                "#commands", status_code=303)

    async def cancel_command(self, request: Request) -> Response:
        form = await self._checked_form(request)
        if form is None:
            return self._refused_change()
        vendor = self.vendor_of(request.path_params["vendor"]) or ""
        device_id = request.path_params["device_id"]
        if not Commands.vendor_takes_commands(vendor):
            raise NotFound(f"{vendor} takes no commands")
        command_id = request.path_params["command_id"]
        try:
            outcome = await run_in_threadpool(self.commands.cancel, device_id, command_id)
        except CommandsUnavailable as exc:
            return self.page("error.html", http_status=503, title="Not cancelled", message=str(exc))
        if not outcome.ok:
            return self._command_answer(vendor, device_id, "Not cancelled", outcome)
        done = {"cancelled": command_id}
        return RedirectResponse(f"/device/{quote(vendor, safe='')}/{quote(device_id, safe='')}?{urlencode(done)}"
                                "#commands", status_code=303)

    async def not_found(self, request: Request, exc: Exception) -> HTMLResponse:
        return self.page("error.html", http_status=404, title="Not found", message=str(exc) or "not found")

    async def target_failed(self, request: Request, exc: Exception) -> HTMLResponse:
        # What AWS (or the local stack) answered, by its code: the page says the target failed,
        # not the console, and the operator can retry. The message stays out (it may quote input).
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        return self.page("error.html", http_status=502, title="The target did not answer",
                         message=f"{self.settings.target} answered {code}: try again, or check that it runs.")


def create_app(settings: Settings) -> Starlette:
    pages = Pages(settings)
    routes = [
        Route("/", pages.fleet),
        Route("/map", pages.fleet_map),
        Route("/device/{vendor}/{device_id:path}", pages.device),
        Route("/track/{vendor}/{device_id:path}", pages.track),
        Route("/tracks", pages.tracks),
        Route("/alarms", pages.alarms),
        Route("/live", pages.live_page),
        Route("/live/stream", pages.live_stream),
        Route("/commands/{vendor}/{device_id}", pages.command_list),
        Route("/commands/{vendor}/{device_id}/send", pages.send_command, methods=["POST"]),
        Route("/commands/{vendor}/{device_id}/{command_id}/cancel", pages.cancel_command, methods=["POST"]),
        Route("/quarantine", pages.quarantine_list),
        Route("/quarantine/replay", pages.replay_selection, methods=["POST"]),
        Route("/quarantine/{vendor}/{item_id}", pages.quarantine_item),
        Route("/quarantine/{vendor}/{item_id}/replay", pages.replay_item, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    guard = Guard(settings.token, settings.port, settings.tiles, settings.reads.photo_origin())
    app = Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
                    exception_handlers={NotFound: pages.not_found, 404: pages.not_found,
                                        ClientError: pages.target_failed, BotoCoreError: pages.target_failed})
    app.state.live = pages.live  # the Live page's fan-out (tests look at its tail)
    return app


def _timeline(reads: Reads, vendor: str, device_id: str, kind: str | None,
              until: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the device's events, newest first, and the link to the older ones (or None).
    The link's cursor is the last event's sort key (time#id): the query's upper bound is
    inclusive, so that event comes back first on the next page and is dropped there."""
    events = reads.events(vendor, device_id, kind=kind, until=until, limit=PAGE_SIZE + 2).items
    if until and "#" in until:
        events = [e for e in events if f"{e['occurredAt']}#{e['eventId']}" != until]
    older = None
    if len(events) > PAGE_SIZE:
        events = events[:PAGE_SIZE]
        cursor = f"{events[-1]['occurredAt']}#{events[-1]['eventId']}"
        older = "?" + urlencode({"kind": kind, "until": cursor} if kind else {"until": cursor})
    for event in events:
        event["lag"] = _lag(event)
        # (a console told no bucket shows none: there is nothing to sign them for)
        event["pictures"] = [dict(p, src=reads.photo_url(p["key"])) for p in shaping.pictures(event.get("data"))
                             if reads.bucket]
    return events, older


def _lag(event: dict[str, Any]) -> str:
    """How much later than the device's time the gateway received the event, when that is worth
    saying (a minute or more: a backlog, a backfill, a device clock off)."""
    occurred, received = shaping.parse_utc(event.get("occurredAt")), shaping.parse_utc(event.get("receivedAt"))
    if not occurred or not received or abs((received - occurred).total_seconds()) < 60:
        return ""
    said = shaping.ago(event["occurredAt"], now=received)
    return said.replace(" ago", " later").replace("in ", "") + (" earlier" if received < occurred else "")


@dataclass
class TrackRange:
    """The track's range as the form shows it (the machine's clock) and as the query takes it."""

    start: datetime | None
    end: datetime
    stop_minutes: float

    @classmethod
    def of(cls, params: Any, latest_at: str | None) -> TrackRange:
        """From the form's fields; by default every position up to the latest one."""
        end = _form_time(params.get("to")) or (shaping.parse_utc(latest_at) or datetime.now(UTC)) + timedelta(seconds=1)
        try:
            minutes = max(0.0, float(params.get("stop") or DEFAULT_STOP_MINUTES))
        except ValueError:
            minutes = DEFAULT_STOP_MINUTES
        return cls(_form_time(params.get("from")), end, minutes)

    def form(self) -> dict[str, Any]:
        """The fields, to the minute (the form's precision): `to` rounded up, so a range read
        back from the form still holds the point that ended it."""
        end = self.end
        if end.second or end.microsecond:
            end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return {"from": self.start.astimezone().strftime("%Y-%m-%dT%H:%M") if self.start else "",
                "to": end.astimezone().strftime("%Y-%m-%dT%H:%M"), "stop": f"{self.stop_minutes:g}"}


def _position(state: dict[str, Any] | None) -> dict[str, Any]:
    """A device state's latest position with its coordinates, or {}."""
    position = ((state or {}).get("state") or {}).get("position") or {}
    return position if "latitude" in position and "longitude" in position else {}


def _track(reads: Reads, vendor: str, device_id: str, chosen: TrackRange) -> dict[str, Any]:
    """The map's data: the positions in the range (as far back as TRACK_LIMIT events go) oldest
    first, and its stops."""
    page = reads.track_events(vendor, device_id, since=_iso(chosen.start) if chosen.start else None,
                              until=_iso(chosen.end), limit=TRACK_LIMIT)
    points = shaping.track_points(page.items)
    return {"points": points, "stops": [vars(s) for s in shaping.stops(points, chosen.stop_minutes)],
            "stopMinutes": chosen.stop_minutes, "cut": page.more, "limit": TRACK_LIMIT}


def _form_time(value: str | None) -> datetime | None:
    """A datetime-local field's value: the operator's own clock, as the form showed it."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is None else moment


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _device_quarantine(reads: Reads, vendor: str, device_id: str) -> list[dict[str, Any]]:
    """The vendor's quarantined payloads that name this device: in their route (an MQTT topic's
    segment) or as a value of their payload. A payload refused before its device could be told
    (unreadable JSON, no id field) names none, and is on the quarantine page only."""
    found = []
    for item in reads.quarantined(vendor, limit=QUARANTINE_SCAN).items:
        body = str(item["body"]).encode() if "body" in item else None
        if shaping.names_device(item.get("route") or {}, body, device_id):
            found.append(item)
    return found
