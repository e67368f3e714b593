"""How the query CLI shows things to a person: --local-time on every command that prints times,
--json on every command that prints a table or outcomes, and a quarantined payload for a person."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator

import pytest

from devicegate_cli.commands import build_parser
from tests.integration.test_command_cli import api, gateway  # noqa: F401 - fixtures of the command routes
from tests.integration.test_jointech_ingest import post, run_outbox
from tests.support import load_event, load_record, with_body


@pytest.fixture
def tokyo() -> Iterator[None]:
    """The machine's zone is Asia/Tokyo (UTC+9, no summer time) for the test."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _push_location_at(gps_time: str) -> None:
    record = load_record("jointech", "mqtt-location")
    record.update(gpsTime=gps_time, locType=1)
    post(with_body(load_event("jointech/http-webhook-location.json"), json.dumps(record)))


def test_local_time_shows_the_machines_zone_with_its_offset_and_utc_stays_the_default(stack, cli, tokyo):
    # Given a location at 08:00 UTC, the device's state written by the outbox
    _push_location_at("2025-02-07T08:00:00Z")
    run_outbox(stack)
    # When it is listed as stored, and with --local-time on a machine in Tokyo
    _, utc = cli("events", "--vendor", "jointech", "--device", "8052400203")
    _, local = cli("events", "--vendor", "jointech", "--device", "8052400203", "--local-time")
    _, state = cli("state", "--vendor", "jointech", "--device", "8052400203", "--local-time")
    _, as_json = cli("events", "--vendor", "jointech", "--device", "8052400203", "--local-time", "--json")
    # Then the default is UTC as stored, and --local-time is the same moment at +09:00
    assert "2025-02-07T08:00:00.000Z" in utc and "+09:00" not in utc
    assert "2025-02-07T17:00:00.000+09:00" in local and "08:00:00.000Z" not in local
    assert "last seen 2025-02-07T17:00:00.000+09:00" in state
    assert json.loads(as_json)[0]["occurredAt"] == "2025-02-07T17:00:00.000+09:00"


def _commands(parser) -> dict[str, object]:
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)


def test_every_query_command_takes_local_time():
    # Given every command of the query parser that reads the table (each prints times)
    commands = {name: p for name, p in _commands(build_parser()).items()
                if any(a.dest == "stack" for a in p._actions)}
    assert {"events", "state", "devices", "links", "parts", "alarms", "event", "quarantine", "state-failures",
            "replay", "redrive"} <= set(commands)
    # Then each takes --local-time
    assert [name for name, p in commands.items() if not any(a.dest == "local_time" for a in p._actions)] == []


def test_every_query_command_takes_json():
    commands = {name: p for name, p in _commands(build_parser()).items()
                if any(a.dest == "stack" for a in p._actions)}
    assert [name for name, p in commands.items() if not any(a.dest == "json" for a in p._actions)] == []


def test_replay_json_is_one_array_of_outcomes_with_the_fields_at_fault(stack, cli):
    # Given a payload quarantined as not JSON
    post(with_body(load_event("jointech/http-webhook-location.json"), "{broken"))
    # When a dry run is asked for as JSON
    code, out = cli("replay", "--vendor", "jointech", "--dry-run", "--json")
    _, text = cli("replay", "--vendor", "jointech", "--dry-run")
    # Then stdout is one JSON array: the payload, still invalid, the fields at fault the text names;
    # exit 2 as in text
    [outcome] = json.loads(out)
    assert code == 2
    assert outcome["status"] == "still-invalid" and len(outcome["id"]) == 40
    assert outcome["fields"] and f"fields: {','.join(outcome['fields'])}" in text


def test_replay_counts_its_progress_on_stderr_and_stdout_stays_the_report(stack, cli):
    # Given two payloads quarantined as not JSON
    for body in ("{broken", "{broken too"):
        post(with_body(load_event("jointech/http-webhook-location.json"), body))
    # When they are replayed as JSON (a report with nothing until the end) and as text
    code, out = cli("replay", "--vendor", "jointech", "--dry-run", "--json")
    as_json_err = cli.err  # type: ignore[attr-defined]
    _, text = cli("replay", "--vendor", "jointech", "--dry-run")
    # Then stdout is the report alone, and stderr counts what was done, with the time taken
    assert code == 2 and len(json.loads(out)) == 2
    assert re.search(r"^replay: 2 items done \(2 still-invalid\) in \d+\.\d s$", as_json_err, re.M)
    assert re.search(r"^replay: 2 items done \(2 still-invalid\) in \d+\.\d s$", cli.err, re.M)  # type: ignore[attr-defined]
    assert text.splitlines()[-1] == "2 still-invalid" and "items done" not in text


