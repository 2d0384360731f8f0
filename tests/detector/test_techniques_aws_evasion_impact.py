"""AWS technique checks for defense evasion beyond CloudTrail, data protection removed,
exfiltration, impact and stolen sessions: each rule fires on the request that shows it and
stays quiet on its benign lookalike (the shapes Panther's labelled tests and Stratus Red
Team use); bursts are counted by the engine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from detector.engine import Detector
from detector.sources import ListDeadLetters, Parser
from detector.stats import RunStats
from detector.techniques.aws import CHECKS, SOURCES, findings
from tests.detector.test_techniques_aws import ACCOUNT, OUTSIDE, call, rules_of, tallies_of

DENIED = "AccessDenied"
TERRAFORM = "APN/1.0 HashiCorp/1.0 Terraform/1.5.0"
ROLE = {"type": "AssumedRole", "accountId": ACCOUNT, "accessKeyId": "ASIAEXAMPLE000001",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app/session"}
S3, KMS, RDS = "s3.amazonaws.com", "kms.amazonaws.com", "rds.amazonaws.com"
OUTSIDE_KEY = f"arn:aws:kms:us-east-1:{OUTSIDE}:key/attacker"
OWN_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/team"
CFN = "cloudformation.amazonaws.com"
ORGS, IAM = "organizations.amazonaws.com", "iam.amazonaws.com"


def role(name: str, session: str = "s", **extra: Any) -> dict[str, Any]:
    """An assumed-role caller whose role is ``name`` (the issuer CloudTrail records)."""
    return {"type": "AssumedRole", "accountId": ACCOUNT, "accessKeyId": "ASIAEXAMPLE000002",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/{session}",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": name}}, **extra}


def by_service(service: str) -> dict[str, Any]:
    """The fields of a request an AWS service made with the caller's role."""
    return {"userIdentity": role("service-role", invokedBy=service),
            "sourceIPAddress": service, "userAgent": service}


def bucket_account(account: str, name: str) -> dict[str, str]:
    return {"type": "AWS::S3::Bucket", "accountId": account, "ARN": f"arn:aws:s3:::{name}"}


