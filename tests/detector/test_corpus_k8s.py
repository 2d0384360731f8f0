"""Kubernetes users as real clusters and exports name them.

Kubernetes manages service accounts for workloads and leaves "normal users" (client
certificates, OIDC, cloud IAM mappings) to an outside service for people, so
``kubernetes-admin``, ``minikube-user`` and AKS's ``masterclient`` are people, while
control-plane certificate users (``kubelet-*``, bootstrap tokens) are the platform. A
Panther data-lake export keeps the event time in ``p_event_time`` and renames
``user.extra`` keys (``authentication_kubernetes_io_slash_pod-name``).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detector.identity import classify_k8s
from detector.sources import ListDeadLetters, parse_payload, read_paths
from detector.stats import RunStats


@pytest.mark.parametrize(("username", "kind"), [
    ("kubernetes-admin", "human"),
    ("minikube-user", "human"),
    ("masterclient", "human"),
    ("jane.doe", "human"),
    ("oidc:jane@example.org", "human"),
    ("gitlab-runner", "workload"),
    ("ci-deployer", "workload"),
    ("kubelet-nodepool-bootstrap", "cloud_service"),
    ("kube-apiserver-kubelet-client", "cloud_service"),
    ("8f2c1d3e-1111-2222-3333-444455556666", "unknown"),
    ("system:serviceaccount:ci:deployer", "workload"),
    ("system:anonymous", "external"),
])
def test_kubernetes_user_kinds(username: str, kind: str) -> None:
    assert classify_k8s(username)[0] == kind


def audit(**extra: object) -> dict:
    record = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
              "auditID": "a-1", "stage": "ResponseComplete", "verb": "get",
              "requestURI": "/api/v1/namespaces/kube-system/configmaps/coredns",
              "user": {"username": "system:serviceaccount:kube-system:coredns"},
              "objectRef": {"resource": "configmaps", "namespace": "kube-system",
                            "name": "coredns", "apiVersion": "v1"},
              "responseStatus": {"code": 200}, "sourceIPs": ["10.0.0.5"]}
    record.update(extra)
    return record


def parse(record: dict) -> tuple[list, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(record), origin="t", stats=stats, dead_letters=dead)
    assert stats.balanced()
    return events, dead


def test_panther_event_time_is_the_time_of_a_row_without_timestamps() -> None:
    [event], _ = parse(audit(p_event_time="2022-11-29 00:09:04.38",
                             p_log_type="Amazon.EKS.Audit"))
    assert event.time.isoformat() == "2022-11-29T00:09:04.380000+00:00"


def test_without_any_time_the_row_is_still_dead() -> None:
    events, dead = parse(audit(p_log_type="Amazon.EKS.Audit"))
    assert events == [] and dead.reasons() == ["missing_time"]


def test_panther_renamed_extra_keys_give_session_and_credential() -> None:
    extra = {"authentication_kubernetes_io_slash_pod-name": ["coredns-57ff979f67-bl27n"],
             "authentication_kubernetes_io_slash_credential-id": ["JTI=abc"]}
    user = {"username": "system:serviceaccount:kube-system:coredns", "extra": extra}
    [event], _ = parse(audit(user=user, requestReceivedTimestamp="2024-01-01T00:00:00Z"))
    assert (event.session, event.credential_id) == ("coredns-57ff979f67-bl27n", "JTI=abc")


@pytest.mark.shared
def test_real_kubernetes_users(real_logs: Path) -> None:
    stats, dead = RunStats(), ListDeadLetters()
    paths = [real_logs / "falco-k8s-audit",
             real_logs / "panther-analysis-tests" / "eks_k8s_audit.panther_tests.jsonl"]
    events = list(read_paths([str(p) for p in paths], stats=stats, dead_letters=dead))
    kinds = {(e.identity, e.identity_kind) for e in events}
    assert ("minikube-user", "human") in kinds
    assert ("kubernetes-admin", "human") in kinds  # EKS: kubectl of the DevAdministrator role
    assert not [e for e in events if e.identity_kind == "unknown"]
    admin = [e for e in events if e.identity == "kubernetes-admin"]
    assert "2022-11-29T00:09:04.380000+00:00" in {e.time.isoformat() for e in admin}
    coredns = [e for e in events if e.identity.endswith(":coredns")]
    assert {e.session for e in coredns} >= {"coredns-57ff979f67-bl27n"}


def test_one_audit_id_with_two_users_is_two_requests() -> None:
    """Falco's anonymous and some-user namespace creations share one auditID; stages of one
    request always name one user, so the second is not a duplicate of the first."""
    first = audit(requestReceivedTimestamp="2024-01-01T00:00:00Z")
    second = dict(first, user={"username": "system:anonymous"})
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(first) + b"\n" + orjson.dumps(first) + b"\n"
                           + orjson.dumps(second), origin="t", stats=stats, dead_letters=dead)
    assert [e.identity for e in events] == ["system:serviceaccount:kube-system:coredns",
                                            "system:anonymous"]
    assert stats.skipped == {("k8s.audit", "duplicate_stage"): 1}


def test_event_that_lost_its_user_is_missing_identity_not_unknown_format() -> None:
    record = {"kind": "Event", "verb": "get", "sourceIPs": ["5.5.5.5"],
              "responseStatus": {"code": 200}, "p_log_type": "Amazon.EKS.Audit"}
    events, dead = parse(record)
    assert events == [] and dead.reasons() == ["missing_identity"]


def test_gke_google_service_account_has_service_account_type() -> None:
    entry = {"protoPayload": {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": "deployer@p.iam.gserviceaccount.com"},
        "methodName": "io.k8s.core.v1.configmaps.update", "serviceName": "k8s.io",
        "resourceName": "core/v1/namespaces/default/configmaps/app",
        "requestMetadata": {"callerIp": "10.0.0.9"}},
        "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "c1",
                                                       "project_id": "p"}},
        "timestamp": "2024-03-01T00:00:00Z", "insertId": "i-1"}
    [event], _ = parse(entry)
    assert (event.identity, event.identity_kind, event.principal_type) == (
        "c1/deployer@p.iam.gserviceaccount.com", "workload", "serviceAccount")
