"""Jointech MQTT topics via AWS IoT Core topic rules (their SELECT adds accessKey, deviceNum, kind and
subLockNum from the topic). See devicegate.ingest.handlers.mqtt_handler.
"""

from devicegate.ingest.handlers import RetryLater, mqtt_handler

__all__ = ["RetryLater", "lambda_handler"]

lambda_handler = mqtt_handler("jointech")
