"""Azure Activity Log records and Entra ID sign-in / audit logs -> Events.

Two export shapes exist for the same data (edge case B11): the Event Hub / diagnostic
shape (``time``, ``category``, ``properties{...}``) and the Log Analytics shape (PascalCase
keys at the top level, nested objects as JSON strings). Keys are therefore read
case-insensitively, and JSON-string fields are decoded on demand.

Sign-ins (``azure.signin``) key to ``servicePrincipalId``, else ``appId`` (lower-cased GUIDs).
Activity Log records (``azure.activity``) key to the caller: the service principal object id
from ``authorization.evidence`` or the ``oid`` claim, else the ``appid`` claim, else
``caller``. Entra audit records key to ``initiatedBy.app`` / ``initiatedBy.user``.
AKS ``kube-audit`` diagnostic records are Kubernetes events (see the parser).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from detector.event import Event
from detector.identity import Resolver, classify_azure
from detector.sources.common import (
    RecordError,
    record_digest,
    classify_network,
    parse_time,
    read_only_from_operation,
    short_str,
    user_agent,
)
from detector.techniques import ATTRIBUTE
from detector.techniques import azure as techniques

logger = logging.getLogger(__name__)

SOURCE_SIGNIN = "azure.signin"
SOURCE_ACTIVITY = "azure.activity"
SIGNIN_CATEGORIES = frozenset({
    "serviceprincipalsigninlogs", "managedidentitysigninlogs", "signinlogs",
    "noninteractiveusersigninlogs", "aadserviceprincipalsigninlogs",
    "aadmanagedidentitysigninlogs", "aadnoninteractiveusersigninlogs", "signinlogs",
})
AKS_CATEGORIES = frozenset({"kube-audit", "kube-audit-admin"})
_OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
_UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
_EMAIL_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
_FAILURES = frozenset({"failure", "failed", "error"})
_TECHNIQUES = techniques.RULES  # lower-cased operation -> check (detector.techniques.azure)


def lower_keys(data: Any) -> dict[str, Any]:
    """A dict with lower-cased keys (``Level``/``level``, ``ResultType``/``resultType``)."""
    if isinstance(data, str) and data.startswith("{"):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return {}
    if not isinstance(data, dict):
        return {}
    return {key.lower(): value for key, value in data.items() if isinstance(key, str)}


def category_of(low: dict[str, Any]) -> str:
    category = low.get("category")
    if not isinstance(category, str):
        category = low.get("type")
    return category.lower() if isinstance(category, str) else ""


def looks_like(low: dict[str, Any]) -> bool:
    """True for an Azure Monitor / Entra record (category or operationName plus time/ids)."""
    if category_of(low) in SIGNIN_CATEGORIES:
        return True
    return "operationname" in low and ("resourceid" in low or "category" in low
                                       or "tenantid" in low or "callerid" in low)


def is_signin(low: dict[str, Any]) -> bool:
    return category_of(low) in SIGNIN_CATEGORIES


def record_time(low: dict[str, Any], props: dict[str, Any]) -> Any:
    raw = low.get("time") or props.get("createddatetime") or low.get("createddatetime") \
        or low.get("eventtimestamp") or low.get("timegenerated") or low.get("p_event_time") \
        or props.get("activitydatetime")
    if raw is None:
        raise RecordError("missing_time", "record has no time, createdDateTime or CreatedDateTime")
    when = parse_time(raw)
    if when is None:
        raise RecordError("bad_time", f"time {str(raw)[:64]!r} cannot be parsed "
                                      "or is not in 1970-2100")
    return when


def _event_id(low: dict[str, Any], props: dict[str, Any], record: dict[str, Any]) -> str:
    for value in (props.get("id"), low.get("id"), low.get("correlationid")):
        if isinstance(value, str) and value:
            return value
    return record_digest(record)


def _guid(value: Any) -> str | None:
    return value.lower()[:128] if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------- sign-ins


def normalise_signin(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any]) -> Event:
    """An Entra sign-in record (either export shape) as an Event."""
    low = lower_keys(record)
    props = lower_keys(low.get("properties")) or low
    identity, resolution, ptype = _signin_identity(props)
    category = category_of(low)
    kind, reason = classify_azure(category, ptype)
    when = record_time(low, props)
    ip_raw = props.get("ipaddress") or low.get("calleripaddress") or low.get("ipaddress")
    source_ip, network, prefix = classify_network(ip_raw)
    outcome, error = _signin_outcome(low, props)
    ua, family = user_agent(props.get("useragent"))
    credential_id, credential_type = _signin_credential(props, category)
    attributes: dict[str, Any] = {}
    for key, name in (("appid", "app_id"), ("servicePrincipalName".lower(), "display_name"),
                      ("appdisplayname", "app_name")):
        value = short_str(props.get(key), 128)
        if value:
            attributes[name] = value
    event = Event(
        event_id=_event_id(low, props, record), time=when, ts=when.timestamp(),
        source=SOURCE_SIGNIN, identity=identity, identity_kind=kind, kind_reason=reason,
        identity_resolution=resolution, principal_type=ptype,
        tenant=_guid(low.get("tenantid") or props.get("tenantid") or low.get("aadtenantid")),
        credential_id=credential_id, credential_type=credential_type,
        action="entra:SignIn", resource=short_str(props.get("resourcedisplayname"), 256),
        region=_location(props, low), source_ip=source_ip, network=network,
        network_prefix=prefix, user_agent=ua, agent_family=family, outcome=outcome,
        error_code=error, read_only=None, attributes=attributes,
    )
    return resolver.finish(event)


def _signin_identity(props: dict[str, Any]) -> tuple[str, str, str]:
    sp_id = _guid(props.get("serviceprincipalid"))
    if sp_id:
        return sp_id, "service_principal_id", "ServicePrincipal"
    app_id = _guid(props.get("appid"))
    user = props.get("userprincipalname") or props.get("userid")
    if isinstance(user, str) and user:
        return user.lower()[:256], "user", "User"
    if app_id:
        return app_id, "app_id", "ServicePrincipal"
    raise RecordError("missing_identity", "sign-in has no servicePrincipalId, appId or user")


def _signin_outcome(low: dict[str, Any], props: dict[str, Any]) -> tuple[str, str | None]:
    result = low.get("resulttype")
    if result is None:
        status = lower_keys(props.get("status"))
        result = status.get("errorcode")
    if result in (None, "", 0, "0") or str(result).lower() in ("success", "none"):
        return "success", None
    return "failure", str(result)[:64]


def _signin_credential(props: dict[str, Any], category: str) -> tuple[str | None, str]:
    key_id = short_str(props.get("serviceprincipalcredentialkeyid"), 128) or short_str(
        props.get("serviceprincipalcredentialthumbprint"), 128)
    kind = str(props.get("clientcredentialtype") or "").lower()
    if "managedidentity" in category or kind == "managedidentity":
        return key_id, "token"
    if kind in ("certificate", "clientassertion"):
        return key_id, "certificate"
    if kind == "clientsecret":
        return key_id, "long_term"
    if kind == "federatedidentitycredential":
        return key_id, "token"
    return key_id, "unknown"


def _location(props: dict[str, Any], low: dict[str, Any]) -> str | None:
    location = props.get("location") if "location" in props else low.get("location")
    if isinstance(location, str):
        return location[:64] or None
    details = lower_keys(location) or lower_keys(props.get("locationdetails"))
    return short_str(details.get("countryorregion"), 64)


# ---------------------------------------------------------------------------- activity


def normalise_activity(record: dict[str, Any], resolver: Resolver,
                       hints: dict[str, Any]) -> Event:
    """An Azure Activity Log or Entra audit record as an Event."""
    low = lower_keys(record)
    props = lower_keys(low.get("properties"))
    identity, resolution, ptype, kind, reason = _activity_identity(low, props)
    when = record_time(low, props)
    operation = _operation(low, props)
    prefix_name = "entra" if "/providers/microsoft.aadiam" in str(low.get("resourceid", "")
                                                                  ).lower() else "azure"
    source_ip, network, prefix = classify_network(low.get("calleripaddress"))
    outcome, error = _activity_outcome(low, props)
    resource_id = short_str(low.get("resourceid"))
    attributes: dict[str, Any] = {"category": low["category"][:64]} \
        if isinstance(low.get("category"), str) else {}
    rule = _TECHNIQUES.get(operation.lower())
    if rule is not None and outcome == "success":
        found = rule(low, props)
        if found:
            attributes[ATTRIBUTE] = found
    event = Event(
        event_id=_event_id(low, props, record), time=when, ts=when.timestamp(),
        source=SOURCE_ACTIVITY, identity=identity, identity_kind=kind, kind_reason=reason,
        identity_resolution=resolution, principal_type=ptype,
        tenant=_subscription(resource_id) or _guid(low.get("tenantid")),
        credential_type="token", action=f"{prefix_name}:{operation}",
        resource=resource_id, region=short_str(low.get("location"), 64),
        source_ip=source_ip, network=network, network_prefix=prefix, outcome=outcome,
        error_code=error, read_only=read_only_from_operation(operation),
        attributes=attributes,
    )
    return resolver.finish(event)


def _activity_identity(low: dict[str, Any], props: dict[str, Any]
                       ) -> tuple[str, str, str, str, str]:
    initiated = lower_keys(props.get("initiatedby") or low.get("initiatedby"))
    if initiated:
        return _initiated_by(initiated)
    identity = low.get("identity")
    if isinstance(identity, str) and identity:
        return identity[:256], "identity_name", "Unknown", "unknown", "display name only"
    identity = lower_keys(identity)
    claims = identity.get("claims") if isinstance(identity.get("claims"), dict) else {}
    evidence = lower_keys(lower_keys(identity.get("authorization")).get("evidence"))
    ptype = evidence.get("principaltype") if isinstance(evidence.get("principaltype"), str) \
        else None
    caller = low.get("caller")
    if ptype in ("ServicePrincipal", "ManagedIdentity") and _guid(evidence.get("principalid")):
        kind, reason = classify_azure("", ptype)
        return _guid(evidence.get("principalid")), "evidence_principal", ptype, kind, reason
    upn = claims.get(_UPN_CLAIM) or (caller if isinstance(caller, str) and "@" in caller
                                     else None)
    if isinstance(upn, str) and upn:
        return upn.lower()[:256], "caller", ptype or "User", "human", "Entra user"
    app_id = _guid(claims.get("appid"))
    oid = _guid(claims.get(_OID_CLAIM))
    if oid and (claims.get("idtyp") == "app" or app_id):
        return oid, "oid_claim", "ServicePrincipal", "workload", "service principal"
    if app_id:
        return app_id, "app_id", "ServicePrincipal", "workload", "application (appid claim)"
    if isinstance(caller, str) and caller:
        return caller.lower()[:256], "caller", ptype or "ServicePrincipal", "workload", \
            "caller object id"
    email = claims.get(_EMAIL_CLAIM)
    if isinstance(email, str) and email.startswith("Microsoft."):
        return f"azure-service:{email[:128]}", "service_claim", "AzureService", \
            "cloud_service", "Azure platform service"
    raise RecordError("missing_identity", "activity record has no caller, claims or initiatedBy")


def _initiated_by(initiated: dict[str, Any]) -> tuple[str, str, str, str, str]:
    app = lower_keys(initiated.get("app"))
    for key in ("serviceprincipalid", "appid"):
        value = _guid(app.get(key))
        if value:
            return value, f"initiated_by_app_{key}", "ServicePrincipal", "workload", \
                "service principal"
    user = lower_keys(initiated.get("user"))
    name = user.get("userprincipalname") or user.get("id")
    if isinstance(name, str) and name:
        return name.lower()[:256], "initiated_by_user", "User", "human", "Entra user"
    raise RecordError("missing_identity", "initiatedBy names neither an app nor a user")


def _operation(low: dict[str, Any], props: dict[str, Any]) -> str:
    operation = low.get("operationname")
    if isinstance(operation, dict):
        operation = operation.get("value")
    if not isinstance(operation, str) or not operation:
        operation = props.get("activitydisplayname") or props.get("operationname") or "unknown"
    return str(operation)[:256]


def _activity_outcome(low: dict[str, Any], props: dict[str, Any]) -> tuple[str, str | None]:
    result = low.get("resulttype")
    if isinstance(result, dict):
        result = result.get("value")
    result_text = str(result).lower() if result is not None else ""
    if result_text in _FAILURES or str(props.get("result", "")).lower() in _FAILURES:
        signature = low.get("resultsignature")
        return "failure", str(signature or result)[:64]
    return "success", None


def _subscription(resource_id: str | None) -> str | None:
    if not resource_id:
        return None
    lowered = resource_id.lower()
    if lowered.startswith("/subscriptions/"):
        return lowered.split("/", 3)[2][:64]
    return None


def aks_cluster(low: dict[str, Any]) -> str | None:
    """The AKS cluster name from a diagnostic record's resourceId (lower-cased)."""
    resource_id = low.get("resourceid")
    if isinstance(resource_id, str) and "/managedclusters/" in resource_id.lower():
        return resource_id.rsplit("/", 1)[-1].lower()[:128] or None
    return None
