"""Kubernetes audit: service-account archetypes (controllers, operators, apps) and the
``audit.k8s.io/v1`` Event renderer (RequestReceived + ResponseComplete for part of traffic).

A K8s call's ``action`` is ``"<verb>:<resource>[/<subresource>]"``; ``extra`` carries the
namespace, object name, HTTP code and whether both stages are logged.
"""

from __future__ import annotations

from typing import Any

from . import world
from .core import DAY, Call, Identity, Rng, iso_us
from .gen import Gen, poisson_times, suffixed

GROUPS = {
    "deployments": "apps", "replicasets": "apps", "statefulsets": "apps", "daemonsets": "apps",
    "jobs": "batch", "cronjobs": "batch", "leases": "coordination.k8s.io",
    "endpointslices": "discovery.k8s.io", "ingresses": "networking.k8s.io",
    "horizontalpodautoscalers": "autoscaling", "certificates": "cert-manager.io",
    "certificaterequests": "cert-manager.io", "orders": "acme.cert-manager.io",
    "applications": "argoproj.io", "externalsecrets": "external-secrets.io",
    "nodeclaims": "karpenter.sh", "targetgroupbindings": "elbv2.k8s.aws",
    "servicemonitors": "monitoring.coreos.com", "prometheuses": "monitoring.coreos.com",
    "clusterroles": "rbac.authorization.k8s.io", "rolebindings": "rbac.authorization.k8s.io",
    "clusterrolebindings": "rbac.authorization.k8s.io",
    "tokenreviews": "authentication.k8s.io", "subjectaccessreviews": "authorization.k8s.io",
    "selfsubjectrulesreviews": "authorization.k8s.io",
    "poddisruptionbudgets": "policy", "backups": "velero.io", "policyreports": "wgpolicyk8s.io",
    "mutatingwebhookconfigurations": "admissionregistration.k8s.io",
}
VERSIONS = {"autoscaling": "v2", "external-secrets.io": "v1beta1", "elbv2.k8s.aws": "v1beta1",
            "argoproj.io": "v1alpha1", "wgpolicyk8s.io": "v1alpha2"}
CLUSTER_SCOPED = {"nodes", "namespaces", "clusterroles", "clusterrolebindings", "tokenreviews",
                  "subjectaccessreviews", "nodeclaims", "mutatingwebhookconfigurations",
                  "persistentvolumes", "selfsubjectrulesreviews"}
STAGE_PAIR_SHARE = 0.25


def sa_identity(g: Gen, cluster: str, ns: str, name: str, archetype: str,
                **res: Any) -> tuple[Identity, Rng]:
    key = f"system:serviceaccount:{ns}:{name}"
    ident = Identity(key=key, source="k8s", archetype=archetype, kind="machine",
                     tenant=cluster, name=name, res={"ns": ns, **res})
    rng = g.register(ident)
    ident.principal_id = rng.uuid()
    return ident, rng


def sa_actor(g: Gen, cluster: str, ns: str, name: str, archetype: str,
             ops: list[tuple[str, float]], per_hour: float, ua: str, nets: list[str],
             namespaces: list[str] | None = None, pod_days: float = 3.0,
             shape: str = "flat", first_day: int = 0, **res: Any) -> tuple[Identity, Rng]:
    """A service account calling the API server with a weighted set of verb:resource ops."""
    ident, rng = sa_identity(g, cluster, ns, name, archetype, **res)
    ident.first_day = first_day
    ident.nets, ident.uas = nets, [ua]
    pods = _pods(rng, name, pod_days, g) if pod_days else []
    for day in g.day_range(ident):
        weight = None if shape == "flat" else _k8s_business
        for t in poisson_times(g, rng, day, per_hour, weight):
            op = rng.weighted(ops)
            target_ns = rng.choice(namespaces) if namespaces else ns
            pod = _pod_at(pods, t)
            emit_k8s(g, ident, rng, t, op, ip=_pod_ip(ident, pod, nets), ua=ua,
                     ns=target_ns, pod=pod)
    return ident, rng


def _k8s_business(g: Gen, t: float) -> float:
    from .gen import business_weight
    return business_weight(g, t)


def _pods(rng: Rng, name: str, days: float, g: Gen) -> list[tuple[float, str, str]]:
    out, t = [], g.start - rng.uniform(0, days) * DAY
    while t < g.end:
        out.append((t, f"{name}-{rng.b36(9)[:9]}-{rng.b36(5)}", rng.uuid()))
        t += rng.uniform(0.3, 2.0) * days * DAY
    return out


