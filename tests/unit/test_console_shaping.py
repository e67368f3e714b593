"""What the console's pages work out from the store's answers (devicegate_console.shaping): times
for a person, a fleet row's position, a track and its stops, the quarantined payloads that name
a device. Given / When / Then over plain data."""

from __future__ import annotations

from datetime import UTC, datetime

from devicegate_console import shaping
from devicegate_console.safety import content_policy

NOW = datetime(2025, 2, 7, 8, 0, tzinfo=UTC)


def test_ago_says_it_as_a_person_would():
    assert shaping.ago("2025-02-07T07:59:40.000Z", NOW) == "just now"
    assert shaping.ago("2025-02-07T07:57:00.000Z", NOW) == "3 min ago"
    assert shaping.ago("2025-02-07T03:00:00.000Z", NOW) == "5 h ago"
    assert shaping.ago("2025-02-06T07:00:00.000Z", NOW) == "1 day ago"
    assert shaping.ago("2023-02-07T08:00:00.000Z", NOW) == "2 years ago"
    assert shaping.ago("2025-02-07T08:04:00.000Z", NOW) == "in 4 min"
    assert shaping.ago(None, NOW) == ""


def test_local_time_is_the_machines_zone_with_its_offset_on_request():
    expected = datetime(2025, 2, 7, 7, 26, 30, tzinfo=UTC).astimezone()
    assert shaping.local_time("2025-02-07T07:26:30.000Z") == f"{expected:%Y-%m-%d %H:%M:%S}"
    offset = expected.strftime("%z")
    assert shaping.local_time("2025-02-07T07:26:30.000Z", with_offset=True) == \
        f"{expected:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"
    assert shaping.local_time(None) == "-"


def _event(at: str, lat: float, lon: float, speed: float | None, event_id: str) -> dict:
    position = {"latitude": lat, "longitude": lon, "fixTime": at, "valid": True}
    if speed is not None:
        position["speedKmh"] = speed
    return {"occurredAt": at, "eventId": event_id, "kind": "gps", "facts": {"position": position}}


def test_a_track_is_its_positions_oldest_first_and_skips_events_without_one():
    # Given events newest first, one without a position
    events = [_event("2025-02-07T07:10:00.000Z", 22.6, 113.9, 30, "b"),
              {"occurredAt": "2025-02-07T07:05:00.000Z", "eventId": "x", "kind": "heartbeat"},
              _event("2025-02-07T07:00:00.000Z", 22.5, 113.8, 0, "a")]
    # When they become a track
    points = shaping.track_points(events)
    # Then it holds the two positions, oldest first
    assert [(p["eventId"], p["lat"], p["speed"]) for p in points] == [("a", 22.5, 0), ("b", 22.6, 30)]


def test_a_stop_is_a_standstill_longer_than_the_threshold():
    # Given a vehicle that drives, stands 12 minutes (GPS drifting a few metres), drives, stands 2
    at = "2025-02-07T07:{:02d}:00.000Z"
    events = [_event(at.format(0), 22.5000, 113.8000, 40, "1"),
              _event(at.format(5), 22.5100, 113.8100, 0, "2"),
              _event(at.format(11), 22.51002, 113.81003, 1, "3"),
              _event(at.format(17), 22.51001, 113.81001, 0, "4"),
              _event(at.format(20), 22.5200, 113.8200, 50, "5"),
              _event(at.format(25), 22.5300, 113.8300, 0, "6"),
              _event(at.format(27), 22.5300, 113.8300, 0, "7")]
    points = shaping.track_points(events)
    # When stops of 5 minutes or more are looked for
    found = shaping.stops(points, 5)
    # Then the 12-minute one is found where it began, and the 2-minute one is not
    assert [(s.start, s.end, s.minutes) for s in found] == [(at.format(5), at.format(17), 12.0)]
    # And with a 1-minute threshold both are
    assert len(shaping.stops(points, 1)) == 2


def test_a_moving_vehicle_never_stops_even_when_points_are_close():
    points = shaping.track_points([_event(f"2025-02-07T07:{m:02d}:00.000Z", 22.5, 113.8, 20, str(m))
                                   for m in range(0, 30, 5)])
    assert shaping.stops(points, 1) == []


def test_where_is_the_position_or_else_the_passage():
    assert shaping.where({"state": {"position": {"latitude": 22.670071, "longitude": 113.923, "speedKmh": 12.0}}}) \
        == "22.67007, 113.92300 · 12 km/h"
    assert shaping.where({"state": {"passage": {"granted": False, "method": "face", "person": {"role": "stranger"}}}}) \
        == "passage refused · face · stranger"
    assert shaping.where({"state": {}}) == ""


