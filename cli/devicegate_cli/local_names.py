"""Names and endpoints of the local stack, shared by `devicegate local` and the query CLI.

The local stack creates each template resource under a predictable name so that the CLI (and
anyone following the README) can find it without a state file.
"""

from __future__ import annotations

from typing import Any

LOCAL_STACK_NAME = "devicegate-local"
LOCAL_REGION = "us-east-1"
LOCAL_MOTO_PORT = 5000
LOCAL_HTTP_PORT = 3000
LOCAL_TOKEN = "dev-token"
# moto accepts any credentials; these keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
FIFO_SUFFIX = ".fifo"


def local_physical_name(logical_id: str, resource_type: str = "", fifo: bool = False) -> str:
    """Physical name the local stack gives a template resource (S3 wants lower case; SQS wants a
    FIFO queue's name to end in .fifo, as CloudFormation's generated names do)."""
    name = f"{LOCAL_STACK_NAME}-{logical_id}"
    if resource_type == "AWS::S3::Bucket":
        return name.lower()
    return name + FIFO_SUFFIX if fifo else name


def local_queue_url(sqs: Any, logical_id: str) -> str:
    """URL of the local stack's queue for `logical_id`, standard or FIFO.

    Asks the running stack rather than the template: the template may have changed since the
    stack started, and a standard and a FIFO queue never share a name."""
    name = local_physical_name(logical_id, "AWS::SQS::Queue")
    wanted = (name, name + FIFO_SUFFIX)
    for url in sqs.list_queues(QueueNamePrefix=name).get("QueueUrls") or []:
        if url.rsplit("/", 1)[-1] in wanted:
            return url
    # Neither exists: SQS's own QueueDoesNotExist names the queue for the user.
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def local_endpoint(port: int = LOCAL_MOTO_PORT) -> str:
    return f"http://127.0.0.1:{port}"