CASES = [
    # Macie, GuardDuty, Security Hub, Bedrock, WAF
    ("macie disabled", call("DisableMacie", {}, "macie2.amazonaws.com"),
     [("aws.detection_disabled", "critical", "macie")]),
    ("macie paused", call("UpdateMacieSession", {"status": "PAUSED"}, "macie2.amazonaws.com"),
     [("aws.detection_disabled", "critical", "macie")]),
    ("macie findings delayed six hours",
     call("UpdateMacieSession", {"findingPublishingFrequency": "SIX_HOURS"},
          "macie.amazonaws.com"),
     [("aws.detection_disabled", "medium", "macie")]),
    ("macie findings published every 15 minutes",
     call("UpdateMacieSession", {"findingPublishingFrequency": "FIFTEEN_MINUTES",
                                 "status": "ENABLED"}, "macie2.amazonaws.com"), []),
    ("guardduty stops watching members",
     call("DisassociateMembers", {"detectorId": "d", "accountIds": [OUTSIDE]},
          "guardduty.amazonaws.com"),
     [("aws.detection_disabled", "high", OUTSIDE)]),
    ("guardduty members removed by Control Tower",
     call("DisassociateMembers", {"detectorId": "d", "accountIds": [OUTSIDE]},
          "guardduty.amazonaws.com", userIdentity=role("AWSControlTowerExecution")), []),
    ("security hub members removed by its organisation configuration",
     call("DisassociateMembers", {"accountIds": [OUTSIDE]}, "securityhub.amazonaws.com",
          **by_service("securityhub.amazonaws.com")), []),
    ("macie members removed by a StackSets role",
     call("DeleteMembers", {"accountIds": [OUTSIDE]}, "macie2.amazonaws.com",
          userIdentity={"type": "AssumedRole", "accountId": ACCOUNT,
                        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/stacksets-exec-1f/x"}),
     []),
    ("guardduty membership kept as code",
     call("DeleteMembers", {"detectorId": "d", "accountIds": [OUTSIDE]},
          "guardduty.amazonaws.com", userAgent=TERRAFORM), []),
    ("guardduty members removed by an ordinary role",
     call("DeleteMembers", {"detectorId": "d", "accountIds": [OUTSIDE]},
          "guardduty.amazonaws.com", userIdentity=role("ops-admin")),
     [("aws.detection_disabled", "high", OUTSIDE)]),
    ("config recorder stopped by Control Tower",
     call("StopConfigurationRecorder", {"configurationRecorderName": "aws-controltower-rec"},
          "config.amazonaws.com", userIdentity=role("AWSControlTowerExecution")), []),
    ("config delivery channel deleted by the Config service",
     call("DeleteDeliveryChannel", {"deliveryChannelName": "default"}, "config.amazonaws.com",
          **by_service("config.amazonaws.com")), []),
    ("security hub disabled by its central configuration",
     call("DisableSecurityHub", {}, "securityhub.amazonaws.com",
          **by_service("securityhub.amazonaws.com")), []),
    ("security hub disabled by Control Tower",
     call("DisableSecurityHub", {}, "securityhub.amazonaws.com",
          userIdentity=role("AWSControlTowerExecution")), []),
    ("security hub disabled by an ordinary role",
     call("DisableSecurityHub", {}, "securityhub.amazonaws.com", userIdentity=role("ops")),
     [("aws.detection_disabled", "critical", "securityhub")]),
    ("guardduty detector deleted by a StackSets role",
     call("DeleteDetector", {"detectorId": "d"}, "guardduty.amazonaws.com",
          userIdentity=role("stacksets-exec-2b")), []),
    ("config recorder stopped by an ordinary role",
     call("StopConfigurationRecorder", {"configurationRecorderName": "default"},
          "config.amazonaws.com", userIdentity=role("ops-admin")),
     [("aws.detection_disabled", "critical", "default")]),
    # the organisation's own wiring
    ("guardduty detached from the organisation",
     call("DisableAWSServiceAccess", {"servicePrincipal": "guardduty.amazonaws.com"}, ORGS,
          userIdentity=role("ops-admin")),
     [("aws.detection_disabled", "high", "GuardDuty")]),
    ("single sign-on detached from the organisation (no detection service)",
     call("DisableAWSServiceAccess", {"servicePrincipal": "sso.amazonaws.com"}, ORGS), []),
    ("config detached by Control Tower",
     call("DisableAWSServiceAccess", {"servicePrincipal": "config.amazonaws.com"}, ORGS,
          userIdentity=role("AWSControlTowerExecution")), []),
    ("security hub delegated administrator removed",
     call("DeregisterDelegatedAdministrator", {"accountId": OUTSIDE,
                                               "servicePrincipal": "securityhub.amazonaws.com"},
          ORGS),
     [("aws.detection_disabled", "high", "Security Hub")]),
    ("delegated administrator moved as code",
     call("DeregisterDelegatedAdministrator", {"accountId": OUTSIDE,
                                               "servicePrincipal": "securityhub.amazonaws.com"},
          ORGS, userAgent=TERRAFORM), []),
    ("account removed from the organisation",
     call("RemoveAccountFromOrganization", {"accountId": OUTSIDE}, ORGS),
     [("aws.leave_organization", "medium", OUTSIDE)]),
    ("account removed by a StackSets role",
     call("RemoveAccountFromOrganization", {"accountId": OUTSIDE}, ORGS,
          userIdentity=role("stacksets-exec-9a")), []),
    ("operation of another service with the same name",
     call("RemoveAccountFromOrganization", {"accountId": OUTSIDE}, "example.amazonaws.com"),
     []),
    # another user's MFA removed
    ("mfa of another user deactivated by a script",
     call("DeactivateMFADevice", {"userName": "alice", "serialNumber": "arn:mfa/alice"}, IAM,
          userIdentity=role("ci-runner"), userAgent="aws-cli/2.13.0"),
     [("aws.mfa_removed_for_other_user", "medium", "alice")]),
    ("own mfa deactivated",
     call("DeactivateMFADevice", {"userName": "alice"}, IAM,
          userIdentity={"type": "IAMUser", "accountId": ACCOUNT, "userName": "alice"}), []),
    ("help desk resets a lost mfa in the console",
     call("DeactivateMFADevice", {"userName": "alice"}, IAM, userIdentity=role("helpdesk"),
          userAgent="console.amazonaws.com"), []),
    ("help desk resets a lost mfa through IAM Identity Center",
     call("DeactivateMFADevice", {"userName": "alice"}, IAM, userAgent="aws-cli/2.13.0",
          userIdentity={"type": "AssumedRole", "accountId": ACCOUNT,
                        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Ops/b"}),
     []),
    ("detective members removed (not a detection feed)",
     call("DisassociateMembers", {"accountIds": [OUTSIDE]}, "detective.amazonaws.com"), []),
    ("guardduty auto-archive filter",
     call("CreateFilter", {"detectorId": "d", "name": "quiet", "action": "ARCHIVE",
                           "findingCriteria": {}}, "guardduty.amazonaws.com"),
     [("aws.detection_disabled", "high", "quiet")]),
    ("inspector suppression filter",
     call("CreateFilter", {"name": "noise", "action": "SUPPRESS"}, "inspector2.amazonaws.com"),
     [("aws.detection_disabled", "high", "noise")]),
    ("macie archive filter",
     call("CreateFindingsFilter", {"name": "ok", "action": "ARCHIVE"}, "macie2.amazonaws.com"),
     [("aws.detection_disabled", "high", "ok")]),
    ("guardduty suppression rule kept as code",
     call("CreateFilter", {"detectorId": "d", "name": "scanner", "action": "ARCHIVE"},
          "guardduty.amazonaws.com", userAgent=TERRAFORM), []),
    ("filter of another service",
     call("CreateFilter", {"name": "x", "action": "ARCHIVE"}, "example.amazonaws.com"), []),
    ("guardduty filter that only labels",
     call("CreateFilter", {"detectorId": "d", "name": "tag", "action": "NOOP"},
          "guardduty.amazonaws.com"), []),
    ("security hub findings suppressed by a script",
     call("BatchUpdateFindings", {"FindingIdentifiers": [{"Id": "a"}, {"Id": "b"}],
                                  "Workflow": {"Status": "SUPPRESSED"}},
          "securityhub.amazonaws.com"),
     [("aws.detection_disabled", "medium", "suppressed")]),
    ("security hub findings suppressed in the console",
     call("BatchUpdateFindings", {"Workflow": {"Status": "SUPPRESSED"}},
          "securityhub.amazonaws.com", userAgent="console.amazonaws.com"), []),
    ("security hub findings suppressed by an automation rule",
     call("BatchUpdateFindings", {"Workflow": {"Status": "SUPPRESSED"}},
          "securityhub.amazonaws.com", **by_service("securityhub.amazonaws.com")), []),
    ("security hub finding notes updated",
     call("BatchUpdateFindings", {"Note": {"Text": "seen"}}, "securityhub.amazonaws.com"), []),
    ("bedrock invocation logging deleted",
     call("DeleteModelInvocationLoggingConfiguration", None, "bedrock.amazonaws.com",
          userIdentity=ROLE),
     [("aws.logging_disabled", "high", "bedrock")]),
    ("bedrock guardrails listed",
     call("ListGuardrails", {"maxResults": 1000}, "bedrock.amazonaws.com"), []),
    ("bedrock guardrail deleted",
     call("DeleteGuardrail", {"guardrailIdentifier": "g1"}, "bedrock.amazonaws.com"),
     [("aws.guardrail_removed", "medium", "g1")]),
    ("web ACL removed from a load balancer",
     call("DisassociateWebACL", {"resourceArn": "arn:aws:elasticloadbalancing:x:lb/app/web"},
          "wafv2.amazonaws.com"),
     [("aws.waf_removed", "medium", "arn:aws:elasticloadbalancing:x:lb/app/web")]),
    # S3 controls
    ("bucket encryption deleted",
     call("DeleteBucketEncryption", {"bucketName": "data"}, S3),
     [("aws.data_protection_removed", "medium", "data")]),
    ("bucket encryption deleted, refused", call("DeleteBucketEncryption", {
        "bucketName": "data"}, S3, errorCode=DENIED), []),
    ("bucket encryption set", call("PutBucketEncryption", {"bucketName": "data"}, S3), []),
    ("same name in another service",
     call("DeleteBucketEncryption", {}, "ec2.amazonaws.com"), []),
    ("public access block deleted",
     call("DeleteBucketPublicAccessBlock", {"bucketName": "docs"}, S3),
     [("aws.data_protection_removed", "high", "docs")]),
    ("public access block all off",
     call("PutBucketPublicAccessBlock", {"bucketName": "docs", "PublicAccessBlockConfiguration": {
         "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
         "RestrictPublicBuckets": False}}, S3),
     [("aws.data_protection_removed", "high", "docs")]),
    ("public access block all on",
     call("PutBucketPublicAccessBlock", {"bucketName": "docs", "PublicAccessBlockConfiguration": {
         "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
         "RestrictPublicBuckets": False}}, S3), []),
    ("replication deleted", call("DeleteBucketReplication", {"bucketName": "backup"}, S3),
     [("aws.data_protection_removed", "medium", "backup")]),
    ("versioning suspended",
     call("PutBucketVersioning", {"bucketName": "f", "VersioningConfiguration": {
         "Status": "Suspended"}}, S3),
     [("aws.data_protection_removed", "high", "f")]),
    ("mfa delete turned off",
     call("PutBucketVersioning", {"bucketName": "f", "VersioningConfiguration": {
         "Status": "Enabled", "MfaDelete": "Disabled"}}, S3),
     [("aws.data_protection_removed", "medium", "f")]),
    ("versioning enabled with mfa delete",
     call("PutBucketVersioning", {"bucketName": "f", "VersioningConfiguration": {
         "Status": "Enabled", "MfaDelete": "Enabled"}}, S3), []),
    ("versioning suspended by terraform",
     call("PutBucketVersioning", {"bucketName": "f", "VersioningConfiguration": {
         "Status": "Suspended"}}, S3, userAgent=TERRAFORM), []),
    ("access logging turned off",
     call("PutBucketLogging", {"bucketName": "b", "BucketLoggingStatus": {"xmlns": "x"}}, S3),
     [("aws.logging_disabled", "high", "b")]),
    ("access logging turned on (Panther's flattened form)",
     call("PutBucketLogging", {"bucketName": "b", "BucketLoggingStatus": {},
                               "logging": [{"targetBucket": "logs"}]}, S3), []),
    ("access logging request without a status",
     call("PutBucketLogging", {"bucketName": "b"}, S3), []),
    ("ebs encryption by default off",
     call("DisableEbsEncryptionByDefault", None, awsRegion="eu-west-1"),
     [("aws.data_protection_removed", "medium", "eu-west-1")]),
    ("rds deletion protection and backups off",
     call("ModifyDBCluster", {"dBClusterIdentifier": "prod", "deletionProtection": False,
                              "backupRetentionPeriod": 0}, RDS),
     [("aws.data_protection_removed", "medium", "prod")]),
    ("rds deletion protection on",
     call("ModifyDBInstance", {"dBInstanceIdentifier": "prod", "deletionProtection": True},
          RDS), []),
    ("rds restored public (the response says so)",
     call("RestoreDBInstanceFromDBSnapshot", {"dBInstanceIdentifier": "copy"}, RDS,
          responseElements={"publiclyAccessible": True}),
     [("aws.rds_public", "high", "copy")]),
    ("rds created public is not a restore",
     call("CreateDBInstance", {"dBInstanceIdentifier": "new"}, RDS,
          responseElements={"publiclyAccessible": True}), []),
    # KMS
    ("kms key scheduled for deletion",
     call("ScheduleKeyDeletion", {"keyId": "k1", "pendingWindowInDays": 7}, KMS),
     [("aws.kms_key_loss", "high", "k1")]),
    ("kms key disabled", call("DisableKey", {"keyId": "k1"}, KMS),
     [("aws.kms_key_loss", "medium", "k1")]),
    ("kms key to disable not found",
     call("DisableKey", {"keyId": "k1"}, KMS, errorCode="NotFoundException"), []),
    ("kms key deletion by terraform destroy",
     call("ScheduleKeyDeletion", {"keyId": "k1"}, KMS, userAgent=TERRAFORM), []),
    ("kms key deletion by a CloudFormation stack's teardown",
     call("ScheduleKeyDeletion", {"keyId": "k1", "pendingWindowInDays": 7}, KMS,
          **by_service(CFN)), []),
    ("kms decrypt", call("Decrypt", {"keyId": "k1"}, KMS), []),
    # traffic mirroring
    ("traffic mirror session",
     call("CreateTrafficMirrorSession", {"CreateTrafficMirrorSessionRequest": {
         "NetworkInterfaceId": "eni-1", "TrafficMirrorTargetId": "tmt-1"}}),
     [("aws.traffic_mirroring", "high", "eni-1")]),
    ("traffic mirror session attempt that failed",
     call("CreateTrafficMirrorSession", {"CreateTrafficMirrorSessionRequest": {
         "NetworkInterfaceId": "eni-1"}}, errorCode="Client.NetworkInterfaceNotSupported"),
     [("aws.traffic_mirroring", "medium", "eni-1")]),
    ("traffic mirror target", call("CreateTrafficMirrorTarget", {"networkInterfaceId": "eni-9"}),
     [("aws.traffic_mirroring", "medium", "eni-9")]),
    ("traffic mirror targets listed",
     call("DescribeTrafficMirrorTargets", {"DescribeTrafficMirrorTargetsRequest": {}}), []),
    # S3 objects
    ("copy encrypted with another account's key",
     call("CopyObject", {"bucketName": "v", "key": "f.txt", "x-amz-copy-source": "v/f.txt",
                         "x-amz-server-side-encryption-aws-kms-key-id": OUTSIDE_KEY}, S3),
     [("aws.s3_ransom_encryption", "high", OUTSIDE)]),
    ("copy into a partner's bucket by an S3 Batch Operations job",
     call("CopyObject", {"bucketName": "v", "key": "f.txt", "x-amz-copy-source": "v/f.txt",
                         "x-amz-server-side-encryption-aws-kms-key-id": OUTSIDE_KEY}, S3,
          resources=[bucket_account(OUTSIDE, "v")],
          **by_service("batchoperations.s3.amazonaws.com")), []),
    ("copy encrypted with the account's own key",
     call("CopyObject", {"bucketName": "v", "key": "f.txt", "x-amz-copy-source": "v/f.txt",
                         "x-amz-server-side-encryption-aws-kms-key-id": OWN_KEY}, S3), []),
    ("copy rewritten with a customer-provided key",
     call("CopyObject", {"bucketName": "v", "key": "f",
                         "x-amz-server-side-encryption-customer-algorithm": "AES256"}, S3),
     [("aws.s3_ransom_encryption", "medium", "v")]),
    ("copy to a bucket of another account",
     call("CopyObject", {"bucketName": "exfil", "key": "db.csv", "x-amz-copy-source": "v/db.csv"},
          S3, resources=[bucket_account(ACCOUNT, "v"), bucket_account(OUTSIDE, "exfil")]),
     [("aws.s3_copy_external", "medium", OUTSIDE)]),
    ("copy between the account's buckets",
     call("CopyObject", {"bucketName": "b", "key": "d", "x-amz-copy-source": "a/d"}, S3,
          resources=[bucket_account(ACCOUNT, "a"), bucket_account(ACCOUNT, "b")]), []),
    ("ransom note uploaded",
     call("PutObject", {"bucketName": "prod", "key": "docs/HOW_TO_DECRYPT_FILES.txt"}, S3),
     [("aws.s3_ransom_note", "high", "docs/HOW_TO_DECRYPT_FILES.txt")]),
    ("report uploaded", call("PutObject", {"bucketName": "prod", "key": "q/report.pdf"}, S3), []),
    ("batch delete alone is no finding",
     call("DeleteObjects", {"bucketName": "prod", "delete": ""}, S3), []),
    # RDS and EBS snapshots leaving
    ("rds snapshot exported to s3",
     call("StartExportTask", {"sourceArn": "arn:aws:rds:us-east-1:1:snapshot:prod",
                              "s3BucketName": "out"}, RDS),
     [("aws.db_snapshot_moved", "medium", "out")]),
    ("rds snapshot export refused", call("StartExportTask", {"s3BucketName": "out"}, RDS,
                                         errorCode=DENIED), []),
    ("rds snapshot copied to another region",
     call("CopyDBSnapshot", {"sourceDBSnapshotIdentifier":
                             "arn:aws:rds:us-east-1:123456789012:snapshot:prod",
                             "sourceRegion": "us-east-1"}, RDS, awsRegion="eu-west-1"),
     [("aws.db_snapshot_moved", "low", "eu-west-1")]),
    ("rds snapshot copied with an outside key",
     call("CopyDBSnapshot", {"sourceDBSnapshotIdentifier": "prod", "kmsKeyId": OUTSIDE_KEY},
          RDS, awsRegion="us-east-1"),
     [("aws.db_snapshot_moved", "high", OUTSIDE)]),
    ("rds snapshot copied in its region",
     call("CopyDBSnapshot", {"sourceDBSnapshotIdentifier": "original"}, RDS,
          awsRegion="us-east-1"), []),
    ("ebs snapshot copied into the backup account by AWS Backup",
     call("CopySnapshot", {"sourceSnapshotId": "snap-1", "kmsKeyId": OUTSIDE_KEY},
          awsRegion="us-east-1", **by_service("backup.amazonaws.com")), []),
    ("ebs snapshot copied across regions by a lifecycle policy",
     call("CopySnapshot", {"sourceSnapshotId": "snap-1", "sourceRegion": "us-east-1"},
          awsRegion="eu-west-1", **by_service("dlm.amazonaws.com")), []),
    ("rds snapshot copied to another region by AWS Backup",
     call("CopyDBSnapshot", {"sourceDBSnapshotIdentifier": "prod", "sourceRegion": "us-east-1"},
          RDS, awsRegion="eu-west-1", sourceIPAddress="backup.amazonaws.com"), []),
    ("ebs snapshot copied to another region",
     call("CopySnapshot", {"sourceSnapshotId": "snap-1", "sourceRegion": "us-east-1"},
          awsRegion="ap-south-1"),
     [("aws.db_snapshot_moved", "low", "ap-south-1")]),
    # Lambda URL
    ("function url without auth",
     call("CreateFunctionUrlConfig20211031", {"functionName": "f", "authType": "NONE"},
          "lambda.amazonaws.com"),
     [("aws.lambda_shared", "medium", "public-url")]),
    ("function url with IAM auth",
     call("CreateFunctionUrlConfig20211031", {"functionName": "f", "authType": "AWS_IAM"},
          "lambda.amazonaws.com"), []),
    ("function url without auth, made by a CDK stack",
     call("CreateFunctionUrlConfig20211031", {"functionName": "f", "authType": "NONE"},
          "lambda.amazonaws.com", userAgent=CFN, sourceIPAddress=CFN), []),
    ("function url without auth, made as code",
     call("UpdateFunctionUrlConfig20211031", {"functionName": "f", "authType": "NONE"},
          "lambda.amazonaws.com", userAgent=TERRAFORM), []),
    # secrets and sessions
    ("catch-all batch secret read",
     call("BatchGetSecretValue", {"filters": [{"key": "tag-key", "values": ["!nope"]}]},
          "secretsmanager.amazonaws.com"),
     [("aws.secrets_burst", "high", "catch-all")]),
    ("batch secret read with a positive filter",
     call("BatchGetSecretValue", {"filters": [{"key": "tag-key", "values": ["!nope"]},
                                              {"key": "tag-key", "values": ["app"]}]},
          "secretsmanager.amazonaws.com"), []),
    ("federation token by a long-term key",
     call("GetFederationToken", {"name": "x"}, "sts.amazonaws.com",
          userIdentity={"type": "IAMUser", "accountId": ACCOUNT, "userName": "ci",
                        "accessKeyId": "AKIAEXAMPLE0000001"}),
     [("aws.federated_session", "medium", "x")]),
    ("federation token by an MFA session of a user",
     call("GetFederationToken", {"name": "x"}, "sts.amazonaws.com",
          userIdentity={"type": "IAMUser", "accountId": ACCOUNT, "userName": "ci",
                        "accessKeyId": "ASIAEXAMPLE0000001"}), []),
    ("sign-in token asked for by a script",
     call("GetSigninToken", None, "signin.amazonaws.com", userIdentity=ROLE,
          userAgent="python-requests/2.28.0"),
     [("aws.federated_session", "medium", "session")]),
    ("sign-in token of an IAM Identity Center portal",
     call("GetSigninToken", None, "signin.amazonaws.com", userAgent="Jersey/${project.version}",
          userIdentity={"type": "AssumedRole", "accountId": ACCOUNT,
                        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Admin/a"}),
     []),
]


@pytest.mark.parametrize("rec, expected", [(r, e) for _, r, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_rule_fires_on_its_evidence_only(rec: dict, expected: list) -> None:
    assert rules_of(rec) == expected


@pytest.mark.parametrize("key, note", [
    ("HOW_TO_DECRYPT_FILES.txt", True), ("FILES-DELETED.txt", True),
    ("a/b/RECOVER-YOUR-DATA.html", True), ("ransom_note", True),
    ("docs/README.md", False), ("backups/restore-2024-01-01.tar.gz", False),
    ("decrypt-keys/data.parquet", False), ("files/deleted.csv", False),
])
def test_ransom_note_names(key: str, note: bool) -> None:
    rec = call("PutObject", {"bucketName": "b", "key": key}, S3)
    assert (("aws.s3_ransom_note", "high", key) in rules_of(rec)) is note


TALLY_CASES = [
    ("shell command to three instances",
     call("SendCommand", {"documentName": "AWS-RunShellScript",
                          "instanceIds": ["i-1", "i-2", "i-3"]}, "ssm.amazonaws.com"),
     [("aws.remote_command_spread", ("i-1", "i-2", "i-3"), False)]),
    ("shell command by tag",
     call("SendCommand", {"documentName": "AWS-RunPowerShellScript",
                          "targets": [{"key": "tag:env", "values": ["prod"]}]},
          "ssm.amazonaws.com"),
     [("aws.remote_command_spread", ("tag:env=prod",), False)]),
    ("patch run is no shell command",
     call("SendCommand", {"documentName": "AWS-RunPatchBaseline",
                          "instanceIds": ["i-1", "i-2"]}, "ssm.amazonaws.com"), []),
    ("shell command of a State Manager association",
     call("SendCommand", {"documentName": "AWS-RunShellScript",
                          "instanceIds": ["i-1", "i-2", "i-3"]}, "ssm.amazonaws.com",
          **by_service("ssm.amazonaws.com")), []),
    ("patch run by tag across the fleet",
     call("SendCommand", {"documentName": "arn:aws:ssm:us-east-1::document/AWS-RunPatchBaseline",
                          "targets": [{"key": "tag:PatchGroup", "values": ["web"]}]},
          "ssm.amazonaws.com"), []),
    ("ssh key pushed", call("SendSSHPublicKey", {"instanceId": "i-7", "instanceOSUser": "ec2"},
                            "ec2-instance-connect.amazonaws.com"),
     [("aws.remote_command_spread", ("i-7",), False)]),
    ("batch object deletion", call("DeleteObjects", {"bucketName": "prod"}, S3),
     [("aws.mass_deletion", ("prod",), True)]),
    ("batch object deletion by a service job",
     call("DeleteObjects", {"bucketName": "prod"}, S3,
          **by_service("batchoperations.s3.amazonaws.com")), []),
    ("batch object deletion by terraform destroy",
     call("DeleteObjects", {"bucketName": "prod"}, S3, userAgent=TERRAFORM), []),
    ("secrets read by a filter",
     call("BatchGetSecretValue", {"filters": [{"key": "tag-key", "values": ["app"]}]},
          "secretsmanager.amazonaws.com"),
     [("aws.secrets_burst", ("filter app",), False)]),
]


@pytest.mark.parametrize("rec, expected", [(r, e) for _, r, e in TALLY_CASES],
                         ids=[name for name, _, _ in TALLY_CASES])
def test_burst_requests_are_tallied(rec: dict, expected: list) -> None:
    assert tallies_of(rec) == expected


def _alerts(records: list[dict[str, Any]]) -> list:
    parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
    events = parser.feed(b"".join(orjson.dumps(r) + b"\n" for r in records), "t")
    events += parser.finish()
    detector = Detector({}, stats=RunStats())
    return [a for e in sorted(events, key=lambda e: e.ts) for a in detector.process(e)]


def _at(minute: int, rec: dict[str, Any], index: int) -> dict[str, Any]:
    when = datetime(2024, 3, 4, 10, tzinfo=timezone.utc) + timedelta(minutes=minute)
    return dict(rec, eventTime=when.strftime("%Y-%m-%dT%H:%M:%SZ"), eventID=f"e-{index}")


def ssh_push(instance: str) -> dict[str, Any]:
    return call("SendSSHPublicKey", {"instanceId": instance, "instanceOSUser": "ec2-user"},
                "ec2-instance-connect.amazonaws.com", userIdentity=ROLE)


def test_keys_pushed_to_five_instances_alert_four_do_not() -> None:
    four = [_at(i, ssh_push(f"i-{i}"), i) for i in range(4)]
    assert not [a for a in _alerts(four) if "technique.aws.remote_command_spread" in a.detectors]
    five = four + [_at(4, ssh_push("i-4"), 4)]
    spread = [a for a in _alerts(five) if "technique.aws.remote_command_spread" in a.detectors]
    assert len(spread) == 1
    assert "5 distinct instances reached" in spread[0].to_native()["title"]


def test_ten_batch_deletions_within_minutes_alert() -> None:
    deletes = [_at(i, call("DeleteObjects", {"bucketName": "prod"}, S3, userIdentity=ROLE), i)
               for i in range(10)]
    assert not [a for a in _alerts(deletes[:9]) if "technique.aws.mass_deletion" in a.detectors]
    burst = [a for a in _alerts(deletes) if "technique.aws.mass_deletion" in a.detectors]
    assert [a.severity for a in burst] == ["high"]


ODD = [None, "", "x", 3, [], {"filters": "x"}, {"VersioningConfiguration": []},
       {"CreateTrafficMirrorSessionRequest": 5}, {"resources": 7, "key": 9},
       {"instanceIds": [None, 3], "targets": [None, {"values": 5}]}]


@pytest.mark.parametrize("params", ODD, ids=range(len(ODD)))
def test_odd_parameters_from_the_right_service_never_raise(params: Any) -> None:
    for name, check in CHECKS.items():
        rec = call(name, params, SOURCES.get(name, "ec2.amazonaws.com"), userIdentity=ROLE,
                   resources=params)
        found = findings(rec, check, account=ACCOUNT, family="boto3")
        assert all(f.rule.startswith("aws.") for f in found), name
