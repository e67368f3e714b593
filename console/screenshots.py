"""Screenshots of every console page into docs/console/, for docs/console.md (`./run screenshots`).

By default it starts what a reader of the docs would: a fresh local stack of its own (free ports,
its own state directory), the `events/` samples loaded into it (`devicegate examples load`), and
`devicegate console --tiles none` over it (a blank map: screenshots that do not depend on a tile
server); then Debian's headless chromium (./run chromium) opens each page. With --url it uses a
console that is already running (the link it printed) instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "console"
#: Each page: its file name, its path, and what to do before the picture (expand an event, play).
PAGES = [
    ("fleet", "/", None),
    ("fleet-mettax", "/?vendor=mettax", None),
    ("map", "/map", "map"),
    ("tracks", "/tracks?device=jointech/8052400203&device=mettax/105045133913", "tracks"),
    ("device-track", "/device/mettax/105045133913", "play"),
    ("device-timeline", "/device/jointech/8052400203", "expand"),
    ("device-commands", "/device/jointech/8052400203", "commands"),
    ("device-pictures", "/device/face-terminal/PSC700C0MC22F02542", "pictures"),
    ("live", "/live", "live"),
    ("alarms", "/alarms", None),
    ("quarantine", "/quarantine", None),
    ("quarantine-selection-tried", "/quarantine?vendor=senselink", "try-selection"),
    ("quarantine-item", None, "first-quarantined"),
    ("quarantine-replayed", None, "edit-and-replay"),
]
WIDTH, HEIGHT = 1360, 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = path.read_text(errors="replace")
        if text in found:
            return found
        if process.poll() is not None:
            raise SystemExit(f"screenshots: {process.args!r} exited {process.returncode}:\n{found}")
        time.sleep(0.2)
    raise SystemExit(f"screenshots: no {text!r} within {seconds}s:\n{path.read_text(errors='replace')}")


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "devicegate_cli.main", *argv], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def fresh_console() -> Iterator[tuple[str, dict[str, str]]]:
    """A local stack with the samples loaded and a console over it: the console's link, and the
    stack's HTTP base URL and MQTT port (the Live and commands pictures push to them)."""
    work = Path(tempfile.mkdtemp(prefix="console-screenshots-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEVICEGATE_"))}
    env.update(DEVICEGATE_STATE_DIR=str(work / "state"), PYTHONUNBUFFERED="1")
    ports = [str(_free_port()) for _ in range(4)]
    stack = ["local", "--http-port", ports[0], "--moto-port", ports[1], "--mqtt-port", ports[2],
             "--iot-data-port", ports[3], "--quiet"]
    with running(stack, env, work / "local.log") as local:
        _wait_for(work / "local.log", "devicegate local: ready", local, 90)
        loaded = subprocess.run([sys.executable, "-m", "devicegate_cli.main", "examples", "load"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300, check=False)
        if loaded.returncode != 0:
            raise SystemExit(f"screenshots: examples load failed:\n{loaded.stdout}{loaded.stderr}")
        with running(["console", "--port", "0", "--tiles", "none"], env, work / "console.log") as console:
            text = _wait_for(work / "console.log", "Ctrl-C stops.", console, 30)
            match = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", text)
            assert match, text
            yield match.group(0), {"http": f"http://127.0.0.1:{ports[0]}", "mqtt": ports[2]}


def browser() -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}",
                 "--force-device-scale-factor=1", "--lang=en-GB"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


#: The samples' Jointech device, and the local stack's access key (its MQTT topics).
JOINTECH, ACCESS_KEY = "8052400203", "ak-demo"


def _now(millis: bool = False) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S" + (".000Z" if millis else "Z"), time.gmtime())


def _device(stack: dict[str, str]) -> object:
    """A paho client on the stack's broker, as the device (the e2e tests' helper)."""
    sys.path.insert(0, str(ROOT))
    from tests.e2e.test_mqtt_local import Client

    return Client(int(stack["mqtt"]))


def _location(device: str, lat: float, lon: float, speed: int) -> dict[str, object]:
    record = json.loads((ROOT / "events/jointech/records/mqtt-location.json").read_text())
    record.update(assetId=device, gpsTime=_now(), latitude=lat, longitude=lon, speed=speed)
    return record


