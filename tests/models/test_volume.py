"""Window models: volume, distinct counts, failures, drift (B21) and bursts (B24)."""

from __future__ import annotations

import json
import math
import time
import warnings

import pytest

from models.profile import IdentityProfile
from models.settings import ModelSettings
from models.volume import MIN_BUSY_WINDOWS, spike_score
from tests.models.helpers import ROLE, T0, learned_profile, make_event

VOLUME = {"volume.rate", "volume.distinct_actions", "volume.distinct_resources",
          "volume.failures"}


def hourly_counts_profile(counts: list[int]) -> dict[int, list[str]]:
    """Feed ``counts[h]`` evenly spread events in hour ``h``; signals seen per hour."""
    settings = ModelSettings(bucket_minutes=60, learning_min_days=1, learning_min_events=50)
    profile = IdentityProfile(ROLE, "workload", settings)
    seen: dict[int, list[str]] = {}
    for hour, count in enumerate(counts):
        for k in range(count):
            ts = T0 + hour * 3600 + k * 3600 / count
            for signal in profile.observe(make_event(ts)):
                seen.setdefault(hour, []).append(signal.detector)
    return seen


class TestB21Drift:
    def test_new_level__alerts_only_at_the_step_then_learned(self, edge_cases):
        data = json.loads((edge_cases / "B21.json").read_text())
        counts = [row["api_calls"] for row in data["features_per_hour"]]
        seen = hourly_counts_profile(counts)
        rate_hours = sorted(h for h, dets in seen.items() if "volume.rate" in dets)
        assert rate_hours, "the step at hour 48 must be flagged"
        assert min(rate_hours) == 48
        assert max(rate_hours) <= 54
        assert not [h for h, dets in seen.items() if h > 72 and set(dets) & VOLUME]

    def test_synthetic_step__same_without_shared_dir(self):
        seen = hourly_counts_profile([20] * 48 + [80] * 48)
        rate_hours = sorted(h for h, dets in seen.items() if "volume.rate" in dets)
        assert rate_hours[0] == 48 and rate_hours[-1] <= 54


def b24_profile() -> tuple[IdentityProfile, float]:
    """120 five-minute baseline windows of two calls (two actions), then the burst start."""
    settings = ModelSettings(learning_min_days=0.2)
    profile = IdentityProfile(ROLE, "workload", settings)
    for i in range(120):
        ts = T0 + i * 300
        profile.observe(make_event(ts, "s3:GetObject"))
        profile.observe(make_event(ts + 30, "s3:ListBucket"))
    return profile, T0 + 120 * 300


def burst_event(ts: float, i: int):
    return make_event(ts + i * 120 / 500, f"ec2:List{i % 40}", outcome="failure",
                      error_code="AccessDenied", resource=None)


class TestB24Burst:
    def test_burst__flagged_within_5_events_and_still_at_400(self):
        profile, start = b24_profile()
        per_event = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for i in range(500):
                per_event.append(profile.observe(burst_event(start, i)))
        assert any(per_event[i] for i in range(5))
        window = {s.detector for i in range(5) for s in per_event[i]}
        assert "volume.failures" in window
        assert "multivariate.hst" in window
        at_400 = profile.score_one(burst_event(start, 399))
        assert max(s.score for s in at_400) >= 0.5
        hst = [s for s in per_event[399] if s.detector == "multivariate.hst"]
        assert hst and hst[0].score > 0.0
        assert hst[0].sentence.startswith(
            "an unusual combination of volume, failures, breadth and novelty in the window "
            f"from {hst[0].value[11:16]} UTC")
        assert hst[0].value == time.strftime("%Y-%m-%dT%H:%MZ",
                                             time.gmtime(hst[0].details["window_start"]))
        assert hst[0].observed.startswith("400 calls, 400 failed")
        for signals in per_event:
            for s in signals:
                assert not math.isnan(s.score) and 0.0 <= s.score <= 1.0

    def test_burst__observed_line_counts_in_words(self):
        profile, start = b24_profile()
        hst = []
        for i in range(60):
            event = make_event(start + i, f"ec2:List{i % 40}", outcome="failure",
                               error_code="AccessDenied", resource="one-bucket")
            hst += [s for s in profile.observe(event) if s.detector == "multivariate.hst"]
        assert hst
        calls = hst[-1].observed.partition(" ")[0]
        assert hst[-1].observed.startswith(f"{calls} calls, {calls} failed, ")
        assert ", 1 resource, " in hst[-1].observed

    def test_burst__never_becomes_the_reference(self):
        profile, start = b24_profile()
        for i in range(500):
            profile.observe(burst_event(start, i))
        later = start + 3600
        for i in range(12):  # back to normal for an hour
            profile.observe(make_event(later + i * 300, "s3:GetObject"))
            profile.observe(make_event(later + i * 300 + 30, "s3:ListBucket"))
        again = later + 3 * 3600
        seen = {s.detector for i in range(60) for s in profile.observe(burst_event(again, i))}
        assert "volume.failures" in seen


