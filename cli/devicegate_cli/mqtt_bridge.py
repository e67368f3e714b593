"""`devicegate mqtt-bridge config`: the Mosquitto bridge between Jointech's broker and AWS IoT Core.

Renders bridge/mosquitto-bridge.conf (shipped with the docs, see docs/bridge.md) for one
deployment. Standard library only, so it runs on the machine that will run the bridge; boto3 is
imported only for --stack, which reads the endpoint, thing name and access key the stack deployed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SHIPPED_CONFIG = "bridge/mosquitto-bridge.conf"
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

# The same pattern as the template's JointechAccessKey parameter (minus "empty"): one topic level
# (no "/", and no "+" or "#", which are MQTT wildcards), and none of IoT policy's "*", "?" or "${",
# since the key is also spliced into the policy's resource ARNs.
ACCESS_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
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
    check_access_key(settings.access_key)
    if (settings.vendor_username is None) != (settings.vendor_password is None):
        raise BridgeConfigError("the vendor user name and password go together")
    return render(template.read_text(encoding="utf-8"), settings.values())


def find_shipped_config() -> Path | None:
    """bridge/mosquitto-bridge.conf of this checkout, else of the current directory or a parent
    (a non-editable install carries the code, not the file)."""
    candidates = [Path(__file__).resolve().parents[2]]
    here = Path.cwd().resolve()
    candidates += [here, *here.parents]
    for folder in candidates:
        if (folder / SHIPPED_CONFIG).is_file():
            return folder / SHIPPED_CONFIG
    return None


# --------------------------------------------------------------------------- the command


def _stack_values(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """(outputs, parameters) of the deployed stack."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

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
    config.add_argument("--template", type=Path, help=f"the file to render (default: {SHIPPED_CONFIG})")
    config.add_argument("--output", "-o", type=Path, help="write here (mode 600) instead of stdout")
    args = parser.parse_args(argv)
    if not args.stack:
        missing = [f"--{name.replace('_', '-')}" for name in ("access_key", "iot_endpoint", "thing_name")
                   if not getattr(args, name)]
        if missing:
            parser.error(f"{', '.join(missing)} required without --stack")
    if bool(args.vendor_username) != bool(args.vendor_password_file):
        parser.error("--vendor-username and --vendor-password-file go together")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    template = args.template or find_shipped_config()
    if template is None:
        print(f"devicegate mqtt-bridge: cannot find {SHIPPED_CONFIG}; run from the checkout or pass --template",
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
