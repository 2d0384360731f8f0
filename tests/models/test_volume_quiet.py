"""Quiet buckets (at most ``QUIET_COUNT`` events) are scored without building a reference.

Two things must hold for that shortcut: such a bucket never signals whatever its baseline,
and skipping the reference changes nothing later (every score, reference and state stays
the same, bit for bit, as when every event builds it).
"""

from __future__ import annotations

import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.profile import IdentityProfile
from models.settings import ModelSettings
from models.volume import (
    EXCESS,
    MILESTONE_EVERY,
    MILESTONES,
    QUIET_COUNT,
    Bucket,
    Reference,
    WindowModel,
)
from tests.models.helpers import ROLE, T0, make_event, patches_model_classes

WINDOW = {"volume.rate", "volume.distinct_actions", "volume.distinct_resources",
          "volume.failures", "multivariate.hst"}
DAY = 86400


def test_quiet_count__below_every_signalling_level():
    assert QUIET_COUNT < min(EXCESS)
    assert QUIET_COUNT < min(MILESTONES)
    assert QUIET_COUNT < MILESTONE_EVERY


counts = st.integers(min_value=0, max_value=500)
ewm = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(buckets=st.lists(st.tuples(counts, st.integers(0, 64), st.integers(0, 64), counts),
                        max_size=40),
       gaps=st.lists(st.integers(0, 2000), min_size=40, max_size=40),
       means=st.lists(ewm, min_size=4, max_size=4), slot=st.integers(0, 47),
       n=st.integers(1, QUIET_COUNT), data=st.data())
def test_quiet_bucket__scores_zero_whatever_the_baseline(buckets, gaps, means, slot, n, data):
    """Baselines learned from arbitrary buckets (empty runs included), or set to arbitrary
    non-negative levels (as ``_accept`` does): a bucket of ``n <= QUIET_COUNT`` events,
    whose distinct counts and failures are at most ``n``, scores 0.0 on every series."""
    model = WindowModel(ModelSettings())
    ref = model.main
    index = 2_900_000
    for (calls, actions, resources, fails), gap in zip(buckets, gaps, strict=False):
        bucket = Bucket()
        bucket.n, bucket.fails = calls, fails
        bucket.actions, bucket.resources = set(range(actions)), set(range(resources))
        model._fold(ref, index, bucket)
        if gap:
            model._fold_zeros(ref, index + 1, index + 1 + gap)
        index += gap + 1
    if data.draw(st.booleans()):
        ref.mean, ref.stats[0], ref.stats[2], ref.stats[4] = means
        ref.slot_mean[slot] = means[0]
    quiet = Bucket()
    quiet.n = n
    quiet.fails = data.draw(st.integers(0, n))
    quiet.actions = set(range(data.draw(st.integers(0, n))))
    quiet.resources = set(range(data.draw(st.integers(0, n))))
    assert ref.scores(quiet, slot) == (0.0, 0.0, 0.0, 0.0)


def _stream(seed: int) -> list:
    """A sparse identity: gaps from seconds to over a week (empty runs cut to the week
    cap), bursts, events late within the lateness and late beyond it (into buckets a
    cached reference may already have folded), and a few busy buckets."""
    rng = random.Random(seed)
    events, ts = [], T0
    for i in range(700):
        ts += rng.choice([20, 300, 900, 3600, 3 * 3600, 9 * 3600, 2 * DAY, 8 * DAY
                          if rng.random() < 0.05 else 600])
        events.append(make_event(ts, rng.choice(["s3:GetObject", "s3:PutObject"]),
                                 outcome=rng.choice(["success"] * 9 + ["failure"])))
        if rng.random() < 0.04:  # a burst of new actions and resources
            for k in range(rng.randrange(5, 60)):
                events.append(make_event(ts + k, f"ec2:Describe{k % 9}",
                                         resource=f"arn:aws:s3:::data/{i}/{k}"))
            ts += 60
        if rng.random() < 0.08:  # late: within the lateness, or up to 45 minutes
            events.append(make_event(ts - rng.choice([300, 840, 1500, 2700]), "s3:ListBucket"))
    return events


def _replay(events: list) -> list:
    """Per event: the window signals, the reference the window model scored against when
    it built one, and the window state after learning."""
    settings = ModelSettings(learning_min_days=0.5, learning_min_events=30)
    profile = IdentityProfile(ROLE, "workload", settings)
    window = profile.models[1]
    out = []
    for event in events:
        signals = [(s, s.details) for s in profile.observe(event) if s.detector in WINDOW]
        cache = window._limits_cache
        built = None
        if cache is not None:
            ref: Reference = cache[2]
            built = (cache[0], cache[1], cache[3], ref.through, ref.folds, ref.mean, ref.rvar,
                     ref.stats.tobytes(), ref.peaks.tobytes(), ref.slot_mean.tobytes())
        # pickled at once: the state shares its arrays with the live baseline
        out.append((signals, built, pickle.dumps(window.to_state())))
    return out


@patches_model_classes
@pytest.mark.parametrize("seed", range(4))
def test_skipped_reference__same_scores_and_state_as_building_it(seed, monkeypatch):
    events = _stream(seed)
    skipping = _replay(events)
    monkeypatch.setattr(WindowModel, "_defer", lambda self, index: False)
    building = _replay(events)
    assert len(skipping) == len(building)
    references = 0
    for (signals, ref, state), (signals_b, ref_b, state_b) in zip(skipping, building,
                                                                   strict=True):
        assert signals == signals_b
        assert state == state_b
        if ref is not None and ref[:2] == ref_b[:2]:  # both scored this bucket's reference
            assert ref == ref_b
            references += 1
    assert references > 50
    assert sum(len(signals) for signals, _, _ in skipping) >= 3

