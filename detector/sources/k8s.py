"""Kubernetes audit events (``audit.k8s.io`` v1 and v1beta1) -> Events.

One request produces one event per stage under one ``auditID``; the parser merges them
(``detector.sources.parser.StageMerger``) so each request counts once, using this module to
normalise the canonical stage. The identity is ``impersonatedUser.username`` when present,
with the impersonator as ``actor``; otherwise ``user.username``. A cluster named by the
wrapper (GKE LogEntry, EKS CloudWatch log group, AKS diagnostic record) prefixes the key as
``<cluster>/<username>``; EKS usernames that are assumed-role ARNs map to the IAM role key.
GKE entries arrive as GCP LogEntries and are normalised by ``normalise_gke``.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any


from detector.event import Event
from detector.identity import AI_FAMILY_NAMES, Resolver, classify_k8s
from detector.sources import gcp
from detector.sources.common import (
    MAX_EVENT_ID,
    MAX_IDENTITY,
    MAX_K8S_NAME,
    MAX_OPERATION,
    MAX_REGION,
    MAX_RESOURCE,
    MAX_TENANT,
    MAX_USER_AGENT,
    MAX_VERB,
    MAX_YEAR,
    MIN_YEAR,
    NETWORK_CACHE,
    USER_AGENT_CACHE,
    RecordError,
    remember,
    record_digest,
    as_dict,
    bounded_name,
    classify_network,
    cut,
    free_text,
    note_agent_cut,
    oversized,
    parse_time,
    short_str,
    user_agent,
)
from detector.techniques import ATTRIBUTE, refused
from detector.techniques import k8s as techniques

logger = logging.getLogger(__name__)

SOURCE = "k8s.audit"
FINAL_STAGES = frozenset({"ResponseComplete", "Panic"})
LONG_RUNNING = frozenset({"exec", "attach", "portforward", "proxy"})
_READ_VERBS = frozenset({"get", "list", "watch"})
UTC = timezone.utc
_fromisoformat = datetime.fromisoformat
_agent_hit = USER_AGENT_CACHE.get  # cache hits without a function call: the hot path
_network_hit = NETWORK_CACHE.get
_CACHE_LIMIT = 20_000
# What a username alone decides, per (username, cluster): key, kind, reason, principal type,
# service-account namespace and name, credential type without extra. Pure functions of the
# two strings; EKS role ARNs are left out (their key depends on the resolver's state).
_USERS: dict[tuple[str, str | None], tuple[str, str, str, str, str | None, str | None, str]] = {}
_TECHNIQUE_ACTIONS = techniques.ACTIONS
_ANONYMOUS = techniques.ANONYMOUS


def looks_like(record: dict[str, Any]) -> bool:
    """True for an audit Event: a verb plus objectRef, requestURI, auditID or user."""
    kind = record.get("kind")
    if kind is not None and kind != "Event":
        return False
    api = record.get("apiVersion")
    if isinstance(api, str) and api.startswith("audit.k8s.io"):
        return True
    if "verb" not in record:
        return kind == "Event" and "user" in record and ("requestURI" in record
                                                         or "stage" in record)
    # an Event with a verb is an audit event even when its user was lost: it is then a
    # missing_identity dead letter, not a record of an unknown format
    return kind == "Event" or "objectRef" in record or "requestURI" in record \
        or "auditID" in record or "user" in record


def is_canonical(record: dict[str, Any]) -> bool:
    """The stage that carries the outcome; ResponseStarted for long-running exec/attach."""
    stage = record.get("stage")
    if stage in FINAL_STAGES:
        return True
    sub = as_dict(record.get("objectRef")).get("subresource")
    return stage == "ResponseStarted" and type(sub) is str and sub in LONG_RUNNING


def request_signature(record: dict[str, Any]) -> tuple[Any, ...]:
    """What must match for two stages to belong to the same request (ids can collide).

    The user is part of it: every stage of one request names the same user, so one
    ``auditID`` seen with two users (a replayed or re-exported id) is two requests, and the
    second is not dropped as a duplicate of the first."""
    user = record.get("user")
    return (record.get("verb"), record.get("requestURI"), record.get("requestReceivedTimestamp"),
            user.get("username") if type(user) is dict else None)


def normalise(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any],
              partial: bool = False) -> Event:
    """Turn one (merged) audit Event into an Event; raises RecordError.

    The common shape (no impersonation, a plain username, an ``objectRef`` object, a UTC
    ``requestReceivedTimestamp``) takes this single-function path with per-username facts
    cached; anything else goes to ``normalise_general``, which defines the result
    (``tests/detector/test_sources_fast_paths.py`` checks that both agree).
    """
    get = record.get
    user, ref, raw_time = get("user"), get("objectRef"), get("requestReceivedTimestamp")
    if type(user) is not dict or type(ref) is not dict or type(raw_time) is not str \
            or not raw_time or "impersonatedUser" in record:
        return normalise_general(record, resolver, hints, partial)
    username = user.get("username")
    if type(username) is not str or not username or username.startswith("arn:aws:"):
        return normalise_general(record, resolver, hints, partial)
    try:
        when = _fromisoformat(raw_time)
    except ValueError:
        return normalise_general(record, resolver, hints, partial)
    if when.tzinfo is not UTC or not MIN_YEAR <= when.year <= MAX_YEAR:
        return normalise_general(record, resolver, hints, partial)
    cluster = hints.get("cluster")
    if cluster is not None and type(cluster) is not str:
        return normalise_general(record, resolver, hints, partial)
    facts = _USERS.get((username, cluster)) or _user_facts(username, cluster)
    verb = bounded_name(get("verb"), MAX_VERB, "verb")
    peer = _peer_ip(get("sourceIPs"))
    hit = _network_hit(peer) if type(peer) is str else None
    source_ip, network, prefix = hit or classify_network(peer)
    raw_agent = get("userAgent")
    hit = _agent_hit(raw_agent) if type(raw_agent) is str else None
    ua, family = hit or user_agent(raw_agent)
    attributes: dict[str, Any] = {}
    if ua is not None and len(raw_agent) > MAX_USER_AGENT:
        note_agent_cut(raw_agent, attributes)
    if "extra" in user:
        credential_id, credential_type, session = _extra_facts(user["extra"], facts[6])
    else:  # what _credential and _session find without extra
        credential_id, credential_type, session = None, facts[6], None
    namespace = ref.get("namespace")
    if isinstance(namespace, str) and namespace:
        attributes["namespace"] = namespace[:128]
    stage = get("stage")
    if partial and isinstance(stage, str):
        attributes["incomplete_stage"] = stage
    annotations = get("annotations")
    decision = annotations.get("authorization.k8s.io/decision") \
        if isinstance(annotations, dict) else None
    if isinstance(decision, str):
        attributes["authz_decision"] = decision[:16]
    if facts[4] is not None:
        attributes["sa_namespace"] = facts[4]
        attributes["sa_name"] = facts[5]
    # the helpers' common cases written out (a call each is ~0.3 us of a ~7 us budget);
    # anything else still goes through _outcome, _resource and _event_id
    status = get("responseStatus")
    code = status.get("code") if isinstance(status, dict) else None
    if code is None or (type(code) is int and code < 400):
        outcome, error = "success", None
    else:
        outcome, error = _outcome(record)
    resource = ref.get("resource")
    if type(resource) is str and resource and "subresource" not in ref \
            and len(resource) <= MAX_K8S_NAME:
        action = f"k8s:{resource}.{verb}"
    else:
        action = f"k8s:{_resource(ref, record)}.{verb}"
    if (action in _TECHNIQUE_ACTIONS or username == _ANONYMOUS) and outcome == "success":
        _techniques(record, action, username, attributes)
    elif error is not None and refused(error):
        found = techniques.refused_request(record, action, username, error)
        if found:
            attributes[ATTRIBUTE] = found
    audit_id = get("auditID")
    if type(audit_id) is str and audit_id and len(audit_id) <= MAX_EVENT_ID:
        event_id = f"{cluster}/{audit_id}" if cluster else audit_id
    else:
        event_id = _event_id(record, cluster)
    event = Event(  # positional: see common.EVENT_POSITIONAL_ORDER
        event_id, when, when.timestamp(), SOURCE, facts[0], facts[1],
        facts[2], "username", facts[3], cluster, None, credential_id, credential_type,
        session, None, action, _resource_name(ref, record, attributes),
        hints.get("region"), source_ip, network, prefix, ua, family, outcome, error,
        verb in _READ_VERBS, partial, attributes,
    )
    if resolver.no_config and family not in AI_FAMILY_NAMES:
        return event
    return resolver.finish(event)


def _peer_ip(ips: Any) -> Any:
    """The address the API server saw the request come from: the last of ``sourceIPs``.
    The entries before it come from the client's own ``X-Forwarded-For`` and
    ``X-Real-Ip`` headers (the Kubernetes audit documentation says so), so a stolen token
    replayed from a Tor exit with ``X-Forwarded-For: 10.0.0.5`` passed for a pod."""
    return ips[-1] if isinstance(ips, list) and ips else None


def _user_facts(username: str, cluster: str | None
                ) -> tuple[str, str, str, str, str | None, str | None, str]:
    _check_user(username, cluster)  # a long name is never cached: checked every time
    kind, reason = classify_k8s(username)
    account: dict[str, Any] = {}
    _service_account(username, account)
    facts = (f"{cluster}/{username}" if cluster else username, kind, reason,
             _principal_type(username), account.get("sa_namespace"), account.get("sa_name"),
             _credential({}, username)[1])
    return remember(_USERS, (username, cluster), facts, len(username) + len(cluster or ""),
                    _CACHE_LIMIT)


def normalise_general(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any],
                      partial: bool = False) -> Event:
    """Every audit Event shape, field by field (``normalise`` takes the common one faster)."""
    user = as_dict(record.get("user"))
    impersonated = as_dict(record.get("impersonatedUser"))
    username = impersonated.get("username") or user.get("username")
    if not isinstance(username, str) or not username:
        raise RecordError("missing_identity", "user.username is missing")
    when = _time(record)
    cluster = hints.get("cluster")
    _check_user(username, cluster)
    identity, kind, reason, resolution = _identity(username, cluster, resolver)
    actor = user.get("username") if impersonated.get("username") else None
    ref = as_dict(record.get("objectRef"))
    verb = bounded_name(record.get("verb"), MAX_VERB, "verb")
    source_ip, network, prefix = classify_network(_peer_ip(record.get("sourceIPs")))
    attributes = _attributes(record, ref, impersonated, partial)
    raw_agent = record.get("userAgent")
    ua, family = user_agent(raw_agent)
    if ua is not None and len(raw_agent) > MAX_USER_AGENT:
        note_agent_cut(raw_agent, attributes)
    outcome, error = _outcome(record)
    credential_id, credential_type = _credential(user, username)
    action = f"k8s:{_resource(ref, record)}.{verb}"
    event = Event(  # positional: see common.EVENT_POSITIONAL_ORDER
        _event_id(record, cluster), when, when.timestamp(), SOURCE, identity, kind, reason,
        resolution, _principal_type(username), cluster, None, credential_id,
        credential_type, _session(user), short_str(actor, 256), action,
        _resource_name(ref, record, attributes), hints.get("region"), source_ip, network,
        prefix, ua, family, outcome, error, verb in _READ_VERBS, partial, attributes,
    )
    _service_account(username, event.attributes)
    if (action in _TECHNIQUE_ACTIONS or username == _ANONYMOUS) and outcome == "success":
        _techniques(record, action, username, event.attributes)
    elif error is not None and refused(error):
        found = techniques.refused_request(record, action, username, error)
        if found:
            event.attributes[ATTRIBUTE] = found
    return resolver.finish(event)


def normalise_gke(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any]) -> Event:
    """A GKE control-plane LogEntry (Cloud Audit Logs wrapper) as a Kubernetes event."""
    payload = gcp.payload_of(record) or {}
    labels = as_dict(as_dict(record.get("resource")).get("labels"))
    cluster = labels.get("cluster_name")
    cluster = cluster if isinstance(cluster, str) and cluster else None
    principal, _ = gcp.principal_of(payload)
    _check_user(principal, cluster)
    when = gcp.entry_time(record)
    method = bounded_name(gcp.get(payload, "methodName"), MAX_OPERATION, "methodName")
    resource, verb = _gke_method(method)
    meta = as_dict(gcp.get(payload, "requestMetadata"))
    caller = gcp.get(meta, "callerIp")
    source_ip, network, prefix = classify_network(caller)
    ua, family = user_agent(gcp.get(meta, "callerSuppliedUserAgent"))
    identity, kind, reason, resolution = _identity(principal, cluster, resolver)
    outcome, error = gcp.outcome_of(payload)
    attributes: dict[str, Any] = {"gcp_project": labels.get("project_id")} \
        if isinstance(labels.get("project_id"), str) else {}
    if network in ("internal", "unknown") and isinstance(caller, str) and caller:
        attributes["network_context"] = caller[:64]
    raw_agent = gcp.get(meta, "callerSuppliedUserAgent")
    if ua is not None and len(raw_agent) > MAX_USER_AGENT:
        note_agent_cut(raw_agent, attributes)
    _service_account(principal, attributes)
    if outcome == "success":
        _gke_techniques(payload, method, principal, attributes)
    event = Event(
        event_id=gcp.entry_id(record), time=when, ts=when.timestamp(), source=SOURCE,
        identity=identity, identity_kind=kind, kind_reason=reason,
        identity_resolution=resolution, principal_type=_principal_type(principal),
        tenant=cluster, credential_type="token", action=f"k8s:{resource}.{verb}",
        resource=free_text(gcp.get(payload, "resourceName"), MAX_RESOURCE, "resource",
                                attributes),
        region=free_text(labels.get("location"), MAX_REGION, "region", attributes),
        source_ip=source_ip, network=network,
        network_prefix=prefix, user_agent=ua, agent_family=family, outcome=outcome,
        error_code=error, read_only=verb in _READ_VERBS, attributes=attributes,
    )
    return resolver.finish(event)


def _techniques(record: dict[str, Any], action: str, username: str,
                attributes: dict[str, Any]) -> None:
    """Technique findings of a successful request the checks know (see
    ``detector.techniques.k8s``); the caller has already looked the action up."""
    found = techniques.check(record, action, username)
    if found:
        attributes[ATTRIBUTE] = found


def _gke_techniques(payload: dict[str, Any], method: str, principal: str,
                    attributes: dict[str, Any]) -> None:
    """The Kubernetes technique checks on a GKE entry, seen as the audit event it stands
    for: ``resourceName`` (``core/v1/namespaces/<ns>/pods/<name>/exec``) gives the object
    reference, ``request`` and ``response`` the bodies."""
    name = gcp.get(payload, "resourceName")
    if not isinstance(name, str) or name.startswith("/") \
            or name.split("/")[2:3] in (["healthz"], ["livez"], ["readyz"], ["version"]):
        return  # a non-resource path: health and version probes
    parts = name.split("/")[2:]
    ref: dict[str, Any] = {}
    if len(parts) >= 3 and parts[0] == "namespaces":
        ref["namespace"], parts = parts[1], parts[2:]
    if not parts:
        return
    ref["resource"] = parts[0]
    if len(parts) > 1:
        ref["name"] = parts[1]
    sub = f"/{parts[2]}" if len(parts) > 2 else ""
    action = f"k8s:{parts[0]}{sub}.{method.rpartition('.')[2]}"
    if action not in _TECHNIQUE_ACTIONS and principal != _ANONYMOUS:
        return
    response = gcp.get(payload, "response")
    if isinstance(response, dict) and response.get("status") == "Failure":
        return  # a v1.Status refusal: GKE leaves the entry's own status empty
    checks = gcp.get(payload, "authorizationInfo")
    if isinstance(checks, list) and any(isinstance(check, dict) and check.get("granted") is False
                                        for check in checks[:20]):
        return  # RBAC said no: nothing was created, whatever the entry's status says
    record = {"objectRef": ref, "requestObject": gcp.get(payload, "request"),
              "responseObject": response}
    _techniques(record, action, principal, attributes)


def _service_account(username: str, attributes: dict[str, Any]) -> None:
    """``system:serviceaccount:<ns>:<name>`` -> ``sa_namespace`` and ``sa_name``."""
    if username.startswith(("system:serviceaccount:", "system:serviceaccounts:")):
        namespace, _, name = username.split(":", 2)[2].partition(":")
        attributes["sa_namespace"] = namespace[:128]
        attributes["sa_name"] = name[:128]


def _gke_method(method: str) -> tuple[str, str]:
    """``io.k8s.core.v1.configmaps.update`` -> (``configmaps``, ``update``); a subresource
    follows its resource (``io.k8s.core.v1.pods.exec.create`` -> ``pods/exec``), as in the
    actions of the native audit log."""
    parts = method.split(".")
    if len(parts) >= 3 and parts[0] == "io" and parts[1] == "k8s":
        if len(parts) >= 6 and not _VERSION.fullmatch(parts[-3]):
            return f"{parts[-3]}/{parts[-2]}", parts[-1]
        return parts[-2], parts[-1]
    return "unknown", method


_VERSION = re.compile(r"v\d+(?:(?:alpha|beta)\d+)?")


def _identity(username: str, cluster: str | None, resolver: Resolver
              ) -> tuple[str, str, str, str]:
    if username.startswith("arn:aws:"):
        principal, _ = resolver.aws_principal({"arn": username}, None)
        return principal.identity, principal.kind, principal.reason, "eks_iam_arn"
    kind, reason = classify_k8s(username)
    key = f"{cluster}/{username}" if cluster else username
    return key, kind, reason, "username"


def _time(record: dict[str, Any]) -> Any:
    # p_event_time: a Panther data-lake export's normalised event time, on every row it keeps
    raw = record.get("requestReceivedTimestamp") or record.get("timestamp") \
        or record.get("stageTimestamp") or as_dict(record.get("metadata")).get(
            "creationTimestamp") or record.get("p_event_time")
    if raw is None:
        raise RecordError("missing_time", "audit event has no requestReceivedTimestamp")
    when = parse_time(raw)
    if when is None:
        raise RecordError("bad_time", f"timestamp {str(raw)[:64]!r} cannot be parsed "
                                      "or is not in 2000-2100")
    return when


def _event_id(record: dict[str, Any], cluster: str | None) -> str:
    audit_id = record.get("auditID")
    if isinstance(audit_id, str) and audit_id:
        if len(audit_id) > MAX_EVENT_ID:
            raise oversized("auditID", audit_id, MAX_EVENT_ID)
        return f"{cluster}/{audit_id}" if cluster else audit_id
    return record_digest(record)


def _outcome(record: dict[str, Any]) -> tuple[str, str | None]:
    status = as_dict(record.get("responseStatus"))
    code = status.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        reason = status.get("reason")
        return "failure", str(reason)[:64] if isinstance(reason, str) and reason else str(code)
    return "success", None


# ``user.extra`` keys as written by the API server, and as a Panther data-lake export renames
# them (``.`` to ``_``, ``/`` to ``_slash_``).
_CREDENTIAL_KEYS = ("authentication.kubernetes.io/credential-id",
                    "authentication_kubernetes_io_slash_credential-id", "accessKeyId")
_SESSION_KEYS = ("authentication.kubernetes.io/pod-name",
                 "authentication_kubernetes_io_slash_pod-name", "sessionName")


def _credential(user: dict[str, Any], username: str) -> tuple[str | None, str]:
    extra = as_dict(user.get("extra"))
    for key in _CREDENTIAL_KEYS:
        values = extra.get(key)
        if isinstance(values, list) and values and isinstance(values[0], str):
            value = values[0][:128]
            return value, "temporary" if value.startswith("ASIA") else "token"
    if username.startswith("system:node:"):
        return None, "certificate"
    return None, "token"


def _extra_facts(extra: Any, default_type: str) -> tuple[str | None, str, str | None]:
    """``_credential`` and ``_session`` of a user that has ``extra``, in one call;
    ``default_type`` is the credential type ``_credential`` gives when no id is found."""
    if not isinstance(extra, dict):
        return None, default_type, None
    credential_id, credential_type, session = None, default_type, None
    for key in _CREDENTIAL_KEYS:
        values = extra.get(key)
        if isinstance(values, list) and values and isinstance(values[0], str):
            credential_id = values[0][:128]
            credential_type = "temporary" if credential_id.startswith("ASIA") else "token"
            break
    for key in _SESSION_KEYS:
        values = extra.get(key)
        if isinstance(values, list) and values and isinstance(values[0], str):
            session = values[0][:128]
            break
    return credential_id, credential_type, session


def _session(user: dict[str, Any]) -> str | None:
    extra = as_dict(user.get("extra"))
    for key in _SESSION_KEYS:
        values = extra.get(key)
        if isinstance(values, list) and values and isinstance(values[0], str):
            return values[0][:128]
    return None


def _principal_type(username: str) -> str:
    if username.startswith(("system:serviceaccount:", "system:serviceaccounts:")):
        return "serviceAccount"
    if username.startswith("system:node:"):
        return "node"
    if username.startswith("arn:aws:"):
        return "AWSIAM"
    if username.startswith("system:"):
        return "system"
    if username.endswith(".gserviceaccount.com"):  # GKE: a Google service account's token
        return "serviceAccount"
    return "user"


def _check_user(username: str, cluster: str | None) -> None:
    """Refuse a username or cluster name longer than any real one (``oversized_field``)."""
    if len(username) > MAX_IDENTITY:
        raise oversized("user.username", username, MAX_IDENTITY)
    if isinstance(cluster, str) and len(cluster) > MAX_TENANT:
        raise oversized("cluster", cluster, MAX_TENANT)


def _resource(ref: dict[str, Any], record: dict[str, Any]) -> str:
    resource = ref.get("resource")
    if not isinstance(resource, str) or not resource:
        return "nonresource"
    if len(resource) > MAX_K8S_NAME:
        raise oversized("objectRef.resource", resource, MAX_K8S_NAME)
    sub = ref.get("subresource")
    if isinstance(sub, str) and sub:
        if len(sub) > MAX_K8S_NAME:
            raise oversized("objectRef.subresource", sub, MAX_K8S_NAME)
        return f"{resource}/{sub}"
    return resource


def _resource_name(ref: dict[str, Any], record: dict[str, Any],
                   attributes: dict[str, Any]) -> str | None:
    """``namespace/name`` of the object, else the request URI or the namespace, cut to
    ``MAX_RESOURCE`` (the cut noted in ``attributes``)."""
    name = ref.get("name")
    namespace = ref.get("namespace")
    if isinstance(name, str) and name:
        value = f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name
    elif not ref:
        value = record.get("requestURI")
        if not isinstance(value, str) or not value:
            return None
    else:
        return namespace[:256] if isinstance(namespace, str) and namespace else None
    return value if len(value) <= MAX_RESOURCE else cut(value, MAX_RESOURCE, "resource",
                                                        attributes)


def _attributes(record: dict[str, Any], ref: dict[str, Any], impersonated: dict[str, Any],
                partial: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    namespace = ref.get("namespace")
    if isinstance(namespace, str) and namespace:
        attributes["namespace"] = namespace[:128]
    if impersonated.get("username"):
        attributes["impersonated_by"] = str(as_dict(record.get("user")).get("username"))[:256]
        groups = impersonated.get("groups")
        if isinstance(groups, list) and "system:masters" in groups:
            attributes["impersonated_masters"] = True
    stage = record.get("stage")
    if partial and isinstance(stage, str):
        attributes["incomplete_stage"] = stage
    decision = as_dict(record.get("annotations")).get("authorization.k8s.io/decision")
    if isinstance(decision, str):
        attributes["authz_decision"] = decision[:16]
    return attributes
