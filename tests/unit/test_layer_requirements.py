"""What the tests ran is what deploys: the Lambda layer installs exactly the versions uv.lock pins.

layers/devicegate/requirements.txt is the `layer` dependency group exported from uv.lock with
hashes (`./run requirements`); the layer's Makefile installs it, and pip checks every hash. This
reads both files (no tool, no network) and fails when they drift: a dependency bumped in the lock
without re-exporting, or an edit to the file by hand.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from tests.support import ROOT

REQUIREMENTS = ROOT / "layers" / "devicegate" / "requirements.txt"
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, dict[str, Any]]:
    packages = tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    return {_normalized(p["name"]): p for p in packages}


def _layer_closure(lock: dict[str, dict[str, Any]]) -> set[str]:
    """Every package the `layer` group needs, by the lock's own dependency lists (extras followed)."""
    [project] = [p for p in lock.values() if p.get("source", {}).get("editable") == "." or
                 p.get("source", {}).get("virtual") == "."]
    wanted = [(_normalized(d["name"]), tuple(d.get("extra", ()))) for d in project["dev-dependencies"]["layer"]]
    seen: set[str] = set()
    while wanted:
        name, extras = wanted.pop()
        package = lock[name]
        deps = list(package.get("dependencies", ()))
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        if name in seen and not extras:
            continue
        seen.add(name)
        wanted += [(_normalized(d["name"]), tuple(d.get("extra", ()))) for d in deps]
    return seen


def _requirements() -> dict[str, tuple[str, set[str]]]:
    pinned: dict[str, tuple[str, set[str]]] = {}
    current = None
    for line in REQUIREMENTS.read_text().splitlines():
        if match := _PIN.match(line):
            current = _normalized(match.group(1))
            pinned[current] = (match.group(2), set())
        if current is not None:
            pinned[current][1].update(_HASH.findall(line))
    return pinned


def _lock_hashes(package: dict[str, Any]) -> set[str]:
    files = [package.get("sdist", {}), *package.get("wheels", ())]
    return {f["hash"] for f in files if "hash" in f}


def test_the_layer_installs_exactly_what_uv_lock_pins_for_the_layer_group():
    lock, pinned = _lock(), _requirements()
    # Then the file names every package the group needs, and nothing else
    assert set(pinned) == _layer_closure(lock)
    for name, (version, hashes) in pinned.items():
        # ...each at the locked version, with the locked files' hashes (so pip refuses any other)
        assert version == lock[name]["version"], name
        assert hashes and hashes == _lock_hashes(lock[name]), name


def test_the_layer_never_ships_boto3():
    # The functions use botocore clients: boto3 and s3transfer would only slow every cold start
    assert not {"boto3", "s3transfer"} & set(_requirements())
