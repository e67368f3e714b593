"""`devicegate mqtt-bridge config | check`: the Mosquitto bridge between Jointech's broker and AWS IoT Core.

`config` renders mosquitto-bridge.conf (shipped beside this module, see docs/bridge.md) for one
deployment; `check` holds a rendered (and perhaps edited) file to what IoT Core and the stack's
policy accept, which `config` does to its own result too. Standard library only, so it runs on
the machine that will run the bridge; boto3 is imported only for --stack, which reads the
endpoint, thing name and access key the stack deployed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Package data: every install of devicegate-onprem carries it, a checkout or not.
SHIPPED_CONFIG = Path(__file__).with_name("mosquitto-bridge.conf")
# Jointech's documented broker ("MQTT Data Push Service"): plain MQTT 3.1.1 on 1883.
VENDOR_HOST = "mqtt.assetscontrols.com"
VENDOR_PORT = 1883
LOCAL_PORT = 1883
# Debian's and Ubuntu's mosquitto package own this directory for the "mosquitto" user.
DATA_DIR = "/var/lib/mosquitto"
# File names the docs give `aws iot create-keys-and-certificate` and the Amazon root CA download.
CA_FILE = "AmazonRootCA1.pem"
CERT_FILE = "certificate.pem.crt"
KEY_FILE = "private.pem.key"
# Stack outputs and parameter the bridge resources in template.yaml publish.
OUTPUT_ENDPOINT = "IotDataEndpoint"
OUTPUT_THING = "JointechBridgeThingName"
PARAMETER_ACCESS_KEY = "JointechAccessKey"
# The template names the thing "<stack name>-jointech-bridge" and the rules "<stack name with _
# for ->_jointech_upload" and "..._jointech_sublock" (tests/template pins both), so the Basic
# Ingest topics follow from the thing name the bridge is given anyway.
THING_SUFFIX = "-jointech-bridge"
UPLOAD_RULE_SUFFIX = "_jointech_upload"
SUBLOCK_RULE_SUFFIX = "_jointech_sublock"
# Each rule's FROM filter in template.yaml (pinned by tests/template). A Basic Ingest topic names
# its rule and IoT Core does not check it against FROM, so the bridge must send each rule only
# what its SELECT reads right: a sub-lock topic given to the upload rule would be read with its
# sub-lock number as the kind.
RULE_FILTERS = {UPLOAD_RULE_SUFFIX: "upload/+/+/+", SUBLOCK_RULE_SUFFIX: "upload/+/+/+/sublock"}
BASIC_INGEST_PREFIX = "$aws/rules/"
# What every connection to IoT Core must say, and why (see the shipped file): a notification, an
# UNSUBSCRIBE or a retained publish the policy refuses makes IoT Core close the connection, and
# without the local session a record taken from Jointech during an IoT Core outage is lost.
IOT_CONNECTION_PREFIX = "aws-iot"
IOT_REQUIRED_OPTIONS = {
    "bridge_protocol_version": "mqttv311",
    "bridge_insecure": "false",
    "try_private": "false",
    "notifications": "false",
    "cleansession": "true",
    "local_cleansession": "false",
    "bridge_attempt_unsubscribe": "false",
    "bridge_outgoing_retain": "false",
}
IOT_REQUIRED_FILES = ("bridge_cafile", "bridge_certfile", "bridge_keyfile")

# The same pattern as the template's JointechAccessKey parameter (minus "empty"): one topic level
# (no "/", and no "+" or "#", which are MQTT wildcards), and none of IoT policy's "*", "?" or "${",
# since the key is also spliced into the policy's resource ARNs.
ACCESS_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
RULE_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")  # IoT's rule-name pattern
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
# Mosquitto reads one option per line and splits it at spaces: a value with a space, a newline or
# another control character would end up cut short or add an option of its own.
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")


class BridgeConfigError(ValueError):
    """A value the configuration cannot carry safely, or a placeholder left without one."""


@dataclass(frozen=True)
class BridgeSettings:
    access_key: str
    vendor_host: str
    vendor_port: int
    vendor_username: str | None
    vendor_password: str | None
    vendor_client_id: str
    iot_endpoint: str
    thing_name: str
    ca_file: str
    cert_file: str
    key_file: str
    local_port: int = LOCAL_PORT
    data_dir: str = DATA_DIR

    @property
    def rules(self) -> tuple[str, str]:
        """(upload rule, sub-lock rule): the names Basic Ingest publishes to."""
        return rule_names(self.thing_name)

    def values(self) -> dict[str, str | None]:
        """Placeholder -> value; None drops the lines that use it (no vendor credentials)."""
        return {
            "ACCESS_KEY": self.access_key,
            "VENDOR_HOST": self.vendor_host,
            "VENDOR_PORT": str(self.vendor_port),
            "VENDOR_CLIENT_ID": self.vendor_client_id,
            "VENDOR_USERNAME": self.vendor_username,
            "VENDOR_PASSWORD": self.vendor_password,
            "IOT_ENDPOINT": self.iot_endpoint,
            "CLIENT_ID": self.thing_name,
            "UPLOAD_RULE": self.rules[0],
            "SUBLOCK_RULE": self.rules[1],
            "CA_FILE": self.ca_file,
            "CERT_FILE": self.cert_file,
            "KEY_FILE": self.key_file,
            "LOCAL_PORT": str(self.local_port),
            "DATA_DIR": self.data_dir,
        }


def check_access_key(access_key: str) -> str:
    if not ACCESS_KEY.fullmatch(access_key):
        raise BridgeConfigError(
            f"access key {access_key!r} is not one MQTT topic level: use the rule's key as Jointech shows it "
            "(letters, digits, '_' and '-'; no '/', '+', '#', '*' or spaces)")
    return access_key


def rule_names(thing_name: str) -> tuple[str, str]:
    """(upload rule, sub-lock rule) of the stack whose bridge thing is `thing_name`."""
    if not thing_name.endswith(THING_SUFFIX) or thing_name == THING_SUFFIX:
        raise BridgeConfigError(
            f"thing name {thing_name!r} is not the stack's {OUTPUT_THING} output (<stack name>{THING_SUFFIX}), "
            "which the rule names are derived from")
    prefix = thing_name[:-len(THING_SUFFIX)].replace("-", "_")
    names = (prefix + UPLOAD_RULE_SUFFIX, prefix + SUBLOCK_RULE_SUFFIX)
    if not all(RULE_NAME.fullmatch(name) for name in names):
        raise BridgeConfigError(f"thing name {thing_name!r} gives no valid IoT rule names")
    return names


def render(text: str, values: Mapping[str, str | None]) -> str:
    """`text` with every {{NAME}} replaced by values[NAME].

    A line whose placeholder maps to None is left out (optional settings such as the vendor
    credentials); a placeholder with no entry at all is an error, so a new one in the shipped
    file can never reach Mosquitto unreplaced.
    """
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if unknown:
        raise BridgeConfigError(f"no value for {', '.join(unknown)}")
    for name, value in values.items():
        if value is not None and (value == "" or _UNSAFE.search(value)):
            raise BridgeConfigError(f"{name} must be non-empty with no spaces or control characters")
    lines = []
    for line in text.splitlines(keepends=True):
        names = _PLACEHOLDER.findall(line)
        if any(values[name] is None for name in names):
            continue
        lines.append(_PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), line))
    return "".join(lines)


def render_file(settings: BridgeSettings, template: Path) -> str:
    """The configuration for `settings`, checked (check_config): a file whose connections IoT Core
    or the stack's policy would refuse is an error, not something to find out in Mosquitto's log."""
    check_access_key(settings.access_key)
    if (settings.vendor_username is None) != (settings.vendor_password is None):
        raise BridgeConfigError("the vendor user name and password go together")
    text = render(template.read_text(encoding="utf-8"), settings.values())
    report = check_config(text, settings.access_key)
    if report.problems:
        raise BridgeConfigError("; ".join(report.problems))
    return text


# --------------------------------------------------------------------------- checking a configuration


@dataclass(frozen=True)
class BridgeTopic:
    """A `topic` line: pattern [direction [qos [local-prefix remote-prefix]]]."""

    pattern: str
    direction: str = "out"
    qos: int = 0
    local_prefix: str = ""
    remote_prefix: str = ""

    @property
    def local(self) -> str:
        return self.local_prefix + self.pattern

    @property
    def remote(self) -> str:
        return self.remote_prefix + self.pattern


@dataclass
class Connection:
    name: str
    options: dict[str, list[str]]
    topics: list[BridgeTopic]

    def option(self, name: str) -> str | None:
        values = self.options.get(name)
        return values[-1] if values else None


@dataclass(frozen=True)
class CheckReport:
    problems: list[str]
    notes: list[str]  # fine for IoT Core, but worth knowing (records no connection carries)
    client_ids: list[str]  # of the IoT Core connections: what the policy's iot:Connect must allow
    publishes: list[str]  # the Basic Ingest topic filters the connections publish on

    @property
    def publish_resources(self) -> list[str]:
        """What the policy's iot:Publish must allow for `publishes`, as topic/... resource names."""
        return sorted({f"topic/{policy_topic(topic_filter)}" for topic_filter in self.publishes})


