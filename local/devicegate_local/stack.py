"""`devicegate local`: the whole gateway on this machine, no Docker and no AWS account.

moto's server emulates DynamoDB, DynamoDB Streams, SQS, S3 and Secrets Manager; the template's
resources are created in it from their Properties; the functions' HttpApi routes are served
over HTTP as API Gateway would, and each DynamoDB event source is polled like Lambda's event
source mapping. A Mosquitto broker stands in for IoT Core, with the template's topic rules played
against it (local_mqtt.py, local_iot_rules.py). Each function runs in processes of its own with
only its own template environment, invoked concurrently as Lambda would (local_functions.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devicegate_local.functions import DEFAULT_CONCURRENCY, Invoker
from devicegate_local.http import IDLE_TIMEOUT_S
from devicegate_local.mqtt import DEFAULT_MQTT_PORT, BrokerError, build_local_mqtt, find_mosquitto
from devicegate_local.names import (
    LOCAL_CREDENTIALS,
    LOCAL_HTTP_PORT,
    LOCAL_MOTO_PORT,
    LOCAL_REGION,
    LOCAL_TOKEN,
    announce_running,
    withdraw_running,
)
from devicegate_local.resources import (
    MAPPING_TYPE,
    FunctionSpec,
    LocalResources,
    Resolver,
    TemplateError,
    create_resources,
    find_template,
    function_specs,
    referrers,
)

#: As moto's process (devicegate_local.moto.SWITCH_INTERVAL_S), for the same reason.
STACK_SWITCH_INTERVAL_S = 0.0005

log = logging.getLogger("devicegate.local")
READY_LINE = "devicegate local: ready"


class StartupError(Exception):
    """A problem the user can fix (busy port, missing template...): message, exit code 1."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="devicegate local",
        description="Run the gateway locally: moto for AWS, the HTTP routes, each function in processes "
                    "of its own, the stream outbox, the schedules, MQTT and the IoT topic rules.",
    )
    parser.add_argument("--template", type=Path, help="SAM template (default: template.yaml here or above)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--moto-port", type=int, default=LOCAL_MOTO_PORT, help="moto server port (5000)")
    parser.add_argument("--http-port", type=int, default=LOCAL_HTTP_PORT, help="HTTP API port (3000)")
    parser.add_argument("--mqtt-port", type=int, default=DEFAULT_MQTT_PORT,
                        help=f"MQTT broker (mosquitto) port ({DEFAULT_MQTT_PORT})")
    parser.add_argument("--iot-data-port", type=int, default=0,
                        help="port of the IoT data-plane Publish stand-in on 127.0.0.1 (default: any free one)")
    parser.add_argument("--no-mqtt", action="store_true",
                        help="no broker and no IoT topic rules (for a machine without mosquitto)")
    parser.add_argument(
        "--token",
        default=os.environ.get("DEVICEGATE_LOCAL_TOKEN") or LOCAL_TOKEN,
        help="webhook token every vendor secret holds (default dev-token or $DEVICEGATE_LOCAL_TOKEN)",
    )
    parser.add_argument("--schedule-every", type=float, metavar="SECONDS",
                        help="run scheduled functions (the device sweep) this often instead of their rate()")
    parser.add_argument("--parameter-overrides", nargs="*", default=[], metavar="NAME=VALUE",
                        help="template parameter values, like sam deploy's (default: JointechAccessKey=ak-demo)")
    parser.add_argument("--app", action="append", default=[], type=Path, metavar="TEMPLATE",
                        help="an app's SAM template to run next to the gateway (examples/consumer/template.yaml): "
                             "its functions, and their SQS event sources on the gateway's queues; a parameter "
                             "named as a gateway output takes the output's value (repeatable)")
    parser.add_argument("--app-param", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter of the --app templates (over a gateway output of the same name; repeatable)")
    parser.add_argument("--concurrency", type=_positive_int, default=DEFAULT_CONCURRENCY, metavar="N",
                        help="concurrent invocations (execution environments, one process each) per "
                             f"function (the machine's cores, 2 to 4: {DEFAULT_CONCURRENCY} here)")
    parser.add_argument("--idle-timeout", type=_positive_float, default=IDLE_TIMEOUT_S, metavar="SECONDS",
                        help=f"close an HTTP keep-alive connection idle this long ({IDLE_TIMEOUT_S:g})")
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    parser.add_argument("--verbose", action="store_true", help="debug logging of the local stack itself")
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


#: Parameter values the local stack uses unless told otherwise: the samples' access key, so the
#: command route and the MQTT topics work out of the box (deployed, it defaults to empty).
LOCAL_PARAMETERS = {"JointechAccessKey": "ak-demo"}


def local_parameters(template: dict[str, Any], pairs: list[str]) -> dict[str, str]:
    declared = template.get("Parameters") or {}
    values = {name: value for name, value in LOCAL_PARAMETERS.items() if name in declared}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in declared:
            raise StartupError(f"--parameter-overrides {pair!r}: expected NAME=VALUE with NAME one of the "
                               f"template's parameters")
        values[name] = value
    return values


def gateway_outputs(resolver: Resolver) -> dict[str, str]:
    """The template's Outputs as the local stack resolves them (those whose Condition holds and
    whose value it can resolve), for the parameters of an app's template."""
    values: dict[str, str] = {}
    for name, output in (resolver.template.get("Outputs") or {}).items():
        condition = (output or {}).get("Condition")
        if condition and not resolver.condition(condition):
            continue
        try:
            value = resolver.resolve((output or {}).get("Value"))
        except TemplateError:
            continue
        values[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return values


@dataclass
class AppTemplate:
    """An app's template run next to the gateway's (--app): its resolver and its functions."""

    path: Path
    resolver: Resolver
    specs: list[FunctionSpec]
    parameters: dict[str, str]


def load_apps(paths: list[Path], pairs: list[str], gateway: Resolver) -> list[tuple[Path, Resolver]]:
    """Each --app template with its parameters resolved: a gateway output of the same name,
    then --app-param; one without either and without a Default stops the start."""
    from devicegate_local.cfn_template import load_template

    outputs = gateway_outputs(gateway)
    given: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise StartupError(f"--app-param {pair!r}: expected NAME=VALUE")
        given[name] = value
    loaded, declared_anywhere = [], set()
    for path in paths:
        path = path.resolve()
        if not path.is_file():
            raise StartupError(f"--app {path}: no such template")
        try:
            template = load_template(path)
        except ValueError as exc:
            raise StartupError(f"{path}: {exc}") from exc
        declared = template.get("Parameters") or {}
        declared_anywhere |= set(declared)
        values = {name: outputs[name] for name in declared if name in outputs}
        values.update({name: value for name, value in given.items() if name in declared})
        missing = sorted(n for n, spec in declared.items() if n not in values and "Default" not in (spec or {}))
        if missing:
            raise StartupError(f"--app {path}: no value for {', '.join(missing)} (no gateway output has that name; "
                               f"pass --app-param NAME=VALUE)")
        shared = sorted(set(template.get("Resources") or {}) & set(gateway.resources))
        if shared:
            raise StartupError(f"--app {path}: {', '.join(shared)} also in the gateway's template; local names "
                               "come from logical ids, so an app's must differ")
        loaded.append((path, Resolver(template, values)))
    unknown = sorted(set(given) - declared_anywhere)
    if unknown:
        raise StartupError(f"--app-param {', '.join(unknown)}: no --app template declares it")
    return loaded


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server/werkzeug do
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _check_ports(host: str, moto_port: int, http_port: int, mqtt_port: int | None = None) -> None:
    options = {"--moto-port": moto_port, "--http-port": http_port}
    if mqtt_port is not None:
        options["--mqtt-port"] = mqtt_port
    for option, port in options.items():
        same = [other for other, value in options.items() if value == port and other != option]
        if same:
            raise StartupError(f"{option} and {same[0]} are both {port}; pick different ports")
    checked = [("moto", "--moto-port", moto_port, ""), ("HTTP", "--http-port", http_port, "")]
    if mqtt_port is not None:
        # Installing Debian's mosquitto also starts its system service, on 1883.
        checked.append(("MQTT", "--mqtt-port", mqtt_port,
                        " (a system mosquitto service: sudo systemctl disable --now mosquitto)"))
    for label, option, port, hint in checked:
        if not _port_free(host, port):
            raise StartupError(
                f"port {port} on {host} is already in use (the {label} server needs it); "
                f"stop whatever holds it{hint} or pass {option} <free port>"
            )


def _start_moto(host: str, port: int) -> Any:
    from devicegate_local.moto import MotoProcess

    folder = Path(tempfile.mkdtemp(prefix="devicegate-local-"))
    try:
        return MotoProcess(host, port, str(folder / "aws.sock"))
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise StartupError(f"{exc}; pass --moto-port <free port>") from exc


def aws_environment(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_REGION": LOCAL_REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def http_routes(specs: list[FunctionSpec]) -> list[Any]:
    from devicegate_local.http import Route, route_needs_iam

    routes: dict[str, Route] = {}
    for spec in specs:
        for event_id, event in spec.events.items():
            if (event or {}).get("Type") != "HttpApi":
                continue
            properties = event.get("Properties") or {}
            version = str(properties.get("PayloadFormatVersion", "2.0"))
            if version != "2.0":
                raise TemplateError(f"{spec.logical_id}.{event_id}: only PayloadFormatVersion 2.0 is emulated")
            route = Route(
                method=str(properties.get("Method", "ANY")).upper().replace("*", "ANY"),
                path=str(properties.get("Path", "$default")),
                target=spec.logical_id,
                # Auth: {Authorizer: AWS_IAM}: requests must carry a SigV4 signature (shape checked).
                iam=route_needs_iam(properties),
            )
            if route.route_key in routes:
                raise TemplateError(f"route {route.route_key} is declared twice")
            routes[route.route_key] = route
    return list(routes.values())


def _stream_sources(specs: list[FunctionSpec], resolver: Resolver) -> tuple[list[Any], list[str]]:
    """(the DynamoDB stream triggers to poll, descriptions of the triggers that are not played).

    A trigger is a function's SAM `Type: DynamoDB` event or an AWS::Lambda::EventSourceMapping
    resource; SAM turns the first into the second, so both are played the same way."""
    from devicegate_local.streams import StreamSource, mapping_enabled

    sources, skipped = [], []
    for spec in specs:
        for event_id, event in spec.events.items():
            if (event or {}).get("Type") != "DynamoDB":
                continue
            properties = event.get("Properties") or {}
            if not mapping_enabled(properties):
                skipped.append(f"{spec.logical_id}.{event_id} (disabled)")
                continue
            try:
                sources.append(StreamSource.from_event(spec.logical_id, spec.arn, properties))
            except (ValueError, KeyError) as exc:
                raise TemplateError(f"{spec.logical_id}.{event_id}: {exc}") from exc
    for logical_id in resolver.resources:
        source, why = _mapping_source(resolver, logical_id, specs)
        if source is not None:
            sources.append(source)
        elif why:
            skipped.append(f"{logical_id} ({why})")
    return sources, skipped


def _mapping_source(resolver: Resolver, logical_id: str, specs: list[FunctionSpec]) -> tuple[Any, str]:
    """(the StreamSource of an EventSourceMapping, "") or (None, why the stack does not play it);
    (None, "") for a resource that is no mapping, or one its Condition leaves out."""
    from devicegate_local.queues import is_sqs_arn
    from devicegate_local.streams import StreamSource, is_dynamodb_stream_arn, mapping_enabled

    resource = resolver.resources[logical_id] or {}
    if resource.get("Type") != MAPPING_TYPE or not resolver.enabled(logical_id):
        return None, ""
    properties = resolver.resolve(resource.get("Properties") or {})
    target = str(properties.get("FunctionName", ""))
    spec = _function_named(target, specs)
    if spec is None:
        return None, f"FunctionName {target} is not a function of this template"
    if is_sqs_arn(properties.get("EventSourceArn")):
        return None, ""  # a queue: devicegate_local.queues plays it
    if not is_dynamodb_stream_arn(properties.get("EventSourceArn")):
        return None, f"{properties.get('EventSourceArn')} -> {spec.logical_id}: only DynamoDB streams are polled"
    if not mapping_enabled(properties):
        return None, "disabled"
    try:
        return StreamSource.from_mapping(spec.logical_id, spec.arn, properties), ""
    except (ValueError, KeyError) as exc:
        raise TemplateError(f"{logical_id}: {exc}") from exc


def _function_named(function_name: str, specs: list[FunctionSpec]) -> FunctionSpec | None:
    """The function an EventSourceMapping's FunctionName means: a name, an ARN or a partial ARN
    (account:function:name), each optionally with :version or :alias, as Lambda accepts."""
    name = function_name.split(":function:", 1)[-1].split(":", 1)[0]
    return next((spec for spec in specs if spec.name == name), None)


_NOT_CALLERS = {"AWS::Lambda::Permission", "AWS::CloudWatch::Alarm", "AWS::Logs::LogGroup"}


def _banner(
    args: argparse.Namespace,
    resources: dict[str, Any],
    template: Path,
    endpoint: str,
    routes: list[Any],
    sources: list[Any],
    specs: list[FunctionSpec],
    created: LocalResources,
    scheduled: Sequence[Any] = (),
    mqtt: Any = None,
    not_played: Sequence[str] = (),
    apps: Sequence[AppTemplate] = (),
    queue_sources: Sequence[Any] = (),
) -> str:
    base = f"http://{args.host}:{args.http_port}"
    lines = [f"devicegate local: {template}", ""]
    if getattr(args, "parameters", None):
        lines += ["Parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(args.parameters.items())), ""]
    lines.append(f"HTTP API on {base} (token {args.token}):")
    for route in sorted(routes, key=lambda r: r.path):
        url = base + route.path.replace("{token}", args.token) if route.path != "$default" else base + "/*"
        lines.append(f"  {route.method} {url}  -> {route.target}")
    for source in sources:
        table = source.stream_arn.split(":table/", 1)[-1].split("/", 1)[0]
        lines.append(f"Stream of {table} -> {source.function_id} (batch {source.batch_size})")
    for schedule in scheduled:
        lines.append(f"Schedule {schedule.expression} -> {schedule.function_id} (every {schedule.period_s:g} s here)")
    for app in apps:
        lines.append(f"App {app.path}: " + (", ".join(f"{k}={v}" for k, v in sorted(app.parameters.items()))
                                             or "no parameters"))
    for queue in queue_sources:
        lines.append(f"Queue {queue.queue_arn.rsplit(':', 1)[-1]} -> {queue.function_id} (batch {queue.batch_size}"
                     + (", ReportBatchItemFailures)" if queue.report_item_failures else ")"))
    for description in not_played:
        lines.append(f"Not played locally: {description}")
    served = ({route.target for route in routes} | {source.function_id for source in sources}
              | {schedule.function_id for schedule in scheduled} | {queue.function_id for queue in queue_sources})
    if mqtt is not None:
        lines += mqtt.banner_lines()
        served |= {target.function_id for rule in mqtt.rules for target in rule.targets}
    else:
        lines.append("MQTT: off (--no-mqtt); IoT topic rules are not played")
    for spec in specs:
        if spec.logical_id not in served:
            kinds = sorted({str((e or {}).get("Type")) for e in spec.events.values()})
            callers = [t for t in referrers(resources, spec.logical_id) if t not in _NOT_CALLERS]
            why = ", ".join(kinds + callers) or "no events"
            lines.append(f"Not triggered locally: {spec.logical_id} (invoked by {why}, not emulated)")
    lines.append("")
    for label, names in (
        ("Table", created.tables),
        ("Queue", created.queue_names),
        ("Bucket", created.buckets),
        ("Secret", created.secret_names),
    ):
        for logical_id, name in names.items():
            lines.append(f"{label:<7} {name}  ({logical_id})")
    lines += [
        "",
        f"AWS emulation (moto): {endpoint}",
        "Point boto3 / the AWS CLI at it:",
        f"  export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=testing "
        f"AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={LOCAL_REGION}",
        "Query stored events and alarms:",
        "  devicegate events --vendor jointech --device 8022300001",
        "  devicegate events --vendor face-terminal --device PSC700C0MC22F02542",
        "  devicegate alarms --vendor face-terminal --status open",
        "  devicegate devices --offline",
        "  devicegate strategy get --device I320013590DEA0BE21F6958",
        "Bridge a SenseLink server into this stack:",
        f"  devicegate senselink-bridge --ws ws://HOST:9000 --app-key KEY --forward "
        f"{base}/hooks/senselink/{args.token}",
        "Ctrl-C stops.",
        READY_LINE,
    ]
    return "\n".join(lines)


@dataclass
class _Running:
    """What `_start` started, stopped in reverse by `_stop`."""

    moto: Any
    invoker: Invoker | None = None
    mqtt: Any = None
    http_server: Any = None
    pollers: list[threading.Thread] = field(default_factory=list)
    banner: str = ""
    #: Where it runs (.devicegate/local.json), for the CLI to follow without flags.
    announced: Path | None = None


def main_local(argv: list[str]) -> int:
    args = parse_args(argv)
    # The front end's answers, the invocations and the stream poller share this interpreter: a
    # record's answer should not wait 5 ms (Python's default) behind a stream batch being decoded.
    sys.setswitchinterval(STACK_SWITCH_INTERVAL_S)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("devicegate local: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    log.propagate = False

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    running: _Running | None = None
    try:
        try:
            running = _start(args, stop)
        except (StartupError, TemplateError) as exc:
            print(f"devicegate local: {exc}", file=sys.stderr, flush=True)
            return 1
        if not stop.is_set():  # Ctrl-C during startup: stop without announcing readiness
            running.announced = _announce(args, running.mqtt.environment() if running.mqtt else {})
            print(running.banner, flush=True)
        while not stop.wait(0.5):
            pass
        print("devicegate local: stopping...", file=sys.stderr, flush=True)
        return 0
    finally:
        stop.set()
        if running is not None:
            _stop(running)
        for sig, handler_ in previous.items():
            signal.signal(sig, handler_)
        if running is not None:
            print("devicegate local: stopped", flush=True)


def _announce(args: argparse.Namespace, function_environment: dict[str, str]) -> Path | None:
    """Say where this stack listens, beside its template, so that `devicegate events` (and every
    command the banner shows) reaches it on any ports without flags; and what the stack adds to
    every function's environment (the IoT data endpoint), for `devicegate invoke`."""
    template = Path(args.template or find_template() or "template.yaml").resolve()
    return announce_running(template.parent, {
        "moto": f"http://{args.host}:{args.moto_port}", "http": f"http://{args.host}:{args.http_port}",
        "mqttPort": None if args.no_mqtt else args.mqtt_port, "token": args.token,
        "parameters": getattr(args, "parameters", {}), "functionEnvironment": function_environment})


def _stop(running: _Running) -> None:
    withdraw_running(running.announced)
    if running.mqtt is not None:
        running.mqtt.stop()  # first: no new invocations, and the broker never outlives the stack
    if running.http_server is not None:
        running.http_server.shutdown()
        running.http_server.server_close()
    for poller in running.pollers:
        poller.join(timeout=10)
    if running.invoker is not None:
        running.invoker.stop()  # after their callers: an invocation in flight may finish
    running.moto.stop()
    shutil.rmtree(Path(running.moto.socket_path).parent, ignore_errors=True)


def _start(args: argparse.Namespace, stop: threading.Event) -> _Running:
    import boto3

    from devicegate_local.cfn_template import load_template
    from devicegate_local.http import LocalHttpServer
    from devicegate_local.streams import StreamPoller
    from devicegate_local.transport import StreamsClient

    template_path = args.template or find_template()
    if template_path is None or not Path(template_path).is_file():
        raise StartupError(f"no template at {template_path or 'template.yaml (here or above)'}; pass --template")
    template_path = Path(template_path).resolve()
    try:
        template = load_template(template_path)
    except ValueError as exc:
        raise StartupError(f"{template_path}: {exc}") from exc

    _check_ports(args.host, args.moto_port, args.http_port, None if args.no_mqtt else args.mqtt_port)
    if not args.no_mqtt:
        try:
            find_mosquitto()  # before moto starts: a missing broker is the most likely first-run problem
        except BrokerError as exc:
            raise StartupError(str(exc)) from exc
    endpoint = f"http://{args.host}:{args.moto_port}"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)  # a real profile or session must never leak into the emulation
    running = _Running(moto=_start_moto(args.host, args.moto_port))
    try:
        session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
        args.parameters = local_parameters(template, args.parameter_overrides)
        resolver = Resolver(template, args.parameters)
        created = create_resources(resolver, EndpointSession(session, endpoint), args.token)
        specs = function_specs(resolver, template_path.parent)
        routes = http_routes(specs)
        sources, sources_not_played = _stream_sources(specs, resolver)
        apps = []
        for app_path, app_resolver in load_apps(args.app, args.app_param, resolver):
            app_created = create_resources(app_resolver, EndpointSession(session, endpoint), args.token)
            created.merge(app_created)
            apps.append(AppTemplate(app_path, app_resolver, function_specs(app_resolver, app_path.parent),
                                    dict(app_resolver.overrides)))
        app_specs = [spec for app in apps for spec in app.specs]
        invoke = running.invoker = Invoker(specs + app_specs, aws_environment(endpoint),
                                           concurrency=args.concurrency, transport=running.moto.socket_path)
        if not args.no_mqtt:
            running.mqtt = build_local_mqtt(
                resolver=resolver, specs=specs, invoke=invoke, session=EndpointSession(session, endpoint),
                queue_url_for_arn=created.queue_url_for_arn, host=args.host, port=args.mqtt_port,
                iot_data_port=args.iot_data_port, quiet=args.quiet,
            )
            try:
                running.mqtt.start()
            except BrokerError as exc:
                raise StartupError(str(exc)) from exc
            # Before any function starts: botocore reads it when a function creates its iot-data client.
            invoke.stack_environment.update(running.mqtt.environment())
        try:
            running.http_server = LocalHttpServer(args.host, args.http_port, routes, invoke, quiet=args.quiet,
                                                  idle_timeout_s=args.idle_timeout)
        except OSError as exc:
            raise StartupError(f"cannot listen on {args.host}:{args.http_port}: {exc}") from exc
        threading.Thread(target=running.http_server.serve_forever, name="http", daemon=True).start()
        for source in sources:
            poller = StreamPoller(
                source,
                StreamsClient(running.moto.socket_path),
                session.client("sqs", endpoint_url=endpoint),
                invoke,
                created.queue_url_for_arn,
                stop,
            )
            poller.start()
            running.pollers.append(poller)
        from devicegate_local.queues import SqsPoller, sqs_sources

        queue_sources = []
        for source in sqs_sources(specs + app_specs, [resolver] + [app.resolver for app in apps]):
            url = created.queue_url_for_arn(source.queue_arn)
            if url is None:
                sources_not_played.append(f"{source.function_id} SQS {source.queue_arn} (not a queue of this stack)")
                continue
            queue_poller = SqsPoller(source, session.client("sqs", endpoint_url=endpoint), url, invoke, stop)
            queue_poller.start()
            running.pollers.append(queue_poller)
            queue_sources.append(source)
        from devicegate_local.schedule import SchedulePoller, schedules

        scheduled, schedules_not_played = schedules(specs, args.schedule_every)
        for schedule in scheduled:
            schedule_poller = SchedulePoller(schedule, invoke, stop)
            schedule_poller.start()
            running.pollers.append(schedule_poller)
    except BaseException:
        stop.set()
        _stop(running)
        raise
    running.banner = _banner(args, resolver.resources, template_path, endpoint, routes, sources, specs + app_specs,
                             created,
                             scheduled, running.mqtt, sources_not_played + schedules_not_played,
                             apps=apps, queue_sources=queue_sources)
    return running


class EndpointSession:
    """A boto3 session whose clients always talk to moto."""

    def __init__(self, session: Any, endpoint: str) -> None:
        self._session = session
        self._endpoint = endpoint

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint)
