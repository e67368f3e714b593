"""The console's pages against the moto stack in process (no browser): served by uvicorn on a free
port in a thread, read over HTTP as a browser would, after the link's token became a cookie.
What the browser tests cannot cheaply reach: a timeline long enough to page through, with ties."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from devicegate_console.app import PAGE_SIZE, Settings, create_app
from devicegate_console.commands import Commands
from devicegate_console.reads import Reads
from devicegate_console.shaping import local_time
from tests.support import seed_fleet

TOKEN = "integration-token"


class Browser:
    """urllib with the console's cookie, no redirects followed (the tests look at them)."""

    def __init__(self, base: str):
        self.base = base
        self.cookie = ""
        self.app: Any = None

    def get(self, path: str) -> tuple[int, str, dict[str, str]]:
        class Stay(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        request = urllib.request.Request(self.base + path, headers={"Cookie": self.cookie} if self.cookie else {})
        try:
            with urllib.request.build_opener(Stay).open(request, timeout=30) as answer:
                return answer.status, answer.read().decode(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), dict(error.headers)


@contextlib.contextmanager
def serving(reads: Reads, commands: Commands | None = None) -> Iterator[Browser]:
    """The console over `reads` (and `commands`: its command API), on a free port, with a browser
    that opened its link."""
    import uvicorn

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    app = create_app(Settings(reads, TOKEN, port, None, commands=commands))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    browser = Browser(f"http://127.0.0.1:{port}")
    browser.app = app
    status, _, headers = browser.get(f"/?token={TOKEN}")
    assert status == 303
    browser.cookie = headers["set-cookie"].split(";", 1)[0]
    try:
        yield browser
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listening.close()


@pytest.fixture
def console(stack) -> Iterator[Browser]:
    with serving(Reads(stack.ddb, stack.session.client("s3"), stack.table)) as browser:
        yield browser


def _event_ids(html: str) -> list[str]:
    return re.findall(r'data-event-id="([^"]+)"', html)


def _older(html: str) -> str | None:
    found = re.search(r'<a id="older" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_the_timeline_pages_through_every_event_once_newest_first_ties_included(stack, console):
    # Given a device with 2.5 pages of events, two of them at each timestamp
    total = PAGE_SIZE * 2 + PAGE_SIZE // 2
    [device] = seed_fleet(stack.ddb, stack.table, "jointech", 1, total, same_time=2)
    # When its page is read, then each "older" link in turn
    path, pages = f"/device/jointech/{device}", []
    while path:
        status, html, _ = console.get(path)
        assert status == 200
        pages.append(_event_ids(html))
        older = _older(html)
        path = f"/device/jointech/{device}{older}" if older else ""
    # Then the pages hold 50, 50 and 25 events, each exactly once, newest first
    assert [len(p) for p in pages] == [PAGE_SIZE, PAGE_SIZE, PAGE_SIZE // 2]
    seen = [event_id for page in pages for event_id in page]
    assert seen == [f"e{n:07d}" for n in reversed(range(total))]


def test_the_track_holds_every_position_oldest_first(stack, console):
    # Given a device with 30 positions
    [device] = seed_fleet(stack.ddb, stack.table, "mettax", 1, 30)
    # When its page is read, and the track its map reads from
    _, html, _ = console.get(f"/device/mettax/{device}")
    source = re.search(r'data-src="([^"]+)"', html).group(1).replace("&amp;", "&")
    status, answer, headers = console.get(source)
    # Then the map's data has the 30 points, oldest first, and the fleet page lists the device online
    assert status == 200 and headers["content-type"] == "application/json"
    assert [p["eventId"] for p in json.loads(answer)["points"]] == [f"e{n:07d}" for n in range(30)]
    # And a range of 5 minutes holds the 10 points of those minutes (30 s apart), [from, to)
    _, narrowed, _ = console.get(f"/track/mettax/{device}?from=2025-02-07T00:05:00%2B00:00"
                                 "&to=2025-02-07T00:10:00%2B00:00")
    assert [p["eventId"] for p in json.loads(narrowed)["points"]] == [f"e{n:07d}" for n in range(10, 20)]
    _, fleet, _ = console.get("/?vendor=mettax")
    assert re.search(rf'data-device="{device}">.*?<span class="status online">', fleet, re.S)


@pytest.mark.parametrize("path", ["/device/jointech/never-seen", "/device/nobody/x", "/alarms?status=closed",
                                  "/quarantine/jointech/0000", "/?vendor=nobody"])
def test_what_does_not_exist_is_a_404_page(console, path):
    status, html, _ = console.get(path)
    assert status == 404
    assert "Not found" in html


def test_an_unknown_kind_is_a_404_not_an_empty_timeline(stack, console):
    [device] = seed_fleet(stack.ddb, stack.table, "jointech", 1, 3)
    assert console.get(f"/device/jointech/{device}?kind=location")[0] == 200
    assert console.get(f"/device/jointech/{device}?kind=teleport")[0] == 404


def test_a_device_page_lists_the_quarantined_payloads_that_name_it(stack, console):
    from datetime import UTC, datetime

    from devicegate.core.errors import FieldProblem
    from devicegate.store.quarantine import DynamoQuarantine, QuarantineRecord

    # Given a device, a refused payload naming it in its body, one naming it in its MQTT topic,
    # and one naming another device
    [device] = seed_fleet(stack.ddb, stack.table, "jointech", 1, 1)
    kept = DynamoQuarantine(stack.ddb, stack.session.client("s3"), stack.table, stack.bucket, 7)
    at = datetime(2025, 2, 7, 8, 0, tzinfo=UTC)

    def refuse(body: bytes, route: dict[str, str]) -> None:
        kept.write(QuarantineRecord("jointech", "location", "mqtt" if route else "http", "latitude out of range",
                                    [FieldProblem("latitude", "must be between -90 and 90")], body, at,
                                    "application/json", route))

    refuse(b'{"assetId": "%s", "latitude": 91}' % device.encode(), {})
    refuse(b'{"latitude": 92}', {"topic": f"upload/ak-demo/{device}/location"})
    refuse(b'{"assetId": "someone-else", "latitude": 93}', {})
    # When the device's page is read
    _, html, _ = console.get(f"/device/jointech/{device}")
    # Then its side lists the two that name it, with their reason, and links each to its payload
    side = html.split('id="device-quarantine"', 1)[1].split("</section>", 1)[0]
    links = re.findall(r'href="(/quarantine/jointech/[0-9a-f]+)"', side)
    assert len(links) == 2 and side.count("latitude out of range") == 2
    payloads = [console.get(link)[1] for link in links]
    assert sorted("91" in p or "92" in p for p in payloads) == [True, True]
    assert not any("someone-else" in p for p in payloads)


def test_the_fleet_shows_an_offline_device_and_filters_to_the_offline_ones(stack, console):
    from datetime import UTC, datetime

    from devicegate.store.devices import DeviceStore

    # Given three devices, one of which the sweep marked offline (silent 10 minutes past its last contact)
    quiet, *talking = seed_fleet(stack.ddb, stack.table, "jointech", 3, 1)
    store = DeviceStore(stack.ddb, stack.table)
    assert store.mark_offline(store.get("jointech", quiet), 600, datetime(2025, 2, 8, tzinfo=UTC))
    # When the fleet page is read
    _, html, _ = console.get("/?vendor=jointech")
    # Then the vendor's counts say 3 devices, 2 online, 1 offline, and the device's row says offline
    counts = re.search(r'<tr data-vendor="jointech">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'class="n (?:devices|online|offline)">(?:<span class="bad">)?(\d+)', counts) == ["3", "2", "1"]
    since = local_time("2025-02-07T00:10:00.000Z")  # its last contact + 600 s, on this machine's clock
    assert re.search(rf'data-device="{quiet}">.*?<span class="status offline" title="offline since {since}"', html,
                     re.S)
    # And filtered to the offline devices, it alone is listed
    _, offline, _ = console.get("/?vendor=jointech&offline=1")
    assert re.findall(r'data-device="([^"]+)"', offline) == [quiet]


def test_a_target_that_fails_is_a_502_page_naming_its_answer(stack):
    # Given a console over a table that is not there
    with serving(Reads(stack.ddb, stack.session.client("s3"), "no-such-table")) as console:
        # When a page is read
        status, html, _ = console.get("/alarms")
    # Then the page says the target failed, with AWS's error code, and no traceback
    assert status == 502
    assert "The target did not answer" in html and "ResourceNotFoundException" in html
    assert "Traceback" not in html


def test_a_replay_without_the_forms_token_is_refused_and_nothing_is_recorded(stack, console):
    from datetime import UTC, datetime

    from devicegate.store.quarantine import DynamoQuarantine, QuarantineRecord, quarantined

    # Given a quarantined payload
    DynamoQuarantine(stack.ddb, stack.session.client("s3"), stack.table, stack.bucket, 7).write(
        QuarantineRecord("jointech", "location", "http", "bad", [], b'{"assetId": "1"}',
                         datetime(2025, 2, 7, tzinfo=UTC), "application/json"))
    [item] = quarantined(stack.ddb, stack.table, "jointech")
    path = f"/quarantine/jointech/{item['id']}/replay"
    for headers, body in (({"Origin": console.base}, b"payload=%7B%7D"),  # no form token
                          ({"Origin": console.base}, b"csrf=guess&payload=%7B%7D"),  # a wrong one
                          ({"Origin": "https://attacker.example"}, b"payload=%7B%7D")):  # another site
        request = urllib.request.Request(console.base + path, data=body, method="POST",
                                         headers={**headers, "Cookie": console.cookie,
                                                  "Content-Type": "application/x-www-form-urlencoded"})
        # When it is posted without the console's form token, or from another origin
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        # Then it is refused, and the item is neither edited nor replayed
        assert refused.value.code == 403
    [still] = quarantined(stack.ddb, stack.table, "jointech")
    assert "edits" not in still and "replayedAt" not in still


# --- Live: one stream reader shared by the tabs ----------------------------------------------------

def _open_stream(console: Browser, query: str = "") -> tuple[Any, Any]:
    import http.client

    connection = http.client.HTTPConnection(console.base.removeprefix("http://"), timeout=10)
    connection.request("GET", "/live/stream" + query, headers={"Cookie": console.cookie})
    answer = connection.getresponse()
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
    return connection, answer


def _next_message(answer: Any) -> tuple[str, dict[str, Any]]:
    """The next server-sent event (its name, `message` by default, and its data); comments skipped."""
    name, data = "message", None
    while True:
        line = answer.fp.readline().decode()
        assert line, "the stream ended"
        if line == "\n" and data is not None:
            return name, json.loads(data)
        if line.startswith("event: "):
            name = line[7:].strip()
        elif line.startswith("data: "):
            data = line[6:].strip()


def test_two_live_tabs_share_one_tail_which_stops_when_both_close(stack):
    from tests.unit.test_console_live import FakeTail, _event

    reads = Reads(stack.ddb, stack.session.client("s3"), stack.table)
    tail = FakeTail()
    reads.tail = tail  # type: ignore[method-assign]  # the stream, with events the test hands in
    with serving(reads) as console:
        live = console.app.state.live
        # Given two Live tabs, the second on Mettax only
        first, every = _open_stream(console)
        second, mettax = _open_stream(console, "?vendor=mettax")
        assert _next_message(every)[0] == "ready" and _next_message(mettax)[0] == "ready"
        # When a Jointech and a Mettax event are stored
        tail.events.put(_event("jointech", "location", 1))
        tail.events.put(dict(_event("mettax", "gps", 2), facts={"position": {"latitude": 1.5, "longitude": 2.5}}))
        # Then the first tab gets both as rows, the second the Mettax one, from ONE tail
        assert [_next_message(every)[1]["eventId"] for _ in range(2)] == ["e1", "e2"]
        name, row = _next_message(mettax)
        assert name == "message" and row["eventId"] == "e2" and row["summary"] == "1.50000, 2.50000"
        assert row["href"] == "/device/mettax/d2"
        assert tail.calls == 1 and live.started == 1 and live.subscribers == 2
        thread = live.thread
        # When both tabs close
        first.close()
        second.close()
        # Then the server sees them go and the tail's thread ends
        assert live.join(thread, timeout=10), "the tail's thread outlived its last tab"
        assert tail.ended.is_set() and live.subscribers == 0
        # And the page says the console reads the stream once for every tab
        status, html, _ = console.get("/live?vendor=mettax")
        assert status == 200 and 'data-src="/live/stream?vendor=mettax"' in html
        assert "One reader of the table's stream serves every Live tab" in html


# --- Commands: through the CLI's client of the command API -----------------------------------------

class FakeApi:
    """What devicegate_cli.device_commands.Api answers, recorded: the command API of a stack."""

    def __init__(self) -> None:
        from devicegate_cli.device_commands import Reply

        self.reply = Reply
        self.calls: list[tuple[str, str, Any, Any, str]] = []
        self.commands: list[dict[str, Any]] = []

    def request(self, method: str, device: str, body: dict[str, Any] | None = None,
                query: dict[str, str] | None = None, suffix: str = "") -> Any:
        self.calls.append((method, device, body, query, suffix))
        if method == "GET":
            return self.reply(200, {"commands": list(reversed(self.commands))}, {})
        if suffix.endswith("/cancel"):
            command = next(c for c in self.commands if c["commandId"] == suffix.split("/")[1])
            if command["status"] != "queued":
                return self.reply(409, command, {})
            command.update(status="cancelled", cancelledAt="2025-02-07T08:01:00.000Z")
            return self.reply(200, command, {})
        if body and body.get("whenOnline") and body.get("raw") and not body.get("allowUnsafe"):
            return self.reply(400, {"message": "invalid request", "errors": [
                {"field": "whenOnline", "problem": "this command may open or unlock something"}]}, {})
        command = {"commandId": f"c{len(self.commands) + 1}", "command": body.get("command") if body else None,
                   "text": "(1,1,001,BASE,1)", "requestedAt": "2025-02-07T08:00:00.000Z",
                   "status": "queued" if body and body.get("whenOnline") else "pending"}
        if command["status"] == "queued":
            command.update(whenOnline=True, attempts=0, maxAttempts=3, waitUntil="2025-02-07T09:00:00.000Z",
                           queuedAt="2025-02-07T08:00:00.000Z")
        self.commands.append(command)
        return self.reply(202, command, {})


def _post(console: Browser, path: str, fields: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    from urllib.parse import urlencode

    class Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(console.base + path, data=urlencode(fields).encode(), method="POST",
                                     headers={"Origin": console.base, "Cookie": console.cookie,
                                              "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.build_opener(Stay).open(request, timeout=30) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_a_command_sent_and_cancelled_from_the_device_page_goes_through_the_command_api(stack):
    [device] = seed_fleet(stack.ddb, stack.table, "jointech", 1, 1)
    api = FakeApi()
    with serving(Reads(stack.ddb, stack.session.client("s3"), stack.table), Commands(api=api)) as console:
        # Given a Jointech device's page: a form with the typed commands and the form token
        status, html, _ = console.get(f"/device/jointech/{device}")
        assert status == 200 and 'id="commands"' in html and "No command sent to this device yet" in html
        assert '<option value="query_base_info"' in html and '<option value="query_time"' in html
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
        # When a typed command is sent for the next contact, with an expiry
        status, _, headers = _post(console, f"/commands/jointech/{device}/send",
                                   {"csrf": csrf, "what": "typed", "command": "query_time", "when": "online",
                                    "expires_in": "2h"})
        # Then the API got what `devicegate command send --when-online --expires-in 2h` sends
        assert status == 303 and headers["location"] == f"/device/jointech/{device}?sent=c1&status=queued#commands"
        assert api.calls[-1] == ("POST", device, {"command": "query_time", "whenOnline": True, "expiresIn": 7200},
                                 None, "")
        # And the page names it queued, with its attempts, its expiry, a cancel button, and polls while open
        _, html, _ = console.get(f"/device/jointech/{device}?sent=c1&status=queued")
        assert 'id="sent-result" data-id="c1"' in html and "queued for the next contact" in html
        assert re.search(r'data-id="c1" data-status="queued">', html) and "0 of 3" in html
        assert 'data-open="1"' in html and "/static/commands.js" in html
        assert f'action="/commands/jointech/{device}/c1/cancel"' in html
        # When a raw command to keep is sent without the unsafe confirmation
        status, html, _ = _post(console, f"/commands/jointech/{device}/send",
                                {"csrf": csrf, "what": "raw", "raw": f"({device},1,001,RELAY,1)", "when": "online"})
        # Then the page says why the API refused it, naming the field
        assert status == 400 and "whenOnline: this command may open or unlock something" in html
        # When the waiting one is cancelled from the page
        status, _, headers = _post(console, f"/commands/jointech/{device}/c1/cancel", {"csrf": csrf})
        assert status == 303 and "cancelled=c1" in headers["location"]
        assert api.calls[-1][4] == "/c1/cancel"
        # Then its row (the fragment the page polls) says cancelled and offers no cancel any more
        _, fragment, _ = console.get(f"/commands/jointech/{device}")
        assert re.search(r'data-id="c1" data-status="cancelled">', fragment) and "/cancel" not in fragment
        assert 'data-open="0"' in fragment
        # And a send or a cancel without the form token is refused before the API hears of it
        calls = len(api.calls)
        for path in (f"/commands/jointech/{device}/send", f"/commands/jointech/{device}/c1/cancel"):
            assert _post(console, path, {"csrf": "guess", "command": "query_time"})[0] == 403
        assert len(api.calls) == calls


def test_the_device_page_says_why_it_cannot_send_and_other_vendors_have_no_commands(stack):
    [device] = seed_fleet(stack.ddb, stack.table, "jointech", 1, 1)
    [vehicle] = seed_fleet(stack.ddb, stack.table, "mettax", 1, 1)
    why = Commands(why_not="stack demo has no HttpApiUrl output")
    with serving(Reads(stack.ddb, stack.session.client("s3"), stack.table), why) as console:
        # Given a console with no command API: the Jointech page says why, and offers no form
        status, html, _ = console.get(f"/device/jointech/{device}")
        assert status == 200 and 'id="commands-off"' in html and "stack demo has no HttpApiUrl output" in html
        assert "/send" not in html
        # And a vendor that takes no commands has no commands section
        _, html, _ = console.get(f"/device/mettax/{vehicle}")
        assert 'id="commands"' not in html
        # And a send posted anyway (with the console's form token) is a page with the reason, not a failure
        csrf = hmac.new(TOKEN.encode(), b"devicegate console forms", hashlib.sha256).hexdigest()
        status, html, _ = _post(console, f"/commands/jointech/{device}/send", {"csrf": csrf, "command": "query_time"})
        assert status == 503 and "stack demo has no HttpApiUrl output" in html and "Traceback" not in html


def test_stopping_the_console_with_a_live_tab_open_ends_the_stream_and_its_tail(stack):
    import uvicorn

    from tests.unit.test_console_live import FakeTail

    # Given a console (as `devicegate console` configures uvicorn) with a Live tab open
    reads = Reads(stack.ddb, stack.session.client("s3"), stack.table)
    tail = FakeTail()
    reads.tail = tail  # type: ignore[method-assign]
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    app = create_app(Settings(reads, TOKEN, port, None))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    console = Browser(f"http://127.0.0.1:{port}")
    console.cookie = console.get(f"/?token={TOKEN}")[2]["set-cookie"].split(";", 1)[0]
    connection, answer = _open_stream(console)
    assert _next_message(answer)[0] == "ready"
    # When it is stopped (Ctrl-C)
    started = time.monotonic()
    server.should_exit = True
    thread.join(timeout=15)
    # Then it stops within the grace period and a little, and the tail's thread ends with the tab
    assert not thread.is_alive() and time.monotonic() - started < 8
    assert tail.ended.wait(5) and not app.state.live.running
    connection.close()
    listening.close()
