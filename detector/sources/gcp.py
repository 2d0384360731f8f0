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
from typing import Any


from detector.event import Event
from detector.identity import Resolver, classify_gcp
from detector.sources.common import (
    RecordError,
    record_digest,
    as_dict,
    classify_network,
    parse_time,
    read_only_from_operation,
    short_str,
    user_agent,
)

logger = logging.getLogger(__name__)

SOURCE = "gcp.audit"
_MAX_CHAIN = 8


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
                                      "or is not in 1970-2100")
    return when


def entry_id(record: dict[str, Any]) -> str:
    insert_id = get(record, "insertId")
    if isinstance(insert_id, str) and insert_id:
        return insert_id
    return record_digest(record)


def outcome_of(payload: dict[str, Any]) -> tuple[str, str | None]:
    status = get(payload, "status")
    code = status.get("code") if isinstance(status, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        return "failure", str(code)
    return "success", None


def normalise(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any]) -> Event:
    """Turn one AuditLog LogEntry into an Event; raises RecordError."""
    payload = payload_of(record)
    if payload is None:
        raise RecordError("invalid_record", "protoPayload is not an object")
    when = entry_time(record)
    principal, resolution = principal_of(payload)
    kind, reason = classify_gcp(principal)
    method = short_str(get(payload, "methodName"), 256) or "unknown"
    service = short_str(get(payload, "serviceName"), 128) or "unknown"
    meta = as_dict(get(payload, "requestMetadata"))
    ua, family = user_agent(get(meta, "callerSuppliedUserAgent"))
    source_ip, network, prefix = classify_network(get(meta, "callerIp"))
    labels = as_dict(as_dict(record.get("resource")).get("labels"))
    outcome, error = outcome_of(payload)
    attributes: dict[str, Any] = {}
    actor = _delegation(payload, attributes)
    credential_id, credential_type = _credential(payload)
    region = labels.get("location") or labels.get("zone") or labels.get("region")
    event = Event(  # positional: see common.EVENT_POSITIONAL_ORDER
        entry_id(record), when, when.timestamp(), SOURCE, principal, kind, reason, resolution,
        _principal_type(principal),
        short_str(labels.get("project_id"), 128) or _project_from_log(record),  # tenant
        None, credential_id, credential_type, None, actor,  # target tenant, ..., session
        f"{service.partition('.')[0]}:{method}", short_str(get(payload, "resourceName")),
        short_str(region, 64), source_ip, network, prefix, ua, family, outcome, error,
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


def _project_from_log(record: dict[str, Any]) -> str | None:
    log_name = get(record, "logName")
    if isinstance(log_name, str) and log_name.startswith("projects/"):
        return log_name.split("/", 2)[1][:128]
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
        return key_name.rsplit("/", 1)[-1][:128], "long_term"
    if get(auth, "principalEmail") or get(auth, "principalSubject"):
        return None, "token"
    return None, "none"
