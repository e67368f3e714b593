"""`devicegate mqtt-bridge config`: rendering the shipped Mosquitto bridge configuration.

The bridge itself is exercised with real brokers in tests/e2e/test_mqtt_bridge.py; these check
what the renderer accepts, refuses and writes.
"""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from devicegate_cli.main import main as devicegate
from devicegate_onprem import mqtt_bridge
from devicegate_onprem.mqtt_bridge import (
    BridgeConfigError,
    BridgeSettings,
    check_config,
    filter_covers,
    filters_overlap,
    render,
    render_file,
    rule_names,
)

SHIPPED = mqtt_bridge.SHIPPED_CONFIG
AK = "B176C0FF1DFF41D0126BFF7908C76E17"
UPLOAD, SUBLOCK = "gw_jointech_upload", "gw_jointech_sublock"  # the rules of the stack "gw"


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
    # And the vendor connection takes records in and sends commands out, at QoS 1, for this access
    # key only
    assert [line for line in sections["jointech"] if line.startswith("topic ")] == [
        f"topic upload/{AK}/# in 1", f"topic download/{AK}/# out 1"]
    # And the records go to IoT Core by Basic Ingest, each kind to the rule that reads its topic,
    # over two connections; the commands come in on the first
    assert [line for line in sections["aws-iot"] if line.startswith("topic ")] == [
        f"topic +/+ out 1 upload/{AK}/ $aws/rules/{UPLOAD}/upload/{AK}/", f"topic download/{AK}/# in 1"]
    assert [line for line in sections["aws-iot-sublock"] if line.startswith("topic ")] == [
        f"topic +/+/sublock out 1 upload/{AK}/ $aws/rules/{SUBLOCK}/upload/{AK}/"]
    # And each IoT Core connection is over verified TLS with the thing's certificate, under a
    # client id of its own, with nothing IoT Core refuses
    for name, client_id in (("aws-iot", "gw-jointech-bridge"), ("aws-iot-sublock", "gw-jointech-bridge-sublock")):
        aws = sections[name]
        for line in ("address abc123-ats.iot.eu-west-1.amazonaws.com:8883", "bridge_protocol_version mqttv311",
                     "bridge_insecure false", "bridge_cafile /etc/devicegate/AmazonRootCA1.pem",
                     "bridge_certfile /etc/devicegate/certificate.pem.crt",
                     "bridge_keyfile /etc/devicegate/private.pem.key", f"remote_clientid {client_id}",
                     "try_private false", "notifications false", "cleansession true", "local_cleansession false",
                     "bridge_attempt_unsubscribe false", "bridge_outgoing_retain false"):
            assert line in aws, (name, line)
    assert set(sections) == {"", "jointech", "aws-iot", "aws-iot-sublock"}
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
    ("iot_endpoint", ""),
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
    assert f"topic +/+ out 1 upload/{AK}/ $aws/rules/{UPLOAD}/upload/{AK}/\n" in text
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


# --------------------------------------------------------------------------- rule names and the check


def test_the_rule_names_follow_from_the_thing_name() -> None:
    # Given the stack's thing name, <stack name>-jointech-bridge
    # Then the Basic Ingest topics name the stack's rules (its name with "_" for "-")
    assert rule_names("dg-prod-jointech-bridge") == ("dg_prod_jointech_upload", "dg_prod_jointech_sublock")
    # And a thing name that is not the stack's output is refused, rather than guessed from
    for thing in ("gw-bridge", "-jointech-bridge", "dg.prod-jointech-bridge"):
        with pytest.raises(BridgeConfigError, match="thing name"):
            rule_names(thing)
    with pytest.raises(BridgeConfigError, match="JointechBridgeThingName"):
        render_file(_settings(thing_name="my-own-thing"), SHIPPED)


@pytest.mark.parametrize("general, specific, covers", [
    ("upload/AK/+/+", "upload/AK/+/+", True),
    ("upload/AK/+/+", "upload/AK/+/location", True),
    ("upload/AK/+/+", "upload/AK/+/+/sublock", False),
    ("upload/AK/+/+", "upload/AK/#", False),
    ("upload/AK/+/+/sublock", "upload/AK/+/E01/sublock", True),
    ("upload/AK/#", "upload/AK", True),
    ("upload/AK/+/location", "upload/AK/+/+", False),
])
def test_a_filter_covers_another_when_it_matches_all_its_topics(general: str, specific: str, covers: bool) -> None:
    assert filter_covers(general, specific) is covers


@pytest.mark.parametrize("first, second, overlap", [
    ("upload/AK/+/+", "upload/AK/+/+/sublock", False),
    ("upload/AK/+/+", "upload/AK/+/location", True),
    ("upload/AK/+/location", "upload/AK/+/alarm", False),
    ("upload/AK/#", "upload/AK/+/+/sublock", True),
    ("upload/AK/#", "upload/AK", True),
    ("upload/AK/+", "upload/AK/+/+", False),
])
def test_filters_overlap_when_a_topic_matches_both(first: str, second: str, overlap: bool) -> None:
    assert filters_overlap(first, second) is overlap is filters_overlap(second, first)


def _with_connection(block: str, text: str | None = None) -> str:
    return (text or render_file(_settings(), SHIPPED)) + "\n" + block.strip() + "\n"


IOT_SETTINGS = """
address abc123-ats.iot.eu-west-1.amazonaws.com:8883
bridge_protocol_version mqttv311
bridge_insecure false
bridge_cafile /etc/devicegate/AmazonRootCA1.pem
bridge_certfile /etc/devicegate/certificate.pem.crt
bridge_keyfile /etc/devicegate/private.pem.key
try_private false
notifications false
cleansession true
local_cleansession false
bridge_attempt_unsubscribe false
bridge_outgoing_retain false
"""