class TestVolumeSignals:
    def test_seasonal_stream__no_volume_signal_after_learning(self):
        """Busy office hours (12 calls per window), quiet nights (one call): no spike."""
        profile = IdentityProfile(ROLE, "workload", ModelSettings())
        flagged = []
        for bucket in range(14 * 144):
            start = T0 + bucket * 600
            hour = int(start // 3600) % 24
            calls = 12 if 9 <= hour < 17 else 1
            for k in range(calls):
                event = make_event(start + k * 600 / calls, "s3:GetObject")
                signals = profile.observe(event)
                if bucket >= 5 * 144:
                    flagged.extend(s.detector for s in signals)
        assert profile.models[1].main.folds > 1000
        assert not set(flagged) & VOLUME
        expected = profile.models[1].main.expected(10)  # a weekday 10:00 slot
        assert 10.0 <= expected <= 14.0

    def test_daily_batch__recurring_burst_not_a_spike(self):
        """A nightly job: 150 calls over 150 resources at 02:00, a poll an hour otherwise."""
        profile = IdentityProfile(ROLE, "workload", ModelSettings())
        flagged = []
        for day in range(10):
            base = T0 + day * 86400
            events = [make_event(base + h * 3600 + 1800) for h in range(24)]
            events += [make_event(base + 2 * 3600 + i * 3, "s3:GetObject",
                                  resource=f"arn:aws:s3:::dump/{i}") for i in range(150)]
            for event in sorted(events, key=lambda e: e.ts):
                signals = profile.observe(event)
                if day >= 4:
                    flagged.extend(s.detector for s in signals)
        assert not set(flagged) & VOLUME
        bigger = [make_event(T0 + 10 * 86400 + 2 * 3600 + i, "s3:GetObject",
                             resource=f"arn:aws:s3:::dump/{i}") for i in range(400)]
        seen = {s.detector for e in bigger for s in profile.observe(e)}
        assert "volume.rate" in seen  # distinct counts stop at the cap (64): see volume.py

    def test_rate_burst__sentence_and_fast(self):
        profile, ts = learned_profile(days=4)
        signals = []
        for i in range(60):
            signals.extend(profile.observe(make_event(ts + i * 2, "s3:GetObject")))
        rate = [s for s in signals if s.detector == "volume.rate"]
        assert rate, "60 calls in 2 minutes against a usual 2 per window"
        first = rate[0]
        window = first.details["window_start"]
        clock = time.strftime("%H:%M", time.gmtime(window))
        assert first.sentence.startswith(
            f"{first.observed.split()[0]} calls in the 10-minute window from {clock} UTC so far")
        assert first.value == time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(window))
        assert window % 600 == 0 and window <= ts < window + 600
        assert "against a usual 2.0" in first.sentence
        levels = [s.details["level"] for s in rate]
        assert levels == sorted(set(levels)), "one signal per new level, escalating"

    def test_enumeration__distinct_resources_flagged(self):
        profile, ts = learned_profile(days=4)
        signals = []
        for i in range(100):
            signals.extend(profile.observe(make_event(ts + i, "s3:GetObject",
                                                      resource=f"arn:aws:s3:::data/{i}")))
        assert "volume.distinct_resources" in {s.detector for s in signals}

    def test_failure_burst__flagged(self):
        profile, ts = learned_profile(days=4)
        signals = []
        for i in range(20):
            signals.extend(profile.observe(make_event(
                ts + i, "s3:GetObject", outcome="failure", error_code="AccessDenied")))
        fail = [s for s in signals if s.detector == "volume.failures"]
        assert fail and "failed calls in the 10-minute window from" in fail[0].sentence


class TestSpikeScore:
    @pytest.mark.parametrize("count,expected,var", [(3, 2.0, 0.0), (40, 30.0, 25.0)])
    def test_below_ratio__zero(self, count, expected, var):
        assert spike_score(count, expected, var) == 0.0

    def test_monotone_in_count(self):
        scores = [spike_score(c, 2.0, 1.0) for c in range(0, 100)]
        assert scores == sorted(scores)
        assert scores[-1] == 1.0


