"""Kubernetes audit techniques whose own request carries the evidence.

``check`` is called by ``detector.sources.k8s`` for a successful request whose action
(``k8s:<resource>[/<subresource>].<verb>``) is in ``ACTIONS``, or whose user is the
anonymous user; everything else pays one set look-up. The request body (``requestObject``)
exists only at the ``Request`` and ``RequestResponse`` audit levels: at ``Metadata`` level
the body checks find nothing and say nothing, rather than guess.

Controllers are told apart by the request's shape, not by their names: a pod that names an
owner was made by a controller from a template, which was checked when the workload was
created; an informer lists secrets with a ``resourceVersion``, a one-shot dump does not;
the API server bootstraps the ``system:masters`` binding itself; the platform's own
controllers, which list secrets cluster-wide by design, run as ``kube-system`` service
accounts or as the control plane's ``system:`` users, and what a ``kube-system`` account
does inside ``kube-system`` (its daemon pods, its exec into its own pods) is the cluster
running itself. A refused request counts toward probing unless it is an informer's watch.
What a chart, an operator or a GitOps controller installs (``_released``) is not judged by
the shape rules added for escalation roles, webhooks, NodePorts and node agents.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from detector.techniques import Finding, Tally, refusal

ANONYMOUS = "system:anonymous"
_SA_PREFIX = "system:serviceaccount:"
# Roles that give everything: cluster-admin anywhere, admin when bound cluster-wide.
_ADMIN_ROLES = frozenset({"cluster-admin"})
_CLUSTER_ADMIN_ROLES = frozenset({"cluster-admin", "admin"})
# The control plane's own roles, which only its users are bound to: the controller manager
# reads every secret and mints tokens for every service account, the aggregation
# controller may escalate any ClusterRole, a node reads the secrets of its pods.
_CONTROL_PLANE_ROLES = frozenset({"system:kube-controller-manager", "system:node",
                                  "system:controller:clusterrole-aggregation-controller"})
# Role and binding names the API server creates at start-up (its bootstrap policy), which
# every cluster shares and which bind every user, node and controller: changing one changes
# what they all may do; deleting one breaks them until the API server restarts. Add-ons'
# own ``system:`` roles (CoreDNS, metrics-server) are upgraded by hand and are not here.
_BUILT_IN_CLUSTER_NAMES = frozenset({
    "cluster-admin", "admin", "edit", "view", "system:aggregate-to-admin",
    "system:aggregate-to-edit", "system:aggregate-to-view", "system:basic-user",
    "system:discovery", "system:public-info-viewer", "system:monitoring", "system:node",
    "system:node-proxier", "system:node-bootstrapper", "system:node-problem-detector",
    "system:kubelet-api-admin", "system:auth-delegator", "system:kube-aggregator",
    "system:kube-controller-manager", "system:kube-scheduler", "system:kube-dns",
    "system:persistent-volume-provisioner", "system:volume-scheduler", "system:heapster",
    "system:service-account-issuer-discovery",
})
_BUILT_IN_PREFIXES = ("system:controller", "system:certificates.k8s.io:")
# Service accounts of the controller manager's own controllers in kube-system (with
# --use-service-account-credentials): each may create pods in every namespace, delete any
# object, or escalate roles. A pod made by hand that runs as one of them has its token.
_CONTROLLER_ACCOUNTS = frozenset({
    "clusterrole-aggregation-controller", "generic-garbage-collector", "namespace-controller",
    "replicaset-controller", "deployment-controller", "daemon-set-controller",
    "statefulset-controller", "job-controller", "cronjob-controller", "replication-controller",
    "persistent-volume-binder", "horizontal-pod-autoscaler", "expand-controller",
    "certificate-controller", "bootstrap-signer", "token-cleaner", "node-controller"})
# Subjects that mean "everyone": binding them exposes the cluster, not one identity.
_PUBLIC_SUBJECTS = frozenset({"system:anonymous", "system:unauthenticated",
                              "system:authenticated"})
# Host paths that hand over the node: its root, its credentials, the container runtime.
_HOST_PATHS = frozenset({
    "/", "/etc", "/root", "/proc", "/var/run", "/run", "/var/lib/kubelet",
    "/var/lib/kubelet/pki", "/etc/kubernetes", "/etc/kubernetes/pki", "/home",
    "/var/run/docker.sock", "/run/docker.sock", "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/run/crio/crio.sock",
    "/var/lib/docker", "/var/lib/containerd",
})
# What the anonymous user may read on a default cluster (system:public-info-viewer, the
# service-account issuer discovery): success there is configuration, not exposure.
_PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version", "/.well-known/openid-configuration",
                 "/openid/v1/jwks")
_READ_VERBS = frozenset({"get", "list", "watch"})
# The control plane's own users (not service accounts, not anonymous): what they create is
# the cluster running itself (static pods' mirrors, add-ons).
_PLATFORM_USERS = ("system:node:", "system:kube-", "system:apiserver", "system:addon-manager",
                   "system:gke-", "eks:", "aksService")
# Google-managed service agents (GKE's robot, the gcp-sa-* agents of managed add-ons such as
# Config Sync, Service Mesh, Backup for GKE) sign GKE requests with their e-mail.
_GOOGLE_AGENTS = ("container-engine-robot", "@gcp-sa-")
# Paths whose reading through exec is credential theft: the mounted service-account token
# (also EKS's and Azure's projected tokens, under /var/run/secrets), mounted secrets, cloud
# CLI credentials, a kubeconfig, the node's PKI.
_CREDENTIAL_PATHS = ("/run/secrets/", "/var/run/secrets", "serviceaccount/token", "/secrets/",
                     "credentials", ".kube/config", "/etc/kubernetes/pki", "/.ssh/id_",
                     "/.docker/config.json")
# Capabilities that break out of the container: mount, load kernel modules, trace host
# processes, read any file, load BPF programs; ALL includes them.
_ESCAPE_CAPABILITIES = frozenset({"SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "DAC_READ_SEARCH",
                                  "BPF", "ALL"})
# Verbs on RBAC itself that let the holder grant what it does not hold, or act as another.
_ESCALATION_VERBS = ("escalate", "bind", "impersonate")
# Signer of client certificates for the API server (kubelets use ...-client-kubelet).
_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
# Ingress annotations and classes under which TLS ends before the ingress (an AWS ALB or a
# Google load balancer holding the certificate, Azure's application gateway), or which
# serve only inside the network.
_TLS_ELSEWHERE = ("alb.ingress.kubernetes.io/certificate-arn", "networking.gke.io/managed-",
                  "ingress.gcp.kubernetes.io/pre-shared-cert", "appgw-ssl-certificate",
                  "scheme=internal", "gce-internal", "internal-ingress", "class=internal")
# Key material in a text value: an AWS secret access key set to a value (not a template's
# placeholder: ``<key>``, ``${KEY}``, ``{{ .key }}``, ``%KEY%``), a PEM private key, a Google
# service-account key file.
_KEY_MATERIAL = re.compile(
    r"aws_secret_access_key\s*[=:]\s*['\"]?[^\s'\"<${%]{4}|-----BEGIN ([A-Z]+ )?PRIVATE KEY-----"
    r"|\"private_key\"\s*:\s*\"-----BEGIN", re.IGNORECASE)
_BREAK_GLASS = "alpha.image-policy.k8s.io/break-glass"
# Resources whose rewriting at admission hands over a workload or a credential.
_MUTATED = frozenset({"*", "pods", "deployments", "daemonsets", "statefulsets", "replicasets",
                      "jobs", "cronjobs", "secrets", "serviceaccounts"})
# Commands that fetch code and run it, or hand a shell to a remote host: a download piped
# into a shell or interpreter, a download made executable, bash's /dev/tcp, netcat's -e, a
# base64 blob piped into a shell. A backup job's "pg_dump | gzip | upload" is none of them.
_DROPPER = re.compile(
    r"(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(ba|da|z|k)?sh\b"
    r"|(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(python[0-9.]*|perl|ruby)\b"
    r"|(curl|wget)\b.{0,200}(&&|;)\s*chmod\s+(\+x|[0-7]*[157])\b"
    r"|/dev/(tcp|udp)/|\bn(c|cat)\b[^|;&]*\s-[a-z]*e\s"
    r"|base64\s+(-d|--decode)[^;&]*\|\s*(ba|da|z|k)?sh\b")
# Label and annotation keys that deploy tools write on every object of a release (Helm,
# its hooks, the Operator Lifecycle Manager, Argo CD, Flux), and the user agents of those
# tools and of infrastructure-as-code clients.
_RELEASE_MARKS = ("meta.helm.sh/", "helm.sh/hook", "olm.owner", "argocd.argoproj.io/",
                  "kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")
_RELEASE_MANAGERS = frozenset({"helm", "tiller", "kustomize", "argocd", "flux", "olm"})
_DEPLOY_AGENTS = ("helm/", "argocd", "kustomize-controller", "helm-controller", "terraform",
                  "hashicorp", "pulumi")


def as_dict(value: Any) -> dict[str, Any]:
    """The value when it is a dict, else an empty dict (this package must not import the
    sources, which import it)."""
    return value if isinstance(value, dict) else {}


def check(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """The findings of one successful audit request (none when a field cannot be read)."""
    rule = _RULES.get(action)
    found = rule(record, action, username) if rule is not None else []
    if username == ANONYMOUS:
        found.extend(_anonymous(record, action))
    return found


def refused_request(record: dict[str, Any], action: str, username: str,
                    error: str) -> list[Any]:
    """What a request refused for lack of permission adds (see ``techniques.refusal``),
    except for the anonymous user, whom every scanner of a public API server is refused
    as, and for an informer's list or watch: a controller missing a permission retries the
    same watch for ever, and one missing several at start-up would look like a credential
    trying what it may do. Probing is one-shot requests."""
    if username in (ANONYMOUS, "system:unauthenticated"):
        return []
    verb = action.rpartition(".")[2]
    if verb == "watch":
        return []
    if verb == "list":
        uri = record.get("requestURI")
        if isinstance(uri, str) and ("resourceVersion=" in uri or "watch=" in uri):
            return []
    return refusal("k8s", action, error)


def _released(record: dict[str, Any]) -> bool:
    """Whether the written object comes from an install rather than a hand: it names an
    owner (an operator made it for its own resource), it carries a deploy tool's labels or
    annotations, or a deploy tool sent it. Charts and operators create roles that read
    ``nodes/proxy``, webhooks, NodePort services and privileged node agents at every
    install and upgrade; the rules that judge such objects by shape alone skip them, and
    the identity's behaviour is still learnt and scored. Labels can be forged: a hand that
    knows to write them is left to the behavioural detectors."""
    meta = as_dict(_body(record, "metadata"))
    if _owned(meta, record):
        return True
    labels = as_dict(meta.get("labels"))
    manager = labels.get("app.kubernetes.io/managed-by")
    if isinstance(manager, str) and manager.lower() in _RELEASE_MANAGERS:
        return True
    keys = [*list(labels)[:100], *list(as_dict(meta.get("annotations")))[:100]]
    if any(isinstance(key, str) and key.startswith(_RELEASE_MARKS) for key in keys):
        return True
    agent = record.get("userAgent")
    return isinstance(agent, str) and any(mark in agent[:256].lower()
                                          for mark in _DEPLOY_AGENTS)


def _owned(meta: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether the object names an owner and a controller wrote it. An owner reference
    from a hand client (kubectl, curl, a script: ``_by_hand``) is a forgery a controller
    never needs: a stolen service-account token created a privileged pod with a made-up
    ReplicaSet owner, and the pod rules took it for a controller's."""
    owners = meta.get("ownerReferences")
    return isinstance(owners, list) and bool(owners) and not _by_hand(record) \
        and not _bare_http(record)


