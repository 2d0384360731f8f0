"""Scoring: fusion, sensitivity catalogue, kind weights, platform identities, severities."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detector.attack import AttackMap
from detector.errors import ConfigError
from detector.event import Event
from detector.scoring import (
    ScoringSettings,
    SensitivityCatalogue,
    Verdict,
    Weighted,
    corroborated,
    fuse,
    score_event,
    weigh_signals,
)
from models.base import Signal

T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


def make_event(action: str = "s3:ListBuckets", **fields) -> Event:
    values = {
        "event_id": "e-1",
        "time": T0,
        "ts": T0.timestamp(),
        "source": "aws.cloudtrail",
        "identity": "arn:aws:iam::111122223333:role/app",
        "identity_kind": "workload",
        "tenant": "111122223333",
        "action": action,
    }
    values.update(fields)
    return Event(**values)


def sig(detector: str = "novelty.action", score: float = 0.6, **details) -> Signal:
    return Signal(detector, score, "x", "y", f"{detector} fired", value="v", details=details)


@pytest.fixture(scope="module")
def catalogue() -> SensitivityCatalogue:
    return SensitivityCatalogue.load()


@pytest.fixture(scope="module")
def settings() -> ScoringSettings:
    return ScoringSettings()


class TestFuse:
    def test_fuse__single_signal_is_its_score(self):
        assert fuse([0.6], 3) == pytest.approx(0.6)

    def test_fuse__corroboration_is_noisy_or(self):
        # 1 - (1 - 0.5) * (1 - 0.5) = 0.75
        assert fuse([0.5, 0.5], 3) == pytest.approx(0.75)

    def test_fuse__only_top_k_count(self):
        # top 2 of (0.5, 0.5, 0.5): 0.75, the third is ignored
        assert fuse([0.5, 0.5, 0.5], 2) == pytest.approx(0.75)

    def test_fuse__never_exceeds_one(self):
        assert fuse([1.0, 0.9, 0.99], 3) == pytest.approx(1.0)


class TestCatalogue:
    @pytest.mark.parametrize(
        ("action", "category"),
        [
            ("iam:CreateAccessKey", "credential_creation"),
            ("IAM:createaccesskey", "credential_creation"),
            ("cloudtrail:StopLogging", "logging_tampering"),
            ("cloudtrail:DeleteTrail", "logging_tampering"),
            ("iam:AttachRolePolicy", "privilege_change"),
            ("iam:PutUserPolicy", "privilege_change"),
            ("k8s:clusterrolebindings.create", "kubernetes_rbac"),
            ("k8s:secrets.get", "kubernetes_secrets"),
            ("secretsmanager:GetSecretValue", "secret_read"),
            ("iam.googleapis.com:google.iam.admin.v1.CreateServiceAccountKey",
             "credential_creation"),
            ("iamcredentials.googleapis.com:GenerateAccessToken", "impersonation"),
            ("guardduty:DeleteDetector", "detection_tampering"),
            ("s3:GetObject", "data_read_volume"),
        ],
    )
    def test_lookup__known_actions(self, catalogue, action, category):
        found = catalogue.lookup(action)
        assert found is not None and found.category == category

    def test_lookup__plain_action_is_not_sensitive(self, catalogue):
        assert catalogue.lookup("ec2:RunInstances") is None
        assert catalogue.lookup("lambda:Invoke") is None

    def test_classify__failed_call_is_not_a_credential_creation(self, catalogue):
        event = make_event("iam:CreateAccessKey", outcome="failure", error_code="AccessDenied")
        assert catalogue.classify(event) is None
        assert catalogue.classify(make_event("iam:CreateAccessKey")).category == (
            "credential_creation"
        )

    def test_classify__assume_role_only_sensitive_across_tenants(self, catalogue):
        same = make_event("sts:AssumeRole", target_tenant="111122223333")
        other = make_event("sts:AssumeRole", target_tenant="999988887777")
        assert catalogue.classify(same) is None
        assert catalogue.classify(other).category == "cross_tenant_role"

    def test_attack_map__every_technique_resolves_with_tactics(self, catalogue):
        attack = AttackMap(catalogue)
        for _, sens in catalogue.categories:
            records = attack.describe(sens.techniques)
            assert len(records) == len(sens.techniques), sens.category
            assert all(r["tactics"] for r in records)
        ids = attack.ids_for(catalogue.lookup("cloudtrail:StopLogging"), ["novelty.action"])
        assert ids[0] == "T1562.008"
        assert attack.describe(["T1562.008"])[0]["tactics"] == [
            {"id": "TA0005", "name": "Defense Evasion"}
        ]

    def test_catalogue__missing_actions_is_a_config_error(self):
        with pytest.raises(ConfigError, match="lists no actions"):
            SensitivityCatalogue({"categories": {"empty": {"level": "high"}}})


class TestScoreEvent:
    def test_no_signal_above_floor_gives_no_verdict(self, settings):
        assert score_event(make_event(), [sig(score=0.1)], settings, sensitivity=None) is None

    def test_plain_action_is_capped_at_medium(self, settings):
        verdict = score_event(make_event(), [sig(score=1.0)], settings, sensitivity=None)
        assert verdict.score == pytest.approx(1.0)
        assert verdict.severity == "medium"

    def test_sensitivity_amplifies_and_raises_the_ceiling(self, settings, catalogue):
        event = make_event("iam:CreateAccessKey")
        sens = catalogue.classify(event)
        verdict = score_event(event, [sig(score=0.6)], settings, sensitivity=sens)
        # 0.6 * (1 + 0.6 * 0.9) = 0.924 -> critical by score, capped at the category's high
        assert verdict.score == pytest.approx(0.924)
        assert verdict.severity == "high"
        plain = score_event(make_event(), [sig(score=0.6)], settings, sensitivity=None)
        assert plain.score == pytest.approx(0.6)
        assert plain.severity == "medium"

    def test_logging_tampering_can_be_critical(self, settings, catalogue):
        event = make_event("cloudtrail:StopLogging")
        verdict = score_event(event, [sig(score=0.7)], settings,
                              sensitivity=catalogue.classify(event))
        assert verdict.severity == "critical"

    def test_volume_only_category_needs_a_volume_signal(self, settings, catalogue):
        event = make_event("s3:GetObject")
        sens = catalogue.classify(event)
        novelty = score_event(event, [sig("novelty.resource", 0.5)], settings, sensitivity=sens)
        volume = score_event(event, [sig("volume.rate", 0.5)], settings, sensitivity=sens)
        assert novelty.sensitivity is None and novelty.score == pytest.approx(0.5)
        assert volume.sensitivity.category == "data_read_volume"
        assert volume.score == pytest.approx(0.5 * (1 + 0.6 * 0.7))

    def test_humans_are_down_weighted(self, settings):
        human = make_event(identity_kind="human")
        verdict = score_event(human, [sig(score=0.8)], settings, sensitivity=None)
        assert verdict.score == pytest.approx(0.4)
        assert verdict.severity == "low"

    def test_platform_identity_ignores_routine_novelty(self, settings):
        event = make_event(identity_kind="cloud_service")
        routine = [sig("novelty.resource", 0.9), sig("novelty.region", 0.9)]
        assert score_event(event, routine, settings, sensitivity=None) is None
        kept, dropped = weigh_signals(routine, settings, platform=True)
        assert (kept, dropped) == ([], 2)

    def test_platform_identity_new_action_is_low_unless_sensitive(self, settings, catalogue):
        plain = make_event("ec2:CreateTags", identity_kind="cloud_service")
        verdict = score_event(plain, [sig("novelty.action", 0.9)], settings, sensitivity=None)
        assert verdict.severity == "low"
        rbac = make_event("k8s:clusterrolebindings.create", identity_kind="cloud_service",
                          source="k8s.audit")
        verdict = score_event(rbac, [sig("novelty.action", 0.9)], settings,
                              sensitivity=catalogue.classify(rbac))
        assert verdict.severity == "high"

    def test_change_context_lowers_one_level_but_never_below_the_floor(self, settings):
        event = make_event()
        medium = score_event(event, [sig(score=0.6)], settings, sensitivity=None,
                             change_context=True)
        assert medium.severity == "low"
        low = score_event(event, [sig(score=0.45)], settings, sensitivity=None,
                          change_context=True)
        assert low.severity == "low"
        assert any("deploy change" in note for note in medium.notes)

    def test_change_context_never_lowers_a_sensitive_action(self, settings, catalogue):
        event = make_event("iam:CreateAccessKey")
        verdict = score_event(event, [sig(score=0.6)], settings,
                              sensitivity=catalogue.classify(event), change_context=True)
        assert verdict.severity == "high"

    def test_peer_prevalence_damps_unless_the_model_applied_it(self, settings):
        event = make_event()
        damped = score_event(event, [sig(score=0.8, peer_prevalence=0.5)], settings,
                             sensitivity=None)
        assert damped.score == pytest.approx(0.8 * (1 - 0.6 * 0.5))
        applied = score_event(
            event, [sig(score=0.8, peer_prevalence=0.5, peer_adjusted=True)], settings,
            sensitivity=None,
        )
        assert applied.score == pytest.approx(0.8)

    def test_signals_are_ordered_strongest_first(self, settings):
        verdict = score_event(
            make_event(), [sig("novelty.region", 0.5), sig("novelty.action", 0.9)], settings,
            sensitivity=None,
        )
        assert [w.signal.detector for w in verdict.signals] == ["novelty.action",
                                                                 "novelty.region"]


class TestSettings:
    def test_from_config__overrides(self):
        settings = ScoringSettings.from_config(
            {"thresholds": {"high": 0.8}, "kind_weights": {"human": 0.2}, "cooldown": 60}
        )
        assert settings.severity_for(0.79) == "medium"
        assert settings.severity_for(0.8) == "high"
        assert settings.kind_weights == {"human": 0.2}
        assert settings.cooldown == 60

    def test_from_config__unknown_key_is_named(self):
        with pytest.raises(ConfigError, match="unknown key.*'treshold'"):
            ScoringSettings.from_config({"treshold": 1})

    def test_from_config__bad_severity_is_named(self):
        with pytest.raises(ConfigError, match="min_severity"):
            ScoringSettings.from_config({"min_severity": "urgent"})

    def test_from_config__list_expected(self):
        with pytest.raises(ConfigError, match="shadow_detectors must be a list"):
            ScoringSettings.from_config({"shadow_detectors": "volume.rate"})

    def test_deployers_and_change_actions(self):
        settings = ScoringSettings.from_config({"deploy_identities": ["*role/ci-*"]})
        assert settings.is_deployer(make_event(identity="arn:aws:iam::1:role/ci-deployer"))
        assert settings.is_deployer(make_event(agent_family="terraform"))
        assert not settings.is_deployer(make_event(agent_family="boto3"))
        assert settings.is_change_action("lambda:UpdateFunctionCode20150331v2")
        assert settings.is_change_action("k8s:deployments.patch")
        assert not settings.is_change_action("s3:GetObject")


class TestEvidenceFusion:
    def test_correlated_detectors_count_once(self, settings):
        event = make_event()
        # novelty.action and novelty.action_network see the same new action: max, not OR.
        same = score_event(event, [sig("novelty.action", 0.5), sig("novelty.action_network", 0.5)],
                           settings, sensitivity=None)
        assert same.score == pytest.approx(0.5)
        # a new action and a new region are independent: 1 - 0.5 * 0.5
        independent = score_event(event, [sig("novelty.action", 0.5), sig("novelty.region", 0.5)],
                                  settings, sensitivity=None)
        assert independent.score == pytest.approx(0.75)

    def test_fusion_groups_are_configurable(self):
        settings = ScoringSettings.from_config({"fusion_groups": {"novelty.*": "novelty"}})
        assert settings.fusion_group("novelty.region") == "novelty"
        assert settings.fusion_group("volume.rate") == "volume.rate"

    def test_routine_sensitive_action_does_not_amplify_unrelated_signals(self, settings,
                                                                         catalogue):
        event = make_event("kms:Decrypt")
        sens = catalogue.classify(event)
        assert sens.category == "secret_read"
        off_hours = score_event(event, [sig("schedule.off_hours", 0.6)], settings,
                                sensitivity=sens)
        assert off_hours.sensitivity is None
        assert off_hours.score == pytest.approx(0.6)
        assert off_hours.severity == "low"  # the hour alone: schedule_ceiling
        new_action = score_event(event, [sig("novelty.action", 0.6)], settings,
                                 sensitivity=sens)
        assert new_action.sensitivity.category == "secret_read"
        assert new_action.score == pytest.approx(0.6 * (1 + 0.6 * 0.8))

    def test_verdict_carries_its_ceiling(self, settings, catalogue):
        plain = score_event(make_event(), [sig(score=1.0)], settings, sensitivity=None)
        assert (plain.severity, plain.ceiling) == ("medium", "medium")
        event = make_event("iam:CreateAccessKey")
        weak = score_event(event, [sig(score=0.3)], settings,
                           sensitivity=catalogue.classify(event))
        assert (weak.severity, weak.ceiling) == ("low", "high")

    def test_new_hour_alone__capped_at_schedule_ceiling(self, settings):
        alone = score_event(make_event(), [sig("schedule.off_hours", 0.9)], settings,
                            sensitivity=None)
        assert (alone.score, alone.severity, alone.ceiling) == (0.9, "low", "low")
        assert alone.notes == ["where only the hour was unusual, severity held at low"]
        weak = score_event(make_event(), [sig("schedule.off_hours", 0.3)], settings,
                           sensitivity=None)
        assert (weak.severity, weak.notes) == ("info", [])

    def test_new_hour_with_other_deviation__usual_ceiling(self, settings):
        both = score_event(make_event(), [sig("schedule.off_hours", 0.9), sig("volume.rate", 0.5)],
                           settings, sensitivity=None)
        assert (both.severity, both.ceiling, both.notes) == ("medium", "medium", [])

    def test_schedule_ceiling__configurable_and_checked(self):
        settings = ScoringSettings.from_config({"schedule_ceiling": "medium"})
        alone = score_event(make_event(), [sig("schedule.off_hours", 0.9)], settings,
                            sensitivity=None)
        assert alone.severity == "medium"
        with pytest.raises(ConfigError, match=r"scoring.schedule_ceiling: 'urgent'"):
            ScoringSettings.from_config({"schedule_ceiling": "urgent"})


class TestPolicyRules:
    def test_policy_rule_action_matches_in_any_case(self):
        settings = ScoringSettings.from_config({"policy_rules": [
            {"name": "ra", "action": "azure:Microsoft.Authorization/roleAssignments/write",
             "severity": "high", "reason": "r"}]})
        (action_rx, identity_rx, _), = settings.policy_matchers
        assert action_rx.match("azure:microsoft.authorization/roleassignments/write")
        assert not action_rx.match("azure:microsoft.authorization/roleassignments/delete")
        assert identity_rx.match("any-identity")

    def test_rule_without_action_is_refused(self):
        with pytest.raises(ConfigError, match=r"policy_rules\[0\]: a rule needs at least"):
            ScoringSettings.from_config({"policy_rules": [{"name": "x"}]})

    def test_rule_with_bad_severity_is_refused(self):
        with pytest.raises(ConfigError, match=r"policy_rules\[0\]: severity 'urgent'"):
            ScoringSettings.from_config(
                {"policy_rules": [{"action": "iam:*", "severity": "urgent"}]}
            )

    def test_matchers_are_globs_on_action_and_identity(self):
        settings = ScoringSettings.from_config(
            {"policy_rules": [{"action": "iam:Create*", "identity": "*:root"}]}
        )
        ((action_rx, identity_rx, _),) = settings.policy_matchers
        assert action_rx.match("iam:CreateAccessKey")
        assert not action_rx.match("iam:DeleteAccessKey")
        assert identity_rx.match("arn:aws:iam::1:root")
        assert not identity_rx.match("arn:aws:iam::1:role/x")


class TestFirstTamperingAction:
    """A never-seen tampering action takes its category's level whatever its score."""

    @staticmethod
    def novel(action: str, score: float, status: str = "unseen", degraded: bool = False):
        return Signal("novelty.action", score, action, "12 known actions",
                      f"first call of {action}", value=action, degraded=degraded,
                      details={"attribute": "action", "status": status})

    def test_unseen_tampering_action_is_critical_at_a_modest_score(self, settings, catalogue):
        event = make_event("cloudtrail:StopLogging")
        verdict = score_event(event, [self.novel(event.action, 0.35)], settings,
                              sensitivity=catalogue.classify(event))
        # 0.35 * (1 + 0.6 * 1.0) = 0.56: medium by score, critical as a first tampering act
        assert verdict.score == pytest.approx(0.56)
        assert verdict.severity == "critical"
        assert verdict.notes[-1] == ("first logging tampering action by this identity: "
                                     "severity raised to the category's level (critical)")

    def test_forgotten_or_approximate_history_keeps_the_score_severity(self, settings,
                                                                      catalogue):
        event = make_event("guardduty:UpdateDetector")
        sens = catalogue.classify(event)
        forgotten = score_event(event, [self.novel(event.action, 0.35, "forgotten")],
                                settings, sensitivity=sens)
        evicted = score_event(event, [self.novel(event.action, 0.35, degraded=True)],
                              settings, sensitivity=sens)
        assert (forgotten.severity, evicted.severity) == ("medium", "medium")

    def test_only_policy_categories_and_the_action_itself_count(self, settings, catalogue):
        key = make_event("iam:CreateAccessKey")
        verdict = score_event(key, [self.novel(key.action, 0.35)], settings,
                              sensitivity=catalogue.classify(key))
        assert verdict.severity == "low"  # 0.35 * 1.54 = 0.539: low by score, not raised
        stop = make_event("cloudtrail:StopLogging")
        other = self.novel("cloudtrail:DescribeTrails", 0.35)
        verdict = score_event(stop, [other], settings, sensitivity=catalogue.classify(stop))
        assert verdict.severity == "medium"


