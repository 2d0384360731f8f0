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

from detector.identity import Resolver, classify_gcp
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


@pytest.mark.shared
def test_panther_sso_roles_are_people(real_logs: Path) -> None:
    path = real_logs / "panther-analysis-tests" / "aws_cloudtrail.panther_tests.jsonl"
    events = list(read_paths([str(path)], stats=RunStats(), dead_letters=ListDeadLetters()))
    sso = {e.identity_kind for e in events if ":role/aws-reserved/sso.amazonaws.com/"
           in e.identity}
    assert sso == {"human"}