def test_the_shipped_file_passes_its_check_and_names_what_the_policy_allows() -> None:
    # When the rendered shipped file is checked
    report = check_config(render_file(_settings(), SHIPPED))
    # Then nothing is wrong, every record of both rules is carried, and the report says what the
    # policy must allow: two client ids, one Basic Ingest tree per rule
    assert (report.problems, report.notes) == ([], [])
    assert report.client_ids == ["gw-jointech-bridge", "gw-jointech-bridge-sublock"]
    assert report.publish_resources == [f"topic/$aws/rules/{SUBLOCK}/upload/{AK}/*",
                                        f"topic/$aws/rules/{UPLOAD}/upload/{AK}/*"]


def test_locations_on_a_connection_of_their_own_pass_with_a_note() -> None:
    # Given the docs' recipe: locations moved to a third connection, the other kinds named one by one
    text = render_file(_settings(), SHIPPED).replace(
        f"topic +/+ out 1 upload/{AK}/ $aws/rules/{UPLOAD}/upload/{AK}/\n",
        "".join(f"topic +/{kind} out 1 upload/{AK}/ $aws/rules/{UPLOAD}/upload/{AK}/\n"
                for kind in ("alarm", "event", "cmd")))
    text = _with_connection(f"""
connection aws-iot-location
{IOT_SETTINGS}
remote_clientid gw-jointech-bridge-location
topic +/location out 1 upload/{AK}/ $aws/rules/{UPLOAD}/upload/{AK}/
""", text)
    # When it is checked
    report = check_config(text)
    # Then it is fine, with three client ids for the policy, and a note that a kind Jointech might
    # add later would stay on the bridge
    assert report.problems == []
    assert report.client_ids == ["gw-jointech-bridge", "gw-jointech-bridge-sublock", "gw-jointech-bridge-location"]
    assert [note for note in report.notes if f"upload/{AK}/+/+" in note and UPLOAD in note], report.notes


@pytest.mark.parametrize("block, problem", [
    # a copied connection without the settings IoT Core needs (Mosquitto's defaults differ)
    (f"connection aws-iot-2\naddress e:8883\nremote_clientid gw-jointech-bridge-2\n"
     f"topic +/location out 1 upload/{AK}/ $aws/rules/{UPLOAD}/upload/{AK}/", "needs `notifications false`"),
    # the same client id twice: IoT Core would keep one of the two connections
    (f"connection aws-iot-2\n{IOT_SETTINGS}\nremote_clientid gw-jointech-bridge\n"
     f"topic +/+/+/other out 1 upload/{AK}/ $aws/rules/{SUBLOCK}/upload/{AK}/", "used by more than one connection"),
    # a record on two connections
    (f"connection aws-iot-2\n{IOT_SETTINGS}\nremote_clientid gw-jointech-bridge-2\n"
     f"topic +/location out 1 upload/{AK}/ $aws/rules/{UPLOAD}/upload/{AK}/", "published for each"),
])
def test_a_connection_iot_core_would_refuse_or_double_is_a_problem(block: str, problem: str) -> None:
    report = check_config(_with_connection(block))
    assert any(problem in found for found in report.problems), report.problems


@pytest.mark.parametrize("line, problem", [
    # the old plain topics: IoT Core's broker, billed, and not what the policy allows
    (f"topic upload/{AK}/# out 1", "not a Basic Ingest topic"),
    # sub-lock records to the upload rule: its SQL would read the sub-lock number as the kind
    (f"topic +/+/sublock out 1 upload/{AK}/ $aws/rules/{UPLOAD}/upload/{AK}/", "whose SQL reads only"),
    # a rule of no Jointech kind
    (f"topic +/+ out 1 upload/{AK}/ $aws/rules/gw_other/upload/{AK}/", "not a Basic Ingest topic"),
    # a renamed topic: the rule would read other levels
    (f"topic +/+ out 1 upload/{AK}/ $aws/rules/{UPLOAD}/", "would reach its rule as"),
    # commands taken in twice
    (f"topic download/{AK}/# in 1", "exactly one IoT Core connection"),
    ("topic download/OTHER/# in 1", "only download/"),
    ("topic # both 1", "records go out, commands in"),
])
def test_topics_a_rule_would_misread_or_the_policy_refuses_are_problems(line: str, problem: str) -> None:
    # Given the sub-lock connection with its topic line replaced
    text = render_file(_settings(), SHIPPED)
    shipped = f"topic +/+/sublock out 1 upload/{AK}/ $aws/rules/{SUBLOCK}/upload/{AK}/\n"
    # When checked, Then the problem is named
    report = check_config(text.replace(shipped, line + "\n"))
    assert any(problem in found for found in report.problems), report.problems


def test_the_check_command_prints_what_the_policy_must_allow(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a rendered file, and a copy with a connection IoT Core would close
    good, bad = tmp_path / "bridge.conf", tmp_path / "edited.conf"
    good.write_text(render_file(_settings(), SHIPPED), encoding="utf-8")
    bad.write_text(_with_connection("connection aws-iot-2\nremote_clientid x\n"), encoding="utf-8")
    # When each is checked
    assert devicegate(["mqtt-bridge", "check", str(good)]) == 0
    out = capsys.readouterr().out
    # Then the good one's client ids and Basic Ingest topics are listed for the policy
    assert "client/gw-jointech-bridge client/gw-jointech-bridge-sublock" in out
    assert f"topic/$aws/rules/{UPLOAD}/upload/{AK}/*" in out
    # And the other is refused, naming the connection
    assert devicegate(["mqtt-bridge", "check", str(bad)]) == 2
    assert "connection aws-iot-2: needs `notifications false`" in capsys.readouterr().err
