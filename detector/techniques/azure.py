"""Azure Activity Log and Entra audit techniques whose own record carries the evidence.

``detector.sources.azure`` looks the lower-cased operation name up in ``RULES`` (one dict
look-up for the operations no check knows) and calls the rule with the record's lower-cased
top level and ``properties``. Request and response bodies arrive as JSON strings
(``requestbody``, ``responseBody``); they are decoded only for the operations checked here.

An ARM write is logged twice, ``Start`` then ``Success`` (or ``Accepted``, ``Failure``). The
rules that read the request body fire on the record that carries it; the role-assignment
rule, whose body is on both records, fires on the final one only, so one grant is one
finding.
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
}
