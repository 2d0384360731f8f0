"""The novelty repeat memo is exact: a profile that batches repeats scores and serialises
bit for bit like one restored from its blob before every event (which never has a memo).

This is what lets an identity leave the bounded live store, or move to another worker,
without its later alerts changing in the last digits of a score.
"""

from __future__ import annotations

import random

import pytest

from models import novelty as novelty_module
from models.novelty import NoveltyModel, signature
from models.profile import IdentityProfile
from models.settings import ModelSettings
from models.table import RATE_ALPHA, ValueTable
from tests.models.helpers import ROLE, T0, make_event


def mixed_stream(seed: int, n: int = 3000) -> list:
    """Repeats of a few signatures (cut by hour and day changes), new actions and
    resources, failed calls and an occasional new network: the memo is filled, extended
    across hours, replaced, flushed by new values and by pruning."""
    rng = random.Random(seed)
    events = []
    ts = T0
    for i in range(n):
        ts += rng.choice([5, 30, 60, 300, 900, 3600, 4 * 3600])
        new = rng.random() < 0.04
        fields = {
            "resource": f"arn:aws:s3:::b/{rng.randrange(40 if new else 3)}",
        }
        if rng.random() < 0.02:
            fields["network_prefix"] = f"203.0.113.{rng.randrange(8)}/32"
            fields["network"] = "public"
        if i % 53 == 0:
            fields["outcome"] = "failure"
            fields["error_code"] = rng.choice(["AccessDenied", "Throttling"])
        action = f"s3:Op{rng.randrange(12) if new else int(4 * rng.random() ** 2)}"
        events.append(make_event(ts, action, **fields))
    return events


def signals_of(signals) -> list[tuple]:
    return [(s.detector, s.score, s.value, s.sentence, s.baseline) for s in signals]


@pytest.mark.parametrize(("seed", "log_cap"), [(3, None), (11, None), (3, 4)])
def test_in_memory_profile__scores_exactly_like_one_restored_before_every_event(
        seed, log_cap, monkeypatch):
    """(With a tiny ``LOG_CAP`` the memo log is flushed whole every few hits.)"""
    if log_cap is not None:
        monkeypatch.setattr(novelty_module, "LOG_CAP", log_cap)
    settings = ModelSettings(learning_min_days=0.5, learning_min_events=30)
    kept = IdentityProfile(ROLE, "workload", settings)
    blob = kept.to_bytes()
    novelty = memo_hits = longest = 0
    for event in mixed_stream(seed):
        longest = max(longest, len(kept.models[0].log))
        restored = IdentityProfile.from_bytes(blob, settings)
        memo_hits += kept.models[0]._remembered(signature(event), int(event.ts // 3600)) \
            is not None
        got = signals_of(kept.observe(event))
        assert got == signals_of(restored.observe(event))  # scores compared with ==
        novelty += sum(1 for s in got if s[0].startswith("novelty."))
        blob = restored.to_bytes()
    assert novelty >= 20  # the stream does raise novelty signals
    assert memo_hits >= 1000  # and most repeats went through the memo
    assert longest <= novelty_module.LOG_CAP  # the log stays bounded
    assert kept.to_bytes() == blob  # rates included, bit for bit


def test_flushed_repeats__same_rate_as_one_use_at_a_time():
    """Many repeats flushed at once leave the rate exactly where as many single uses do
    (``(1 - a) ** k`` as one product does not: it differs in the last bits)."""
    stepped, batched = ValueTable(8), ValueTable(8)
    for table in (stepped, batched):
        table.learn(1, 10, None, "action")  # a new value: no degradation counter needed
        table.rate = 0.3
    model = NoveltyModel(ModelSettings())
    for _ in range(137):
        stepped.rate -= RATE_ALPHA * stepped.rate
    model.tables[0] = batched
    entry = [0, model.epoch, {0: 1}, 137, 11, [0] * len(model.tables), 0]  # none applied
    model.memo[("sig",)] = entry
    model.log.append(entry)  # as a hit logs it
    model.flush()
    assert batched.rate == stepped.rate
    assert batched.d[1] == (11 << 16) | 138
    assert batched.total == 138
