"""AWS technique checks: each rule fires on the request that shows it and stays quiet on
its nearest benign neighbour; odd shapes never raise; the parser only runs them for the
event names they know."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
import yaml

from detector.sources import ListDeadLetters, Parser
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, Finding, as_findings, as_tallies
from detector.techniques.aws import CHECKS, findings
from tests.detector.sources_helpers import record

ACCOUNT = "123456789012"
OUTSIDE = "210987654321"


def parse(rec: dict[str, Any]) -> list:
    """The events the real parser makes of one record."""
    parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
    return parser.feed(orjson.dumps(rec) + b"\n", "test") + parser.finish()


def rules_of(rec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(rule, severity, value) of every finding the parser attaches to ``rec``."""
    events = parse(rec)
    assert len(events) == 1
    found = as_findings(events[0].attributes.get(ATTRIBUTE))
    return [(f.rule, f.severity, f.value) for f in found]


def call(name: str, params: Any, source: str = "ec2.amazonaws.com", **extra: Any) -> dict:
    return record(eventName=name, eventSource=source, requestParameters=params,
                  recipientAccountId=ACCOUNT, **extra)


def policy(principal: Any, condition: dict | None = None, effect: str = "Allow") -> str:
    statement: dict[str, Any] = {"Effect": effect, "Principal": principal, "Action": "*",
                                 "Resource": "*"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


SNAPSHOT = "ModifySnapshotAttribute"
ORG_ONLY = {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}

# (name, record, expected findings) ; each positive is followed by its near miss
CASES = [
    ("snapshot public",
     call(SNAPSHOT, {"snapshotId": "snap-1", "createVolumePermission": {
         "add": {"items": [{"group": "all"}]}}}),
     [("aws.ebs_snapshot_shared", "critical", "public")]),
    ("snapshot other account",
     call(SNAPSHOT, {"snapshotId": "snap-1", "createVolumePermission": {
         "add": {"items": [{"userId": OUTSIDE}]}}}),
     [("aws.ebs_snapshot_shared", "high", OUTSIDE)]),
    ("snapshot permission removed",
     call(SNAPSHOT, {"snapshotId": "snap-1", "createVolumePermission": {
         "remove": {"items": [{"userId": OUTSIDE}]}}}), []),
    ("snapshot shared with its own account",
     call(SNAPSHOT, {"createVolumePermission": {"add": {"items": [{"userId": ACCOUNT}]}}}),
     []),
    ("image public",
     call("ModifyImageAttribute", {"imageId": "ami-1", "launchPermission": {
         "add": {"items": [{"group": "all"}]}}}),
     [("aws.ami_shared", "critical", "public")]),
    ("image user id that is no account",
     call("ModifyImageAttribute", {"launchPermission": {"add": {"items": [{"userId": "bob"}]}}}),
     []),
    ("db snapshot other account",
     call("ModifyDBSnapshotAttribute", {"dBSnapshotIdentifier": "db1",
                                        "attributeName": "restore",
                                        "valuesToAdd": [OUTSIDE]}, "rds.amazonaws.com"),
     [("aws.rds_snapshot_shared", "high", OUTSIDE)]),
    ("db snapshot sharing removed",
     call("ModifyDBSnapshotAttribute", {"attributeName": "restore",
                                        "valuesToRemove": [OUTSIDE]}, "rds.amazonaws.com"),
     []),
    ("bucket policy public",
     call("PutBucketPolicy", {"bucketName": "b", "bucketPolicy": json.loads(
         policy({"AWS": "*"}))}, "s3.amazonaws.com"),
     [("aws.s3_bucket_shared", "critical", "public")]),
    ("bucket policy public but pinned to the organisation",
     call("PutBucketPolicy", {"bucketName": "b", "bucketPolicy": policy("*", ORG_ONLY)},
          "s3.amazonaws.com"), []),
    ("bucket policy for a service",
     call("PutBucketPolicy", {"bucketName": "b", "bucketPolicy": policy(
         {"Service": "cloudtrail.amazonaws.com"})}, "s3.amazonaws.com"), []),
    ("bucket policy other account",
     call("PutBucketPolicy", {"bucketName": "b", "bucketPolicy": policy(
         {"AWS": f"arn:aws:iam::{OUTSIDE}:root"})}, "s3.amazonaws.com"),
     [("aws.s3_bucket_shared", "high", OUTSIDE)]),
    ("bucket policy deny everyone",
     call("PutBucketPolicy", {"bucketPolicy": policy("*", effect="Deny")},
          "s3.amazonaws.com"), []),
    ("bucket acl public-read",
     call("PutBucketAcl", {"bucketName": "b", "x-amz-acl": ["public-read"]},
          "s3.amazonaws.com"),
     [("aws.s3_bucket_shared", "critical", "public")]),
    ("bucket acl private",
     call("PutBucketAcl", {"bucketName": "b", "x-amz-acl": ["private"]}, "s3.amazonaws.com"),
     []),
    ("object acl grant to AllUsers",
     call("PutObjectAcl", {"bucketName": "b", "key": "k", "AccessControlPolicy": {
         "AccessControlList": {"Grant": [{"Grantee": {
             "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}}]}}},
          "s3.amazonaws.com"),
     [("aws.s3_bucket_shared", "critical", "public")]),
    ("lambda invoke by anyone",
     call("AddPermission20150331v2", {"functionName": "f", "principal": "*"},
          "lambda.amazonaws.com"),
     [("aws.lambda_shared", "high", "public")]),
    ("lambda invoke by s3 of this account",
     call("AddPermission20150331v2", {"functionName": "f", "principal": "s3.amazonaws.com",
                                      "sourceAccount": ACCOUNT}, "lambda.amazonaws.com"),
     []),
    ("role trusts another account",
     call("UpdateAssumeRolePolicy", {"roleName": "r", "policyDocument": policy(
         {"AWS": f"arn:aws:iam::{OUTSIDE}:root"})}, "iam.amazonaws.com"),
     [("aws.role_trust_external", "high", OUTSIDE)]),
    ("role trusts another account, written by terraform",
     call("UpdateAssumeRolePolicy", {"roleName": "r", "policyDocument": policy(
         {"AWS": f"arn:aws:iam::{OUTSIDE}:root"})}, "iam.amazonaws.com",
          userAgent="APN/1.0 HashiCorp/1.0 Terraform/1.5.0"), []),
    ("bucket made public by terraform still counts",
     call("PutBucketPolicy", {"bucketName": "b", "bucketPolicy": policy("*")},
          "s3.amazonaws.com", userAgent="APN/1.0 HashiCorp/1.0 Terraform/1.5.0"),
     [("aws.s3_bucket_shared", "critical", "public")]),
    ("role trusts another account with an external id",
     call("CreateRole", {"roleName": "r", "assumeRolePolicyDocument": policy(
         {"AWS": OUTSIDE}, {"StringEquals": {"sts:ExternalId": "x"}})},
          "iam.amazonaws.com"),
     [("aws.role_trust_external", "medium", OUTSIDE)]),
    ("role trusts its own account and a service",
     call("CreateRole", {"roleName": "r", "assumeRolePolicyDocument": policy(
         {"AWS": ACCOUNT, "Service": "ec2.amazonaws.com"})}, "iam.amazonaws.com"), []),
    ("kms key policy public",
     call("PutKeyPolicy", {"keyId": "k", "policy": policy("*")}, "kms.amazonaws.com"),
     [("aws.kms_key_shared", "critical", "public")]),
    ("kms grant to another account",
     call("CreateGrant", {"keyId": "k", "granteePrincipal":
                          f"arn:aws:iam::{OUTSIDE}:role/x"}, "kms.amazonaws.com"),
     [("aws.kms_key_shared", "high", OUTSIDE)]),
    ("license manager grant is not kms",
     call("CreateGrant", {"granteePrincipal": f"arn:aws:iam::{OUTSIDE}:role/x"},
          "license-manager.amazonaws.com"), []),
    ("ecr repository public",
     call("SetRepositoryPolicy", {"repositoryName": "r", "policyText": policy("*")},
          "ecr.amazonaws.com"),
     [("aws.ecr_repository_shared", "critical", "public")]),
    ("secret public",
     call("PutResourcePolicy", {"secretId": "s", "resourcePolicy": policy("*")},
          "secretsmanager.amazonaws.com"),
     [("aws.secret_shared", "critical", "public")]),
    ("secret policy pinned to a vpc endpoint",
     call("PutResourcePolicy", {"secretId": "s", "resourcePolicy": policy(
         "*", {"StringEquals": {"aws:SourceVpce": "vpce-1"}})},
          "secretsmanager.amazonaws.com"), []),
    ("queue public",
     call("SetQueueAttributes", {"queueUrl": "https://sqs/1/q", "attributes": {
         "Policy": policy("*")}}, "sqs.amazonaws.com"),
     [("aws.queue_topic_shared", "high", "public")]),
    ("ssh open to the internet",
     call("AuthorizeSecurityGroupIngress", {"groupId": "sg-1", "ipPermissions": {"items": [
         {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
          "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}),
     [("aws.security_group_open", "high", "sg-1:22-22")]),
    ("all ports open over ipv6 (flat form)",
     call("AuthorizeSecurityGroupIngress", {"groupId": "sg-1", "ipProtocol": "-1",
                                            "cidrIpv6": "::/0"}),
     [("aws.security_group_open", "high", "sg-1:0-65535")]),
    ("https open to the internet",
     call("AuthorizeSecurityGroupIngress", {"groupId": "sg-1", "ipPermissions": {"items": [
         {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
          "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}), []),
    ("ssh open to one address",
     call("AuthorizeSecurityGroupIngress", {"groupId": "sg-1", "ipPermissions": {"items": [
         {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
          "ipRanges": {"items": [{"cidrIp": "198.51.100.7/32"}]}}]}}), []),
    ("database made public",
     call("ModifyDBInstance", {"dBInstanceIdentifier": "db", "publiclyAccessible": True},
          "rds.amazonaws.com"),
     [("aws.rds_public", "high", "db")]),
    ("database made private",
     call("ModifyDBInstance", {"dBInstanceIdentifier": "db", "publiclyAccessible": False},
          "rds.amazonaws.com"), []),
    ("access key for another user",
     call("CreateAccessKey", {"userName": "victim"}, "iam.amazonaws.com"),
     [("aws.access_key_for_other_user", "medium", "victim")]),
    ("access key for oneself",
     call("CreateAccessKey", {"userName": "bot"}, "iam.amazonaws.com",
          userIdentity={"type": "IAMUser", "accountId": ACCOUNT, "userName": "bot",
                        "arn": f"arn:aws:iam::{ACCOUNT}:user/bot"}), []),
    ("access key for another user by terraform",
     call("CreateAccessKey", {"userName": "victim"}, "iam.amazonaws.com",
          userAgent="APN/1.0 HashiCorp/1.0 Terraform/1.5.0"), []),
    ("access key for another user by an SSO administrator",
     call("CreateAccessKey", {"userName": "svc"}, "iam.amazonaws.com", userIdentity={
         "type": "AssumedRole", "accountId": ACCOUNT,
         "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Admin_1/ann"}), []),
    ("console password for another user",
     call("CreateLoginProfile", {"userName": "victim", "passwordResetRequired": False},
          "iam.amazonaws.com"),
     [("aws.login_profile_for_other_user", "medium", "victim")]),
    ("administrator's password reset",
     call("UpdateLoginProfile", {"userName": "victim", "passwordResetRequired": True},
          "iam.amazonaws.com"), []),
    ("AdministratorAccess attached",
     call("AttachUserPolicy", {"userName": "u", "policyArn":
                               "arn:aws:iam::aws:policy/AdministratorAccess"},
          "iam.amazonaws.com"),
     [("aws.admin_policy_granted", "high", "user u")]),
    ("ReadOnlyAccess attached",
     call("AttachRolePolicy", {"roleName": "r", "policyArn":
                               "arn:aws:iam::aws:policy/ReadOnlyAccess"},
          "iam.amazonaws.com"), []),
    ("inline policy of every action on every resource",
     call("PutRolePolicy", {"roleName": "r", "policyDocument": json.dumps(
         {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})},
          "iam.amazonaws.com"),
     [("aws.admin_policy_granted", "high", "role r")]),
    ("inline policy of every read",
     call("PutRolePolicy", {"roleName": "r", "policyDocument": json.dumps(
         {"Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]})},
          "iam.amazonaws.com"), []),
    ("admin policy version made default",
     call("CreatePolicyVersion", {"policyArn": "arn:p", "setAsDefault": True,
                                  "policyDocument": json.dumps({"Statement": [
                                      {"Effect": "Allow", "Action": ["*"],
                                       "Resource": ["*"]}]})}, "iam.amazonaws.com"),
     [("aws.admin_policy_granted", "high", "arn:p")]),
    ("admin policy version not made default",
     call("CreatePolicyVersion", {"policyArn": "arn:p", "setAsDefault": False,
                                  "policyDocument": json.dumps({"Statement": [
                                      {"Effect": "Allow", "Action": "*",
                                       "Resource": "*"}]})}, "iam.amazonaws.com"), []),
    ("roles anywhere trust anchor",
     call("CreateTrustAnchor", {"name": "anchor", "source": {"sourceType": "CERTIFICATE_BUNDLE"}},
          "rolesanywhere.amazonaws.com"),
     [("aws.roles_anywhere_trust_anchor", "high", "anchor")]),
    ("event selectors drop management events",
     call("PutEventSelectors", {"trailName": "t", "eventSelectors": [
         {"readWriteType": "ReadOnly", "includeManagementEvents": False}]},
          "cloudtrail.amazonaws.com"),
     [("aws.trail_selectors_reduced", "critical", "t")]),
    ("event selectors keep management events",
     call("PutEventSelectors", {"trailName": "t", "eventSelectors": [
         {"readWriteType": "All", "includeManagementEvents": True}]},
          "cloudtrail.amazonaws.com"), []),
    ("lifecycle of one day on a trail bucket",
     call("PutBucketLifecycle", {"bucketName": "org-cloudtrail-logs", "LifecycleConfiguration": {
         "Rule": {"Status": "Enabled", "Expiration": {"Days": 1}}}}, "s3.amazonaws.com"),
     [("aws.short_log_lifecycle", "high", "org-cloudtrail-logs")]),
    ("lifecycle of three days on a scratch bucket",
     call("PutBucketLifecycle", {"bucketName": "tmp", "LifecycleConfiguration": {
         "Rule": [{"Status": "Enabled", "Expiration": {"Days": "3"}}]}}, "s3.amazonaws.com"),
     [("aws.short_log_lifecycle", "medium", "tmp")]),
    ("lifecycle of a year",
     call("PutBucketLifecycle", {"bucketName": "org-cloudtrail-logs", "LifecycleConfiguration": {
         "Rule": {"Status": "Enabled", "Expiration": {"Days": 365}}}}, "s3.amazonaws.com"), []),
    ("disabled one-day lifecycle",
     call("PutBucketLifecycle", {"bucketName": "b", "LifecycleConfiguration": {
         "Rule": {"Status": "Disabled", "Expiration": {"Days": 1}}}}, "s3.amazonaws.com"), []),
    ("flow logs deleted",
     call("DeleteFlowLogs", {"DeleteFlowLogsRequest": {"FlowLogId": {"content": "fl-1"}}}),
     [("aws.flow_logs_deleted", "medium", "fl-1")]),
    ("flow logs deleted by terraform destroy",
     call("DeleteFlowLogs", {"flowLogIds": ["fl-1"]}, userAgent="Terraform/1.5.0"), []),
    ("guardduty disabled",
     call("UpdateDetector", {"detectorId": "d", "enable": False}, "guardduty.amazonaws.com"),
     [("aws.detection_disabled", "critical", "d")]),
    ("guardduty setting changed, still enabled",
     call("UpdateDetector", {"detectorId": "d", "enable": True}, "guardduty.amazonaws.com"),
     []),
    ("detective's DeleteDetector is not guardduty",
     call("DeleteDetector", {"detectorId": "d"}, "detective.amazonaws.com"), []),
    ("config recorder stopped",
     call("StopConfigurationRecorder", {"configurationRecorderName": "default"},
          "config.amazonaws.com"),
     [("aws.detection_disabled", "critical", "default")]),
    ("leave organisation refused still counts",
     call("LeaveOrganization", None, "organizations.amazonaws.com", errorCode="AccessDenied"),
     [("aws.leave_organization", "medium", ACCOUNT)]),
    ("dns query logging deleted",
     call("DeleteResolverQueryLogConfig", {"resolverQueryLogConfigId": "rqlc-1"},
          "route53resolver.amazonaws.com"),
     [("aws.dns_logs_deleted", "medium", "rqlc-1")]),
    ("failed public snapshot changes nothing",
     call(SNAPSHOT, {"createVolumePermission": {"add": {"items": [{"group": "all"}]}}},
          errorCode="UnauthorizedOperation"), []),
]


def console(mfa: str, kind: str = "IAMUser", outcome: str = "Success", **extra: Any) -> dict:
    identity = {"type": kind, "accountId": ACCOUNT, "userName": "ann",
                "arn": f"arn:aws:iam::{ACCOUNT}:user/ann"}
    if kind == "Root":
        identity["arn"] = f"arn:aws:iam::{ACCOUNT}:root"
    return record(eventName="ConsoleLogin", eventSource="signin.amazonaws.com",
                  eventType="AwsConsoleSignIn", userIdentity=identity,
                  additionalEventData={"MFAUsed": mfa, **extra},
                  responseElements={"ConsoleLogin": outcome}, requestParameters=None)


CASES += [
    ("console sign-in without mfa", console("No"),
     [("aws.console_login_without_mfa", "low", "ann")]),
    ("console sign-in with mfa", console("Yes"), []),
    ("saml console sign-in", console("No", SamlProviderArn="arn:saml"), []),
    ("failed console sign-in", console("No", outcome="Failure"), []),
    ("root console sign-in", console("No", kind="Root"),
     [("aws.root_activity", "medium", "root")]),
    ("root changes something",
     record(eventName="PutBucketVersioning", eventSource="s3.amazonaws.com", readOnly=False,
            userIdentity={"type": "Root", "accountId": ACCOUNT,
                          "arn": f"arn:aws:iam::{ACCOUNT}:root"}),
     [("aws.root_activity", "medium", "root")]),
    ("root only reads",
     record(eventName="ListAccessKeys", eventSource="iam.amazonaws.com", readOnly=True,
            userIdentity={"type": "Root", "accountId": ACCOUNT,
                          "arn": f"arn:aws:iam::{ACCOUNT}:root"}), []),
]


TERRAFORM = "APN/1.0 HashiCorp/1.0 Terraform/1.5.0"
CI_ROLE = {"type": "AssumedRole", "accountId": ACCOUNT,
           "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/gha-deploy/gh-run-1",
           "accessKeyId": "ASIAEXAMPLE0000001"}
DENIED = "AccessDenied"
OFF = {"trailName": "main", "eventSelectors": [{"readWriteType": "All",
                                                "includeManagementEvents": False}]}

# Refused attempts: defense evasion and persistence are findings one level lower; other
# failures (not found, invalid) and infrastructure-as-code runs are not.
CASES += [
    ("stop logging refused",
     call("StopLogging", {"name": "main"}, "cloudtrail.amazonaws.com", errorCode=DENIED),
     [("aws.tampering_attempt", "high", "cloudtrail:StopLogging")]),
    ("stop logging of a missing trail",
     call("StopLogging", {"name": "gone"}, "cloudtrail.amazonaws.com",
          errorCode="TrailNotFoundException"), []),
    ("stop logging refused to terraform",
     call("StopLogging", {"name": "main"}, "cloudtrail.amazonaws.com", errorCode=DENIED,
          userAgent=TERRAFORM), []),
    ("delete log group refused",
     call("DeleteLogGroup", {"logGroupName": "audit"}, "logs.amazonaws.com",
          errorCode="AccessDeniedException"),
     [("aws.tampering_attempt", "high", "logs:DeleteLogGroup")]),
    ("bucket logging turned off, refused",
     call("PutBucketLogging", {"bucketName": "b", "BucketLoggingStatus": {}},
          "s3.amazonaws.com", errorCode=DENIED),
     [("aws.logging_disabled", "medium", "b")]),
    ("bucket logging turned on, refused",
     call("PutBucketLogging", {"bucketName": "b", "BucketLoggingStatus": {
         "LoggingEnabled": {"TargetBucket": "logs"}}}, "s3.amazonaws.com", errorCode=DENIED),
     []),
    ("guardduty enabled, refused",
     call("UpdateDetector", {"detectorId": "d1", "enable": True}, "guardduty.amazonaws.com",
          errorCode=DENIED), []),
    ("guardduty deleted, refused",
     call("DeleteDetector", {"detectorId": "d1"}, "guardduty.amazonaws.com",
          errorCode=DENIED),
     [("aws.detection_disabled", "high", "d1")]),
    ("event selectors dropped, refused",
     call("PutEventSelectors", OFF, "cloudtrail.amazonaws.com", errorCode=DENIED),
     [("aws.trail_selectors_reduced", "high", "main")]),
    ("flow logs deleted, refused",
     call("DeleteFlowLogs", {"flowLogIds": ["fl-1"]}, errorCode="Client.UnauthorizedOperation"),
     [("aws.flow_logs_deleted", "low", "fl-1")]),
    ("access key for another user, refused",
     call("CreateAccessKey", {"userName": "victim"}, "iam.amazonaws.com", errorCode=DENIED),
     [("aws.access_key_for_other_user", "low", "victim")]),
    ("access key for a missing user",
     call("CreateAccessKey", {"userName": "victim"}, "iam.amazonaws.com",
          errorCode="NoSuchEntityException"), []),
    ("bucket made public, refused: exposure is judged on success only",
     call("PutBucketAcl", {"bucketName": "b", "x-amz-acl": ["public-read"]},
          "s3.amazonaws.com", errorCode=DENIED), []),
]

# Changing what runs: function code and layers, boot scripts, unusual launches.
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:api"
CASES += [
    ("function code replaced with a user's key",
     call("UpdateFunctionCode20150331v2", {"functionName": FUNCTION, "s3Bucket": "x"},
          "lambda.amazonaws.com"),
     [("aws.lambda_code_replaced", "medium", "api")]),
    ("function code deployed by a CI role",
     call("UpdateFunctionCode20150331v2", {"functionName": "api"}, "lambda.amazonaws.com",
          userIdentity=CI_ROLE), []),
    ("function code deployed by terraform with a user's key",
     call("UpdateFunctionCode20150331v2", {"functionName": "api"}, "lambda.amazonaws.com",
          userAgent=TERRAFORM), []),
    ("function code edited in the console",
     call("UpdateFunctionCode20150331v2", {"functionName": "api"}, "lambda.amazonaws.com",
          userAgent="console.amazonaws.com"), []),
    ("layer of another account added",
     call("UpdateFunctionConfiguration20150331v2", {"functionName": "api", "layers": [
         f"arn:aws:lambda:us-east-1:{OUTSIDE}:layer:ext:1"]}, "lambda.amazonaws.com",
          userIdentity=CI_ROLE),
     [("aws.lambda_code_replaced", "medium", "api")]),
    ("own layer added outside infrastructure-as-code",
     call("UpdateFunctionConfiguration20150331v2", {"functionName": "api", "layers": [
         f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:ext:1"]}, "lambda.amazonaws.com"),
     [("aws.lambda_code_replaced", "low", "api")]),
    ("configuration without layers",
     call("UpdateFunctionConfiguration20150331v2", {"functionName": "api", "timeout": 30},
          "lambda.amazonaws.com"), []),
    ("layer of another account added by terraform",
     call("UpdateFunctionConfiguration20150331v2", {"functionName": "api", "layers": [
         f"arn:aws:lambda:us-east-1:{OUTSIDE}:layer:ext:1"]}, "lambda.amazonaws.com",
          userAgent=TERRAFORM), []),
    ("layer made public",
     call("AddLayerVersionPermission20181031", {"layerName": "ext", "versionNumber": 1,
                                               "principal": "*", "action":
                                               "lambda:GetLayerVersion"},
          "lambda.amazonaws.com"),
     [("aws.lambda_shared", "high", "public")]),
    ("layer shared within the organisation",
     call("AddLayerVersionPermission20181031", {"layerName": "ext", "versionNumber": 1,
                                               "principal": "*", "organizationId": "o-1"},
          "lambda.amazonaws.com"), []),
    ("instance user data replaced",
     call("ModifyInstanceAttribute", {"instanceId": "i-1", "userData": "<sensitiveDataRemoved>"},
          userIdentity=CI_ROLE),
     [("aws.instance_user_data_modified", "medium", "i-1")]),
    ("instance type changed",
     call("ModifyInstanceAttribute", {"instanceId": "i-1", "instanceType": {"value": "m5.large"}}),
     []),
    ("user data replaced by terraform",
     call("ModifyInstanceAttribute", {"instanceId": "i-1", "userData": "x"},
          userAgent=TERRAFORM), []),
    ("gpu instances launched",
     call("RunInstances", {"instanceType": "p3.8xlarge", "instancesSet": {"items": [
         {"imageId": "ami-1", "minCount": 1, "maxCount": 2}]}}),
     [("aws.unusual_instances", "medium", "p3.8xlarge")]),
    ("one small instance launched",
     call("RunInstances", {"instanceType": "t3.micro", "instancesSet": {"items": [
         {"imageId": "ami-1", "minCount": 1, "maxCount": 1}]}}), []),
    ("many instances in one request",
     call("RunInstances", {"instanceType": {"value": "c5.large"}, "instancesSet": {"items": [
         {"imageId": "ami-1", "minCount": 20, "maxCount": 20}]}}),
     [("aws.unusual_instances", "medium", "c5.large")]),
    ("many instances launched by a scaling service",
     call("RunInstances", {"instanceType": "c5.large", "instancesSet": {"items": [
         {"imageId": "ami-1", "minCount": 20, "maxCount": 20}]}},
          sourceIPAddress="autoscaling.amazonaws.com"), []),
    ("gpu launch over quota is an attempt",
     call("RunInstances", {"instanceType": "g5.xlarge", "instancesSet": {"items": [
         {"imageId": "ami-1", "minCount": 1, "maxCount": 10}]}},
          errorCode="Client.VcpuLimitExceeded"),
     [("aws.unusual_instances", "low", "g5.xlarge")]),
    ("gpu launch as a dry run",
     call("RunInstances", {"instanceType": "g5.xlarge"}, errorCode="Client.DryRunOperation"),
     []),
    ("gpu instances launched by terraform",
     call("RunInstances", {"instanceType": "p4d.24xlarge"}, userAgent=TERRAFORM), []),
]


@pytest.mark.parametrize("rec, expected", [(r, e) for _, r, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_rule_fires_on_its_evidence_only(rec: dict, expected: list) -> None:
    assert rules_of(rec) == expected


def test_every_rule_of_checks_has_a_case() -> None:
    names = {rec["eventName"] for _, rec, _ in CASES}
    fired = {rule for _, _, expected in CASES for rule, _, _ in expected}
    assert {"ModifySnapshotAttribute", "PutBucketPolicy", "ConsoleLogin"} <= names
    assert len(fired) >= 24


ODD_PARAMS = [None, "", "not json", "{\"a\": [1", 7, [], [1, "x"], {"items": None},
              {"Statement": "x"}, {"policyDocument": 3, "eventSelectors": "x",
                                   "createVolumePermission": {"add": "all"},
                                   "LifecycleConfiguration": {"Rule": [None, 3]},
                                   "ipPermissions": {"items": [None, {"fromPort": "x"}]},
                                   "bucketPolicy": {"Statement": [None, {"Effect": "Allow",
                                                                         "Principal": 5}]}}]


@pytest.mark.parametrize("params", ODD_PARAMS, ids=range(len(ODD_PARAMS)))
def test_odd_parameters_never_raise_nor_fire(params: Any) -> None:
    for name, check in CHECKS.items():
        rec = call(name, params, userIdentity={"type": "AssumedRole", "accountId": ACCOUNT,
                                               "arn": f"arn:aws:sts::{ACCOUNT}:x/y"})
        found = findings(rec, check, account=ACCOUNT, family="boto3")
        # with no readable parameters only the parameter-free rules may speak
        assert {f.rule for f in found} <= {"aws.security_hub", "aws.leave_organization",
                                           "aws.detection_disabled", "aws.dns_logs_deleted",
                                           "aws.roles_anywhere_trust_anchor",
                                           "aws.flow_logs_deleted",
                                           "aws.instance_password_burst",
                                           "aws.data_protection_removed",
                                           "aws.serial_console_enabled"}, (name, params)


def test_a_raising_check_gives_no_finding() -> None:
    def broken(rec: dict, caller: Any) -> list:
        raise RuntimeError("boom")

    assert findings(call(SNAPSHOT, {}), broken, account=ACCOUNT, family=None) == []


def test_unknown_event_names_get_no_findings_attribute() -> None:
    events = parse(record(eventName="GetObject", eventSource="s3.amazonaws.com"))
    assert ATTRIBUTE not in events[0].attributes


def test_findings_survive_the_wire_as_dicts() -> None:
    finding = Finding("aws.x", "high", ("T1537",), "sentence", "v")
    wire = orjson.loads(orjson.dumps([finding, {"rule": "bad"}, 3]))
    assert as_findings(wire) == [finding]
    assert as_findings("junk") == []


def test_every_attack_id_is_defined_in_the_catalogue() -> None:
    from importlib import resources

    data = yaml.safe_load(resources.files("detector").joinpath(
        "data/sensitive_actions.yaml").read_text())
    defined = set(data["techniques"])
    used = set()
    for _, rec, expected in CASES:
        for event in parse(rec):
            used.update(t for f in event.attributes.get(ATTRIBUTE, ()) for t in f.attack)
    assert used and used <= defined, used - defined


def tallies_of(rec: dict[str, Any]) -> list[tuple[str, tuple[str, ...], bool]]:
    events = parse(rec)
    return [(t.rule, t.values, t.calls) for t in as_tallies(events[0].attributes.get(ATTRIBUTE))]


TALLY_CASES = [
    ("secret read", call("GetSecretValue", {"secretId": "db"}, "secretsmanager.amazonaws.com"),
     [("aws.secrets_burst", ("db",), False)]),
    ("secret read by terraform refresh",
     call("GetSecretValue", {"secretId": "db"}, "secretsmanager.amazonaws.com",
          userAgent="APN/1.0 HashiCorp/1.0 Terraform/1.5.0"), []),
    ("parameters decrypted",
     call("GetParameters", {"names": ["a", "b"], "withDecryption": True}, "ssm.amazonaws.com"),
     [("aws.secrets_burst", ("a", "b"), False)]),
    ("plain parameter read", call("GetParameter", {"name": "a"}, "ssm.amazonaws.com"), []),
    ("password data refused",
     call("GetPasswordData", {"instanceId": "i-1"}, errorCode="Client.UnauthorizedOperation"),
     [("aws.instance_password_burst", ("i-1",), True)]),
    ("user data read",
     call("DescribeInstanceAttribute", {"instanceId": "i-1", "attribute": "userData"}),
     [("aws.user_data_burst", ("i-1",), True)]),
    ("other instance attribute",
     call("DescribeInstanceAttribute", {"instanceId": "i-1", "attribute": "instanceType"}), []),
    ("any refused request counts toward probing",
     call("ListUsers", None, "iam.amazonaws.com", errorCode="AccessDenied"),
     [("aws.permission_probing", ("iam:ListUsers",), False)]),
    ("a refused secret read counts as probing, not as a secret read",
     call("GetSecretValue", {"secretId": "db"}, "secretsmanager.amazonaws.com",
          errorCode="AccessDeniedException"),
     [("aws.permission_probing", ("secretsmanager:GetSecretValue",), False)]),
    ("refusals of a console page are not probing",
     call("ListUsers", None, "iam.amazonaws.com", errorCode="AccessDenied",
          userAgent="console.amazonaws.com"), []),
    ("refusals of an infrastructure-as-code run are not probing",
     call("ListUsers", None, "iam.amazonaws.com", errorCode="AccessDenied",
          userAgent=TERRAFORM), []),
    ("a missing resource is not probing",
     call("GetBucketPolicy", None, "s3.amazonaws.com", errorCode="NoSuchBucketPolicy"), []),
]


@pytest.mark.parametrize("rec, expected", [(r, e) for _, r, e in TALLY_CASES],
                         ids=[name for name, _, _ in TALLY_CASES])
def test_burst_reads_are_tallied(rec: dict, expected: list) -> None:
    assert tallies_of(rec) == expected
    assert rules_of(rec) == []  # one read alone is no finding
