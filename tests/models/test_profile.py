"""IdentityProfile: cold start (B22), pure scoring (B23), state round trips, event time."""

from __future__ import annotations

import json
import math
import random
import struct
from collections import Counter

import pytest

from detector.errors import StateError
from models.peers import PeerIndex
from models.common import LEARNED, LEARNING
from models.profile import STATE_VERSION, IdentityProfile
from models.settings import ModelSettings
from tests.models.helpers import ROLE, T0, learned_profile, make_event, stable_stream


class TestColdStart:
    def test_first_event__numeric_score_cold_start(self):
        profile = IdentityProfile(ROLE, "workload", ModelSettings())
        event = make_event(T0, "sts:GetCallerIdentity")
        before = profile.score_one(event)
        assert [s.detector for s in before] == ["identity.new"]
        assert isinstance(before[0].score, float) and not math.isnan(before[0].score)
        assert 0.0 < before[0].score < 0.5
        assert before[0].cold_start
        assert profile.observe(event) == before
        assert profile.in_learning(T0)
        assert profile.n_events == 1

    def test_b22_scenario__no_alert_material_until_learned(self, edge_cases):
        data = json.loads((edge_cases / "B22.json").read_text())
        record = data["input_stream"][0]
        profile = IdentityProfile(record["identity"], "workload", ModelSettings())
        event = make_event(T0, record["action"], identity=record["identity"])
        signals = profile.observe(event)
        assert all(s.cold_start for s in signals)
        second = profile.observe(make_event(T0 + 60, "s3:ListBuckets",
                                            identity=record["identity"]))
        assert second == []

    def test_learning_progress__words(self):
        profile = IdentityProfile(ROLE, "workload", ModelSettings())
        for event in stable_stream(T0, 0.5):
            profile.observe(event)
        assert profile.learning_progress(T0 + 0.5 * 86400) == (
            f"learning: {profile.n_events} events (enough), 12 hours of 3 days")
        for event in stable_stream(T0 + 0.5 * 86400, 3):
            profile.observe(event)
        assert profile.learning_progress(T0 + 3.5 * 86400) == (
            f"learned: {profile.n_events} events over 3 days")


    def test_learning_progress__a_met_span_says_so(self):
        profile = IdentityProfile(ROLE, "workload", ModelSettings(thin_history_min_days=0))
        for day in range(25):  # one call a day: the span is met long before the events
            profile.observe(make_event(T0 + day * 86400, "s3:ListBuckets", identity=ROLE))
        assert profile.learning_progress(T0 + 24 * 86400) == (
            "learning: 25/50 events, 24 days of history (enough)")
        assert profile.in_learning(T0 + 24 * 86400)
        assert not profile.thin_history(T0 + 24 * 86400)

    def test_scored_stage_is_that_of_the_history_before_the_event(self):
        """The 50th event is scored as learning (49 events before it); the profile is
        learned once it counted it, and both answers are kept apart."""
        profile = IdentityProfile(ROLE, "workload", ModelSettings())
        for k in range(49):
            profile.observe(make_event(T0 + k * 7200, "s3:ListBuckets", identity=ROLE))
        ts = T0 + 5 * 86400
        profile.observe(make_event(ts, "s3:ListBuckets", identity=ROLE))
        assert profile.scored_stage(ts) == LEARNING
        assert not profile.in_learning(ts)
        assert profile.learning_progress(ts, scored=True) == (
            "learning: 49/50 events, 5 days of history (enough)")
        assert profile.learning_progress(ts) == "learned: 50 events over 5 days"
        profile.observe(make_event(ts + 60, "s3:ListBuckets", identity=ROLE))
        assert profile.scored_stage(ts + 60) == LEARNED


