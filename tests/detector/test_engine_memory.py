"""The bounded identity store (B25): idle identities are kept as their serialised blobs,
so resident memory stays bounded, and results are the same as with every identity live."""

from __future__ import annotations

from datetime import timedelta

import pytest

from detector.engine import (
    DEFAULT_MAX_LIVE,
    MAX_LIVE_ENV,
    Detector,
    IdentityStore,
    max_live_default,
)
from detector.event import Event
from detector.stats import RunStats
from tests.detector.test_engine import ACCOUNT, ATTACK, T0, ev

IDENTITIES = 12
LIMIT = 4
DAYS = 7


def identity(i: int) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/app{i}"


def stream() -> list[Event]:
    """Twelve workloads, interleaved in time: a week of routine calls an hour each (the
    first and last few also at night or from a second network), then an attack on every
    third identity and a burst of new reads by the others."""
    events: list[Event] = []
    n = 0
    for day in range(DAYS):
        for hour in range(24):
            for i in range(IDENTITIES):
                if i % 5 == 4 and hour < 6:
                    continue  # a daytime-only workload
                for action in ("s3:GetObject", "sqs:ReceiveMessage"):
                    n += 1
                    when = T0 + timedelta(days=day, hours=hour, minutes=i)
                    events.append(ev(n, when, action, identity=identity(i),
                                     event_id=f"b{n}", credential_id=f"ASIA{i:012d}"))
    for step in range(40):
        for i in range(IDENTITIES):
            n += 1
            when = ATTACK + timedelta(seconds=step * 20 + i)
            if i % 3 == 0:
                action = ("iam:CreateAccessKey", "iam:AttachUserPolicy",
                          "secretsmanager:GetSecretValue")[step % 3]
                events.append(ev(n, when, action, identity=identity(i), event_id=f"a{n}",
                                 resource=f"arn:aws:iam::{ACCOUNT}:user/u{step}",
                                 source_ip="203.0.113.7", network="public",
                                 network_prefix="203.0.113.0/24",
                                 credential_id=f"ASIA{i:012d}"))
            else:
                events.append(ev(n, when, "s3:GetObject", identity=identity(i),
                                 event_id=f"r{n}", resource=f"arn:aws:s3:::data/k{step}",
                                 credential_id=f"ASIA{i:012d}"))
    return events


def replay(max_live: int, *, check_bound: bool = False) -> tuple[Detector, list[dict]]:
    detector = Detector({}, stats=RunStats(), max_live=max_live)
    alerts = []
    for event in stream():
        alerts.extend(alert.to_native() for alert in detector.process(event))
        if check_bound:
            assert len(detector.store.live) <= LIMIT
    alerts.extend(alert.to_native() for alert in detector.finish())
    return detector, alerts


def blobs(detector: Detector) -> dict[str, bytes | None]:
    return {key: detector.identity_state(key) for key in sorted(detector.store)}


@pytest.fixture(scope="module")
def unbounded() -> tuple[Detector, list[dict]]:
    return replay(0)


@pytest.fixture(scope="module")
def bounded() -> tuple[Detector, list[dict]]:
    return replay(LIMIT, check_bound=True)


