"""Every file under ../shared/real_logs parses, every record is accounted for, and a sample
of records from several datasets gets exactly the identity and kind read off the raw file.

Records of formats we do not support (Okta, GitHub, OpenAI, Anthropic) are recognised and
*skipped* with reason ``unsupported_format``; anything unrecognisable (label files, fuzz
input) is dead-lettered as ``unknown_format``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.sources import ListDeadLetters, read_paths
from detector.stats import RunStats

pytestmark = pytest.mark.shared


def parse(*paths: Path) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = list(read_paths([str(p) for p in paths], stats=stats, dead_letters=dead))
    return events, stats, dead


def log_files(real_logs: Path) -> list[Path]:
    return sorted(p for p in real_logs.rglob("*") if p.is_file() and p.suffix != ".md"
                  and p.name not in ("LICENSE", "LICENSE.txt"))


def test_every_file_parses_and_balances(real_logs: Path) -> None:
    files = log_files(real_logs)
    assert len(files) > 100
    for path in files:
        events, stats, dead = parse(path)
        read = sum(stats.records_read.values())
        assert read >= 1, path
        assert read == len(events) + len(dead) + sum(stats.skipped.values()), path
        assert stats.balanced(), path
        assert not [d for d in dead.items if d["reason"] == "internal_error"], path
        assert all(e.kind_reason for e in events), path


def test_whole_tree_in_one_run(real_logs: Path) -> None:
    events, stats, dead = parse(real_logs)
    assert stats.balanced()
    assert stats.events["aws.cloudtrail"] > 3000
    assert {"gcp.audit", "k8s.audit", "azure.signin", "azure.activity"} <= set(stats.events)
    assert stats.skipped[("aws.cloudtrail", "digest")] == 1
    assert stats.skipped[("unknown", "unsupported_format")] > 200
    assert len(events) == sum(stats.events.values())
    assert sum(stats.events_by_kind.values()) == len(events)
    assert sum(stats.identity_resolution.values()) == len(events)


def test_invictus_identities(real_logs: Path) -> None:
    events, stats, dead = parse(real_logs / "invictus-aws-dataset")
    assert stats.records_read["aws.cloudtrail"] == 2900
    assert len(events) == 2900 and len(dead) == 0
    keys = {e.identity for e in events}
    account = "123837392027"
    assert f"arn:aws:iam::{account}:user/bert-jan" in keys
    assert f"arn:aws:iam::{account}:user/benjamin" in keys
    steal = [e for e in events
             if e.identity == f"arn:aws:iam::{account}:role/stratus-red-team-ec2-steal-"
                              "credentials-role"]
    assert steal and {e.identity_kind for e in steal} == {"workload"}
    assert {e.attributes["instance_id"] for e in steal} == {"i-0dbc91f429e48eeed"}
    # stolen instance credentials used off the instance: IMDSv1 delivery, private address
    off = [e for e in steal if e.source_ip == "192.168.10.20"]
    assert off and {e.attributes["ec2_role_delivery"] for e in off} == {"1.0"}
    rds = [e for e in events if e.identity.endswith("AWSServiceRoleForRDS")]
    assert {(e.identity, e.identity_kind) for e in rds} == {
        (f"arn:aws:iam::{account}:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS",
         "cloud_service")}
    type_less = [e for e in events if e.attributes.get("event_type") == "AwsServiceEvent"]
    assert type_less and all(e.identity.startswith("aws-service:") for e in type_less)
    failures = [e for e in events if e.outcome == "failure"]
    assert len(failures) == 300
    assert {e.error_code for e in failures} >= {"ThrottlingException", "AccessDenied"}


def test_trailscraper_plain_and_gzip_are_identical(real_logs: Path) -> None:
    base = real_logs / "trailscraper-cloudtrail" / \
        "111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json"
    plain, _, _ = parse(base)
    zipped, _, _ = parse(base.with_name(base.name + ".gz"))
    assert [e.to_dict() for e in plain] == [e.to_dict() for e in zipped]
    assert [(e.identity, e.identity_kind) for e in plain] == [
        ("arn:aws:iam::111111111111:role/someRole", "workload"),
        ("aws-service:config.amazonaws.com", "cloud_service")]
    assert plain[0].actor == "config.amazonaws.com"


def test_elastic_cloudtrail(real_logs: Path) -> None:
    events, stats, _ = parse(real_logs / "elastic-aws-cloudtrail")
    assert stats.skipped == {("aws.cloudtrail", "digest"): 1}
    [event] = events
    assert (event.identity, event.identity_kind) == ("aws-service:ec2.amazonaws.com",
                                                     "cloud_service")
    assert event.resource == "arn:aws:iam::111111111111:role/ec2-instance-role"
    assert event.target_tenant is None


def test_ocsf_cloudtrail_samples(real_logs: Path) -> None:
    folder = real_logs / "ocsf-examples-raw"
    [center] = parse(folder / "AWS__v1.5.0__CloudTrail__Authentication__authentication.raw")[0]
    assert center.identity == ("arn:aws:identitystore::123456789012:identitystore/d-9911111111"
                               "/user/e3644802-3061-7018-86c3-USERID")
    assert center.identity_kind == "human"
    [slr] = parse(folder / "AWS__v1.5.0__CloudTrail__Account_Change__account_change.raw")[0]
    assert slr.identity == "arn:aws:iam::112233445566:role/aws-service-role/Admin"
    assert (slr.identity_kind, slr.actor) == ("cloud_service", "ecs.amazonaws.com")
    [login] = parse(folder / "AWS__CloudTrail__v1.0.0__Authentication__authentication.raw")[0]
    assert login.identity == "arn:aws:iam::111122223333:user/anaya"
    assert login.identity_kind == "human"
    [eks] = parse(folder / "AWS__v1.1.0__EKS_Audit_Logs__eks.raw")[0]
    assert eks.identity == "system:node:ip-192-001-02-03.ec2.internal"
    assert eks.identity_kind == "cloud_service"
    assert eks.session == "i-12345678901"


def test_gcp_samples(real_logs: Path) -> None:
    [wif] = parse(real_logs / "elastic-gcp-audit" / "test-iamcredentials-googleapis-com.log")[0]
    assert wif.identity == ("principal://iam.googleapis.com/projects/project-id/locations/"
                            "global/workloadIdentityPools/...")
    assert (wif.identity_resolution, wif.identity_kind) == ("principal_subject", "workload")
    assert wif.attributes["delegation_chain"] == [
        "projects/-/serviceAccounts/made-up-ci-account@project-id.iam.gserviceaccount.com"]
    assert wif.time.isoformat().startswith("2024-11-19T00:49:55")
    [user] = parse(real_logs / "cloud-custodian-gcp-events" / "resourcemanager-project-create.json"
                   )[0]
    assert (user.identity, user.identity_kind) == ("alex.karpitski@gmail.com", "human")


def test_azure_signin_samples(real_logs: Path) -> None:
    folder = real_logs / "elastic-azure-signinlogs"
    managed = parse(folder / "test-managed-identity-sample.first3.log")[0]
    assert [(e.identity, e.identity_kind, e.kind_reason) for e in managed] == [
        ("9d370547-cb61-4753-be23-68534909af90", "workload", "managed identity"),
        ("9d370547-cb61-4753-be23-68534909af90", "workload", "managed identity"),
        ("2a652c71-4d7b-40e6-b12d-f45ff732d79c", "workload", "managed identity")]
    assert managed[0].time.isoformat() == "2022-01-24T04:59:49.227983+00:00"
    assert managed[0].source_ip is None
    [sp] = parse(folder / "test-service-principal.log")[0]
    assert (sp.identity, sp.kind_reason) == ("22222222-4677-43b4-a1dc-ecb3230e9350",
                                             "service principal")


def test_k8s_samples(real_logs: Path) -> None:
    folder = real_logs / "falco-k8s-audit"
    [pod] = parse(folder / "create_nginx_pod_privileged.json")[0]
    assert pod.identity == "system:serviceaccount:kube-system:replicaset-controller"
    assert pod.identity_kind == "cloud_service"
    [anon] = parse(folder / "anonymous_creates_namespace_foo.json")[0]
    assert (anon.identity, anon.identity_kind) == ("system:anonymous", "external")
    [exec_pod] = parse(folder / "exec_pod.json")[0]
    assert exec_pod.identity == "minikube-user" and exec_pod.action.startswith("k8s:pods/exec")
    lines, stats, _ = parse(folder / "create_configmap_sensitive_values.json")
    assert len(lines) == 6 and stats.records_read == {"k8s.audit": 6}
    fuzz, stats, dead = parse(folder / "fal_01_003.json")
    assert fuzz == [] and dead.reasons() == ["unknown_format"]


def test_mixed_dialects_in_one_file(real_logs: Path) -> None:
    events, stats, _ = parse(real_logs / "elastic-k8s-audit" / "test-audit.log")
    assert stats.records_read == {"k8s.audit": 5}
    assert stats.skipped == {("k8s.audit", "duplicate_stage"): 1}  # lines 2 and 3 are equal
    assert [e.identity for e in events] == [
        "system:serviceaccounts:default:default",
        "system:serviceaccount:kube-system:elastic-agent",
        "test-cluster/system:gke-master-healthcheck",
        "test-aks/aksService",
    ]
    assert events[2].identity_kind == "cloud_service" and events[2].tenant == "test-cluster"
    assert events[3].tenant == "test-aks" and events[3].identity_kind == "cloud_service"