def test_packaged_catalogue_is_read_once_and_as_the_pure_python_loader_reads_it() -> None:
    from pathlib import Path

    import yaml

    import detector

    path = Path(detector.__file__).parent / "data" / "sensitive_actions.yaml"
    expected = yaml.load(path.read_text(), Loader=yaml.SafeLoader)
    first, second = SensitivityCatalogue.load(), SensitivityCatalogue.load()
    assert first.data == expected and len(first.categories) == len(expected["categories"])
    assert second.data is first.data  # parsed once per process
    assert first._cache is not second._cache  # each catalogue keeps its own lookups


@pytest.mark.parametrize(("detectors", "expected"), [
    (["novelty.action", "novelty.network"], True),  # a stolen session replayed elsewhere
    (["credential.new_network", "dormancy.credential"], True),  # a key back from elsewhere
    (["novelty.agent_family", "volume.rate"], True),
    (["novelty.error_code", "credential.concurrent_networks"], True),
    (["novelty.action", "novelty.service", "novelty.resource"], False),  # what only
    (["novelty.network", "novelty.region", "credential.new_network"], False),  # where only
    # a known action from a known network that never met is a reading of where
    (["novelty.agent_family", "novelty.action_network"], False),
    (["novelty.action_resource", "novelty.network"], False),  # a pair of what and which
    (["schedule.off_hours", "novelty.network"], False),
])
def test_corroborated__a_new_origin_and_new_conduct(detectors, expected):
    """What a thin history needs (docs/alerts.md "Thin histories")."""
    verdict = Verdict(0.5, "medium", [Weighted(sig(d), 0.5) for d in detectors], None)
    assert corroborated(verdict) is expected
