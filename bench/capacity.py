"""Capacity on paper, from the code: a simulated fleet spread over the table's partition keys by the
gateway's own key functions, and what that fleet asks of every AWS limit on its path.

    uv run python bench/capacity.py [--shards N] [--write-docs]      # ./run bench writes the docs

Two scenarios (SUSTAINED, BURST below): 100,000 devices of mixed vendors at about 5,000 events/s,
and the same fleet while its 10,000 face terminals upload 1,000 cached records each within ten
minutes. Every device gets an id; devicegate.store.keys turns it into the partition keys the code
writes (its events, its state item, its shard of the fleet-wide alarm, status and due lists), so
the spread over shards is the real hash's. Rates come from the stated report intervals; which items
an event writes comes from the code: the adapters (which vendors keep alarm lifecycles, which link
records, each vendor's offline interval), devicegate.store.devices.due_bucket (how often a device's
due bucket moves) and template.yaml (Shards, OfflineAfter, RetentionDays, the route throttle, the
outbox's stream mapping, the queue's FIFO mode, the bridge's policy). Nothing is sent anywhere.

What cannot be read from the code is stated: LIMITS (AWS quotas, with the page each was checked
against in SOURCES), DURATIONS (billed milliseconds per invocation) and the assumptions in
ASSUMPTIONS. docs/capacity.md is this script's output; edit the script, not the file.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from devicegate.core.adapter import VendorAdapter
from devicegate.core.caches import reset
from devicegate.core.offline import OfflinePolicy, parse_offline_after
from devicegate.core.timeutil import iso_utc
from devicegate.infra.settings import Settings
from devicegate.outbox.messages import SQS_BATCH, message_group
from devicegate.store import keys
from devicegate.store.devices import due_bucket
from devicegate.vendors import get_adapter
from devicegate.vendors.ai_camera.models import heartbeat_interval
from devicegate_local.cfn_template import load_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
DOCS = ROOT / "docs" / "capacity.md"

#: AWS's limits (defaults; most can be raised), each checked against the page in SOURCES.
LIMITS = {
    "partition_wcu": 1000,  # per partition (table or GSI), write units per second
    "partition_rcu": 3000,
    "table_wru": 40_000,  # on-demand, per table (table-level quota), write request units per second
    "new_table_wru": 4000,  # a new on-demand table at once; then up to double its previous peak
    "partition_gb": 10,  # storage per partition (second-hand: not a published quota)
    "lambda_concurrency": 1000,  # per account and Region
    "api_account_rps": 10_000,  # API Gateway, per account and Region, all APIs
    "iot_publishes_per_connection": 100,  # MQTT publishes per second on one connection
    "sqs_fifo_ht_tps": 70_000,  # high-throughput FIFO, per queue, API calls/s (us-east-1, us-west-2, eu-west-1)
    "sqs_fifo_partition_tps": 300,  # per partition and API action; one message group stays in one partition
    "stream_parallelization_max": 10,  # ParallelizationFactor's maximum
}
#: The issue's target: this many events/s sustained, no partition key over TARGET_PER_KEY writes/s.
TARGET_EVENTS = 5000
TARGET_PER_KEY = 500

#: Billed seconds per invocation: not measured here (bench/cost.py assumes 2 ms of its own plus
#: ~6 ms per DynamoDB round trip and 15-25 ms per S3 put); sized at the slow end, because
#: concurrency is what a slow minute needs, and concurrency scales linearly with these.
DURATIONS = {
    "JointechWebhookFunction": 0.030,  # token check, one conditional PutItem
    "JointechMqttFunction": 0.030,  # the same, invoked by the IoT rule per message
    "MettaxWebhookFunction": 0.030,
    "AiCameraWebhookFunction": 0.030,  # + the camera's configuration item, read at most once a minute
    "SenseLinkWebhookFunction": 0.030,
    "FaceTerminalWebhookFunction": 0.050,  # + the photo's S3 put before the item
    "outbox_per_batch": 0.050,  # BatchGetItem of the batch's devices, SendMessageBatch round trips
    "outbox_per_event": 0.004,  # bench/cost.py's outbox_ms_per_event: state merge and write, message
}

ASSUMPTIONS = [
    "One record per HTTP request and per MQTT message: Jointech and the face terminal send one per body "
    "(their adapters return one event); Mettax may send up to 500 in one body, counted here as one each "
    "(the most requests and invocations).",
    "Every event carries a device time, so no id markers (EID#...) are written; an event without one "
    "(Mettax file records, some SenseLink kinds) adds one base-table write in the EID# partition of its device.",
    "Alarms are 1% of the events of the vendors that report alarms (not of camera heartbeats); for vendors whose "
    "adapter keeps alarm lifecycles (face terminal, SenseLink) half the alarm events open an alarm and half "
    "release one. A status move is a delete and a put in gsi1 (two index writes).",
    "A moved due bucket is a delete and a put in the same gsi5 partition (two index writes), counted with the "
    "real devicegate.store.devices.due_bucket over a day of reports.",
    "No device is new (gsi2 is written when a device is first seen), none goes offline (gsi3 OFFLINE), no "
    "payload is invalid (quarantine), no record comes in parts (gsi5 PARTS) and no command is pending "
    "(gsi5 CMDPENDING): those lists take no writes in either scenario.",
    "Items are under 1 KB (photos go to S3), so one write is one write unit; a bigger item costs one unit per KB.",
    "A device's events of one outbox batch fold into one state write (they share a partition key, so one lane of "
    "one stream shard): a device reporting every 10-60 s gets one state write per report. A terminal "
    "uploading its cache sends its next record when the last one is answered (TERMINAL_ANSWER_S), so its "
    "records of one batch period fold into one state write: ~20 records/s times the period of a lane's batches "
    "(the 1 s window, shorter where a young table's few lanes fill 100-record batches sooner), never more than "
    "BatchSize.",
    "The burst comes on top of the rest of the fleet: the fleet's 10,000 face terminals upload their cache "
    "instead of reporting normally; each uploads at its own pace (one record per answer), and the uploads "
    "are spread over the ten minutes.",
]

#: A terminal sends its next cached record when the last one is answered: about one webhook
#: invocation plus the network (bench/backlog.py measures the local stack's p50 at ~64 ms).
TERMINAL_ANSWER_S = 0.050
#: Average stored item, for the table's size (and so its partitions and stream shards).
ITEM_KB = 1.0

SOURCES = [
    ("DynamoDB per-partition limit, 1,000 WCU and 3,000 RCU per second (table and GSI partitions)",
     "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/throttling-key-range-limit-exceeded-mitigation.html"
     " and https://repost.aws/knowledge-center/on-demand-table-throttling-dynamodb"),
    ("On-demand table quota 40,000 read and 40,000 write request units per table; a new on-demand table takes "
     "4,000 writes/s at once, then up to double its previous peak (more within 30 minutes may throttle)",
     "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html"
     " and https://repost.aws/knowledge-center/on-demand-table-throttling-dynamodb"),
    ("One stream shard per table partition (so ~1,000 writes/s per shard); AWS documents no separate "
     "per-shard write rate for DynamoDB Streams. Partitions of 10 GB: second-hand only",
     "https://ddb.acloudfan.com/24-streams (shards and partitions 1:1); the 10 GB figure is quoted from the old "
     "developer guide by https://cljdoc.org/d/dynamo-utils/dynamo-utils/0.3.1/api/dynamo-utils.core"),
    ("ParallelizationFactor: concurrent batches per stream shard, default 1, maximum 10",
     "https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html"),
    ("Lambda concurrent executions, 1,000 per account and Region by default",
     "https://docs.aws.amazon.com/lambda/latest/dg/limits.html"),
    ("API Gateway throttle, 10,000 requests/s per account and Region across HTTP, REST and WebSocket APIs "
     "(2,500 in some newer Regions)", "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html"),
    ("SQS high-throughput FIFO: up to 70,000 API calls/s per queue in us-east-1, us-west-2 and eu-west-1 "
     "(fewer elsewhere), 10 messages per batch call; 300 calls/s per partition and API action, a message group "
     "hashed to one partition",
     "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html and "
     "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/high-throughput-fifo.html"),
    ("AWS IoT Core: 100 publishes/s per MQTT connection (not adjustable)",
     "https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits (as quoted by AWS re:Post "
     "answers; the AWS IoT Device SDK's AwsIotCoreDefaults throttles outbound publishes to 100/s)"),
]


# --- the deployment, from template.yaml --------------------------------------------------------

@dataclass(frozen=True)
class Deployment:
    shards: int
    offline_after: str  # OfflineAfter's default
    retention: str  # RetentionDays' default
    route_rps: int  # ThrottleRateLimit's default, per route
    route_burst: int
    batch_size: int  # OutboxStreamMapping
    window_s: float
    parallelization: int
    fifo_throughput_limit: str  # EventsQueue
    deduplication_scope: str
    bridge_clients: tuple[str, ...]  # client ids the bridge's IoT policy lets connect

    @property
    def record_connections(self) -> int:
        """Bridge connections that carry the trackers' records: a `-sublock` client id carries
        only the slave locks' topics (onprem/devicegate_onprem/mosquitto-bridge.conf)."""
        return sum(not client.endswith("-sublock") for client in self.bridge_clients)


