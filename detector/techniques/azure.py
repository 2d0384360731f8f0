"""Azure Activity Log and Entra audit techniques whose own record carries the evidence.

``detector.sources.azure`` looks the lower-cased operation name up in ``RULES`` (one dict
look-up for the operations no check knows) and calls the rule with the record's lower-cased
top level and ``properties``. Request and response bodies arrive as JSON strings
(``requestbody``, ``responseBody``); they are decoded only for the operations checked here.

An ARM write is logged twice, ``Start`` then ``Success`` (or ``Accepted``, ``Failure``). The
rules that read the request body fire on the record that carries it; the role-assignment
rule, whose body is on both records, fires on the final one only, so one grant is one
finding; so do the rules for deletes and purges (the operation is the evidence) and the
newer body rules, which read the response body of the final record, else its request body.

Panther's Activity Log test events mostly carry neither ``caller`` nor ``identity``: real
exports (diagnostic settings, Log Analytics) name the caller of an administrative
operation in its claims or ``Caller`` column, so a record without one stays a
``missing_identity`` dead letter (counted, kept whole) rather than an alert about nobody.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from detector.techniques import SEVERITIES, Finding, Tally, lower

# Built-in role definition ids (the same in every tenant) that hand over a subscription.
_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": ("Owner", "high"),
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": ("User Access Administrator", "high"),
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": ("Role Based Access Control Administrator", "high"),
    "b24988ac-6180-42a0-ab88-20f7382dd24c": ("Contributor", "medium"),
    # data-plane owners: every blob, or every secret and key of the vaults in scope
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": ("Storage Blob Data Owner", "medium"),
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": ("Key Vault Administrator", "medium"),
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": ("Key Vault Secrets Officer", "medium"),
    # runs commands on every virtual machine in scope, as each machine's own identity
    "9980e02c-c2be-4d73-94e8-173b1dc7cf3c": ("Virtual Machine Contributor", "medium"),
}
_WORKLOAD_CALLERS = frozenset({"serviceprincipal", "managedidentity"})
# Extension types that run arbitrary code or reset credentials on the machine.
_SCRIPT_EXTENSIONS = ("customscript", "runcommand", "vmaccess", "enablevmaccess", "dsc")
_PENDING = frozenset({"start", "started", "accepted"})
_MANAGEMENT_GROUP = "/providers/microsoft.management/managementgroups/"
# Where a network rule admits everyone from; ports that administer a machine or a database.
_ANYWHERE = frozenset({"*", "0.0.0.0/0", "internet", "any", "::/0"})
_ADMIN_PORTS = (22, 3389, 445, 1433, 3306, 5432, 5985, 5986)
# Key Vault permissions that read what the vault protects, by kind. A key's ``get`` returns
# its public half and ``wrapKey``/``unwrapKey`` are what every service encrypting with a
# customer-managed key is granted (Storage, SQL, disks); a certificate's ``get`` is its
# public certificate; listing shows names. None of those hands over a secret value or key.
_VAULT_READS = {
    "secrets": frozenset({"get", "all", "backup"}),
    "keys": frozenset({"all", "backup", "export", "release", "decrypt", "sign"}),
    "certificates": frozenset({"all", "backup"}),
}
# Microsoft's Backup Management Service, the first-party application through which Azure
# Backup takes and prunes VM restore points and disk snapshots on its retention schedule.
_BACKUP_SERVICE = "262044b1-e2ce-469f-a196-69ab7ada62d3"


def lower_keys(data: Any) -> dict[str, Any]:
    """A dict with lower-cased keys, decoding a JSON-object string on the way.

    Azure writes the same field as ``Level`` or ``level``, ``ResultType`` or ``resultType``
    depending on the export, and nests bodies as JSON strings; the Azure source reads every
    record through this too.
    """
    if isinstance(data, str) and data.startswith("{"):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return {}
    if not isinstance(data, dict):
        return {}
    return {key.lower(): value for key, value in data.items() if isinstance(key, str)}


def _status(low: dict[str, Any]) -> str:
    """The record's lower-cased status: ``resultType``, else ``status``/activity status."""
    for value in (low.get("resulttype"), low.get("status"), low.get("activitystatusvalue")):
        if isinstance(value, dict):
            value = value.get("value")
        if isinstance(value, str) and value:
            return value.lower()
    return ""


