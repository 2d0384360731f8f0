"""GCP Cloud Audit Logs (LogEntry with an AuditLog ``protoPayload``) -> Events.

Principal: ``authenticationInfo.principalEmail``, else ``principalSubject`` (workload identity
federation), else ``gcp-system`` (system events, VPC-SC denials). Impersonation: the chain in
``serviceAccountDelegationInfo`` / ``metadata.identityDelegationChain`` is kept as an
attribute and the first caller becomes ``actor``. A non-address ``callerIp`` (``private``,
``gce-internal-ip``) never fails the record. GKE control-plane entries (``serviceName``
``k8s.io``) are Kubernetes audit events and are handed to ``detector.sources.k8s``.
Panther's lower-cased keys (``protopayload``, ``insertid``) are accepted.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any


from detector.event import Event
from detector.identity import AI_FAMILY_NAMES, Resolver, classify_gcp
from detector.sources.common import (
    MAX_CREDENTIAL,
    MAX_EVENT_ID,
    MAX_IDENTITY,
    MAX_OPERATION,
    MAX_REGION,
    MAX_RESOURCE,
    MAX_SERVICE,
    MAX_TENANT,
    MAX_USER_AGENT,
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
    free_text,
    note_agent_cut,
    oversized,
    parse_time,
    read_only_from_operation,
    user_agent,
)
from detector.techniques import ATTRIBUTE, Finding, attempted, refusal
from detector.techniques import gcp as techniques

logger = logging.getLogger(__name__)

SOURCE = "gcp.audit"
_MAX_CHAIN = 8
UTC = timezone.utc
_fromisoformat = datetime.fromisoformat
_agent_hit = USER_AGENT_CACHE.get  # cache hits without a function call: the hot path
_network_hit = NETWORK_CACHE.get
_CACHE_LIMIT = 20_000
# Pure functions of one string each, cached whole: a project has a few hundred principals
# and methods but sees them on every entry. Keys are the raw values, results immutable.
_PRINCIPALS: dict[str, tuple[str, str, str]] = {}  # e-mail -> (kind, reason, principal type)
_DENIED = "7"  # google.rpc.Code PERMISSION_DENIED: a refused request (see techniques.refusal)
# Refusals after which some technique findings still count, as attempts (``_refused``):
# status code -> the name given in the finding's sentence. RESOURCE_EXHAUSTED is a quota.
_REFUSED = {_DENIED: "PERMISSION_DENIED", "8": "RESOURCE_EXHAUSTED"}
_ATTEMPT_RULES = frozenset({"gcp.unusual_instances", "gcp.project_moved"})
_ANONYMOUS = "system:anonymous"
# (service, method) -> method, action, read-only, technique rule (None for most methods)
_OPERATIONS: dict[tuple[str, str], tuple[str, str, bool | None, techniques.Rule | None]] = {}


def payload_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The AuditLog payload of a LogEntry, or None when the record is not one."""
    payload = record.get("protoPayload")
    if payload is None:
        payload = record.get("protopayload")
    return payload if isinstance(payload, dict) else None


def is_gke(record: dict[str, Any], payload: dict[str, Any]) -> bool:
    """True for GKE control-plane audit entries (Kubernetes API calls)."""
    if payload.get("serviceName") == "k8s.io" or payload.get("servicename") == "k8s.io":
        return True
    return as_dict(record.get("resource")).get("type") == "k8s_cluster"


def get(data: dict[str, Any], key: str) -> Any:
    """``data[key]`` or its lower-cased twin (Panther lake normalisation)."""
    value = data.get(key)
    if value is None:
        value = data.get(key.lower())
    return value


def principal_of(payload: dict[str, Any]) -> tuple[str, str]:
    """``(principal, resolution path)``: e-mail, subject, or ``gcp-system``."""
    auth = as_dict(get(payload, "authenticationInfo"))
    email = get(auth, "principalEmail")
    if isinstance(email, str) and email:
        return email, "principal_email"
    subject = get(auth, "principalSubject")
    if isinstance(subject, str) and subject:
        return subject, "principal_subject"
    if get(auth, "authoritySelector") == _ANONYMOUS:  # some GKE entries say it only there
        return _ANONYMOUS, "authority_selector"
    return "gcp-system", "system"