@cache
def deployment(template: Path = TEMPLATE) -> Deployment:
    data = load_template(template)
    params, resources = data["Parameters"], data["Resources"]
    mapping = resources["OutboxStreamMapping"]["Properties"]
    queue = resources["EventsQueue"]["Properties"]
    connect = [s for r in resources.values() if r["Type"] == "AWS::IoT::Policy"
               for s in r["Properties"]["PolicyDocument"]["Statement"] if s["Action"] == "iot:Connect"]
    arns = [res for s in connect for res in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    clients = tuple(str(res.get("Fn::Sub", res) if isinstance(res, dict) else res).rsplit("client/", 1)[-1]
                    for res in arns)
    return Deployment(
        shards=int(params["Shards"]["Default"]), offline_after=params["OfflineAfter"]["Default"],
        retention=params["RetentionDays"]["Default"], route_rps=int(params["ThrottleRateLimit"]["Default"]),
        route_burst=int(params["ThrottleBurstLimit"]["Default"]), batch_size=int(mapping["BatchSize"]),
        window_s=float(mapping["MaximumBatchingWindowInSeconds"]),
        parallelization=int(mapping.get("ParallelizationFactor", 1)),
        fifo_throughput_limit=queue.get("FifoThroughputLimit", "perQueue"),
        deduplication_scope=queue.get("DeduplicationScope", "queue"), bridge_clients=clients)


# --- the fleet ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Population:
    label: str
    vendor: str
    kind: str  # of its ordinary events (retention)
    devices: int
    every_s: float  # one event per device this often, on average over the scenario
    function: str  # logical id in template.yaml
    route: str | None  # HTTP route key (each has its own throttle); None: MQTT through IoT Core
    prefix: str  # device ids: prefix + number (the burst's terminals are the fleet's)
    alarm_share: float = 0.0
    linked: bool = False  # every record links to others by its id (gsi4)
    upload_every_s: float | None = None  # while a device uploads its cache: one record this often

    @property
    def events_per_s(self) -> float:
        return self.devices / self.every_s

    @property
    def active_every_s(self) -> float:
        return self.upload_every_s or self.every_s

    def device_id(self, n: int) -> str:
        return f"{self.prefix}{n:06d}"


ALARM_SHARE = 0.01
SUSTAINED = (
    Population("Jointech trackers (MQTT)", "jointech", "location", 30_000, 20, "JointechMqttFunction", None,
               "JTM", ALARM_SHARE),
    Population("Jointech trackers (push rules)", "jointech", "location", 30_000, 20, "JointechWebhookFunction",
               "POST /hooks/jointech/{token}/{kind}", "JTH", ALARM_SHARE),
    Population("Mettax vehicles", "mettax", "gps", 15_000, 10, "MettaxWebhookFunction",
               "POST /hooks/mettax/{token}/{service}", "MX", ALARM_SHARE, linked=True),
    # Each camera heartbeats as the deployment's default configuration tells it (60 s built in).
    Population("AI cameras", "ai-camera", "heartbeat", 10_000, float(heartbeat_interval(None)),
               "AiCameraWebhookFunction", "POST /hooks/ai-camera/{token}", "AC"),
    Population("face terminals", "face-terminal", "record", 10_000, 60, "FaceTerminalWebhookFunction",
               "POST /hooks/face-terminal/{token}", "FT", ALARM_SHARE),
    Population("SenseLink devices", "senselink", "record", 5_000, 30, "SenseLinkWebhookFunction",
               "POST /hooks/senselink/{token}", "SL", ALARM_SHARE),
)
BURST_RECORDS, BURST_SECONDS = 1000, 600
#: The same terminals (same ids, so the same partitions) uploading their cache.
BURST = tuple(replace(p, label="face terminals uploading their cache", every_s=BURST_SECONDS / BURST_RECORDS,
                      upload_every_s=TERMINAL_ANSWER_S) if p.vendor == "face-terminal" else p for p in SUSTAINED)
SCENARIOS = {
    "sustained": ("Scenario 1: sustained", SUSTAINED),
    "burst": ("Scenario 2: reconnect burst, on top of the rest of the fleet", BURST),
}


# --- what the code writes per device -----------------------------------------------------------

@contextmanager
def _shards(count: int) -> Iterator[None]:
    """The key functions take SHARDS from the settings as the functions do (keys.shard_count),
    read again once the variable changed (reset: as a new execution environment would)."""
    before = os.environ.get("SHARDS")
    os.environ["SHARDS"] = str(count)
    reset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SHARDS", None)
        else:
            os.environ["SHARDS"] = before
        reset()


@cache
def _keeps_lifecycles(vendor: str) -> bool:
    return type(get_adapter(vendor)).alarm_transition is not VendorAdapter.alarm_transition


@cache
def _offline_after(vendor: str) -> int | None:
    """The deployment's interval (template default OfflineAfter over each adapter's own)."""
    return OfflinePolicy(parse_offline_after(deployment().offline_after), get_adapter).interval(vendor)


@cache
def due_moves_per_s(every_s: float, offline_after_s: int) -> float:
    """How often one device's due bucket moves (a gsi5 rewrite), reporting every `every_s`."""
    start, horizon = datetime(2025, 1, 1, tzinfo=UTC), 86_400
    beats = (start + timedelta(seconds=i * every_s) for i in range(int(horizon / every_s)))
    return (len({due_bucket(iso_utc(at), offline_after_s) for at in beats}) - 1) / horizon


@dataclass(frozen=True)
class Spread:
    """Where one population's devices land: shared keys with their device counts, and the
    per-device keys (one device each) with an example."""

    shared: Counter  # (index, role, pk) -> devices
    own: dict[tuple[str, str], str]  # (index, role) -> example pk
    distinct: bool  # every per-device key is a different partition


@cache
def spread(population: Population, shards: int) -> Spread:
    vendor, shared, own, seen = population.vendor, Counter(), {}, Counter()
    lifecycle, alarms = _keeps_lifecycles(vendor), population.alarm_share > 0
    due = _offline_after(vendor) is not None
    with _shards(shards):
        for n in range(population.devices):
            device = population.device_id(n)
            mine = [("table", "events", keys.event_pk(vendor, device)),
                    ("table", "state", keys.device_pk(vendor, device))]
            if due:
                shared[("gsi5", "due", keys.due_pk(vendor, device))] += 1
            if alarms:
                shared[("gsi3", "alarms", keys.alarm_pk(vendor, device))] += 1
                if lifecycle:
                    mine.append(("table", "lifecycles", keys.alarms_pk(vendor, device)))
                    shared[("gsi1", "open", keys.alarm_status_pk(vendor, "open", device))] += 1
                    shared[("gsi1", "released", keys.alarm_status_pk(vendor, "released", device))] += 1
            for index, role, pk in mine:
                own.setdefault((index, role), pk)
                seen[(role, pk)] += 1
    return Spread(shared, own, all(count == 1 for count in seen.values()))


@dataclass
class Load:
    """Writes/s per (index, partition key) and per index, for one scenario."""

    per_key: Counter
    totals: Counter  # index -> writes/s over all its keys
    keys_written: Counter  # index -> partition keys that take writes
    events: float
    inserts: float  # new event items (stream INSERTs the outbox takes)
    state_fold: dict[str, float]  # population label -> records per state write
    distinct: bool


def load(populations: tuple[Population, ...], shards: int, batch_period_s: float | None = None) -> Load:
    """`batch_period_s`: how long one outbox lane collects a batch (the window when None)."""
    dep = deployment()
    period = dep.window_s if batch_period_s is None else batch_period_s
    per_key, totals, keys_written, fold = Counter(), Counter(), Counter(), {}
    distinct = True
    for p in populations:
        where = spread(p, shards)
        distinct &= where.distinct
        rate, active = 1 / p.every_s, 1 / p.active_every_s
        alarm = rate * p.alarm_share
        # A device's records of one batch fold into one state write (never more than a batch).
        fold[p.label] = min(max(1.0, active * period), dep.batch_size)
        own = {"events": (active, rate), "state": (active / fold[p.label], rate / fold[p.label]),
               "lifecycles": (active * p.alarm_share, alarm)}
        for (index, role), pk in where.own.items():
            peak, average = own[role]
            per_key[(index, pk)] = max(per_key[(index, pk)], peak)
            totals[index] += average * p.devices
            keys_written[index] += p.devices
        offline_after = _offline_after(p.vendor)
        moves = 2 * due_moves_per_s(p.every_s, offline_after) if offline_after else 0.0
        # Per shared key: its devices times each device's rate (an open alarm's key takes the put
        # when it opens and the delete when it is released: one write per alarm event).
        shared_rate = {"due": moves, "alarms": alarm, "open": alarm, "released": alarm / 2}
        for (index, role, pk), devices in where.shared.items():
            per_key[(index, pk)] += devices * shared_rate[role]
            totals[index] += devices * shared_rate[role]
        if p.linked:
            # Each record's link is its own id: a gsi4 key takes one write per record, once.
            totals["gsi4"] += rate * p.devices
    for index, _pk in list(per_key):
        if index != "table":
            keys_written[index] += 1
    events = sum(p.events_per_s for p in populations)
    return Load(per_key, totals, keys_written, events, events, fold, distinct)


# --- the rest of the path ----------------------------------------------------------------------

@dataclass(frozen=True)
class Outbox:
    shards: int
    records_per_batch: float
    batch_period_s: float  # how long one lane collects a batch
    invocations: float
    concurrency: float
    capacity: float  # events/s the lanes take with full batches


def outbox(inserts: float, shards: int) -> Outbox:
    """Lambda reads each stream shard in ParallelizationFactor lanes (by partition key); a lane
    invokes with what arrived within the batching window, up to BatchSize."""
    dep = deployment()
    lanes = shards * dep.parallelization
    lane_rate = inserts / lanes
    per_batch = min(dep.batch_size, max(1.0, lane_rate * dep.window_s))
    invocations = inserts / per_batch
    seconds = DURATIONS["outbox_per_batch"] + DURATIONS["outbox_per_event"] * per_batch
    full = dep.batch_size / (DURATIONS["outbox_per_batch"] + DURATIONS["outbox_per_event"] * dep.batch_size)
    return Outbox(shards, per_batch, per_batch / lane_rate, invocations, invocations * seconds, lanes * full)


def table_gb(populations: tuple[Population, ...]) -> float:
    """The table at steady state: each kind kept for its RetentionDays."""
    settings = Settings.model_validate({"TABLE_NAME": "capacity", "RETENTION_DAYS": deployment().retention})
    kb = 0.0
    for p in populations:
        ordinary = p.events_per_s * (1 - p.alarm_share) * settings.retention_for(p.vendor, p.kind)
        alarms = p.events_per_s * p.alarm_share * settings.retention_for(p.vendor, "alarm")
        kb += (ordinary + alarms) * 86_400 * ITEM_KB
    return kb / 1024 / 1024


@dataclass
class Scenario:
    key: str
    title: str
    populations: tuple[Population, ...]
    shards: int
    load: Load
    new_table: Outbox  # stream shards from the writes alone (a young table)
    full_table: Outbox  # stream shards from the table's size at retention
    table_gb: float
    #: Base-table writes/s the table has served before (None: a new table). On demand, DynamoDB
    #: takes up to double its previous peak at once; a new table starts at LIMITS["new_table_wru"].
    previous_peak: float | None = None

    @property
    def instant_writes(self) -> float:
        return LIMITS["new_table_wru"] if self.previous_peak is None else 2 * self.previous_peak

    @property
    def base_writes(self) -> float:
        return self.load.totals["table"]

    def busiest(self, index: str | None = None) -> tuple[str, str, float]:
        rows = [(i, pk, rate) for (i, pk), rate in self.load.per_key.items() if index in (None, i)]
        return max(rows, key=lambda row: row[2]) if rows else (index or "", "", 0.0)

    def requests(self) -> Counter:
        out: Counter = Counter()
        for p in self.populations:
            out[p.route or "mqtt"] += p.events_per_s
        return out

    def concurrency(self) -> dict[str, float]:
        per: Counter = Counter()
        for p in self.populations:
            per[p.function] += p.events_per_s * DURATIONS[p.function]
        per["OutboxFunction"] = max(self.new_table.concurrency, self.full_table.concurrency)
        return dict(per)

    def busiest_group(self) -> float:
        """Messages/s of the busiest message group (one per device) while it is busiest."""
        return max(1 / p.active_every_s for p in self.populations)


def scenario(key: str, shards: int, previous_peak: float | None = None) -> Scenario:
    title, populations = SCENARIOS[key]
    first = load(populations, shards)
    young = outbox(first.inserts, max(1, math.ceil(first.totals["table"] / LIMITS["partition_wcu"])))
    # A young table's few shards fill batches sooner: fold the state writes over that period.
    final = load(populations, shards, min(deployment().window_s, young.batch_period_s))
    shard_count = max(1, math.ceil(final.totals["table"] / LIMITS["partition_wcu"]))
    gb = table_gb(SUSTAINED)  # the table the fleet has built up; a ten-minute burst adds little
    full = max(shard_count, math.ceil(gb / LIMITS["partition_gb"]))
    return Scenario(key, title, populations, shards, final, outbox(final.inserts, shard_count),
                    outbox(final.inserts, full), gb, previous_peak)


def scenarios(shards: int) -> list[Scenario]:
    """Both scenarios; the burst meets a table that has served the sustained fleet."""
    sustained = scenario("sustained", shards)
    return [sustained, scenario("burst", shards, previous_peak=sustained.base_writes)]


# --- the report --------------------------------------------------------------------------------

INDEXES = {
    "table": "base table: E# events, D# state, A# alarm lifecycles",
    "gsi1": "AL#{vendor}#{status}#{shard} alarms by status (and Q# quarantine)",
    "gsi2": "V#{vendor}#{shard} device lists (KEYS_ONLY)",
    "gsi3": "ALARM#{shard} alarms by time, OFFLINE#{shard} offline devices",
    "gsi4": "L#{vendor}#{link} linked records",
    "gsi5": "DUE#{shard} due buckets (and PARTS#, CMDPENDING#; KEYS_ONLY)",
}
NO_WRITES = {
    "gsi1": "no vendor in the mix keeps alarm lifecycles with alarms on",
    "gsi2": "written once, when a device is first seen: none is new here",
    "gsi3": "no alarms",
    "gsi4": "no vendor in the mix links records",
    "gsi5": "no device is tracked for going offline",
}


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _ratio(need: float, limit: float) -> str:
    return "-" if need <= 0 else f"{limit / need:,.1f}x"


def fleet_table() -> list[str]:
    lines = ["| population | devices | one event every | events/s (1) | events/s (2) | path | ms per invocation | alarms |",
             "|---|---:|---|---:|---:|---|---:|---|"]
    for steady, burst in zip(SUSTAINED, BURST, strict=True):
        every = f"{steady.every_s:g} s" if steady is burst else (
            f"{steady.every_s:g} s; (2) {BURST_RECORDS:,} records in {BURST_SECONDS // 60} min, one per answer "
            f"({burst.upload_every_s * 1000:g} ms) while uploading")
        path = f"`{steady.route}`" if steady.route else "MQTT: bridge -> IoT Core rule"
        lines.append(f"| {steady.label} (`{steady.vendor}`) | {_n(steady.devices)} | {every} | "
                     f"{_n(steady.events_per_s)} | {_n(burst.events_per_s)} | {path} | "
                     f"{DURATIONS[steady.function] * 1000:g} | {_n(steady.alarm_share * 100, 0)}% |")
    total_1, total_2 = (sum(p.events_per_s for p in s) for s in (SUSTAINED, BURST))
    lines.append(f"| **all** | **{_n(sum(p.devices for p in SUSTAINED))}** | | **{_n(total_1)}** | **{_n(total_2)}** "
                 "| | | |")
    return lines


def partition_table(s: Scenario) -> list[str]:
    lines = ["| index | busiest partition key | its writes/s | keys written | writes/s, all keys | "
             f"headroom to {TARGET_PER_KEY}/s (target) | to {LIMITS['partition_wcu']:,}/s (DynamoDB) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for index, what in INDEXES.items():
        total = s.load.totals[index]
        if index == "gsi4" and total:
            lines.append(f"| {index}: {what} | `L#mettax#{{record id}}` | 1 write, once | one per record | "
                         f"{_n(total)} | - | - |")
            continue
        _, pk, rate = s.busiest(index)
        if not rate:
            lines.append(f"| {index}: {what} | none: {NO_WRITES[index]} | 0 | 0 | 0 | - | - |")
            continue
        lines.append(f"| {index}: {what} | `{pk}` | {_n(rate, 1)} | {_n(s.load.keys_written[index])} | {_n(total)} | "
                     f"{_ratio(rate, TARGET_PER_KEY)} | {_ratio(rate, LIMITS['partition_wcu'])} |")
    return lines


def path_rows(s: Scenario) -> list[tuple[str, str, str, str]]:
    """(resource, needed, limit, headroom) for one scenario."""
    dep = deployment()
    requests = s.requests()
    https = sum(v for k, v in requests.items() if k != "mqtt")
    route, route_rps = max(((k, v) for k, v in requests.items() if k != "mqtt"), key=lambda kv: kv[1])
    mqtt = requests["mqtt"]
    per_function = s.concurrency()
    lam = sum(per_function.values())
    breakdown = ", ".join(f"{name.removesuffix('Function')} {value:,.0f}"
                          for name, value in sorted(per_function.items(), key=lambda kv: -kv[1]))
    gsi = sum(v for k, v in s.load.totals.items() if k != "table")
    young, full = s.new_table, s.full_table
    group = s.busiest_group()
    send_calls = _send_calls(s)
    bridges = math.ceil(mqtt / LIMITS["iot_publishes_per_connection"])
    return [
        ("HTTP requests/s, all routes (API Gateway account throttle)", _n(https), _n(LIMITS["api_account_rps"]),
         _ratio(https, LIMITS["api_account_rps"])),
        (f"busiest route `{route}` (template ThrottleRateLimit, per route; burst {dep.route_burst})", _n(route_rps),
         _n(dep.route_rps), _ratio(route_rps, dep.route_rps)),
        (f"Lambda concurrency ({breakdown})", _n(lam), _n(LIMITS["lambda_concurrency"]),
         _ratio(lam, LIMITS["lambda_concurrency"])),
        ("DynamoDB base-table writes/s (on-demand table quota)", _n(s.base_writes), _n(LIMITS["table_wru"]),
         _ratio(s.base_writes, LIMITS["table_wru"])),
        (_instant_label(s), _n(s.base_writes), _n(s.instant_writes), _ratio(s.base_writes, s.instant_writes)),
        ("DynamoDB index writes/s, all GSIs (each GSI has its own capacity)", _n(gsi), "-", "-"),
        (f"stream shards: young table (writes / {LIMITS['partition_wcu']:,}) / full table "
         f"({_n(s.table_gb / 1024, 1)} TB at RetentionDays / {LIMITS['partition_gb']} GB)",
         f"{_n(young.shards)} / {_n(full.shards)}", "-", "-"),
        (f"outbox records per batch (BatchSize {dep.batch_size}, window {dep.window_s:g} s, "
         f"ParallelizationFactor {dep.parallelization}): young / full table",
         f"{_n(young.records_per_batch, 1)} / {_n(full.records_per_batch, 1)}", "-", "-"),
        ("outbox invocations/s: young / full table", f"{_n(young.invocations)} / {_n(full.invocations)}", "-", "-"),
        ("outbox events/s vs what its lanes take with full batches (young table)", _n(s.load.inserts),
         _n(young.capacity), _ratio(s.load.inserts, young.capacity)),
        (f"SQS FIFO SendMessageBatch calls/s ({dep.fifo_throughput_limit}, dedup per {dep.deduplication_scope})",
         _n(send_calls), _n(LIMITS["sqs_fifo_ht_tps"]), _ratio(send_calls, LIMITS["sqs_fifo_ht_tps"])),
        ("SQS messages/s of the busiest message group (one device)", _n(group, 1),
         f"{LIMITS['sqs_fifo_partition_tps']} calls/s per partition", _ratio(group, LIMITS["sqs_fifo_partition_tps"])),
        ("IoT Core publishes/s through the Jointech bridge", _n(mqtt), "-", "-"),
        (f"bridge connections for tracker records at {LIMITS['iot_publishes_per_connection']} publishes/s each "
         f"(the bridge policy's client ids: {', '.join(f'`{c}`' for c in dep.bridge_clients)})", _n(bridges),
         _n(dep.record_connections), _ratio(bridges, dep.record_connections)),
    ]


def _send_calls(s: Scenario) -> float:
    """SendMessageBatch calls/s: one per 10 messages of an invocation, at least one per invocation."""
    calls = 0.0
    for box in (s.new_table, s.full_table):
        calls = max(calls, box.invocations * math.ceil(box.records_per_batch / SQS_BATCH))
    return calls


@dataclass(frozen=True)
class Break:
    what: str
    scenario: str
    need: float
    limit: float
    moves_it: str

    @property
    def headroom(self) -> float:
        return self.limit / self.need if self.need else math.inf


def breaks(both: list[Scenario]) -> list[Break]:
    dep = deployment()
    out = []
    for s in both:
        requests = s.requests()
        https = sum(v for k, v in requests.items() if k != "mqtt")
        route, route_rps = max(((k, v) for k, v in requests.items() if k != "mqtt"), key=lambda kv: kv[1])
        _, pk, busiest = s.busiest()
        bridges = requests["mqtt"] / LIMITS["iot_publishes_per_connection"]
        out += [
            Break("bridge connections for tracker records (100 publishes/s each)", s.key, bridges,
                  dep.record_connections,
                  f"nothing in the template: JointechBridgePolicy lets {len(dep.bridge_clients)} client id(s) "
                  f"connect, {dep.record_connections} of them for records. More connections need more client ids "
                  "in the policy and Jointech's topics split between them in the bridge's configuration; or "
                  "trackers on HTTPS push rules"),
            Break(f"route throttle on `{route}`", s.key, route_rps, dep.route_rps,
                  "template parameters ThrottleRateLimit / ThrottleBurstLimit (per route, every route alike)"),
            Break("API Gateway account throttle", s.key, https, LIMITS["api_account_rps"],
                  "a Service Quotas increase (L-8A5B8E43); a 429 keeps a terminal's record in its cache"),
            Break("Lambda concurrency", s.key, sum(s.concurrency().values()), LIMITS["lambda_concurrency"],
                  "a Service Quotas increase; reserved concurrency for the outbox keeps the ingest from starving it"),
            Break(_instant_label(s), s.key, s.base_writes, s.instant_writes,
                  "none in the template: warm throughput on EventsTable, or traffic grown over 30 minutes"),
            Break("DynamoDB table write quota", s.key, s.base_writes, LIMITS["table_wru"],
                  "a Service Quotas increase of the table-level write quota"),
            Break(f"busiest partition key `{pk}` vs the {TARGET_PER_KEY}/s target", s.key, busiest, TARGET_PER_KEY,
                  "Shards (template parameter) for the fleet-wide lists; a device's own keys cannot be split"),
            Break("SQS FIFO calls/s per queue", s.key, _send_calls(s), LIMITS["sqs_fifo_ht_tps"],
                  "already high-throughput FIFO (FifoThroughputLimit perMessageGroupId); fewer TPS outside the "
                  "big Regions"),
        ]
    # A limit the scenarios meet alike (the bridge, the same route) is listed once.
    unique: dict[tuple[str, float], Break] = {}
    for b in out:
        unique.setdefault((b.what, round(b.need, 3)), b)
    return sorted(unique.values(), key=lambda b: b.headroom)


def _instant_label(s: Scenario) -> str:
    if s.previous_peak is None:
        return "base-table writes/s a new on-demand table takes at once (a fresh stack meeting the whole fleet)"
    return "base-table writes/s at once: double the previous peak (the sustained rate), within 30 minutes"


def break_table(both: list[Scenario]) -> list[str]:
    events = {s.key: s.load.events for s in both}
    lines = ["| limit | scenario | needed | limit | headroom | the whole mix reaches it at | what moves it |",
             "|---|---|---:|---:|---:|---:|---|"]
    for b in breaks(both):
        at = events[b.scenario] * b.headroom
        lines.append(f"| {b.what} | {b.scenario} | {_n(b.need, 1 if b.need < 10 else 0)} | {_n(b.limit)} | "
                     f"{b.headroom:,.2f}x | {_n(at)} events/s | {b.moves_it} |")
    return lines


def shards_table(choices: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> list[str]:
    lines = ["| Shards | busiest ALARM# (1) | busiest DUE# (1) | busiest ALARM# (2) | busiest AL#...#open# (2) | "
             "queries per full list read |", "|---:|---:|---:|---:|---:|---:|"]
    for n in choices:
        one, two = load(SUSTAINED, n), load(BURST, n)

        def top(loaded: Load, prefix: str) -> float:
            return max((r for (_, pk), r in loaded.per_key.items() if pk.startswith(prefix)), default=0.0)

        lines.append(f"| {n} | {_n(top(one, 'ALARM#'), 1)} | {_n(top(one, 'DUE#'), 1)} | {_n(top(two, 'ALARM#'), 1)} | "
                     f"{_n(top(two, 'AL#face-terminal#open#'), 1)} | {n} |")
    return lines


def _one_shard_verdict(default: int) -> str:
    """What a single shard would carry: the busiest fleet-wide list with every device in one key."""
    single = max(max(rate for (index, _), rate in load(scenario_populations, 1).per_key.items() if index != "table")
                 for scenario_populations in (SUSTAINED, BURST))
    verdict = "stays under" if single <= TARGET_PER_KEY else "goes over"
    return (f"With 1 shard the busiest list takes {_n(single)} writes/s and {verdict} the {TARGET_PER_KEY}/s "
            f"target; {default} divides that by {default}, room for a fleet {_n(TARGET_PER_KEY * default / single)} "
            "times this one's list traffic (or an alarm storm: every tracker raising an alarm at once).")


def per_device_notes(s: Scenario) -> list[str]:
    burst = next(p for p in s.populations if p.upload_every_s)
    fold = s.load.state_fold[burst.label]
    event_key = keys.event_pk(burst.vendor, burst.device_id(0))
    return [
        f"- A terminal's own partitions in the burst: {BURST_RECORDS:,} records in {BURST_SECONDS // 60} minutes "
        f"is {_n(BURST_RECORDS / BURST_SECONDS, 1)} writes/s on `{event_key}` on average, and "
        f"{_n(1 / burst.upload_every_s)} writes/s while the terminal uploads (one record per answer, about "
        f"{burst.upload_every_s * 1000:g} ms): either is far below {TARGET_PER_KEY}/s. Its records of one outbox "
        f"batch fold into one state write ({_n(fold, 1)} records per write), so `{keys.device_pk(burst.vendor, burst.device_id(0))}` "
        f"takes {_n(1 / burst.upload_every_s / fold, 1)} writes/s while it uploads.",
        f"- Its message group (`{message_group(burst.vendor, burst.device_id(0))}`) carries at most "
        f"{_n(1 / burst.upload_every_s)} messages/s, far below a FIFO partition's "
        f"{LIMITS['sqs_fifo_partition_tps']} calls/s.",
    ]


def report(shards: int) -> str:
    dep = deployment()
    both = scenarios(shards)
    sustained = both[0]
    _, pk, top = sustained.busiest()
    verdict = ("met" if sustained.load.events >= TARGET_EVENTS * 0.99 and top <= TARGET_PER_KEY else "NOT met")
    lines = [
        "# Capacity on paper",
        "",
        "Produced by `python bench/capacity.py --write-docs` (`./run bench`): a simulated fleet is spread over",
        "partition keys by the gateway's own key functions (`devicegate.store.keys`), and what it writes, invokes",
        "and sends is set against AWS's limits. Edit the script, not this page. The per-key rates come from the code;",
        "durations, report intervals and AWS's quotas are stated below with their sources.",
        "",
        f"Shards (template parameter, fleet-wide lists): **{shards}**"
        + ("" if shards == dep.shards else f" (the template's default is {dep.shards})") + ". "
        f"Issue target: {TARGET_EVENTS:,} events/s sustained, no partition key over {TARGET_PER_KEY} writes/s: "
        f"**{verdict}** ({_n(sustained.load.events)} events/s, busiest key `{pk}` at {_n(top, 1)} writes/s).",
        "",
        "## The fleet",
        "",
        *fleet_table(),
        "",
        "(1) scenario 1, sustained; (2) scenario 2, the reconnect burst: the fleet's 10,000 face terminals upload",
        f"{BURST_RECORDS:,} cached records each within {BURST_SECONDS // 60} minutes, **on top of** the rest of the fleet.",
        "",
    ]
    for s in both:
        lines += [f"## {s.title}: {_n(s.load.events)} events/s", "",
                  "Writes per partition key, counting one write per item landing in a key (an index entry that moves",
                  "within a key is a delete and a put: two).", "", *partition_table(s), ""]
        lines += ["| resource | needed | limit | headroom |", "|---|---:|---:|---:|"]
        lines += [f"| {what} | {need} | {limit} | {room} |" for what, need, limit, room in path_rows(s)]
        lines.append("")
        if s.key == "burst":
            lines += per_device_notes(s) + [""]
    lines += ["## What breaks first", "",
              "Each limit's headroom (limit / need), lowest first; \"the whole mix reaches it at\" scales every",
              "population of the scenario alike.", "", *break_table(both), "", *reading(both), ""]
    lines += ["## The Shards parameter", "",
              "The fleet-wide lists are the only keys many devices write; Shards splits each into N partitions by a",
              "hash of vendor and device (`keys.shard`). Rerun with `--shards N` for the full tables at another N.", "",
              *shards_table(), "",
              "Each list read (the sweep's due buckets, an app's alarm feed, a vendor's device list) is one query per",
              "shard, run in parallel and merged: more shards cost reads, not writes. " + _one_shard_verdict(dep.shards),
              ""]
    lines += ["## Assumptions", "", *[f"- {a}" for a in ASSUMPTIONS],
              "- Durations per invocation: " + ", ".join(
                  f"{k.removesuffix('Function')} {v * 1000:g} ms" for k, v in DURATIONS.items() if k.endswith("Function"))
              + f"; outbox {DURATIONS['outbox_per_batch'] * 1000:g} ms per batch + "
                f"{DURATIONS['outbox_per_event'] * 1000:g} ms per record.",
              f"- Stream shards: one per table partition, at least base-table writes / {LIMITS['partition_wcu']:,} "
              f"(a young table) and, once the table is full, its size / {LIMITS['partition_gb']} GB "
              f"(items of {ITEM_KB:g} KB kept for the template's RetentionDays). The outbox's lanes are "
              "stream shards x ParallelizationFactor.", "",
              "## Sources", "", *[f"- {what}: {where}" for what, where in SOURCES], ""]
    return "\n".join(lines)


def reading(both: list[Scenario]) -> list[str]:
    dep = deployment()
    sustained, burst = both
    young, full = sustained.new_table, sustained.full_table
    terminals = next(p for p in BURST if p.upload_every_s)
    cached = BURST_RECORDS * terminals.devices
    others = burst.requests()
    others_rps = sum(v for k, v in others.items() if k not in ("mqtt", terminals.route))
    jointech_route = max((v for k, v in sustained.requests().items() if k != "mqtt"))
    return [
        "Reading it:",
        f"- At the template's defaults the first limits are not DynamoDB's. The bridge carries trackers' records "
        f"on {dep.record_connections} connection(s) of {LIMITS['iot_publishes_per_connection']} publishes/s, "
        f"{_n(dep.record_connections * LIMITS['iot_publishes_per_connection'] * SUSTAINED[0].every_s)} trackers "
        f"reporting every {SUSTAINED[0].every_s:g} s; this fleet sends {_n(sustained.requests()['mqtt'])}/s over MQTT. "
        f"ThrottleRateLimit ({dep.route_rps} requests/s per route, burst {dep.route_burst}) answers 429 to the "
        f"rest of a route's requests, and the busiest routes here take {_n(jointech_route)}/s: raise it above the "
        "busiest route's rate before such a fleet arrives.",
        f"- The burst ({_n(burst.load.events)} events/s) is mostly face-terminal requests: over the account's "
        f"{_n(LIMITS['api_account_rps'])} requests/s and over {_n(LIMITS['lambda_concurrency'])} concurrent "
        "executions. Both are refusals, not losses: a terminal keeps a record that was not answered 200 and sends it "
        f"again, so the burst stretches out. Its {_n(cached)} cached records take "
        f"{_n(cached / dep.route_rps / 3600, 1)} hours at the route throttle's default, and "
        f"{_n(cached / (LIMITS['api_account_rps'] - others_rps) / 60)} minutes with the route throttle raised and the "
        f"account's {_n(LIMITS['api_account_rps'])} requests/s shared with the rest of the fleet.",
        f"- DynamoDB is far from its per-key limit: the busiest keys are the sharded lists, tens of writes/s against "
        f"{_n(LIMITS['partition_wcu'])}, and a device's own keys take at most {_n(1 / terminals.upload_every_s)} "
        f"writes/s. The table as a whole takes {_n(sustained.base_writes)} writes/s sustained and "
        f"{_n(burst.base_writes)} in the burst: within the {_n(LIMITS['table_wru'])} table quota, but a fresh table "
        f"takes {_n(LIMITS['new_table_wru'])} at once, and the burst is more than double the sustained peak, so an "
        "on-demand table that has only seen the sustained load throttles for a while (the SDK retries; a webhook "
        "whose retries run out answers 503 and the device sends again).",
        "- Reads follow writes: the outbox reads each device's state item once per state write (BatchGetItem, "
        "eventually consistent), the sweep each DUE# shard once per run; no key comes near "
        f"{_n(LIMITS['partition_rcu'])} read units/s.",
        f"- The outbox keeps up. On a young table ({young.shards} stream shards) its batches are full "
        f"({_n(young.records_per_batch)} records); once the table holds its retention "
        f"({_n(sustained.table_gb / 1024, 1)} TB, ~{_n(full.shards)} partitions and so stream shards) each lane sees "
        f"under one record per window, so a batch holds {_n(full.records_per_batch, 1)} record and invocations rise "
        f"to {_n(full.invocations)}/s: the same events, more invocations and concurrency (the outbox's "
        f"{_n(full.concurrency)} is most of the sustained total). BatchSize and the window cannot fill batches "
        "that few records reach; ParallelizationFactor only adds lanes.",
        "- SQS is far from its limits: the queue is high-throughput FIFO, and every device is its own message group.",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=None, help="the template's Shards parameter (its default)")
    parser.add_argument("--write-docs", action="store_true", help="write the report to docs/capacity.md")
    args = parser.parse_args(argv)
    shards = deployment().shards if args.shards is None else args.shards
    if shards < 1:
        parser.error("--shards must be at least 1")
    text = report(shards)
    print(text)
    if args.write_docs:
        DOCS.write_text(text, encoding="utf-8")
        print(f"written to {DOCS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
