"""What the console's two heaviest pages ask DynamoDB for (bench/console.py times them): the fleet
page reads each device item once, its list and its position column from the same BatchGetItem;
a map's track reads only the fields a track is drawn from, with the same points."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest

from devicegate_console.reads import TRACK_FIELDS, Reads
from devicegate_console.shaping import track_points
from tests.integration.test_console_pages import serving
from tests.support import seed_fleet


class Requests:
    """The DynamoDB requests made through a client, with their parameters."""

    def __init__(self, ddb: Any) -> None:
        self.made: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        ddb.meta.events.register("before-parameter-build.dynamodb", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.made.append((model.name, params))

    def taken(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            made, self.made = self.made, []
        return made


@pytest.fixture
def reads(stack) -> Reads:
    return Reads(stack.session.client("dynamodb"), stack.session.client("s3"), stack.table)


def test_the_fleet_page_reads_each_device_item_once(stack, reads):
    # Given 150 devices of a vendor, each with a position
    seed_fleet(stack.ddb, stack.table, "jointech", 150, 1)
    requests = Requests(reads.ddb)
    with serving(reads) as console:
        requests.taken()
        # When the fleet page is read
        status, html, _ = console.get("/?vendor=jointech")
        made = requests.taken()
    # Then each device item was read once: two BatchGetItems of at most 100 keys, 150 keys in all
    batches = [params["RequestItems"][stack.table]["Keys"] for name, params in made if name == "BatchGetItem"]
    assert status == 200 and sorted(len(keys) for keys in batches) == [50, 100]
    # and every row still shows its device's position, from those same items
    rows = re.findall(r'<tr class="device"[^>]*>.*?</tr>', html, re.S)
    assert len(rows) == 150 and all(re.search(r"<td>22\.50000, 113\.90000 · 20 km/h</td>", r) for r in rows)


def test_a_track_reads_only_what_a_track_is_drawn_from(stack, reads):
    # Given a device with 40 positions
    [device] = seed_fleet(stack.ddb, stack.table, "mettax", 1, 40)
    requests = Requests(reads.ddb)
    with serving(reads) as console:
        requests.taken()
        # When its map's track is read
        status, answer, _ = console.get(f"/track/mettax/{device}")
        made = requests.taken()
    # Then its Query asked for TRACK_FIELDS alone (not the vendor payload)
    [query] = [params for name, params in made if name == "Query"]
    asked = {query["ExpressionAttributeNames"][n.strip()] for n in query["ProjectionExpression"].split(",")}
    assert asked == set(TRACK_FIELDS) and "data" not in asked
    # and the points are those the whole events give
    whole = reads.events("mettax", device, limit=None).items
    assert status == 200 and "data" in whole[0]
    assert json.loads(answer)["points"] == track_points(whole)
