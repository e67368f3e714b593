"""AWS clients, created on first use and reused for the life of the execution environment.

Creating a client loads its service model (tens of ms); doing it per request, or at import time
for clients a function never uses, would show up in every cold start.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # Short timeouts and few retries: a sender waits on us (SenseLink gives up after 5 s), and a
    # failed answer makes it retry, which is better than a slow success.
    config = Config(
        connect_timeout=2,
        read_timeout=4,
        retries={"mode": "standard", "max_attempts": 2},
        tcp_keepalive=True,
    )
    return boto3.session.Session().client(service, config=config)
