"""What the SenseLink bridge makes of one frame (read_frame), checked against what the gateway's
SenseLink route does with the same bytes: a frame the bridge forwards although it is malformed
must be one the gateway keeps in quarantine, and one the bridge keeps to itself must be one the
gateway refuses for its size or of which it could keep only a summary."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest

from devicegate.core import jsonbody
from devicegate.vendors.senselink.adapter import SenseLinkAdapter
from devicegate_onprem import senselink_bridge
from devicegate_onprem.senselink_bridge import (
    GATEWAY_MAX_BODY_BYTES,
    GATEWAY_MAX_DEPTH,
    KEEP,
    MALFORMED,
    RECORD,
    Bridge,
    parse_config,
    read_frame,
)
from devicegate_onprem.senselink_spool import Spool
from functions.senselink_webhook import app as webhook_app
from tests.bridge.test_senselink_bridge import BAD_FRAMES, FORWARDED, SOURCE_NAME, record
from tests.support import context, load_event, with_body


def nested(levels: int) -> str:
    """A record whose JSON nests `levels` levels of arrays and objects, the record itself included."""
    return json.dumps({"code": 30000, "data": {"id": 7, "sn": "SN-1", "x": json.loads("[" * (levels - 2) +
                                                                                       "]" * (levels - 2))}})


def test_the_bridge_knows_the_gateway_limits():
    # The bridge may not import the layer (it runs on-prem without it); these tests can.
    assert GATEWAY_MAX_BODY_BYTES == SenseLinkAdapter.max_body_bytes
    assert GATEWAY_MAX_DEPTH == jsonbody.MAX_DEPTH


def test_depth_is_counted_as_the_gateway_counts_it():
    # Given records nested exactly to the gateway's limit, and one level deeper
    at_limit, over = nested(GATEWAY_MAX_DEPTH), nested(GATEWAY_MAX_DEPTH + 1)
    # Then the gateway reads the first and refuses the second, and the bridge agrees
    jsonbody.loads(at_limit)
    with pytest.raises(jsonbody.InvalidPayload, match="nested too deeply"):
        jsonbody.loads(over)
    assert read_frame(at_limit.encode()).action == RECORD
    assert read_frame(over.encode()) == senselink_bridge.Incoming(
        KEEP, over, reason=f"JSON nested deeper than {GATEWAY_MAX_DEPTH} levels")


def test_size_is_counted_in_bytes_up_to_the_gateway_limit():
    # Given a record of exactly the gateway's limit in UTF-8 bytes (its padding is 3 bytes a character)
    base = record(8, remark="")
    fill = GATEWAY_MAX_BODY_BYTES - len(base.encode())
    exact = record(8, remark="我" * (fill // 3) + "x" * (fill % 3))
    assert len(exact.encode()) == GATEWAY_MAX_BODY_BYTES
    # Then it is forwarded, and one byte more is kept
    assert read_frame(exact.encode()).action == RECORD
    over = exact.replace('"remark": "', '"remark": "x', 1).encode()
    assert read_frame(over) == senselink_bridge.Incoming(
        KEEP, over.decode(), reason=f"{len(over)} bytes, over the gateway's {GATEWAY_MAX_BODY_BYTES}")


@pytest.mark.parametrize("code, action, kept_code", [
    (30000, RECORD, 30000), ("30000", RECORD, 30000), (" 30100 ", RECORD, 30100), ("²", MALFORMED, None),
    ("３００００", MALFORMED, None), (10 ** 30, MALFORMED, None), (2 ** 63 - 1, MALFORMED, 2 ** 63 - 1),
    (-(2 ** 63), MALFORMED, -(2 ** 63)), (2 ** 63, MALFORMED, None), (True, MALFORMED, None),
    (30000.0, MALFORMED, None), (None, MALFORMED, None),
])
def test_codes_the_bridge_reads(code, action, kept_code):
    # Given a frame with this code (fullwidth digits and "²" are digits to str.isdigit only)
    frame = json.dumps({"code": code, "data": {"id": 5}}, ensure_ascii=False).encode()
    # Then it is a record only with a record's code, and the code it keeps fits an SQLite integer
    incoming = read_frame(frame)
    assert (incoming.action, incoming.code) == (action, kept_code)


@pytest.mark.parametrize("ident, logged", [
    (1364591, "1364591"), ("abc-42", "abc-42"), ("\ud800", None), ("李雷", None), ("a b", None), (True, None),
    ("x" * 80, "x" * 64), ({"n": 1}, None),
])
def test_only_a_printable_ascii_record_id_is_kept_for_the_log(ident, logged):
    frame = json.dumps({"code": 30000, "data": {"id": ident}}).encode()
    assert read_frame(frame).record_id == logged


def test_a_refusal_keeps_senselinks_words_printable():
    frame = json.dumps({"code": 20002, "desc": "app key not exist \ud800\n" + "x" * 200}).encode()
    incoming = read_frame(frame)
    assert incoming.action == "denied" and incoming.desc == "app key not exist ??" + "x" * 80


@pytest.mark.parametrize("shape", [s for s, (_, fate) in BAD_FRAMES.items() if fate == FORWARDED])
def test_what_the_bridge_forwards_the_gateway_keeps_in_quarantine(stack, shape):
    # Given a malformed frame the bridge forwards
    frame, _ = BAD_FRAMES[shape]
    # When the gateway's SenseLink route receives it from the bridge
    event = with_body(load_event("senselink/http-ws-doc-record.json"), frame, **{"x-devicegate-source": SOURCE_NAME})
    response = webhook_app.lambda_handler(event, context("SenseLinkWebhookFunction"))
    # Then it is answered 200 (so the bridge deletes it from its spool) and kept in quarantine whole
    assert response["statusCode"] == 200 and json.loads(response["body"])["code"] == 400
    [kept] = stack.quarantine_items("senselink")
    assert kept["body"] == frame  # whole: its integers of any length read without Python's limit


@pytest.mark.parametrize("shape", [s for s, (_, fate) in BAD_FRAMES.items()
                                   if fate not in (FORWARDED,) and "MB" not in s])
def test_what_the_bridge_keeps_the_gateway_could_keep_only_a_summary_of(stack, shape):
    # Given a frame the bridge keeps in its own spool (the oversized one aside: see the size test)
    frame, _ = BAD_FRAMES[shape]
    # When the same bytes reach the gateway's route
    event = with_body(load_event("senselink/http-ws-doc-record.json"), bytes(frame) if isinstance(frame, bytes)
                      else frame, **{"x-devicegate-source": SOURCE_NAME})
    webhook_app.lambda_handler(event, context("SenseLinkWebhookFunction"))
    # Then its quarantine holds a summary, not the frame: only the bridge can keep it whole
    [kept] = stack.quarantine_items("senselink")
    assert "redacted" in json.loads(kept.get("body") or "{}")


def test_a_failure_reading_one_frame_keeps_it_and_the_session_goes_on(tmp_path, monkeypatch, caplog):
    # Given a bridge whose frame reader has a bug
    monkeypatch.setenv("SENSELINK_APP_SECRET", "s")
    config = parse_config(["--ws", "ws://h:9000", "--app-key", "k", "--forward", "http://127.0.0.1:9/x",
                           "--spool", str(tmp_path / "spool.db")])
    spool = Spool(config.spool)
    bridge = Bridge(config, spool)

    def broken(raw: bytes):
        raise ZeroDivisionError("the frame said " + raw.decode())

    monkeypatch.setattr(senselink_bridge, "read_frame", broken)
    caplog.set_level(logging.INFO, logger="devicegate.senselink_bridge")
    # When a frame arrives
    frame = record(77, name="Zhang Wei").encode()
    action = bridge._handle(frame)
    # Then the frame is kept whole, the session is told to go on, and the log names the error's
    # type and place, never the frame
    assert action == KEEP
    db = sqlite3.connect(config.spool)
    assert db.execute("SELECT reason, frame FROM rejected").fetchall() == [
        ("the bridge could not read it (ZeroDivisionError)", frame)]
    [line] = [r.getMessage() for r in caplog.records if "frame_unreadable" in r.getMessage()]
    assert "error_type=ZeroDivisionError where=\"test_frames.py:" in line and "Zhang Wei" not in caplog.text
    spool.close()
