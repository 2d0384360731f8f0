"""Azure Activity Log records and Entra ID sign-in / audit logs -> Events.

Three export shapes exist for the same Activity Log data (edge case B11): the Event Hub /
diagnostic-settings shape (``records[]`` of ``time``, ``category``, ``identity``,
``properties{...}``), the Log Analytics ``AzureActivity`` table (PascalCase columns at the
top level: ``OperationNameValue`` is the operation, ``OperationName`` only its display name,
``ActivityStatusValue`` the status, ``Caller``, ``Claims``/``Claims_d``,
``Properties``/``Properties_d``, nested objects as JSON strings or objects) and the REST
API's event data (``operationName{value}``, ``status{value}``, ``eventTimestamp``,
``httpRequest{clientIpAddress}``, top-level ``caller`` and ``claims``). Entra sign-in and
audit logs come as the diagnostic shape (``properties{...}``) or as the Log Analytics
tables (``SigninLogs``, ``AADServicePrincipalSignInLogs``, ``AADManagedIdentitySignInLogs``,
``AADNonInteractiveUserSignInLogs``, ``AuditLogs``: the same fields as columns). Keys are
therefore read case-insensitively, JSON-string fields are decoded on demand, and a record
without ``properties`` is read as its own properties.

Sign-ins (``azure.signin``) key to ``servicePrincipalId``, else the user, else ``appId``
(lower-cased GUIDs). Activity Log records (``azure.activity``) key to the caller: a service
principal or managed identity from ``authorization.evidence``, else a person's sign-in name
from the claims or ``caller``, else (a delegated token: scope, name or ``idtyp=user``
claims) the person's object id, else the ``oid`` claim of an app-only token (a managed
identity when ``xms_mirid`` is present), else the ``appid`` claim, else ``caller``. Entra
audit records key to ``initiatedBy.app`` / ``initiatedBy.user``, and to
``azure-service:<display name>`` for Entra's own services. AKS ``kube-audit`` diagnostic
records are Kubernetes events (see the parser). Storage resource logs (``StorageRead``,
``StorageWrite``, ``StorageDelete``) share the envelope; they key to the OAuth caller, or
to the storage account's shared key for SAS and account-key requests
(``normalise_storage``). Key Vault data-plane logs (``AuditEvent``) name the caller in
``identity.claim`` (singular). Records that Azure writes itself (categories ``Policy``,
``Recommendation``, ``ServiceHealth``, ``ResourceHealth``, ``Autoscale``, ``Alert``,
``Security``) have no caller when the platform acted on its own: they key to
``azure-service:<service>``, and so does a ``caller`` that names a resource provider
(``Microsoft.Insights/autoscaleSettings``).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

from detector.event import Event
from detector.identity import Resolver, classify_azure
from detector.sources.common import (
    MAX_EVENT_ID,
    MAX_OPERATION,
    MAX_RESOURCE,
    RecordError,
    SkipRecord,
    record_digest,
    classify_network,
    cut,
    parse_time,
    read_only_from_operation,
    short_str,
    user_agent,
)
from detector.techniques import ATTRIBUTE, refusal, refused
from detector.techniques import azure as techniques
from detector.techniques.azure import (  # lower_keys: also read by the parser
    authorization_of,
    lower_keys,
)

logger = logging.getLogger(__name__)

SOURCE_SIGNIN = "azure.signin"
SOURCE_ACTIVITY = "azure.activity"
SIGNIN_CATEGORIES = frozenset({
    "serviceprincipalsigninlogs", "managedidentitysigninlogs", "signinlogs",
    "noninteractiveusersigninlogs", "aadserviceprincipalsigninlogs",
    "aadmanagedidentitysigninlogs", "aadnoninteractiveusersigninlogs", "signinlogs",
})
AKS_CATEGORIES = frozenset({"kube-audit", "kube-audit-admin"})
# Azure Storage resource logs: data-plane access logs that share the diagnostic-settings
# envelope but name the caller by how it authenticated (OAuth, SAS, account key).
STORAGE_CATEGORIES = frozenset({"storageread", "storagewrite", "storagedelete"})
GRAPH_CATEGORIES = frozenset({"microsoftgraphactivitylogs"})
_OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
_UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
_EMAIL_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
_SCOPE_CLAIM = "http://schemas.microsoft.com/identity/claims/scope"
_GIVEN_NAME_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
_FAILURES = frozenset({"failure", "failed", "error"})
_TECHNIQUES = techniques.RULES  # lower-cased operation -> check (detector.techniques.azure)


def category_of(low: dict[str, Any]) -> str:
    category = low.get("category")
    if not isinstance(category, str):
        category = low.get("type")
    return category.lower() if isinstance(category, str) else ""


def looks_like(low: dict[str, Any]) -> bool:
    """True for an Azure Monitor / Entra record (category or operationName plus time/ids)."""
    category = category_of(low)
    if category in SIGNIN_CATEGORIES or category in GRAPH_CATEGORIES:
        return True
    if "operationname" in low or "operationnamevalue" in low:
        return ("resourceid" in low or "_resourceid" in low or "category" in low
                or "categoryvalue" in low or "tenantid" in low or "callerid" in low)
    # Graph API directoryAudit (the Entra audit record without the diagnostic envelope)
    return "activitydisplayname" in low and "initiatedby" in low


def is_signin(low: dict[str, Any]) -> bool:
    """A sign-in record: its category says so, or (the Graph API ``signIns`` shape, which has
    no category) it has a creation time, an application and a user or service principal."""
    category = category_of(low)
    if category:
        return category in SIGNIN_CATEGORIES
    return "createddatetime" in low and "appid" in low and "status" in low and (
        "userprincipalname" in low or "serviceprincipalid" in low)


def record_time(low: dict[str, Any], props: dict[str, Any]) -> Any:
    raw = low.get("time") or props.get("createddatetime") or low.get("createddatetime") \
        or low.get("eventtimestamp") or low.get("timegenerated") or low.get("p_event_time") \
        or props.get("activitydatetime") or low.get("activitydatetime") \
        or low.get("submissiontimestamp")
    if raw is None:
        raise RecordError("missing_time", "record has no time, createdDateTime or CreatedDateTime")
    when = parse_time(raw)
    if when is None:
        raise RecordError("bad_time", f"time {str(raw)[:64]!r} cannot be parsed "
                                      "or is not in 2000-2100")
    return when


def _event_id(low: dict[str, Any], props: dict[str, Any], record: dict[str, Any]) -> str:
    for value in (props.get("id"), low.get("id"), low.get("eventdataid"),
                  low.get("correlationid")):
        # a Key Vault log's properties.id is the vault or secret URL, the same every call
        if isinstance(value, str) and value and not value.startswith("https://") \
                and len(value) <= MAX_EVENT_ID:  # longer: no id of Azure's (the bound)
            return value
    return record_digest(record)


_HEX32 = re.compile(r"[0-9a-f]{32}")


def _guid(value: Any) -> str | None:
    """An Entra object or application id in one spelling. Azure writes the same GUID with
    dashes (claims), as 32 bare hex digits (role-assignment evidence) or in braces; keyed
    as written, one service principal would be two identities with two baselines."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()[:128]
    if not text:  # blank: no id (a userId of " " is no user)
        return None
    if len(text) == 38 and text[0] == "{" and text[-1] == "}":
        text = text[1:-1]
    if len(text) == 32 and _HEX32.fullmatch(text):
        text = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text


