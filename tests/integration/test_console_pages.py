"""The console's pages against the moto stack in process (no browser): served by uvicorn on a free
port in a thread, read over HTTP as a browser would, after the link's token became a cookie.
What the browser tests cannot cheaply reach: a timeline long enough to page through, with ties."""

from __future__ import annotations

import contextlib
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
from devicegate_console.reads import Reads
from devicegate_console.shaping import local_time
from tests.support import seed_fleet

TOKEN = "integration-token"


class Browser:
    """urllib with the console's cookie, no redirects followed (the tests look at them)."""

    def __init__(self, base: str):
        self.base = base
        self.cookie = ""

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
def serving(reads: Reads) -> Iterator[Browser]:
    """The console over `reads`, on a free port, with a browser that opened its link."""
    import uvicorn

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    app = create_app(Settings(reads, TOKEN, port, None))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    browser = Browser(f"http://127.0.0.1:{port}")
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
