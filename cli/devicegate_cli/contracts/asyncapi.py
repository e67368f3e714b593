"""asyncapi.yaml: the events queue and the fan-out's per-app queues, one CloudEvents message per
event type, and the Jointech MQTT topics of the IoT rules and of commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from devicegate_cli.contracts.schemas import OTHER, ROOT, Record, model_schema, urn

# --- the queue and the MQTT topics (asyncapi.yaml) -------------------------------------------------

def iot_topics(template: Path | None = None) -> list[str]:
    """The topic filters of template.yaml's IoT topic rules (their SQL's FROM)."""
    text = (template or ROOT / "template.yaml").read_text()
    return sorted(set(re.findall(r"FROM '([^']+)'", text)))


def mqtt_address(topic_filter: str) -> tuple[str, list[str]]:
    names = iter(("accessKey", "deviceNum", "kind") if topic_filter.count("/") == 3
                 else ("accessKey", "deviceNum", "subLockNum"))
    levels = [f"{{{next(names)}}}" if level == "+" else level for level in topic_filter.split("/")]
    return "/".join(levels), re.findall(r"{(\w+)}", "/".join(levels))


def asyncapi(recs: list[Record], topics: list[str]) -> dict[str, Any]:
    from devicegate.vendors.jointech.commands import MAX_TEXT

    messages: dict[str, Any] = {}
    for record in recs:
        messages[record.type] = {
            "name": record.type,
            "title": f"{record.vendor} {record.kind}",
            "contentType": "application/json",
            "summary": (f"type devicegate.{record.vendor}.{{operator}}, every operator no document describes; data per "
                        f"schemas/{record.type}.json" if record.kind == OTHER else
                        f"type {record.type}; data per schemas/{record.type}.json"),
            "headers": {"$ref": "#/components/schemas/MessageAttributes"},
            "payload": {"allOf": [{"$ref": "./schemas/cloudevent.json"},
                                  {"type": "object", "properties": {
                                      "type": ({"pattern": rf"^devicegate\.{record.vendor}\."}
                                               if record.kind == OTHER else {"const": record.type}),
                                      "dataschema": {"const": urn(record.type)},
                                      "data": {"$ref": f"./schemas/{record.type}.json"}}}]},
        }
    refs = {name: {"$ref": f"#/components/messages/{name}"} for name in sorted(messages)}
    channels: dict[str, Any] = {
        "events": {"address": "{stack}-EventsQueue.fifo", "title": "EventsQueue",
                   "description": "FIFO: one message group per device ({vendor}:{device}), deduplicated per event. "
                                  "Output EventsQueueUrl.",
                   "parameters": {"stack": {"description": "the stack name"}},
                   "servers": [{"$ref": "#/servers/sqs"}], "messages": refs},
        "appQueue": {"address": "{stack}-{app}.fifo", "title": "a ConsumerApps queue",
                     "description": "With ConsumerApps set: each named app's FIFO queue, fed by EventsTopic (SNS "
                                    "FIFO, raw delivery), the same messages and attributes as EventsQueue. Outputs "
                                    "ConsumerApp1QueueUrl...",
                     "parameters": {"stack": {"description": "the stack name"},
                                    "app": {"description": "a name of the ConsumerApps parameter"}},
                     "servers": [{"$ref": "#/servers/sqs"}], "messages": refs},
    }
    operations: dict[str, Any] = {
        "consumeEvents": {"action": "receive", "channel": {"$ref": "#/channels/events"},
                          "summary": "an app consumes the events", "messages": [
                              {"$ref": f"#/channels/events/messages/{n}"} for n in sorted(messages)]},
        "consumeAppEvents": {"action": "receive", "channel": {"$ref": "#/channels/appQueue"},
                             "summary": "an app consumes its own queue (fan-out)", "messages": [
                                 {"$ref": f"#/channels/appQueue/messages/{n}"} for n in sorted(messages)]},
    }
    jointech = [r for r in recs if r.vendor == "jointech" and r.wire]
    upload_messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "MessageAttributes": {"type": "object", "description": "SQS message attributes (String), to route and "
                              "filter without parsing the body", "required": ["type", "vendor", "device"],
                              "properties": {"type": {"type": "string", "description": "the CloudEvents type"},
                                             "vendor": {"type": "string"},
                                             "device": {"type": "string",
                                                        "description": "the device id, percent-encoded"}}}}
    for record in jointech:
        schema, defs = model_schema(record.wire[0], "#/components/schemas/jointech.", wire=True)
        schemas[f"jointech.{record.wire[0].__name__}"] = schema
        schemas.update({f"jointech.{n}": d for n, d in defs.items()})
        upload_messages[f"jointech.{record.kind}"] = {
            "name": f"jointech.{record.kind}", "contentType": "application/json",
            "summary": f"a {record.kind} record, as on the webhook",
            "payload": {"$ref": f"#/components/schemas/jointech.{record.wire[0].__name__}"}}
    for topic in topics:
        address, parameters = mqtt_address(topic)
        name = "jointechSublock" if address.endswith("/sublock") else "jointechUpload"
        kinds = ["sublock"] if name == "jointechSublock" else [r.kind for r in jointech if r.kind != "sublock"]
        channels[name] = {
            "address": address, "servers": [{"$ref": "#/servers/iot"}],
            "description": f"IoT topic rule FROM '{topic}' (template.yaml). The Mosquitto bridge publishes by "
                           "Basic Ingest, on $aws/rules/<rule>/" + address + ".",
            "parameters": {p: ({"enum": kinds} if p == "kind" else {}) for p in parameters},
            "messages": {f"jointech.{k}": {"$ref": f"#/components/messages/jointech.{k}"} for k in kinds}}
        operations[f"{name}Receive"] = {"action": "receive", "channel": {"$ref": f"#/channels/{name}"},
                                        "summary": "the gateway receives a device's record (JointechMqttFunction)"}
    messages.update(upload_messages)
    channels["jointechCommand"] = {
        "address": "download/{accessKey}/{deviceNum}/cmd", "servers": [{"$ref": "#/servers/iot"}],
        "description": "commands to a device (POST /devices/jointech/{deviceNum}/commands), QoS 1",
        "parameters": {"accessKey": {}, "deviceNum": {}},
        "messages": {"jointech.command": {"$ref": "#/components/messages/jointech.command"}}}
    messages["jointech.command"] = {
        "name": "jointech.command", "contentType": "text/plain",
        "summary": "the command text, `(deviceNum,1,serial,WORD,params...)`",
        "payload": {"type": "string", "maxLength": MAX_TEXT, "pattern": r"^\(.*\)$"}}
    operations["jointechCommandSend"] = {"action": "send", "channel": {"$ref": "#/channels/jointechCommand"},
                                         "summary": "the gateway sends a command (JointechCommandsFunction)"}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "devicegate events", "version": "1",
                 "description": "The events queue's CloudEvents, one message per type, and the Jointech MQTT "
                                "topics. Generated by `./run contracts`; tests/unit/test_contracts.py fails when "
                                "this file and the code differ. Event payloads are the JSON Schemas (2020-12) of "
                                "./schemas, each with the $id its messages' dataschema names."},
        "defaultContentType": "application/json",
        "servers": {"sqs": {"host": "sqs.{region}.amazonaws.com", "protocol": "sqs",
                            "variables": {"region": {"default": "us-east-1"}}},
                    "iot": {"host": "{endpoint}", "protocol": "mqtt",
                            "description": "AWS IoT Core (the customer's account endpoint)",
                            "variables": {"endpoint": {"default": "example-ats.iot.us-east-1.amazonaws.com"}}}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
