"""A stand-in for the context object the Lambda runtime passes to a handler.

It carries the attributes Powertools reads (Logger's inject_lambda_context, Metrics' cold-start
metric, Tracer, idempotency's remaining-time check), so the local stack and unit tests can call
handlers exactly as Lambda does.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from devicegate_local.names import LOCAL_REGION

LOCAL_ACCOUNT_ID = "123456789012"


class LambdaContext:
    """Attributes of the Python runtime's context object; one instance per invocation."""

    function_version = "$LATEST"
    identity = None
    client_context = None

    def __init__(
        self,
        function_name: str,
        memory_limit_in_mb: int = 512,
        timeout_s: float = 10,
        aws_request_id: str | None = None,
        invoked_function_arn: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = int(memory_limit_in_mb)
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.invoked_function_arn = invoked_function_arn or (
            f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{function_name}"
        )
        self.log_group_name = f"/aws/lambda/{function_name}"
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + float(timeout_s)

    @classmethod
    def for_function(cls, name: str, memory_mb: int = 512, timeout_s: float = 10) -> LambdaContext:
        """A fresh context (new request id, full time budget) for one invocation of `name`."""
        return cls(name, memory_limit_in_mb=memory_mb, timeout_s=timeout_s)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r})"