class TestZeroFoldFastPath:
    """``WindowModel._fold_zeros`` must equal folding ``None`` buckets one by one, bitwise."""

    @staticmethod
    def _state(ref) -> tuple:
        return (ref.through, ref.folds, ref.learned, ref.mean, ref.rvar,
                ref.slot_mean.tobytes(), ref.slot_n.tobytes(), ref.stats.tobytes(),
                ref.peaks.tobytes(), list(ref.run))

    @pytest.mark.parametrize("seed", range(6))
    def test_bitwise_equal_to_the_general_fold(self, seed):
        import random

        from models.volume import Bucket, WindowModel

        rng = random.Random(seed)
        model = WindowModel(ModelSettings(bucket_minutes=rng.choice([5, 10, 60])))
        ref = model.main
        index = 1_000_000 + rng.randrange(1000)
        ref.through = index - 1
        for _ in range(30):  # some learned buckets, some runs of empty ones
            if rng.random() < 0.6:
                bucket = Bucket()
                bucket.n = rng.randrange(1, 200)
                bucket.fails = rng.choice([0, 0, rng.randrange(5)])
                bucket.actions = set(range(rng.randrange(1, 20)))
                bucket.resources = set(range(rng.randrange(0, 40)))
                model._fold(ref, index, bucket)
                index += 1
            else:
                k = rng.choice([1, 2, 7, 50, 300, 1008])
                other = ref.copy()
                for zero in range(index, index + k):
                    model._fold(other, zero, None)
                model._fold_zeros(ref, index, index + k)
                assert self._state(ref) == self._state(other)
                index += k

    @pytest.mark.parametrize("minutes", [1, 5, 10, 60, 7.5])
    def test_week_table_matches_seasonal_slot(self, minutes):
        from models.volume import seasonal_slot, week_slots

        seconds = minutes * 60.0
        week = week_slots(seconds)
        assert week
        for index in range(2_900_000, 2_900_000 + 3 * len(week), 7):
            assert week[index % len(week)] == seasonal_slot(index, seconds)


class TestReferenceCache:
    @staticmethod
    def _sparse_stream(seed: int) -> list:
        """Gaps from seconds to hours, a few bursts, and late events within the lateness."""
        import random

        rng = random.Random(seed)
        events, ts = [], T0
        for i in range(900):
            ts += rng.choice([20, 20, 300, 900, 1800, 3600, 5 * 3600])
            events.append(make_event(ts, rng.choice(["s3:GetObject", "s3:PutObject"])))
            if rng.random() < 0.03:  # a burst of new actions and resources
                for k in range(rng.randrange(20, 80)):
                    events.append(make_event(ts + k, f"ec2:Describe{k % 9}",
                                             resource=f"arn:aws:s3:::data/{i}/{k}"))
                ts += 80
            if rng.random() < 0.05:  # late, within the lateness (15 minutes)
                events.append(make_event(ts - rng.choice([300, 840]), "s3:ListBucket"))
        return events

    @pytest.mark.parametrize("seed", [1, 2])
    def test_cached_reference__same_as_rebuilt_from_the_blob(self, seed):
        """A profile that builds its references incrementally (cached chains, and main's
        next state kept on the way) gives the same window signals and window state, bit
        for bit, as one restored from its blob before every event, which has no cache.
        (Only the window model is compared here; test_novelty_memo compares whole
        profiles.)"""
        settings = ModelSettings(learning_min_days=0.5, learning_min_events=30)
        cached = IdentityProfile(ROLE, "workload", settings)
        blob = cached.to_bytes()
        volume = 0

        def window(signals) -> list:
            return [(s, s.details) for s in signals
                    if s.detector in VOLUME or s.detector == "multivariate.hst"]

        for event in self._sparse_stream(seed):
            fresh = IdentityProfile.from_bytes(blob, settings)
            found = window(cached.observe(event))
            assert found == window(fresh.observe(event))
            assert cached.models[1].to_state() == fresh.models[1].to_state()
            volume += len(found)
            blob = fresh.to_bytes()
        assert volume >= 3


class TestYoungBurstyBaseline:
    """Calls and distinct counts spike only once ``MIN_BUSY_WINDOWS`` busy windows are
    learned; failures from the start."""

    def runner(self, applies: int) -> tuple[IdentityProfile, float]:
        """A Terraform-like runner: ``applies`` bursts of 14 calls, one a day at 18:00."""
        settings = ModelSettings(learning_min_days=1, learning_min_events=20)
        profile = IdentityProfile(ROLE, "workload", settings)
        for day in range(applies):
            for k in range(14):
                profile.observe(make_event(T0 + day * 86400 + 18 * 3600 + k * 20,
                                           f"ec2:Describe{k % 5}"))
        return profile, T0 + applies * 86400 + 18 * 3600

    def burst(self, profile: IdentityProfile, start: float, calls: int = 40, **fields) -> set:
        seen = set()
        for k in range(calls):
            seen |= {s.detector for s in profile.observe(
                make_event(start + k * 10, f"ec2:Describe{k % 5}", **fields))}
        return seen

    def test_a_bigger_apply_on_a_young_baseline_is_not_a_spike(self):
        assert 18 < MIN_BUSY_WINDOWS
        profile, start = self.runner(18)
        assert "volume.rate" not in self.burst(profile, start)

    def test_the_same_apply_spikes_once_the_baseline_has_its_windows(self):
        assert MIN_BUSY_WINDOWS <= 22
        profile, start = self.runner(22)
        assert "volume.rate" in self.burst(profile, start)

    def test_denied_calls_spike_on_a_young_baseline(self):
        profile, start = self.runner(5)
        seen = self.burst(profile, start, 12, outcome="failure", error_code="AccessDenied")
        assert "volume.failures" in seen