def test_a_quarantined_payload_names_a_device_in_its_route_or_its_values():
    # An MQTT topic's segment
    assert shaping.names_device({"topic": "upload/ak-demo/8099900001/location"}, None, "8099900001")
    # A value of the payload, a number as written included, at any depth
    assert shaping.names_device({}, b'{"assetId": 8099900001, "x": 1}', "8099900001")
    assert shaping.names_device({}, b'{"data": [{"deviceId": "SPSP-1"}]}', "SPSP-1")
    # Not a key, not part of a value, not an unreadable payload
    assert not shaping.names_device({}, b'{"8099900001": 1, "note": "8099900001 was here"}', "8099900001")
    assert not shaping.names_device({}, b"not json 8099900001", "8099900001")


def test_payload_text_reads_json_text_and_binary():
    assert shaping.payload_text(b'{"b":1,"a":"\xc3\xa9"}') == '{\n  "b": 1,\n  "a": "\xe9"\n}'
    assert shaping.payload_text(b"plain") == "plain"
    assert shaping.payload_text(b"\xff\x00").startswith("(binary, 2 bytes, base64)")
    assert shaping.payload_text(None) == "(the payload is not readable here)"


def test_the_content_policy_allows_images_from_the_tile_server_only():
    assert "img-src 'self' data: https://tile.openstreetmap.org;" in content_policy(
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://*.tiles.example;" in content_policy("https://{s}.tiles.example/{z}/{x}/{y}.png")
    assert "img-src 'self' data:;" in content_policy(None)


def test_an_edit_is_described_by_the_fields_it_changed_never_their_values():
    before = b'{"code": 20000, "message": "Connected!", "data": {"id": 1, "tags": ["a", "b"]}}'
    after = b'{"code": 30000, "message": "Connected!", "data": {"id": 2, "tags": ["a", "c"], "sn": "X"}}'
    assert shaping.changed_fields(before, after) == ["code", "data.id", "data.sn", "data.tags[1]"]
    assert shaping.changed_fields(before, before) == []
    # A number written as a string is a change (the vendor's model may read them apart)
    assert shaping.changed_fields(b'{"id": 1}', b'{"id": "1"}') == ["id"]
    # Text that is not JSON is one change of the body
    assert shaping.changed_fields(b"a=1", b"a=2") == ["(body)"]


def test_the_pictures_of_an_event_are_its_media_references_and_not_a_vendors_url():
    # Given a face terminal's record with its photo moved to S3, and a Mettax face check whose
    # picture is a URL on the vendor's file server
    ref = {"key": "media/face-terminal/PSC7/2023/05/29/ev1/rgb_image.jpg", "contentType": "image/jpeg", "bytes": 880}
    record = {"deviceSN": "PSC7", "rgb_image": ref, "user": {"name": "x"}, "snaps": [{"key": "other/k"}]}
    mettax = {"imageUrl": "https://files.imettax.com/mettaxftp/face.jpg", "deviceId": "3337"}
    # Then the record's one reference is its picture, named by its field; the vendor's URL is none
    assert shaping.pictures(record) == [{"field": "rgb_image", "key": ref["key"]}]
    assert shaping.pictures(mettax) == []
    # And a reference to something that is not an image is not shown as one
    assert shaping.pictures({"clip": dict(ref, contentType="video/mp4")}) == []


def test_the_content_policy_adds_the_pictures_s3_origin_alone():
    policy = content_policy(None, "https://devicegate-payloads.s3.eu-west-1.amazonaws.com")
    assert "img-src 'self' data: https://devicegate-payloads.s3.eu-west-1.amazonaws.com;" in policy


def test_a_pictures_url_is_a_short_lived_presigned_get_of_the_payload_bucket():
    import boto3

    from devicegate_console.reads import PHOTO_URL_SECONDS, Reads
    from devicegate_console.serve import s3_client

    # Given the console's reads of a deployment in eu-west-1 (signing needs no request)
    session = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1")
    s3 = s3_client(session, None)
    reads = Reads(ddb=None, s3=s3, table="t", bucket="devicegate-payloads")
    # When a picture's URL is made
    url = reads.photo_url("media/face-terminal/PSC7/2023/05/29/ev1/rgb_image.jpg")
    # Then it is a signed GET of that object, valid five minutes, on the origin the policy allows
    assert f"X-Amz-Expires={PHOTO_URL_SECONDS}" in url and PHOTO_URL_SECONDS == 300
    assert "X-Amz-Signature=" in url and "secret" not in url
    assert "/media/face-terminal/PSC7/2023/05/29/ev1/rgb_image.jpg?" in url
    assert url.startswith(reads.photo_origin() + "/")
    assert reads.photo_origin() == "https://devicegate-payloads.s3.eu-west-1.amazonaws.com"
    # And against the local stack the URLs point at its moto endpoint
    local = Reads(ddb=None, s3=s3_client(session, "http://127.0.0.1:5123"), table="t", bucket="devicegate-payloads")
    assert local.photo_origin() == "http://127.0.0.1:5123"
    # And a console without a bucket allows no picture origin
    assert Reads(ddb=None, s3=s3, table="t").photo_origin() is None
