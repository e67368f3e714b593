"""`devicegate console` in a real browser: a local stack of this module's own with the `events/`
samples loaded (`devicegate examples load`), the console started as an operator starts it (a
subprocess, its link read from stdout), and Debian's headless chromium (./run chromium) driven
by selenium through one session for the whole module. Each test checks what a person would."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devicegate.store.quarantine import quarantined
from devicegate.store.queries import alarms_in_status, device_events, device_state, vendor_devices
from devicegate.vendors import vendor_names
from tests.e2e.conftest import LocalStack, run_local_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
#: A Jointech device of the samples with a location record, and a Mettax vehicle with a track.
JOINTECH_DEVICE = "8052400203"
#: A tile server that is not there (nothing listens on the discard port): tiles fail to load, as
#: offline, and the track must be drawn all the same.
DEAD_TILES = "http://127.0.0.1:9/{z}/{x}/{y}.png"
METTAX_VEHICLE = "105045133913"
WAIT_S = 15


@dataclass
class Console:
    link: str  # what the command printed: the address with ?token=
    base: str  # the address alone
    stack: LocalStack

    def ddb(self) -> Any:
        return self.stack.client("dynamodb")


def _env(stack: LocalStack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICEGATE_"))}
    env.update(DEVICEGATE_STATE_DIR=str(stack.state_dir), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("the console's browser tests need Debian's chromium and chromium-driver: ./run chromium")
    with run_local_stack(tmp_path_factory) as stack:
        loaded = subprocess.run([sys.executable, "-m", "devicegate_cli.main", "examples", "load"], cwd=ROOT,
                                env=_env(stack), capture_output=True, text=True, timeout=300, check=False)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        log_path = tmp_path_factory.mktemp("console") / "console.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "devicegate_cli.main", "console", "--port", "0",
                                        "--tiles", DEAD_TILES], cwd=ROOT, env=_env(stack), stdout=log,
                                       stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not (found := re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", log_path.read_text())):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"devicegate console did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            link = found.group(0)
            yield Console(link, link.split("/?", 1)[0], stack)
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=15)
        # Ctrl-C stops it cleanly
        text = log_path.read_text()
        assert code == 0 and "devicegate console: stopped" in text and "Traceback" not in text, text[-2000:]
        # And its log: method, path and status, never the token or a query string
        token = link.rsplit("=", 1)[1]
        assert "console request method=GET path=/ status=303" in text
        # (the edit and replay too: the layer's logger, loaded by the replay, does not silence it)
        assert re.search(r"console request method=POST path=/quarantine/senselink/\w+/replay status=200", text)
        assert token not in text.replace(link, ""), "the token was logged beyond the printed link"
        assert "?" not in "".join(line for line in text.splitlines() if "console request" in line)


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1360,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(2)
    driver.get(console.link)  # as an operator does: the link's token becomes the cookie
    try:
        yield driver
    finally:
        driver.quit()


def _fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def _wait(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {WAIT_S}s: {what}")


def test_without_the_token_nothing_is_served(console, browser):
    from selenium.webdriver.common.by import By

    # When the console's pages are asked for without the token, or with a wrong one
    for path in ("/", f"/device/jointech/{JOINTECH_DEVICE}", "/alarms", "/quarantine", "/static/console.css",
                 "/?token=not-the-token"):
        status, _, body = _fetch(console.base + path)
        # Then each is refused, and no fleet data is in the answer
        assert status == 403, path
        assert JOINTECH_DEVICE not in body and "jointech" not in body, path
    # And a browser that opens the address without the link sees the refusal, no device
    browser.delete_all_cookies()
    browser.get(console.base + "/")
    assert "Open the link" in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.CSS_SELECTOR, "tr.device") == []
    # And a page reaching it under another host name (DNS rebinding) is refused even with the token
    status, _, _ = _fetch(console.link, headers={"Host": "attacker.example:80"})
    assert status == 421
    # And a change asked for from another origin is refused before anything else
    status, _, _ = _fetch(console.base + "/", method="POST", headers={"Origin": "https://attacker.example"})
    assert status == 403
    # (the link again, for the tests that follow)
    browser.get(console.link)


def test_the_link_trades_its_token_for_a_strict_httponly_cookie(console):
    # When the printed link is opened
    status, headers, _ = _fetch(console.link)
    # Then the answer sets the cookie (HttpOnly, SameSite=Strict) and sends the browser to the
    # same page without the token in its address
    assert status == 303
    assert headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    # And with that cookie the page is served, with headers that keep it to itself
    name_value = cookie.split(";", 1)[0]
    status, headers, body = _fetch(console.base + "/", headers={"Cookie": name_value})
    assert status == 200 and JOINTECH_DEVICE in body
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in headers["content-security-policy"]


def test_fleet_lists_a_sample_device_online_with_each_vendors_counts(console, browser):
    from selenium.webdriver.common.by import By

    # Given the console opened through its link (the browser fixture did)
    browser.get(console.base + "/")
    # Then the Jointech sample device is listed, online, with a last seen time and its position
    row = browser.find_element(By.CSS_SELECTOR, f'tr.device[data-vendor="jointech"][data-device="{JOINTECH_DEVICE}"]')
    assert row.find_element(By.CSS_SELECTOR, ".status").text == "online"
    assert "ago" in row.find_element(By.CSS_SELECTOR, ".ago").text
    assert "22.67007, 113.92300" in row.text
    # And each vendor's count of devices is the store's, and its quarantine count a warning
    ddb, table = console.ddb(), console.stack.table_name
    for vendor in vendor_names():
        counts = browser.find_element(By.CSS_SELECTOR, f'#counts tr[data-vendor="{vendor}"]')
        assert int(counts.find_element(By.CSS_SELECTOR, ".devices").text) == len(vendor_devices(ddb, table, vendor))
        waiting = len(quarantined(ddb, table, vendor))
        assert counts.find_element(By.CSS_SELECTOR, ".quarantined").text == (f"⚠ {waiting}" if waiting else "0")
    # (the samples' two SenseLink connection frames are refused: `examples load` says so)
    assert "⚠ 2 payloads of senselink in quarantine" in browser.find_element(By.ID, "vendor-senselink").text
    # And filtered to one vendor, only its devices are listed
    browser.get(console.base + "/?vendor=mettax")
    listed = {r.get_attribute("data-vendor") for r in browser.find_elements(By.CSS_SELECTOR, "tr.device")}
    assert listed == {"mettax"}


def test_device_page_shows_its_timeline_and_state(console, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # When the Jointech device is opened from the fleet page
    browser.get(console.base + "/?vendor=jointech")
    browser.find_element(By.LINK_TEXT, JOINTECH_DEVICE).click()
    # Then its timeline lists its stored events, newest first, each with device and received time
    stored = device_events(console.ddb(), console.stack.table_name, "jointech", JOINTECH_DEVICE, limit=None)
    listed = browser.find_elements(By.CSS_SELECTOR, "li.event")
    assert [e.get_attribute("data-event-id") for e in listed] == [e["eventId"] for e in stored]
    # And an event opened shows its normalized data, facts and transport
    listed[0].find_element(By.TAG_NAME, "summary").click()
    opened = listed[0].find_element(By.CSS_SELECTOR, "pre.data").text
    assert json.loads(opened)["assetId"] == JOINTECH_DEVICE
    assert '"position"' in listed[0].find_element(By.CSS_SELECTOR, "pre.facts").text
    # And its latest state has every group with its time, the position among them
    groups = [g.find_element(By.TAG_NAME, "b").text for g in browser.find_elements(By.CSS_SELECTOR, "#state details.group")]
    assert "position" in groups and "power" in groups
    # When the timeline is filtered to one kind, only that kind is listed
    Select(browser.find_element(By.ID, "kind-filter")).select_by_value("location")
    browser.find_element(By.CSS_SELECTOR, "#timeline form button").click()
    kinds = {e.get_attribute("data-kind") for e in browser.find_elements(By.CSS_SELECTOR, "li.event")}
    assert kinds == {"location"}


#: The face terminal of the samples whose record and alarm carry a photo (a 24x24 JPEG).
FACE_TERMINAL = "PSC700C0MC22F02542"


def test_a_face_terminals_photo_loads_from_s3_through_a_presigned_url(console, browser):
    from selenium.webdriver.common.by import By

    # Given the face terminal whose samples carried photos, which ingest moved to the payload bucket
    stored = device_events(console.ddb(), console.stack.table_name, "face-terminal", FACE_TERMINAL, limit=None)
    with_photo = [e["eventId"] for e in stored if "media/face-terminal/" in json.dumps(e["data"])]
    assert len(with_photo) >= 2  # the passage's rgb_image, the alarm's alarm_photo
    # When its page is opened
    browser.get(f"{console.base}/device/face-terminal/{FACE_TERMINAL}")
    # Then each event with a photo shows it, loaded (a decoded picture, not a broken image)
    pictures = browser.find_elements(By.CSS_SELECTOR, "li.event img.picture")
    shown = [p.find_element(By.XPATH, "ancestor::li").get_attribute("data-event-id") for p in pictures]
    assert shown == with_photo
    loaded = "return arguments[0].complete && arguments[0].naturalWidth"
    for picture in pictures:
        assert _wait(lambda p=picture: browser.execute_script(loaded, p), "the photo loaded") == 24
    # And its address is a presigned GET of the bucket's object on the moto endpoint, valid 5 minutes:
    # the browser fetched it from S3, not through the console
    src = pictures[0].get_attribute("src")
    assert "X-Amz-Expires=300" in src and "X-Amz-Signature=" in src and "/media/face-terminal/" in src
    origin = re.match(r"https?://[^/]+", src).group(0)
    assert not src.startswith(console.base) and origin == console.stack.client("s3").meta.endpoint_url.rstrip("/")
    # And the page's policy lets images come from that origin, and from no other S3 host
    _, headers, _ = _fetch(console.base + "/", headers={"Cookie": _cookie(browser)})
    images = re.search(r"img-src ([^;]*)", headers["content-security-policy"]).group(1).split()
    assert images == ["'self'", "data:", "http://127.0.0.1:9", origin]


def _cookie(browser: Any) -> str:
    cookie = browser.get_cookies()[0]
    return f"{cookie['name']}={cookie['value']}"


def _sample_positions(device_id: str) -> int:
    """The Mettax samples' records of `device_id` that carry a fix (0/0 is no fix)."""
    count = 0
    for path in sorted((ROOT / "events" / "mettax" / "records").glob("*.json")):
        record = json.loads(path.read_text())
        if str(record.get("deviceId")) == device_id and float(record.get("lat") or 0) and float(record.get("lon") or 0):
            count += 1
    return count