def _role_assignment(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    if _status(low) in _PENDING:
        return []
    for key in ("responsebody", "requestbody"):
        body = lower_keys(props.get(key))
        inner = lower_keys(body.get("properties"))
        role_id = inner.get("roledefinitionid")
        if not isinstance(role_id, str):
            continue
        guid = role_id.rpartition("/")[2].lower()
        role = _ROLES.get(guid)
        principal = inner.get("principalid")
        kind = inner.get("principaltype")
        who = f"{kind} {principal}" if isinstance(kind, str) and kind else f"{principal}"
        scope = inner.get("scope") if isinstance(inner.get("scope"), str) else _resource(low)
        if role is None:
            return _workload_assignment(low, guid[:64], who, str(scope)[:200], principal)
        severity, where = role[1], str(scope)[:200]
        if _MANAGEMENT_GROUP in str(scope).lower() and "/subscriptions/" not in str(
                scope).lower():
            # every subscription under the group, present and future
            severity, where = higher(severity), f"management group scope {where}"
        return [Finding("azure.privileged_role_assignment", severity, ("T1098.003",),
                        f"role {role[0]} assigned to {who[:160]} at {where}",
                        str(principal)[:128])]
    return []


def authorization_of(low: dict[str, Any],
                     identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The call's authorization, whose ``evidence`` names the caller's role and principal
    type: under ``identity`` (Event Hub, diagnostic settings), at the top (REST), or in the
    ``Authorization``/``Authorization_d`` column (Log Analytics, JSON text or object).
    ``identity``: the record's ``identity`` already read through ``lower_keys``."""
    if identity is None:
        raw = low.get("identity")
        identity = lower_keys(raw.strip() if isinstance(raw, str) else raw)
    return lower_keys(identity.get("authorization") or low.get("authorization")
                      or low.get("authorization_d"))


def _workload_assignment(low: dict[str, Any], role: str, who: str, scope: str,
                         principal: Any) -> list[Finding]:
    """Any other role assigned by a service principal or managed identity (the caller's
    type, from the authorization evidence): a workload widening access on its own. Named
    with the role definition's id and the assignee, which the call's behavioural signals
    cannot say. Medium: a pipeline that manages access does this too."""
    caller = lower_keys(authorization_of(low).get("evidence")).get("principaltype")
    if not isinstance(caller, str) or caller.lower() not in _WORKLOAD_CALLERS:
        return []
    return [Finding("azure.role_assignment_by_workload", "medium", ("T1098.003",),
                    f"role definition {role} assigned to {who[:160]} at {scope} by a "
                    f"{caller[:32]}", str(principal)[:128])]


def higher(severity: str) -> str:
    """One severity level up, never above ``critical``."""
    return SEVERITIES[min(SEVERITIES.index(severity) + 1, len(SEVERITIES) - 1)]


def _elevate_access(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    if _status(low) in _PENDING:
        return []
    return [Finding("azure.privileged_role_assignment", "high", ("T1098.003",),
                    "a directory administrator elevated to User Access Administrator over "
                    "every subscription of the tenant", "elevateAccess")]


def _credentials(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    if _failed(props):
        return []
    target = _entra_target(props)
    name = target.get("displayname") or target.get("id") or "an application"
    return [Finding("azure.credentials_added", "high", ("T1098.001",),
                    f"credentials added to {str(target.get('type') or 'application')} "
                    f"{str(name)[:160]}", str(target.get("id") or name)[:128])]


def _run_command(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    if _status(low) in _PENDING:
        return []
    return [Finding("azure.vm_run_command", "medium", ("T1651",),
                    f"command run on {_resource(low)} through the management plane",
                    _resource(low))]


def _extension(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    resource = _resource(low)
    body = lower_keys(lower_keys(props.get("requestbody")).get("properties"))
    kind = body.get("type") if isinstance(body.get("type"), str) else ""
    name = resource.rpartition("/")[2]
    if not any(mark in f"{kind} {name}".lower() for mark in _SCRIPT_EXTENSIONS):
        return []
    if _status(low) in ("failure", "failed"):
        return []
    shown = kind or name
    return [Finding("azure.vm_run_command", "medium", ("T1651",),
                    f"script extension {shown[:64]} written to {resource}", resource)]


def _diagnostics_deleted(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    if _status(low) in _PENDING:
        return []
    return [Finding("azure.diagnostic_settings_deleted", "high", ("T1562.008",),
                    f"diagnostic setting {_resource(low)} deleted: its logs stop flowing",
                    _resource(low))]


def _storage_account(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    body = lower_keys(lower_keys(props.get("requestbody")).get("properties"))
    if body.get("allowblobpublicaccess") is not True:
        return []
    return [Finding("azure.storage_public_access", "medium", ("T1530",),
                    f"storage account {_resource(low)} now allows anonymous blob access",
                    _resource(low))]


def _container(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    body = lower_keys(lower_keys(props.get("requestbody")).get("properties"))
    access = body.get("publicaccess")
    if not isinstance(access, str) or access.lower() not in ("blob", "container"):
        return []
    return [Finding("azure.storage_public_access", "high", ("T1530",),
                    f"blob container {_resource(low)} opened to anonymous {access.lower()} "
                    "reads", _resource(low))]


def _backup_service(low: dict[str, Any]) -> bool:
    """Whether Azure Backup itself made the call (its application id as the caller or in
    the token's ``appid`` claim): its retention deletes old restore points and snapshots,
    and it reads disks through download links, every day."""
    claims = lower_keys(lower_keys(low.get("identity")).get("claims"))
    return any(isinstance(value, str) and value.lower() == _BACKUP_SERVICE
               for value in (low.get("caller"), claims.get("appid")))


def _final(rule: str, severity: str, attack: tuple[str, ...], text: str,
           backup_routine: bool = False) -> Rule:
    """A rule for an operation that is the evidence by itself (a delete, a purge): one
    finding on its final record, naming the resource after ``text``. ``backup_routine``
    marks operations Azure Backup performs on its own schedule, not findings when it does."""
    def check(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
        if _status(low) in _PENDING or (backup_routine and _backup_service(low)):
            return []
        resource = _resource(low)
        return [Finding(rule, severity, attack, f"{text} {resource}", resource)]
    return check


def _body_of(props: dict[str, Any]) -> dict[str, Any]:
    """The ``properties`` of the response body, else of the request body (the final record
    carries the response; some exports keep only the request)."""
    for key in ("responsebody", "requestbody"):
        inner = lower_keys(lower_keys(props.get(key)).get("properties"))
        if inner:
            return inner
    return {}


def _defender_plan(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    if _status(low) in _PENDING:
        return []
    tier = _body_of(props).get("pricingtier")
    if not isinstance(tier, str) or tier.lower() != "free":
        return []
    return [Finding("azure.alerting_disabled", "high", ("T1562.001",),
                    f"Defender for Cloud plan {_resource(low)} set to Free: its threat "
                    "detection stops", _resource(low))]


def _nsg_rule(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """An inbound allow rule from anywhere on every port or an administration port."""
    if _status(low) in _PENDING:
        return []
    body = _body_of(props)
    if str(body.get("access", "")).lower() != "allow" \
            or str(body.get("direction", "")).lower() != "inbound":
        return []
    sources = [body.get("sourceaddressprefix")] + (
        body.get("sourceaddressprefixes") if isinstance(body.get("sourceaddressprefixes"), list)
        else [])
    if not any(isinstance(src, str) and src.lower() in _ANYWHERE for src in sources[:100]):
        return []
    ports = [body.get("destinationportrange")] + (
        body.get("destinationportranges")
        if isinstance(body.get("destinationportranges"), list) else [])
    exposed = _exposed_ports([str(port) for port in ports[:100] if port is not None])
    if exposed is None:
        return []
    return [Finding("azure.nsg_open_to_world", "high" if exposed == "all ports" else "medium",
                    ("T1562.007",), f"network security rule {_resource(low)} admits the "
                    f"internet to {exposed}", _resource(low))]


def _exposed_ports(ports: list[str]) -> str | None:
    """``all ports``, ``port N`` for an administration or database port, else None."""
    hit: str | None = None
    for port in ports:
        if port.strip() == "*":
            return "all ports"
        first, _, last = port.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            continue
        if low <= 1 and high >= 65535:
            return "all ports"
        hit = hit or next((f"port {p}" for p in _ADMIN_PORTS if low <= p <= high), None)
    return hit


def _recovery_settings(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """Blob soft delete, container soft delete or versioning turned off: deleted or
    overwritten data can no longer be brought back (the step before wiping or encrypting)."""
    if _status(low) in _PENDING:
        return []
    body = _body_of(props)
    off = [name for key, name in (("deleteretentionpolicy", "blob soft delete"),
                                  ("containerdeleteretentionpolicy", "container soft delete"))
           if lower_keys(body.get(key)).get("enabled") is False]
    if body.get("isversioningenabled") is False:
        off.append("versioning")
    if not off:
        return []
    return [Finding("azure.recovery_disabled", "medium", ("T1490",),
                    f"{', '.join(off)} turned off on {_resource(low)}", _resource(low))]


def _vault_access(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A Key Vault access policy granting reads of secrets, keys or certificates."""
    if _status(low) in _PENDING:
        return []
    policies = _body_of(props).get("accesspolicies")
    for policy in policies[:100] if isinstance(policies, list) else ():
        policy = lower_keys(policy)
        permissions = lower_keys(policy.get("permissions"))
        granted = [kind for kind, reads in _VAULT_READS.items()
                   if isinstance(permissions.get(kind), list) and any(
                       isinstance(p, str) and p.lower() in reads
                       for p in permissions[kind][:50])]
        if granted:
            who = str(policy.get("objectid") or "a principal")[:128]
            return [Finding("azure.key_vault_access_granted", "medium", ("T1098.003",),
                            f"Key Vault access policy on {_resource(low)} lets {who} read "
                            f"its {', '.join(granted)}", who)]
    return []


def _failed(props: dict[str, Any]) -> bool:
    """Whether an Entra audit record says its operation failed (no ``result`` is success)."""
    return str(props.get("result", "success")).lower() not in ("success", "")


def _entra_target(props: dict[str, Any]) -> dict[str, Any]:
    """The first target resource of an Entra audit record (lower-cased keys)."""
    targets = _targets(props)
    return targets[0] if targets else {}


def _changes(target: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Modified property name (lower-cased) -> (old, new), JSON strings decoded."""
    out: dict[str, tuple[Any, Any]] = {}
    changes = target.get("modifiedproperties")
    for change in changes[:50] if isinstance(changes, list) else ():
        change = lower_keys(change)
        name = change.get("displayname")
        if isinstance(name, str):
            out[name.lower()] = (_decoded(change.get("oldvalue")),
                                 _decoded(change.get("newvalue")))
    return out


def _text(value: Any) -> str:
    """A changed value as JSON text (decoded objects re-encoded, so searches see JSON)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def _decoded(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _domain_federation(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A domain's sign-in handed to a federation server: whoever holds its token-signing
    certificate signs in as any user of the domain (golden SAML). "Set domain
    authentication" counts only when it makes the domain federated."""
    if _failed(props):
        return []
    target = _entra_target(props)
    operation = str(props.get("activitydisplayname") or low.get("operationname") or "")
    if operation.lower() == "set domain authentication" and "federated" not in str(
            [new for _, new in _changes(target).values()]).lower():
        return []
    domain = str(target.get("displayname") or target.get("id") or "a domain")[:160]
    return [Finding("azure.domain_federation_changed", "high", ("T1484.002",),
                    f"federation settings set on domain {domain}: its sign-ins now trust an "
                    "outside token issuer", domain)]


def _conditional_access(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A Conditional Access policy deleted, or updated so that it stops applying (state no
    longer enabled) or stops asking for MFA."""
    if _failed(props):
        return []
    target = _entra_target(props)
    name = str(target.get("displayname") or target.get("id") or "a policy")[:160]
    operation = str(props.get("activitydisplayname") or low.get("operationname") or "")
    if operation.lower().startswith("delete"):
        return [Finding("azure.conditional_access_weakened", "high", ("T1556.009",),
                        f"Conditional Access policy {name} deleted", name)]
    old, new = _changes(target).get("conditionalaccesspolicy", (None, None))
    old, new = lower_keys(old), lower_keys(new)
    if not old or not new:
        return []
    weakened = []
    if old.get("state") == "enabled" and new.get("state") != "enabled":
        weakened.append(f"state {str(new.get('state'))[:40]}")
    if "mfa" in _controls(old) and "mfa" not in _controls(new):
        weakened.append("MFA no longer required")
    if not weakened:
        return []
    return [Finding("azure.conditional_access_weakened", "medium", ("T1556.009",),
                    f"Conditional Access policy {name} weakened: {', '.join(weakened)}", name)]


def _controls(policy: dict[str, Any]) -> set[str]:
    controls = lower_keys(policy.get("grantcontrols")).get("builtincontrols")
    return {c.lower() for c in controls[:20] if isinstance(c, str)} \
        if isinstance(controls, list) else set()


# ---------------------------------------------------------------------------- third round
# Storage account settings whose change removes a protection: (body key, value that
# weakens, what the sentence says). Only an update counts: a create (its body names the
# ``location``) sets the defaults, and ``defaultAction: Allow`` is the default of every new
# account.
_STORAGE_WEAKENED = (
    ("supportshttpstrafficonly", False, "unencrypted HTTP allowed"),
    ("allowsharedkeyaccess", True, "shared key (account key and SAS) access turned back on"),
    ("publicnetworkaccess", "enabled", "public network access enabled"),
)
# Keys and credentials read through the management plane: storage account keys and SAS
# tokens, App Service settings and publishing profiles, registry, Cosmos DB, Redis, Service
# Bus, Event Hubs, Cognitive Services, Search, Batch and Automation keys, an AKS cluster's
# admin credential. One resource is what pipelines, the portal and Functions do on every
# run; five distinct resources in minutes by one caller is harvesting (the way MicroBurst
# and similar tools collect a subscription's secrets).
_KEYS_BURST = 5
_KEY_READS = tuple(f"microsoft.{path}/action" for path in (
    "storage/storageaccounts/listkeys", "storage/storageaccounts/listaccountsas",
    "storage/storageaccounts/listservicesas", "web/sites/config/list",
    "web/sites/slots/config/list", "web/sites/publishxml", "web/sites/slots/publishxml",
    "containerregistry/registries/listcredentials", "documentdb/databaseaccounts/listkeys",
    "documentdb/databaseaccounts/listconnectionstrings", "cache/redis/listkeys",
    "servicebus/namespaces/authorizationrules/listkeys",
    "eventhub/namespaces/authorizationrules/listkeys", "cognitiveservices/accounts/listkeys",
    "search/searchservices/listadminkeys", "batch/batchaccounts/listkeys",
    "automation/automationaccounts/listkeys",
    "containerservice/managedclusters/listclusteradmincredential",
    # Function keys (host, per function, system secrets) and Logic App trigger URLs, whose
    # signature lets anyone holding the URL run the workflow
    "web/sites/host/listkeys", "web/sites/slots/host/listkeys",
    "web/sites/functions/listkeys", "web/sites/slots/functions/listkeys",
    "web/sites/functions/listsecrets", "web/sites/slots/functions/listsecrets",
    "logic/workflows/triggers/listcallbackurl", "logic/workflows/listcallbackurl",
    "logic/workflows/versions/triggers/listcallbackurl"))
# Sub-resources whose keys belong to their parent: a deployment reading the keys of each
# function of one app, or each trigger of one workflow, reads one resource's keys.
_KEY_PARENT = re.compile(
    r"(/providers/microsoft\.(?:web/sites|logic/workflows)/[^/]+(?:/slots/[^/]+)?)/.*$")
# The first-party Azure Key Vault application: it regenerates the storage keys it manages
# on their rotation schedule.
_KEY_VAULT_SERVICE = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
# Resources whose deletion destroys data or service, counted toward a burst per caller:
# one deleted resource group is a torn-down test environment, five in ten minutes is not.
_MASS_DELETE = 5


def _update_body(props: dict[str, Any]) -> dict[str, Any] | None:
    """The request body of an update (None for a create, whose body names ``location``)."""
    body = lower_keys(props.get("requestbody"))
    if "location" in body:
        return None
    return lower_keys(body.get("properties")) or _body_of(props)


def _storage_settings(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A storage account update that opens it: anonymous blob access (``_storage_account``),
    HTTP, shared keys, public network access or a network rule set that allows all."""
    found = _storage_account(low, props)
    if _status(low) in _PENDING:
        return found
    body = _update_body(props)
    if body is None:
        return found
    weakened = []
    for key, value, text in _STORAGE_WEAKENED:
        have = body.get(key)
        if have is value or (isinstance(value, str) and isinstance(have, str)
                             and have.lower() == value):
            weakened.append(text)
    action = lower_keys(body.get("networkacls")).get("defaultaction")
    if isinstance(action, str) and action.lower() == "allow":
        weakened.append("network rules set to allow every network")
    if weakened:
        found = found + [Finding("azure.storage_protection_removed", "medium", ("T1562.007",),
                                 f"storage account {_resource(low)}: {', '.join(weakened)}",
                                 _resource(low))]
    return found


def _disk_exposed(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A disk or snapshot update that lets its contents be downloaded from any network:
    ``networkAccessPolicy: AllowAll`` (a SAS download link works from anywhere) or public
    network access enabled. Only an update counts: ``AllowAll`` is every new disk's default,
    and a create names its ``location``."""
    if _status(low) in _PENDING:
        return []
    body = _update_body(props)
    if body is None:
        return []
    opened = []
    policy = body.get("networkaccesspolicy")
    if isinstance(policy, str) and policy.lower() == "allowall":
        opened.append("downloadable from any network (networkAccessPolicy AllowAll)")
    public = body.get("publicnetworkaccess")
    if isinstance(public, str) and public.lower() == "enabled":
        opened.append("public network access enabled")
    if not opened:
        return []
    return [Finding("azure.disk_exposed", "medium", ("T1537",),
                    f"{_resource(low)}: {', '.join(opened)}", _resource(low))]


def _account_of(resource: str) -> str:
    lowered = resource.lower()
    if "/storageaccounts/" in lowered:
        return lowered.split("/storageaccounts/", 1)[1].split("/", 1)[0][:64]
    return lowered.rpartition("/")[2][:64]


def _keys_listed(low: dict[str, Any], props: dict[str, Any]) -> list[Any]:
    if _status(low) in _PENDING:
        return []
    resource = _KEY_PARENT.sub(r"\1", _resource(low).lower())
    return [Tally("azure.key_harvest", "high", ("T1552",),
                  "resources whose keys or credentials were read",
                  (resource[:256],), limit=_KEYS_BURST)]


def _key_regenerated(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    if _status(low) in _PENDING or _caller_app(low) == _KEY_VAULT_SERVICE:
        return []
    return [Finding("azure.storage_key_regenerated", "low", ("T1098.001",),
                    f"access key of storage account {_account_of(_resource(low))} "
                    "regenerated: whoever did it can read the new key; every application "
                    "using the old one loses access", _resource(low))]


def _caller_app(low: dict[str, Any]) -> str:
    """The caller's application id (``appid`` claim, else ``caller``), lower-cased."""
    identity = lower_keys(low.get("identity"))
    claims = lower_keys(identity.get("claims") or low.get("claims"))
    for value in (claims.get("appid"), low.get("caller")):
        if isinstance(value, str) and value:
            return value.lower()
    return ""


def _mass_delete(noun: str) -> Rule:
    """A delete of a resource holding data or service, counted toward a burst of distinct
    deleted resources per caller (``_MASS_DELETE``)."""
    def check(low: dict[str, Any], props: dict[str, Any]) -> list[Any]:
        if _status(low) in _PENDING:
            return []
        return [Tally("azure.mass_deletion", "high", ("T1485",), f"deleted resources ({noun})",
                      (_resource(low)[:256],), limit=_MASS_DELETE)]
    return check


def _secret_read(low: dict[str, Any], props: dict[str, Any]) -> list[Any]:
    """One secret value read from a Key Vault (``SecretGet`` in the data-plane log, or the
    ``getSecret`` action through the management plane): applications read their own few
    secrets all day; one caller reading many distinct secrets in minutes is a dump."""
    url = props.get("id") if isinstance(props.get("id"), str) else ""
    resource = _resource(low)
    if "/secrets/" not in url and "/secrets/" in resource.lower():
        # the management-plane getSecret action names the secret in its resource id
        lowered = resource.lower()
        url, resource = lowered, lowered.split("/secrets/", 1)[0]
    name = url.split("/secrets/", 1)[1].split("/", 1)[0] if "/secrets/" in url else url
    vault = resource.rpartition("/")[2].lower()
    return [Tally("azure.secrets_burst", "medium", ("T1555.006",), "Key Vault secrets",
                  (f"{vault}/{name}"[:256],))]


def _federated_credential(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A federated identity credential on a managed identity: tokens of an outside issuer
    (a CI system, another cloud, a cluster) now sign in as it, with no secret involved."""
    if _status(low) in _PENDING:
        return []
    body = _body_of(props)
    issuer = body.get("issuer") if isinstance(body.get("issuer"), str) else "an outside issuer"
    subject = body.get("subject") if isinstance(body.get("subject"), str) else ""
    shown = f"{issuer[:160]}" + (f" (subject {subject[:120]})" if subject else "")
    return [Finding("azure.federated_credential_added", "medium", ("T1098.001",),
                    f"federated credential on managed identity {_resource(low)} trusts tokens "
                    f"of {shown}", _resource(low))]


# ---------------------------------------------------------------------------- Entra roles
# Directory roles that control the tenant (tier 0), and those that control applications,
# users or policies (privileged): a service principal in one of them acts as an
# administrator with no person, MFA or Conditional Access in the way.
_TIER0_ROLES = frozenset({
    "global administrator", "company administrator", "privileged role administrator",
    "privileged authentication administrator", "partner tier2 support",
    "hybrid identity administrator", "domain name administrator",
})
_PRIVILEGED_ROLES = _TIER0_ROLES | {
    "application administrator", "cloud application administrator",
    "authentication administrator", "security administrator", "user administrator",
    "exchange administrator", "sharepoint administrator", "intune administrator",
    "conditional access administrator", "groups administrator", "directory writers",
    "helpdesk administrator", "password administrator", "authentication policy administrator",
}
_PIM_SERVICE = "ms-pim"  # Entra's PIM service, which logs every activation again itself


def _targets(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The target resources (lower-cased keys); the Log Analytics ``TargetResources``
    column may hold them as a JSON string."""
    targets = _decoded(props.get("targetresources"))
    return [lower_keys(t) for t in targets[:20]] if isinstance(targets, list) else []


def _role_and_member(props: dict[str, Any]) -> tuple[str, str, str]:
    """``(role name, member type, member name)`` of an Entra role assignment record: the
    role is a target of type ``Role`` (PIM) or the member's ``Role.DisplayName`` change."""
    role, member_type, member = "", "", ""
    for target in _targets(props):
        kind = str(target.get("type") or "")
        if kind.lower() == "role":
            role = role or str(target.get("displayname") or "")
        elif kind.lower() in ("user", "serviceprincipal", "group") and not member:
            member_type = kind
            member = str(target.get("userprincipalname") or target.get("displayname")
                         or target.get("id") or "")
            new = _changes(target).get("role.displayname", (None, None))[1]
            role = role or (new if isinstance(new, str) else "")
    return role.strip(), member_type, member


def _initiator_app(props: dict[str, Any]) -> str:
    app = lower_keys(lower_keys(props.get("initiatedby")).get("app"))
    name = app.get("displayname")
    return name.strip().lower() if isinstance(name, str) else ""


def _directory_role(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A tier-0 directory role given to anyone, or a privileged one to a service principal
    or as a permanent PIM assignment. PIM activations (just-in-time, logged again by the
    MS-PIM service) are the routine use of roles and are not findings."""
    if _failed(props):
        return []
    operation = str(props.get("activitydisplayname") or low.get("operationname") or "").lower()
    if "pim" not in operation and _initiator_app(props) == _PIM_SERVICE:
        return []
    role, member_type, member = _role_and_member(props)
    lowered = role.lower()
    if lowered not in _PRIVILEGED_ROLES:
        return []
    tier0 = lowered in _TIER0_ROLES
    if not (tier0 or "pim" in operation or member_type.lower() == "serviceprincipal"):
        return []
    how = "permanently through PIM" if "permanent" in operation else (
        "through PIM" if "pim" in operation else "directly")
    return [Finding("azure.directory_role_assigned", "high" if tier0 else "medium",
                    ("T1098.003",), f"directory role {role[:80]} given {how} to "
                    f"{member_type or 'a member'} {member[:160]}", member[:128])]


# Microsoft Graph permissions that hand over the tenant (grant any role or permission, own
# every application) and those that read or write everyone's data.
_GRAPH_TIER0 = frozenset({
    "rolemanagement.readwrite.directory", "approleassignment.readwrite.all",
    "application.readwrite.all", "directory.readwrite.all",
    "policy.readwrite.conditionalaccess", "policy.readwrite.authenticationmethod",
    "userauthenticationmethod.readwrite.all", "domain.readwrite.all",
    "group.readwrite.all", "groupmember.readwrite.all", "user.readwrite.all",
})
_GRAPH_DATA = frozenset({
    "mail.read", "mail.readwrite", "mail.send", "mailboxsettings.readwrite",
    "files.read.all", "files.readwrite.all", "sites.read.all", "sites.readwrite.all",
    "sites.fullcontrol.all", "chat.read.all", "chat.readwrite.all", "full_access_as_app",
    "exchange.manageasapp", "directory.read.all",
})
_PERMISSION = re.compile(r"[a-z_]+(?:\.[a-z_]+)+|full_access_as_app")


def _permission_grant(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """An application granted (app role assignment) or consented (delegated grant, user or
    admin consent) a Graph permission that controls the tenant or reads everyone's data:
    the illicit consent grant and the service principal escalation of Entra attacks."""
    if _failed(props):
        return []
    granted, app = set(), ""
    for target in _targets(props):
        for name, (_, new) in _changes(target).items():
            if name in ("approle.value", "delegatedpermissiongrant.scope",
                        "consentaction.permissions", "approle.displayname"):
                granted |= set(_PERMISSION.findall(_text(new).lower()))
            elif name in ("serviceprincipal.displayname", "targetid.serviceprincipalnames"):
                app = app or str(new).strip('"')
        app = app or str(target.get("displayname") or "")
    tier0, data = sorted(granted & _GRAPH_TIER0), sorted(granted & _GRAPH_DATA)
    if not tier0 and not data:
        return []
    shown = ", ".join((tier0 + data)[:6])
    return [Finding("azure.high_privilege_permission_granted", "high" if tier0 else "medium",
                    ("T1098.003", "T1528"), f"application {app[:120] or '(unnamed)'} granted "
                    f"{shown}", shown[:128])]


def _owner_added(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A new owner of an application or service principal: owners add credentials to it
    and so act as it, with every permission it holds."""
    if _failed(props):
        return []
    targets = _targets(props)
    owner = targets[0] if targets else {}
    name = str(owner.get("userprincipalname") or owner.get("displayname") or owner.get("id")
               or "someone")
    app = ""
    for target in targets:
        for key, (_, new) in _changes(target).items():
            if key.endswith(".displayname") and key.split(".", 1)[0] in (
                    "application", "serviceprincipal"):
                app = app or str(new).strip('"')
    return [Finding("azure.app_owner_added", "low", ("T1098",),
                    f"{name[:120]} made owner of {app[:120] or 'an application'}: owners can "
                    "add credentials to it", name[:128])]


def _app_federated_credential(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """"Update application" that adds a federated identity credential: an outside token
    issuer (a repository's CI, another tenant's cluster) can now sign in as the app."""
    if _failed(props):
        return []
    for target in _targets(props):
        old, new = _changes(target).get("federatedidentitycredentials", (None, None))
        if new and new != old and len(_text(new)) > len(_text(old or "")):
            name = str(target.get("displayname") or target.get("id") or "an application")
            issuers = re.findall(r'"issuer"\s*:\s*"([^"]{1,200})"', _text(new))
            shown = f" trusting {issuers[-1]}" if issuers else ""
            return [Finding("azure.federated_credential_added", "medium", ("T1098.001",),
                            f"federated identity credential added to application "
                            f"{name[:120]}{shown}", name[:128])]
    return []


def _named_location(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A named location made trusted: Conditional Access policies that spare trusted
    locations (no MFA, no block) now spare its networks too."""
    if _failed(props):
        return []
    for target in _targets(props):
        for old, new in _changes(target).values():
            new_text = _text(new).lower().replace(" ", "")
            if '"istrusted":true' in new_text and '"istrusted":true' not in _text(
                    old).lower().replace(" ", ""):
                name = str(target.get("displayname") or target.get("id") or "a location")
                return [Finding("azure.conditional_access_weakened", "medium", ("T1556.009",),
                                f"named location {name[:120]} marked trusted: policies that "
                                "exempt trusted locations now exempt it", name[:128])]
    return []


def _external_idp(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """The authentication methods policy pointed at an outside OpenID Connect provider
    (its discovery URL changed): that provider's tokens now satisfy sign-in or MFA."""
    if _failed(props):
        return []
    for target in _targets(props):
        for name, (old, new) in _changes(target).items():
            new_text = _text(new).lower()
            if ("openidconnect" in name or "discoveryurl" in new_text) and new != old \
                    and new not in (None, "", "null"):
                urls = re.findall(r'"discoveryurl"\s*:\s*"([^"]{1,200})"', _text(new),
                                  re.IGNORECASE)
                shown = urls[0] if urls else name
                return [Finding("azure.external_idp_trusted", "high", ("T1484.002", "T1556"),
                                f"authentication methods policy now trusts the OpenID "
                                f"Connect provider {shown[:160]}", shown[:128])]
    return []


_TRUSTED_CAS = "trustedcasforpasswordlessauth"


def _trusted_ca(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    """A root certificate authority added for certificate-based authentication ("Set
    Company Information" whose ``TrustedCAsForPasswordlessAuth`` grew): whoever holds that
    CA's key issues a certificate for any user and signs in as them, no password or MFA."""
    if _failed(props):
        return []
    for target in _targets(props):
        for name, (old, new) in _changes(target).items():
            if _TRUSTED_CAS in name:
                grew = len(_text(new)) > len(_text(old or ""))
            else:  # the list inside a whole settings object: compare from its key on
                new_text, old_text = _text(new).lower(), _text(old or "").lower()
                at_new, at_old = new_text.find(_TRUSTED_CAS), old_text.find(_TRUSTED_CAS)
                grew = at_new >= 0 and (at_old < 0 or len(new_text) - at_new
                                        > len(old_text) - at_old)
            if grew:
                return [Finding("azure.external_idp_trusted", "high", ("T1484.002", "T1556"),
                                "root certificate authority added for certificate-based "
                                "sign-in: certificates it issues now sign in as the "
                                "tenant's users", "TrustedCAsForPasswordlessAuth")]
    return []


def _resource(low: dict[str, Any]) -> str:
    value = low.get("resourceid")
    return value[:512] if isinstance(value, str) and value else "(resource)"


Rule = Callable[[dict[str, Any], dict[str, Any]], list[Finding]]
RULES: dict[str, Rule] = {
    "microsoft.authorization/roleassignments/write": _role_assignment,
    "microsoft.authorization/elevateaccess/action": _elevate_access,
    "add service principal credentials": _credentials,
    "update application \u2013 certificates and secrets management": _credentials,
    "update application - certificates and secrets management": _credentials,
    "microsoft.compute/virtualmachines/runcommand/action": _run_command,
    "microsoft.compute/virtualmachines/runcommands/write": _run_command,
    "microsoft.compute/virtualmachinescalesets/virtualmachines/runcommand/action": _run_command,
    "microsoft.containerservice/managedclusters/runcommand/action": _run_command,
    "microsoft.compute/virtualmachines/extensions/write": _extension,
    "microsoft.compute/virtualmachinescalesets/extensions/write": _extension,
    "microsoft.insights/diagnosticsettings/delete": _diagnostics_deleted,
    "microsoft.storage/storageaccounts/write": _storage_settings,
    "microsoft.storage/storageaccounts/blobservices/containers/write": _container,
    "microsoft.serialconsole/serialports/connect/action": _run_command,
    **{f"microsoft.insights/{kind}/delete": _final(
        "azure.alerting_disabled", "medium", ("T1562.001",), "alerting removed:")
       for kind in ("actiongroups", "alertrules", "metricalerts", "scheduledqueryrules",
                    "activitylogalerts")},
    "microsoft.security/alertssuppressionrules/write": _final(
        "azure.alerting_disabled", "medium", ("T1562.001",),
        "Defender for Cloud alert suppression rule written:"),
    "microsoft.security/pricings/write": _defender_plan,
    "microsoft.operationalinsights/workspaces/delete": _final(
        "azure.log_workspace_deleted", "high", ("T1562.008", "T1485"),
        "Log Analytics workspace deleted, with the logs it held:"),
    "microsoft.authorization/locks/delete": _final(
        "azure.resource_lock_deleted", "medium", ("T1562", "T1485"),
        "resource lock deleted, so what it protected can be deleted or changed:"),
    # a draft runs nothing; publishing makes it the runbook's live code
    "microsoft.automation/automationaccounts/runbooks/publish/action": _final(
        "azure.automation_code", "low", ("T1648",),
        "runbook published (its code runs with the Automation account's identity):"),
    **{f"microsoft.automation/automationaccounts/webhooks/{op}": _final(
        "azure.automation_code", "medium", ("T1648",),
        "Automation webhook created (anyone holding its URL starts the runbook):")
       for op in ("write", "action")},
    **{f"microsoft.compute/{kind}/begingetaccess/action": _final(
        "azure.disk_exported", "medium", ("T1537",),
        "download link (SAS URI) issued for the contents of", backup_routine=True)
       for kind in ("disks", "snapshots")},
    **{operation: _final("azure.recovery_deleted", "medium", ("T1490",),
                         "backup or restore point deleted:", backup_routine=True)
       for operation in (
           "microsoft.compute/restorepointcollections/delete",
           "microsoft.compute/restorepointcollections/restorepoints/delete",
           "microsoft.recoveryservices/vaults/delete",
           "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/delete",
           "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/"
           "protecteditems/delete",
           "microsoft.dataprotection/backupvaults/backupinstances/delete")},
    "microsoft.compute/snapshots/delete": _final(
        "azure.recovery_deleted", "low", ("T1490",), "disk snapshot deleted:",
        backup_routine=True),
    "microsoft.storage/storageaccounts/blobservices/write": _recovery_settings,
    **{f"microsoft.keyvault/{path}/purge/action": _final(
        "azure.key_vault_purged", "high", ("T1485",),
        "purged for good (no soft-delete recovery):")
       for path in ("vaults/keys", "vaults/secrets", "vaults/certificates",
                    "locations/deletedvaults")},
    "microsoft.keyvault/vaults/accesspolicies/write": _vault_access,
    "microsoft.network/networksecuritygroups/securityrules/write": _nsg_rule,
    "set federation settings on domain": _domain_federation,
    "set domain authentication": _domain_federation,
    "delete conditional access policy": _conditional_access,
    "update conditional access policy": _conditional_access,
    # third round: Entra roles, permissions, owners, federation; ARM keys, deletes, capture
    "user has elevated their access to user access administrator for their azure resources":
        _elevate_access,
    **{operation: _directory_role for operation in (
        "add member to role", "add member to role in pim completed (permanent)",
        "add member to role in pim completed (timebound)",
        "add eligible member to role in pim completed (permanent)",
        "add eligible member to role in pim completed (timebound)")},
    **{operation: _permission_grant for operation in (
        "add app role assignment to service principal", "consent to application",
        "add delegated permission grant")},
    "add owner to application": _owner_added,
    "add owner to service principal": _owner_added,
    "update application": _app_federated_credential,
    "add named location": _named_location,
    "update named location": _named_location,
    "update authentication methods policy": _external_idp,
    "set company information": _trusted_ca,
    "authentication methods policy update": _external_idp,
    "microsoft.managedidentity/userassignedidentities/federatedidentitycredentials/write":
        _federated_credential,
    **{operation: _keys_listed for operation in _KEY_READS},
    "microsoft.storage/storageaccounts/regeneratekey/action": _key_regenerated,
    "microsoft.compute/disks/write": _disk_exposed,
    "microsoft.compute/snapshots/write": _disk_exposed,
    # Key Vault data-plane log (AuditEvent): secret values read, counted toward a burst
    "secretget": _secret_read,
    "microsoft.keyvault/vaults/secrets/getsecret/action": _secret_read,
    **{f"microsoft.{path}/delete": _mass_delete(noun) for path, noun in (
        ("resources/subscriptions/resourcegroups", "resource groups"),
        ("storage/storageaccounts", "storage accounts"),
        ("compute/virtualmachines", "virtual machines"), ("compute/disks", "disks"),
        ("sql/servers", "SQL servers"), ("sql/servers/databases", "SQL databases"),
        ("network/virtualnetworks", "virtual networks"),
        ("eventhub/namespaces/eventhubs", "event hubs"),
        ("eventhub/namespaces", "event hub namespaces"),
        ("documentdb/databaseaccounts", "Cosmos DB accounts"))},
    "microsoft.keyvault/vaults/delete": _final(
        "azure.key_vault_deleted", "medium", ("T1485",),
        "Key Vault deleted with its secrets, keys and certificates (recoverable only while "
        "soft-deleted):"),
    "microsoft.storage/storageaccounts/blobservices/containers/immutabilitypolicies/delete":
        _final("azure.recovery_disabled", "medium", ("T1490",),
               "immutability (WORM) policy deleted, so its blobs can be changed or deleted:"),
    **{f"microsoft.network/{path}": _final(
        "azure.packet_capture", "medium", ("T1040",),
        "packet capture started (the traffic is written to storage):")
       for path in ("networkwatchers/packetcaptures/write",
                    "networkwatchers/startpacketcapture/action",
                    "networkwatchers/vpnconnections/startpacketcapture/action",
                    "virtualnetworkgateways/startpacketcapture/action",
                    "vpngateways/startpacketcapture/action")},
    **{f"microsoft.network/{path}/delete": _final(
        "azure.network_defense_removed", "medium", ("T1562.007",), text)
       for path, text in (
           ("firewallpolicies", "firewall policy deleted, its filtering gone:"),
           ("azurefirewalls", "Azure Firewall deleted, its filtering gone:"),
           ("networksecuritygroups", "network security group deleted, its rules gone:"),
           # web application firewalls in front of Front Door and Application Gateway
           ("frontdoorwebapplicationfirewallpolicies",
            "Front Door web application firewall policy deleted, its filtering gone:"),
           ("applicationgatewaywebapplicationfirewallpolicies",
            "Application Gateway web application firewall policy deleted, its filtering "
            "gone:"))},
    # a cluster's events (who ran what, scheduling, failures) deleted through ARM
    **{f"microsoft.{path}/delete": _final(
        "azure.kubernetes_events_deleted", "medium", ("T1070",),
        "Kubernetes events deleted through Azure Resource Manager:")
       for path in ("kubernetes/connectedclusters/events.k8s.io/events",
                    "kubernetes/connectedclusters/events",
                    "containerservice/managedclusters/events.k8s.io/events",
                    "containerservice/managedclusters/events")},
    **{f"microsoft.network/{path}/delete": _final(
        "azure.diagnostic_settings_deleted", "medium", ("T1562.008",), text)
       for path, text in (
           ("networkwatchers", "Network Watcher deleted with its flow logs:"),
           ("networkwatchers/flowlogs", "NSG flow log deleted:"))},
    "microsoft.network/bastionhosts/createshareablelinks/action": _final(
        "azure.remote_access_link", "medium", ("T1133", "T1021.007"),
        "Bastion shareable link created (anyone with the link reaches the VM without "
        "signing in to Azure):"),
    **{f"microsoft.{path}/write": _final(
        "azure.kubernetes_role_binding", severity, ("T1098.006",),
        "Kubernetes role binding written through Azure Resource Manager:")
       for path, severity in (
           ("kubernetes/connectedclusters/rbac.authorization.k8s.io/clusterrolebindings",
            "medium"),
           ("kubernetes/connectedclusters/rbac.authorization.k8s.io/rolebindings", "low"),
           ("containerservice/managedclusters/rbac.authorization.k8s.io/clusterrolebindings",
            "medium"),
           ("containerservice/managedclusters/rbac.authorization.k8s.io/rolebindings",
            "low"))},
    **{f"microsoft.automation/automationaccounts/{path}": _final(
        "azure.automation_code", "low", ("T1648",), text)
       for path, text in (
           # a runbook written with a content link is published at once; a draft runs
           # nothing until it is published (publish/action above)
           ("runbooks/write", "runbook written (its code runs with the Automation account's "
                              "identity):"),
           ("jobs/write", "runbook job started:"),
           ("schedules/write", "Automation schedule written (runbooks linked to it run on "
                               "their own):"))},
}

# ---------------------------------------------------------------------------- storage logs


def storage_findings(error: Any, account: str, key: Any) -> list[Finding]:
    """Findings of a Storage resource log record: a read refused because the blob is
    encrypted with a customer-provided key the reader does not hold
    (``BlobUsesCustomerSpecifiedEncryption``). Blobs re-encrypted in place under a key only
    the attacker has is how storage ransomware works without deleting anything; the
    finding falls on the reader that found it out and names the blob."""
    if not isinstance(error, str) or error.lower() != "blobusescustomerspecifiedencryption":
        return []
    name = key if isinstance(key, str) and key else account
    return [Finding("azure.storage_foreign_encryption", "medium", ("T1486",),
                    f"blob {name[:200]} is encrypted with a customer-provided key its reader "
                    "does not hold: re-encrypted in place (ransomware), or written by an "
                    "application that keeps its own key", account)]


# ---------------------------------------------------------------------------- sign-ins
_RISK_LEVELS = frozenset({"medium", "high"})
_RISK_CLEARED = frozenset({"dismissed", "remediated", "confirmedsafe"})
# The Microsoft Authentication Broker: a device code sign-in to it registers a device and
# yields a primary refresh token, the device code phishing of 2024-2025.
_BROKER_APP = "29d9ed98-a469-4536-ade2-f981bc1d605e"
# The BloodHound collector for Entra ID and Azure, whose default user agent names it.
_RECON_TOOL = "azurehound"
# Password-spraying tools sign in through these first-party public clients with a bare
# browser user agent, which the real PowerShell module and CLI never send.
_SPRAY_CLIENTS = {"1b730954-1685-4b74-9bfd-dac224a7b894": "Azure AD PowerShell",
                  "04b07795-8ddb-461a-bbee-02f9e1bf7b46": "the Azure CLI"}
_SPRAY_AGENT = "Mozilla/5.0"
# Wrong password, locked account (smart lockout), expired password, empty password.
_PASSWORD_FAILURES = frozenset({"50126", "50053", "50055", "50056"})
# Sign-in errors of a wrong credential of a workload identity: invalid client secret,
# account locked, bad user name or password. An expired client secret (7000222) is the one
# an application forgotten at rotation keeps presenting, so it counts by address only
# (``_workload_tallies``).
_BAD_CREDENTIAL = frozenset({"7000215", "50053", "50126"})
_EXPIRED_CREDENTIAL = "7000222"
_FAILURE_ADDRESSES = 3  # distinct addresses failing as one workload identity: a burst
_SPREAD_COUNTRIES = 3  # distinct countries one workload identity signs in from: a burst


def signin_findings(props: dict[str, Any], success: bool, workload: bool = False,
                    address: str | None = None, country: str | None = None,
                    tenant: str | None = None) -> list[Any]:
    """Findings of an Entra sign-in record (lower-cased properties): a sign-in Entra itself
    rates medium or high risk and that no one has dismissed, a device code sign-in to the
    authentication broker, a sign-in by the AzureHound collector, a password refused the
    way spraying tools send it, a password-only ROPC sign-in. A failed risky sign-in is one
    level lower: Entra stopped it, but someone held the credential. A service principal's
    or managed identity's (``workload``) sign-ins also count toward two bursts
    (``_workload_tallies``)."""
    found: list[Any] = _workload_tallies(props, success, address, country, tenant) \
        if workload else []
    levels = {str(props.get(key) or "").lower()
              for key in ("risklevelduringsignin", "risklevelaggregated")}
    state = str(props.get("riskstate") or "").lower()
    if levels & _RISK_LEVELS and state not in _RISK_CLEARED:
        severity = "high" if "high" in levels or state == "confirmedcompromised" else "medium"
        events = props.get("riskeventtypes") or props.get("riskeventtypes_v2")
        named = ", ".join(str(e) for e in events[:5]) if isinstance(events, list) else ""
        found.append(Finding(
            "azure.risky_sign_in", severity if success else lower(severity), ("T1078.004",),
            f"sign-in Entra rated {'/'.join(sorted(levels & _RISK_LEVELS))} risk "
            f"(state {state or 'none'}{'; ' + named if named else ''})"
            f"{'' if success else ', refused'}", state or "risk"))
    protocol = str(props.get("authenticationprotocol") or "").lower()
    app = str(props.get("appid") or "").lower()
    if success and protocol == "devicecode" and app == _BROKER_APP:
        found.append(Finding("azure.device_code_phishing", "medium", ("T1528",),
                             "device code sign-in to the Microsoft Authentication Broker: "
                             "a device registered and a refresh token issued from a code "
                             "someone typed in", _BROKER_APP))
    agent = props.get("useragent")
    if success and isinstance(agent, str) and _RECON_TOOL in agent[:512].lower():
        found.append(Finding("azure.recon_tool_sign_in", "medium", ("T1087.004", "T1526"),
                             "signed in with AzureHound's user agent: the tenant's users, "
                             "groups, roles, applications and subscriptions mapped for "
                             "attack paths", _RECON_TOOL))
    if not success and agent == _SPRAY_AGENT and app in _SPRAY_CLIENTS \
            and _error_code(props) in _PASSWORD_FAILURES:
        found.append(Finding("azure.password_spray_tool", "medium", ("T1110.003",),
                             f"password refused through {_SPRAY_CLIENTS[app]} with a bare "
                             f"'Mozilla/5.0' user agent from {address or 'an unknown address'}"
                             ": how password-spraying tools sign in", address or "unknown"))
    if success and protocol == "ropc" and str(props.get("authenticationrequirement") or ""
                                              ).lower() == "singlefactorauthentication":
        found.append(Finding("azure.password_only_sign_in", "low", ("T1078.004",),
                             "password-only sign-in through ROPC (no MFA, no interactive "
                             "prompt)", str(props.get("appdisplayname") or app)[:128]))
    return found


def _workload_tallies(props: dict[str, Any], success: bool, address: str | None,
                      country: str | None, tenant: str | None) -> list[Tally]:
    """The burst counts of a workload identity's sign-in, each kept per identity by the
    engine, never across identities.

    A failure with a wrong or locked credential (``_BAD_CREDENTIAL``) counts as a call and
    by its address: ten in the burst window, or three addresses, is someone trying the
    identity's credentials (a leaked secret tried after rotation, guessing, a lockout). An
    expired secret counts by address only: one host presenting it again and again is an
    application forgotten at rotation, three hosts are a secret that travelled. A success
    counts its country: one service principal signing in from three countries within
    minutes runs from places its workload does not (its secret or certificate copied). An
    application another tenant owns (``appOwnerTenantId``: a vendor's scanner or backup
    service) runs wherever its publisher does, so its countries are not counted."""
    if not success:
        code = _error_code(props)
        where = (address or "no address",)
        if code in _BAD_CREDENTIAL:
            return [Tally("azure.sign_in_failures", "medium", ("T1110",),
                          "failed sign-ins with a wrong or locked credential, by address",
                          where, calls=True, limit=_FAILURE_ADDRESSES)]
        if code == _EXPIRED_CREDENTIAL:
            return [Tally("azure.sign_in_failures", "medium", ("T1110",),
                          "addresses presenting an expired client secret", where,
                          scope="expired", limit=_FAILURE_ADDRESSES)]
        return []
    owner = props.get("appownertenantid")
    if not country or not country.strip() or (
            isinstance(owner, str) and tenant and owner.lower() != tenant):
        return []
    return [Tally("azure.sign_in_spread", "medium", ("T1078.004",),
                  "countries one service principal signed in from",
                  (country.strip().upper()[:64],), limit=_SPREAD_COUNTRIES)]


def _error_code(props: dict[str, Any]) -> str:
    """A sign-in's error code: ``status.errorCode`` (the top ``resultType`` of the
    diagnostic shape may say only "Failure"), else the Log Analytics ``ResultType``."""
    return str(lower_keys(props.get("status")).get("errorcode") or props.get("resulttype")
               or "")
