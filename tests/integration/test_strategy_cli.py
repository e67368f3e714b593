"""`devicegate strategy get|set` against the moto stack: validated before anything is written, and
`get` shows what the camera will be told."""

from __future__ import annotations

import json

import pytest

from devicegate.store import keys
from devicegate.store.codec import from_item
from devicegate.vendors.ai_camera.models import DEFAULT_CONFIG_ENV
from devicegate_cli import commands
from devicegate_cli.main import main
from devicegate_cli.strategy import NO_CONFIG
from tests.support import EVENTS, new_environment

SERIAL = "I320013590DEA0BE21F6958"
FULL_CONFIG = json.loads((EVENTS / "ai-camera" / "config-example.json").read_text())


@pytest.fixture
def cli(stack, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(commands, "resolve_target",
                        lambda args: commands.Target(stack.session, None, stack.table, stack.bucket))
    # The default is this test's, whatever the shell or the template say.
    monkeypatch.setenv(DEFAULT_CONFIG_ENV, json.dumps({"heartbeatInterval": 60, "eventSendMode": "realTime"}))
    new_environment()

    def run(*argv: str, document=None) -> tuple[int, str, str]:
        if document is not None:
            path = tmp_path / "config.json"
            path.write_text(document if isinstance(document, str) else json.dumps(document))
            argv = (*argv, "--file", str(path))
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    new_environment()


def config_item(stack) -> dict | None:
    found = stack.ddb.get_item(TableName=stack.table, Key={"pk": {"S": keys.config_pk("ai-camera", SERIAL)},
                                                           "sk": {"S": keys.CONFIG_SK}})
    return from_item(found["Item"]) if "Item" in found else None


def test_set_then_get_round_trips(stack, cli):
    # Given no configuration for the camera
    code, out, _ = cli("strategy", "get", "--device", SERIAL)
    assert code == 0 and NO_CONFIG in out
    # When an operator stores the example configuration
    code, out, _ = cli("strategy", "set", "--device", SERIAL, "--by", "alice", document=FULL_CONFIG)
    assert code == 0 and "stored" in out
    # Then the item has the documented shape, and get shows it and what the camera is told
    item = config_item(stack)
    assert item["config"] == FULL_CONFIG and item["updatedBy"] == "alice" and item["updatedAt"].endswith("Z")
    code, out, _ = cli("strategy", "get", "--device", SERIAL, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["config"] == FULL_CONFIG and shown["updatedBy"] == "alice"
    assert shown["effective"] == FULL_CONFIG and shown["problems"] == []
    code, human, _ = cli("strategy", "get", "--device", SERIAL)
    assert "updated" in human and "by alice" in human and NO_CONFIG not in human


def test_bare_strategy_is_accepted_as_the_strategy(stack, cli):
    # Given just the strategy object (no heartbeatInterval, no eventSendMode)
    code, _, err = cli("strategy", "set", "--device", SERIAL, document=FULL_CONFIG["strategy"])
    # Then it is stored as the configuration's strategy, and the rest comes from the default
    assert code == 0, err
    assert config_item(stack)["config"] == {"strategy": FULL_CONFIG["strategy"]}
    effective = json.loads(cli("strategy", "get", "--device", SERIAL, "--json")[1])["effective"]
    assert effective["heartbeatInterval"] == 60 and effective["strategy"] == FULL_CONFIG["strategy"]


@pytest.mark.parametrize("change, field", [
    (lambda s: s.update(isPetDetectEnabled=True), "strategy.isPetDetectEnabled"),  # unknown flag (typo)
    (lambda s: s.update(isFallDetectEnable="true"), "strategy.isFallDetectEnable"),  # not a boolean
    (lambda s: s.update(isFireDetectEventEnable=1), "strategy.isFireDetectEventEnable"),
    (lambda s: s.update(heartBeatInterval=86401), "strategy.heartBeatInterval"),  # out of range
    (lambda s: s.update(passengerStaticsInterval=-1), "strategy.passengerStaticsInterval"),
])
def test_invalid_strategy_is_refused_and_nothing_written(stack, cli, change, field):
    # Given the example with one mistake
    config = json.loads(json.dumps(FULL_CONFIG))
    change(config["strategy"])
    # When it is set
    code, _, err = cli("strategy", "set", "--device", SERIAL, document=config)
    # Then it is refused naming the field, and the table has no configuration
    assert code == 2 and f"{field}: " in err
    assert config_item(stack) is None


def test_invalid_set_keeps_the_previous_configuration(stack, cli):
    cli("strategy", "set", "--device", SERIAL, document=FULL_CONFIG)
    code, _, err = cli("strategy", "set", "--device", SERIAL, document={"heartbeatInterval": 0, "eventSendMode": "x"})
    assert code == 2 and "heartbeatInterval: " in err and "eventSendMode: " in err
    assert config_item(stack)["config"] == FULL_CONFIG


def test_partial_strategy_needs_a_default_strategy(stack, cli, monkeypatch):
    # Given a default without a strategy, a partial strategy cannot be told: refused
    code, _, err = cli("strategy", "set", "--device", SERIAL, document={"isPetDetectEnable": False})
    assert code == 2 and "strategy.isFallDetectEnable: " in err and config_item(stack) is None
    # Given a default with a whole strategy, the same partial strategy is stored and merged
    monkeypatch.setenv(DEFAULT_CONFIG_ENV, json.dumps({"strategy": FULL_CONFIG["strategy"]}))
    code, out, err = cli("strategy", "set", "--device", SERIAL, document={"isPetDetectEnable": False})
    assert code == 0, err
    told = json.loads(cli("strategy", "get", "--device", SERIAL, "--json")[1])["effective"]["strategy"]
    assert told["isPetDetectEnable"] is False and told["isFallDetectEnable"] is True


def test_configuration_read_from_stdin(stack, cli, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"heartbeatInterval": 300})))
    code, _, err = cli("strategy", "set", "--device", SERIAL, "--file", "-")
    assert code == 0, err
    assert config_item(stack)["config"] == {"heartbeatInterval": 300}


