"""Identity kinds read off what the record shows, as rules covering a whole kind.

- IAM Identity Center creates its roles, and only its roles, under the path
  ``aws-reserved/sso.amazonaws.com/``: a role there is a person's permission set whatever
  its name (exports and test sets rename ``AWSReservedSSO_*`` roles).
- GCP workforce identity pools federate people from an outside IdP; workload identity
  pools federate workloads (CI, other clouds).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.identity import (
    CONSOLE_SIGN_IN,
    NOT_CONCLUSIVE,
    USER_NAMED_LIKE_AUTOMATION,
    Resolver,
    aws_event_kind,
    classify_gcp,
    named_like_automation,
)
from detector.sources import ListDeadLetters, read_paths
from detector.stats import RunStats


@pytest.mark.parametrize(("arn", "kind"), [
    ("arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/us-west-2/SampleRole",
     "human"),
    ("arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Ops_1a2b",
     "human"),
    ("arn:aws:iam::111122223333:role/service-role/SampleRole", "workload"),
])
def test_role_under_the_identity_center_path(arn: str, kind: str) -> None:
    ui = {"type": "AssumedRole", "arn": arn.replace(":iam::", ":sts::").replace(
        ":role/", ":assumed-role/") + "/session-1",
          "sessionContext": {"sessionIssuer": {"type": "Role", "arn": arn}}}
    principal, _ = Resolver().aws_principal(ui, "s3.amazonaws.com")
    assert (principal.identity, principal.kind) == (arn, kind)


@pytest.mark.parametrize(("subject", "kind"), [
    ("principal://iam.googleapis.com/locations/global/workforcePools/staff/subject/jane",
     "human"),
    ("principalSet://iam.googleapis.com/locations/global/workforcePools/staff/group/ops",
     "human"),
    ("principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/gh/"
     "subject/repo:org/app:ref:refs/heads/main", "workload"),
])
def test_gcp_federated_subjects(subject: str, kind: str) -> None:
    assert classify_gcp(subject)[0] == kind


@pytest.mark.parametrize(("email", "kind"), [
    ("cloud-build-robot@system.gserviceaccount.com", "cloud_service"),
    ("service-agent-manager@system.gserviceaccount.com", "cloud_service"),
    ("123-compute@developer.gserviceaccount.com", "workload"),
    ("deployer@my-project.iam.gserviceaccount.com", "workload"),
])
def test_gcp_service_accounts(email: str, kind: str) -> None:
    assert classify_gcp(email)[0] == kind


@pytest.mark.parametrize(("name", "automation"), [
    ("svc-backup", True), ("terraform", True), ("DeployRole", True), ("gitlab-runner", True),
    ("ServiceAccount1", True), ("jane.doe", False), ("Alice", False), ("admin-user", False),
    ("decidedly", False), ("kubernetes-admin", False),
])
def test_named_like_automation(name: str, automation: bool) -> None:
    assert named_like_automation(name) is automation


def iam_user(name: str) -> tuple:
    ui = {"type": "IAMUser", "arn": f"arn:aws:iam::123456789012:user/{name}",
          "accountId": "123456789012"}
    resolver = Resolver()
    return resolver.aws_principal(ui, "s3.amazonaws.com")[0], resolver


def test_iam_user_named_like_automation_is_a_workload_until_seen_in_the_console() -> None:
    principal, resolver = iam_user("svc-backup")
    assert aws_event_kind(principal, None, False, "unknown", resolver) == (
        "workload", USER_NAMED_LIKE_AUTOMATION)
    assert aws_event_kind(principal, "browser", True, "unknown", resolver) == (
        "human", CONSOLE_SIGN_IN)
    person, resolver = iam_user("jane.doe")
    assert aws_event_kind(person, None, False, "unknown", resolver) == (
        "unknown", NOT_CONCLUSIVE)


@pytest.mark.shared
def test_panther_sso_roles_are_people(real_logs: Path) -> None:
    path = real_logs / "panther-analysis-tests" / "aws_cloudtrail.panther_tests.jsonl"
    events = list(read_paths([str(path)], stats=RunStats(), dead_letters=ListDeadLetters()))
    sso = {e.identity_kind for e in events if ":role/aws-reserved/sso.amazonaws.com/"
           in e.identity}
    assert sso == {"human"}


@pytest.mark.parametrize(("agent", "family"), [
    ("Boto3/1.38.0 md/Botocore#1.38.0 ua/2.1 os/linux lang/python#3.12 strands-agents",
     "strands"),
    ("Boto3/1.38.0 ua/2.1 awslabs/mcp/cloudwatch-mcp-server/0.0.5", "mcp"),
    ("Boto3/1.38.0 ua/2.1 os/linux", "boto3"),
])
def test_agent_framework_markers_in_sdk_user_agents(agent: str, family: str) -> None:
    from detector.identity import AI_FAMILY_NAMES
    from detector.sources.common import user_agent

    assert user_agent(agent)[1] == family
    assert (family in AI_FAMILY_NAMES) is (family != "boto3")
