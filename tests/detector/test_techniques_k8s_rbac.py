"""Kubernetes technique findings of the third round: the control plane's roles handed out,
ClusterRoles that reach every pod or every secret, the API server's built-in roles changed,
debug containers, port-forwards, a credential listing its own permissions, hand-made pods
running as a controller, kubelet commands through the node proxy, EKS's aws-auth mapping
written and events deleted. Each rule on the attack request and on the near miss the
platform, an operator or an administrator sends every day."""

from __future__ import annotations

from typing import Any

from tests.detector.test_techniques_k8s import (SA, assert_no_internal_error, binding, findings,
                                                 gke, request, role, variants)

PERSON = "alice@example.com"
CONTROLLER_SA = {"kind": "ServiceAccount", "name": "attacker-sa", "namespace": "default"}


def test_control_plane_role_bound_to_an_ordinary_account_is_high() -> None:
    assert findings(binding("system:kube-controller-manager", CONTROLLER_SA, user=PERSON),
                    binding("system:node", {"kind": "User", "name": "bob"}, user=PERSON)) == [
        ("k8s.admin_binding", "high", "ServiceAccount default/attacker-sa"),
        ("k8s.admin_binding", "high", "User bob")]


def test_control_plane_roles_bound_by_the_platform_to_its_own_users_are_not() -> None:
    own_user = {"kind": "User", "name": "system:kube-controller-manager"}
    assert findings(
        binding("system:kube-controller-manager", own_user, user=PERSON),
        binding("system:kube-controller-manager", own_user, user="system:apiserver"),
        binding("system:node", CONTROLLER_SA, user="eks:addon-manager"),
        binding("system:kube-controller-manager", CONTROLLER_SA, kind="rolebindings")) == []


def test_cluster_role_with_exec_in_every_pod_or_every_verb_on_secrets() -> None:
    exec_ = [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]
    websocket = [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}]
    secrets = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
               {"apiGroups": ["*"], "resources": ["secrets"], "verbs": ["*"]}]
    tokens = [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}]
    assert findings(role(exec_, user=PERSON), role(websocket), role(secrets),
                    role(tokens)) == [("k8s.escalation_role", "medium", "r")] * 4


def test_namespaced_exec_secret_reads_operators_and_the_platform_are_not() -> None:
    exec_ = [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]
    namespaced = request("create", "roles", namespace="dev", name="debug", user=PERSON,
                         body={"metadata": {"name": "debug"}, "rules": exec_})
    readers = role([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}])
    logs = role([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]}])
    chart = request("create", "clusterroles", namespace=None, name="runner", user=PERSON,
                    body={"metadata": {"name": "runner", "labels": {
                        "app.kubernetes.io/managed-by": "Helm"}}, "rules": exec_})
    platform = role(exec_, user="system:serviceaccount:kube-system:operator")
    assert findings(namespaced, readers, logs, chart, platform) == []


def rbac(verb: str, resource: str, name: str, *, user: str = PERSON,
         namespace: str | None = None, code: int = 200, **extra: Any) -> dict:
    return request(verb, resource, namespace=namespace, name=name, user=user,
                   code=code, **extra)


def test_built_in_role_changed_is_high_and_deleted_is_medium() -> None:
    assert findings(rbac("patch", "clusterroles", "system:basic-user"),
                    rbac("update", "clusterrolebindings", "system:discovery", user=SA),
                    rbac("patch", "roles", "system:controller:bootstrap-signer",
                         namespace="kube-system"),
                    rbac("delete", "clusterroles", "system:kube-aggregator")) == [
        ("k8s.system_rbac_changed", "high", "system:basic-user"),
        ("k8s.system_rbac_changed", "high", "system:discovery"),
        ("k8s.system_rbac_changed", "high", "kube-system/system:controller:bootstrap-signer"),
        ("k8s.system_rbac_changed", "medium", "system:kube-aggregator")]