def policy_topic(topic_filter: str) -> str:
    """The IoT policy topic that covers an MQTT filter: in a policy "+" and "#" are plain
    characters and "*" matches across levels, so everything from the first wildcard on is "*"."""
    levels = topic_filter.split("/")
    fixed = list(itertools.takewhile(lambda level: level not in ("+", "#"), levels))
    return topic_filter if len(fixed) == len(levels) else "/".join([*fixed, "*"])


def _unquote(token: str) -> str:
    return "" if token == '""' else token


def parse_connections(text: str) -> list[Connection]:
    """The `connection` sections of a Mosquitto configuration, with their options and topics."""
    connections: list[Connection] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        if name == "connection":
            connections.append(Connection(rest.strip(), {}, []))
        elif connections:
            if name == "topic":
                tokens = [_unquote(token) for token in rest.split()]
                if not 1 <= len(tokens) <= 5 or len(tokens) == 4:
                    raise BridgeConfigError(f"line {number}: cannot read the topic line {line!r}")
                try:
                    qos = int(tokens[2]) if len(tokens) > 2 else 0
                except ValueError as error:
                    raise BridgeConfigError(f"line {number}: {tokens[2]!r} is not a QoS") from error
                local_prefix, remote_prefix = tokens[3:5] if len(tokens) == 5 else ("", "")
                direction = tokens[1] if len(tokens) > 1 else "out"
                connections[-1].topics.append(BridgeTopic(tokens[0], direction, qos, local_prefix, remote_prefix))
            else:
                connections[-1].options.setdefault(name, []).append(rest.strip())
    return connections


