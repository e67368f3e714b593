"""The MQTT half of `devicegate local`: a Mosquitto broker for the stack's lifetime, one paho
client per IoT topic rule of the template (played by local_iot_rules.py), and a stand-in for the
IoT data-plane `Publish` API that botocore's `iot-data` client calls.

Deployed, devices publish into AWS IoT Core and its topic rules invoke the MQTT function. Here
Debian's `mosquitto` is the broker; each rule's client subscribes with the rule's FROM filter and
its Basic Ingest filter ($aws/rules/<rule name>/#, where the Mosquitto bridge publishes) and hands
what it receives to the rules engine's worker thread.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from devicegate_local.iot_rules import (
    BASIC_INGEST_PREFIX,
    Message,
    RuleEngine,
    TopicRule,
    async_invoke_config,
    basic_ingest_filter,
    rule_topic,
    topic_matches,
    topic_rules,
)
from devicegate_local.resources import FunctionSpec, Resolver

log = logging.getLogger("devicegate.local")

DEFAULT_MQTT_PORT = 1883
# botocore's per-service endpoint variable is named after the service id ("IoT Data Plane"),
# not the client name: AWS_ENDPOINT_URL_IOT_DATA would be ignored and the client would fall back
# to AWS_ENDPOINT_URL, which is moto here.
IOT_DATA_ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_IOT_DATA_PLANE"
_MOSQUITTO_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/local/opt/mosquitto/sbin")
_BROKER_START_TIMEOUT_S = 10.0
_CLIENT_TIMEOUT_S = 10.0


class BrokerError(Exception):
    """The MQTT side cannot start or serve (no mosquitto, busy port...): a message for the user."""


# --------------------------------------------------------------------------- the broker


def find_mosquitto(explicit: str | None = None) -> str:
    """The mosquitto binary: `explicit`, else PATH, else the sbin folders (not on a user's PATH
    on Debian, where the package puts it in /usr/sbin)."""
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise BrokerError(f"no executable mosquitto at {explicit}")
    found = shutil.which("mosquitto")
    if found:
        return found
    for folder in _MOSQUITTO_DIRS:
        candidate = os.path.join(folder, "mosquitto")
        if os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError(
        "the MQTT broker mosquitto is not installed (looked on PATH and in "
        f"{', '.join(_MOSQUITTO_DIRS)}): install Debian's package with `sudo apt-get install mosquitto` "
        "(or `./run mosquitto`), or start without the MQTT path with --no-mqtt"
    )


def _connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def port_accepts(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((_connect_host(host), port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _pdeathsig_prefix() -> list[str]:
    """`setpriv --pdeathsig TERM`: the broker gets SIGTERM if the stack dies without cleaning up
    (SIGKILL), instead of living on and holding the port. Empty where setpriv lacks the option."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    try:
        probe = subprocess.run([setpriv, "--pdeathsig", "TERM", "true"], capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [setpriv, "--pdeathsig", "TERM"] if probe.returncode == 0 else []


def broker_config(host: str, port: int) -> str:
    lines = [
        f"listener {port} {host}",
        "allow_anonymous true",
        # Nothing survives the stack: a retained message or a stored session from a previous run
        # would be delivered to the rules again.
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
    ]
    try:
        # As root, mosquitto switches to the user `mosquitto`, which may not exist and cannot
        # write our temp dir; run it as whoever runs the stack.
        lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
    except KeyError:
        pass
    return "\n".join(lines) + "\n"


class Broker:
    """A mosquitto process for the stack's lifetime: its config and log in a temp dir."""

    def __init__(self, host: str, port: int, binary: str | None = None) -> None:
        self.host = host
        self.port = port
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{_connect_host(self.host)}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._dir / "mosquitto.log" if self._dir else None

    def start(self, timeout_s: float = _BROKER_START_TIMEOUT_S) -> None:
        binary = find_mosquitto(self._binary)
        if port_accepts(self.host, self.port) or not _bindable(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use (the MQTT broker needs it; a system "
                "mosquitto service holds 1883 after `apt-get install mosquitto`: `sudo systemctl disable "
                "--now mosquitto`); stop whatever holds it or pass --mqtt-port <free port>"
            )
        self._dir = Path(tempfile.mkdtemp(prefix="devicegate-mosquitto-"))
        config = self._dir / "mosquitto.conf"
        config.write_text(broker_config(self.host, self.port), encoding="utf-8")
        with open(self._dir / "mosquitto.log", "wb") as log_file:
            self._process = subprocess.Popen(
                [*_pdeathsig_prefix(), binary, "-c", str(config)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, cwd=self._dir,
            )
        deadline = time.monotonic() + timeout_s
        while not port_accepts(self.host, self.port):
            if self._process.poll() is not None:
                detail = self._log_tail()
                code = self._process.returncode
                self.stop()
                raise BrokerError(f"mosquitto exited with {code} on start: {detail}")
            if time.monotonic() > deadline:
                detail = self._log_tail()
                self.stop()
                raise BrokerError(f"mosquitto did not accept connections on port {self.port} "
                                  f"within {timeout_s:g}s: {detail}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _log_tail(self) -> str:
        path = self.log_path
        text = path.read_text(errors="replace") if path and path.exists() else ""
        lines = [line for line in text.splitlines() if line.strip()]
        return " | ".join(lines[-5:]) or "no output"


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------- paho clients


def _client(client_id: str) -> Any:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                         protocol=mqtt.MQTTv311)
    client.reconnect_delay_set(min_delay=1, max_delay=5)
    return client


class RuleSubscriber:
    """One MQTT client per rule, subscribed at QoS 1 with the rule's FROM filter and its Basic
    Ingest filter. A client with overlapping filters may be sent a message once per filter, and
    each rule must see a message exactly once, as in IoT: these two never overlap, since a filter
    starting with a wildcard or another word never matches a topic starting with "$"."""

    def __init__(self, rule: TopicRule, host: str, port: int, engine: RuleEngine) -> None:
        self.rule = rule
        self._host = _connect_host(host)
        self._port = port
        self._engine = engine
        self._filters = (rule.query.topic_filter, basic_ingest_filter(rule.name))
        self._subscribed = threading.Event()
        self._client = _client(f"devicegate-local-rule-{rule.logical_id}")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def start(self) -> None:
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise BrokerError(f"rule {self.rule.logical_id} cannot connect to the broker: {exc}") from exc
        self._client.loop_start()
        # Ready only once subscribed: a message published right after the banner must not be lost.
        if not self._subscribed.wait(_CLIENT_TIMEOUT_S):
            self.stop()
            raise BrokerError(f"rule {self.rule.logical_id} could not subscribe to "
                              f"{' and '.join(repr(f) for f in self._filters)}")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if not reason_code.is_failure:
            # Also after a reconnect: clean sessions forget their subscriptions.
            client.subscribe([(topic_filter, 1) for topic_filter in self._filters])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if len(reason_codes) == len(self._filters) and not any(code.is_failure for code in reason_codes):
            self._subscribed.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        topic, basic_ingest = rule_topic(self.rule.name, message.topic)
        self._engine.submit(Message(self.rule, topic, bytes(message.payload), int(time.time() * 1000), basic_ingest))


class Publisher:
    """One connected client that publishes on behalf of the iot-data shim."""

    def __init__(self, host: str, port: int) -> None:
        self._client = _client("devicegate-local-iot-data")
        self._connected = threading.Event()
        self._client.on_connect = lambda client, userdata, flags, reason_code, properties: (
            self._connected.set() if not reason_code.is_failure else None)
        self._host = _connect_host(host)
        self._port = port

    def start(self) -> None:
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise BrokerError(f"the iot-data shim cannot connect to the broker: {exc}") from exc
        self._client.loop_start()
        if not self._connected.wait(_CLIENT_TIMEOUT_S):
            self.stop()
            raise BrokerError("the iot-data shim could not connect to the broker")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        try:
            # IoT answers Publish once the broker has the message (PUBACK for QoS 1).
            info.wait_for_publish(timeout=_CLIENT_TIMEOUT_S)
        except RuntimeError as exc:  # paho: not connected / queue full
            raise BrokerError(f"the broker did not take the message: {exc}") from exc
        if not info.is_published():
            raise BrokerError("the broker did not acknowledge the message in time")


# --------------------------------------------------------------------------- iot-data Publish shim


class IotDataServer(ThreadingHTTPServer):
    """`POST /topics/{topic}?qos=1[&retain=true]`, the IoT data-plane Publish call botocore's
    `iot-data` client makes, published to the local broker. The SigV4 signature is not checked
    (moto does not check its own either)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, publish: Callable[[str, bytes, int, bool], None],
                 quiet: bool = False) -> None:
        self.publish = publish
        self.quiet = quiet
        super().__init__((host, port), _IotDataHandler)

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{_connect_host(str(host))}:{port}"


class _IotDataHandler(BaseHTTPRequestHandler):
    server: IotDataServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass  # the request line would carry the topic's device ids on every call; we log our own line

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        if not url.path.startswith("/topics/") or url.path == "/topics/":
            self._answer(404, {"message": "Not Found"}, "ResourceNotFoundException")
            return
        topic = unquote(url.path[len("/topics/"):])
        query = parse_qs(url.query)
        try:
            qos = int((query.get("qos") or ["0"])[0])
        except ValueError:
            qos = -1
        retain = (query.get("retain") or ["false"])[0].lower() == "true"
        if qos not in (0, 1):
            self._answer(400, {"message": "qos must be 0 or 1"}, "InvalidRequestException")
            return
        if "+" in topic or "#" in topic or not topic:
            self._answer(400, {"message": "a topic to publish on has no wildcards"}, "InvalidRequestException")
            return
        try:
            self.server.publish(topic, body, qos, retain)
        except BrokerError as exc:
            self._answer(503, {"message": str(exc)}, "ServiceUnavailableException")
            return
        if not self.server.quiet:
            log.info("iot-data publish %s (qos %d, %d bytes)", topic, qos, len(body))
        self._answer(200, {})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(405, {"message": "only POST /topics/{topic} is served"}, "MethodNotAllowedException")

    do_PUT = do_DELETE = do_GET

    def _answer(self, status: int, body: dict[str, Any], error_type: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(data)


# --------------------------------------------------------------------------- wiring


class LocalMqtt:
    """The broker, the rule subscribers, the rules engine and the iot-data shim, started and
    stopped together; `stop()` is safe at any point of `start()`."""

    def __init__(self, host: str, port: int, iot_data_port: int, rules: list[TopicRule], engine: RuleEngine,
                 disabled: list[str] | None = None, quiet: bool = False, mosquitto: str | None = None) -> None:
        self.host = host
        self.port = port
        self.rules = rules
        self.disabled = disabled or []
        self.engine = engine
        self.broker = Broker(host, port, mosquitto)
        self._iot_data_port = iot_data_port
        self._quiet = quiet
        self._subscribers: list[RuleSubscriber] = []
        self._publisher: Publisher | None = None
        self._iot_data: IotDataServer | None = None

    @property
    def broker_url(self) -> str:
        return self.broker.url

    @property
    def iot_data_endpoint(self) -> str:
        return self._iot_data.endpoint if self._iot_data else ""

    def start(self) -> None:
        try:
            self.broker.start()
            self.engine.start()
            for rule in self.rules:
                subscriber = RuleSubscriber(rule, self.host, self.port, self.engine)
                self._subscribers.append(subscriber)
                subscriber.start()
            self._publisher = Publisher(self.host, self.port)
            self._publisher.start()
            try:
                # Only this process's functions need it: loopback whatever --host is.
                self._iot_data = IotDataServer("127.0.0.1", self._iot_data_port, self._publisher.publish,
                                               self._quiet)
            except OSError as exc:
                raise BrokerError(f"the iot-data shim cannot listen on 127.0.0.1:{self._iot_data_port}: "
                                  f"{exc}; pass --iot-data-port <free port>") from exc
            threading.Thread(target=self._iot_data.serve_forever, name="iot-data", daemon=True).start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Subscribers first, so nothing new reaches the functions; the broker last.
        for subscriber in self._subscribers:
            subscriber.stop()
        self._subscribers = []
        self.engine.stop()
        if self._iot_data is not None:
            self._iot_data.shutdown()
            self._iot_data.server_close()
            self._iot_data = None
        if self._publisher is not None:
            self._publisher.stop()
            self._publisher = None
        self.broker.stop()

    def environment(self) -> dict[str, str]:
        return {IOT_DATA_ENDPOINT_VARIABLE: self.iot_data_endpoint}

    def banner_lines(self, function_names: dict[str, str] | None = None) -> list[str]:
        host = _connect_host(self.host)
        lines = [f"MQTT broker (mosquitto) on {self.broker_url}, anonymous; IoT topic rules played from the template:"]
        for rule in self.rules:
            targets = ", ".join(t.function_id or f"{t.function_arn} (not local: error action)" for t in rule.targets)
            lines.append(f"  MQTT rule {rule.logical_id}: '{rule.query.topic_filter}', Basic Ingest "
                         f"'{basic_ingest_filter(rule.name)}' -> {targets or 'no actions'}")
            if rule.error_action:
                prefix = rule.error_action.key.split("${", 1)[0]
                lines.append(f"    errors -> s3://{rule.error_action.bucket}/{prefix}")
        for logical_id in self.disabled:
            lines.append(f"  MQTT rule {logical_id}: disabled in the template (RuleDisabled)")
        topic = "upload/ak-demo/8052400203/location"
        lines += [
            f"IoT data plane (iot-data Publish) on {self.iot_data_endpoint}, set as {IOT_DATA_ENDPOINT_VARIABLE}",
            "Publish a documented Jointech record (mosquitto_pub is in Debian's mosquitto-clients):",
            f"  mosquitto_pub -h {host} -p {self.port} -q 1 -t {topic} -f events/jointech/records/mqtt-location.json",
            "  uv run python -c \"import paho.mqtt.publish as p; p.single('upload/ak-demo/8052400203/location', "
            f"open('events/jointech/records/mqtt-location.json').read(), qos=1, hostname='{host}', port={self.port})\"",
        ]
        upload = next((rule for rule in self.rules if topic_matches(rule.query.topic_filter, topic)), None)
        if upload is not None:
            lines += [
                "or by Basic Ingest, the way the Mosquitto bridge publishes it into IoT Core:",
                f"  mosquitto_pub -h {host} -p {self.port} -q 1 -t '{BASIC_INGEST_PREFIX}{upload.name}/{topic}' "
                "-f events/jointech/records/mqtt-location.json",
            ]
        return lines


def build_local_mqtt(
    *,
    resolver: Resolver,
    specs: list[FunctionSpec],
    invoke: Callable[..., Any],
    session: Any,
    queue_url_for_arn: Callable[[str], str | None],
    host: str,
    port: int,
    iot_data_port: int = 0,
    quiet: bool = False,
) -> LocalMqtt:
    """Everything the template's topic rules need, not started yet."""
    rules, disabled = topic_rules(resolver, specs)
    targets = {t.function_id for rule in rules for t in rule.targets if t.function_id}
    engine = RuleEngine(
        invoke,
        session.client("s3"),
        session.client("sqs"),
        queue_url_for_arn,
        {function_id: async_invoke_config(resolver, function_id) for function_id in targets},
        quiet=quiet,
    )
    return LocalMqtt(host, port, iot_data_port, rules, engine, disabled, quiet)