_BARE_HTTP = re.compile(r"(?:^|[\s(])(?:go-http-client|python-httpx|httpx|aiohttp|node-fetch|"
                        r"axios|undici|okhttp|apache-httpclient|java/|java-http-client|"
                        r"python-urllib|python-urllib3|libcurl|reqwest|hyper/|faraday|ruby|"
                        r"deno/|bun/|dart/|got(?:/|\s|$)|node(?:/|$))", re.IGNORECASE)
"""Bare HTTP libraries: a request sent with one of them was not written by a controller
(client-go, fabric8, kopf and the others name themselves, and Kubernetes' own controllers
name their binary). A request with no user agent at all is not judged by it: real audit
exports (Falco's) leave it out of controllers' requests too."""


def _bare_http(record: dict[str, Any]) -> bool:
    agent = record.get("userAgent")
    return isinstance(agent, str) and _BARE_HTTP.search(agent) is not None


def _by_hand(record: dict[str, Any]) -> bool:
    """Whether a person's or a script's client sent the request (``HAND_FAMILIES``)."""
    # (imported here: the sources import this module; read for a few requests only)
    from detector.sources.common import HAND_FAMILIES, user_agent

    return user_agent(record.get("userAgent"))[1] in HAND_FAMILIES


def _body(record: dict[str, Any], key: str) -> Any:
    """A field of the request body, else of the response body (patches carry only the
    change; the response carries the whole object at RequestResponse level)."""
    value = as_dict(record.get("requestObject")).get(key)
    if value is None:
        value = as_dict(record.get("responseObject")).get(key)
    return value