def test_get_says_when_an_app_wrote_an_invalid_configuration(stack, cli):
    # Given an item an app wrote without validation
    stack.ddb.put_item(TableName=stack.table, Item={
        "pk": {"S": keys.config_pk("ai-camera", SERIAL)}, "sk": {"S": keys.CONFIG_SK},
        "config": {"M": {"heartbeatInterval": {"S": "often"}}}, "updatedAt": {"S": "2025-02-07T00:00:00.000Z"},
        "updatedBy": {"S": "app"}})
    # Then get warns and shows the default as what the camera is told
    code, out, err = cli("strategy", "get", "--device", SERIAL)
    assert code == 0 and "invalid" in err and "heartbeatInterval: " in err
    assert json.loads(cli("strategy", "get", "--device", SERIAL, "--json")[1])["effective"] == {
        "heartbeatInterval": 60, "eventSendMode": "realTime"}


def test_not_json_and_bad_serial_are_one_line_errors(stack, cli):
    code, _, err = cli("strategy", "set", "--device", SERIAL, document="{not json")
    assert code == 2 and "is not JSON" in err and config_item(stack) is None
    with pytest.raises(SystemExit) as exit_info:
        cli("strategy", "get", "--device", "has space")
    assert exit_info.value.code == 2


def test_missing_table_is_a_clear_error(stack, cli, monkeypatch):
    monkeypatch.setattr(commands, "resolve_target",
                        lambda args: commands.Target(stack.session, None, "no-such-table", stack.bucket))
    code, _, err = cli("strategy", "get", "--device", SERIAL)
    assert code == 1 and "table no-such-table not found" in err and len(err.strip().splitlines()) == 1


def test_unreachable_endpoint_is_a_clear_error(aws_env, monkeypatch, capsys):
    # Given nothing listening on the endpoint (a closed local port)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(DEFAULT_CONFIG_ENV, "")
    code = main(["strategy", "get", "--device", SERIAL, "--endpoint-url", f"http://127.0.0.1:{port}",
                 "--table", "t"])
    err = capsys.readouterr().err
    assert code == 1 and f"cannot reach http://127.0.0.1:{port}" in err and "./run local" in err
