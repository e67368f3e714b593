"""`devicegate mqtt-bridge config`: rendering the shipped Mosquitto bridge configuration.

The bridge itself is exercised with real brokers in tests/e2e/test_mqtt_bridge.py; these check
what the renderer accepts, refuses and writes.
"""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from devicegate_cli import mqtt_bridge
from devicegate_cli.main import main as devicegate
from devicegate_cli.mqtt_bridge import BridgeConfigError, BridgeSettings, render, render_file
from tests.support import ROOT

SHIPPED = ROOT / "bridge" / "mosquitto-bridge.conf"
AK = "B176C0FF1DFF41D0126BFF7908C76E17"


def _settings(**changes) -> BridgeSettings:
    values = dict(access_key=AK, vendor_host="mqtt.assetscontrols.com", vendor_port=1883,
                  vendor_username="u8vngl", vendor_password="0cc175b9c0f1b6a831c399e269772661",
                  vendor_client_id="u8vngl_devicegate", iot_endpoint="abc123-ats.iot.eu-west-1.amazonaws.com",
                  thing_name="gw-jointech-bridge", ca_file="/etc/devicegate/AmazonRootCA1.pem",
                  cert_file="/etc/devicegate/certificate.pem.crt", key_file="/etc/devicegate/private.pem.key")
    return BridgeSettings(**{**values, **changes})