class TestThinHistory:
    """Short of ``learning_min_events``, an identity leaves learning once it has
    ``thin_history_min_events`` over ``thin_history_min_days`` (15 over 14 by default)."""

    def daily(self, days: int, settings: ModelSettings | None = None) -> IdentityProfile:
        profile = IdentityProfile(ROLE, "workload", settings or ModelSettings())
        for day in range(days):  # one call a day
            profile.observe(make_event(T0 + day * 86400, "s3:ListBuckets", identity=ROLE))
        return profile

    @pytest.mark.parametrize(("days", "at_day", "learning"), [
        (14, 13, True),  # 14 events over 13 days: both short
        (14, 40, True),  # 14 events, however long ago the first
        (15, 14, False),  # 15 events over 14 days
    ])
    def test_graduation_needs_both_the_events_and_the_days(self, days, at_day, learning):
        profile = self.daily(days)
        ts = T0 + at_day * 86400
        assert profile.in_learning(ts) is learning
        assert profile.thin_history(ts) is not learning

    def test_the_day_it_leaves_learning(self):
        profile = self.daily(15)
        assert profile.in_learning(T0 + 14 * 86400 - 1)
        assert not profile.in_learning(T0 + 14 * 86400)
        assert profile.thin_history(T0 + 14 * 86400)

    def test_the_models_score_once_thin(self):
        """The models are quiet in learning; on a thin history they signal (the engine
        then asks for two lines of evidence)."""
        event = make_event(T0 + 20 * 86400, "iam:ListRoles", identity=ROLE, network="public",
                           network_prefix="198.51.100.0/24")
        thin = self.daily(20)
        off = self.daily(20, ModelSettings(thin_history_min_days=0))
        assert {"novelty.action", "novelty.network"} <= {s.detector
                                                          for s in thin.score_one(event)}
        assert off.score_one(event) == []

    def test_enough_events_is_a_full_history(self):
        profile = self.daily(1)
        for n in range(60):
            profile.observe(make_event(T0 + 20 * 86400 + n, "s3:ListBuckets", identity=ROLE))
        ts = T0 + 20 * 86400 + 60
        assert not profile.in_learning(ts) and not profile.thin_history(ts)
        assert profile.learning_progress(ts).startswith("learned: 61 events")

    def test_progress_words(self):
        profile = self.daily(20)
        assert profile.learning_progress(T0 + 19 * 86400) == (
            "learned on a thin history: 20 events over 19 days (its models alert when two "
            "lines of evidence agree)")


class TestPureScoring:
    def test_b23__score_one_twice_equal_and_bytes_unchanged(self):
        profile, ts = learned_profile(days=4)
        event = make_event(ts, "iam:CreateAccessKey", network="public",
                           network_prefix="198.51.100.0/24")
        snapshot = profile.to_bytes()
        first = profile.score_one(event)
        second = profile.score_one(event)
        for _ in range(100):
            profile.score_one(event)
        assert first == second and first
        assert profile.to_bytes() == snapshot

    def test_observe__returns_what_score_one_said(self):
        profile, ts = learned_profile(days=4)
        for i in range(50):
            event = make_event(ts + i * 7, f"ec2:Describe{i % 9}", outcome="failure",
                               error_code="AccessDenied")
            assert profile.score_one(event) == profile.observe(event)


class TestState:
    def test_round_trip__identical_scores_and_bytes(self):
        peers = PeerIndex()
        profile, ts = learned_profile(days=4, peers=peers)
        for i in range(30):  # leave open buckets, quarantine and held values behind
            profile.observe(make_event(ts + i * 5, f"kms:Op{i}"), peers)
        blob = profile.to_bytes()
        copy = IdentityProfile.from_bytes(blob, ModelSettings())
        assert copy.to_bytes() == blob
        for event in (make_event(ts + 200), make_event(ts + 201, "iam:CreateUser"),
                      make_event(ts + 202, region="eu-west-3")):
            assert copy.score_one(event, peers) == profile.score_one(event, peers)
        assert (copy.first_ts, copy.last_ts, copy.n_events) == (
            profile.first_ts, profile.last_ts, profile.n_events)

    def test_other_version__state_error(self):
        profile, _ = learned_profile(days=1)
        blob = bytearray(profile.to_bytes())
        struct.pack_into("<H", blob, 4, STATE_VERSION + 1)
        with pytest.raises(StateError, match=r"version 2 cannot be loaded .* version 1"):
            IdentityProfile.from_bytes(bytes(blob), ModelSettings())

    def test_garbage__state_error(self):
        with pytest.raises(StateError, match="bad magic"):
            IdentityProfile.from_bytes(b"not a profile at all", ModelSettings())

    @pytest.mark.parametrize("cut", [0.2, 0.5, 0.9, 0.99])
    def test_truncated_blob__state_error(self, cut):
        profile, _ = learned_profile(days=1)
        blob = profile.to_bytes()
        with pytest.raises(StateError, match="identity profile"):
            IdentityProfile.from_bytes(blob[: int(len(blob) * cut)], ModelSettings())

    def test_partial_event__never_teaches(self):
        profile, ts = learned_profile(days=4)
        blob = profile.to_bytes()
        signals = profile.observe(make_event(ts, "iam:CreateRole", partial=True))
        assert "novelty.action" in {s.detector for s in signals}
        assert profile.to_bytes() == blob

    def test_adversarial_mix__size_under_cap(self):
        settings = ModelSettings()
        profile = IdentityProfile(ROLE, "workload", settings)
        rng = random.Random(5)
        for i in range(20_000):
            profile.observe(make_event(
                T0 + i * 3.0, f"svc{rng.randint(0, 999)}:Op{i}",
                resource=f"arn:x:{i}", region=f"r-{i % 500}",
                network="public", network_prefix=f"198.{i % 256}.{i // 256 % 256}.0/24",
                agent_family=f"agent-{i % 300}", credential_id=f"AKIA{i % 50}",
                target_tenant=str(100000 + i), outcome="failure" if i % 3 else "success",
                error_code=f"Err{i % 77}",
            ))
        assert profile.size_bytes() <= settings.max_state_bytes
        assert sum(profile.degradations.values()) > 0

    def test_million_identities_one_resource_each__per_identity_size(self):
        settings = ModelSettings()
        sizes = []
        for n in range(0, 1_000_000, 1000):  # every thousandth of a million identities
            ident = f"arn:aws:sts::123456789012:assumed-role/ci-role/job-{n}"
            profile = IdentityProfile(ident, "workload", settings)
            profile.observe(make_event(T0 + n, identity=ident, resource=f"arn:x:res-{n}"))
            sizes.append(profile.size_bytes())
        assert max(sizes) <= 4096
        assert max(sizes) - min(sizes) < 64  # the state does not grow with the key space


