"""Alert content for the analyst (trial 9, item 8): next steps per detector family in the
native alert and as OCSF ``remediation``; OCSF naming the leading signal's call and a
technique rule's family; a role session named by its role in technique sentences."""

from __future__ import annotations


import pytest

from detector.alerts import AlertGroup, make_alert_id
from detector.feedback import technique_rules
from detector.ocsf import to_ocsf
from detector.scoring import Verdict, Weighted
from detector.techniques import ATTRIBUTE, as_findings
from detector.triage import BEHAVIOUR, guidance_for, technique_family
from models.base import Signal
from tests.detector.alert_schema import assert_valid_alert
from tests.detector.test_alerts import build_alert, make_event
from tests.detector.test_techniques_aws import ACCOUNT, parse
from tests.detector.sources_helpers import record

def technique_alert(group: str = "novelty") -> object:
    """An alert opened by a ListRoles novelty and led by a key made for another user: the
    shape of scenario S08, where the first sampled call is not the technique's."""
    first = make_event(0, action="iam:ListRoles")
    novelty = Verdict(0.6, "medium", [Weighted(Signal(
        "novelty.action", 0.6, "iam:ListRoles", "12 actions", "first call of iam:ListRoles",
        value="iam:ListRoles"), 0.6)], None, [])
    alert_group = AlertGroup(group=group, alert_id=make_alert_id(first.identity, group, 0, "e"),
                             opened=first.ts, closes=first.ts + 3600, last=first.ts,
                             score=0.6, severity="medium", identity_kind="workload",
                             kind_reason="k", owner="team-a", tenant=first.tenant)
    alert_group.fold(first, novelty, 20, 5)
    rule = Verdict(0.8, "high", [Weighted(Signal(
        "technique.aws.access_key_for_other_user", 1.0, "iam:CreateAccessKey", "none",
        "access key created for IAM user victim by another principal (role/app-worker)",
        value="victim"), 1.0)], None, [])
    alert_group.fold(make_event(1, action="iam:CreateAccessKey"), rule, 20, 5)
    alert_group.revision = 1
    return alert_group.to_alert(first.identity, [])


class TestGuidance:
    def test_every_technique_rule_has_a_family(self) -> None:
        names = sorted(technique_rules())
        assert len(names) > 150
        assert [name for name in names if technique_family(name) is None] == []

    @pytest.mark.parametrize(("rule", "family"), [
        ("aws.access_key_for_other_user", "credential persistence"),
        ("aws.admin_policy_granted", "privilege escalation"),
        ("aws.detection_disabled", "defence evasion"),
        ("aws.secrets_burst", "credential access"),
        ("gcp.admin_grant_external", "privilege escalation"),
        ("k8s.permission_enumeration", "discovery"),
        ("k8s.admission_webhook_external", "execution"),
        ("azure.storage_public_access", "data exposure"),
        ("gcp.gcs_ransom_note", "impact"),
        ("azure.password_spray_tool", "initial access"),
        ("aws.tampering_attempt", "defence evasion"),
        ("k8s.tampering_attempt", "defence evasion"),
    ])
    def test_a_rule_family_is_read_off_its_name(self, rule: str, family: str) -> None:
        assert technique_family(rule) == family
        assert guidance_for(f"technique.{rule}").family == family

    def test_behavioural_detectors_get_their_family_and_shadow_ones_too(self) -> None:
        assert sorted(BEHAVIOUR) == ["credential", "dormancy", "multivariate", "novelty",
                                     "policy", "schedule", "sweep", "volume"]
        assert guidance_for("sweep.key_check").family == "sweep"
        assert guidance_for("volume.rate").family == "volume"
        assert guidance_for("shadow.novelty.action").family == "novelty"
        assert guidance_for("mystery.detector").family == "other"

    def test_a_leaked_key_says_who_else_used_it_disable_it_and_review_the_key_id(self
                                                                               ) -> None:
        guide = guidance_for("credential.new_network")
        assert "Who else used the key" in guide.check_first[0]
        assert guide.contain[0].startswith("Disable or delete the key")
        assert "every call made with the key id" in guide.contain[0]


