"""Suppression rules: matching, expiry by the wall clock, file parsing and its errors."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from detector.errors import ConfigError
from detector.suppression import (
    EXPIRED_WARNING,
    SuppressionRules,
    load_rules_file,
    parse_expiry,
)

JUNE_1 = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
JULY_1 = datetime(2026, 7, 1, tzinfo=UTC).timestamp()

RULES_YAML = """\
- id: backup-buckets
  identity: "arn:aws:iam::*:role/backup-*"
  detector: "novelty.resource"
  value: "arn:aws:s3:::backup-*"
  expires: 2026-06-30
  reason: "monthly backup bucket rotation (CHG-1)"
- identity: "system:serviceaccount:monitoring:*"
  reason: "monitoring namespace under migration"
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "suppressions.yaml"
    path.write_text(RULES_YAML)
    return path


class TestMatching:
    def test_active_rule_suppresses_matching_signal(self, rules_file):
        rules = SuppressionRules(load_rules_file(rules_file), clock=Clock(JUNE_1))
        verdict, rule = rules.check(
            "arn:aws:iam::1:role/backup-nightly", "novelty.resource", "arn:aws:s3:::backup-07"
        )
        assert verdict == "suppressed"
        assert rule.rule_id == "backup-buckets"

    def test_other_detector_or_value_is_not_suppressed(self, rules_file):
        rules = SuppressionRules(load_rules_file(rules_file), clock=Clock(JUNE_1))
        identity = "arn:aws:iam::1:role/backup-nightly"
        assert rules.check(identity, "novelty.action", "arn:aws:s3:::backup-07") == (None, None)
        assert rules.check(identity, "novelty.resource", "arn:aws:s3:::prod-db") == (None, None)

    def test_value_matches_in_any_case(self):
        # an Azure operation written before the sources lower-cased them still matches
        rules = SuppressionRules.from_config([{
            "identity": "*", "detector": "novelty.action", "reason": "runbook",
            "value": "azure:Microsoft.Compute/snapshots/*"}], clock=Clock(JUNE_1))
        assert rules.check("mi-1", "novelty.action",
                           "azure:microsoft.compute/snapshots/delete")[0] == "suppressed"
        assert rules.check("mi-1", "novelty.action",
                           "azure:microsoft.compute/disks/delete") == (None, None)

    def test_defaults_match_every_detector_and_value(self, rules_file):
        rules = SuppressionRules(load_rules_file(rules_file), clock=Clock(JUNE_1))
        verdict, rule = rules.check(
            "system:serviceaccount:monitoring:prometheus", "volume.rate", "42"
        )
        assert verdict == "suppressed"
        assert rule.expires is None


class TestExpiry:
    def test_expired_rule_stops_applying_and_is_reported(self, rules_file, caplog):
        clock = Clock(JULY_1)
        rules = SuppressionRules(load_rules_file(rules_file), clock=clock)
        with caplog.at_level(logging.WARNING, logger="detector.suppression"):
            verdict, rule = rules.check(
                "arn:aws:iam::1:role/backup-nightly", "novelty.resource", "arn:aws:s3:::backup-1"
            )
            rules.check(
                "arn:aws:iam::1:role/backup-nightly", "novelty.resource", "arn:aws:s3:::backup-2"
            )
        assert verdict == "expired_rule"
        assert rule.rule_id == "backup-buckets"
        warnings = [r for r in caplog.records if "expired" in r.getMessage()]
        assert len(warnings) == 1  # reported once per rule, not once per signal
        assert [r.rule_id for r in rules.expired_rules()] == ["backup-buckets"]

    def test_expired_at_start__the_detector_warns_once_in_one_wording(self, rules_file, caplog):
        from detector.engine import Detector
        from detector.stats import RunStats

        config = {"suppressions": {"file": str(rules_file)}}
        with caplog.at_level(logging.WARNING, logger="detector"):
            detector = Detector(config, stats=RunStats(), clock=Clock(JULY_1))
            verdict, _ = detector.suppressions.check(
                "arn:aws:iam::1:role/backup-nightly", "novelty.resource", "arn:aws:s3:::backup-1")
        assert verdict == "expired_rule"
        assert [r.getMessage() for r in caplog.records] == [
            "suppression rule has expired and will not apply: backup-buckets "
            "(monthly backup bucket rotation (CHG-1))"]

    def test_rule_expiring_mid_run__same_wording(self, rules_file, caplog):
        clock = Clock(JUNE_1)
        rules = SuppressionRules(load_rules_file(rules_file), clock=clock)
        assert rules.expired_rules() == []
        clock.now = JULY_1
        with caplog.at_level(logging.WARNING, logger="detector.suppression"):
            rules.check("arn:aws:iam::1:role/backup-a", "novelty.resource", "arn:aws:s3:::backup-2")
        assert [r.getMessage() for r in caplog.records] == [
            EXPIRED_WARNING % "backup-buckets (monthly backup bucket rotation (CHG-1))"]

    def test_date_expires_at_the_end_of_that_day(self):
        end = parse_expiry("2026-06-30", "t")
        assert end == pytest.approx(datetime(2026, 7, 1, tzinfo=UTC).timestamp(), abs=1e-3)

    def test_rule_applies_until_expiry_then_not(self, rules_file):
        clock = Clock(datetime(2026, 6, 30, 23, 0, tzinfo=UTC).timestamp())
        rules = SuppressionRules(load_rules_file(rules_file), clock=clock)
        args = ("arn:aws:iam::1:role/backup-a", "novelty.resource", "arn:aws:s3:::backup-x")
        assert rules.check(*args)[0] == "suppressed"
        clock.now = datetime(2026, 7, 1, 0, 0, 1, tzinfo=UTC).timestamp()
        assert rules.check(*args)[0] == "expired_rule"

    def test_datetime_with_offset(self):
        assert parse_expiry("2026-06-30T12:00:00+02:00", "t") == pytest.approx(
            datetime(2026, 6, 30, 10, 0, tzinfo=UTC).timestamp()
        )


class TestParsing:
    def test_inline_config_list_and_mapping(self, rules_file):
        clock = Clock(JUNE_1)
        inline = SuppressionRules.from_config(
            [{"identity": "a*", "reason": "r"}], clock=clock
        )
        assert len(inline) == 1
        mapped = SuppressionRules.from_config(
            {"file": str(rules_file), "rules": [{"identity": "b", "reason": "r"}]}, clock=clock
        )
        assert len(mapped) == 3

    def test_missing_reason_is_an_error(self):
        with pytest.raises(ConfigError, match=r"suppressions\[0\]: missing required key 'reason'"):
            SuppressionRules.from_config([{"identity": "x"}], clock=Clock(0))

    def test_unknown_key_is_an_error(self):
        with pytest.raises(ConfigError, match="unknown key.*'detectr'"):
            SuppressionRules.from_config(
                [{"identity": "x", "reason": "r", "detectr": "y"}], clock=Clock(0)
            )

    def test_bad_expiry_is_an_error(self):
        with pytest.raises(ConfigError, match="expires 'next week'"):
            SuppressionRules.from_config(
                [{"identity": "x", "reason": "r", "expires": "next week"}], clock=Clock(0)
            )

    def test_unreadable_file_is_an_error(self, tmp_path):
        with pytest.raises(ConfigError, match="cannot read suppression file"):
            load_rules_file(tmp_path / "absent.yaml")

    def test_invalid_yaml_is_an_error(self, tmp_path):
        path = tmp_path / "bad.yaml"
        path.write_text("- identity: [unclosed\n")
        with pytest.raises(ConfigError, match="not valid YAML"):
            load_rules_file(path)