# ---------------------------------------------------------------------------- sign-ins


def normalise_signin(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any]) -> Event:
    """An Entra sign-in record (either export shape) as an Event."""
    low = lower_keys(record)
    props = lower_keys(low.get("properties")) or low
    identity, resolution, ptype = _signin_identity(props)
    category = category_of(low)
    if ptype == "ServicePrincipal" and "managedidentity" in category:
        ptype = "ManagedIdentity"
    kind, reason = classify_azure(category, ptype)
    when = record_time(low, props)
    ip_raw = props.get("ipaddress") or low.get("calleripaddress") or low.get("ipaddress")
    source_ip, network, prefix = classify_network(ip_raw)
    outcome, error = _signin_outcome(low, props)
    ua, family = user_agent(props.get("useragent"))
    credential_id, credential_type = _signin_credential(props, category) \
        if ptype != "User" else (None, "unknown")
    attributes: dict[str, Any] = {}
    for key, name in (("appid", "app_id"), ("servicePrincipalName".lower(), "display_name"),
                      ("appdisplayname", "app_name")):
        value = short_str(props.get(key), 128)
        if value:
            attributes[name] = value
    region = _location(props, low)
    tenant = _guid(low.get("tenantid") or props.get("tenantid") or low.get("aadtenantid"))
    found = techniques.signin_findings(props, outcome == "success", ptype != "User",
                                       source_ip, region, tenant)
    if found:
        attributes[ATTRIBUTE] = found
    event = Event(
        event_id=_event_id(low, props, record), time=when, ts=when.timestamp(),
        source=SOURCE_SIGNIN, identity=identity, identity_kind=kind, kind_reason=reason,
        identity_resolution=resolution, principal_type=ptype,
        tenant=tenant, credential_id=credential_id, credential_type=credential_type,
        action="entra:SignIn", resource=short_str(props.get("resourcedisplayname"), 256),
        region=region, source_ip=source_ip, network=network,
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
    """The credential of a service principal or managed identity sign-in. A user's sign-in
    names the client application's credential type here, not the person's: not used."""
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
    # Without the type (older exports): a certificate sign-in names its thumbprint, so a key
    # id alone is the id of a client secret, the app's long-lived password.
    if props.get("serviceprincipalcredentialthumbprint"):
        return key_id, "certificate"
    if key_id:
        return key_id, "long_term"
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
    category = category_of(low)
    if category in STORAGE_CATEGORIES:
        return normalise_storage(record, low, resolver)
    if category in GRAPH_CATEGORIES:
        return normalise_graph(record, low, resolver)
    if "resourceid" not in low and isinstance(low.get("_resourceid"), str):
        low["resourceid"] = low["_resourceid"]  # Log Analytics: the checks read resourceid
    props = _properties(low)
    if _vault_challenge(low, props):
        raise SkipRecord("key_vault_challenge")
    identity, resolution, ptype, kind, reason = _activity_identity(low, props)
    when = record_time(low, props)
    operation = _operation(low, props)
    prefix_name = "entra" if _is_entra(low, props) else "azure"
    if prefix_name == "azure":
        operation = arm_case(operation)
    source_ip, network, prefix = classify_network(_caller_ip(low))
    outcome, error = _activity_outcome(low, props)
    # Key Vault's data plane names the client (ARM's activity log does not)
    ua, family = user_agent(props.get("clientinfo") or low.get("clientinfo_s")
                            or low.get("clientinfo"))
    resource_id = arm_case(short_str(low.get("resourceid")))
    category = _category_name(low)
    attributes: dict[str, Any] = {"category": category[:64]} if category else {}
    rule = _TECHNIQUES.get(operation.lower())
    if rule is not None and outcome == "success":
        found = rule(low, props)
        if found:
            attributes[ATTRIBUTE] = found
    elif error is not None and (refused(error) or refused(props.get("statuscode"))):
        attributes[ATTRIBUTE] = refusal(prefix_name, f"{prefix_name}:{operation}", error)
    event = Event(
        event_id=_event_id(low, props, record), time=when, ts=when.timestamp(),
        source=SOURCE_ACTIVITY, identity=identity, identity_kind=kind, kind_reason=reason,
        identity_resolution=resolution, principal_type=ptype,
        tenant=_subscription(resource_id) or _guid(low.get("tenantid")),
        credential_type="token", action=f"{prefix_name}:{operation}",
        resource=_vault_item(resource_id, low, props) or resource_id,
        region=short_str(low.get("location"), 64),
        source_ip=source_ip, network=network, network_prefix=prefix, user_agent=ua,
        agent_family=family, outcome=outcome, error_code=error,
        read_only=read_only_from_operation(operation), attributes=attributes,
    )
    return resolver.finish(event)


_VAULT_KINDS = frozenset({"secrets", "keys", "certificates"})


def _vault_item(resource_id: str | None, low: dict[str, Any], props: dict[str, Any]
                ) -> str | None:
    """The secret, key or certificate a Key Vault data-plane record names: the vault's
    resource id, then the item's kind and name from the request's ``id`` URL (``id_s`` in
    Log Analytics), its version left out. The vault alone made every secret one resource:
    a managed identity reading sixteen secrets it never read looked like sixteen reads of
    its usual one, to novelty and to the distinct-resource counts alike."""
    if not resource_id or "/providers/microsoft.keyvault/vaults/" not in resource_id:
        return None
    # ``properties.id`` (diagnostic export), ``id_s`` (AzureDiagnostics), ``Id``
    # (the resource-specific AZKVAuditLogs table)
    url = props.get("id") or low.get("id_s") or low.get("id")
    if not isinstance(url, str):
        return None
    path = url.partition("://")[2].partition("/")[2].partition("?")[0].lower()
    kind, _, rest = path.partition("/")
    name = rest.partition("/")[0]
    if kind not in _VAULT_KINDS or not name:
        return None
    return f"{resource_id}/{kind}/{name}"[:1024]


def _http_status(low: dict[str, Any], props: dict[str, Any]) -> int | None:
    """The data plane's HTTP status (``httpStatusCode`` under ``properties``, or at the top
    in the AZKVAuditLogs table; ``httpStatusCode_d`` in AzureDiagnostics), when the record
    has one."""
    status = props.get("httpstatuscode")
    if status is None:
        status = low.get("httpstatuscode", low.get("httpstatuscode_d"))
    return _http_status_value(status)


def _http_status_value(status: Any) -> int | None:
    """An HTTP status given as a number or as its text (``403``, ``403.0``); None
    otherwise (``²``, which ``isdigit`` takes for a digit, and any other text)."""
    if isinstance(status, bool):
        return None
    if isinstance(status, str):
        text = status.strip()
        if not (0 < len(text) <= 8 and text.isascii()):
            return None
        try:
            status = float(text)
        except ValueError:
            return None
    return int(status) if isinstance(status, int | float) and 0 < status < 1000 else None


def _vault_challenge(low: dict[str, Any], props: dict[str, Any]) -> bool:
    """A Key Vault client's first, token-less request, answered 401 with the challenge
    that tells it where to get a token: every SDK client makes one, no identity is in it,
    and the same client's next request carries the token. Skipped, not dead-lettered: a
    vault's log has a steady stream of them."""
    identity = low.get("identity")
    if isinstance(identity, str) and identity.strip() in ("{}", "null", ""):
        identity = None  # a Log Analytics column holding an empty object as text
    return (_http_status(low, props) == 401 and not identity
            and "keyvault" in str(low.get("resourceid", "")).lower()
            and not _flat_claims(low))  # a row that names its caller is that caller's


def arm_case(name: str | None) -> str | None:
    """An Azure Resource Manager operation or resource id in one case: lower case.

    ARM treats both without regard to case, and the exports disagree: diagnostic settings
    write ``MICROSOFT.COMPUTE/SNAPSHOTS/WRITE`` and ``/SUBSCRIPTIONS/…/RESOURCEGROUPS/…``
    where the REST API and Log Analytics write ``Microsoft.Compute/snapshots/write``. Kept
    as written, one identity's operation was a new value to the models when its logs came
    through another export. Names with a space (Entra's activity names, ``Add member to
    role``) and Key Vault's operation names (``SecretGet``) have one spelling and are left
    alone."""
    if name and "/" in name and " " not in name:
        return name.lower()
    return name


def _properties(low: dict[str, Any]) -> dict[str, Any]:
    """``properties`` (diagnostic, REST) or ``Properties_d`` (Log Analytics); an Entra audit
    record without either (the ``AuditLogs`` table, the Graph API) is its own properties."""
    props = lower_keys(low.get("properties")) or lower_keys(low.get("properties_d"))
    if not props and ("initiatedby" in low or "activitydisplayname" in low):
        return low
    return props


def _is_entra(low: dict[str, Any], props: dict[str, Any]) -> bool:
    """An Entra audit record (``entra:`` actions) rather than an ARM call (``azure:``)."""
    return "/providers/microsoft.aadiam" in str(low.get("resourceid", "")).lower() \
        or "loggedbyservice" in props or str(low.get("type", "")).lower() == "auditlogs"


def _caller_ip(low: dict[str, Any]) -> Any:
    """``callerIpAddress``, else the REST and Log Analytics ``httpRequest.clientIpAddress``."""
    ip = low.get("calleripaddress")
    if ip:
        return ip
    return lower_keys(low.get("httprequest")).get("clientipaddress")


def _category_name(low: dict[str, Any]) -> str:
    """The category as text: ``category``, the REST ``category.value``, or the Log
    Analytics ``CategoryValue`` column."""
    category = low.get("category")
    if isinstance(category, dict):
        category = category.get("value")
    if not isinstance(category, str) or not category:
        category = low.get("categoryvalue")
    return category if isinstance(category, str) else ""


# Activity Log categories that Azure writes itself: the service that acted when no caller is
# named (a policy evaluation, an Advisor recommendation, an autoscale run, a fired alert).
_PLATFORM_CATEGORIES = {
    "policy": "Azure Policy", "recommendation": "Azure Advisor",
    "servicehealth": "Azure Service Health", "resourcehealth": "Azure Resource Health",
    "autoscale": "Azure Autoscale", "alert": "Azure Monitor alerts",
    "security": "Microsoft Defender for Cloud",
}


def _activity_identity(low: dict[str, Any], props: dict[str, Any]
                       ) -> tuple[str, str, str, str, str]:
    """Who made an Activity Log call: ``(key, resolution, principal type, kind, reason)``.

    The Event Hub / storage export has no ``caller`` field: the caller is only in the
    token's claims (``identity.claims``) and the role-assignment evidence. A user's token
    carries an ``appid`` too (the portal's, the CLI's), so an ``appid`` alone does not make
    a service principal: user claims (a scope, a name, a UPN) are looked at first.
    """
    initiated = lower_keys(props.get("initiatedby") or low.get("initiatedby"))
    if initiated:
        return _initiated_by(initiated)
    identity = low.get("identity")
    if isinstance(identity, str) and identity and not identity.lstrip().startswith("{"):
        return identity[:256], "identity_name", "Unknown", "unknown", "display name only"
    identity = lower_keys(identity.strip() if isinstance(identity, str) else identity)
    # Log Analytics (AzureActivity table) has Claims and Authorization as top-level columns
    # (JSON strings, or objects in the ``_d`` columns); Key Vault logs say ``claim``
    claims = lower_keys(identity.get("claims") or identity.get("claim") or low.get("claims")
                        or low.get("claims_d")) or _flat_claims(low)
    evidence = lower_keys(authorization_of(low, identity).get("evidence"))
    ptype = evidence.get("principaltype") if isinstance(evidence.get("principaltype"), str) \
        else None
    principal_id = _guid(evidence.get("principalid"))
    caller = low.get("caller")
    if ptype in ("ServicePrincipal", "ManagedIdentity") and principal_id:
        kind, reason = classify_azure("", ptype)
        return principal_id, "evidence_principal", ptype, kind, reason
    user = _user_name(claims, caller)
    if user:
        return user, "caller", ptype or "User", "human", "Entra user"
    app_id = _guid(claims.get("appid"))
    oid = _guid(claims.get(_OID_CLAIM)) or _guid(claims.get("oid"))
    if _is_user_token(claims) or ptype in ("User", "Group"):
        # a Group's principal id is the group's, not the caller's
        key = oid or (principal_id if ptype == "User" else None) or _guid(caller)
        if key:
            return key, "user_object_id", "User", "human", "Entra user (object id)"
    if oid and claims.get("xms_mirid"):
        return oid, "oid_claim", "ManagedIdentity", "workload", "managed identity"
    if oid and (claims.get("idtyp") == "app" or app_id):
        return oid, "oid_claim", "ServicePrincipal", "workload", "service principal"
    if app_id:
        return app_id, "app_id", "ServicePrincipal", "workload", "application (appid claim)"
    if isinstance(caller, str) and caller.startswith("Microsoft.") and "@" not in caller:
        # a resource provider acting on its own (Microsoft.Insights/autoscaleSettings)
        return f"azure-service:{caller[:128]}", "service_caller", "AzureService", \
            "cloud_service", "Azure platform service"
    if isinstance(caller, str) and caller:
        return caller.lower()[:256], "caller", ptype or "ServicePrincipal", "workload", \
            "caller object id"
    email = claims.get(_EMAIL_CLAIM.lower())
    if isinstance(email, str) and email.startswith("Microsoft."):
        return f"azure-service:{email[:128]}", "service_claim", "AzureService", \
            "cloud_service", "Azure platform service"
    service = _PLATFORM_CATEGORIES.get(_category_name(low).lower())
    if service is not None and not claims:
        return f"azure-service:{service}", "platform_category", "AzureService", \
            "cloud_service", "Azure platform service (its own category)"
    raise RecordError("missing_identity", "activity record has no caller, claims or initiatedBy")


_FLAT_CLAIMS = {re.sub(r"[^a-z0-9]+", "_", claim): claim for claim in (
    _OID_CLAIM, _UPN_CLAIM, _EMAIL_CLAIM, _SCOPE_CLAIM, _GIVEN_NAME_CLAIM)}
_FLAT_TYPES = ("_g", "_s", "_d", "_b", "_t")


def _flat_claims(low: dict[str, Any]) -> dict[str, Any]:
    """The claims of a Key Vault record as Log Analytics' ``AzureDiagnostics`` table
    flattens them, one column each: ``identity_claim_appid_g``,
    ``identity_claim_http_schemas_microsoft_com_identity_claims_objectidentifier_g``;
    named as the diagnostic export names them."""
    out: dict[str, Any] = {}
    for key, value in low.items():
        if key.startswith("identity_claim_") and key.endswith(_FLAT_TYPES):
            name = key[len("identity_claim_"):-2]
            out[_FLAT_CLAIMS.get(name, name)] = value
    return out


def _user_name(claims: dict[str, Any], caller: Any) -> str | None:
    """A person's sign-in name from the claims (UPN, ``unique_name``, e-mail, a name that is
    an address) or an e-mail ``caller``; lower-cased."""
    for key in (_UPN_CLAIM.lower(), "upn", "unique_name", _EMAIL_CLAIM.lower(), "name"):
        value = claims.get(key)
        if isinstance(value, str) and "@" in value:
            return value.rsplit("#", 1)[-1].lower()[:256]  # live.com#someone@example.com
    if isinstance(caller, str) and "@" in caller:
        return caller.lower()[:256]
    return None


def _is_user_token(claims: dict[str, Any]) -> bool:
    """A delegated (user) token: it has a scope, a user's name, or says so in ``idtyp``;
    app-only tokens of service principals and managed identities have none of these."""
    return bool(claims.get(_SCOPE_CLAIM) or claims.get("scp") or claims.get("idtyp") == "user"
                or claims.get("name") or claims.get("given_name")
                or claims.get(_GIVEN_NAME_CLAIM))


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
    # Entra's own services (MS-PIM, Jit Provisioning, group-based licensing) act with an
    # app that has a display name but no service principal or app id in the tenant.
    display = app.get("displayname")
    if isinstance(display, str) and display.strip():
        return f"azure-service:{display.strip()[:128]}", "initiated_by_app_name", \
            "AzureService", "cloud_service", "Entra service named only by display name"
    raise RecordError("missing_identity", "initiatedBy names neither an app nor a user")


def _operation(low: dict[str, Any], props: dict[str, Any]) -> str:
    """The operation: Log Analytics ``OperationNameValue`` (its ``OperationName`` is the
    display name), else ``operationName`` (text, or the REST ``{value}``), else Entra's
    activity name."""
    operation = low.get("operationnamevalue") or low.get("operationname")
    if isinstance(operation, dict):
        operation = operation.get("value")
    if not isinstance(operation, str) or not operation:
        operation = props.get("activitydisplayname") or props.get("operationname") or "unknown"
    return str(operation)[:256]


def _activity_outcome(low: dict[str, Any], props: dict[str, Any]) -> tuple[str, str | None]:
    """``resultType`` (diagnostic), ``status.value`` (REST), ``ActivityStatusValue`` (Log
    Analytics) or Entra's ``result``; the error is the result signature or sub-status."""
    result = low.get("resulttype") or low.get("status") or low.get("activitystatusvalue")
    if isinstance(result, dict):
        result = result.get("value")
    result_text = str(result).lower() if result is not None else ""
    if result_text in _FAILURES or str(props.get("result", "")).lower() in _FAILURES:
        sub = low.get("substatus")
        sub = sub.get("value") if isinstance(sub, dict) else low.get("activitysubstatusvalue")
        signature = low.get("resultsignature") or sub or props.get("statuscode")
        return "failure", str(signature or result)[:64]
    status = _http_status(low, props)
    if status is not None and status >= 400:
        # Key Vault says "Success" for a request it answered, refused or not: the HTTP
        # status tells (a 403 SecretGet is a refused read, not a read)
        return "failure", str(low.get("resultsignature") or status)[:64]
    return "success", None


# ---------------------------------------------------------------------------- graph

_GRAPH_ID = re.compile(
    r"^(?:\{?[0-9a-f-]{32,36}\}?"  # a GUID, in braces or not, with dashes or not
    r"|[^/]*@[^/]*"  # an address; a Teams channel or chat (19:…@thread.tacv2)
    r"|[0-9]+"  # a number
    r"|b![A-Za-z0-9_-]+"  # a drive (b!…)
    r"|[^/]*,[^/]*"  # a SharePoint site (host,site id,web id)
    r"|[A-Za-z0-9_+-]{8,}={1,2}"  # a base64 key with its padding (a message)
    r"|[A-Za-z0-9_=+-]{40,}"  # another opaque key
    r"|(?!microsoft\.)[^/]*\.[^/]*"  # a host or a file name (not microsoft.graph.*)
    r"|'[^/]*')$", re.IGNORECASE)
_GRAPH_UPPER_ID = re.compile(r"^(?=[A-Z]*[0-9])[A-Z0-9]{16,}$")
"""A OneDrive or SharePoint item id (upper-case base32: ``01BYE5RZ6QN3ZW…``); case matters
(a long lower-case segment is a kind)."""
_GRAPH_PATH_ADDRESS = re.compile(r":/[^:]*(:|$)")
"""Path-based addressing: ``root:/Finance/Q3 payroll.xlsx:/content``, ``host:/sites/hr``."""


def normalise_graph(record: dict[str, Any], low: dict[str, Any], resolver: Resolver) -> Event:
    """A Microsoft Graph activity log record (``MicrosoftGraphActivityLogs``: the
    diagnostic export, whose fields are under ``properties``, or the Log Analytics row,
    whose columns are at the top) as an Event: one Graph API call.

    The caller is the user of a delegated call (``userId``), else the application's
    service principal (``servicePrincipalId``, the key its sign-ins and activity records
    have). The action is the method and the path with each object's id left out
    (``graph:GET /users/{id}/messages``; a drive item addressed by its path is
    ``/me/drive/root:{path}:/content``); the resource is the path itself."""
    props = lower_keys(low.get("properties")) or low
    user, app = _guid(props.get("userid")), _guid(props.get("serviceprincipalid"))
    if user:
        identity, resolution, ptype, kind, reason = (
            user, "user_object_id", "User", "human", "Entra user (object id)")
    elif app:
        identity, resolution, ptype, kind, reason = (
            app, "service_principal_id", "ServicePrincipal", "workload", "service principal")
    else:
        raise RecordError("missing_identity",
                          "Graph activity record has no userId or servicePrincipalId")
    when = record_time(low, props)
    method = props.get("requestmethod")
    method = method.upper()[:16] if isinstance(method, str) and method.isalpha() else "?"
    path = _graph_path(props.get("requesturi"))
    kinds = _GRAPH_PATH_ADDRESS.sub(lambda m: ":{path}" + m.group(1), path)
    action = f"graph:{method} " + "/".join(map(_graph_kind, kinds.split("/")))
    status = _http_status_value(props.get("responsestatuscode"))
    outcome, error = ("failure", str(status)) if status is not None and status >= 400 \
        else ("success", None)
    attributes: dict[str, Any] = {"category": "MicrosoftGraphActivityLogs"}
    if len(action) > MAX_OPERATION:  # a path of many kinds: the call stays, named in part
        action = cut(action, MAX_OPERATION, "action", attributes)
    if error is not None and refused(error):
        attributes[ATTRIBUTE] = refusal("azure", action, error)
    source_ip, network, prefix = classify_network(props.get("ipaddress")
                                                  or low.get("calleripaddress"))
    ua, family = user_agent(props.get("useragent"))
    request = props.get("requestid")
    if not isinstance(request, str) or not request or len(request) > MAX_EVENT_ID:
        request = record_digest(record)
    resource = path if len(path) <= MAX_RESOURCE else cut(path, MAX_RESOURCE, "resource",
                                                           attributes)
    event = Event(
        event_id=request,
        time=when, ts=when.timestamp(), source=SOURCE_ACTIVITY, identity=identity,
        identity_kind=kind, kind_reason=reason, identity_resolution=resolution,
        principal_type=ptype, tenant=_guid(props.get("tenantid") or low.get("tenantid")),
        credential_type="token", action=action, resource=resource or None,
        source_ip=source_ip, network=network, network_prefix=prefix, user_agent=ua,
        agent_family=family, outcome=outcome, error_code=error,
        read_only=method == "GET", attributes=attributes,
    )
    return resolver.finish(event)


def _graph_kind(part: str) -> str:
    """A path segment as the action names it: an object's id is ``{id}``, an alternate
    key (``applications(appId='…')``) keeps its name only, a path address its head
    (``root:{path}:``, ``{id}:{path}`` for a site named by host and path)."""
    head, colon, tail = part.partition(":{path}")
    if colon:
        return _graph_kind(head) + colon + tail
    if _GRAPH_ID.match(part) or _GRAPH_UPPER_ID.match(part):
        return "{id}"
    if part.endswith(")") and "(" in part:
        return part[:part.index("(")] + "({id})"
    return part


def _graph_path(uri: Any) -> str:
    """The path of a Graph request URI without the host, the API version and the query."""
    if not isinstance(uri, str):
        return ""
    path = uri.partition("://")[2].partition("/")[2] if "://" in uri else uri.lstrip("/")
    path = unquote(path.partition("?")[0]).rstrip("/")  # %40, %7B…%7D: the ids they spell
    version, _, rest = path.partition("/")
    return "/" + (rest if version.lower() in ("v1.0", "beta") else path)


# ---------------------------------------------------------------------------- storage


def normalise_storage(record: dict[str, Any], low: dict[str, Any], resolver: Resolver
                      ) -> Event:
    """An Azure Storage resource log record (``StorageRead/Write/Delete``) as an Event.

    Who called depends on how the request authenticated (``identity.type``): an OAuth
    caller is its Entra principal (``identity.requester``); a SAS token or an account key
    is a shared key of the storage account, so the key is the identity
    (``azure-storage:<account>``) and the SAS token hash or key name its credential; an
    anonymous request is ``azure-storage:<account>/anonymous``. A SAS in the request URI
    (``sig=``) counts as a SAS when the identity block is missing.
    """
    props = lower_keys(low.get("properties"))
    resource_id = short_str(low.get("resourceid"))
    account = _storage_account(props, resource_id, low.get("uri"))
    identity, ptype, kind, reason, credential_id, credential_type = _storage_caller(
        lower_keys(low.get("identity")), account, low.get("uri"))
    when = record_time(low, props)
    operation = short_str(low.get("operationname"), 128) or "unknown"
    source_ip, network, prefix = classify_network(_strip_port(low.get("calleripaddress")))
    ua, family = user_agent(props.get("useragentheader"))
    outcome, error = _storage_outcome(low, props)
    category = category_of(low)
    attributes: dict[str, Any] = {"category": category, "storage_account": account}
    found = techniques.storage_findings(error, account, props.get("objectkey"))
    if found:
        attributes[ATTRIBUTE] = found
    event = Event(
        event_id=_event_id(low, props, record), time=when, ts=when.timestamp(),
        source=SOURCE_ACTIVITY, identity=identity, identity_kind=kind, kind_reason=reason,
        identity_resolution="storage_" + ptype.lower(), principal_type=ptype,
        tenant=_subscription(resource_id) or _guid(low.get("tenantid")),
        credential_id=credential_id, credential_type=credential_type,
        action=f"storage:{operation}",
        resource=short_str(props.get("objectkey")) or resource_id,
        region=short_str(low.get("location"), 64), source_ip=source_ip, network=network,
        network_prefix=prefix, user_agent=ua, agent_family=family, outcome=outcome,
        error_code=error, read_only=category == "storageread", attributes=attributes,
    )
    return resolver.finish(event)


def _storage_caller(identity: dict[str, Any], account: str, uri: Any
                    ) -> tuple[str, str, str, str, str | None, str]:
    """``(key, principal type, kind, reason, credential id, credential type)``."""
    auth = str(identity.get("type") or "").lower()
    if not auth and isinstance(uri, str) and "sig=" in uri:
        auth = "sas"
    token_hash = short_str(identity.get("tokenhash"), 128)
    if auth == "oauth":
        requester = lower_keys(identity.get("requester"))
        upn = requester.get("upn")
        if isinstance(upn, str) and "@" in upn:
            return upn.lower()[:256], "User", "human", "Entra user", None, "token"
        key = _guid(requester.get("objectid")) or _guid(requester.get("appid"))
        if key:
            return key, "ServicePrincipal", "workload", "service principal", None, "token"
    if auth in ("sas", "accountkey", "sharedkey"):
        key_name = token_hash.split("(", 1)[0] if token_hash else None
        if auth == "sas":
            return f"azure-storage:{account}", "SAS", "workload", \
                "storage account key (SAS token)", token_hash, "token"
        return f"azure-storage:{account}", "AccountKey", "workload", \
            "storage account key", key_name, "long_term"
    if auth == "anonymous":
        return f"azure-storage:{account}/anonymous", "Anonymous", "external", \
            "anonymous storage request", None, "none"
    raise RecordError("missing_identity", "storage log names no authentication "
                      "(identity.type OAuth, SAS, AccountKey or Anonymous)")


def _storage_account(props: dict[str, Any], resource_id: str | None, uri: Any) -> str:
    name = props.get("accountname")
    if isinstance(name, str) and name:
        return name.lower()[:64]
    lowered = (resource_id or "").lower()
    if "/storageaccounts/" in lowered:
        return lowered.split("/storageaccounts/", 1)[1].split("/", 1)[0][:64]
    if isinstance(uri, str) and "://" in uri:
        return uri.split("://", 1)[1].split(".", 1)[0].lower()[:64]
    return "unknown-account"


def _strip_port(value: Any) -> Any:
    """``1.2.3.4:57485`` -> ``1.2.3.4`` (storage logs give the caller's port)."""
    if isinstance(value, str) and value.count(":") == 1 and "." in value:
        return value.split(":", 1)[0]
    return value


def _storage_outcome(low: dict[str, Any], props: dict[str, Any]) -> tuple[str, str | None]:
    status = low.get("statuscode")
    response = str(props.get("metricresponsetype") or "")
    failed = (isinstance(status, int) and not isinstance(status, bool) and status >= 400) \
        or (response and response.lower() != "success")
    if failed:
        text = low.get("statustext") or response or status
        return "failure", str(text)[:64]
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