class TestEventTime:
    def _stream(self) -> list:
        rng = random.Random(11)
        events = stable_stream(T0, 5, every=120)
        start = events[-1].ts
        events += [make_event(start + 3600, "iam:CreateAccessKey"),
                   make_event(start + 7200, region="sa-east-1")]
        events += [make_event(start + 10_000 + i * 0.5, f"ec2:List{i % 30}", outcome="failure",
                              error_code="AccessDenied") for i in range(200)]
        events += [make_event(start + 20_000 + i, resource=f"arn:aws:s3:::data/{i}")
                   for i in range(150)]
        events += stable_stream(start + 30_000, 1, every=120)
        # also a little noise so windows differ
        for e in events[::37]:
            e.ts += rng.random()
        events.sort(key=lambda e: e.ts)
        return events

    def test_out_of_order_within_15_minutes__same_signals(self):
        """Arrival order shuffled within 15 minutes of event time: every detector fires the
        same number of times, with the same values, except resource novelty during a
        sweep of 150 new resources, where the order decides *which* new resource is the
        k-th (the number of signals is still the same)."""
        settings = ModelSettings()
        ordered = self._stream()
        rng = random.Random(3)
        shuffled = sorted(ordered, key=lambda e: e.ts + rng.uniform(0, 900))
        assert shuffled != ordered
        results = []
        for stream in (ordered, shuffled):
            profile = IdentityProfile(ROLE, "workload", settings)
            seen = Counter()
            for event in stream:
                for s in profile.observe(event):
                    seen[(s.detector, s.value)] += 1
            results.append(seen)
        by_detector = [Counter(d for (d, _), n in r.items() for _ in range(n)) for r in results]
        assert by_detector[0] == by_detector[1]
        churn = {"novelty.resource", "novelty.action_resource"}
        exact = [Counter({k: n for k, n in r.items() if k[0] not in churn}) for r in results]
        assert exact[0] == exact[1]
        assert {d for d, _ in results[0]} >= {"novelty.action", "volume.failures",
                                             "volume.distinct_resources"}


class TestHeldGauge:
    def test_held_count__rises_with_quarantine_then_clears(self):
        profile, ts = learned_profile(days=4)
        assert profile.held_count() == 0
        profile.observe(make_event(ts, "iam:CreateAccessKey"))
        assert profile.held_count() >= 1
        profile.mark_expected("novelty.action", "iam:CreateAccessKey")
        profile.mark_expected("novelty.service", "iam")
        profile.mark_expected("novelty.action_network", "iam:CreateAccessKey|10.0.1.0/24")
        profile.mark_expected("novelty.action_resource",
                              "iam:CreateAccessKey|arn:aws:s3:::data/object")
        assert profile.held_count() == 0


class TestOddTimestamps:
    def test_epoch_and_far_future__no_crash_and_round_trip(self):
        profile = IdentityProfile(ROLE, "workload", ModelSettings(learning_min_events=3,
                                                                 learning_min_days=0))
        profile.observe(make_event(4.0e10, "s3:Op0"))  # year 3237 first: a bogus clock
        for ts in (0.0, 86400.0, 1.0e6, 4.0e10, 4.0e10 + 60, 2.0e9, -86400.0):
            for s in profile.observe(make_event(ts, f"s3:Op{int(ts) % 3}")):
                assert 0.0 <= s.score <= 1.0
        copy = IdentityProfile.from_bytes(profile.to_bytes(), ModelSettings())
        assert copy.n_events == 8