def entry_time(record: dict[str, Any]) -> Any:
    """Event time of a LogEntry (``timestamp``, else ``receiveTimestamp``)."""
    raw = get(record, "timestamp")
    if raw is None:
        raw = get(record, "receiveTimestamp") or record.get("p_event_time")
    if raw is None:
        raise RecordError("missing_time", "LogEntry has no timestamp")
    when = parse_time(raw)
    if when is None:
        raise RecordError("bad_time", f"timestamp {str(raw)[:64]!r} cannot be parsed "
                                      "or is not in 2000-2100")
    return when


def entry_id(record: dict[str, Any]) -> str:
    insert_id = get(record, "insertId")
    if isinstance(insert_id, str) and insert_id:
        if len(insert_id) > MAX_EVENT_ID:
            raise oversized("insertId", insert_id, MAX_EVENT_ID)
        return insert_id
    return record_digest(record)


def outcome_of(payload: dict[str, Any]) -> tuple[str, str | None]:
    status = get(payload, "status")
    code = status.get("code") if isinstance(status, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        return "failure", str(code)
    return "success", None


def normalise(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any]) -> Event:
    """Turn one AuditLog LogEntry into an Event; raises RecordError.

    The common shape (an e-mail principal, string method and service, a request metadata
    object, a UTC timestamp) takes this single-function path with cached per-principal and
    per-method facts; anything else goes to ``normalise_general``, which defines the result
    (``tests/detector/test_sources_fast_paths.py`` checks that both agree).
    """
    payload, raw_time = record.get("protoPayload"), record.get("timestamp")
    if type(payload) is not dict or type(raw_time) is not str:
        return normalise_general(record, resolver, hints)
    get = payload.get
    auth, meta = get("authenticationInfo"), get("requestMetadata")
    method, service = get("methodName"), get("serviceName")
    if type(auth) is not dict or type(meta) is not dict or type(method) is not str \
            or type(service) is not str:
        return normalise_general(record, resolver, hints)
    email = auth.get("principalEmail")
    if type(email) is not str or not email:
        return normalise_general(record, resolver, hints)
    try:
        when = _fromisoformat(raw_time)
    except ValueError:
        return normalise_general(record, resolver, hints)
    if when.tzinfo is not UTC or not MIN_YEAR <= when.year <= MAX_YEAR:
        return normalise_general(record, resolver, hints)
    facts = _PRINCIPALS.get(email) or _principal_facts(email)
    operation = _OPERATIONS.get((service, method)) or _operation(service, method)
    raw_agent = meta.get("callerSuppliedUserAgent")
    if raw_agent is None:
        raw_agent = meta.get("callersupplieduseragent")
    hit = _agent_hit(raw_agent) if type(raw_agent) is str else None
    ua, family = hit or user_agent(raw_agent)
    attributes: dict[str, Any] = {}
    if ua is not None and len(raw_agent) > MAX_USER_AGENT:
        note_agent_cut(raw_agent, attributes)
    caller = meta.get("callerIp")
    if caller is None:
        caller = meta.get("callerip")
    hit = _network_hit(caller) if type(caller) is str else None
    source_ip, network, prefix = hit or classify_network(caller)
    resource = record.get("resource")
    labels = resource.get("labels") if isinstance(resource, dict) else None
    if not isinstance(labels, dict):
        labels = {}
    status = get("status")
    code = status.get("code") if isinstance(status, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        outcome, error = "failure", str(code)
    else:
        outcome, error = "success", None
    if "serviceAccountDelegationInfo" in auth or "serviceaccountdelegationinfo" in auth \
            or "metadata" in payload:
        actor = _delegation(payload, attributes)
    else:  # no chain anywhere: what _delegation finds in that case
        actor = None
    if operation[3] is not None and outcome == "success":
        _techniques(operation[3], payload, email, attributes)
    elif error in _REFUSED and (found := _refused(operation[3], operation[1], payload, email,
                                                  error)):
        attributes[ATTRIBUTE] = found
    key_name = auth.get("serviceAccountKeyName")
    if key_name is None:
        key_name = auth.get("serviceaccountkeyname")
    if isinstance(key_name, str) and key_name:
        credential_id, credential_type = _key_id(key_name), "long_term"
    else:  # the e-mail is there: a token
        credential_id, credential_type = None, "token"
    insert_id = record.get("insertId")
    if insert_id is None:
        insert_id = record.get("insertid")
    if type(insert_id) is not str or not insert_id or len(insert_id) > MAX_EVENT_ID:
        insert_id = entry_id(record)
    region = labels.get("location") or labels.get("zone") or labels.get("region")
    resource_name = get("resourceName")
    if resource_name is None:
        resource_name = get("resourcename")
    event = Event(  # positional: see common.EVENT_POSITIONAL_ORDER
        insert_id, when, when.timestamp(), SOURCE, email, facts[0], facts[1],
        "principal_email", facts[2], _tenant(labels, record),
        None, credential_id, credential_type, None, actor,  # target tenant, ..., session
        operation[1], free_text(resource_name, MAX_RESOURCE, "resource", attributes),
        free_text(region, MAX_REGION, "region", attributes), source_ip, network,
        prefix, ua, family, outcome, error, operation[2], False, attributes,
    )
    if network in ("internal", "unknown") and caller:
        attributes["network_context"] = str(caller)[:64]
    if resolver.no_config and family not in AI_FAMILY_NAMES:
        return event
    return resolver.finish(event)


def _principal_facts(email: str) -> tuple[str, str, str]:
    if len(email) > MAX_IDENTITY:  # never cached (see remember), so checked every time
        raise oversized("principal", email, MAX_IDENTITY)
    kind, reason = classify_gcp(email)
    return remember(_PRINCIPALS, email, (kind, reason, _principal_type(email)), len(email),
                    _CACHE_LIMIT)


def _operation(service: str, method: str
               ) -> tuple[str, str, bool | None, techniques.Rule | None]:
    """``(method, action, read_only, technique rule)`` for raw ``serviceName`` and
    ``methodName`` strings; raises ``oversized_field`` for names no real entry has (the
    result is then never cached, so the check runs for every such entry)."""
    if len(service) > MAX_SERVICE:
        raise oversized("serviceName", service, MAX_SERVICE)
    if len(method) > MAX_OPERATION:
        raise oversized("methodName", method, MAX_OPERATION)
    name = method or "unknown"
    action = f"{(service or 'unknown').partition('.')[0]}:{name}"
    return remember(_OPERATIONS, (service, method),
                    (name, action, read_only_from_operation(name), techniques.rule_for(name)),
                    len(service) + len(method), _CACHE_LIMIT)


def _techniques(rule: techniques.Rule, payload: dict[str, Any], principal: str,
                attributes: dict[str, Any]) -> None:
    """Technique findings of a successful entry whose method has a rule (see
    ``detector.techniques.gcp``)."""
    found = rule(payload, principal)
    if found:
        attributes[ATTRIBUTE] = found


def _refused(rule: techniques.Rule | None, action: str, payload: dict[str, Any],
             principal: str, error: str) -> list[Any]:
    """What a refused entry adds (``_REFUSED``): the findings of ``_ATTEMPT_RULES`` as
    attempts (``techniques.attempted``: one severity lower, the refusal named), then for
    a PERMISSION_DENIED the refusal's own findings (``techniques.refusal``). A GPU launch
    refused by a quota or a missing permission still shows what was asked for, as AWS's
    refused ``RunInstances`` does; other rules judge what a success changed, and a refused
    request changed nothing."""
    out: list[Any] = []
    if rule is not None:
        try:
            found = rule(payload, principal)
        except Exception:  # noqa: BLE001 - a rule read a refused entry's odd body: no finding
            found = []
        out = attempted([f for f in found if type(f) is Finding and f.rule in _ATTEMPT_RULES],
                        _REFUSED[error])
    if error == _DENIED:
        out += refusal("gcp", action, "PERMISSION_DENIED")
    return out


def normalise_general(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any]
                      ) -> Event:
    """Every LogEntry shape, field by field (``normalise`` takes the common one faster)."""
    payload = payload_of(record)
    if payload is None:
        raise RecordError("invalid_record", "protoPayload is not an object")
    when = entry_time(record)
    principal, resolution = principal_of(payload)
    if len(principal) > MAX_IDENTITY:
        raise oversized("principal", principal, MAX_IDENTITY)
    kind, reason = classify_gcp(principal)
    method = bounded_name(get(payload, "methodName"), MAX_OPERATION, "methodName")
    service = bounded_name(get(payload, "serviceName"), MAX_SERVICE, "serviceName")
    meta = as_dict(get(payload, "requestMetadata"))
    attributes: dict[str, Any] = {}
    raw_agent = get(meta, "callerSuppliedUserAgent")
    ua, family = user_agent(raw_agent)
    if ua is not None and len(raw_agent) > MAX_USER_AGENT:
        note_agent_cut(raw_agent, attributes)
    source_ip, network, prefix = classify_network(get(meta, "callerIp"))
    labels = as_dict(as_dict(record.get("resource")).get("labels"))
    outcome, error = outcome_of(payload)
    actor = _delegation(payload, attributes)
    rule = techniques.rule_for(method)
    if rule is not None and outcome == "success":
        _techniques(rule, payload, principal, attributes)
    elif error in _REFUSED and (found := _refused(rule, f"{service.partition('.')[0]}:"
                                                  f"{method}", payload, principal, error)):
        attributes[ATTRIBUTE] = found
    credential_id, credential_type = _credential(payload)
    region = labels.get("location") or labels.get("zone") or labels.get("region")
    event = Event(  # positional: see common.EVENT_POSITIONAL_ORDER
        entry_id(record), when, when.timestamp(), SOURCE, principal, kind, reason, resolution,
        _principal_type(principal), _tenant(labels, record),
        None, credential_id, credential_type, None, actor,  # target tenant, ..., session
        f"{service.partition('.')[0]}:{method}",
        free_text(get(payload, "resourceName"), MAX_RESOURCE, "resource", attributes),
        free_text(region, MAX_REGION, "region", attributes), source_ip, network, prefix, ua,
        family, outcome, error,
        read_only_from_operation(method), False, attributes,
    )
    if network in ("internal", "unknown") and get(meta, "callerIp"):
        attributes["network_context"] = str(get(meta, "callerIp"))[:64]
    return resolver.finish(event)


