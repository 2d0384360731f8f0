"""PeerIndex grouping and bounds, ModelSettings validation, the blob codec and hashing."""

from __future__ import annotations

import binascii

import pytest

from detector.errors import ConfigError, StateError
from models.common import pack_blob, span_words, unpack_blob, vhash
from models.peers import PeerIndex, name_stem
from models.profile import IdentityProfile
from models.settings import DEFAULT_LEARNING_MIN_EVENTS, ModelSettings
from tests.models.helpers import T0, make_event


class TestPeers:
    @pytest.mark.parametrize("identity,stem", [
        ("arn:aws:iam::1:role/ci-runner-7f3a9c21", "ci-runner"),
        ("arn:aws:iam::1:role/ci-runner-2", "ci-runner"),
        ("system:serviceaccount:payments:api-worker", "api-worker"),
        ("arn:aws:iam::1:role/1234", "unnamed"),
    ])
    def test_name_stem(self, identity, stem):
        assert name_stem(identity) == stem

    def test_group_of__kind_stem_namespace_tenant_or_tag(self):
        peers = PeerIndex()
        event = make_event(T0, identity="arn:aws:iam::1:role/etl-5", tenant="1",
                           attributes={"k8s_namespace": "data"})
        assert peers.group_of(event) == "workload/etl/data/1"
        tagged = make_event(T0, attributes={"peer_group": "billing"}, owner="team-a")
        assert peers.group_of(tagged) == "tag:billing"
        assert peers.group_of(make_event(T0, owner="team-a")) == "owner:team-a"

    def test_prevalence__fraction_of_members(self):
        peers = PeerIndex()
        for i in range(4):
            peers.join("g", f"id-{i}")
        peers.join("g", "id-0")  # idempotent
        for _ in range(3):
            peers.note("g", "action", vhash("kms:Decrypt"))
        assert peers.group_size("g") == 4
        assert peers.prevalence("g", "action", "kms:Decrypt") == 0.75
        assert peers.prevalence("g", "action", "iam:CreateUser") == 0.0
        assert peers.prevalence("missing", "action", "kms:Decrypt") == 0.0

    def test_million_identities__bounded_and_round_trips(self):
        settings = ModelSettings(peer_max_groups=100, peer_values=16)
        peers = PeerIndex(settings)
        for n in range(1_000_000):
            group = f"workload/job/ns-{n % 150}/t"
            peers.join(group, f"arn:aws:sts::1:assumed-role/job/{n}")
            peers.note(group, "resource", n)
        assert len(peers.groups) == 100
        assert peers.degradations[("peers", "group_not_tracked")] > 0
        size = peers.size_bytes()
        assert size < 100 * (1024 * 4 + 16 * 8 + 200)
        copy = PeerIndex.from_bytes(peers.to_bytes(), settings)
        assert copy.to_bytes() == peers.to_bytes()

    def test_profiles_feed_the_index(self):
        peers = PeerIndex()
        for i in range(3):
            ident = f"arn:aws:iam::123456789012:role/app-worker-role-{i}"
            IdentityProfile(ident, "workload", ModelSettings()).observe(
                make_event(T0, "kms:Decrypt", identity=ident), peers)
        group = peers.group_of(make_event(T0))
        assert peers.group_size(group) == 3
        assert peers.prevalence(group, "action", "kms:Decrypt") == 1.0


class TestSettings:
    def test_defaults_and_from_config(self):
        assert ModelSettings.from_config(None).learning_min_events == DEFAULT_LEARNING_MIN_EVENTS
        got = ModelSettings.from_config({"learning_min_days": 1, "bucket_minutes": 5})
        assert got.learning_min_days == 1.0 and got.bucket_minutes == 5.0
        assert got.lag_buckets == 4

    def test_unknown_key__config_error(self):
        with pytest.raises(ConfigError, match=r"unknown key\(s\) \['learnin_min_days'\]"):
            ModelSettings.from_config({"learnin_min_days": 3})

    @pytest.mark.parametrize("section,message", [
        ({"learning_min_events": 2.5}, "whole number"),
        ({"holdout_score": 0}, r"holdout_score must be in \(0, 1\]"),
        ({"bucket_minutes": "10"}, "must be a number"),
        ({"dormancy_days": -1}, "must not be negative"),
    ])
    def test_bad_values__config_error(self, section, message):
        with pytest.raises(ConfigError, match=message):
            ModelSettings.from_config(section)


class TestCodec:
    def test_vhash__is_crc32_of_utf8(self):
        assert vhash("iam:CreateAccessKey") == binascii.crc32(b"iam:CreateAccessKey")
        assert vhash("é") == binascii.crc32("é".encode())

    def test_vhash_cache__bounded_and_still_exact_after_clearing(self, monkeypatch):
        import models.common as common

        monkeypatch.setattr(common, "_HASH_CACHE_MAX", 50)
        values = [f"arn:aws:s3:::bucket/{i}" for i in range(120)]
        hashes = [vhash(v) for v in values]
        assert len(common._HASH_CACHE) <= 50
        assert hashes == [binascii.crc32(v.encode()) for v in values]
        assert [vhash(v) for v in values] == hashes  # recomputed after a clear, the same

    def test_blob_round_trip_with_arrays(self):
        import array

        state = {"a": array.array("I", [1, 2, 3]), "n": [1, {"b": array.array("d", [0.5])}]}
        back = unpack_blob(pack_blob(3, state), 3, "thing")
        assert back == state

    def test_wrong_version__names_both(self):
        with pytest.raises(StateError, match="thing: state format version 3 .* version 4"):
            unpack_blob(pack_blob(3, {}), 4, "thing")

    def test_span_words(self):
        assert [span_words(x) for x in (5, 600, 3 * 3600, 41 * 86400)] == [
            "5 seconds", "10 minutes", "3 hours", "41 days"]


def test_every_model_setting_is_documented_with_its_default() -> None:
    """docs/alerts.md "Model settings": a new knob, or a changed default, shows there."""
    import re
    from dataclasses import fields
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    section = text.split("## Model settings", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([0-9.]+) \|", section, re.MULTILINE))
    defaults = ModelSettings()
    assert sorted(rows) == sorted(f.name for f in fields(ModelSettings))
    for name, shown in rows.items():
        assert float(shown) == getattr(defaults, name), name