def _pod_ip(ident: Identity, pod: tuple[str, str] | None, nets: list[str]) -> str:
    """A pod keeps one address for its life (control-plane callers have none of their own)."""
    rng = Rng(f"{ident.key}|{pod[1] if pod else 'static'}")
    return rng.host(rng.choice(nets))


def _pod_at(pods: list[tuple[float, str, str]], t: float) -> tuple[str, str] | None:
    current = None
    for started, pod, uid in pods:
        if started <= t:
            current = (pod, uid)
    return current


def emit_k8s(g: Gen, ident: Identity, rng: Rng, t: float, op: str, *, ip: str, ua: str,
             ns: str | None, name: str | None = None, code: int | None = None,
             pod: tuple[str, str] | None = None, stages: bool | None = None,
             scenario: str | None = None, eid: str | None = None) -> Call | None:
    verb, _, resource = op.partition(":")
    if name is None and ("/" in resource or verb not in ("list", "watch", "create",
                                                         "deletecollection")):
        name = _object_name(rng, resource, ident)
    if code is None:
        code = 201 if verb == "create" else 200
        if verb == "get" and rng.random() < 0.01:
            code = 404
    extra = {"ns": None if resource.split("/")[0] in CLUSTER_SCOPED else ns, "name": name,
             "code": code, "pod": pod,
             "stages": rng.random() < STAGE_PAIR_SHARE if stages is None else stages,
             "latency": rng.uniform(0.001, 0.04) if verb != "watch" else rng.uniform(240, 540)}
    return g.emit(ident, rng, t, op, ip=ip, ua=ua, region=ident.tenant, extra=extra,
                  scenario=scenario, eid=eid)


def _object_name(rng: Rng, resource: str, ident: Identity) -> str:
    base = resource.split("/")[0]
    if base == "leases":
        return ident.res.get("lease", ident.name)
    if base == "nodes":
        return f"ip-10-20-{rng.randint(0, 63)}-{rng.randint(2, 250)}.ec2.internal"
    if base == "configmaps":
        return ident.res.get("configmap", f"{ident.name}-config")
    if base == "secrets":
        return ident.res.get("secret", f"{ident.name}-tls")
    if base == "pods":
        return f"{ident.res.get('app', ident.name)}-{rng.b36(10)[:10]}-{rng.b36(5)}"
    return f"{ident.res.get('app', ident.name)}"


# --- rendering ----------------------------------------------------------------------------

def render(c: Call, rng: Rng) -> list[tuple[float, dict[str, Any]]]:
    """The audit Event lines of ``c`` as (stage time, record) pairs."""
    verb, _, resource = c.action.partition(":")
    res_name, _, sub = resource.partition("/")
    x = c.extra
    group = GROUPS.get(res_name, "")
    version = VERSIONS.get(group, "v1")
    obj: dict[str, Any] = {"resource": res_name}
    if x["ns"]:
        obj["namespace"] = x["ns"]
    if x["name"]:
        obj["name"] = x["name"]
    if group:
        obj["apiGroup"] = group
    obj["apiVersion"] = version
    if sub:
        obj["subresource"] = sub
    base = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": c.eid, "stage": "ResponseComplete",
            "requestURI": _uri(verb, group, version, res_name, sub, x, rng),
            "verb": verb,
            "user": _user(c), "sourceIPs": [c.ip], "userAgent": c.ua, "objectRef": obj}
    done = c.t + x["latency"]
    out: list[tuple[float, dict[str, Any]]] = []
    if x["stages"]:
        first = dict(base, stage="RequestReceived")
        first["requestReceivedTimestamp"] = first["stageTimestamp"] = iso_us(c.t)
        out.append((c.t, first))
    if sub in ("exec", "attach", "portforward") and x["code"] < 400:
        started = dict(base, stage="ResponseStarted", responseStatus={"metadata": {},
                                                                      "code": 101})
        started["requestReceivedTimestamp"] = iso_us(c.t)
        started["stageTimestamp"] = iso_us(c.t + 0.03)
        started["annotations"] = _annotations(c, True)
        out.append((c.t + 0.03, started))
        x["code"] = 101
    final = dict(base)
    final["responseStatus"] = _status(c, verb, res_name, x)
    final["requestReceivedTimestamp"] = iso_us(c.t)
    final["stageTimestamp"] = iso_us(done)
    final["annotations"] = _annotations(c, x["code"] < 400 or x["code"] == 404)
    out.append((done, final))
    return out