def _connections(text: str) -> dict[str, list[str]]:
    """Option lines per section: "" (before the first connection), then each connection name."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("connection "):
            current = line.split()[1]
            sections[current] = []
        else:
            sections[current].append(line)
    return sections


def test_every_placeholder_is_replaced_and_each_connection_carries_its_topics() -> None:
    # Given the shipped file and one deployment's settings
    # When it is rendered
    text = render_file(_settings(), SHIPPED)
    sections = _connections(text)
    # Then nothing is left to fill
    assert "{{" not in text and "}}" not in text
    # And the vendor connection takes records in and sends commands out, the IoT one the reverse,
    # both at QoS 1, each of them for this access key only
    assert [line for line in sections["jointech"] if line.startswith("topic ")] == [
        f"topic upload/{AK}/# in 1", f"topic download/{AK}/# out 1"]
    assert [line for line in sections["aws-iot"] if line.startswith("topic ")] == [
        f"topic upload/{AK}/# out 1", f"topic download/{AK}/# in 1"]
    # And IoT Core is reached over verified TLS as the thing, with nothing IoT Core refuses
    aws = sections["aws-iot"]
    for line in ("address abc123-ats.iot.eu-west-1.amazonaws.com:8883", "bridge_protocol_version mqttv311",
                 "bridge_insecure false", "bridge_cafile /etc/devicegate/AmazonRootCA1.pem",
                 "bridge_certfile /etc/devicegate/certificate.pem.crt",
                 "bridge_keyfile /etc/devicegate/private.pem.key", "remote_clientid gw-jointech-bridge",
                 "try_private false", "notifications false", "cleansession true", "bridge_outgoing_retain false"):
        assert line in aws, line
    # And Jointech's broker with the rule's account, the local listener on loopback only
    for line in ("address mqtt.assetscontrols.com:1883", "remote_username u8vngl",
                 "remote_password 0cc175b9c0f1b6a831c399e269772661", "remote_clientid u8vngl_devicegate",
                 "notifications false", "bridge_outgoing_retain false"):
        assert line in sections["jointech"], line
    assert sections[""][:2] == ["listener 1883 127.0.0.1", "allow_anonymous true"]
    # And records waiting for IoT Core are kept on disk, in a file of the bridge's own
    assert "persistence_location /var/lib/mosquitto/" in sections[""]
    assert "persistence_file devicegate-bridge.db" in sections[""]
    # And commands are never queued for a late delivery to Jointech, records for IoT Core are
    assert "local_cleansession true" in sections["jointech"] and "cleansession false" in sections["jointech"]
    assert "local_cleansession false" in aws


def test_without_vendor_credentials_their_lines_are_left_out() -> None:
    # Given settings with no user name and password (a broker that takes anonymous clients)
    # When rendered
    text = render_file(_settings(vendor_username=None, vendor_password=None), SHIPPED)
    # Then neither option appears, rather than an empty value Mosquitto would refuse
    assert "remote_username" not in text and "remote_password" not in text
    assert "remote_clientid u8vngl_devicegate" in text
    # And a user name without a password is refused
    with pytest.raises(BridgeConfigError, match="go together"):
        render_file(_settings(vendor_password=None), SHIPPED)


@pytest.mark.parametrize("access_key", ["", "AK/dev", "AK/#", "+", "#", "A K", "AK*", "${iot:ClientId}", "a" * 129])
def test_an_access_key_that_is_not_one_topic_level_is_refused(access_key: str) -> None:
    # Given an access key with a topic separator, an MQTT or IoT-policy wildcard, a space...
    # When rendered, Then it is refused before anything is written
    with pytest.raises(BridgeConfigError, match="one MQTT topic level"):
        render_file(_settings(access_key=access_key), SHIPPED)


@pytest.mark.parametrize("field, value", [
    ("vendor_password", "secret\nlistener 1883 0.0.0.0"),  # would add a world-reachable listener
    ("vendor_password", "two words"),
    ("thing_name", ""),
    ("ca_file", "/path with spaces/AmazonRootCA1.pem"),
])
def test_values_that_would_break_a_line_are_refused(field: str, value: str) -> None:
    with pytest.raises(BridgeConfigError, match="no spaces or control characters"):
        render_file(_settings(**{field: value}), SHIPPED)


def test_a_placeholder_without_a_value_is_an_error() -> None:
    with pytest.raises(BridgeConfigError, match="no value for NEW_SETTING"):
        render("remote_clientid {{CLIENT_ID}}\nnew {{NEW_SETTING}}\n", {"CLIENT_ID": "x"})


def test_the_command_writes_a_private_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the vendor password in a file
    password = tmp_path / "vendor-password"
    password.write_text("0cc175b9c0f1b6a831c399e269772661\n", encoding="utf-8")
    output = tmp_path / "bridge.conf"
    # When the command renders the shipped file
    code = devicegate(["mqtt-bridge", "config", "--access-key", AK, "--vendor-username", "u8vngl",
                       "--vendor-password-file", str(password), "--iot-endpoint", "e-ats.iot.us-east-1.amazonaws.com",
                       "--thing-name", "gw-jointech-bridge", "--cert-dir", str(tmp_path / "certs"),
                       "--output", str(output)])
    # Then it is written readable by its owner only (it holds the password), the certificate paths
    # are absolute, and the missing certificate files are pointed out
    assert code == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    text = output.read_text(encoding="utf-8")
    assert "remote_password 0cc175b9c0f1b6a831c399e269772661\n" in text
    assert f"bridge_certfile {tmp_path / 'certs' / 'certificate.pem.crt'}\n" in text
    assert "does not exist" in capsys.readouterr().err


def test_the_command_refuses_a_bad_access_key_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code = devicegate(["mqtt-bridge", "config", "--access-key", "AK/x", "--iot-endpoint", "e", "--thing-name", "t",
                       "--cert-dir", "."])
    assert code == 2
    assert "not one MQTT topic level" in capsys.readouterr().err


def test_without_a_stack_the_endpoint_thing_and_key_are_required() -> None:
    with pytest.raises(SystemExit):
        mqtt_bridge.parse_args(["config", "--cert-dir", "."])


def _deployed(monkeypatch: pytest.MonkeyPatch, outputs: dict[str, str], access_key: str) -> None:
    def stack_values(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
        assert args.stack == "gw"
        return outputs, {"JointechAccessKey": access_key, "LogLevel": "INFO"}

    monkeypatch.setattr(mqtt_bridge, "_stack_values", stack_values)


def test_with_a_stack_the_outputs_and_the_access_key_are_filled_in(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a stack deployed with the bridge
    _deployed(monkeypatch, {"IotDataEndpoint": "e-ats.iot.eu-west-1.amazonaws.com",
                            "JointechBridgeThingName": "gw-jointech-bridge"}, AK)
    # When the configuration is rendered from it
    assert devicegate(["mqtt-bridge", "config", "--stack", "gw", "--cert-dir", "/etc/devicegate"]) == 0
    text = capsys.readouterr().out
    # Then the endpoint, thing name and access key are the deployed ones
    assert "address e-ats.iot.eu-west-1.amazonaws.com:8883\n" in text
    assert "remote_clientid gw-jointech-bridge\n" in text
    assert f"topic upload/{AK}/# out 1\n" in text
    # And the vendor client id falls back to one derived from the access key
    assert f"remote_clientid devicegate-{AK}\n" in text


def test_with_a_stack_another_access_key_or_no_bridge_is_refused(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = {"IotDataEndpoint": "e", "JointechBridgeThingName": "t"}
    # A key the stack's policy does not allow
    _deployed(monkeypatch, outputs, AK)
    assert devicegate(["mqtt-bridge", "config", "--stack", "gw", "--access-key", "OTHER", "--cert-dir", "."]) == 2
    assert "policy allows only the latter" in capsys.readouterr().err
    # A stack deployed without JointechAccessKey
    _deployed(monkeypatch, {}, "")
    assert devicegate(["mqtt-bridge", "config", "--stack", "gw", "--cert-dir", "."]) == 2
    assert "no bridge resources" in capsys.readouterr().err
