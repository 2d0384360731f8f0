"""AWS technique checks of the fourth round: a bucket's default encryption handed to another
account's key, databases and secrets deleted with nothing left to restore, ECS containers
given the host, MFA devices enrolled for someone else, audit log groups set to expire,
GuardDuty told to trust an address or to stop exporting, the metadata service opened to
IMDSv1, KMS key policies written past the lockout check, the account moved under another
organisation, Inspector switched off and Access Analyzer findings archived by a script.
Each rule fires on the request that shows it and stays quiet on the benign lookalikes of
its kind: infrastructure-as-code, AWS services and their service-linked roles, Control
Tower, the console and IAM Identity Center."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml

from detector.techniques import ATTRIBUTE
from tests.detector.test_techniques_aws import ACCOUNT, OUTSIDE, call, parse, rules_of
from tests.detector.test_techniques_aws_evasion_impact import (
    CFN, OUTSIDE_KEY, OWN_KEY, TERRAFORM, by_service, role,
)
from tests.detector.test_techniques_aws_exposure import CONSOLE, INSTANCE, SSO

S3, RDS, ECS = "s3.amazonaws.com", "rds.amazonaws.com", "ecs.amazonaws.com"
IAM, LOGS = "iam.amazonaws.com", "logs.amazonaws.com"
GUARDDUTY, WAF = "guardduty.amazonaws.com", "wafv2.amazonaws.com"
DENIED = "AccessDenied"
SLR = role("AWSServiceRoleForAmazonGuardDuty")
CONTROL_TOWER = role("AWSControlTowerExecution")


def encryption(key: str | None, algorithm: str = "aws:kms") -> dict[str, Any]:
    """PutBucketEncryption parameters as CloudTrail records them (one rule, a dict)."""
    default: dict[str, Any] = {"SSEAlgorithm": algorithm}
    if key:
        default["KMSMasterKeyID"] = key
    return {"bucketName": "invoices", "Host": "invoices.s3.us-east-1.amazonaws.com",
            "encryption": [""], "ServerSideEncryptionConfiguration": {
                "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
                "Rule": {"ApplyServerSideEncryptionByDefault": default,
                         "BucketKeyEnabled": True}}}


def deletion(skip: Any, backups: Any = None, cluster: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {"skipFinalSnapshot": skip}
    params["dBClusterIdentifier" if cluster else "dBInstanceIdentifier"] = "customers"
    if backups is not None:
        params["deleteAutomatedBackups"] = backups
    if skip is False:
        params["finalDBSnapshotIdentifier"] = "customers-final"
    return params


def task(definition: dict[str, Any], volumes: list[dict[str, Any]] | None = None
         ) -> dict[str, Any]:
    """RegisterTaskDefinition parameters of one container, ``definition`` merged in."""
    container = {"name": "worker", "image": "public.ecr.aws/docker/library/alpine:3",
                 "essential": True, "memory": 256, **definition}
    params: dict[str, Any] = {"family": "batch-worker", "containerDefinitions": [container],
                              "requiresCompatibilities": ["EC2"]}
    if volumes is not None:
        params["volumes"] = volumes
    return params


HOST_ROOT = [{"name": "hostfs", "host": {"sourcePath": "/"}}]
DOCKER_SOCKET = [{"name": "docker", "host": {"sourcePath": "/var/run/docker.sock"}}]


def mfa(user: str) -> dict[str, str]:
    return {"userName": user, "serialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/{user}-phone"}


def retention(group: str, days: Any) -> dict[str, Any]:
    return {"logGroupName": group, "retentionInDays": days}


def ip_set(activate: Any) -> dict[str, Any]:
    return {"detectorId": "12abc34d567e8fa901bc2d34e56789f0", "ipSetId": "0a1b2c3d",
            "name": "office-egress", "location": "https://s3.amazonaws.com/lists/ips.txt",
            "activate": activate}


def metadata(tokens: str, instance: str | None = "i-0a1b2c3d4e5f60718") -> dict[str, Any]:
    """ModifyInstanceMetadataOptions/Defaults parameters, wrapped as EC2 records them."""
    request: dict[str, Any] = {"HttpTokens": tokens, "HttpEndpoint": "enabled"}
    name = "ModifyInstanceMetadataDefaultsRequest"
    if instance:
        request["InstanceId"] = instance
        name = "ModifyInstanceMetadataOptionsRequest"
    return {name: request}


def key_policy(bypass: Any, principal: str = f"arn:aws:iam::{ACCOUNT}:role/app"
               ) -> dict[str, Any]:
    document = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": '
                f'{{"AWS": "{principal}"}}, "Action": "kms:*", "Resource": "*"}}]}}')
    return {"keyId": "0d1e2f3a", "policyName": "default", "policy": document,
            "bypassPolicyLockoutSafetyCheck": bypass}


KMS, SECRETS = "kms.amazonaws.com", "secretsmanager.amazonaws.com"
EC2, ORGS = "ec2.amazonaws.com", "organizations.amazonaws.com"
INSPECTOR, ANALYZER = "inspector2.amazonaws.com", "access-analyzer.amazonaws.com"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/db-AbCdEf"

CASES = [
    # a bucket's default encryption handed to another account's key
    ("bucket encrypted by default with another account's key",
     call("PutBucketEncryption", encryption(OUTSIDE_KEY), S3),
     [("aws.s3_ransom_encryption", "high", OUTSIDE)]),
    ("bucket encrypted with the account's own key",
     call("PutBucketEncryption", encryption(OWN_KEY), S3), []),
    ("bucket encrypted with an alias of the account",
     call("PutBucketEncryption", encryption("alias/team"), S3), []),
    ("bucket encrypted with S3-managed keys",
     call("PutBucketEncryption", encryption(None, "AES256"), S3), []),
    ("central key of the security account set as code",
     call("PutBucketEncryption", encryption(OUTSIDE_KEY), S3, userAgent=TERRAFORM), []),
    ("encryption set by CloudFormation for the caller",
     call("PutBucketEncryption", encryption(OUTSIDE_KEY), S3, **by_service(CFN)), []),
    ("the same name from another service",
     call("PutBucketEncryption", encryption(OUTSIDE_KEY), "s3-outposts.amazonaws.com"), []),
    ("refused encryption change exposed nothing",
     call("PutBucketEncryption", encryption(OUTSIDE_KEY), S3, errorCode=DENIED), []),
    # databases deleted with nothing left to restore
    ("database deleted without snapshot, backups deleted",
     call("DeleteDBInstance", deletion(True, True), RDS),
     [("aws.unrecoverable_deletion", "medium", "customers")]),
    ("database deleted without snapshot, backups left to default",
     call("DeleteDBInstance", deletion("true"), RDS, userIdentity=INSTANCE),
     [("aws.unrecoverable_deletion", "medium", "customers")]),
    ("cluster deleted without snapshot",
     call("DeleteDBCluster", deletion(True, cluster=True), RDS),
     [("aws.unrecoverable_deletion", "medium", "customers")]),
    ("database deleted with a final snapshot",
     call("DeleteDBInstance", deletion(False, True), RDS), []),
    ("database deleted without snapshot, automated backups kept",
     call("DeleteDBInstance", deletion(True, False), RDS), []),
    ("test database torn down by Terraform",
     call("DeleteDBInstance", deletion(True, True), RDS, userAgent=TERRAFORM), []),
    ("stack teardown by CloudFormation",
     call("DeleteDBInstance", deletion(True, True), RDS, **by_service(CFN)), []),
    ("developer deletes a test database in the console",
     call("DeleteDBInstance", deletion(True, True), RDS, userAgent=CONSOLE), []),
    ("administrator signed in through IAM Identity Center",
     call("DeleteDBInstance", deletion(True, True), RDS, userIdentity=SSO), []),
    ("refused deletion destroyed nothing",
     call("DeleteDBInstance", deletion(True, True), RDS, errorCode=DENIED), []),
    ("deletion of another service's database",
     call("DeleteDBInstance", deletion(True, True), "docdb-elastic.amazonaws.com"), []),
    # secrets deleted with no recovery window
    ("secret force-deleted by a script",
     call("DeleteSecret", {"secretId": SECRET, "forceDeleteWithoutRecovery": True}, SECRETS),
     [("aws.unrecoverable_deletion", "medium", "prod/db-AbCdEf")]),
    ("secret deleted with the default recovery window",
     call("DeleteSecret", {"secretId": SECRET, "recoveryWindowInDays": 7}, SECRETS), []),
    ("test secrets torn down as code",
     call("DeleteSecret", {"secretId": SECRET, "forceDeleteWithoutRecovery": True}, SECRETS,
          userAgent=TERRAFORM), []),
    ("secret removed with its CloudFormation stack",
     call("DeleteSecret", {"secretId": SECRET, "forceDeleteWithoutRecovery": True}, SECRETS,
          **by_service(CFN)), []),
    ("secret deleted by a person in the console",
     call("DeleteSecret", {"secretId": SECRET, "forceDeleteWithoutRecovery": "true"},
          SECRETS, userAgent=CONSOLE), []),
    # the metadata service opened to IMDSv1 again
    ("an instance's metadata service downgraded to IMDSv1",
     call("ModifyInstanceMetadataOptions", metadata("optional"), EC2),
     [("aws.imds_downgraded", "medium", "i-0a1b2c3d4e5f60718")]),
    ("the region's default for new instances downgraded",
     call("ModifyInstanceMetadataDefaults", metadata("optional", None), EC2,
          awsRegion="eu-west-1"),
     [("aws.imds_downgraded", "medium", "eu-west-1")]),
    ("refused downgrade is an attempt",
     call("ModifyInstanceMetadataOptions", metadata("optional"), EC2, errorCode=DENIED),
     [("aws.imds_downgraded", "low", "i-0a1b2c3d4e5f60718")]),
    ("IMDSv2 required (the hardening direction)",
     call("ModifyInstanceMetadataOptions", metadata("required"), EC2), []),
    ("legacy instance set to IMDSv1 as code",
     call("ModifyInstanceMetadataOptions", metadata("optional"), EC2, userAgent=TERRAFORM), []),
    ("legacy instance set to IMDSv1 in the console",
     call("ModifyInstanceMetadataOptions", metadata("optional"), EC2,
          userAgent="console.ec2.amazonaws.com"), []),
    ("metadata options changed by a service-linked role",
     call("ModifyInstanceMetadataOptions", metadata("optional"), EC2,
          userIdentity=role("AWSServiceRoleForAutoScaling")), []),
    # KMS key policies written past the lockout check
    ("key policy set with the lockout check bypassed",
     call("PutKeyPolicy", key_policy(True), KMS), [("aws.kms_key_loss", "medium", "0d1e2f3a")]),
    ("bypassed policy that also shares the key outside",
     call("PutKeyPolicy", key_policy(True, f"arn:aws:iam::{OUTSIDE}:root"), KMS),
     [("aws.kms_key_shared", "high", OUTSIDE), ("aws.kms_key_loss", "medium", "0d1e2f3a")]),
    ("key created with the lockout check bypassed",
     call("CreateKey", {"bypassPolicyLockoutSafetyCheck": True, "keyUsage": "ENCRYPT_DECRYPT"},
          KMS), [("aws.kms_key_loss", "medium", "(new key)")]),
    ("ordinary key policy update",
     call("PutKeyPolicy", key_policy(False), KMS), []),
    ("lockout check bypassed as code",
     call("PutKeyPolicy", key_policy(True), KMS, userAgent=TERRAFORM), []),
    # the account moved under another organisation
    ("invitation to an organisation accepted by a script",
     call("AcceptHandshake", {"handshakeId": "h-0123456789abcdef"}, ORGS),
     [("aws.leave_organization", "medium", "h-0123456789abcdef")]),
    ("administrator accepts the invitation in the console",
     call("AcceptHandshake", {"handshakeId": "h-0123456789abcdef"}, ORGS, userAgent=CONSOLE),
     []),
    ("account vending accepts it as code",
     call("AcceptHandshake", {"handshakeId": "h-0123456789abcdef"}, ORGS,
          userAgent=TERRAFORM), []),
    ("Control Tower's role accepts it",
     call("AcceptHandshake", {"handshakeId": "h-0123456789abcdef"}, ORGS,
          userIdentity=CONTROL_TOWER), []),
    # Inspector switched off, Access Analyzer findings archived
    ("Inspector switched off for instances and images",
     call("Disable", {"accountIds": [ACCOUNT], "resourceTypes": ["EC2", "ECR"]}, INSPECTOR),
     [("aws.detection_disabled", "high", "inspector")]),
    ("Inspector switched off by Security Hub's central configuration",
     call("Disable", {"resourceTypes": ["EC2"]}, INSPECTOR,
          userIdentity=role("AWSServiceRoleForSecurityHub")), []),
    ("Inspector scanning kept as code",
     call("Disable", {"resourceTypes": ["LAMBDA"]}, INSPECTOR, userAgent=TERRAFORM), []),
    ("another service's Disable",
     call("Disable", {}, "securitylake.amazonaws.com"), []),
    ("archive rule written by a script",
     call("CreateArchiveRule", {"analyzerName": "org", "ruleName": "quiet", "filter": {
         "principal.AWS": {"contains": [OUTSIDE]}}}, ANALYZER),
     [("aws.detection_disabled", "medium", "quiet")]),
    ("archive rule for a reviewed partner written in the console",
     call("CreateArchiveRule", {"analyzerName": "org", "ruleName": "partner"}, ANALYZER,
          userAgent=CONSOLE), []),
    ("archive rules kept as code",
     call("UpdateArchiveRule", {"analyzerName": "org", "ruleName": "partner"}, ANALYZER,
          userAgent=TERRAFORM), []),
    # ECS containers given the host
    ("privileged container",
     call("RegisterTaskDefinition", task({"privileged": True}), ECS),
     [("aws.privileged_task", "medium", "batch-worker")]),
    ("container given SYS_ADMIN",
     call("RegisterTaskDefinition", task({"linuxParameters": {
         "capabilities": {"add": ["NET_BIND_SERVICE", "SYS_ADMIN"]}}}), ECS),
     [("aws.privileged_task", "medium", "batch-worker")]),
    ("container mounting the host's root",
     call("RegisterTaskDefinition", task({"mountPoints": [
         {"sourceVolume": "hostfs", "containerPath": "/host"}]}, HOST_ROOT), ECS),
     [("aws.privileged_task", "medium", "batch-worker")]),
    ("refused privileged container is an attempt",
     call("RegisterTaskDefinition", task({"privileged": True}), ECS, errorCode=DENIED),
     [("aws.privileged_task", "low", "batch-worker")]),
    ("ordinary container",
     call("RegisterTaskDefinition", task({"privileged": False}), ECS), []),
    ("agent reading the Docker socket and the host's processes",
     call("RegisterTaskDefinition", task({"mountPoints": [
         {"sourceVolume": "docker", "containerPath": "/var/run/docker.sock",
          "readOnly": True}]}, DOCKER_SOCKET) | {"pidMode": "host"}, ECS), []),
    ("container given a harmless capability",
     call("RegisterTaskDefinition", task({"linuxParameters": {
         "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}}}), ECS), []),
    ("security agent given the host, deployed as code",
     call("RegisterTaskDefinition", task({"privileged": True}), ECS, userAgent=TERRAFORM),
     []),
    ("security agent given the host by a CloudFormation stack",
     call("RegisterTaskDefinition", task({"privileged": True}), ECS, userAgent=CFN), []),
    # MFA devices enrolled for someone else
    ("MFA device enrolled for another user with a key",
     call("EnableMFADevice", mfa("deploy-bot"), IAM),
     [("aws.mfa_enabled_for_other_user", "medium", "deploy-bot")]),
    ("refused enrolment is an attempt",
     call("EnableMFADevice", mfa("deploy-bot"), IAM, errorCode=DENIED),
     [("aws.mfa_enabled_for_other_user", "low", "deploy-bot")]),
    ("a user enrolling their own device",
     call("EnableMFADevice", mfa("bot"), IAM), []),
    ("help desk enrolling a device in the console",
     call("EnableMFADevice", mfa("jane"), IAM, userAgent=CONSOLE), []),
    ("administrator signed in through IAM Identity Center enrols it",
     call("EnableMFADevice", mfa("jane"), IAM, userIdentity=SSO), []),
    ("break-glass user's device enrolled as code",
     call("EnableMFADevice", mfa("break-glass"), IAM, userAgent=TERRAFORM), []),
    # audit log groups set to expire
    ("CloudTrail log group set to one day",
     call("PutRetentionPolicy", retention("aws-cloudtrail-logs-123456789012-1a2b", 1), LOGS),
     [("aws.short_log_lifecycle", "high", "aws-cloudtrail-logs-123456789012-1a2b")]),
    ("EKS control-plane logs set to three days",
     call("PutRetentionPolicy", retention("/aws/eks/prod/cluster", "3"), LOGS),
     [("aws.short_log_lifecycle", "high", "/aws/eks/prod/cluster")]),
    ("refused retention cut is an attempt",
     call("PutRetentionPolicy", retention("vpc-flow-logs", 1), LOGS, errorCode=DENIED),
     [("aws.short_log_lifecycle", "medium", "vpc-flow-logs")]),
    ("CloudTrail log group kept for a year",
     call("PutRetentionPolicy", retention("aws-cloudtrail-logs-1", 365), LOGS), []),
    ("retention that is not a number of days",
     call("PutRetentionPolicy", retention("cloudtrail", True), LOGS), []),
    ("application logs kept for a day",
     call("PutRetentionPolicy", retention("/aws/lambda/thumbnailer", 1), LOGS), []),
    ("audit log retention set as code",
     call("PutRetentionPolicy", retention("cloudtrail", 1), LOGS, userAgent=TERRAFORM), []),
    ("retention set by a service for the caller",
     call("PutRetentionPolicy", retention("cloudtrail", 1), LOGS,
          **by_service("lambda.amazonaws.com")), []),
    # GuardDuty trusted addresses, findings export
    ("GuardDuty trusted IP list changed and active",
     call("UpdateIPSet", ip_set(True), GUARDDUTY),
     [("aws.detection_disabled", "high", "office-egress")]),
    ("GuardDuty trusted IP list deactivated",
     call("UpdateIPSet", ip_set(False), GUARDDUTY), []),
    ("WAF IP set updated (the same name in another service)",
     call("UpdateIPSet", ip_set(True), WAF), []),
    ("trusted list kept as code",
     call("UpdateIPSet", ip_set(True), GUARDDUTY, userAgent=TERRAFORM), []),
    ("trusted list set by Control Tower",
     call("UpdateIPSet", ip_set(True), GUARDDUTY, userIdentity=CONTROL_TOWER), []),
    ("GuardDuty findings export deleted",
     call("DeletePublishingDestination", {"detectorId": "12abc34d",
                                          "destinationId": "dest1"}, GUARDDUTY),
     [("aws.detection_disabled", "medium", "12abc34d")]),
    ("findings export removed by GuardDuty's service-linked role",
     call("DeletePublishingDestination", {"detectorId": "12abc34d"}, GUARDDUTY,
          userIdentity=SLR), []),
]


@pytest.mark.parametrize("rec, expected", [(r, e) for _, r, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_rule_fires_on_its_evidence_only(rec: dict, expected: list) -> None:
    assert rules_of(rec) == expected


def test_every_attack_id_is_defined_in_the_catalogue() -> None:
    data = yaml.safe_load(resources.files("detector").joinpath(
        "data/sensitive_actions.yaml").read_text())
    used = {t for _, rec, _ in CASES for event in parse(rec)
            for f in event.attributes.get(ATTRIBUTE, ()) for t in f.attack}
    assert {"T1486", "T1611", "T1098.005", "T1070", "T1552.005", "T1666"} <= used
    assert used <= set(data["techniques"]), used - set(data["techniques"])


def test_mfa_rules_name_defined_techniques() -> None:
    """The MFA rules of the earlier rounds and of this one cite sub-techniques the
    catalogue now defines (an alert's technique names come from it)."""
    data = yaml.safe_load(resources.files("detector").joinpath(
        "data/sensitive_actions.yaml").read_text())
    removed = call("DeactivateMFADevice", mfa("deploy-bot"), IAM)
    attack = {t for event in parse(removed) for f in event.attributes[ATTRIBUTE]
              for t in f.attack}
    assert "T1556.006" in attack
    assert data["techniques"]["T1556.006"]["name"].endswith("Multi-Factor Authentication")
