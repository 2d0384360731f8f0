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

from collections.abc import Callable
from typing import Any

import orjson

from detector.techniques import Finding

# Built-in role definition ids (the same in every tenant) that hand over a subscription.
_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": ("Owner", "high"),
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": ("User Access Administrator", "high"),
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": ("Role Based Access Control Administrator", "high"),
    "b24988ac-6180-42a0-ab88-20f7382dd24c": ("Contributor", "medium"),
}
# Extension types that run arbitrary code or reset credentials on the machine.
_SCRIPT_EXTENSIONS = ("customscript", "runcommand", "vmaccess", "enablevmaccess", "dsc")
_PENDING = frozenset({"start", "started", "accepted"})
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
        role = _ROLES.get(role_id.rpartition("/")[2].lower())
        if role is None:
            return []
        principal = inner.get("principalid")
        kind = inner.get("principaltype")
        who = f"{kind} {principal}" if isinstance(kind, str) and kind else f"{principal}"
        scope = inner.get("scope") if isinstance(inner.get("scope"), str) else _resource(low)
        return [Finding("azure.privileged_role_assignment", role[1], ("T1098.003",),
                        f"role {role[0]} assigned to {who[:160]} at {str(scope)[:200]}",
                        str(principal)[:128])]
    return []


def _elevate_access(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    if _status(low) in _PENDING:
        return []
    return [Finding("azure.privileged_role_assignment", "high", ("T1098.003",),
                    "a directory administrator elevated to User Access Administrator over "
                    "every subscription of the tenant", "elevateAccess")]


def _credentials(low: dict[str, Any], props: dict[str, Any]) -> list[Finding]:
    if str(props.get("result", "success")).lower() not in ("success", ""):
        return []
    targets = props.get("targetresources")
    target = lower_keys(targets[0]) if isinstance(targets, list) and targets else {}
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


def _entra_target(props: dict[str, Any]) -> dict[str, Any]:
    """The first target resource of an Entra audit record (lower-cased keys)."""
    targets = props.get("targetresources")
    return lower_keys(targets[0]) if isinstance(targets, list) and targets else {}


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
    if str(props.get("result", "success")).lower() not in ("success", ""):
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
    if str(props.get("result", "success")).lower() not in ("success", ""):
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
    "microsoft.storage/storageaccounts/write": _storage_account,
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
}