def filter_covers(general: str, specific: str) -> bool:
    """Whether every topic the MQTT filter `specific` matches is matched by `general` too."""
    general_levels, specific_levels = general.split("/"), specific.split("/")
    for index, level in enumerate(general_levels):
        if level == "#":
            return True
        if index >= len(specific_levels):
            return False
        if specific_levels[index] == "#" or (level != "+" and level != specific_levels[index]):
            return False
    return len(general_levels) == len(specific_levels)


def filters_overlap(first: str, second: str) -> bool:
    """Whether some topic is matched by both MQTT filters."""
    a, b = first.split("/"), second.split("/")
    for index in range(max(len(a), len(b))):
        left, right = (a[index] if index < len(a) else None), (b[index] if index < len(b) else None)
        if "#" in (left, right):
            return True  # "x/#" matches "x" as well, so a shorter filter still meets it
        if left is None or right is None:
            return False
        if "+" not in (left, right) and left != right:
            return False
    return True


def _rule_filter(rule: str, access_key: str) -> str | None:
    """The FROM filter of `rule` (by its name's suffix) narrowed to this access key."""
    for suffix, topic_filter in RULE_FILTERS.items():
        if rule.endswith(suffix) and RULE_NAME.fullmatch(rule):
            levels = topic_filter.split("/")
            return "/".join([levels[0], access_key, *levels[2:]])
    return None