class TestNativeAlert:
    def test_the_alert_carries_its_leading_detectors_next_steps(self) -> None:
        native = technique_alert().to_native()
        assert_valid_alert(native)
        assert native["triage"] == guidance_for(
            "technique.aws.access_key_for_other_user").to_dict()
        assert native["triage"]["family"] == "credential persistence"
        assert native["triage"]["check_first"] and native["triage"]["contain"]

    def test_a_novelty_alert_gets_novelty_steps(self) -> None:
        native = build_alert().to_native()
        assert_valid_alert(native)
        assert native["triage"]["family"] == "novelty"


class TestOcsf:
    def test_remediation_holds_the_families_steps_in_words(self) -> None:
        doc = to_ocsf(technique_alert())
        guide = guidance_for("technique.aws.access_key_for_other_user")
        desc = doc["remediation"]["desc"]
        assert desc.startswith("credential persistence: a credential was created or "
                               "changed for another identity")
        assert f"(1) {guide.check_first[0]}" in desc
        assert desc.endswith(f"Contain: {guide.contain[0]}")
        assert doc["unmapped"]["nhi_triage"] == guide.to_dict()

    def test_the_first_evidence_is_the_leading_rules_call_not_the_first_sample(self
                                                                              ) -> None:
        alert = technique_alert()
        assert alert.evidence["samples"]["action"][0] == "iam:ListRoles"
        doc = to_ocsf(alert)
        assert doc["evidences"][0]["api"] == {"operation": "CreateAccessKey",
                                              "service": {"name": "iam"}}

    def test_a_technique_rules_category_is_its_family_not_the_alert_group(self) -> None:
        analytic = to_ocsf(technique_alert("novelty"))["finding_info"]["analytic"]
        assert (analytic["uid"], analytic["category"], analytic["type"]) == (
            "technique.aws.access_key_for_other_user", "credential persistence", "Rule")

    def test_a_behavioural_leader_keeps_the_alert_group_as_category(self) -> None:
        analytic = to_ocsf(build_alert())["finding_info"]["analytic"]
        assert (analytic["category"], analytic["type"]) == ("novelty", "Behavioral")


class TestCallerNames:
    def test_a_role_session_is_named_by_its_role_not_its_hex_session(self) -> None:
        session = "44e4f16cb5b6f9c2f2a310ec2cce5555"
        rec = record(eventName="CreateAccessKey", eventSource="iam.amazonaws.com",
                     requestParameters={"userName": "svc-jenkins-legacy"},
                     recipientAccountId=ACCOUNT, userAgent="Boto3/1.34.0",
                     userIdentity={"type": "AssumedRole", "accountId": ACCOUNT,
                                   "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/"
                                          f"ops-copilot-agent/{session}",
                                   "accessKeyId": "ASIAEXAMPLE00000001"})
        events = parse(rec)
        found = as_findings(events[0].attributes.get(ATTRIBUTE))
        assert [(f.rule, f.sentence, f.value) for f in found] == [(
            "aws.access_key_for_other_user", "access key created for IAM user "
            "svc-jenkins-legacy by another principal (role/ops-copilot-agent)",
            "svc-jenkins-legacy")]

    def test_an_iam_user_keeps_its_name(self) -> None:
        rec = record(eventName="CreateAccessKey", eventSource="iam.amazonaws.com",
                     requestParameters={"userName": "backup-svc-admin"},
                     recipientAccountId=ACCOUNT, userAgent="Boto3/1.34.0")
        found = as_findings(parse(rec)[0].attributes.get(ATTRIBUTE))
        assert [f.sentence for f in found] == [
            "access key created for IAM user backup-svc-admin by another principal (bot)"]
