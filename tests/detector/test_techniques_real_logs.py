"""Technique findings on public real logs (skipped when ../shared is absent): the Stratus
Red Team simulation of invictus-aws-dataset, Panther's labelled CloudTrail test events, and
the benign logs, with the counts measured when the rules were written."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from detector.engine import Detector
from detector.sources import ListDeadLetters, Parser, read_paths
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, as_findings

pytestmark = pytest.mark.shared

# Stratus techniques of the simulation, by the rule that shows each
INVICTUS_RULES = {
    "aws.access_key_for_other_user": 2,  # iam-backdoor-user, iam-create-admin-user
    "aws.admin_policy_granted": 2,  # iam-create-admin-user, iam-backdoor-role
    "aws.ami_shared": 1,  # ec2-share-ami
    "aws.console_login_without_mfa": 1,  # iam-create-user-login-profile (its sign-in)
    "aws.ebs_snapshot_shared": 1,  # ec2-share-ebs-snapshot
    "aws.flow_logs_deleted": 1,  # ec2-delete-flow-logs
    "aws.lambda_code_replaced": 2,  # lambda-overwrite-code (two uploads)
    "aws.lambda_shared": 1,  # lambda-backdoor-function
    "aws.leave_organization": 1,  # organizations-leave (refused)
    "aws.login_profile_for_other_user": 1,  # iam-create-user-login-profile
    "aws.rds_snapshot_shared": 1,  # rds-share-snapshot
    "aws.role_trust_external": 1,  # iam-backdoor-role
    "aws.roles_anywhere_trust_anchor": 1,  # rolesanywhere-create-trust-anchor
    "aws.s3_bucket_shared": 1,  # s3-backdoor-bucket-policy
    "aws.security_group_open": 1,  # ec2-security-group-open-port-22-ingress
    "aws.short_log_lifecycle": 1,  # cloudtrail-lifecycle-rule
    "aws.trail_selectors_reduced": 1,  # cloudtrail-event-selectors
    "aws.unusual_instances": 2,  # ec2-launch-unusual-instances (ten p2.xlarge, over quota)
}
# bursts the engine counts: ec2-get-password-data and ec2-download-user-data (refused
# attempts by their Stratus roles), secretsmanager-retrieve-secrets and
# ssm-retrieve-securestring-parameters (not Terraform's refresh of the same secrets)
INVICTUS_BURSTS = {"aws.instance_password_burst": 1, "aws.user_data_burst": 1,
                   "aws.secrets_burst": 1,
                   # ec2-steal-instance-credentials: the instance's session from its own
                   # address (its SSM agent), then from the attacker's host
                   "aws.instance_credentials_elsewhere": 1}
# Panther rule id -> (expected true that alert, true, expected false that alert, false)
PANTHER = {
    "AWS.CloudTrail.AMIModifiedForPublicAccess": (2, 2, 0, 4),
    "AWS.CloudTrail.AttemptToLeaveOrg": (1, 1, 0, 0),
    "AWS.CloudTrail.DNSLogsDeleted": (1, 1, 0, 0),
    "AWS.CloudTrail.EventSelectorsDisabled": (1, 1, 0, 2),
    "AWS.CloudTrail.LoginProfileCreatedOrModified": (1, 1, 0, 1),
    "AWS.CloudTrail.ResourceMadePublic": (2, 5, 0, 9),
    "AWS.CloudTrail.ShortLifecycle": (2, 2, 0, 3),
    "AWS.CloudTrail.SnapshotMadePublic": (2, 2, 0, 2),
    "AWS.ConfigService.DisabledDeleted": (1, 1, 0, 2),
    "AWS.Console.LoginWithoutMFA": (3, 3, 1, 8),
    "AWS.Console.RootLogin": (1, 1, 0, 1),
    "AWS.EC2.ManualSecurityGroupChange": (1, 2, 0, 3),
    "AWS.IAM.AttachAdminRolePolicy": (1, 1, 0, 1),
    "AWS.IAM.AttachAdminUserPolicy": (1, 1, 0, 1),
    "AWS.IAM.Backdoor.User.Keys": (0, 3, 0, 2),
    "AWS.IAM.BackdoorRole": (1, 1, 0, 2),
    "AWS.RDS.InstanceMadePublic": (2, 2, 0, 3),
    "AWS.RDS.SnapshotShared": (1, 1, 0, 1),
    "AWS.Root.Activity": (2, 2, 0, 4),
    "AWS.User.Login.Profile.Modified": (1, 1, 0, 2),
    "AWS.VPCFlow.LogsDeleted": (1, 1, 0, 0),
    "AWS.EC2.LaunchUnusualEC2Instances": (3, 3, 0, 0),
    "AWS.EC2.Startup.Script.Change": (1, 1, 0, 2),
    # Panther's true SSO code update is a person's session, left to the behavioural models;
    # a federated user's is judged (its credentials were minted from a user's key); its
    # false ones are role sessions (pipelines)
    "AWS.Lambda.UpdateFunctionCode": (2, 3, 0, 3),
    # Panther's rules judge successful calls only: their one "false" each is a refused
    # PutBucketLogging turning logging off, an aws.logging_disabled attempt here on purpose
    "AWS.S3.DisableBucketLogging": (1, 1, 1, 3),
    "AWS.S3.SecurityControlDisabling": (5, 5, 1, 5),
    # defense evasion beyond CloudTrail; a guardrail update is not judged (its content is
    # hidden in the record)
    "AWS.Bedrock.DeleteModelInvocationLoggingConfiguration": (1, 1, 0, 1),
    "AWS.Bedrock.GuardrailUpdateDelete": (1, 2, 0, 1),
    "AWS.Macie.Evasion": (2, 2, 0, 1),
    "AWS.WAF.Disassociation": (1, 1, 0, 1),
    # data protection removed; the one "false" of the MFA-delete and versioning rules is a
    # DeleteBucketEncryption, which Panther's own DeleteBucketEncryption rule labels true
    "AWS.S3.DeleteBucketEncryption": (1, 1, 0, 3),
    "AWS.S3.DeleteBucketReplication": (1, 1, 0, 3),
    "AWS.S3.DeletePublicAccessBlock": (1, 1, 0, 3),
    "AWS.S3.DisableMfaDelete": (1, 1, 1, 5),
    "AWS.S3.SuspendVersioning": (2, 2, 1, 4),
    "AWS.RDS.DeletionProtectionDisabled": (3, 3, 0, 3),
    "AWS.KMS.CustomerManagedKeyLoss": (3, 3, 0, 2),
    # exfiltration and impact; filters, filter rules and clean-up of traffic mirroring are
    # not judged, only sessions and targets; its one "false" is a CodeBuild project made
    # public, which Panther's own CodebuildProjectMadePublic rule labels true
    "AWS.EC2.Traffic.Mirroring": (3, 6, 1, 3),
    "AWS.RDS.PublicRestore": (1, 1, 0, 2),
    "AWS.RDS.SnapshotCopiedCrossRegion": (2, 2, 0, 2),
    "AWS.RDS.SnapshotExport": (2, 2, 0, 2),
    "AWS.S3.CopyObject.CrossAccount.Encryption.KMS": (1, 1, 0, 1),
    "AWS.S3.CopyObjectToExternalAccountBucket": (1, 1, 0, 1),
    "AWS.S3.CopyObjectWithClientSideEncryption": (1, 1, 0, 1),
    "AWS.S3.RansomwareNoteUpload": (1, 1, 0, 1),
    "AWS.Console.GetSigninToken.Abuse": (1, 1, 0, 2),
    # leaked keys, databases taken over, projects made public; of the database firewall
    # rule's true events, openings to one network or another group are not judged
    "AWS.CloudTrail.IAMCompromisedKeyQuarantine": (1, 1, 0, 1),
    "AWS.IAM.AccessKeyCompromised": (1, 1, 0, 1),
    "AWS.STS.GetCallerIdentity.TruffleHog": (2, 2, 0, 2),
    "AWS.RDS.MasterPasswordUpdated": (1, 1, 0, 1),
    "AWS.RDS.ActivityStreamStopped": (1, 1, 0, 2),
    "AWS.RDS.AutomatedBackupDeleted": (2, 2, 0, 2),
    "AWS.RDS.SecurityGroupIngressAuthorized": (1, 3, 0, 2),
    "AWS.CloudTrail.CodebuildProjectMadePublic": (1, 1, 0, 2),
}


def events_of(path: Path) -> list:
    return list(read_paths([str(path)], stats=RunStats(), dead_letters=ListDeadLetters()))


def test_invictus_stratus_techniques(real_logs: Path) -> None:
    events = events_of(real_logs / "invictus-aws-dataset")
    found = Counter(f.rule for e in events for f in as_findings(e.attributes.get(ATTRIBUTE)))
    assert dict(found) == INVICTUS_RULES
    detector = Detector({}, stats=RunStats())
    alerts = [a for e in sorted(events, key=lambda e: e.ts) for a in detector.process(e)]
    detectors = {d for a in alerts for d in a.detectors if d.startswith("technique.")}
    assert detectors == {f"technique.{rule}" for rule in INVICTUS_RULES | INVICTUS_BURSTS}
    # the one alert before (DeleteTrail, logging tampering) is still there
    assert any("policy.logging_tampering" in a.detectors for a in alerts)


def test_panther_labelled_events(real_logs: Path) -> None:
    base = real_logs / "panther-analysis-tests"
    labels = [json.loads(line) for line in (base / "aws_cloudtrail.labels.jsonl").open()]
    lines = (base / "aws_cloudtrail.panther_tests.jsonl").read_bytes().splitlines()
    counts: dict[str, list[int]] = {}
    for label, line in zip(labels, lines, strict=True):
        if label["rule_id"] not in PANTHER:
            continue
        parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
        events = parser.feed(line + b"\n", "panther") + parser.finish()
        fired = any(as_findings(e.attributes.get(ATTRIBUTE)) for e in events)
        row = counts.setdefault(label["rule_id"], [0, 0, 0, 0])
        column = 0 if label["expected_result"] else 2
        row[column] += fired
        row[column + 1] += 1
    assert {k: tuple(v) for k, v in counts.items()} == PANTHER


@pytest.mark.parametrize("name", ["trailscraper-cloudtrail", "elastic-aws-cloudtrail",
                                  "ocsf-examples-raw"])
def test_benign_logs_have_no_findings(real_logs: Path, name: str) -> None:
    events = events_of(real_logs / name)
    assert events
    assert [f for e in events for f in e.attributes.get(ATTRIBUTE, ())] == []
    detector = Detector({}, stats=RunStats())
    assert [a for e in events for a in detector.process(e)
            if any(d.startswith("technique.") for d in a.detectors)] == []