def _check_iot_connection(connection: Connection, access_key: str, problems: list[str]) -> None:
    where = f"connection {connection.name}"
    for option, wanted in IOT_REQUIRED_OPTIONS.items():
        if connection.option(option) != wanted:
            problems.append(f"{where}: needs `{option} {wanted}` (it says {connection.option(option) or 'nothing'})")
    for option in (*IOT_REQUIRED_FILES, "address", "remote_clientid"):
        if not connection.option(option):
            problems.append(f"{where}: has no {option}")
    for topic in connection.topics:
        if topic.direction == "in":
            if (topic.local, topic.remote) != (f"download/{access_key}/#", f"download/{access_key}/#"):
                problems.append(f"{where}: takes in {topic.remote!r}; only download/{access_key}/# (commands) comes "
                                "from IoT Core")
            continue
        if topic.direction != "out":
            problems.append(f"{where}: a `{topic.direction}` topic ({topic.pattern!r}); records go out, commands in")
            continue
        rule, _, rest = topic.remote.removeprefix(BASIC_INGEST_PREFIX).partition("/")
        rule_filter = _rule_filter(rule, access_key)
        if not topic.remote.startswith(BASIC_INGEST_PREFIX) or rule_filter is None:
            problems.append(f"{where}: publishes {topic.remote!r}, not a Basic Ingest topic of a Jointech rule "
                            f"({BASIC_INGEST_PREFIX}<stack>{UPLOAD_RULE_SUFFIX}/... or ...{SUBLOCK_RULE_SUFFIX}/...)")
        elif rest != topic.local:
            problems.append(f"{where}: {topic.local!r} would reach its rule as {rest!r}; the rule reads the "
                            "levels of the record's own topic, so nothing may be renamed")
        elif not filter_covers(rule_filter, topic.local):
            problems.append(f"{where}: sends {topic.local!r} to {rule}, whose SQL reads only {rule_filter!r}")


def check_config(text: str, access_key: str | None = None) -> CheckReport:
    """What IoT Core and the stack's policy would refuse in a bridge configuration, or make of it.

    The connections to IoT Core (named aws-iot...) must have the settings IoT Core needs, publish
    records only by Basic Ingest to the rule whose SQL reads that topic, each record once (no two
    connections' topics overlap), and take in the commands on exactly one connection.
    """
    problems: list[str] = []
    notes: list[str] = []
    connections = parse_connections(text)
    iot = [c for c in connections if c.name.startswith(IOT_CONNECTION_PREFIX)]
    if not iot:
        return CheckReport([f"no connection to IoT Core (named {IOT_CONNECTION_PREFIX}...)"], [], [], [])
    outgoing = [(c, t) for c in iot for t in c.topics if t.direction == "out"]
    if access_key is None:
        keys = {t.local.split("/")[1] for _, t in outgoing if t.local.count("/") >= 2}
        access_key = keys.pop() if len(keys) == 1 else ""
    if not ACCESS_KEY.fullmatch(access_key):
        return CheckReport(["the IoT Core connections do not send the records of one access key "
                            "(upload/<access key>/...)"], [], [], [])
    for connection in iot:
        _check_iot_connection(connection, access_key, problems)
    client_ids = [c.option("remote_clientid") or "" for c in iot]
    for client_id in sorted({i for i in client_ids if client_ids.count(i) > 1}):
        problems.append(f"client id {client_id!r} is used by more than one connection: IoT Core keeps one of them")
    for index, (connection, topic) in enumerate(outgoing):
        for other_connection, other in outgoing[index + 1:]:
            if filters_overlap(topic.local, other.local):
                problems.append(f"{topic.local!r} ({connection.name}) and {other.local!r} ({other_connection.name}) "
                                "overlap: a record matching both would be published for each")
    commands = [c.name for c in iot for t in c.topics if t.direction == "in"]
    if len(commands) != 1:
        problems.append(f"commands (download/{access_key}/#) must come in on exactly one IoT Core connection, "
                        f"not {len(commands)}: each would deliver every command to the device")
    rules = {t.remote.removeprefix(BASIC_INGEST_PREFIX).split("/")[0] for _, t in outgoing}
    stacks = {rule[:-len(suffix)] for rule in rules for suffix in RULE_FILTERS if rule.endswith(suffix)}
    if len(stacks) > 1:
        problems.append(f"the records go to the rules of {len(stacks)} stacks ({', '.join(sorted(stacks))}); "
                        "the policy allows one stack's")
    for rule in sorted(rules):
        rule_filter = _rule_filter(rule, access_key)
        if rule_filter and not any(t.local == rule_filter for _, t in outgoing):
            notes.append(f"no connection carries all of {rule_filter!r} ({rule}): records of that rule that no "
                         "topic line names stay on the bridge")
    for suffix in RULE_FILTERS:
        if not any(rule.endswith(suffix) for rule in rules):
            notes.append(f"no connection publishes to the ...{suffix} rule: its records stay on the bridge")
    return CheckReport(problems, notes, client_ids, sorted({t.remote for _, t in outgoing}))