def _uri(verb: str, group: str, version: str, res: str, sub: str, x: dict[str, Any],
         rng: Rng) -> str:
    root = f"/apis/{group}/{version}" if group else "/api/v1"
    path = root + (f"/namespaces/{x['ns']}" if x["ns"] else "") + f"/{res}"
    if x["name"]:
        path += f"/{x['name']}"
    if sub:
        path += f"/{sub}"
    if sub == "exec":
        path += "?command=sh&container=app&stdin=true&stdout=true&tty=true"
    elif verb == "list":
        path += "?limit=500&resourceVersion=0"
    elif verb == "watch":
        path += (f"?allowWatchBookmarks=true&resourceVersion={rng.randint(10**7, 9 * 10**7)}"
                 f"&timeout={rng.randint(5, 9)}m{rng.randint(0, 59)}s&timeoutSeconds="
                 f"{rng.randint(300, 540)}&watch=true")
    return path


def _user(c: Call) -> dict[str, Any]:
    ident = c.ident
    if ident.kind == "human":
        return {"username": ident.key, "groups": ident.res["groups"] + ["system:authenticated"]}
    ns = ident.res["ns"]
    user: dict[str, Any] = {"username": ident.key, "uid": ident.principal_id,
                            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                       "system:authenticated"]}
    pod = c.extra.get("pod")
    if pod:
        user["extra"] = {"authentication.kubernetes.io/pod-name": [pod[0]],
                         "authentication.kubernetes.io/pod-uid": [pod[1]]}
    return user


def _status(c: Call, verb: str, res: str, x: dict[str, Any]) -> dict[str, Any]:
    code = x["code"]
    if code < 400:
        return {"metadata": {}, "code": code}
    if code == 404:
        return {"metadata": {}, "status": "Failure", "message":
                f"{res} \"{x['name']}\" not found", "reason": "NotFound",
                "details": {"name": x["name"], "kind": res}, "code": 404}
    scope = f"in the namespace \"{x['ns']}\"" if x["ns"] else "at the cluster scope"
    group = GROUPS.get(res, "")
    return {"metadata": {}, "status": "Failure", "message":
            f"{res} is forbidden: User \"{c.ident.key}\" cannot {verb} resource \"{res}\" in "
            f"API group \"{group}\" {scope}", "reason": "Forbidden",
            "details": {"kind": res}, "code": 403}


