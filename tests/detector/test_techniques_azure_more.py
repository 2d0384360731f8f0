"""Azure Activity Log technique findings added for defense evasion, recovery, exfiltration
and persistence: each rule on the attack record and on the near miss of everyday work."""

from __future__ import annotations

import orjson

from tests.detector.test_techniques_azure import SUB, activity, findings
from tests.detector.test_techniques_k8s import assert_no_internal_error, variants

RG = f"{SUB}/resourceGroups/prod/providers"


def test_alerting_and_log_workspace_deleted_on_the_final_record_only() -> None:
    group = f"{RG}/Microsoft.Insights/actionGroups/secops"
    workspace = f"{RG}/Microsoft.OperationalInsights/workspaces/sentinel"
    assert findings(activity("Microsoft.Insights/actionGroups/delete", group, result="Start"),
                    activity("Microsoft.Insights/actionGroups/delete", group),
                    activity("Microsoft.Insights/actionGroups/write", group),
                    activity("Microsoft.OperationalInsights/workspaces/delete", workspace,
                             result="Succeeded")) == [
        ("azure.alerting_disabled", "medium", group),
        ("azure.log_workspace_deleted", "high", workspace)]


def test_defender_plan_set_to_free_but_not_to_standard() -> None:
    plan = f"{SUB}/providers/Microsoft.Security/pricings/VirtualMachines"
    free = activity("Microsoft.Security/pricings/write", plan,
                    response={"properties": {"pricingTier": "Free"}})
    standard = activity("Microsoft.Security/pricings/write", plan,
                        response={"properties": {"pricingTier": "Standard"}})
    assert findings(free, standard) == [("azure.alerting_disabled", "high", plan)]


def test_lock_deleted_is_a_finding_its_refused_or_written_twin_is_not() -> None:
    lock = f"{RG}/Microsoft.Authorization/locks/do-not-delete"
    assert findings(activity("Microsoft.Authorization/locks/delete", lock),
                    activity("Microsoft.Authorization/locks/delete", lock, result="Failure"),
                    activity("Microsoft.Authorization/locks/write", lock)) == [
        ("azure.resource_lock_deleted", "medium", lock)]


def test_runbook_published_and_webhook_created_but_not_a_draft() -> None:
    runbook = f"{RG}/Microsoft.Automation/automationAccounts/ops/runbooks/cleanup"
    hook = f"{RG}/Microsoft.Automation/automationAccounts/ops/webhooks/start"
    base = "MICROSOFT.AUTOMATION/AUTOMATIONACCOUNTS"
    assert findings(activity(f"{base}/RUNBOOKS/PUBLISH/ACTION", runbook),
                    activity(f"{base}/RUNBOOKS/DRAFT/WRITE", runbook),
                    activity(f"{base}/WEBHOOKS/WRITE", hook)) == [
        ("azure.automation_code", "low", runbook), ("azure.automation_code", "medium", hook)]


def test_disk_download_link_is_exfiltration_a_read_is_not() -> None:
    disk = f"{RG}/Microsoft.Compute/disks/db-data"
    assert findings(activity("Microsoft.Compute/disks/beginGetAccess/action", disk),
                    activity("Microsoft.Compute/disks/read", disk)) == [
        ("azure.disk_exported", "medium", disk)]


def test_backups_deleted_and_soft_delete_turned_off() -> None:
    points = f"{RG}/Microsoft.Compute/restorePointCollections/vm1-points"
    blobs = f"{RG}/Microsoft.Storage/storageAccounts/data/blobServices/default"
    off = activity("Microsoft.Storage/storageAccounts/blobServices/write", blobs,
                   response={"properties": {"deleteRetentionPolicy": {"enabled": False},
                                            "isVersioningEnabled": False}})
    on = activity("Microsoft.Storage/storageAccounts/blobServices/write", blobs,
                  response={"properties": {"deleteRetentionPolicy": {"enabled": True,
                                                                      "days": 7}}})
    assert findings(activity("Microsoft.Compute/restorePointCollections/delete", points),
                    off, on) == [("azure.recovery_deleted", "medium", points),
                                 ("azure.recovery_disabled", "medium", blobs)]


