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
    ("device-track", "/device/mettax/105045133913", "play"),
    ("device-timeline", "/device/jointech/8052400203", "expand"),
    ("alarms", "/alarms", None),
    ("quarantine", "/quarantine", None),
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
def fresh_console() -> Iterator[str]:
    """A local stack with the samples loaded and a console over it: the console's link."""
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
            yield match.group(0)


def browser() -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}",
                 "--force-device-scale-factor=1", "--lang=en-GB"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def take(link: str, out: Path) -> list[Path]:
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
            if action == "expand":
                driver.execute_script("document.querySelector('li.event details').open = true")
            if action in ("map", "play"):  # the page's script has drawn the map
                drawn = "devicegateFleetMap" if action == "map" else "devicegateTrack"
                deadline = time.monotonic() + 20
                while not driver.execute_script(f"return window.{drawn} !== undefined"):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"screenshots: {path}: the map was not drawn")
                    time.sleep(0.2)
            if action == "play":
                Select(driver.find_element(By.ID, "speed")).select_by_value("100")
                driver.find_element(By.ID, "play").click()
                deadline = time.monotonic() + 20
                while driver.execute_script("return window.devicegateTrack.playing") and time.monotonic() < deadline:
                    time.sleep(0.2)
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
        with fresh_console() as link:
            written = take(link, args.out)
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