def _principal_type(principal: str) -> str:
    if principal == "gcp-system":
        return "system"
    if principal.endswith("gserviceaccount.com"):
        return "serviceAccount"
    if principal.startswith("principal"):
        return "federatedSubject"
    if principal.startswith("system:"):
        return "kubernetes"
    return "user"


def _tenant(labels: dict[str, Any], record: dict[str, Any]) -> str | None:
    """The project: ``resource.labels.project_id``, else the one ``logName`` names."""
    project = labels.get("project_id")
    if not isinstance(project, str) or not project:
        project = _project_from_log(record)
        if project is None:
            return None
    if len(project) > MAX_TENANT:
        raise oversized("project", project, MAX_TENANT)
    return project


def _key_id(key_name: str) -> str:
    """The key id at the end of ``serviceAccountKeyName``."""
    key_id = key_name.rsplit("/", 1)[-1]
    if len(key_id) > MAX_CREDENTIAL:
        raise oversized("serviceAccountKeyName", key_id, MAX_CREDENTIAL)
    return key_id


def _project_from_log(record: dict[str, Any]) -> str | None:
    log_name = get(record, "logName")
    if isinstance(log_name, str) and log_name.startswith("projects/"):
        return log_name.split("/", 2)[1]
    return None


def _delegation(payload: dict[str, Any], attributes: dict[str, Any]) -> str | None:
    """Record the impersonation chain; return the first (original) caller."""
    auth = as_dict(get(payload, "authenticationInfo"))
    chain: list[str] = []
    infos = get(auth, "serviceAccountDelegationInfo")
    if isinstance(infos, list):
        for info in infos[:_MAX_CHAIN]:
            info = as_dict(info)
            party = as_dict(info.get("firstPartyPrincipal") or info.get("thirdPartyPrincipal"))
            email = party.get("principalEmail") or party.get("principalSubject")
            if isinstance(email, str) and email:
                chain.append(email[:256])
    actor = chain[0] if chain else None
    delegation = as_dict(get(payload, "metadata")).get("identityDelegationChain")
    if isinstance(delegation, list):
        chain.extend(str(item)[:256] for item in delegation[:_MAX_CHAIN] if isinstance(item, str))
    if chain:
        attributes["delegation_chain"] = chain
    return actor


def _credential(payload: dict[str, Any]) -> tuple[str | None, str]:
    auth = as_dict(get(payload, "authenticationInfo"))
    key_name = get(auth, "serviceAccountKeyName")
    if isinstance(key_name, str) and key_name:
        return _key_id(key_name), "long_term"
    if get(auth, "principalEmail") or get(auth, "principalSubject"):
        return None, "token"
    return None, "none"