def test_key_vault_purge_and_access_policy_granting_secret_reads() -> None:
    vault = f"{RG}/Microsoft.KeyVault/vaults/payments"
    grant = activity("Microsoft.KeyVault/vaults/accessPolicies/write", vault, response={
        "properties": {"accessPolicies": [{"objectId": "0c1d", "permissions": {
            "secrets": ["Get", "List"], "keys": []}}]}})
    write_only = activity("Microsoft.KeyVault/vaults/accessPolicies/write", vault, response={
        "properties": {"accessPolicies": [{"objectId": "0c1d", "permissions": {
            "secrets": ["Set"]}}]}})
    purge = activity("Microsoft.KeyVault/vaults/keys/purge/action", f"{vault}/keys/k")
    assert findings(grant, write_only, purge) == [
        ("azure.key_vault_access_granted", "medium", "0c1d"),
        ("azure.key_vault_purged", "high", f"{vault}/keys/k")]


def test_security_rule_open_to_the_internet_on_admin_or_every_port() -> None:
    rule = f"{RG}/Microsoft.Network/networkSecurityGroups/web/securityRules/r"

    def security(source: str, port: str, access: str = "Allow") -> dict:
        return activity("Microsoft.Network/networkSecurityGroups/securityRules/write", rule,
                        response={"properties": {"access": access, "direction": "Inbound",
                                                 "sourceAddressPrefix": source,
                                                 "destinationPortRange": port}})

    assert findings(security("*", "*"), security("Internet", "3389"),
                    security("Internet", "443"), security("10.0.0.0/8", "22"),
                    security("*", "22", access="Deny")) == [
        ("azure.nsg_open_to_world", "high", rule),
        ("azure.nsg_open_to_world", "medium", rule)]


def entra_change(activity_name: str, target: dict) -> dict:
    return {"time": "2024-03-04T10:00:00Z", "category": "AuditLogs",
            "operationName": activity_name, "resourceId": "/tenants/t/providers/Microsoft.aadiam",
            "properties": {"activityDisplayName": activity_name, "result": "success",
                           "initiatedBy": {"user": {"userPrincipalName": "admin@corp.example"}},
                           "targetResources": [target]}}


def changed(name: str, old: object, new: object) -> dict:
    return {"displayName": name, "oldValue": orjson.dumps(old).decode(),
            "newValue": orjson.dumps(new).decode()}


def test_domain_made_federated_but_not_another_domain_setting() -> None:
    federated = entra_change("Set domain authentication", {
        "displayName": "corp.example", "type": "Domain",
        "modifiedProperties": [changed("LiveType", "Managed", "Federated")]})
    other = entra_change("Set domain authentication", {
        "displayName": "corp.example", "type": "Domain",
        "modifiedProperties": [changed("SomeOtherProperty", "a", "b")]})
    settings = entra_change("Set federation settings on domain", {"displayName": "corp.example"})
    assert findings(federated, other, settings) == [
        ("azure.domain_federation_changed", "high", "corp.example"),
        ("azure.domain_federation_changed", "high", "corp.example")]


def test_conditional_access_deleted_or_stripped_of_mfa_but_not_retuned() -> None:
    policy = {"state": "enabled", "grantControls": {"builtInControls": ["mfa"]}}

    def update(new: dict) -> dict:
        return entra_change("Update conditional access policy", {
            "displayName": "Require MFA", "type": "Policy",
            "modifiedProperties": [changed("ConditionalAccessPolicy", policy, new)]})

    deleted = entra_change("Delete conditional access policy", {"displayName": "Require MFA"})
    assert findings(deleted, update({"state": "enabled", "grantControls": None}),
                    update({"state": "disabled", "grantControls": {"builtInControls": ["mfa"]}}),
                    update({**policy, "sessionControls": {"signInFrequency": {"value": 9}}})) == [
        ("azure.conditional_access_weakened", "high", "Require MFA"),
        ("azure.conditional_access_weakened", "medium", "Require MFA"),
        ("azure.conditional_access_weakened", "medium", "Require MFA")]


