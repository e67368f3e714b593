"""`devicegate console --stack NAME --region REGION` against a deployment-shaped stack in moto's
CloudFormation: the events table with template.yaml's own key schema, indexes and stream, the
payload bucket, the events queue, the parameters and outputs the console reads. The console is
built by the command's own code (serve.prepare: resolve_target, the stack's Shards and
retention, the socket it listens on), served by uvicorn in a thread as the command serves it,
then every page is read over HTTP after the link's token became a cookie."""

from __future__ import annotations

import html
import json
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support import ROOT, load_event, with_body

STACK = "devicegate-prod"


def _deployment_shaped(template: dict[str, Any]) -> dict[str, Any]:
    """template.yaml's resources the console reaches, as CloudFormation would create them."""
    table = template["Resources"]["EventsTable"]["Properties"]
    return {
        "Parameters": {name: {k: v for k, v in template["Parameters"][name].items() if k in ("Type", "Default")}
                       for name in ("RetentionDays", "QuarantineRetentionDays", "Shards")},
        "Resources": {
            "EventsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
                k: table[k] for k in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
                                      "StreamSpecification", "TimeToLiveSpecification")}},
            "PayloadBucket": {"Type": "AWS::S3::Bucket"},
            "EventsQueue": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": True,
                                                                      "QueueName": f"{STACK}-events.fifo"}},
        },
        "Outputs": {"EventsTableName": {"Value": {"Ref": "EventsTable"}},
                    "PayloadBucketName": {"Value": {"Ref": "PayloadBucket"}},
                    "Shards": {"Value": {"Ref": "Shards"}}},
    }


def _outbox(target: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's stream through the outbox function, configured as the stack configures it:
    what writes the device items and the alarm lifecycles the console lists."""
    from functions.outbox import app as outbox_app
    from tests.support import context, new_environment

    for key, value in {"TABLE_NAME": target.table, "PAYLOAD_BUCKET": target.bucket,
                       "OUTBOX_QUEUE_URL": target.physical("EventsQueue")}.items():
        monkeypatch.setenv(key, value)
    new_environment()
    streams = target.client("dynamodbstreams")
    arn = target.client("dynamodb").describe_table(TableName=target.table)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        at = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        records += [dict(r, eventSourceARN=arn) for r in streams.get_records(ShardIterator=at["ShardIterator"])["Records"]]
    assert outbox_app.lambda_handler({"Records": records}, context("OutboxFunction")) == {"batchItemFailures": []}


def _ingest(target: Any, vendor: str, event: dict[str, Any]) -> Any:
    """A captured push through the pipeline the vendor's webhook function runs (its route read as
    the handler reads it), over the deployment's store."""
    from devicegate.ingest.http import http_push
    from devicegate.ingest.pipeline import Pipeline
    from devicegate.vendors import get_adapter
    from devicegate_cli.commands import store_over

    adapter = get_adapter(vendor)
    params, query = event.get("pathParameters") or {}, event.get("queryStringParameters") or {}
    route = {n: params[n] for n in adapter.route_path_params if params.get(n) is not None}
    route.update({n: query[n] for n in adapter.route_query_params if query.get(n)})
    store = store_over(target)(target.client("dynamodb"), target.client("s3"))
    return Pipeline(adapter, store, verifier=None).ingest(http_push(vendor, event, None, route))


class Browser:
    def __init__(self, base: str) -> None:
        self.base, self.cookie = base, ""

    def get(self, path: str) -> tuple[int, str, Any]:
        class Stay(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        request = urllib.request.Request(self.base + path, headers={"Cookie": self.cookie} if self.cookie else {})
        try:
            with urllib.request.build_opener(Stay).open(request, timeout=30) as answer:
                return answer.status, answer.read().decode(), answer.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), error.headers


@pytest.fixture
def console(aws_env):
    import uvicorn

    from devicegate_console.serve import build_parser, prepare
    from devicegate_local.cfn_template import load_template

    with mock_aws():
        boto3.client("cloudformation", region_name="us-east-1").create_stack(
            StackName=STACK, TemplateBody=json.dumps(_deployment_shaped(load_template(ROOT / "template.yaml"))))
        prepared = prepare(build_parser().parse_args(["--stack", STACK, "--region", "us-east-1", "--port", "0",
                                                      "--tiles", "none"]))
        server = uvicorn.Server(uvicorn.Config(prepared.app, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [prepared.listening]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.05)
        browser = Browser(f"http://127.0.0.1:{prepared.port}")
        status, _, headers = browser.get(f"/?token={prepared.token}")
        assert status == 303
        browser.cookie = headers["set-cookie"].split(";", 1)[0]
        try:
            yield prepared, browser
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            prepared.listening.close()


def test_every_page_answers_against_a_deployment(console, monkeypatch):
    prepared, client = console
    target = prepared.target
    # Given the stack the console resolved: the table CloudFormation named, its Shards output
    assert target.table.startswith(f"{STACK}-EventsTable") and prepared.reads.shards == 8
    # and, through the webhook's pipeline and the outbox: a located device, an alarm, a refused payload
    location = load_event("jointech/http-webhook-location.json")
    body = json.loads(location["body"]) | {"latitude": 22.54321, "longitude": 113.95, "locType": 1}
    assert _ingest(target, "jointech", with_body(location, json.dumps(body))).outcome.name == "ACCEPTED"
    alarm = load_event("face-terminal/http-doc-alarm-raised-with-device.json")
    assert _ingest(target, "face-terminal", alarm).outcome.name == "ACCEPTED"
    refused = _ingest(target, "jointech", with_body(location, json.dumps(body | {"latitude": 91})))
    assert refused.outcome.name != "ACCEPTED"
    _outbox(target, monkeypatch)
    located, alarmed = body["assetId"], alarm["queryStringParameters"]["device"]

    def page(path: str) -> str:
        status, text, _ = client.get(path)
        assert status == 200, (path, status, text[:500])
        return text

    # When every page is read, Then each answers and shows what it should
    fleet = page("/")
    assert f'data-device="{located}"' in fleet and f'data-device="{alarmed}"' in fleet
    assert "22.54321" in fleet
    assert located in page("/map?vendor=jointech")
    device = page(f"/device/jointech/{located}")
    side = device.split('id="device-quarantine"', 1)[1].split("</section>", 1)[0]
    assert located in device and len(re.findall(r'href="/quarantine/jointech/[0-9a-f]+"', side)) == 1
    assert f"/track/jointech/{located}" in page(f"/tracks?device=jointech/{located}")
    track = json.loads(page(f"/track/jointech/{located}"))
    assert [p["lat"] for p in track["points"]] == [22.54321]
    alarms = page("/alarms")
    assert alarmed in alarms
    assert alarmed in page("/alarms?vendor=face-terminal&status=open")
    assert "SPX-1684381418208-004-3Adb4v" in page(f"/device/face-terminal/{alarmed}")
    waiting = page("/quarantine")
    [link] = re.findall(r'href="(/quarantine/jointech/[0-9a-f]+)"', waiting)
    assert '"latitude": 91' in html.unescape(page(link))
    page("/live")
