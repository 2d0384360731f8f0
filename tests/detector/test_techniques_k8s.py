"""Kubernetes technique findings, read off parsed events: each rule on an attack request and
on the near miss a controller or an administrator sends every day."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.attack import AttackMap
from detector.scoring import SensitivityCatalogue
from detector.sources import ListDeadLetters, parse_payload, read_paths
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, as_findings

_IDS = itertools.count()
DEFINED = set(AttackMap(SensitivityCatalogue.load()).techniques)  # ATT&CK ids with a name
SA = "system:serviceaccount:ci:deployer"


def request(verb: str, resource: str, *, user: str = SA, code: int = 201,
            namespace: str | None = "default", name: str | None = None,
            subresource: str | None = None, body: Any = None, uri: str | None = None,
            **extra: Any) -> dict:
    ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
    for key, value in (("namespace", namespace), ("name", name), ("subresource", subresource)):
        if value is not None:
            ref[key] = value
    record = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
              "auditID": f"id-{next(_IDS)}", "stage": "ResponseComplete",
              "verb": verb, "user": {"username": user}, "objectRef": ref,
              "requestURI": uri or f"/api/v1/{resource}", "sourceIPs": ["198.51.100.7"],
              "requestReceivedTimestamp": "2024-03-04T10:00:00.000000Z",
              "responseStatus": {"code": code}}
    if body is not None:
        record["requestObject"] = body
    record.update(extra)
    return record


def findings(*records: dict) -> list[tuple[str, str, str]]:
    """(rule, severity, value) of every finding of the parsed records."""
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(list(records)), origin="t", stats=stats,
                           dead_letters=dead)
    assert len(dead) == 0 and len(events) == len(records)
    found = [f for e in events for f in as_findings(e.attributes.get(ATTRIBUTE))]
    assert all(f.attack and set(f.attack) <= DEFINED and f.sentence for f in found)
    return [(f.rule, f.severity, f.value) for f in found]


def binding(role: str, *subjects: dict, kind: str = "clusterrolebindings", **extra: Any) -> dict:
    body = {"kind": "ClusterRoleBinding", "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": role}, "subjects": list(subjects)}
    return request("create", kind, namespace=None if kind == "clusterrolebindings" else "ns",
                   name="b", body=body, **extra)


SA_SUBJECT = {"kind": "ServiceAccount", "name": "x", "namespace": "ns"}


def test_cluster_admin_binding_to_a_service_account_is_high() -> None:
    assert findings(binding("cluster-admin", SA_SUBJECT)) == [
        ("k8s.admin_binding", "high", "ServiceAccount ns/x")]


def test_cluster_admin_binding_to_everyone_is_critical() -> None:
    group = {"kind": "Group", "name": "system:unauthenticated"}
    assert findings(binding("cluster-admin", group)) == [
        ("k8s.admin_binding", "critical", "Group system:unauthenticated")]


def test_rolebinding_to_cluster_admin_is_medium_and_view_is_nothing() -> None:
    assert findings(binding("cluster-admin", SA_SUBJECT, kind="rolebindings")) == [
        ("k8s.admin_binding", "medium", "ServiceAccount ns/x")]
    assert findings(binding("view", SA_SUBJECT), binding("admin", SA_SUBJECT,
                                                         kind="rolebindings")) == []


def test_bootstrap_masters_binding_and_failed_binding_are_not_findings() -> None:
    masters = {"kind": "Group", "name": "system:masters"}
    assert findings(binding("cluster-admin", masters, user="system:apiserver"),
                    binding("cluster-admin", SA_SUBJECT, code=403)) == []


def test_binding_patch_reads_the_response_object() -> None:
    record = request("patch", "clusterrolebindings", namespace=None, name="b",
                     body={"subjects": [SA_SUBJECT]},
                     responseObject={"roleRef": {"name": "cluster-admin"},
                                     "subjects": [SA_SUBJECT]})
    assert findings(record) == [("k8s.admin_binding", "high", "ServiceAccount ns/x")]


def role(rules: Any, user: str = SA) -> dict:
    return request("create", "clusterroles", namespace=None, name="r", user=user,
                   body={"metadata": {"name": "r"}, "rules": rules})


def test_role_with_every_verb_on_every_resource() -> None:
    everything = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    pods_only = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]
    aggregated = role(everything, user="system:serviceaccount:kube-system:clusterrole-"
                                       "aggregation-controller")
    assert findings(role(everything), role(pods_only), aggregated, role("*")) == [
        ("k8s.wildcard_role", "medium", "r")]


def pod(spec: dict, *, owners: list | None = None, **extra: Any) -> dict:
    metadata: dict[str, Any] = {"name": "p"}
    if owners is not None:
        metadata["ownerReferences"] = owners
    return request("create", "pods", name="p", body={"metadata": metadata, "spec": spec},
                   **extra)


def test_privileged_pod_by_hand_is_high() -> None:
    spec = {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}
    assert findings(pod(spec)) == [("k8s.privileged_pod", "high", "privileged container c")]


def test_host_root_mount_and_host_network() -> None:
    root = {"containers": [{"name": "c"}], "volumes": [{"hostPath": {"path": "/"}}]}
    net = {"containers": [{"name": "c"}], "hostNetwork": True}
    assert findings(pod(root), pod(net)) == [("k8s.privileged_pod", "high", "hostPath /"),
                                             ("k8s.privileged_pod", "medium", "hostNetwork")]


@pytest.mark.parametrize("agent", ["kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
                                   "curl/8.5.0", "python-requests/2.31.0",
                                   # bare HTTP libraries (break-it trial): no controller
                                   "Go-http-client/2.0", "python-httpx/0.27.0",
                                   "node-fetch/1.0", "axios/1.6.7", "okhttp/4.12.0",
                                   "Python/3.11 aiohttp/3.9.3", "Python-urllib/3.11",
                                   "python-urllib3/2.2.1", "Java-http-client/17.0.9",
                                   "node", "Deno/1.40.0", "Bun/1.0.25", "got",
                                   "Dart/3.3 (dart:io)", "hyper/1.2.0",
                                   "(Go-http-client/1.1)"])
def test_a_forged_owner_from_a_hand_client_is_still_a_finding(agent: str) -> None:
    """A stolen token's privileged pod naming a made-up ReplicaSet owner: a controller
    writes owners, a person's or a script's client does not need to."""
    privileged = {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}
    owner = [{"kind": "ReplicaSet", "name": "rs", "uid": "u"}]
    assert findings(pod(privileged, owners=owner, userAgent=agent)) == [
        ("k8s.privileged_pod", "high", "privileged container c")]
    operator = pod(privileged, owners=owner,
                   userAgent="workflow-controller/v3.5.5 argo-workflows/v3.5.5")
    client_go = pod(privileged, owners=owner,
                    userAgent="manager/v0.0.0 (linux/amd64) kubernetes/$Format")
    assert findings(operator, client_go) == []


def test_controller_made_and_harmless_pods_are_not_findings() -> None:
    privileged = {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}
    owner = [{"kind": "ReplicaSet", "name": "rs"}]
    plain = {"containers": [{"name": "c", "securityContext": {"privileged": False}}],
             "volumes": [{"hostPath": {"path": "/var/log"}}]}
    assert findings(pod(privileged, owners=owner),
                    pod(privileged, user="system:node:n1"), pod(plain)) == []


def test_privileged_daemonset_template_is_medium() -> None:
    template = {"template": {"spec": {"hostPID": True, "containers": [{"name": "c"}]}}}
    record = request("create", "daemonsets", name="agent",
                     body={"metadata": {"name": "agent"}, "spec": template})
    assert findings(record) == [("k8s.privileged_pod", "medium", "hostPID")]


def test_exec_by_service_account_outside_its_namespace_is_high() -> None:
    inside = request("create", "pods", name="p", namespace="ci", subresource="exec", code=101)
    outside = request("create", "pods", name="p", namespace="payments", subresource="exec",
                      code=101)
    by_person = request("create", "pods", name="p", subresource="exec", user="alice", code=101)
    assert findings(inside, outside, by_person) == [
        ("k8s.service_account_exec", "medium", "ci/p"),
        ("k8s.service_account_exec", "high", "payments/p")]


def test_token_minted_for_another_service_account() -> None:
    other = request("create", "serviceaccounts", name="admin", namespace="kube-system",
                    subresource="token")
    own = request("create", "serviceaccounts", name="deployer", namespace="ci",
                  subresource="token")
    kubelet = request("create", "serviceaccounts", name="admin", namespace="kube-system",
                      subresource="token", user="system:node:n1")
    assert findings(other, own, kubelet) == [
        ("k8s.token_for_other_account", "high", "kube-system/admin")]


def test_one_shot_cluster_wide_secret_list_but_not_an_informer() -> None:
    dump = request("list", "secrets", namespace=None, code=200, uri="/api/v1/secrets?limit=500")
    informer = request("list", "secrets", namespace=None, code=200,
                       uri="/api/v1/secrets?limit=500&resourceVersion=0")
    namespaced = request("list", "secrets", code=200, uri="/api/v1/namespaces/default/secrets")
    platform = request("list", "secrets", namespace=None, code=200, uri="/api/v1/secrets",
                       user="system:serviceaccount:kube-system:namespace-controller")
    assert findings(dump, informer, namespaced, platform) == [
        ("k8s.secrets_cluster_wide", "high", "ci/deployer")]


def test_cluster_wide_secret_dump_passing_for_an_informer__still_found() -> None:
    # a detection trial's kubectl dump with ``resourceVersion=0`` added passed for an
    # informer's list; a controller's informer has its own binary's user agent
    uri = "/api/v1/secrets?limit=500&resourceVersion=0"
    by_kubectl = request("list", "secrets", namespace=None, code=200, uri=uri,
                         userAgent="kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46")
    by_script = request("list", "secrets", namespace=None, code=200, uri=uri,
                        userAgent="python-requests/2.32.3")
    by_controller = request("list", "secrets", namespace=None, code=200, uri=uri,
                            userAgent="cert-manager-controller/v1.15.1 (linux/amd64) "
                                      "cert-manager/0a6e2a4")
    assert findings(by_kubectl, by_script, by_controller) == [
        ("k8s.secrets_cluster_wide", "high", "ci/deployer"),
        ("k8s.secrets_cluster_wide", "high", "ci/deployer")]


def test_admission_webhook_deleted_but_not_read() -> None:
    gone = request("delete", "validatingwebhookconfigurations", namespace=None, name="policy",
                   code=200)
    read = request("get", "validatingwebhookconfigurations", namespace=None, name="policy",
                   code=200)
    assert findings(gone, read) == [("k8s.admission_webhook_deleted", "medium", "policy")]


def test_anonymous_success_beyond_health_endpoints() -> None:
    anonymous = "system:anonymous"
    read = request("get", "pods", user=anonymous, name="p", code=200,
                   uri="/api/v1/namespaces/default/pods/p")
    write = request("create", "namespaces", user=anonymous, namespace=None, code=201,
                    uri="/api/v1/namespaces")
    health = request("get", "pods", user=anonymous, code=200, uri="/healthz",
                     objectRef={})
    denied = request("get", "secrets", user=anonymous, code=403, uri="/api/v1/secrets")
    assert findings(read, write, health, denied) == [
        ("k8s.anonymous_access", "high", "/api/v1/namespaces/default/pods/p"),
        ("k8s.anonymous_access", "critical", "/api/v1/namespaces")]


def test_metadata_level_and_odd_bodies_give_nothing_and_never_raise() -> None:
    records = [binding("cluster-admin", SA_SUBJECT, requestObject=None),
               binding("cluster-admin", "not-a-subject", {"name": 5}),
               request("create", "clusterrolebindings", namespace=None,
                       body={"roleRef": "cluster-admin", "subjects": {"a": 1}}),
               pod({"containers": "x", "volumes": [None, {"hostPath": "/"}]}),
               request("create", "pods", body=["not", "an", "object"]),
               request("list", "secrets", namespace=None, code=200, requestURI=None)]
    assert findings(*records) == []


def test_impersonated_request_takes_the_general_path_with_the_same_rules() -> None:
    record = binding("cluster-admin", SA_SUBJECT, user="alice",
                     impersonatedUser={"username": SA})
    assert findings(record) == [("k8s.admin_binding", "high", "ServiceAccount ns/x")]


def test_aks_diagnostic_record_with_the_event_as_a_string() -> None:
    event = binding("cluster-admin", SA_SUBJECT)
    record = {"category": "kube-audit", "time": "2024-03-04T10:00:00Z",
              "resourceId": "/subscriptions/s/resourceGroups/g/providers/"
                            "Microsoft.ContainerService/managedClusters/prod",
              "properties": {"log": orjson.dumps(event).decode(), "pod": "kube-apiserver-1"}}
    assert findings(record) == [("k8s.admin_binding", "high", "ServiceAccount ns/x")]


def gke(method: str, resource: str, principal: str = SA, **payload: Any) -> dict:
    proto = {"serviceName": "k8s.io", "methodName": method, "resourceName": resource,
             "authenticationInfo": {"principalEmail": principal},
             "requestMetadata": {"callerIp": "198.51.100.7"}, **payload}
    return {"insertId": f"g{next(_IDS)}", "timestamp": "2024-03-04T10:00:00Z",
            "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "prod"}},
            "protoPayload": proto}


def test_gke_entries_are_checked_as_the_audit_events_they_stand_for() -> None:
    spec = {"spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}}
    created = gke("io.k8s.core.v1.pods.create", "core/v1/namespaces/default/pods/p",
                  request=spec)
    refused = gke("io.k8s.core.v1.pods.create", "core/v1/namespaces/default/pods/p",
                  request=spec, response={"kind": "Status", "status": "Failure", "code": 409})
    exec_ = gke("io.k8s.core.v1.pods.exec.create", "core/v1/namespaces/web/pods/p/exec")
    probe = gke("io.k8s.core.v1.healthz.get", "core/v1/healthz", principal="system:anonymous")
    assert findings(created, refused, exec_, probe) == [
        ("k8s.privileged_pod", "high", "privileged container c"),
        ("k8s.service_account_exec", "high", "web/p")]


@pytest.mark.shared
def test_real_falco_audit_events(real_logs: Path) -> None:
    """Falco's audit samples: the cluster-admin binding, the anonymous namespace create, the
    ClusterRoles reading every resource and allowing exec in every pod (Falco's "ClusterRole
    With Wildcard Created" and "... With Pod Exec Created"), the built-in ClusterRoles
    patched and deleted (its "System ClusterRole Modified/Deleted"), the NodePort
    service (its "Create NodePort Service") and the six ConfigMaps holding an AWS secret
    key (its "Configmap With Private Credentials") are findings; its privileged pods were
    made by the ReplicaSet controller (checked when the workload is created) and its
    benign requests give nothing."""
    stats, dead = RunStats(), ListDeadLetters()
    events = list(read_paths([str(real_logs / "falco-k8s-audit"),
                              str(real_logs / "elastic-k8s-audit")],
                             stats=stats, dead_letters=dead))
    found = sorted((f.rule, f.severity) for e in events
                   for f in as_findings(e.attributes.get(ATTRIBUTE)))
    assert len(events) == 54  # with Falco's anonymous request
    assert found == [("k8s.admin_binding", "high"), ("k8s.anonymous_access", "critical"),
                     *[("k8s.configmap_credentials", "medium")] * 6,
                     ("k8s.escalation_role", "medium"), ("k8s.escalation_role", "medium"),
                     ("k8s.nodeport_service", "low"), ("k8s.system_rbac_changed", "high"),
                     ("k8s.system_rbac_changed", "medium")]


def assert_no_internal_error(record: dict) -> None:
    """Parse one record: whatever odd types it holds, no check may lose it (a check that
    raised shows as an ``internal_error`` dead letter)."""
    stats, dead = RunStats(), ListDeadLetters()
    parse_payload(orjson.dumps([record]), origin="t", stats=stats, dead_letters=dead)
    assert not [d for d in dead.items if d["reason"] == "internal_error"], record


def variants(value: Any, depth: int = 0):
    """The value with one nested field at a time replaced by a value of another type."""
    odd = (None, 7, "x", [], {}, [None], True)
    if depth > 6:
        return
    if isinstance(value, dict):
        for key, inner in value.items():
            for other in odd:
                yield {**value, key: other}
            for changed in variants(inner, depth + 1):
                yield {**value, key: changed}
    elif isinstance(value, list):
        for index, inner in enumerate(value[:3]):
            for changed in variants(inner, depth + 1):
                yield value[:index] + [changed] + value[index + 1:]


def test_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    """A check that raised would lose the event (an internal error): every field of every
    positive example is replaced in turn by None, a number, a string, a list or a dict."""
    positives = [
        binding("cluster-admin", SA_SUBJECT, {"kind": "Group", "name": "system:anonymous"}),
        role([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
        pod({"hostPID": True, "containers": [{"name": "c", "securityContext":
                                              {"privileged": True}}],
             "volumes": [{"hostPath": {"path": "/"}}]}),
        request("create", "serviceaccounts", name="a", namespace="b", subresource="token"),
        request("list", "secrets", namespace=None, code=200, uri="/api/v1/secrets"),
        request("get", "pods", user="system:anonymous", code=200, uri="/api/v1/pods")]
    count = 0
    for positive in positives:
        body = {k: v for k, v in positive.items() if k in ("requestObject", "objectRef",
                                                           "requestURI", "annotations")}
        for changed in variants(body):
            assert_no_internal_error({**positive, **changed, "auditID": f"f{count}"})
            count += 1
    assert count > 300


def test_the_callers_address_is_the_peer_not_a_forwarded_header() -> None:
    """sourceIPs lists X-Forwarded-For and X-Real-Ip first, the API server's own peer
    last; only the last is not the client's word."""
    stats, dead = RunStats(), ListDeadLetters()
    spoofed = request("get", "configmaps", name="c", sourceIPs=["10.0.0.5", "185.220.101.5"])
    [event] = parse_payload(orjson.dumps([spoofed]), origin="t", stats=stats,
                            dead_letters=dead)
    assert (event.source_ip, event.network, event.network_prefix) == (
        "185.220.101.5", "public", "185.220.101.0/24")
