"""Novelty: stable streams stay quiet, new values are flagged in plain words, bounded state."""

from __future__ import annotations

import re
from collections import Counter

from models import novelty
from models.common import vhash
from models.novelty import NoveltyModel, surprise
from models.peers import PeerIndex
from models.profile import IdentityProfile
from models.settings import ModelSettings
from models.table import ValueTable, vocabulary
from tests.models.helpers import ROLE, T0, learned_profile, make_event, stable_stream


class TestNoveltySignals:
    def test_stable_stream__no_signal_after_learning(self):
        profile, _ = learned_profile(days=4)
        quiet = [
            s
            for e in stable_stream(T0 + 4 * 86400, 2)
            for s in profile.observe(e)
        ]
        assert quiet == []

    def test_new_action__flagged_with_sentence(self):
        profile, ts = learned_profile(days=4)
        signals = profile.observe(make_event(ts, "iam:CreateAccessKey"))
        action = [s for s in signals if s.detector == "novelty.action"]
        assert len(action) == 1
        assert re.fullmatch(
            r"first call of iam:CreateAccessKey in \d+ days of history", action[0].sentence
        )
        assert action[0].value == "iam:CreateAccessKey"
        assert action[0].score > 0.7
        assert "novelty.service" in {s.detector for s in signals}

    def test_each_attribute__flagged_once_new(self):
        profile, ts = learned_profile(days=4)
        event = make_event(
            ts, region="ap-south-1", network="public", network_prefix="203.0.113.0/24",
            agent_family="terraform", target_tenant="999999999999",
            resource="arn:aws:s3:::other/key",
        )
        found = {s.detector: s for s in profile.score_one(event)}
        for name in ("region", "network", "agent_family", "target_tenant", "resource"):
            assert f"novelty.{name}" in found, name
        # a temporary session key is new every hour: no credential-with-network pair
        assert "novelty.credential_network" not in found
        # the pairs stay quiet when a part is itself new: one finding, one signal
        assert "novelty.action_network" not in found
        assert "novelty.action_resource" not in found
        assert found["novelty.region"].sentence.startswith("first activity in region ap-south-1")
        assert found["novelty.network"].observed == "203.0.113.0/24 (public)"
        assert found["novelty.target_tenant"].sentence.startswith(
            "first action on tenant 999999999999")

    def test_a_first_foreign_tenant_is_news_against_every_call_at_home(self):
        """Calls on the identity's own tenant are uses of the target-tenant table: the
        first foreign tenant is as surprising as a first action, not a coin toss of an
        empty table (an object written to another account's bucket scored 0.09)."""
        profile, ts = learned_profile(days=4)
        found = {s.detector: s for s in profile.score_one(
            make_event(ts, "s3:PutObject", target_tenant="444455556666"))}
        assert found["novelty.target_tenant"].score > 0.7
        # its own tenant, named as a target or not, is never news
        for event in (make_event(ts, target_tenant="123456789012"),
                      make_event(ts, tenant="123456789012")):
            assert "novelty.target_tenant" not in {s.detector
                                                   for s in profile.score_one(event)}
        fresh = IdentityProfile(ROLE, "workload", ModelSettings(learning_min_events=0,
                                                                learning_min_days=0))
        fresh.observe(make_event(ts - 60, tenant=None))
        assert "novelty.target_tenant" not in {s.detector for s in fresh.observe(
            make_event(ts, tenant="123456789012"))}

    def test_long_term_key__new_network_named_credential(self):
        profile, ts = learned_profile(days=4)
        event = make_event(ts, network="public", network_prefix="198.51.100.0/24",
                           credential_type="long_term")
        found = {s.detector: s for s in profile.score_one(event)}
        assert "credential.new_network" in found
        assert "novelty.credential_network" not in found
        assert found["credential.new_network"].sentence.startswith(
            "first use of long-term key ASIAEXAMPLE from network 198.51.100.0/24")

    def test_long_term_key__a_rotated_key_from_the_usual_network_is_not_news(self):
        """A new key's first call from a network the identity already calls from is a
        rotation (or a second key of the same host): only a new network makes it news."""
        profile, ts = learned_profile(days=4, every=600)
        key = {"credential_type": "long_term", "credential_id": "AKIAOLDKEY"}
        for event in stable_stream(ts, 1, 600, **key):
            profile.observe(event)
        ts += 86400
        rotated = {"credential_type": "long_term", "credential_id": "AKIANEWKEY"}
        assert profile.score_one(make_event(ts, **rotated)) == []
        found = {s.detector for s in profile.score_one(make_event(
            ts, network="public", network_prefix="198.51.100.0/24", **rotated))}
        assert {"credential.new_network", "novelty.network"} <= found

    def test_forgetting_horizon__old_value_new_again(self):
        settings = ModelSettings(novelty_horizon_days=5)
        profile, ts = learned_profile(settings, days=4)
        assert profile.mark_expected("novelty.action", "kms:Decrypt")
        later = ts + 7 * 86400
        for i, event in enumerate(stable_stream(ts + 1, 7)):
            profile.observe(event)
        signals = profile.score_one(make_event(later + 10, "kms:Decrypt"))
        action = [s for s in signals if s.detector == "novelty.action"]
        assert action and "beyond the forgetting horizon" in action[0].sentence
        assert action[0].details["status"] == "forgotten"

    def test_failed_call__never_makes_action_known(self):
        profile, ts = learned_profile(days=4)
        for i in range(20):
            profile.observe(make_event(ts + i * 700, "iam:ListUsers", outcome="failure",
                                       error_code="AccessDenied"))
        signals = profile.score_one(make_event(ts + 20 * 700, "iam:ListUsers"))
        assert "novelty.action" in {s.detector for s in signals}

    def test_held_value__learned_after_k_windows(self):
        settings = ModelSettings(accept_windows=3)
        profile, ts = learned_profile(settings, days=4)
        bucket = settings.bucket_seconds
        flagged = []
        for k in range(5):
            signals = profile.observe(make_event(ts + k * bucket, "sqs:SendMessage"))
            flagged.append("novelty.action" in {s.detector for s in signals})
        assert flagged == [True, True, True, False, False]

    def test_held_value__said_once_per_window(self):
        profile, ts = learned_profile(days=4)
        bucket = ModelSettings().bucket_seconds
        counts = []
        for window in range(2):
            start = ts + window * bucket
            flagged = [profile.observe(make_event(start + i, "sqs:SendMessage"))
                       for i in range(20)]
            counts.append(sum("novelty.action" in {s.detector for s in f} for f in flagged))
        assert counts == [1, 1]
        assert profile.models[0].tables[0].held_windows(vhash("sqs:SendMessage")) == 2

    def test_mark_expected__value_becomes_known(self):
        profile, ts = learned_profile(days=4)
        event = make_event(ts, "iam:CreateAccessKey")
        assert "novelty.action" in {s.detector for s in profile.score_one(event)}
        assert profile.mark_expected("novelty.action", "iam:CreateAccessKey")
        assert "novelty.action" not in {s.detector for s in profile.score_one(event)}

    def test_pair_of_known_parts__flagged_and_feedback(self):
        profile, ts = learned_profile(days=4)
        assert profile.mark_expected("novelty.network", "198.51.100.0/24")
        event = make_event(ts, network="public", network_prefix="198.51.100.0/24")
        pair = [s for s in profile.score_one(event) if s.detector == "novelty.action_network"]
        assert pair and pair[0].sentence.startswith(
            "first call of s3:GetObject from network 198.51.100.0/24 (public) in ")
        assert pair[0].value == "s3:GetObject|198.51.100.0/24"
        assert profile.mark_expected("novelty.action_network", pair[0].value)
        after = {s.detector for s in profile.score_one(event)}
        assert "novelty.action_network" not in after


