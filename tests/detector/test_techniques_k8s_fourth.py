"""Kubernetes technique checks of the fourth round: CronJobs a service account schedules,
client certificates approved by hand, secrets read one by one in bulk, and mutating
webhooks made by hand. Each on the attack request and on the near miss that controllers,
operators, charts and administrators send every day."""

from __future__ import annotations

from typing import Any

import orjson

from detector.engine import Detector
from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, Tally
from tests.detector.test_techniques_k8s import (SA, assert_no_internal_error, findings, gke,
                                                 request, variants)

PERSON = "alice@example.com"


def cronjob(*, user: str = SA, namespace: str = "ci", labels: dict | None = None,
            owners: list | None = None, agent: str | None = None) -> dict:
    metadata: dict[str, Any] = {"name": "sync", "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    if owners:
        metadata["ownerReferences"] = owners
    spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "sync", "image": "busybox", "command": ["sh", "-c", "date"]}],
        "restartPolicy": "OnFailure"}}}}}
    extra = {"userAgent": agent} if agent else {}
    return request("create", "cronjobs", name="sync", namespace=namespace, user=user,
                   body={"kind": "CronJob", "metadata": metadata, "spec": spec}, **extra)


def test_cronjob_created_by_a_service_account_is_medium_high_elsewhere() -> None:
    assert findings(cronjob(), cronjob(namespace="kube-system"), cronjob(namespace="web")) == [
        ("k8s.cronjob_by_service_account", "medium", "ci/sync"),
        ("k8s.cronjob_by_service_account", "high", "kube-system/sync"),
        ("k8s.cronjob_by_service_account", "high", "web/sync")]


def test_cronjobs_of_people_operators_charts_gitops_and_the_platform_are_not() -> None:
    person = cronjob(user=PERSON)
    operator = cronjob(owners=[{"kind": "Backup", "name": "nightly", "uid": "u"}])
    chart = cronjob(labels={"app.kubernetes.io/managed-by": "Helm"})
    argo = cronjob(labels={"argocd.argoproj.io/instance": "ci"})
    terraform = cronjob(agent="HashiCorp/1.0 Terraform/1.7.0")
    platform = cronjob(user="system:serviceaccount:kube-system:cleanup",
                       namespace="kube-system")
    assert findings(person, operator, chart, argo, terraform, platform) == []


def approval(signer: str, *, user: str = PERSON, approved: bool = True,
             body: bool = True) -> dict:
    conditions = [{"type": "Approved" if approved else "Denied", "status": "True",
                   "reason": "KubectlApprove"}]
    csr = {"kind": "CertificateSigningRequest", "metadata": {"name": "eve"},
           "spec": {"signerName": signer, "username": "eve", "usages": ["client auth"]},
           "status": {"conditions": conditions}}
    return request("update", "certificatesigningrequests", namespace=None, name="eve",
                   subresource="approval", user=user, code=200,
                   body=csr if body else None)


def test_client_certificate_approved_by_hand_is_medium_by_an_account_high() -> None:
    client = "kubernetes.io/kube-apiserver-client"
    assert findings(approval(client), approval(client, user=SA)) == [
        ("k8s.client_certificate_approved", "medium", "eve"),
        ("k8s.client_certificate_approved", "high", "eve")]


def test_controller_and_node_certificate_approvals_and_denials_are_not() -> None:
    client = "kubernetes.io/kube-apiserver-client"
    controller = approval("kubernetes.io/kube-apiserver-client-kubelet",
                          user="system:kube-controller-manager")
    serving = approval("kubernetes.io/kubelet-serving",
                       user="system:serviceaccount:kube-system:kubelet-csr-approver")
    serving_by_hand = approval("kubernetes.io/kubelet-serving")
    eks = approval(client, user="eks:certificate-controller")
    denied = approval(client, approved=False)
    metadata_level = approval(client, body=False)
    assert findings(controller, serving, serving_by_hand, eks, denied, metadata_level) == []


def secret_get(name: str, *, user: str = SA, namespace: str = "web",
               second: int = 0) -> dict:
    record = request("get", "secrets", name=name, namespace=namespace, user=user, code=200,
                     uri=f"/api/v1/namespaces/{namespace}/secrets/{name}")
    record["requestReceivedTimestamp"] = f"2024-03-04T10:{second // 60:02d}:" \
                                         f"{second % 60:02d}.000000Z"
    return record


def tallies(*records: dict) -> list[tuple[str, tuple[str, ...]]]:
    events = parse_payload(orjson.dumps(list(records)), origin="t", stats=RunStats(),
                           dead_letters=ListDeadLetters())
    return [(t.rule, t.values) for e in events for t in e.attributes.get(ATTRIBUTE, [])
            if type(t) is Tally]


def test_each_secret_read_counts_but_platform_helm_and_anonymous_do_not() -> None:
    assert tallies(secret_get("db"),
                   secret_get("db", user="system:serviceaccount:kube-system:coredns"),
                   secret_get("token", user="system:node:ip-10-0-0-1"),
                   secret_get("sh.helm.release.v1.web.v3", user=PERSON),
                   secret_get("db", user="system:anonymous")) == [
        ("k8s.secrets_burst", ("web/db",))]