def test_new_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    """Every field of each new rule's body, and of the Entra records, replaced in turn by
    None, a number, a string, a list or a dict: the event is never lost."""
    bodies = {
        "Microsoft.Network/networkSecurityGroups/securityRules/write": {"properties": {
            "access": "Allow", "direction": "Inbound", "sourceAddressPrefixes": ["*"],
            "destinationPortRanges": ["20-30"]}},
        "Microsoft.KeyVault/vaults/accessPolicies/write": {"properties": {"accessPolicies": [
            {"objectId": "o", "permissions": {"secrets": ["get"]}}]}},
        "Microsoft.Storage/storageAccounts/blobServices/write": {"properties": {
            "deleteRetentionPolicy": {"enabled": False}, "isVersioningEnabled": False}},
        "Microsoft.Security/pricings/write": {"properties": {"pricingTier": "Free"}}}
    count = 0
    for operation, content in bodies.items():
        for odd in variants(content):
            assert_no_internal_error(activity(operation, f"{RG}/x", response=odd))
            count += 1
    policy = {"state": "enabled", "grantControls": {"builtInControls": ["mfa"]}}
    for record in (entra_change("Update conditional access policy", {
            "displayName": "p", "modifiedProperties": [
                changed("ConditionalAccessPolicy", policy, {"state": "disabled"})]}),
                   entra_change("Set domain authentication", {
                       "displayName": "d", "modifiedProperties": [
                           changed("LiveType", "Managed", "Federated")]})):
        for props in variants(record["properties"]):
            assert_no_internal_error({**record, "properties": props})
            count += 1
    assert count > 100


def test_azure_backup_retention_and_service_key_access_are_not_findings() -> None:
    """Azure Backup prunes its own restore points and snapshots and reads disks; services
    using a customer-managed key are granted get/wrapKey/unwrapKey; App Service lists
    certificates. The same operations by any other caller stay findings."""
    backup = "262044b1-e2ce-469f-a196-69ab7ada62d3"
    points = f"{RG}/Microsoft.Compute/restorePointCollections/vm1-points/restorePoints/p1"
    snapshot = f"{RG}/Microsoft.Compute/snapshots/vm1-snap"
    disk = f"{RG}/Microsoft.Compute/disks/vm1-os"
    vault = f"{RG}/Microsoft.KeyVault/vaults/cmk"

    def policy(kind: str, *permissions: str) -> dict:
        return activity("Microsoft.KeyVault/vaults/accessPolicies/write", vault, response={
            "properties": {"accessPolicies": [{"objectId": "st1", "permissions": {
                kind: list(permissions)}}]}})

    by_backup = [
        activity("Microsoft.Compute/restorePointCollections/restorePoints/delete", points,
                 caller=backup),
        activity("Microsoft.Compute/snapshots/delete", snapshot,
                 identity={"claims": {"appid": backup}}),
        activity("Microsoft.Compute/disks/beginGetAccess/action", disk, caller=backup)]
    assert findings(*by_backup, policy("keys", "Get", "WrapKey", "UnwrapKey"),
                    policy("certificates", "Get", "List"), policy("secrets", "List")) == []
    for record in by_backup:
        record["caller"] = "9f0c1a2b-0000-4000-8000-00000000abcd"
        record.pop("identity", None)
    assert findings(*by_backup, policy("keys", "Backup"), policy("certificates", "All")) == [
        ("azure.recovery_deleted", "medium", points),
        ("azure.recovery_deleted", "low", snapshot), ("azure.disk_exported", "medium", disk),
        ("azure.key_vault_access_granted", "medium", "st1"),
        ("azure.key_vault_access_granted", "medium", "st1")]