def test_redrive_json_of_an_empty_queue_is_an_empty_array(stack, cli):
    code, out = cli("redrive", "--vendor", "jointech", "--source", "ingest-queue", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out = cli("redrive", "--vendor", "jointech", "--source", "outbox-failures", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_event_json_is_the_event(stack, cli):
    _push_location_at("2025-02-07T08:00:00Z")
    [item] = stack.event_items()
    code, out = cli("event", "--vendor", "jointech", "--device", "8052400203", "--id", item["eventId"], "--json")
    assert code == 0 and json.loads(out)["eventId"] == item["eventId"]


def test_quarantine_show_reads_top_down_for_a_person_and_json_is_the_item(stack, cli):
    # Given a Jointech location refused for a battery that is no number
    record = load_record("jointech", "mqtt-location")
    record["battery"] = "full"
    post(with_body(load_event("jointech/http-webhook-location.json"), json.dumps(record)))
    [entry] = json.loads(cli("quarantine", "--vendor", "jointech", "--json")[1])
    # When it is shown
    code, out = cli("quarantine", "--vendor", "jointech", "--show", entry["id"])
    lines = out.splitlines()
    # Then the reason and the field at fault come first, times are ISO 8601 (no epoch seconds),
    # and the payload follows, pretty-printed
    assert code == 0
    assert lines[0] == f"jointech payload {entry['id']}"
    assert lines[1].startswith("reason:") and lines[2].startswith("  field battery:")
    assert re.search(r"^expires: +\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", out, re.M)
    assert not re.search(r"\b1[0-9]{9}\b", "\n".join(lines[:lines.index("")]))
    payload = "\n".join(lines[lines.index("") + 1:])
    assert json.loads(payload)["battery"] == "full" and '\n  "battery": "full"' in payload
    # And --json is the stored item as it is (its TTL in epoch seconds)
    code, raw = cli("quarantine", "--vendor", "jointech", "--show", entry["id"], "--json")
    item = json.loads(raw)
    assert code == 0 and isinstance(item["expiresAt"], int) and item["reason"] == entry["reason"]


def test_command_status_in_local_time(gateway, api, capsys, tokyo):  # noqa: F811 - the imported fixtures
    from devicegate_cli.main import main
    from tests.integration.test_jointech_commands import DEVICE

    # Given a command sent from the shell, pending
    assert main(["command", "send", "--device", DEVICE, "--command", "query_time", "--api-url", api]) == 0
    capsys.readouterr()
    # When its device's commands are listed in local time, and as stored
    assert main(["command", "status", "--device", DEVICE, "--api-url", api, "--local-time"]) == 0
    local = capsys.readouterr().out
    assert main(["command", "status", "--device", DEVICE, "--api-url", api, "--json"]) == 0
    [stored] = json.loads(capsys.readouterr().out)
    # Then the table shows its request time at +09:00, the same moment as the stored UTC time
    from devicegate_cli.presentation import local_time

    assert stored["requestedAt"].endswith("Z") and local_time(stored["requestedAt"]).endswith("+09:00")
    assert local_time(stored["requestedAt"]) in local


def test_strategy_get_in_local_time(stack, cli, tmp_path, tokyo):
    from tests.support import new_environment

    # Given a camera's configuration stored by bob
    new_environment()  # the deployment default is read per execution environment
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"heartbeatInterval": 60}))
    code, _ = cli("strategy", "set", "--device", "I320013590DEA0BE21F6958", "--file", str(config), "--by", "bob")
    assert code == 0, cli.err
    # When it is read in local time
    code, out = cli("strategy", "get", "--device", "I320013590DEA0BE21F6958", "--local-time")
    # Then the time of the change is at +09:00
    assert code == 0
    assert re.search(r"updated \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+09:00 by bob", out), out
    new_environment()  # the deployment default is read per execution environment