class TestBoundedStore:
    def test_alerts_equal_those_of_an_unbounded_detector(self, unbounded, bounded):
        assert unbounded[1], "the stream must raise alerts to compare"
        assert bounded[1] == unbounded[1]

    def test_live_identities_never_exceed_the_limit(self, bounded):
        detector, _ = bounded  # checked after every event by ``replay``
        store = detector.store
        assert isinstance(store, IdentityStore)
        assert len(store.live) <= LIMIT
        assert len(store.cold) == IDENTITIES - len(store.live)
        assert store.evictions > IDENTITIES
        assert all(isinstance(blob, bytes) for blob in store.cold.values())

    def test_summary_and_inventory_include_evicted_identities(self, unbounded, bounded):
        assert bounded[0].identities_summary() == unbounded[0].identities_summary()
        assert bounded[0].identities_summary()["tracked"] == IDENTITIES
        assert bounded[0].inventory() == unbounded[0].inventory()
        assert len(bounded[0].inventory()) == IDENTITIES
        assert bounded[0].state_size_bytes() == unbounded[0].state_size_bytes()

    def test_summaries_do_not_materialise_evicted_identities(self, bounded):
        detector, _ = bounded
        cold = set(detector.store.cold)
        detector.identities_summary()
        detector.inventory()
        detector.state_size_bytes()
        assert set(detector.store.cold) == cold

    def test_export_state_includes_evicted_identities(self, unbounded, bounded):
        restored = Detector({}, stats=RunStats(), max_live=LIMIT)
        restored.load_state(bounded[0].export_state())
        assert sorted(restored.store) == sorted(identity(i) for i in range(IDENTITIES))
        assert len(restored.store.live) <= LIMIT
        assert blobs(restored) == blobs(bounded[0])
        again = Detector({}, stats=RunStats(), max_live=0)
        again.load_state(restored.export_state())
        assert blobs(again) == blobs(bounded[0])
        assert restored.identities_summary() == unbounded[0].identities_summary()

    def test_identity_state_round_trip_for_the_worker(self, unbounded, bounded):
        # Every identity's blob is byte-identical whether it stayed live or was evicted
        # and decoded again (the novelty memo flushes with the exact per-event steps).
        detector = bounded[0]
        assert blobs(detector) == blobs(unbounded[0])
        key = identity(0)
        blob = detector.identity_state(key)
        other = Detector({}, stats=RunStats(), max_live=LIMIT)
        other.set_identity_state(key, blob)
        assert other.identity_state(key) == blob
        assert detector.identity_state("no-such-identity") is None

    def test_feedback_reaches_an_evicted_identity(self):
        detector = Detector({}, stats=RunStats(), max_live=2)
        for i in range(5):
            detector.process(ev(i, T0, "s3:GetObject", identity=identity(i), event_id=f"f{i}"))
        assert identity(0) in detector.store.cold
        assert detector.mark_expected(identity(0), "novelty.action", "iam:CreateAccessKey")
        expected = detector.store[identity(0)].alerts.expected
        assert "novelty.action\x1fiam:CreateAccessKey" in expected


class TestLimitSetting:
    def test_default_limit(self, monkeypatch):
        monkeypatch.delenv(MAX_LIVE_ENV, raising=False)
        assert max_live_default() == DEFAULT_MAX_LIVE
        assert Detector({}, stats=RunStats()).store.max_live == DEFAULT_MAX_LIVE

    def test_environment_variable_sets_the_limit(self, monkeypatch):
        monkeypatch.setenv(MAX_LIVE_ENV, "20")
        assert Detector({}, stats=RunStats()).store.max_live == 20
        assert Detector({}, stats=RunStats(), max_live=7).store.max_live == 7
        monkeypatch.setenv(MAX_LIVE_ENV, "0")
        assert Detector({}, stats=RunStats()).store.max_live == 0  # unbounded

    @pytest.mark.parametrize("raw", ["many", "-3"])
    def test_bad_environment_variable_is_refused(self, monkeypatch, raw):
        monkeypatch.setenv(MAX_LIVE_ENV, raw)
        with pytest.raises(ValueError, match=MAX_LIVE_ENV):
            Detector({}, stats=RunStats())

    def test_a_limit_below_two_counts_as_two(self):
        assert IdentityStore(1, bytes).max_live == 2

    def test_a_given_store_is_used_as_is(self):
        store: dict = {}
        detector = Detector({}, stats=RunStats(), store=store, max_live=1)
        detector.process(ev(0, T0, "s3:GetObject"))
        assert detector.store is store and len(store) == 1


def test_a_dropped_detector_is_freed_without_the_cyclic_collector():
    """The store holds a decoder, not the detector: no reference cycle keeps a replay's
    states alive after the detector is dropped (the replay runs with the collector rare)."""
    import gc
    import weakref

    events = stream()[:200]
    gc.collect()
    gc.disable()
    try:
        detector = Detector({}, stats=RunStats(), max_live=LIMIT)
        for event in events:
            detector.process(event)
        assert detector.store.cold  # evicted states are decoded through the store's decoder
        detector_ref = weakref.ref(detector)
        store_ref = weakref.ref(detector.store)
        del detector
        assert detector_ref() is None
        assert store_ref() is None
    finally:
        gc.enable()