class TestPeerContext:
    def _group(self, peers: PeerIndex, n: int, with_kms: int) -> None:
        for i in range(n):
            ident = f"arn:aws:iam::123456789012:role/app-worker-role-{i}"
            profile = IdentityProfile(ident, "workload", ModelSettings())
            for event in stable_stream(T0, 0.2, identity=ident):
                profile.observe(event, peers)
            if i < with_kms:
                profile.observe(make_event(T0 + 0.3 * 86400, "kms:Decrypt", identity=ident),
                                peers)

    def test_common_in_group__scores_lower_and_says_so(self):
        peers_common, peers_none = PeerIndex(), PeerIndex()
        self._group(peers_common, 6, with_kms=5)
        self._group(peers_none, 6, with_kms=0)
        scores = {}
        for name, peers in (("common", peers_common), ("none", peers_none)):
            profile, ts = learned_profile(days=4, peers=peers)
            signal = [s for s in profile.score_one(make_event(ts, "kms:Decrypt"), peers)
                      if s.detector == "novelty.action"][0]
            scores[name] = signal
        assert scores["common"].score < scores["none"].score
        assert "common among peers (5 of 7 identities" in scores["common"].sentence
        assert "new for its whole peer group of 7 identities" in scores["none"].sentence


class TestTenantNetworks:
    def test_network_shared_in_tenant__scores_lower_and_says_so(self):
        peers = PeerIndex()
        nat = {"network": "public", "network_prefix": "44.211.105.0/24"}
        for i in range(3):  # three other roles of the tenant already egress through it
            other = f"arn:aws:iam::123456789012:role/other-job-{chr(97 + i)}"
            IdentityProfile(other, "workload", ModelSettings()).observe(
                make_event(T0, identity=other, **nat), peers)
        profile, ts = learned_profile(days=4, peers=peers)
        shared = [s for s in profile.score_one(make_event(ts, **nat), peers)
                  if s.detector == "novelty.network"]
        alone = [s for s in profile.score_one(
            make_event(ts, network="public", network_prefix="198.51.100.0/24"), peers)
            if s.detector == "novelty.network"]
        assert shared and alone and shared[0].score < 0.5 * alone[0].score
        assert "already used by 3 other identities of tenant 123456789012" in shared[0].sentence


