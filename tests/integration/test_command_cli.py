"""`devicegate command send|status` over HTTP: the local route server (as `devicegate local` serves
the template's routes, IAM routes included) in front of the commands function on moto."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from devicegate_cli.main import main
from devicegate_local.http import LocalHttpServer, Route
from functions.jointech_commands import app as commands_app
from tests.integration.test_jointech_commands import (
    ACCESS_KEY,
    DEVICE,
    answer,
    command_items,
    prepare_gateway,
    published,
)
from tests.integration.test_jointech_ingest import run_outbox
from tests.support import context, new_environment

ROUTE = "/devices/jointech/{deviceNum}/commands"


@pytest.fixture
def gateway(stack, monkeypatch):
    return prepare_gateway(stack, monkeypatch)


@pytest.fixture
def api(gateway):
    """The command routes served over HTTP on a free port, as the local stack serves them."""
    routes = [Route("POST", ROUTE, "JointechCommandsFunction", iam=True),
              Route("GET", ROUTE, "JointechCommandsFunction", iam=True)]
    server = LocalHttpServer("127.0.0.1", 0, routes,
                             lambda target, event: commands_app.lambda_handler(event, context(target)), quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def cli(api, capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["command", *argv, "--api-url", api])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_send_signs_the_request_and_the_command_goes_out(gateway, cli):
    # Given the local command route (it refuses unsigned requests, as API Gateway does)
    # When an operator sends a typed command from the shell
    code, out, _ = cli("send", "--device", DEVICE, "--command", "query_base_info", "--json")
    # Then it was accepted, stored with the local caller as requester, and published
    sent = json.loads(out)
    assert code == 0 and sent["status"] == "pending"
    assert published() == [(f"download/{ACCESS_KEY}/{DEVICE}/cmd", f"({DEVICE},1,001,BASE,1)".encode())]
    [item] = command_items(gateway)
    assert item["requestedBy"]["userArn"] == "arn:aws:iam::123456789012:user/local"


def test_status_shows_the_answer_once_it_came(gateway, cli):
    # Given a raw command sent from the shell and the device's answer processed
    code, out, _ = cli("send", "--device", DEVICE, "--raw", f"({DEVICE},1,001,BASE,1)")
    assert code == 0 and "pending" in out
    answer("iot-mqtt-cmd-success.json")
    run_outbox(gateway)
    # When the operator asks for the device's commands, and for that one
    code, table, _ = cli("status", "--device", DEVICE)
    command_id = command_items(gateway)[0]["commandId"]
    code_one, one, _ = cli("status", "--device", DEVICE, "--id", command_id, "--json")
    # Then both show it succeeded with the device's answer
    assert code == 0 and "succeeded" in table and command_id in table
    assert code_one == 0 and json.loads(one)["response"][3:5] == ["BASE", "1"]


def test_wait_gives_up_when_no_answer_comes_and_says_so(gateway, cli):
    code, out, err = cli("send", "--device", DEVICE, "--command", "query_time", "--wait", "1.5")
    assert code == 1 and "pending" in out and "waiting for the device's answer until" in out
    # The command's id came first, before the wait
    [command] = command_items(gateway)
    assert err.splitlines()[0].startswith(f"command {command['commandId']} sent to {DEVICE}")


def test_ctrl_c_while_waiting_names_the_command_already_sent(gateway, cli, monkeypatch):
    # Given an operator waiting for an answer who presses Ctrl-C
    from devicegate_cli import device_commands

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(device_commands.time, "sleep", interrupted)
    code, out, err = cli("send", "--device", DEVICE, "--command", "query_time", "--wait", "30")
    # Then it stops waiting in one line naming the command (sent all the same), exit 130
    [command] = command_items(gateway)
    assert code == 130 and out == "" and "Traceback" not in err
    assert f"stopped waiting; command {command['commandId']} is pending" in err.splitlines()[-1]


def test_refusals_exit_2_with_the_fields_and_retry_after(gateway, cli, monkeypatch):
    # Given a bad parameter, an unknown device, and a device over its rate limit
    code, _, err = cli("send", "--device", DEVICE, "--command", "query_time", "--param", "serial=x1")
    assert code == 2 and "HTTP 400" in err and "serial:" in err
    code, _, err = cli("send", "--device", "555", "--raw", "(555,1,001,BASE,1)")
    assert code == 2 and "HTTP 404" in err and "deviceNum:" in err

    monkeypatch.setenv("JOINTECH_COMMAND_RATE_LIMIT", "1")
    new_environment()
    codes = [cli("send", "--device", DEVICE, "--command", "query_time") for _ in range(3)]
    refused = [c for c in codes if c[0] == 2]
    assert refused and "HTTP 429" in refused[0][2] and "retry after" in refused[0][2]


def test_an_unsigned_request_to_the_local_iam_route_is_403(gateway, api):
    # Given a client that does not sign (curl without --aws-sigv4)
    request = urllib.request.Request(f"{api}/devices/jointech/{DEVICE}/commands", method="POST",
                                     data=b'{"command": "query_time"}', headers={"content-type": "application/json"})
    # When it posts a command
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    # Then the route answers 403 like API Gateway, and the function never ran
    assert refused.value.code == 403 and json.loads(refused.value.read()) == {"message": "Forbidden"}
    assert command_items(gateway) == [] and published() == []


@pytest.fixture
def cancel_route(gateway):
    """The cancel route too (the fixture `api` serves send and list only)."""
    routes = [Route("POST", ROUTE, "JointechCommandsFunction", iam=True),
              Route("GET", ROUTE, "JointechCommandsFunction", iam=True),
              Route("POST", ROUTE + "/{commandId}/cancel", "JointechCommandsFunction", iam=True)]
    server = LocalHttpServer("127.0.0.1", 0, routes,
                             lambda target, event: commands_app.lambda_handler(event, context(target)), quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_when_online_queues_cancel_cancels_and_mistakes_are_one_line(gateway, cancel_route, capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["command", *argv, "--api-url", cancel_route])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    # When an operator keeps a command for the device's next contact, with an expiry
    code, out, _ = run("send", "--device", DEVICE, "--command", "query_time", "--when-online", "--expires-in", "2h",
                       "--json")
    queued = json.loads(out)
    # Then it is queued for two hours, not sent
    assert code == 0 and queued["status"] == "queued" and published() == []
    assert queued["waitUntil"][:13] >= queued["requestedAt"][:13]
    # And status shows its lifecycle step
    code, table, _ = run("status", "--device", DEVICE)
    assert code == 0 and "queued" in table
    # When it is cancelled
    code, out, _ = run("cancel", queued["commandId"], "--device", DEVICE)
    assert code == 0 and "query_time: cancelled" in out
    # And a command sent now cannot be: one line, exit 2
    code, out, _ = run("send", "--device", DEVICE, "--command", "query_base_info", "--json")
    sent = json.loads(out)
    code, _, err = run("cancel", sent["commandId"], "--device", DEVICE)
    assert (code, err.strip()) == (2, f"devicegate: command {sent['commandId']} is pending, not waiting: only a "
                                      "queued command can be cancelled")
    # And each mistake is one line on stderr and exit 2, never a traceback
    for argv, says in (
            (("send", "--device", DEVICE, "--command", "query_time", "--expires-in", "1h"), "add --when-online"),
            (("send", "--device", DEVICE, "--command", "query_time", "--when-online", "--expires-in", "soon"),
             "expected seconds or a duration"),
            (("send", "--device", DEVICE, "--raw", f"({DEVICE},1,001,UNLOCK,1)", "--when-online"),
             "may open or unlock"),
            (("cancel", "not an id!", "--device", DEVICE), "is not a command id"),
            (("cancel", "20250101T000000000Z-0000000000", "--device", DEVICE), "HTTP 404")):
        try:
            code, _, err = run(*argv)
        except SystemExit as exc:  # argparse's way out
            code, err = exc.code, capsys.readouterr().err
        assert code == 2 and says in err and "Traceback" not in err, (argv, err)
        assert err.strip().splitlines()[0].startswith("devicegate"), err
