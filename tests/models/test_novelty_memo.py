"""The novelty repeat memo is exact: a profile that batches repeats scores and serialises
bit for bit like one restored from its blob before every event (which never has a memo).

This is what lets an identity leave the bounded live store, or move to another worker,
without its later alerts changing in the last digits of a score.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from models import novelty as novelty_module
from models.common import vhash
from models.novelty import NoveltyModel, signature
from models.profile import IdentityProfile
from models.settings import ModelSettings
from models.table import RATE_ALPHA, ValueTable
from tests.models.helpers import ROLE, T0, make_event, patches_model_classes


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
    entry = novelty_module._Entry(0, model.epoch, {0: 1}, 11, -1, True)
    entry.repeats, entry.logged = 137, 0  # none applied
    model.memo[("sig",)] = entry
    model.log.append(entry)  # as a hit logs it
    model.flush()
    assert batched.rate == stepped.rate
    assert batched.d[1] == (11 << 16) | 138
    assert batched.total == 138


def _full_path_count(monkeypatch) -> list[int]:
    """Counts the events that go table by table (the memo's misses) from now on."""
    calls = [0]
    extract = novelty_module.extract

    def counting(event):
        calls[0] += 1
        return extract(event)

    monkeypatch.setattr(novelty_module, "extract", counting)
    return calls


def test_memo__a_known_path_on_another_known_resource_is_a_hit(monkeypatch):
    """The resource is not in the memo key: a code path on any resource it already knows
    skips the tables, and the resource tables still count every use."""
    profile = IdentityProfile(ROLE, "workload", ModelSettings(learning_min_events=5))
    ts = T0
    for i in range(40):  # one code path over ten resources, all learned
        ts += 60
        profile.observe(make_event(ts, resource=f"arn:aws:s3:::b/{i % 10}"))
    resources = profile.models[0].tables[novelty_module.RESOURCE]
    total = resources.total
    misses = _full_path_count(monkeypatch)
    for i in range(30):
        ts += 60
        assert profile.observe(make_event(ts, resource=f"arn:aws:s3:::b/{i % 10}")) == []
    assert misses[0] == 0
    assert resources.total == total + 30  # taught at once, not through the memo
    ts += 60
    profile.observe(make_event(ts, resource="arn:aws:s3:::b/new"))
    assert misses[0] == 0  # an unknown resource alone goes through ``_resource_miss``
    assert vhash("arn:aws:s3:::b/new") in resources.d  # and is learned
    ts += 60
    profile.observe(make_event(ts, "s3:NewOp", resource="arn:aws:s3:::b/new2"))
    assert misses[0] == 1  # a new action takes the full path


def resource_stream(seed: int, n: int = 2500) -> list:
    """A few code paths, most calls on a resource the identity has never touched (the
    pattern of the replay's busiest identities), now and then a new action."""
    rng = random.Random(seed)
    events = []
    ts = T0
    for i in range(n):
        ts += rng.choice([20, 60, 300, 1800])
        resource = f"arn:aws:s3:::b/{i if rng.random() < 0.7 else rng.randrange(5)}"
        action = f"s3:Op{rng.randrange(30) if rng.random() < 0.02 else rng.randrange(3)}"
        fields = {"resource": resource}
        if i % 97 == 0:
            fields["outcome"] = "failure"
            fields["error_code"] = "AccessDenied"
        events.append(make_event(ts, action, **fields))
    return events


@patches_model_classes
@pytest.mark.parametrize("seed", [5, 8])
def test_new_resources_of_a_remembered_path__score_like_a_restored_profile(seed, monkeypatch):
    """``_resource_miss`` (the memo holds, the resource or its pair is new) gives the
    signals and the blob of the table-by-table path, step by step."""
    settings = ModelSettings(learning_min_days=0.2, learning_min_events=30)
    kept = IdentityProfile(ROLE, "workload", settings)
    blob = kept.to_bytes()
    taken = [0]
    miss = NoveltyModel._resource_miss

    def counting(self, *args):
        taken[0] += 1
        return miss(self, *args)

    monkeypatch.setattr(NoveltyModel, "_resource_miss", counting)
    resource_signals = 0
    for event in resource_stream(seed):
        restored = IdentityProfile.from_bytes(blob, settings)
        got = signals_of(kept.observe(event))
        assert got == signals_of(restored.observe(event))
        resource_signals += sum(1 for s in got if s[0] == "novelty.resource")
        blob = restored.to_bytes()
    assert taken[0] >= 1000  # most new resources went through it
    assert resource_signals >= 5  # and some of them signalled
    assert kept.to_bytes() == blob


def test_memo__entries_hit_yesterday_carry_over_the_day_change(monkeypatch):
    """At the daily prune the entries of successful calls hit since the day before stay
    (flushed), so the next day starts with hits; a failed call's entry is dropped."""
    profile = IdentityProfile(ROLE, "workload", ModelSettings(learning_min_events=5))
    day = 86400 * (int(T0 // 86400) + 1)
    ts = day - 3 * 3600
    for _ in range(20):
        ts += 300
        profile.observe(make_event(ts))
        profile.observe(make_event(ts + 1, outcome="failure", error_code="AccessDenied"))
    model = profile.models[0]
    assert len(model.memo) == 2
    misses = _full_path_count(monkeypatch)
    profile.observe(make_event(day + 60))  # the first event of the new day: the prune
    assert misses[0] == 1  # (its own entry was of the day before)
    assert model.last_prune_day == day // 86400 and len(model.memo) == 1
    for i in range(10):
        profile.observe(make_event(day + 120 + 60 * i))
    profile.observe(make_event(day + 900, outcome="failure", error_code="AccessDenied"))
    assert misses[0] == 2  # only the failed call went table by table again


@pytest.mark.parametrize("horizon_days", [1, 2, 3])
def test_prunes_skipped_by_the_lower_bound__same_as_a_restored_profile(horizon_days):
    """A daily prune leaves the tables alone while ``low_hour`` shows nothing can be stale;
    a restored profile (the bound unknown) scans every table. With a short horizon values
    do go stale and are pruned, and both give the same signals and blobs; new resources
    on most calls make memo entries on resource misses as well."""
    settings = ModelSettings(learning_min_days=0.5, learning_min_events=30,
                             novelty_horizon_days=horizon_days)
    kept = IdentityProfile(ROLE, "workload", settings)
    blob = kept.to_bytes()
    first = mixed_stream(7, 2000)
    shift = first[-1].ts + 86400 - T0
    later = [replace(event, ts=event.ts + shift, time=datetime.fromtimestamp(event.ts + shift, UTC))
             for event in resource_stream(7, 800)]
    pruned = 0
    for event in first + later:
        restored = IdentityProfile.from_bytes(blob, settings)
        actions = restored.models[0].tables[0]  # at most 30 actions: never evicted
        before = len(actions.d)
        assert signals_of(kept.observe(event)) == signals_of(restored.observe(event))
        pruned += len(actions.d) < before
        blob = restored.to_bytes()
    assert pruned >= 5  # actions went stale and were pruned along the way
    assert kept.models[0].low_hour != novelty_module.LOW_UNKNOWN
    assert kept.to_bytes() == blob