def find_shipped_config() -> Path | None:
    """The shipped mosquitto-bridge.conf, beside this module."""
    return SHIPPED_CONFIG if SHIPPED_CONFIG.is_file() else None


# --------------------------------------------------------------------------- the command


def _stack_values(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """(outputs, parameters) of the deployed stack."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as error:
        # devicegate-onprem alone has no AWS SDK: the bridge machine needs none to run the bridge.
        raise BridgeConfigError("--stack needs boto3 (pip install boto3, or render the file where the "
                                "devicegate command is installed); without it pass --access-key, "
                                "--iot-endpoint and --thing-name") from error

    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
    except (BotoCoreError, ClientError) as error:
        raise BridgeConfigError(f"cannot read stack {args.stack}: {error}") from error
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ResolvedValue") or p.get("ParameterValue", "")
                  for p in stack.get("Parameters", [])}
    return outputs, parameters


def _fill_from_stack(args: argparse.Namespace) -> None:
    outputs, parameters = _stack_values(args)
    deployed_key = parameters.get(PARAMETER_ACCESS_KEY, "")
    if not deployed_key or OUTPUT_THING not in outputs or OUTPUT_ENDPOINT not in outputs:
        raise BridgeConfigError(
            f"stack {args.stack} has no bridge resources: deploy it with {PARAMETER_ACCESS_KEY}=<access key>")
    # The stack's policy allows exactly its own access key's topics: a bridge rendered for another
    # key would connect and then be disconnected at its first publish.
    if args.access_key and args.access_key != deployed_key:
        raise BridgeConfigError(
            f"--access-key differs from the stack's {PARAMETER_ACCESS_KEY}; its policy allows only the latter")
    args.access_key = deployed_key
    args.iot_endpoint = args.iot_endpoint or outputs[OUTPUT_ENDPOINT]
    args.thing_name = args.thing_name or outputs[OUTPUT_THING]


def settings_from_args(args: argparse.Namespace) -> BridgeSettings:
    password = None
    if args.vendor_password_file:
        # A file, not an option: command lines end up in shell history and in `ps`.
        try:
            password = Path(args.vendor_password_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise BridgeConfigError(f"cannot read the vendor password: {error}") from error
    username = args.vendor_username
    # Jointech shares its broker between customers and lets the client pick its id; the rule's
    # user name is this customer's, so ids derived from it cannot collide with another bridge.
    client_id = args.vendor_client_id or (f"{username}_devicegate" if username else f"devicegate-{args.access_key}")
    cert_dir = Path(args.cert_dir).resolve()  # Mosquitto resolves relative paths from its own cwd
    return BridgeSettings(
        access_key=args.access_key,
        vendor_host=args.vendor_host,
        vendor_port=args.vendor_port,
        vendor_username=username,
        vendor_password=password,
        vendor_client_id=client_id,
        iot_endpoint=args.iot_endpoint,
        thing_name=args.thing_name,
        ca_file=str(cert_dir / CA_FILE),
        cert_file=str(cert_dir / CERT_FILE),
        key_file=str(cert_dir / KEY_FILE),
        local_port=args.local_port,
        data_dir=str(Path(args.data_dir).resolve()),
    )


def _write_private(path: Path, text: str) -> None:
    # The rendered file holds the vendor password: readable by its owner (mosquitto's user) only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)  # an existing file keeps its old mode through O_CREAT
        out.write(text)


def _port(value: str) -> int:
    port = int(value)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return port


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="devicegate mqtt-bridge",
        description="Mosquitto bridge between Jointech's MQTT broker and AWS IoT Core (docs/bridge.md).")
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser(
        "config", help="render bridge/mosquitto-bridge.conf for this deployment",
        description="Render the shipped Mosquitto bridge configuration. With --stack, the IoT endpoint, the "
                    "thing name and the access key come from the deployed stack.")
    config.add_argument("--access-key", help="the Jointech MQTT rule's access key ({accessKey} in its topics)")
    config.add_argument("--vendor-host", default=VENDOR_HOST, help=f"Jointech's broker (default {VENDOR_HOST})")
    config.add_argument("--vendor-port", type=_port, default=VENDOR_PORT, help=f"default {VENDOR_PORT}")
    config.add_argument("--vendor-username", help="the MQTT rule's user (shown in the rule's details)")
    config.add_argument("--vendor-password-file", help="file holding the rule's password (its 32-character MD5)")
    config.add_argument("--vendor-client-id", help="client id on Jointech's broker (default <user>_devicegate)")
    config.add_argument("--iot-endpoint", help="the stack's IotDataEndpoint output")
    config.add_argument("--thing-name", help="the stack's JointechBridgeThingName output")
    config.add_argument("--cert-dir", required=True,
                        help=f"directory with {CA_FILE}, {CERT_FILE} and {KEY_FILE} (docs/bridge.md)")
    config.add_argument("--local-port", type=_port, default=LOCAL_PORT,
                        help=f"the bridge's own listener on 127.0.0.1 (default {LOCAL_PORT})")
    config.add_argument("--data-dir", default=DATA_DIR,
                        help=f"where the bridge keeps records waiting for IoT Core (default {DATA_DIR})")
    config.add_argument("--stack", help="deployed stack to read the endpoint, thing name and access key from")
    config.add_argument("--profile", help="AWS profile, with --stack")
    config.add_argument("--region", help="AWS region, with --stack")
    config.add_argument("--template", type=Path, help=f"the file to render (default: the shipped {SHIPPED_CONFIG.name})")
    config.add_argument("--output", "-o", type=Path, help="write here (mode 600) instead of stdout")
    check = commands.add_parser(
        "check", help="check a rendered (or edited) configuration against what IoT Core and the stack's policy accept",
        description="Check the connections to IoT Core of a rendered configuration, e.g. after adding one "
                    "(docs/bridge.md), and print the client ids and Basic Ingest topics the stack's policy must allow.")
    check.add_argument("file", type=Path, help="the rendered configuration")
    args = parser.parse_args(argv)
    if args.command == "check":
        return args
    if not args.stack:
        missing = [f"--{name.replace('_', '-')}" for name in ("access_key", "iot_endpoint", "thing_name")
                   if not getattr(args, name)]
        if missing:
            parser.error(f"{', '.join(missing)} required without --stack")
    if bool(args.vendor_username) != bool(args.vendor_password_file):
        parser.error("--vendor-username and --vendor-password-file go together")
    return args


def _check(path: Path) -> int:
    try:
        report = check_config(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, BridgeConfigError) as error:
        print(f"devicegate mqtt-bridge: {error}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(f"devicegate mqtt-bridge: {path}: {problem}", file=sys.stderr)
    for note in report.notes:
        print(f"devicegate mqtt-bridge: {path}: note: {note}", file=sys.stderr)
    if report.problems:
        return 2
    print(f"{path}: {len(report.client_ids)} connections to IoT Core; the stack's policy must allow")
    print(f"  iot:Connect  {' '.join(f'client/{client_id}' for client_id in report.client_ids)}")
    print(f"  iot:Publish  {' '.join(report.publish_resources)}")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.command == "check":
        return _check(args.file)
    template = args.template or find_shipped_config()
    if template is None:
        print(f"devicegate mqtt-bridge: cannot find {SHIPPED_CONFIG}; reinstall devicegate-onprem or pass --template",
              file=sys.stderr)
        return 2
    try:
        if args.stack:
            _fill_from_stack(args)
        settings = settings_from_args(args)
        text = render_file(settings, template)
    except BridgeConfigError as error:
        print(f"devicegate mqtt-bridge: {error}", file=sys.stderr)
        return 2
    for note in check_config(text, settings.access_key).notes:
        print(f"devicegate mqtt-bridge: note: {note}", file=sys.stderr)
    for path in (settings.ca_file, settings.cert_file, settings.key_file):
        if not Path(path).is_file():
            # Not fatal: the file may be rendered here and run on the bridge machine.
            print(f"devicegate mqtt-bridge: warning: {path} does not exist (yet)", file=sys.stderr)
    if args.output:
        _write_private(args.output, text)
        print(f"wrote {args.output}; run: mosquitto -c {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