def _annotations(c: Call, allowed: bool) -> dict[str, str]:
    if not allowed:
        return {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
    binding = c.ident.res.get("binding", c.ident.name)
    who = (f"ServiceAccount \"{c.ident.name}/{c.ident.res['ns']}\""
           if c.ident.kind != "human" else f"Group \"{c.ident.res['groups'][0]}\"")
    return {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason":
            f"RBAC: allowed by ClusterRoleBinding \"{binding}\" of ClusterRole \"{binding}\" "
            f"to {who}"}


# --- the clusters' populations ------------------------------------------------------------

# kube-controller-manager loops (with service-account credentials): name, calls per hour,
# then verb:resource=weight.
_CONTROLLER_TABLE = """
replicaset-controller 3.0 create:pods=3 delete:pods=2 update:replicasets/status=4
deployment-controller 1.5 update:deployments/status=3 create:replicasets=1 update:replicasets=2
endpointslice-controller 4.0 update:endpointslices=5 create:endpointslices=1
job-controller 1.5 create:pods=2 update:jobs/status=3 delete:pods=1
cronjob-controller 1.0 create:jobs=2 update:cronjobs/status=2 delete:jobs=1
horizontal-pod-autoscaler 2.0 update:horizontalpodautoscalers/status=4 update:deployments/scale=1
generic-garbage-collector 1.0 delete:replicasets=2 delete:pods=2 delete:jobs=1
namespace-controller 0.2 list:configmaps=1 delete:namespaces=0.05
node-controller 1.5 update:nodes/status=3 patch:nodes=1
daemon-set-controller 0.8 create:pods=1 update:daemonsets/status=2
statefulset-controller 0.6 update:statefulsets/status=2 create:pods=1
service-account-controller 0.2 create:serviceaccounts=1 create:configmaps=0.5
pvc-protection-controller 0.3 update:persistentvolumeclaims=1
resourcequota-controller 0.3 update:resourcequotas/status=1
disruption-controller 0.5 update:poddisruptionbudgets/status=1
"""


def _parse_controllers(table: str) -> list[tuple[str, list[tuple[str, float]], float]]:
    out = []
    for line in table.strip().splitlines():
        name, rate, *ops = line.split()
        out.append((name, [(op.split("=")[0], float(op.split("=")[1])) for op in ops],
                    float(rate)))
    return out


CONTROLLERS = _parse_controllers(_CONTROLLER_TABLE)
APPS = ["payments-api", "orders", "checkout", "catalog", "search", "notifications", "billing",
        "inventory", "shipping", "pricing", "auth", "gateway", "reporting", "fraud",
        "ledger", "accounts", "media", "webhooks", "scheduler", "events", "loyalty", "reviews",
        "cart", "tax", "returns", "subscriptions", "emails", "feeds", "exports", "partners",
        "quotes", "invoices", "warehouse", "routing", "labels", "promotions", "sessions",
        "uploads", "translations", "sitemaps"]


def _operators(g: Gen, cluster: str, rng: Rng, apps: list[str]) -> list[dict[str, Any]]:
    v = "linux/amd64"
    return [
        dict(ns="cert-manager", name="cert-manager", ops=[
            ("get:certificates", 3), ("update:certificates/status", 1), ("get:secrets", 3),
            ("update:secrets", 0.3), ("create:certificaterequests", 0.2),
            ("update:leases", 2)], rate=4.0, ua=f"cert-manager-controller/v1.16.1 ({v}) "
            "cert-manager/f4fe4a6bd35d5a3ac1f0b8d3f0e1f19a3c3f1e1a", spread=True),
        dict(ns="argocd", name="argocd-application-controller", ops=[
            ("get:deployments", 3), ("patch:deployments", 1), ("list:applications", 1),
            ("update:applications/status", 3), ("get:services", 1), ("get:configmaps", 1)],
            rate=8.0, ua="argocd-application-controller/v0.0.0 (linux/amd64) "
            "kubernetes/$Format", spread=True),
        dict(ns="argocd", name="argocd-server", ops=[
            ("get:applications", 3), ("list:applications", 1), ("get:secrets", 0.5)],
            rate=1.5, ua="argocd-server/v0.0.0 (linux/amd64) kubernetes/$Format"),
        dict(ns="external-secrets", name="external-secrets", ops=[
            ("get:externalsecrets", 2), ("update:secrets", 1), ("update:externalsecrets/status",
                                                              2), ("get:secrets", 1)],
            rate=3.0, ua="external-secrets/v0.10.4 (linux/amd64) kubernetes/$Format", spread=True),
        dict(ns="karpenter", name="karpenter", ops=[
            ("create:nodeclaims", 0.3), ("delete:nodeclaims", 0.2), ("patch:nodes", 1),
            ("list:pods", 2), ("update:leases", 2), ("update:nodeclaims/status", 1)], rate=3.0,
            ua="karpenter/v1.0.6"),
        dict(ns="kube-system", name="aws-load-balancer-controller", ops=[
            ("update:targetgroupbindings/status", 2), ("get:ingresses", 1),
            ("update:ingresses/status", 0.3), ("update:leases", 2)], rate=2.0,
            ua="aws-load-balancer-controller/v2.9.2 (linux/amd64)"),
        dict(ns="kube-system", name="external-dns", ops=[
            ("list:ingresses", 1), ("list:services", 1), ("list:nodes", 0.3)], rate=1.0,
            ua="external-dns/v0.15.0 (linux/amd64) kubernetes/$Format", spread=False),
        dict(ns="monitoring", name="prometheus-operator", ops=[
            ("update:statefulsets", 0.5), ("get:secrets", 1), ("update:secrets", 0.5),
            ("get:servicemonitors", 2), ("update:prometheuses/status", 1)], rate=2.0,
            ua="PrometheusOperator/0.77.1"),
        dict(ns="monitoring", name="kube-state-metrics", ops=[
            ("list:pods", 1), ("list:deployments", 1), ("list:nodes", 1), ("list:jobs", 1)],
            rate=1.0, ua="kube-state-metrics/v2.13.0 (linux/amd64) kubernetes/$Format"),
        dict(ns="kube-system", name="metrics-server", ops=[("get:nodes/metrics", 1),
                                                           ("list:nodes", 1)],
             rate=1.0, ua="metrics-server/v0.7.2 (linux/amd64) kubernetes/$Format"),
        dict(ns="kube-system", name="coredns", ops=[("list:endpointslices", 1),
                                                     ("list:services", 1)],
             rate=0.4, ua="coredns/v1.11.3 (linux/amd64) kubernetes/$Format"),
        dict(ns="velero", name="velero", ops=[
            ("create:backups", 0.2), ("list:persistentvolumeclaims", 1), ("update:backups", 0.5)],
            rate=0.5, ua="velero-server/v1.14.1 (linux/amd64) "
            "8afe3cea8b7058f7baaf447b9fb407312c40d2da"),
        dict(ns="kyverno", name="kyverno-reports-controller", ops=[
            ("update:policyreports", 2), ("list:pods", 1)], rate=2.0,
            ua="kyverno/v1.12.5 (linux/amd64) kubernetes/$Format", spread=True),
        dict(ns="datadog", name="datadog-cluster-agent", ops=[
            ("list:events", 1), ("get:configmaps", 1), ("update:leases", 1), ("list:nodes", 0.5)],
            rate=2.0, ua="datadog-cluster-agent/v7.58.2 (linux/amd64) kubernetes/$Format"),
    ]


def cluster(g: Gen, env: str, n_apps: int) -> dict[str, Any]:
    """Simulate one cluster's service accounts; returns handles the scenarios reuse."""
    name = world.CLUSTERS[env]
    rng = Rng(f"{g.seed}|cluster|{name}")
    base = world.VPC[env]
    cp_nets = [f"{base}.0", f"{base}.1"]
    apps = [suffixed(APPS[i % len(APPS)], i // len(APPS)) for i in range(n_apps)]
    for ctrl, ops, rate in CONTROLLERS:
        sa_actor(g, name, "kube-system", ctrl, "k8s_controller", ops, rate * 0.3,
                 world.K8S_CONTROLLER_UA.format(f"system:serviceaccount:kube-system:{ctrl}"),
                 cp_nets, namespaces=apps + ["kube-system"], pod_days=0)
    for op in _operators(g, name, rng, apps):
        nets = [f"{base}.{rng.randint(64, 127)}"]
        sa_actor(g, name, op["ns"], op["name"], "k8s_operator", op["ops"],
                 op["rate"] * 0.5, op["ua"], nets,
                 namespaces=apps if op.get("spread") else None, lease=op["name"])
    handles: dict[str, Any] = {"apps": {}}
    for app in apps:
        nets = [f"{base}.{rng.randint(64, 127)}", f"{base}.{rng.randint(64, 127)}"]
        ua = rng.choice((f"{app}/1.0 (linux/amd64) kubernetes/$Format", "Go-http-client/2.0",
                         "python-requests/2.32.3", "okhttp/4.12.0"))
        ops = [("get:configmaps", 3), ("update:leases", rng.choice((0, 2))), ("get:secrets", 0.5)]
        ops = [(o, w) for o, w in ops if w]
        first = 12 if app == "recommendations" else 0
        ident, _ = sa_actor(g, name, app, app, "k8s_app", ops, rng.uniform(0.2, 0.8), ua, nets,
                            configmap=f"{app}-config", secret=f"{app}-db", lease=f"{app}-leader",
                            app=app, first_day=first)
        handles["apps"][app] = (ident, nets, ua)
    if env == "prod":
        nets = [f"{base}.{rng.randint(64, 127)}"]
        sa_actor(g, name, "recommendations", "recommendations", "k8s_app",
                 [("get:configmaps", 3), ("update:leases", 2)], 1.2,
                 "Go-http-client/2.0", nets, first_day=12, configmap="recommendations-config",
                 lease="recommendations-leader", app="recommendations")
    return handles


def oidc_user(g: Gen, cluster: str, email: str, groups: list[str]) -> tuple[Identity, Rng]:
    ident = Identity(key=f"oidc:{email}", source="k8s", archetype="human_kubectl",
                     kind="human", tenant=cluster, name=email,
                     res={"groups": [f"oidc:{grp}" for grp in groups]})
    return ident, g.register(ident)


def human_kubectl(g: Gen, ident: Identity, rng: Rng, t: float, ip: str, ua: str,
                  apps: list[str], oncall: bool) -> None:
    """A short kubectl session: look at pods, logs, rollouts; on-call people exec."""
    ns = rng.choice(apps)
    ops = [("list:pods", 3), ("get:pods", 2), ("get:pods/log", 3), ("get:deployments", 2),
           ("list:events", 1), ("patch:deployments", 0.3), ("list:namespaces", 0.5)]
    if oncall:
        ops.append(("create:pods/exec", 0.4))
    for _ in range(rng.randint(3, 14)):
        emit_k8s(g, ident, rng, t, rng.weighted(ops), ip=ip, ua=ua, ns=ns)
        t += rng.uniform(3, 90)
