"""`devicegate urls --stack` on a deployment's outputs and secrets (moto's CloudFormation), and the
records `devicegate smoke` makes from every registered vendor's samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from devicegate_cli.deployment_tools import smoke_record
from devicegate_cli.main import main
from tests.support import EVENTS

API = "https://abc123.execute-api.us-east-1.amazonaws.com"


@pytest.fixture
def deployed(aws_env):
    """A stack with the outputs template.yaml declares for two vendors, and their token secrets."""
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        jointech = secrets.create_secret(Name="jt", SecretString=json.dumps({"current": "Jt0ken1234567890"}))["ARN"]
        mettax = secrets.create_secret(Name="mx", SecretString=json.dumps({"current": "Mx0ken1234567890",
                                                                             "previous": "old"}))["ARN"]
        template = {
            "Parameters": {"JointechAuthHeaderName": {"Type": "String", "Default": "X-Push-Token"}},
            "Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {
                "HttpApiUrl": {"Value": API},
                "JointechWebhookUrl": {"Value": f"{API}/hooks/jointech/{{token}}"},
                "JointechLocationWebhookUrl": {"Value": f"{API}/hooks/jointech/{{token}}/location"},
                "JointechTokenSecretArn": {"Value": jointech},
                "MettaxWebhookUrl": {"Value": f"{API}/hooks/mettax/{{token}}"},
                "MettaxTokenSecretArn": {"Value": mettax},
                "EventsTableName": {"Value": "t"},
            },
        }
        boto3.client("cloudformation", region_name="us-east-1").create_stack(
            StackName="devicegate", TemplateBody=json.dumps(template))
        yield


def test_urls_of_a_deployment_fill_in_each_vendors_current_token_masked(deployed, capsys):
    # When the URLs of the deployed stack are asked for
    code = main(["urls", "--stack", "devicegate", "--region", "us-east-1"])
    out = capsys.readouterr().out
    # Then each vendor's URLs come with its token masked, and Jointech's header with it
    assert code == 0
    assert out.splitlines() == [
        f"jointech  {API}/hooks/jointech/Jt0*************",
        f"jointech  {API}/hooks/jointech/Jt0*************/location",
        "jointech  header X-Push-Token: Jt0*************",
        f"mettax    {API}/hooks/mettax/Mx0*************",
    ]


def test_urls_reveal_gives_the_current_token_not_the_previous_one(deployed, capsys):
    code = main(["urls", "--stack", "devicegate", "--region", "us-east-1", "--reveal", "--json"])
    urls = {v["vendor"]: v for v in json.loads(capsys.readouterr().out)}
    assert code == 0
    assert urls["mettax"]["urls"] == [f"{API}/hooks/mettax/Mx0ken1234567890"]
    assert urls["jointech"]["headers"] == {"X-Push-Token": "Jt0ken1234567890"}


def test_urls_of_a_stack_that_is_not_there_is_one_line(deployed, capsys):
    code = main(["urls", "--stack", "nope", "--region", "us-east-1"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "nope" in err


def test_smoke_makes_a_new_record_of_a_sample_device_for_every_registered_vendor():
    from devicegate.vendors import vendor_names
    from devicegate_cli.deployment_tools import _normalized

    now = datetime.now(UTC).replace(microsecond=0)
    for vendor in vendor_names():
        # Given the vendor's samples; When smoke makes its record
        record = smoke_record(vendor, EVENTS, now)
        # Then there is one, of a device its sample names, with an event id no sample has
        assert record is not None, f"no smoke record for {vendor}"
        sample = json.loads((EVENTS.parent / record.sample).read_text())
        [original] = _normalized(vendor, sample, now)
        assert record.device_id == original.deviceId
        assert record.event_id not in {e.eventId for path in (EVENTS / vendor).glob("http-*.json")
                                       for e in _normalized(vendor, json.loads(path.read_text()), now)}
        # And it happened now (a record with a time of its own), to the second
        assert record.occurred_at in (None, now.isoformat(timespec="milliseconds").replace("+00:00", "Z")), (
            vendor, record.occurred_at)