def _binding(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    cluster_wide = action.startswith("k8s:clusterrolebindings")
    role = as_dict(_body(record, "roleRef")).get("name")
    if not isinstance(role, str) or role not in (
            _CLUSTER_ADMIN_ROLES | _CONTROL_PLANE_ROLES if cluster_wide else _ADMIN_ROLES):
        return []
    subjects = _body(record, "subjects")
    named = [_subject(item) for item in subjects] if isinstance(subjects, list) else []
    named = [item for item in named if item is not None and item[1] != "system:masters"]
    if not named or username == "system:apiserver":
        return []
    if role in _CONTROL_PLANE_ROLES:
        return _control_plane_binding(record, role, named, username)
    public = [f"{kind} {name}" for kind, name in named if name in _PUBLIC_SUBJECTS]
    kind = "ClusterRoleBinding" if cluster_wide else "RoleBinding"
    binding = _object_name(record)
    shown = ", ".join(f"{kind_} {name}" for kind_, name in named[:4])
    if public:
        return [Finding("k8s.admin_binding", "critical", ("T1098.006",),
                        f"{kind} {binding} grants {role} to {', '.join(public)}: "
                        "everyone who can reach the API server", public[0])]
    return [Finding("k8s.admin_binding", "high" if cluster_wide else "medium", ("T1098.006",),
                    f"{kind} {binding} grants {role} to {shown}", f"{named[0][0]} {named[0][1]}")]


def _control_plane_binding(record: dict[str, Any], role: str, named: list[tuple[str, str]],
                           username: str) -> list[Finding]:
    """A ClusterRoleBinding that hands one of the control plane's roles to an ordinary
    account: the platform binds them to its own ``system:`` users and groups only."""
    outside = [(kind, name) for kind, name in named if not name.startswith("system:")
               or kind == "ServiceAccount"]
    if not outside or _platform_user(username):
        return []
    shown = ", ".join(f"{kind} {name}" for kind, name in outside[:4])
    return [Finding("k8s.admin_binding", "high", ("T1098.006",),
                    f"ClusterRoleBinding {_object_name(record)} grants the control plane's "
                    f"role {role} to {shown}", f"{outside[0][0]} {outside[0][1]}")]


def _built_in(record: dict[str, Any], action: str) -> bool:
    """Whether the object is one of the API server's own roles or bindings: cluster-wide by
    name, or a ``system:`` role of ``kube-system`` or ``kube-public``."""
    ref = as_dict(record.get("objectRef"))
    name = ref.get("name")
    if not isinstance(name, str):
        return False
    if action.startswith("k8s:cluster"):
        return name in _BUILT_IN_CLUSTER_NAMES or name.startswith(_BUILT_IN_PREFIXES)
    return ref.get("namespace") in ("kube-system", "kube-public") and (
        name.startswith("system:") or name == "extension-apiserver-authentication-reader")


def _system_rbac(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """One of the API server's own roles or bindings changed or deleted by someone who is
    not the control plane: a rule added to ``system:basic-user`` or ``view`` reaches every
    account bound to it, without a binding that names the intruder (T1098.006); a deletion
    breaks the nodes or controllers bound to it until the API server restarts."""
    if _system_user(username) or username == ANONYMOUS or not _built_in(record, action) \
            or _released(record):
        return []
    verb = action.rpartition(".")[2]
    kind = {"clusterroles": "ClusterRole", "clusterrolebindings": "ClusterRoleBinding",
            "roles": "Role", "rolebindings": "RoleBinding"}.get(
        action[4:].partition(".")[0], "object")
    name = _object_name(record)
    who = _who(username)
    if verb.startswith("delete"):
        return [Finding("k8s.system_rbac_changed", "medium", ("T1098.006",),
                        f"built-in {kind} {name} deleted by {who}", name)]
    return [Finding("k8s.system_rbac_changed", "high", ("T1098.006",),
                    f"built-in {kind} {name} changed by {who}: it applies to every account "
                    "the cluster binds to it", name)]


def _role_change(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A role or binding update: the built-in object check, then the body's own check."""
    check = _binding if "bindings." in action else _wildcard_role
    return _system_rbac(record, action, username) + check(record, action, username)


def _wildcard_role(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A role allowing every verb on every resource: cluster-admin under another name, which
    a later binding to it would hand over without naming cluster-admin."""
    if _system_user(username):
        return []  # the platform's own roles and the aggregation controller's updates
    rules = _body(record, "rules")
    kind = "ClusterRole" if action.startswith("k8s:clusterroles") else "Role"
    grants: list[str] = []
    for rule in rules[:100] if isinstance(rules, list) else ():
        rule = as_dict(rule)
        verbs, resources = rule.get("verbs"), rule.get("resources")
        if not isinstance(verbs, list) or not isinstance(resources, list):
            continue
        if "*" in verbs and "*" in resources:
            name = _object_name(record)
            return [Finding("k8s.wildcard_role", "medium", ("T1098.006",),
                            f"{kind} {name} allows every verb on every resource", name)]
        grants.extend(_escalation_grants(verbs, resources, kind == "ClusterRole"))
    if not grants or _released(record):
        return []
    name = _object_name(record)
    return [Finding("k8s.escalation_role", "medium", ("T1098.006", "T1611"),
                    f"{kind} {name} allows {', '.join(dict.fromkeys(grants))}: a path to more "
                    "than the role names", name)]


def _escalation_grants(verbs: list[Any], resources: list[Any], cluster: bool) -> list[str]:
    """What one rule grants that reaches beyond itself: ``nodes/proxy`` (the kubelet's API,
    which runs commands in every pod of the node and bypasses admission and audit), every
    resource (secrets included), or the RBAC verbs that grant or assume what the holder
    lacks. In a ClusterRole also: exec or attach in every pod (a shell beside each pod's
    mounted token), minting a token for any service account, and every verb on secrets.
    Reading nodes, or a rule on pods, is not such a grant; nor is exec in one namespace,
    which teams give their developers."""
    out: list[str] = []
    wanted = [v for v in verbs if isinstance(v, str)]
    if not wanted:
        return out
    create = "*" in wanted or "create" in wanted
    for resource in resources[:100]:
        if resource == "*":
            out.append(f"{'/'.join(wanted[:3])} on every resource")
        elif resource in ("nodes/proxy", "nodes/*"):
            out.append(f"{'/'.join(wanted[:3])} on {resource}")
        elif cluster and resource in ("pods/exec", "pods/attach", "pods/*") and (
                create or "get" in wanted):  # get opens exec over a WebSocket
            out.append(f"{'/'.join(wanted[:3])} on {resource} in every namespace")
        elif cluster and create and resource == "serviceaccounts/token":
            out.append("minting tokens for every service account")
        elif cluster and resource == "secrets" and "*" in wanted:
            out.append("every verb on the secrets of every namespace")
    out.extend(f"the {verb} verb" for verb in _ESCALATION_VERBS if verb in wanted)
    return out


def _subject(item: Any) -> tuple[str, str] | None:
    if not isinstance(item, dict):
        return None
    kind, name, namespace = item.get("kind"), item.get("name"), item.get("namespace")
    if not isinstance(name, str) or not name:
        return None
    kind = kind if isinstance(kind, str) and kind else "subject"
    if kind == "ServiceAccount" and isinstance(namespace, str) and namespace:
        name = f"{namespace}/{name}"
    return kind[:32], name[:256]


def _object_name(record: dict[str, Any]) -> str:
    ref = as_dict(record.get("objectRef"))
    name = ref.get("name")
    if not isinstance(name, str) or not name:
        name = as_dict(_body(record, "metadata")).get("name")
    if not isinstance(name, str) or not name:
        return "(unnamed)"
    namespace = ref.get("namespace")
    return f"{namespace}/{name}"[:256] if isinstance(namespace, str) and namespace \
        else name[:256]


def _pod(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A pod, or a workload's pod template, created: its privileges, then Binary
    Authorization's break-glass."""
    if _platform(username, as_dict(record.get("objectRef")).get("namespace")):
        return []  # nodes' mirror pods, control plane, kube-system controllers, GKE's agent
    obj = as_dict(record.get("requestObject"))
    if _owned(as_dict(obj.get("metadata")), record):
        return []  # made by a controller from a template, not by hand
    return _pod_shape(record, action, obj) + _break_glass(record, action, obj)


def pod_template(obj: dict[str, Any], action: str) -> dict[str, Any]:
    """The pod template (``metadata`` and ``spec``) of the object an action writes: a pod
    is its own, a CronJob's is ``spec.jobTemplate.spec.template``, every other workload's
    ``spec.template``; empty when that path is missing or holds something other than an
    object. The kind in the action decides where to look, never the keys found: the rules
    that read a template used to dig it out each their own way, so a CronJob without a
    ``jobTemplate`` had its ``spec.template`` judged by one rule and not by another, and a
    Deployment's stray ``jobTemplate`` was taken for its template."""
    if action.startswith("k8s:pods."):
        return obj
    spec = as_dict(obj.get("spec"))
    if action.startswith("k8s:cronjobs."):
        spec = as_dict(as_dict(spec.get("jobTemplate")).get("spec"))
    return as_dict(spec.get("template"))


def _break_glass(record: dict[str, Any], action: str, obj: dict[str, Any]) -> list[Finding]:
    """A pod or pod template annotated with GKE Binary Authorization's break-glass
    (``alpha.image-policy.k8s.io/break-glass: "true"``): its images run whether or not
    they were signed and attested, the policy's check skipped. Meant for emergencies,
    and as good for an image an attacker built."""
    meta = as_dict(pod_template(obj, action).get("metadata"))
    flag = as_dict(meta.get("annotations")).get(_BREAK_GLASS)
    if not isinstance(flag, str) or flag.lower() != "true":
        return []
    kind = action[4:].partition(".")[0].rstrip("s")
    name = _object_name(record)
    return [Finding("k8s.binary_authorization_bypass", "medium", ("T1562.001", "T1610"),
                    f"{kind} {name} created with Binary Authorization's break-glass: its "
                    "images run unverified", name)]


def _pod_shape(record: dict[str, Any], action: str, obj: dict[str, Any]) -> list[Finding]:
    """What the pod's spec (a workload's pod template) lets its containers do on the node."""
    spec = as_dict(pod_template(obj, action).get("spec"))
    workload = action != "k8s:pods.create"
    severe: list[str] = []
    mild: list[str] = []
    if spec.get("hostPID") is True:
        severe.append("hostPID")
    for flag in ("hostNetwork", "hostIPC"):
        if spec.get(flag) is True:
            mild.append(flag)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        containers = spec.get(key)
        for container in containers if isinstance(containers, list) else ():
            container = as_dict(container)
            context = as_dict(container.get("securityContext"))
            name = container.get("name")
            if context.get("privileged") is True:
                severe.append(f"privileged container {str(name)[:64]}" if name
                              else "privileged container")
            added = as_dict(context.get("capabilities")).get("add")
            for capability in added[:50] if isinstance(added, list) else ():
                if isinstance(capability, str) and \
                        capability.upper().removeprefix("CAP_") in _ESCAPE_CAPABILITIES:
                    severe.append(f"capability {capability[:32]}"
                                  + (f" in container {str(name)[:64]}" if name else ""))
    volumes = spec.get("volumes")
    for volume in volumes if isinstance(volumes, list) else ():
        path = as_dict(as_dict(volume).get("hostPath")).get("path")
        if isinstance(path, str) and (path.rstrip("/") or "/") in _HOST_PATHS:
            severe.append(f"hostPath {path[:128]}")
    if not severe and not mild:
        return _system_namespace_pod(record, action)
    if workload and _released(record):
        return []  # a chart's or operator's node agent (CNI, monitoring, security agents)
    evidence = ", ".join(severe + mild)
    if workload:  # installs of node agents by hand look the same: worth a look
        kind = action[4:].partition(".")[0].rstrip("s")
        return [Finding("k8s.privileged_pod", "medium", ("T1610", "T1611"),
                        f"{kind} {_object_name(record)} created with pods running {evidence}",
                        (severe + mild)[0])]
    return [Finding("k8s.privileged_pod", "high" if severe else "medium", ("T1610", "T1611"),
                    f"pod {_object_name(record)} created by hand with {evidence}",
                    (severe + mild)[0])]


def _cronjob(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A CronJob written by hand whose job downloads code and runs it, or opens a shell to
    a remote host: persistence that comes back on schedule in a fresh pod, after the
    first one is found and deleted. Its pod template is judged too (``_pod``)."""
    found = _pod(record, action, username) if action == "k8s:cronjobs.create" else []
    namespace = as_dict(record.get("objectRef")).get("namespace")
    if _platform(username, namespace) or _released(record):
        return found
    if action == "k8s:cronjobs.create":
        found.extend(_cronjob_by_account(record, username, namespace))
    spec = as_dict(pod_template({"spec": _body(record, "spec")}, action).get("spec"))
    for key in ("initContainers", "containers"):
        containers = spec.get(key)
        for container in containers[:20] if isinstance(containers, list) else ():
            container = as_dict(container)
            words = [word for field in ("command", "args")
                     for word in (container.get(field) if isinstance(container.get(field), list)
                                  else ())[:50] if isinstance(word, str)]
            line = " ".join(words)[:2048]
            if _DROPPER.search(line.lower()):
                name = _object_name(record)
                return found + [Finding(
                    "k8s.cronjob_dropper", "high", ("T1053.007", "T1610"),
                    f"CronJob {name} runs {line[:160]!r} on schedule: it fetches code and runs "
                    "it, or opens a shell to a remote host", name)]
    return found


def _cronjob_by_account(record: dict[str, Any], username: str,
                        namespace: Any) -> list[Finding]:
    """A CronJob created by a service account, by hand (no owner, no deploy tool's marks):
    workloads do not schedule new workloads, but a token taken from a pod can, and a
    CronJob brings its pod back on schedule after the first is found and deleted. Into a
    platform namespace, or another namespace than the account's own, it also hides
    among, or reaches beyond, what the account runs. Operators that schedule jobs for
    their resources name them as owner; charts and GitOps controllers mark what they
    install; the platform's kube-system accounts in its own namespaces are the cluster."""
    account = _account(username)
    if account is None:
        return []
    name = _object_name(record)
    hidden = isinstance(namespace, str) and namespace.startswith(("kube-", "gke-"))
    other = isinstance(namespace, str) and namespace != account[0]
    where = f" in the platform namespace {namespace[:64]}" if hidden else \
        f" outside its own namespace {account[0]}" if other else ""
    return [Finding("k8s.cronjob_by_service_account", "high" if hidden or other else "medium",
                    ("T1053.007", "T1610"),
                    f"service account {account[0]}/{account[1]} created CronJob {name}{where}:"
                    " a workload that comes back on schedule", name)]


def _system_namespace_pod(record: dict[str, Any], action: str) -> list[Finding]:
    """A pod made by hand (no owner) in a platform namespace by someone who is not the
    platform: among the cluster's own pods it hides, and it runs beside their credentials."""
    namespace = as_dict(record.get("objectRef")).get("namespace")
    if action != "k8s:pods.create" or not isinstance(namespace, str) \
            or not namespace.startswith(("kube-", "gke-")) or _released(record):
        return []  # a chart's hook or test pod is part of its install
    name = _object_name(record)
    spec = as_dict(as_dict(record.get("requestObject")).get("spec"))
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if namespace == "kube-system" and account in _CONTROLLER_ACCOUNTS:
        return [Finding("k8s.pod_in_system_namespace", "high", ("T1610", "T1528"),
                        f"pod {name} created by hand in kube-system running as the "
                        f"controller account {account}: it holds that controller's token",
                        name)]
    return [Finding("k8s.pod_in_system_namespace", "medium", ("T1610", "T1036.005"),
                    f"pod {name} created by hand in the platform namespace {namespace[:64]}",
                    name)]


def _service(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A NodePort service: it opens a port on every node's address, around any ingress or
    load balancer, which a backdoor pod needs to be reached from outside."""
    if _platform(username, as_dict(record.get("objectRef")).get("namespace")):
        return []
    spec = as_dict(_body(record, "spec"))
    if spec.get("type") != "NodePort" or _released(record):
        return []
    ports = [str(as_dict(port).get("nodePort") or as_dict(port).get("port"))
             for port in (spec.get("ports") if isinstance(spec.get("ports"), list) else ())[:20]]
    name = _object_name(record)
    shown = f" (ports {', '.join(ports[:5])})" if ports else ""
    return [Finding("k8s.nodeport_service", "low", ("T1133",),
                    f"NodePort service {name} exposes a port on every node{shown}", name)]


def _ingress(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """An Ingress created by hand with hosts and no ``tls`` section, which the cluster's
    ingress controller serves in clear text: tokens, cookies and passwords that reach it
    cross the network readable. Low: it is exposure, not yet an attack. TLS ended at the
    cloud load balancer (an ALB certificate, GKE managed or pre-shared certificates, an
    Azure gateway certificate) and internal-only classes are not exposure; charts, GitOps
    controllers and operators (cert-manager's ACME solver ingresses name their owner) are
    installed objects. The platform namespaces (``kube-*``, ``gke-*``) hold the add-ons'
    own dashboards and are left to the platform's administrators."""
    namespace = as_dict(record.get("objectRef")).get("namespace")
    if _platform(username, namespace) or _released(record) or (
            isinstance(namespace, str) and namespace.startswith(("kube-", "gke-"))):
        return []
    spec = as_dict(_body(record, "spec"))
    rules = spec.get("rules")
    if spec.get("tls") or not isinstance(rules, list) or not rules:
        return []
    meta = as_dict(_body(record, "metadata"))
    annotations = as_dict(meta.get("annotations"))
    marks = " ".join(f"{key}={value}" for key, value in list(annotations.items())[:100]
                     if isinstance(key, str) and isinstance(value, str))
    marks += f" class={spec.get('ingressClassName')}"
    if any(mark in marks for mark in _TLS_ELSEWHERE):
        return []
    hosts = [as_dict(rule).get("host") for rule in rules[:20]]
    shown = ", ".join(h[:64] for h in hosts if isinstance(h, str) and h) or "every host"
    name = _object_name(record)
    return [Finding("k8s.ingress_without_tls", "low", ("T1040",),
                    f"Ingress {name} serves {shown[:200]} without TLS, created by "
                    f"{_who(username)}", name)]


def _exec(record: dict[str, Any], action: str, username: str, what: str = "") -> list[Finding]:
    """An exec, attach or port-forward: credential paths in the command for anyone, and
    any of them by a service account, which no workload needs (only a person debugging)."""
    namespace = as_dict(record.get("objectRef")).get("namespace")
    if _platform(username, namespace):
        return []
    target = _object_name(record)
    what = what or action[9:].partition(".")[0].replace("portforward", "port-forward")
    command = _command(record)
    lowered = command.lower()
    path = next((mark for mark in _CREDENTIAL_PATHS if mark in lowered), None)
    if path is not None:
        who = username[:128] if not username.startswith(_SA_PREFIX) \
            else "service account " + username[len(_SA_PREFIX):].replace(":", "/", 1)[:128]
        return [Finding("k8s.exec_reads_credentials", "high", ("T1552.007", "T1609"),
                        f"{who} ran {command[:160]!r} in pod {target}: it reads credentials "
                        "mounted in the container", target)]
    account = _account(username)
    if account is None:
        return []
    other = isinstance(namespace, str) and namespace != account[0]
    where = f", outside its own namespace {account[0]}" if other else ""
    return [Finding("k8s.service_account_exec", "high" if other else "medium", ("T1609",),
                    f"service account {account[0]}/{account[1]} ran {what} in pod "
                    f"{target}{where}", target)]


def _ephemeral(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A debug container added to a running pod (``kubectl debug``): it shares the pod's
    network and, with a target, its processes and their files, mounted token included. A
    service account doing it is judged as an exec; anyone adding a privileged or
    escape-capable one has a root shell on the node without creating a pod."""
    namespace = as_dict(record.get("objectRef")).get("namespace")
    if _platform(username, namespace):
        return []
    evidence: list[str] = []
    containers = as_dict(_body(record, "spec")).get("ephemeralContainers")
    for container in containers[:20] if isinstance(containers, list) else ():
        context = as_dict(as_dict(container).get("securityContext"))
        if context.get("privileged") is True:
            evidence.append("privileged")
        added = as_dict(context.get("capabilities")).get("add")
        evidence.extend(f"capability {cap[:32]}" for cap in
                        (added[:50] if isinstance(added, list) else ())
                        if isinstance(cap, str)
                        and cap.upper().removeprefix("CAP_") in _ESCAPE_CAPABILITIES)
    found = _exec(record, action, username, "a debug container")
    if evidence:
        target = _object_name(record)
        who = username[:128] if not username.startswith(_SA_PREFIX) else \
            "service account " + username[len(_SA_PREFIX):].replace(":", "/", 1)[:128]
        found.append(Finding("k8s.privileged_pod", "medium", ("T1610", "T1611"),
                             f"{who} added a debug container to pod {target} with "
                             f"{', '.join(dict.fromkeys(evidence))}", evidence[0]))
    return found


def _command(record: dict[str, Any]) -> str:
    """The command of an exec request: the ``command`` parameters of its URI (how the API
    server receives it), else a ``command`` list in the request body; "" when neither."""
    uri = record.get("requestURI")
    if isinstance(uri, str) and "command=" in uri:
        words = [value for key, value in parse_qsl(uri.partition("?")[2][:4096])
                 if key == "command"]
        if words:
            return " ".join(words)[:512]
    words = as_dict(record.get("requestObject")).get("command")
    if isinstance(words, list):
        return " ".join(str(word) for word in words[:50])[:512]
    return ""


def _account(username: str) -> tuple[str, str] | None:
    """``system:serviceaccount:<ns>:<name>`` -> (ns, name), else None."""
    if not username.startswith(_SA_PREFIX):
        return None
    namespace, _, name = username[len(_SA_PREFIX):].partition(":")
    return (namespace, name) if namespace and name else None


def _who(username: str) -> str:
    """The caller as a sentence names it: ``service account <ns>/<name>``, else the user."""
    account = _account(username)
    return f"service account {account[0]}/{account[1]}" if account else username[:128]


def _platform_user(username: str) -> bool:
    """The control plane's own users, and the cloud's managed service agents acting on a
    managed cluster (their e-mail ends in a Google-owned service-account domain)."""
    return username.startswith(_PLATFORM_USERS) or (
        username.endswith(".gserviceaccount.com") and any(
            mark in username for mark in _GOOGLE_AGENTS))


def _system_user(username: str) -> bool:
    """The control plane's own users and ``kube-system``'s service accounts (its
    controllers and add-ons)."""
    account = _account(username)
    return _platform_user(username) or (account is not None and account[0] == "kube-system")


def _platform(username: str, namespace: Any) -> bool:
    """The cluster running itself: the control plane's users anywhere, and a ``kube-system``
    service account acting inside a platform namespace (``kube-system``, ``kube-*``, GKE's
    ``gke-*``: where its controllers run the node agents)."""
    if _platform_user(username):
        return True
    account = _account(username)
    return account is not None and account[0] == "kube-system" \
        and isinstance(namespace, str) and namespace.startswith(("kube-", "gke-"))


def _token(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A TokenRequest for another identity's service account. Pods get their tokens from
    the kubelet (``system:node:*``) and controllers from the control plane; a person or a
    workload asking for one takes a bearer credential that works from anywhere until it
    expires (``kubectl create token --duration``)."""
    ref = as_dict(record.get("objectRef"))
    namespace, name = ref.get("namespace"), ref.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str) or not name \
            or _platform_user(username) or username == ANONYMOUS:
        return []
    account = _account(username)
    target = f"{namespace}/{name}"[:256]
    if account is None:
        return [Finding("k8s.token_for_other_account", "medium", ("T1528",),
                        f"{username[:128]} minted a token for service account {target}",
                        target)]
    if (namespace, name) == account:
        return []
    return [Finding("k8s.token_for_other_account", "high", ("T1528",),
                    f"service account {account[0]}/{account[1]} minted a token for service "
                    f"account {target}", target)]


def _secrets(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    account = _account(username)
    namespace = as_dict(record.get("objectRef")).get("namespace")
    uri = record.get("requestURI")
    by_hand = _by_hand(record)
    if (account is not None and account[0] == "kube-system") or namespace \
            or _platform_user(username) or username == ANONYMOUS \
            or not isinstance(uri, str) or ("resourceVersion=" in uri and not by_hand):
        # an informer's list names a resourceVersion; a one-shot dump does not, unless it
        # adds one to pass for an informer (``kubectl get --raw '...?resourceVersion=0'``)
        return []
    if account is None:  # a person: an administrator may, an attacker with a kubeconfig will
        return [Finding("k8s.secrets_cluster_wide", "medium", ("T1552.007",),
                        f"{username[:128]} listed the secrets of every namespace in one "
                        "request", username[:128])]
    return [Finding("k8s.secrets_cluster_wide", "high", ("T1552.007",),
                    f"service account {account[0]}/{account[1]} listed the secrets of every "
                    "namespace in one request", f"{account[0]}/{account[1]}")]


def _webhook(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    kind = "validating" if "validating" in action else "mutating"
    name = _object_name(record) if "deletecollection" not in action else "(all)"
    return [Finding("k8s.admission_webhook_deleted", "medium", ("T1562.001",),
                    f"{kind} admission webhook configuration {name} deleted", name)]


def _certificate(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A certificate signing request for an API-server client certificate. Nodes and the
    control plane ask for theirs through the kubelet signers; a person or a workload asking
    for one is minting a credential that lasts for the certificate's lifetime and that no
    token revocation ends."""
    if _platform_user(username) or username.startswith("system:bootstrap:"):
        return []
    signer = as_dict(_body(record, "spec")).get("signerName")
    if signer != _CLIENT_SIGNER:
        return []
    name = _object_name(record)
    account = _account(username)
    who = _who(username)
    return [Finding("k8s.client_certificate_requested", "high" if account else "medium",
                    ("T1649", "T1098.001"),
                    f"{who} requested API-server client certificate {name}", name)]


def _webhook_written(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """An admission webhook whose endpoint is a URL, not a service of the cluster: every
    object the webhook matches (a mutating one rewrites pods; secrets if it matches them)
    goes to that address. Operators install webhooks that call their own in-cluster
    service; those are not findings. A mutating webhook created by a person, unlabelled,
    that may rewrite pods or secrets is one made by hand (``k8s.admission_webhook_created``):
    what products install (cert-manager, Istio, Kyverno, Gatekeeper, Vault's injector)
    carries its labels, comes from a chart, or is created by the operator's own service
    account at start-up, and none of those is judged."""
    if _platform_user(username) or _released(record):
        return []
    hooks = _body(record, "webhooks")
    hooks = hooks[:50] if isinstance(hooks, list) else []
    for hook in hooks:
        url = as_dict(as_dict(hook).get("clientConfig")).get("url")
        if isinstance(url, str) and url:
            mutating = "mutating" in action
            kind = "mutating" if mutating else "validating"
            name = _object_name(record)
            return [Finding("k8s.admission_webhook_external", "high" if mutating else "medium",
                            ("T1552.007", "T1610") if mutating else ("T1552.007",),
                            f"{kind} admission webhook configuration {name} sends admitted "
                            f"objects to {url[:160]}", url[:256])]
    labels = as_dict(as_dict(_body(record, "metadata")).get("labels"))
    if action != "k8s:mutatingwebhookconfigurations.create" or _account(username) \
            or labels or not hooks or not any(_rewrites_workloads(hook) for hook in hooks):
        return []
    name = _object_name(record)
    return [Finding("k8s.admission_webhook_created", "medium", ("T1610", "T1552.007"),
                    f"mutating admission webhook configuration {name} created by hand by "
                    f"{username[:128]}: its service may rewrite every pod it admits", name)]


def _rewrites_workloads(hook: Any) -> bool:
    """Whether a mutating webhook may rewrite pods, workloads or secrets: its rules name
    them, every resource, or cannot be read (a request body without rules)."""
    rules = as_dict(hook).get("rules")
    if not isinstance(rules, list) or not rules:
        return True
    for rule in rules[:50]:
        resources = as_dict(rule).get("resources")
        if not isinstance(resources, list):
            return True
        if any(isinstance(r, str) and r.partition("/")[0] in _MUTATED for r in resources[:50]):
            return True
    return False


def _certificate_approved(record: dict[str, Any], action: str,
                          username: str) -> list[Finding]:
    """A request for an API-server client certificate approved by someone who is not the
    control plane: the signer then issues a credential for whatever user and groups the
    request names (``system:masters`` included), valid for the certificate's lifetime and
    beyond any token revocation. The controller manager approves nodes' kubelet
    certificates, kube-system approvers (kubelet-csr-approver) the kubelets' serving
    certificates; neither is a client certificate for the API server, and the platform's
    own users are not judged. A person approving is the documented way of adding a user
    to some clusters, and is medium."""
    if _system_user(username) or username == ANONYMOUS:
        return []
    spec, status = as_dict(_body(record, "spec")), as_dict(_body(record, "status"))
    conditions = status.get("conditions")
    approved = any(as_dict(item).get("type") == "Approved" for item in
                   (conditions[:20] if isinstance(conditions, list) else ()))
    if spec.get("signerName") != _CLIENT_SIGNER or not approved:
        return []
    name = _object_name(record)
    subject = _text_field(spec.get("username"))
    shown = f" for {subject[:128]}" if subject else ""
    return [Finding("k8s.client_certificate_approved",
                    "high" if _account(username) else "medium", ("T1649", "T1098.001"),
                    f"{_who(username)} approved API-server client certificate {name}{shown}",
                    name)]


def _text_field(value: Any) -> str:
    return value[:256] if isinstance(value, str) else ""


def _secret_read(record: dict[str, Any], action: str, username: str) -> list[Any]:
    """One secret read by name toward ``k8s.secrets_burst``: an application reads its own
    few secrets, a stolen credential reads every one it may. Controllers and operators
    keep secrets in informers (list and watch), the platform's accounts read the secrets
    of the pods they run, and Helm reads its release records (``sh.helm.release.*``);
    none of them counts."""
    if _system_user(username) or username == ANONYMOUS:
        return []
    ref = as_dict(record.get("objectRef"))
    name, namespace = ref.get("name"), ref.get("namespace")
    if not isinstance(name, str) or not name or name.startswith("sh.helm.release."):
        return []
    where = namespace if isinstance(namespace, str) else ""
    return [Tally("k8s.secrets_burst", "medium", ("T1552.007",), "secrets read",
                  (f"{where}/{name}"[:256],))]


def _rules_review(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A SelfSubjectRulesReview (``kubectl auth can-i --list``) by a service account or a
    node: every permission the credential holds, listed at once, which is the first thing
    done with a token taken from a pod or a node. Controllers check the one permission
    they need (a SelfSubjectAccessReview), people list theirs: neither is judged."""
    account = _account(username)
    node = username.startswith("system:node:")
    if not node and (account is None or account[0] == "kube-system"):
        return []
    who = f"service account {account[0]}/{account[1]}" if account else f"node {username[12:]}"
    return [Finding("k8s.permission_enumeration", "medium", ("T1613", "T1087.004"),
                    f"{who[:160]} listed every permission it holds (SelfSubjectRulesReview)",
                    username[:256])]


def _kubelet_proxy(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A request proxied through the API server to a node's kubelet (``nodes/proxy``) that
    runs a command in a container (``run``, ``exec``, ``attach``: the kubelet's own API,
    where admission and the audit log's exec record never see it) or reads every pod spec
    of the node, environment secrets included. Monitoring reads metrics and stats this
    way, the platform everything; neither is judged."""
    uri = record.get("requestURI")
    if _system_user(username) or not isinstance(uri, str) or "/proxy/" not in uri:
        return []
    path = uri.partition("/proxy/")[2].partition("?")[0]
    node = _object_name(record)
    who = _who(username)
    if path.startswith(("run/", "exec/", "attach/", "portForward/", "cri/")):
        return [Finding("k8s.kubelet_command", "high", ("T1609", "T1611"),
                        f"{who} reached the kubelet of node {node} through the API server: "
                        f"/{path[:160]} runs in a container, out of the audit log's sight",
                        node)]
    if path.rstrip("/") in ("pods", "runningpods"):
        return [Finding("k8s.kubelet_command", "medium", ("T1613", "T1552.007"),
                        f"{who} read every pod of node {node} from its kubelet (/{path[:40]}), "
                        "environment secrets included", node)]
    return []


def _aws_auth(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """EKS's ``kube-system/aws-auth`` ConfigMap written: it maps IAM roles and users to
    Kubernetes users and groups, so a line added there lets an AWS principal sign in to
    the cluster, as ``system:masters`` when it says so. Node groups are mapped by EKS
    itself and by infrastructure as code."""
    ref = as_dict(record.get("objectRef"))
    if ref.get("namespace") != "kube-system" or ref.get("name") != "aws-auth" \
            or _platform_user(username) or _released(record):
        return []
    data = as_dict(_body(record, "data"))
    maps = [data.get(key) for key in ("mapRoles", "mapUsers", "mapAccounts")]
    text = " ".join(value[:20000] for value in maps if isinstance(value, str))
    admin = "system:masters" in text
    return [Finding("k8s.aws_auth_changed", "high" if admin else "medium",
                    ("T1098.006", "T1078.004"),
                    f"EKS aws-auth mapping written by {username[:128]}"
                    + (": it maps an AWS principal into system:masters (cluster-admin)"
                       if admin else ": AWS principals it names sign in to the cluster"),
                    "kube-system/aws-auth")]


def _configmap(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """A ConfigMap written: EKS's aws-auth mapping, then key material in its data."""
    return _aws_auth(record, action, username) + _configmap_credentials(record, username)


def _configmap_credentials(record: dict[str, Any], username: str) -> list[Finding]:
    """Key material written into a ConfigMap: an AWS secret access key, a PEM private key,
    a Google service-account key file. Unlike a Secret, a ConfigMap is readable by every
    account bound to ``view`` and is shown whole by ``kubectl describe``, so the key is
    everyone's. The word "password" alone is not judged (charts template empty ones),
    nor certificates (CA bundles such as ``kube-root-ca.crt`` are public); the platform's
    own writes are the cluster running itself."""
    if _platform_user(username):
        return []
    data = as_dict(_body(record, "data"))
    for key, value in list(data.items())[:100]:
        found = _KEY_MATERIAL.search(value[:65536]) if isinstance(value, str) else None
        if found:  # named by its kind: the alert must not carry any of the key itself
            text = found.group(0).lower()
            what = "an AWS secret access key" if text.startswith("aws") else \
                "a service-account key file" if text.startswith('"private_key"') else \
                "a private key"
            name = _object_name(record)
            return [Finding("k8s.configmap_credentials", "medium", ("T1552.007", "T1552.001"),
                            f"ConfigMap {name} holds {what} (in {str(key)[:64]}), readable "
                            "by every account that may view it", name)]
    return []


def _events_deleted(record: dict[str, Any], action: str, username: str) -> list[Finding]:
    """Events deleted by hand: the record of what happened in a namespace (pods started,
    images pulled, probes failed) erased. The API server expires events itself, and the
    namespace controller deletes them with their namespace."""
    if _system_user(username):
        return []
    namespace = as_dict(record.get("objectRef")).get("namespace")
    bulk = action.endswith("deletecollection")
    where = f"namespace {namespace[:64]}" if isinstance(namespace, str) and namespace \
        else "every namespace"
    what = f"every event of {where}" if bulk else f"event {_object_name(record)}"
    return [Finding("k8s.events_deleted", "medium" if bulk else "low", ("T1070",),
                    f"{what} deleted by {username[:128]}", where)]


def _anonymous(record: dict[str, Any], action: str) -> list[Finding]:
    uri = record.get("requestURI")
    path = uri.partition("?")[0] if isinstance(uri, str) else ""
    if not as_dict(record.get("objectRef")).get("resource") and (
            not path or path.startswith(_PUBLIC_PATHS)):
        return []
    decision = as_dict(record.get("annotations")).get("authorization.k8s.io/decision")
    if decision == "forbid":
        return []
    verb = action.rpartition(".")[2]
    shown = path[:256] or action
    if verb in _READ_VERBS:
        return [Finding("k8s.anonymous_access", "high", ("T1078.001",),
                        f"anonymous request {verb} {shown} succeeded", shown)]
    return [Finding("k8s.anonymous_access", "critical", ("T1078.001",),
                    f"anonymous request {verb} {shown} succeeded: the API server accepts "
                    "writes from anyone who can reach it", shown)]


_Rule = Callable[[dict[str, Any], str, str], list[Finding]]
_RBAC = ("clusterrolebindings", "rolebindings", "clusterroles", "roles")
_RULES: dict[str, _Rule] = {
    **{f"k8s:{resource}.create": _binding for resource in ("clusterrolebindings", "rolebindings")},
    **{f"k8s:{resource}.create": _wildcard_role for resource in ("clusterroles", "roles")},
    **{f"k8s:{resource}.{verb}": _role_change for resource in _RBAC
       for verb in ("update", "patch")},
    **{f"k8s:{resource}.{verb}": _system_rbac for resource in _RBAC
       for verb in ("delete", "deletecollection")},
    "k8s:pods.create": _pod,
    **{f"k8s:{kind}.create": _pod for kind in ("deployments", "daemonsets", "statefulsets",
                                               "replicasets", "jobs")},
    **{f"k8s:cronjobs.{verb}": _cronjob for verb in ("create", "update", "patch")},
    **{f"k8s:pods/{sub}.{verb}": _exec for sub in ("exec", "attach", "portforward")
       for verb in ("create", "get")},
    **{f"k8s:pods/ephemeralcontainers.{verb}": _ephemeral for verb in ("update", "patch")},
    "k8s:serviceaccounts/token.create": _token,
    "k8s:secrets.list": _secrets,
    **{f"k8s:{kind}webhookconfigurations.{verb}": _webhook
       for kind in ("validating", "mutating") for verb in ("delete", "deletecollection")},
    **{f"k8s:{kind}webhookconfigurations.{verb}": _webhook_written
       for kind in ("validating", "mutating") for verb in ("create", "update", "patch")},
    "k8s:certificatesigningrequests.create": _certificate,
    **{f"k8s:certificatesigningrequests/approval.{verb}": _certificate_approved
       for verb in ("update", "patch")},
    "k8s:secrets.get": _secret_read,
    "k8s:selfsubjectrulesreviews.create": _rules_review,
    **{f"k8s:nodes/proxy.{verb}": _kubelet_proxy for verb in ("get", "create")},
    **{f"k8s:configmaps.{verb}": _configmap for verb in ("create", "update", "patch")},
    **{f"k8s:events.{verb}": _events_deleted for verb in ("delete", "deletecollection")},
    **{f"k8s:services.{verb}": _service for verb in ("create", "update", "patch")},
    "k8s:ingresses.create": _ingress,
}
ACTIONS = frozenset(_RULES)