def test_built_in_role_given_every_verb_names_both_the_change_and_the_wildcard() -> None:
    body = {"metadata": {"name": "system:node"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    assert findings(rbac("update", "clusterroles", "system:node", body=body)) == [
        ("k8s.system_rbac_changed", "high", "system:node"),
        ("k8s.wildcard_role", "medium", "system:node")]


def test_add_on_roles_own_roles_and_the_platform_changing_built_ins_are_not() -> None:
    """CoreDNS's and metrics-server's ``system:`` roles are upgraded by hand; the
    aggregation controller rewrites ``admin``; EKS and the API server reconcile the rest;
    a chart's objects and a ``system:`` role of an application namespace are not built in;
    a refused change changed nothing."""
    aggregator = "system:serviceaccount:kube-system:clusterrole-aggregation-controller"
    chart = rbac("patch", "clusterroles", "view", body={"metadata": {
        "annotations": {"meta.helm.sh/release-name": "x"}}})
    assert findings(rbac("update", "clusterroles", "system:coredns"),
                    rbac("patch", "clusterroles", "system:metrics-server"),
                    rbac("update", "clusterroles", "custom-admin"),
                    rbac("update", "clusterroles", "admin", user=aggregator),
                    rbac("patch", "clusterroles", "system:node", user="eks:addon-manager"),
                    rbac("update", "clusterroles", "edit", user="system:apiserver"),
                    rbac("patch", "roles", "system:leader", namespace="web"),
                    rbac("get", "clusterroles", "system:node"), chart,
                    rbac("delete", "clusterroles", "system:node", code=403)) == []


def debug(user: str, *, namespace: str = "web", context: dict | None = None) -> dict:
    container = {"name": "debugger", "image": "busybox", "targetContainerName": "app"}
    if context is not None:
        container["securityContext"] = context
    return request("patch", "pods", name="p", namespace=namespace,
                   subresource="ephemeralcontainers", user=user, code=200,
                   body={"spec": {"ephemeralContainers": [container]}})


def test_debug_container_by_a_service_account_or_privileged_by_anyone() -> None:
    assert findings(debug(SA), debug(PERSON, context={"privileged": True}),
                    debug(PERSON, context={"capabilities": {"add": ["SYS_ADMIN"]}})) == [
        ("k8s.service_account_exec", "high", "web/p"),
        ("k8s.privileged_pod", "medium", "privileged"),
        ("k8s.privileged_pod", "medium", "capability SYS_ADMIN")]


def test_a_person_debugging_and_the_platform_in_its_namespace_are_not() -> None:
    platform = debug("system:serviceaccount:kube-system:node-problem",
                     namespace="kube-system", context={"privileged": True})
    assert findings(debug(PERSON), platform) == []


def test_port_forward_by_a_service_account_but_not_by_a_person() -> None:
    def forward(user: str) -> dict:
        return request("create", "pods", name="db-0", namespace="data",
                       subresource="portforward", user=user, code=101)
    assert findings(forward(SA), forward(PERSON)) == [
        ("k8s.service_account_exec", "high", "data/db-0")]


def test_listing_every_own_permission_by_a_service_account_or_a_node() -> None:
    def review(user: str, resource: str = "selfsubjectrulesreviews") -> dict:
        return request("create", resource, namespace=None, user=user,
                       body={"spec": {"namespace": "default"}})
    assert findings(review(SA), review("system:node:ip-10-0-1-7")) == [
        ("k8s.permission_enumeration", "medium", SA),
        ("k8s.permission_enumeration", "medium", "system:node:ip-10-0-1-7")]


def test_people_platform_accounts_and_single_permission_checks_are_not() -> None:
    def review(user: str, resource: str = "selfsubjectrulesreviews") -> dict:
        return request("create", resource, namespace=None, user=user)
    assert findings(review(PERSON), review("system:serviceaccount:kube-system:dashboard"),
                    review(SA, "selfsubjectaccessreviews"),
                    review("system:kube-controller-manager")) == []


def hand_made(account: str | None, namespace: str = "kube-system") -> dict:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "alpine"}]}
    if account is not None:
        spec["serviceAccountName"] = account
    return request("create", "pods", namespace=namespace, name="x", user=PERSON,
                   body={"metadata": {"name": "x"}, "spec": spec})


def test_hand_made_pod_running_as_a_controller_account_is_high() -> None:
    assert findings(hand_made("clusterrole-aggregation-controller"), hand_made(None),
                    hand_made("aws-node"), hand_made("replicaset-controller", "web")) == [
        ("k8s.pod_in_system_namespace", "high", "kube-system/x"),
        ("k8s.pod_in_system_namespace", "medium", "kube-system/x"),
        ("k8s.pod_in_system_namespace", "medium", "kube-system/x")]


def proxy(path: str, *, user: str = PERSON, verb: str = "get") -> dict:
    return request(verb, "nodes", namespace=None, name="ip-10-0-1-7", subresource="proxy",
                   user=user, code=200, uri=f"/api/v1/nodes/ip-10-0-1-7/proxy/{path}")