def test_twenty_secrets_read_by_one_identity_is_a_burst_rereads_are_not() -> None:
    harvest = [secret_get(f"s{i:02d}", namespace=f"ns{i % 4}", second=i * 5) for i in range(20)]
    rereads = [secret_get("db", user="system:serviceaccount:web:app", second=i * 5)
               for i in range(40)]
    detector = Detector({}, stats=RunStats())
    events = parse_payload(orjson.dumps(rereads + harvest), origin="t", stats=RunStats(),
                           dead_letters=ListDeadLetters())
    alerts = [alert for event in events for alert in detector.process(event)]
    found = [s["sentence"] for a in alerts for s in a.signals
             if s["detector"] == "technique.k8s.secrets_burst"]
    assert found == ["20 distinct secrets read within 10 minutes"]


def webhook(*, user: str = PERSON, labels: dict | None = None,
            resources: list | None = None, verb: str = "create") -> dict:
    hook: dict[str, Any] = {"name": "inject.example.com", "clientConfig": {
        "service": {"namespace": "default", "name": "injector"}}}
    if resources is not None:
        hook["rules"] = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                          "resources": resources}]
    body = {"kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "injector", "labels": labels or {}}, "webhooks": [hook]}
    return request(verb, "mutatingwebhookconfigurations", namespace=None, name="injector",
                   user=user, body=body)


def test_mutating_webhook_made_by_hand_that_rewrites_pods_is_medium() -> None:
    assert findings(webhook(resources=["pods"]), webhook()) == [
        ("k8s.admission_webhook_created", "medium", "injector")] * 2


def test_installed_webhooks_operators_and_harmless_rules_are_not() -> None:
    """Istio's and cert-manager's webhooks carry their labels, an operator creates its own
    at start-up as its service account, a chart marks what it installs, a webhook on
    namespaces cannot rewrite a pod, and the caBundle patches injectors send are changes."""
    istio = webhook(resources=["pods"], labels={"app": "sidecar-injector", "istio.io/rev": "x"})
    operator = webhook(resources=["pods"], user="system:serviceaccount:kyverno:kyverno")
    namespaces = webhook(resources=["namespaces"])
    patched = webhook(resources=["pods"], verb="patch")
    gke_agent = webhook(resources=["pods"], user="service-1@container-engine-robot.iam."
                                                 "gserviceaccount.com")
    assert findings(istio, operator, namespaces, patched, gke_agent) == []


def test_gke_entries_reach_the_new_checks() -> None:
    """GKE's Cloud Audit form of a hand-made webhook (Panther's test event shape)."""
    record = gke("io.k8s.admissionregistration.v1.mutatingwebhookconfigurations.create",
                 "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar",
                 principal="user@company.com",
                 request={"kind": "MutatingWebhookConfiguration",
                          "metadata": {"name": "istio-sidecar"},
                          "webhooks": [{"name": "sidecar-injector.istio.io", "clientConfig": {
                              "service": {"name": "istio-sidecar-injector",
                                          "namespace": "istio-system"}}}]})
    assert findings(record) == [("k8s.admission_webhook_created", "medium", "istio-sidecar")]


def test_fourth_round_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    positives = [cronjob(namespace="kube-system"),
                 approval("kubernetes.io/kube-apiserver-client", user=SA),
                 webhook(resources=["pods"]), secret_get("db"), ingress(),
                 configmap({"k": "-----BEGIN PRIVATE KEY-----"}),
                 request("create", "deployments", name="d", body={"spec": {"template": {
                     "metadata": {"annotations": {
                         "alpha.image-policy.k8s.io/break-glass": "true"}}}}})]
    count = 0
    for positive in positives:
        for changed in variants({k: v for k, v in positive.items()
                                 if k in ("requestObject", "objectRef", "user")}):
            assert_no_internal_error({**positive, **changed, "auditID": f"v{count}"})
            count += 1
    assert count > 100


def ingress(*, tls: bool = False, annotations: dict | None = None, user: str = PERSON,
            labels: dict | None = None, owners: list | None = None,
            class_name: str | None = None, namespace: str = "web") -> dict:
    spec: dict[str, Any] = {"rules": [{"host": "api.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]}
    if tls:
        spec["tls"] = [{"hosts": ["api.example.com"], "secretName": "api-tls"}]
    if class_name:
        spec["ingressClassName"] = class_name
    metadata: dict[str, Any] = {"name": "api", "namespace": namespace,
                                "annotations": annotations or {}, "labels": labels or {}}
    if owners:
        metadata["ownerReferences"] = owners
    return request("create", "ingresses", name="api", namespace=namespace, user=user,
                   body={"kind": "Ingress", "metadata": metadata, "spec": spec})


def test_ingress_created_by_hand_without_tls_is_low() -> None:
    assert findings(ingress(), ingress(annotations={"kubernetes.io/ingress.class": "nginx"})) \
        == [("k8s.ingress_without_tls", "low", "web/api")] * 2


def test_ingress_with_tls_here_or_at_the_load_balancer_internal_or_installed_is_not() -> None:
    """TLS in the spec, an ALB or GKE certificate, an internal scheme or class, a chart's
    ingress, cert-manager's ACME solver (it names its owner) and an add-on's dashboard in
    a platform namespace."""
    alb = ingress(annotations={"alb.ingress.kubernetes.io/certificate-arn": "arn:aws:acm:x"})
    gke_cert = ingress(annotations={"networking.gke.io/managed-certificates": "api-cert"})
    internal = ingress(annotations={"alb.ingress.kubernetes.io/scheme": "internal"})
    gce_internal = ingress(class_name="gce-internal")
    chart = ingress(labels={"app.kubernetes.io/managed-by": "Helm"})
    solver = ingress(user="system:serviceaccount:cert-manager:cert-manager",
                     owners=[{"kind": "Challenge", "name": "c", "uid": "u"}])
    dashboard = ingress(namespace="kube-system")
    assert findings(ingress(tls=True), alb, gke_cert, internal, gce_internal, chart,
                    solver, dashboard) == []


def configmap(data: dict, *, user: str = PERSON, verb: str = "create") -> dict:
    body = {"kind": "ConfigMap", "metadata": {"name": "app", "namespace": "web"}, "data": data}
    return request(verb, "configmaps", name="app", namespace="web", user=user, body=body)


def test_configmap_holding_key_material_is_medium() -> None:
    aws = configmap({"access.properties": "aws_access_key_id = AKIAEXAMPLE\n"
                                          "aws_secret_access_key = wJalrXUtnFEMIK7MDENG\n"})
    pem = configmap({"tls.key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n"}, verb="patch")
    assert findings(aws, pem) == [("k8s.configmap_credentials", "medium", "web/app")] * 2


def test_configmap_alert_names_the_kind_of_key_never_the_key() -> None:
    record = configmap({"aws": "aws_secret_access_key = wJalrXUtnFEMIK7MDENG\n"})
    events = parse_payload(orjson.dumps([record]), origin="t", stats=RunStats(),
                           dead_letters=ListDeadLetters())
    sentence = events[0].attributes[ATTRIBUTE][0].sentence
    assert "an AWS secret access key" in sentence and "wJal" not in sentence


def test_configmaps_with_certificates_settings_or_empty_passwords_are_not() -> None:
    """The cluster's CA bundle, ordinary settings, a chart's empty password setting, a
    secret key named but not set, and the platform's own write."""
    ca = configmap({"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIC...\n"})
    settings = configmap({"ui.properties": "color.good=purple\nallow.textmode=true\n"})
    password = configmap({"app.yaml": "db:\n  password: \"\"\n"})
    unset = configmap({"README": "set aws_secret_access_key = <your_key_here> in the Secret",
                       "env": "aws_secret_access_key: ${AWS_SECRET_ACCESS_KEY}",
                       "chart": "aws_secret_access_key: {{ .Values.secretKey }}"})
    platform = configmap({"k": "-----BEGIN PRIVATE KEY-----\n"}, user="system:kube-scheduler")
    assert findings(ca, settings, password, unset, platform) == []


def test_binary_authorization_break_glass_on_a_pod_or_a_template_is_medium() -> None:
    glass = {"alpha.image-policy.k8s.io/break-glass": "true"}
    pod = request("create", "pods", name="p", namespace="web", user=PERSON, body={
        "metadata": {"name": "p", "annotations": glass},
        "spec": {"containers": [{"name": "c", "image": "eu.gcr.io/x/app:1"}]}})
    deployment = request("create", "deployments", name="d", namespace="web", body={
        "metadata": {"name": "d"}, "spec": {"template": {
            "metadata": {"annotations": glass},
            "spec": {"containers": [{"name": "c", "image": "eu.gcr.io/x/app:1"}]}}}})
    assert findings(pod, deployment) == [
        ("k8s.binary_authorization_bypass", "medium", "web/p"),
        ("k8s.binary_authorization_bypass", "medium", "web/d")]


def test_break_glass_off_controller_pods_and_the_platform_are_not() -> None:
    """The annotation set to false, the pods a ReplicaSet makes from a checked template,
    and GKE's own agent."""
    def pod(value: str, **extra: Any) -> dict:
        return request("create", "pods", name="p", namespace="web", body={
            "metadata": {"name": "p", "annotations": {
                "alpha.image-policy.k8s.io/break-glass": value}, **extra},
            "spec": {"containers": [{"name": "c", "image": "app"}]}})
    owned = pod("true", ownerReferences=[{"kind": "ReplicaSet", "name": "r", "uid": "u"}])
    agent = request("create", "pods", name="p", namespace="web",
                    user="service-1@container-engine-robot.iam.gserviceaccount.com",
                    body=pod("true")["requestObject"])
    assert findings(pod("false"), owned, agent) == []