class TestBounded:
    def test_million_distinct_resources__table_stays_capped(self):
        model = NoveltyModel(ModelSettings())
        table = model.tables[2]
        degradations = __import__("collections").Counter()
        for i in range(1_000_000):
            table.learn(i * 2654435761 & 0xFFFFFFFF, 500_000 + i // 3600, degradations, "r")
        assert len(table.d) <= ModelSettings().novelty_cap_resource
        assert len(table.to_state()["k"]) <= ModelSettings().novelty_cap_resource
        assert degradations[("novelty.r", "evicted")] >= 1_000_000 - 128
        assert table.lossy  # the bloom filter was reset: counted and visible
        assert degradations[("novelty.r", "bloom_reset")] > 0

    def test_many_resources_through_profile__size_under_cap(self):
        settings = ModelSettings()
        profile = IdentityProfile(ROLE, "workload", settings)

        def events():
            for i in range(60_000):
                yield make_event(T0 + i * 2.0, resource=f"arn:aws:s3:::bucket/key-{i}",
                                 action=f"s3:Op{i % 300}")

        for event in events():
            profile.observe(event)
        size = profile.size_bytes()
        assert size <= settings.max_state_bytes
        assert profile.degradations[("novelty.resource", "evicted")] > 0

    def test_evicted_value__degraded_signal(self):
        settings = ModelSettings(novelty_cap=4)
        profile = IdentityProfile(ROLE, "workload", settings)
        for i in range(12):  # in the learning period: learned, and evicted beyond the cap
            profile.observe(make_event(T0 + i, region=f"region-{i}"))
        for event in stable_stream(T0 + 100, 4):
            profile.observe(event)
        ts = T0 + 5 * 86400
        table = profile.models[0].tables[3]
        evicted = [f"region-{i}" for i in range(12) if vhash(f"region-{i}") not in table.d]
        assert evicted
        signals = profile.score_one(make_event(ts + 100, region=evicted[0]))
        region = [s for s in signals if s.detector == "novelty.region"]
        assert region and region[0].degraded
        assert "approximate" in region[0].sentence


class TestVocabulary:
    def test_words(self):
        assert vocabulary(0, 100) == "unseen"
        assert vocabulary(1, 1000) == "rare"
        assert vocabulary(5, 1000) == "infrequent"
        assert vocabulary(60, 1000) == "frequent"

    def test_summary__counts_every_value_as_vocabulary_does(self):
        """The threshold counting of ``summary`` against one ``vocabulary`` call per value,
        boundary shares included (5 of 100 is exactly 0.05, 5 of 1,000 exactly 0.005)."""
        import random
        from collections import Counter

        rng = random.Random(5)
        for total in [0, 1, 7, 60, 100, 599, 600, 1000, 1001, 2000, 20_000, 65_535]:
            table = ValueTable(cap=10_000)
            counts = [1, 2, 3, 4, 5, 6, 29, 30, 31, 50, 99, 100, 101]
            counts += [rng.randint(1, 3000) for _ in range(60)]
            table.d = {h: (7 << 16) | c for h, c in enumerate(counts)}
            table.total = total
            expected = Counter(vocabulary(c, total) for c in counts)
            assert table.summary() == expected, total
            assert sum(expected.values()) == len(counts)

    def test_surprise__monotone_and_bounded(self):
        assert surprise(1.0) == 0.0
        assert surprise(1e-3) == 1.0
        assert 0.0 < surprise(0.05) < surprise(0.01) < 1.0

    def test_table_counts__match_counter_on_every_prefix(self):
        import random
        from collections import Counter

        rng = random.Random(3)
        table = ValueTable(cap=10_000)
        reference: Counter = Counter()
        for step in range(2000):
            h = rng.randint(0, 300)
            table.learn(h, step // 60, Counter(), "x")
            reference[h] += 1
            assert table.total == sum(reference.values())
            assert table.n1 == sum(1 for c in reference.values() if c == 1)
        assert {h: p & 0xFFFF for h, p in table.d.items()} == dict(reference)


def test_prune__drops_exactly_the_entries_last_seen_before_the_hour():
    table = ValueTable(48)
    for h, hour in ((1, 100), (2, 105), (3, 110), (4, 110)):
        table.learn(h, hour, Counter(), "action")
    table.learn(3, 111, Counter(), "action")  # a second use: count 2
    assert table.prune(100) == 0 and len(table.d) == 4  # nothing before hour 100
    assert table.prune(106) == 2
    assert sorted(table.d) == [3, 4]
    assert (table.total, table.n1) == (3, 1)
    assert table.d[3] == (111 << 16) | 2


def test_size_estimate__sum_of_the_tables_estimates():
    """The written-out estimate adds up what each table estimates (kept values, held
    values, bloom filter)."""
    model = NoveltyModel(ModelSettings(novelty_cap=8))
    degradations = Counter()
    for i in range(30):  # past the cap: evictions fill a bloom filter
        model.tables[3].learn(i, 5, degradations, "region")
    model.tables[0].learn(1, 5, degradations, "action")
    model.tables[4].hold(7, 100, 3)
    expected = sum(table.size_estimate() for table in model.tables)
    assert model.tables[3].bloom is not None and model.tables[4].held
    kept = len(model.tables[3].d) + 1
    assert model.size_estimate() == expected == 11 * 150 + 8 * kept + 168 + 68


class TestRepeatMemo:
    def test_memo__same_state_and_signals_as_table_by_table(self, monkeypatch):
        """The repeat memo is a speed-up only: disabling it changes neither signals nor
        the serialised state, across hour changes, evictions, new values and pruning."""
        import random

        def run() -> tuple[list, bytes]:
            rng = random.Random(9)
            profile = IdentityProfile(ROLE, "workload", ModelSettings(novelty_cap=8))
            seen = []
            for i in range(6000):
                event = make_event(
                    T0 + i * 70.0, f"s3:Op{int(6 * rng.random() ** 2)}",
                    resource=f"arn:aws:s3:::b/{rng.randint(0, 3 if i % 9 else 40)}",
                    outcome="failure" if i % 97 == 0 else "success",
                    error_code="AccessDenied" if i % 97 == 0 else None,
                )
                seen.append([(s.detector, s.score, s.value) for s in profile.observe(event)])
            return seen, profile.to_bytes()

        with_memo = run()
        # a key that never repeats: every event goes table by table
        monkeypatch.setattr(novelty, "signature", lambda event: object())
        without = run()
        assert any(with_memo[0])
        assert with_memo[0] == without[0]  # scores too, bit for bit
        assert with_memo[1] == without[1]  # rates included