def test_kubelet_command_or_pod_listing_through_the_node_proxy() -> None:
    assert findings(proxy("run/web/api-0/app?cmd=id", verb="create"),
                    proxy("pods", user=SA)) == [
        ("k8s.kubelet_command", "high", "ip-10-0-1-7"),
        ("k8s.kubelet_command", "medium", "ip-10-0-1-7")]


def test_metrics_scrapes_and_the_platform_through_the_node_proxy_are_not() -> None:
    scraper = "system:serviceaccount:monitoring:prometheus"
    assert findings(proxy("metrics/cadvisor", user=scraper), proxy("stats/summary", user=scraper),
                    proxy("run/web/api-0/app", user="system:serviceaccount:kube-system:x"),
                    proxy("pods", user="system:kube-controller-manager")) == []


def aws_auth(verb: str, roles: str | None, *, user: str = PERSON, **extra: Any) -> dict:
    body = {"data": {"mapRoles": roles}} if roles is not None else None
    return request(verb, "configmaps", namespace="kube-system", name="aws-auth", user=user,
                   code=200, body=body, **extra)


def test_aws_auth_written_by_hand_and_mapping_to_masters_is_high() -> None:
    masters = "- rolearn: arn:aws:iam::111122223333:role/x\n  groups:\n  - system:masters\n"
    readers = "- rolearn: arn:aws:iam::111122223333:role/y\n  groups:\n  - viewers\n"
    assert findings(aws_auth("patch", masters), aws_auth("update", readers),
                    aws_auth("update", None)) == [
        ("k8s.aws_auth_changed", "high", "kube-system/aws-auth"),
        ("k8s.aws_auth_changed", "medium", "kube-system/aws-auth"),
        ("k8s.aws_auth_changed", "medium", "kube-system/aws-auth")]


def test_aws_auth_by_eks_or_as_code_and_other_config_maps_are_not() -> None:
    nodes = "- rolearn: arn:aws:iam::111122223333:role/nodes\n  groups:\n  - system:nodes\n"
    other = request("update", "configmaps", namespace="kube-system", name="coredns",
                    user=PERSON, code=200)
    assert findings(aws_auth("update", nodes, user="eks:node-manager"),
                    aws_auth("update", nodes, userAgent="Terraform/1.7.0"), other) == []


def test_events_deleted_by_hand_but_not_by_the_namespace_controller() -> None:
    cleared = request("deletecollection", "events", namespace="web", user=PERSON, code=200)
    single = request("delete", "events", namespace="web", name="api.17c", user=SA, code=200)
    controller = request("deletecollection", "events", namespace="web", code=200,
                         user="system:serviceaccount:kube-system:namespace-controller")
    assert findings(cleared, single, controller) == [
        ("k8s.events_deleted", "medium", "namespace web"),
        ("k8s.events_deleted", "low", "namespace web")]


def test_gke_entries_get_the_new_checks() -> None:
    exec_role = gke("io.k8s.rbac.v1.clusterroles.create",
                    "rbac.authorization.k8s.io/v1/clusterroles/privileged-role",
                    principal=PERSON, request={"kind": "ClusterRole", "rules": [
                        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]})
    patched = gke("io.k8s.rbac.v1.roles.patch", "rbac.authorization.k8s.io/v1/namespaces/"
                  "kube-system/roles/system:controller:token-cleaner", principal=PERSON)
    agent = gke("io.k8s.rbac.v1.roles.patch", "rbac.authorization.k8s.io/v1/namespaces/"
                "kube-system/roles/system:controller:token-cleaner",
                principal="service-1@container-engine-robot.iam.gserviceaccount.com")
    assert findings(exec_role, patched, agent) == [
        ("k8s.escalation_role", "medium", "privileged-role"),
        ("k8s.system_rbac_changed", "high", "kube-system/system:controller:token-cleaner")]


def test_new_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    positives = [
        binding("system:kube-controller-manager", CONTROLLER_SA, user=PERSON),
        role([{"apiGroups": [""], "resources": ["pods/exec", "secrets"], "verbs": ["*"]}]),
        rbac("patch", "clusterroles", "system:basic-user",
             body={"metadata": {"name": "system:basic-user", "labels": {"a": "b"}}}),
        debug(SA, context={"privileged": True, "capabilities": {"add": ["BPF"]}}),
        aws_auth("patch", "groups: [system:masters]"), proxy("run/a/b/c", verb="create")]
    count = 0
    for positive in positives:
        for changed in variants({k: positive[k] for k in ("objectRef", "requestObject", "user")
                                 if k in positive}):
            assert_no_internal_error({**positive, **changed, "auditID": f"v{count}"})
            count += 1
    assert count > 100
