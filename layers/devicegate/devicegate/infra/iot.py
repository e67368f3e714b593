"""Commands to devices through the AWS IoT data plane: the one publish both the commands API (a
command sent now) and the outbox (a waiting command sent at the device's next contact) make."""

from __future__ import annotations

from typing import Any, Protocol

from devicegate.infra.aws import error_code, failures, maybe_processed


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes) -> None:
        """Raise PublishRefused (not sent) or PublishUnknown (may have been sent)."""


class PublishRefused(Exception):
    pass


class PublishUnknown(Exception):
    pass


class IotDataPublisher:
    """AWS IoT data plane, QoS 1: IoT Core keeps the message for the bridge's subscription."""

    def __init__(self, iot_data: Any):
        self._iot = iot_data

    def publish(self, topic: str, payload: bytes) -> None:
        try:
            # One attempt (devicegate.aws.NOT_RETRIED): a retry could send the command twice.
            self._iot.publish(topic=topic, qos=1, payload=payload)
        except failures() as exc:
            if maybe_processed(exc):
                # Sent, maybe: the request may have reached IoT Core before the answer was lost
                # (a read timeout, or a connection reset, which may come after the request).
                raise PublishUnknown(type(exc).__name__) from None
            # An error answer, or no connection at all (or no credentials): not sent.
            raise PublishRefused(error_code(exc) or type(exc).__name__) from None
