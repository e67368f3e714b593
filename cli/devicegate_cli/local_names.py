"""Names and endpoints of the local stack, shared by `devicegate local` and the query CLI.

The local stack creates each template resource under a predictable name so that the CLI (and
anyone following the README) can find it without a state file.
"""

LOCAL_STACK_NAME = "devicegate-local"
LOCAL_REGION = "us-east-1"
LOCAL_MOTO_PORT = 5000
LOCAL_HTTP_PORT = 3000
LOCAL_TOKEN = "dev-token"
# moto accepts any credentials; these keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def local_physical_name(logical_id: str, resource_type: str = "") -> str:
    """Physical name the local stack gives a template resource (S3 wants lower case)."""
    name = f"{LOCAL_STACK_NAME}-{logical_id}"
    return name.lower() if resource_type == "AWS::S3::Bucket" else name


def local_endpoint(port: int = LOCAL_MOTO_PORT) -> str:
    return f"http://127.0.0.1:{port}"
