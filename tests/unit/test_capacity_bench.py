"""bench/capacity.py spreads its fleet with the gateway's real key functions, so its per-key
figures move when the keys do."""

from __future__ import annotations

import pytest

from bench import capacity
from devicegate.store import keys
from devicegate.store.devices import MIN_BUCKET_S


def _alarms(populations) -> float:
    return sum(p.events_per_s * p.alarm_share for p in populations)


def _index(loaded: capacity.Load, index: str) -> dict[str, float]:
    return {pk: rate for (i, pk), rate in loaded.per_key.items() if i == index}


def test_one_shard_puts_every_alarm_in_the_one_alarm_partition():
    # Given one shard, when the sustained fleet is spread
    alarm_keys = _index(capacity.load(capacity.SUSTAINED, shards=1), "gsi3")

    # Then every alarm lands in ALARM#0, and that key takes the fleet's whole alarm rate
    assert list(alarm_keys) == [keys.sharded(keys.ALARM_PREFIX, 0)]
    assert alarm_keys["ALARM#0"] == pytest.approx(_alarms(capacity.SUSTAINED))


def test_eight_shards_split_the_alarms_by_the_real_hash():
    # Given the template's eight shards, when the sustained fleet is spread
    alarm_keys = _index(capacity.load(capacity.SUSTAINED, shards=8), "gsi3")
    total = _alarms(capacity.SUSTAINED)

    # Then all eight ALARM partitions take alarms, none much more than an eighth
    assert set(alarm_keys) == set(keys.all_shards(keys.ALARM_PREFIX, 8))
    assert sum(alarm_keys.values()) == pytest.approx(total)
    assert max(alarm_keys.values()) < total / 8 * 1.1

    # And each device counts in the shard keys.shard gives it
    trackers = capacity.SUSTAINED[0]
    by_hash = sum(keys.shard(trackers.vendor, trackers.device_id(n), 8) == 3 for n in range(trackers.devices))
    assert capacity.spread(trackers, 8).shared[("gsi3", "alarms", "ALARM#3")] == by_hash


def test_the_due_bucket_moves_once_per_bucket_width():
    # Given a tracker reporting every 20 s that is offline after an hour (bucket: a quarter of it)
    moves = capacity.due_moves_per_s(20, 3600)

    # Then its gsi5 entry moves once per 900 s, and never faster than the minimum bucket
    assert moves == pytest.approx(1 / 900, rel=0.01)
    assert capacity.due_moves_per_s(60, 180) == pytest.approx(1 / MIN_BUCKET_S, rel=0.01)


def test_the_sustained_fleet_meets_the_issue_target_at_the_default_shards():
    # Given the template's default Shards, when the sustained scenario is spread
    sustained = capacity.scenario("sustained", capacity.deployment().shards)

    # Then it carries ~5,000 events/s with no partition key over 500 writes/s
    _, key, busiest = sustained.busiest()
    assert sustained.load.events == pytest.approx(capacity.TARGET_EVENTS, rel=0.01)
    assert busiest <= capacity.TARGET_PER_KEY, key
    # and no two devices share an event or state partition (percent-encoded ids stay apart)
    assert sustained.load.distinct