def test_a_vehicles_track_has_the_samples_points_and_playback_reaches_the_last(console, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # Given the Mettax vehicle's samples: GPS and alarm records with a position
    expected = _sample_positions(METTAX_VEHICLE)
    assert expected >= 3
    # When its page is opened, its tile server out of reach
    browser.get(f"{console.base}/device/mettax/{METTAX_VEHICLE}")
    # Then the map asked for tiles, got none, and holds that many points drawn as one line all the same
    _wait(lambda: browser.execute_script("return window.devicegateTrack !== undefined"), "the track read")
    assert browser.find_elements(By.CSS_SELECTOR, "#map img.leaflet-tile")
    assert browser.execute_script("return window.devicegateTrack.points.length") == expected
    assert browser.find_element(By.ID, "track-count").text == str(expected)
    assert browser.execute_script("return window.devicegateTrack.drawn") == expected
    assert browser.find_element(By.CSS_SELECTOR, "#map path.track-line").get_attribute("d")
    assert browser.find_element(By.ID, "track-summary").text.startswith(f"{expected} positions; ")
    # When playback runs at its fastest
    Select(browser.find_element(By.ID, "speed")).select_by_value("20")
    browser.find_element(By.ID, "play").click()
    # Then it reaches the last point, shows its time and speed, and stops there
    current = browser.find_element(By.ID, "track-current")
    _wait(lambda: current.get_attribute("data-index") == str(expected - 1), "playback at the last point")
    _wait(lambda: not browser.execute_script("return window.devicegateTrack.playing"), "playback stopped")
    assert current.find_element(By.CSS_SELECTOR, ".index").text == str(expected)
    assert "km/h" in current.find_element(By.CSS_SELECTOR, ".speed").text
    assert current.find_element(By.CSS_SELECTOR, ".time").text


def test_the_map_shows_every_device_with_a_position(console, browser):
    from selenium.webdriver.common.by import By

    # Given the sample devices whose state holds a position
    ddb, table = console.ddb(), console.stack.table_name
    expected = sorted((v, d["deviceId"]) for v in vendor_names() for d in vendor_devices(ddb, table, v)
                      if "position" in ((device_state(ddb, table, v, d["deviceId"]) or {}).get("state") or {}))
    assert len(expected) >= 5
    # When the fleet's map is opened from the fleet page
    browser.get(console.base + "/")
    browser.find_element(By.ID, "on-the-map").click()
    # Then each of them is a marker on it (tiles or not)
    _wait(lambda: browser.execute_script("return window.devicegateFleetMap !== undefined"), "the map drawn")
    shown = browser.execute_script("return window.devicegateFleetMap.markers.map(m => [m.vendor, m.deviceId])")
    assert sorted(map(tuple, shown)) == expected
    assert len(browser.find_elements(By.CSS_SELECTOR, "#map path.device-marker")) == len(expected)


def _stored_positions(console: Console, vendor: str, device_id: str) -> int:
    """The device's stored events whose facts hold a position with coordinates."""
    events = device_events(console.ddb(), console.stack.table_name, vendor, device_id, limit=None)
    return sum(1 for e in events if {"latitude", "longitude"} <= set((e.get("facts") or {}).get("position") or {}))


def test_two_devices_ticked_on_the_fleet_page_are_two_tracks_on_one_map_with_a_legend(console, browser):
    from selenium.webdriver.common.by import By

    # Given the Jointech device with its one position and the Mettax vehicle with its track
    expected = {("jointech", JOINTECH_DEVICE): _stored_positions(console, "jointech", JOINTECH_DEVICE),
                ("mettax", METTAX_VEHICLE): _sample_positions(METTAX_VEHICLE)}
    assert expected["jointech", JOINTECH_DEVICE] == 1 and expected["mettax", METTAX_VEHICLE] >= 3
    # When both are ticked on the fleet page and their tracks are asked for (tiles out of reach)
    browser.get(console.base + "/")
    for vendor, device in expected:
        browser.find_element(By.CSS_SELECTOR, f'tr.device[data-vendor="{vendor}"][data-device="{device}"] input.pick').click()
    browser.find_element(By.ID, "show-tracks").click()
    # Then the map draws two tracks, each through its device's every position
    _wait(lambda: browser.execute_script("return window.devicegateTracks && window.devicegateTracks.done"),
          "the tracks read")
    shown = browser.execute_script("return window.devicegateTracks.tracks")
    assert {(s["vendor"], s["deviceId"]): s["drawn"] for s in shown} == expected
    assert len(browser.find_elements(By.CSS_SELECTOR, "#map path.track-line")) == 2
    # each in its own colour
    assert len({s["colour"] for s in shown}) == 2
    # And the legend names both devices, with their number of points
    legend = browser.find_element(By.ID, "tracks-legend").text
    for (vendor, device), count in expected.items():
        assert f"{vendor} {device} {count} position{'s' if count > 1 else ''}" in legend
    # When more devices than one map draws are asked for
    browser.get(console.base + "/tracks?" + "&".join(f"device=jointech/{JOINTECH_DEVICE}{n}" for n in range(8)))
    # Then the page says which were left out
    assert "8 devices were ticked, so the first 6 are drawn" in browser.find_element(By.ID, "tracks-dropped").text


def test_alarms_page_lists_every_lifecycle_of_the_samples(console, browser):
    from selenium.webdriver.common.by import By

    # Given every alarm lifecycle the store holds, by vendor and status
    ddb, table = console.ddb(), console.stack.table_name
    stored = {(v, a["alarmId"], s) for v in vendor_names() for s in ("open", "releasing", "release_failed", "released")
              for a in alarms_in_status(ddb, table, v, s)}
    assert stored
    # When the alarms page is opened
    browser.get(console.base + "/alarms")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.alarm")
    # Then it lists each one, with its steps
    listed = {(r.get_attribute("data-vendor"), r.get_attribute("data-alarm"), r.get_attribute("data-status")) for r in rows}
    assert listed == stored
    released = next(r for r in rows if r.get_attribute("data-vendor") == "senselink")
    assert [s.text.split()[0] for s in released.find_elements(By.CSS_SELECTOR, "ol.steps li")] == \
        ["open", "releasing", "released"]


def test_quarantine_page_lists_the_refused_samples_and_shows_a_payload(console, browser):
    from selenium.webdriver.common.by import By

    # Given the payloads the samples left in quarantine
    waiting = quarantined(console.ddb(), console.stack.table_name, "senselink")
    assert len(waiting) == 2
    # When the quarantine page is opened
    browser.get(console.base + "/quarantine")
    rows = browser.find_elements(By.CSS_SELECTOR, 'tr.quarantined[data-vendor="senselink"]')
    # Then each is listed with its reason and the field at fault
    assert {r.get_attribute("data-id") for r in rows} == {item["id"] for item in waiting}
    assert all("is not a record or an alarm" in r.text and "code" in r.text for r in rows)
    # When one is opened, its payload is shown as stored
    rows[0].find_element(By.LINK_TEXT, "view").click()
    payload = json.loads(browser.find_element(By.ID, "payload").text)
    assert payload["code"] in (20000, 20002)


#: A SenseLink WebSocket frame of a record (events/senselink/http-ws-doc-record.json's, with a
#: record id no sample has): what an operator turns a refused frame into.
EDITED_FRAME = {"code": 30000, "message": "push record", "data": {
    "id": 1364999, "userId": 0, "name": "", "type": 3, "avatar": "", "direction": 0, "verifyScore": 0,
    "receptionUserId": 0, "receptionUserName": "", "groups": [{"id": 1, "name": "Default group", "type": 1}],
    "deviceName": "bella pro", "sn": "SPSP-f26131cf5301be29b3a6f7be150ed330", "signDate": "2019-09-29",
    "signTime": 1569725999, "signAvatar": "", "signBgAvatar": "", "mobile": "", "icNumber": "", "idNumber": "",
    "jobNumber": "", "remark": "", "entryMode": 1, "signTimeZone": "+08:00", "docPhoto": "", "location": "306",
    "abnormalType": 0}}


def test_an_edited_quarantined_payload_is_replayed_into_an_event_and_the_edit_audited(console, browser):
    # (last of the browser tests: it takes one payload out of the quarantine the others count)
    from selenium.webdriver.common.by import By

    ddb, table = console.ddb(), console.stack.table_name
    device = EDITED_FRAME["data"]["sn"]
    before = {e["eventId"] for e in device_events(ddb, table, "senselink", device, limit=None)}
    # Given a refused SenseLink frame, opened from the quarantine page
    browser.get(console.base + "/quarantine?vendor=senselink")
    row = browser.find_element(By.CSS_SELECTOR, 'tr.quarantined[data-vendor="senselink"]')
    item_id = row.get_attribute("data-id")
    row.find_element(By.LINK_TEXT, "view").click()
    # When a first edit is tried (the record's data left out)
    browser.find_element(By.CSS_SELECTOR, "#edit summary").click()
    edited = browser.find_element(By.ID, "edited")
    browser.execute_script("arguments[0].value = arguments[1]", edited, json.dumps({"code": 30000}))
    browser.find_element(By.ID, "try").click()
    # Then the page says it would still be refused, why, and wrote nothing: the edit is kept in the form
    [tried] = _wait(lambda: browser.find_elements(By.ID, "outcome"), "the try's outcome")
    assert tried.get_attribute("data-status") == "still-invalid" and tried.text.startswith("Tried, nothing written")
    assert json.loads(browser.find_element(By.ID, "edited").get_attribute("value")) == {"code": 30000}
    assert item_id in {i["id"] for i in quarantined(ddb, table, "senselink")}
    assert "edits" not in next(i for i in quarantined(ddb, table, "senselink") if i["id"] == item_id)
    # When it is edited into a whole record and replayed
    edited = browser.find_element(By.ID, "edited")
    browser.execute_script("arguments[0].value = arguments[1]", edited, json.dumps(EDITED_FRAME, indent=2))
    browser.find_element(By.ID, "replay").click()
    # Then the page says it was stored, naming the new event
    status = "var o = document.getElementById('outcome'); return o ? o.dataset.status : null"
    _wait(lambda: browser.execute_script(status) not in (None, "still-invalid"), "the replay's outcome")
    outcome = browser.find_element(By.ID, "outcome")
    assert outcome.get_attribute("data-status") == "stored", outcome.text
    [new] = {e["eventId"] for e in device_events(ddb, table, "senselink", device, limit=None)} - before
    assert new in outcome.text
    # And the edit is audited on the item: who, when, which fields (not their values)
    audit = browser.find_element(By.ID, "edits").text
    assert "(devicegate console)" in audit and "code" in audit and "data" in audit and "Connected" not in audit
    # And the item has left the quarantine list
    assert item_id not in {i["id"] for i in quarantined(ddb, table, "senselink")}
    # And the page refuses a replay that did not come from its own form
    status, _, _ = _fetch(f"{console.base}/quarantine/senselink/{item_id}/replay", method="POST",
                          headers={"Origin": console.base, "Cookie": browser.get_cookies()[0]["name"] + "="
                                   + browser.get_cookies()[0]["value"]})
    assert status == 403


#: The reason of the quarantined payloads the selection test replays (and only theirs).
SELECTED = "e2e selection: refused before a fix"


def _quarantine(console: Console, body: str, reason: str) -> None:
    from devicegate.core.errors import FieldProblem
    from devicegate.store.quarantine import DynamoQuarantine, QuarantineRecord

    kept = DynamoQuarantine(console.ddb(), console.stack.client("s3"), console.stack.table_name,
                            console.stack.bucket_name, 7)
    kept.write(QuarantineRecord("jointech", "location", "http", reason, [FieldProblem("latitude", "refused")],
                                body.encode(), datetime.now(UTC), "application/json", {"kind": "location"}))


def test_a_filtered_selection_is_tried_then_replayed_with_each_items_outcome(console, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import WebDriverWait

    ddb, table = console.ddb(), console.stack.table_name
    # Given three Jointech payloads refused for one reason: a location that is valid now, a copy of
    # a sample location already stored, and one whose latitude only an edit can fix; and a fourth
    # refused for another reason
    device = f"83{int(time.time() * 1000) % 10**8:08d}"
    _quarantine(console, _location(device), SELECTED)
    _quarantine(console, (ROOT / "events/jointech/records/webhook-location.json").read_text(), SELECTED)
    _quarantine(console, _location(device).replace('"latitude": 22.5', '"latitude": 91'), SELECTED)
    _quarantine(console, _location(device + "9"), "another reason")
    selected = {i["id"] for i in quarantined(ddb, table, "jointech", limit=None) if i["reason"] == SELECTED}
    assert len(selected) == 3
    # When the quarantine page is filtered to them
    browser.get(console.base + "/quarantine?vendor=jointech&reason=E2E+SELECTION")
    assert {r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "tr.quarantined")} == selected
    # And they are tried first
    button = browser.find_element(By.ID, "replay-dry-run")
    assert button.text == "Try replaying these 3 (nothing written)"
    button.click()
    WebDriverWait(browser, WAIT_S).until(staleness_of(button))
    # Then each says what it would do, and nothing was written
    rows = {r.get_attribute("data-id"): r for r in browser.find_elements(By.CSS_SELECTOR, "tr.replayed")}
    assert set(rows) == selected
    assert sorted(r.get_attribute("data-status") for r in rows.values()) == ["still-invalid", "would-replay",
                                                                             "would-replay"]
    assert {i["id"] for i in quarantined(ddb, table, "jointech", limit=None)} >= selected
    # When they are replayed for real from that page
    button = browser.find_element(By.ID, "replay-these")
    button.click()
    WebDriverWait(browser, WAIT_S).until(staleness_of(button))
    # Then each item's outcome is shown: stored (with its event), already stored, still refused with its field
    statuses = {r.get_attribute("data-status"): r for r in browser.find_elements(By.CSS_SELECTOR, "tr.replayed")}
    assert sorted(statuses) == ["duplicate", "still-invalid", "stored"]
    [stored] = device_events(ddb, table, "jointech", device, limit=None)
    assert stored["eventId"] in statuses["stored"].find_element(By.CSS_SELECTOR, ".detail").text
    assert statuses["still-invalid"].find_element(By.CSS_SELECTOR, ".fields").text == "latitude"
    # And a count per outcome
    counts = {r.get_attribute("data-status"): r.find_element(By.CSS_SELECTOR, ".n").text
              for r in browser.find_elements(By.CSS_SELECTOR, "#replay-counts tr[data-status]")}
    assert counts == {"duplicate": "1", "still-invalid": "1", "stored": "1"}
    # And only the one an edit must fix is still waiting, with the payload of the other reason
    left = {i["id"]: i["reason"] for i in quarantined(ddb, table, "jointech", limit=None)}
    assert statuses["still-invalid"].get_attribute("data-id") in left
    assert len([r for r in left.values() if r == SELECTED]) == 1 and "another reason" in left.values()
    # And a replay that did not come from the console's form is refused
    status, _, _ = _fetch(f"{console.base}/quarantine/replay", method="POST",
                          headers={"Origin": console.base, "Cookie": _cookie(browser)})
    assert status == 403


def _location(device: str) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps({"assetId": device, "longitude": 113.9, "latitude": 22.5, "speed": 36, "direction": 0,
                       "mileage": 16, "gpsTime": now, "ksInfo": "", "recvTime": now, "locType": 1, "cellSignal": 19,
                       "gnssSignal": 0, "cells": "", "battery": 77})


#: The Live page must show a pushed record this soon after the push was answered.
LIVE_WITHIN_S = 5.0


def test_a_record_pushed_over_http_appears_on_the_live_page_within_seconds(console, browser):
    from selenium.webdriver.common.by import By

    # Given the Live page open, following the stream (its one shared reader placed)
    browser.get(console.base + "/live")
    _wait(lambda: browser.find_element(By.ID, "live-status").get_attribute("data-state") == "following",
          "the Live page following")
    assert "One reader of the table's stream serves every Live tab" in browser.find_element(By.ID, "live-cost").text
    # When a Jointech device pushes a location over HTTP
    device = f"81{int(time.time() * 1000) % 10**8:08d}"
    assert console.stack.post("/hooks/jointech/dev-token/location", _location(device)).status == 200
    pushed = time.monotonic()
    # Then it is the top row within a few seconds: vendor, device (a link to its page), kind, position, transport
    selector = f'tr.live-event[data-device="{device}"]'
    deadline = pushed + LIVE_WITHIN_S
    while not browser.find_elements(By.CSS_SELECTOR, selector):
        assert time.monotonic() < deadline, f"not on the Live page {LIVE_WITHIN_S:g}s after the push"
        time.sleep(0.1)
    row = browser.find_element(By.CSS_SELECTOR, "#live-rows tr.live-event")
    assert row.get_attribute("data-device") == device
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1:4] == ["jointech", device, "location"] and cells[5] == "http"
    assert cells[4].startswith("22.50000, 113.90000") and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cells[0])
    # And its device link opens the device's page
    row.find_element(By.LINK_TEXT, device).click()
    _wait(lambda: browser.current_url.endswith(f"/device/jointech/{device}"), "the device's page")
    # (the device's state is written after its event, by the outbox: the page may first say it has none)
    _wait(lambda: browser.find_element(By.TAG_NAME, "h1").text.startswith(device) or browser.refresh(),
          "the device's page with its state")
    # And filtered to another vendor, a Jointech push does not appear
    browser.get(console.base + "/live?vendor=mettax")
    _wait(lambda: browser.find_element(By.ID, "live-status").get_attribute("data-state") == "following",
          "the filtered Live page following")
    assert console.stack.post("/hooks/jointech/dev-token/location", _location(device)).status == 200
    time.sleep(LIVE_WITHIN_S)
    assert browser.find_elements(By.CSS_SELECTOR, "tr.live-event") == []
    browser.get(console.base + "/")  # leaving the page ends the stream's reader