def _wait_until(condition: object, what: str, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: {what} did not happen within {seconds:g}s")
        time.sleep(0.3)


def _send(driver: object, command: str, serial: str) -> str:
    """The device page's form: a typed command for the device's next contact; its id."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import Select, WebDriverWait

    find = driver.find_element  # type: ignore[attr-defined]
    if find(By.ID, "send").get_attribute("open") is None:
        find(By.CSS_SELECTOR, "#send summary").click()
    Select(find(By.ID, "send-command")).select_by_value(command)
    find(By.CSS_SELECTOR, 'form.send input[name="serial"]').send_keys(serial)
    find(By.ID, "send-when-online").click()
    find(By.CSS_SELECTOR, 'form.send input[name="expires_in"]').send_keys("1h")
    button = find(By.ID, "send-button")
    button.click()
    WebDriverWait(driver, 30).until(staleness_of(button))  # the answer's page, not the one the form was on
    return str(find(By.ID, "sent-result").get_attribute("data-id"))


def _row_status(driver: object, command_id: str) -> object:
    return driver.execute_script(  # type: ignore[attr-defined]
        "var r = document.querySelector('tr.command[data-id=\"' + arguments[0] + '\"]');"
        " return r ? r.dataset.status : null", command_id)


def commands(driver: object, stack: dict[str, str] | None) -> None:
    """Three commands on the sample device's page: one answered (a paho device takes it on its
    next contact and answers it), one cancelled from the page, one still waiting."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import WebDriverWait

    if stack is None:
        return
    answered = _send(driver, "query_base_info", "001")
    device = _device(stack)
    try:
        device.subscribe(f"download/{ACCESS_KEY}/{JOINTECH}/cmd")  # type: ignore[attr-defined]
        device.publish(f"upload/{ACCESS_KEY}/{JOINTECH}/location",  # type: ignore[attr-defined]
                       json.dumps(_location(JOINTECH, 22.67007, 113.923, 0)).encode())
        device.received.get(timeout=30)  # type: ignore[attr-defined]
        answer = json.loads((ROOT / "events/jointech/records/mqtt-cmd-success.json").read_text())
        content = json.loads(answer["content"])
        content[0] = JOINTECH
        answer.update(assetId=JOINTECH, content=json.dumps(content), dateTime=_now(millis=True))
        device.publish(f"upload/{ACCESS_KEY}/{JOINTECH}/cmd", json.dumps(answer).encode())  # type: ignore[attr-defined]
    finally:
        device.close()  # type: ignore[attr-defined]
    _wait_until(lambda: _row_status(driver, answered) == "succeeded", "the answer")
    cancelled = _send(driver, "query_time", "002")
    cancel = driver.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, f'tr.command[data-id="{cancelled}"] button.cancel')
    cancel.click()
    WebDriverWait(driver, 30).until(staleness_of(cancel))
    _send(driver, "query_time", "003")
    driver.execute_script("document.getElementById('send').open = true")  # type: ignore[attr-defined]


def live(driver: object, stack: dict[str, str] | None) -> None:
    """The Live page with a few records pushed once it follows: over HTTP and over MQTT."""
    import urllib.request

    from selenium.webdriver.common.by import By

    _wait_until(lambda: driver.find_element(  # type: ignore[attr-defined]
        By.ID, "live-status").get_attribute("data-state") == "following", "the Live page following", 20)
    if stack is None:
        return
    for n, device in enumerate(("8052400203", "8022300001", "8454601010")):
        body = json.dumps(_location(device, 22.67 + n / 100, 113.92 + n / 100, 20 * n)).encode()
        request = urllib.request.Request(f"{stack['http']}/hooks/jointech/dev-token/location", data=body,
                                         method="POST", headers={"content-type": "application/json"})
        urllib.request.urlopen(request, timeout=30).close()
    client = _device(stack)
    try:
        alarm = json.loads((ROOT / "events/jointech/records/mqtt-alarm.json").read_text())
        alarm["dateTime"] = _now()
        client.publish(f"upload/{ACCESS_KEY}/{alarm['assetId']}/alarm", json.dumps(alarm).encode())  # type: ignore[attr-defined]
    finally:
        client.close()  # type: ignore[attr-defined]
    _wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "tr.live-event")) >= 4,  # type: ignore[attr-defined]
                "four rows on the Live page", 30)