#: A Jointech device of its own for the commands (the local stack's access key, as in
#: tests/e2e/test_waiting_commands_local.py).
COMMANDED, ACCESS_KEY = "794308019933", "ak-demo"
DOWNLOAD = f"download/{ACCESS_KEY}/{COMMANDED}/cmd"


def _publish_location(client: Any) -> None:
    location = json.loads((ROOT / "events/jointech/records/mqtt-location.json").read_text())
    location["assetId"] = COMMANDED
    location["gpsTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # new, not a retransmission
    client.publish(f"upload/{ACCESS_KEY}/{COMMANDED}/location", json.dumps(location).encode())


def _send_from_the_page(browser: Any, command: str, serial: str) -> str:
    """The device page's form: a typed command, when the device is next online; the id it names."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import Select, WebDriverWait

    send = browser.find_element(By.ID, "send")
    if send.get_attribute("open") is None:
        send.find_element(By.TAG_NAME, "summary").click()
    Select(browser.find_element(By.ID, "send-command")).select_by_value(command)
    browser.find_element(By.CSS_SELECTOR, 'form.send input[name="serial"]').send_keys(serial)
    browser.find_element(By.ID, "send-when-online").click()
    browser.find_element(By.CSS_SELECTOR, 'form.send input[name="expires_in"]').send_keys("1h")
    button = browser.find_element(By.ID, "send-button")
    button.click()
    WebDriverWait(browser, WAIT_S).until(staleness_of(button))  # the answer's page, not the one the form was on
    result = browser.find_element(By.ID, "sent-result")
    assert "queued for the next contact" in result.text, result.text
    return str(result.get_attribute("data-id"))


def _row_status(browser: Any, command_id: str) -> str | None:
    return browser.execute_script(
        "var r = document.querySelector('tr.command[data-id=\"' + arguments[0] + '\"]');"
        " return r ? r.dataset.status : null", command_id)


def test_a_command_sent_when_online_from_the_page_reaches_its_answer_and_another_is_cancelled(console, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.e2e.test_mqtt_local import Client

    # Given a Jointech device the gateway knows (it reported once), now disconnected
    device = Client(console.stack.mqtt_port)
    _publish_location(device)
    device.close()
    _wait(lambda: device_state(console.ddb(), console.stack.table_name, "jointech", COMMANDED), "the device known")
    # When its page is opened and a query is sent from it, for the device's next contact
    browser.get(f"{console.base}/device/jointech/{COMMANDED}")
    assert browser.find_elements(By.CSS_SELECTOR, "#commands form.send")
    first = _send_from_the_page(browser, "query_base_info", "001")
    # Then the list shows it queued: kept, not sent, with its attempts and its expiry
    row = browser.find_element(By.CSS_SELECTOR, f'tr.command[data-id="{first}"]')
    assert row.get_attribute("data-status") == "queued"
    assert "query_base_info" in row.text and "0 of" in row.text
    # When the device comes back: listens on its download topic, publishes a record
    device = Client(console.stack.mqtt_port)
    try:
        device.subscribe(DOWNLOAD)
        _publish_location(device)
        # Then it receives the command, and answers it with the documented success
        message = device.received.get(timeout=20)
        assert (message.topic, message.payload.decode()) == (DOWNLOAD, f"({COMMANDED},1,001,BASE,1)")
        answer = json.loads((ROOT / "events/jointech/records/mqtt-cmd-success.json").read_text())
        answer["assetId"] = COMMANDED
        content = json.loads(answer["content"])
        content[0] = COMMANDED
        answer["content"] = json.dumps(content)
        answer["dateTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        device.publish(f"upload/{ACCESS_KEY}/{COMMANDED}/cmd", json.dumps(answer).encode())
    finally:
        device.close()
    # Then the page, left open, follows it to its answer: succeeded (answered), with the answer's fields
    deadline = time.monotonic() + 40
    while _row_status(browser, first) != "succeeded":
        assert time.monotonic() < deadline, f"the page shows {_row_status(browser, first)}, not succeeded"
        time.sleep(0.3)
    row = browser.find_element(By.CSS_SELECTOR, f'tr.command[data-id="{first}"]')
    assert "answered" in row.text and COMMANDED in row.find_element(By.CSS_SELECTOR, ".answer").text
    assert browser.execute_script("return window.devicegateCommands.polls") >= 1
    # When a second query is sent to wait, and cancelled from the page while it waits
    second = _send_from_the_page(browser, "query_time", "002")
    assert _row_status(browser, second) == "queued"
    cancel = browser.find_element(By.CSS_SELECTOR, f'tr.command[data-id="{second}"] button.cancel')
    cancel.click()
    WebDriverWait(browser, WAIT_S).until(staleness_of(cancel))
    # Then the page says so, and its row is cancelled, no cancel button left
    assert second in browser.find_element(By.ID, "cancel-result").text
    assert _row_status(browser, second) == "cancelled"
    assert browser.find_elements(By.CSS_SELECTOR, f'tr.command[data-id="{second}"] button.cancel') == []
    assert _row_status(browser, first) == "succeeded"


@pytest.mark.parametrize(("argv", "says"), [
    (["console"], "devicegate console: no local stack is running here"),
    (["console", "--region", "eu-west-1"], "devicegate console: --profile and --region name a deployment"),
    (["console", "--port", "http"], "devicegate console: argument --port: invalid int value"),
    (["console", "--port", "70000"], "devicegate console: --port 70000 is not a port"),
])
def test_each_mistake_is_one_line_and_exit_2(tmp_path, argv, says):
    # Given no running stack (an empty state directory)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICEGATE_"))}
    env["DEVICEGATE_STATE_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "devicegate_cli.main", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    # Then it says what is wrong in one line, serves nothing, and exits 2
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert says in done.stderr


def test_a_port_in_use_is_one_line_and_exit_2(console):
    # Given the module's console listening on its port
    port = console.base.rsplit(":", 1)[1]
    # When a second console is asked for the same port
    done = subprocess.run([sys.executable, "-m", "devicegate_cli.main", "console", "--port", port], cwd=ROOT,
                          env=_env(console.stack), capture_output=True, text=True, timeout=60, check=False)
    # Then it says so in one line, with the way out
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port 0" in done.stderr