#: What a page's script has set once it has drawn its map.
DRAWN = {"map": "devicegateFleetMap.drawn", "play": "devicegateTrack", "tracks": "devicegateTracks.done"}


def _until_shown(driver: object, action: str | None, path: str | None) -> None:
    """Wait for what the page does after it is shown: its map drawn, its pictures loaded; or do
    what the picture is of (a try of the quarantine page's selection) and wait for its answer."""
    from selenium.webdriver.common.by import By

    if action == "try-selection":
        driver.find_element(By.ID, "replay-dry-run").click()  # type: ignore[attr-defined]
        _wait_until(lambda: driver.find_elements(By.ID, "replay-outcomes"), "the try's answer", 30)  # type: ignore[attr-defined]
    if action == "pictures":
        _wait_until(lambda: driver.execute_script(  # type: ignore[attr-defined]
            "return [...document.querySelectorAll('img.picture')].every(i => i.complete)"), "the pictures", 20)
    if action in DRAWN:
        _wait_until(lambda: driver.execute_script(f"return window.{action and DRAWN[action]}"),  # type: ignore[attr-defined]
                    f"{path}: the map drawn", 20)


def take(link: str, out: Path, stack: dict[str, str] | None = None) -> list[Path]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base = link.split("/?", 1)[0]
    driver = browser()
    written = []
    try:
        driver.get(link)  # the token becomes the cookie
        for name, path, action in PAGES:
            if action in ("first-quarantined", "edit-and-replay"):
                driver.get(base + "/quarantine")
                driver.find_element(By.CSS_SELECTOR, "tr.quarantined a").click()
                driver.find_element(By.CSS_SELECTOR, "#edit summary").click()
            if action == "edit-and-replay":
                # The refused SenseLink frame made into the record frame of its samples (another record id)
                frame = json.loads(json.loads((ROOT / "events/senselink/http-ws-doc-record.json").read_text())["body"])
                frame["data"]["id"] += 1000
                driver.execute_script("arguments[0].value = arguments[1]", driver.find_element(By.ID, "edited"),
                                      json.dumps(frame, indent=2, ensure_ascii=False))
                driver.find_element(By.ID, "replay").click()
                deadline = time.monotonic() + 30
                while not driver.find_elements(By.ID, "outcome"):
                    if time.monotonic() > deadline:
                        raise SystemExit("screenshots: the replay did not answer")
                    time.sleep(0.2)
            if path is not None:
                driver.get(base + path)
            if action == "commands":
                commands(driver, stack)
            if action == "live":
                live(driver, stack)
            if action == "expand":
                driver.execute_script("document.querySelector('li.event details').open = true")
            _until_shown(driver, action, path)
            if action == "play":
                Select(driver.find_element(By.ID, "speed")).select_by_value("100")
                driver.find_element(By.ID, "play").click()
                deadline = time.monotonic() + 20
                while driver.execute_script("return window.devicegateTrack.playing") and time.monotonic() < deadline:
                    time.sleep(0.2)
            driver.execute_script("window.scrollTo(0, 0)")  # (a form's answer may have scrolled to its section)
            # The whole page, not the window: as tall as its content (within reason).
            height = min(3200, int(driver.execute_script("return document.documentElement.scrollHeight")))
            driver.set_window_size(WIDTH, max(HEIGHT, height))
            time.sleep(0.3)
            target = out / f"{name}.png"
            driver.save_screenshot(str(target))
            driver.set_window_size(WIDTH, HEIGHT)
            written.append(target)
    finally:
        driver.quit()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the link a running `devicegate console` printed (default: start one)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the PNGs (default {OUT})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.url:
        written = take(args.url, args.out)
    else:
        with fresh_console() as (link, stack):
            written = take(link, args.out, stack)
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
