"""Azure and Entra technique checks of the third round: each rule on a realistic attack
record and on the benign lookalikes of its kind (pipelines, first-party Microsoft services,
PIM activations, new accounts with their defaults, everyday consents and sign-ins)."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from detector.engine import Detector
from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from tests.detector.test_engine import run
from tests.detector.test_techniques_azure import SUB, activity, entra, findings
from tests.detector.test_techniques_k8s import assert_no_internal_error, variants

RG = f"{SUB}/resourceGroups/prod/providers"
ACCOUNT = f"{RG}/Microsoft.Storage/storageAccounts/custdata"
_IDS = itertools.count()
T0 = datetime(2024, 3, 4, 10, 0, tzinfo=timezone.utc)


def at(record: dict, seconds: float) -> dict:
    """The record at T0 + seconds, with its own correlation id."""
    when = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return dict(record, time=when, correlationId=f"third{next(_IDS)}")


def alerts_of(*records: dict) -> list[tuple[str, str]]:
    """Parse the records and run them through a fresh detector: (detector, severity) of
    every technique alert, burst counting included."""
    events = parse_payload(orjson.dumps({"records": list(records)}), origin="t",
                           stats=RunStats(), dead_letters=ListDeadLetters())
    assert len(events) == len(records)
    out = run(Detector({}, stats=RunStats()), events)
    return [(d, a.severity) for a in out for d in a.detectors if d.startswith("technique.")]


def change(name: str, old: Any, new: Any) -> dict:
    return {"displayName": name, "oldValue": None if old is None else json.dumps(old),
            "newValue": json.dumps(new)}


def audit(operation: str, targets: list[dict], result: str = "success",
          initiated: dict | None = None) -> dict:
    record = entra(operation, result)
    record["properties"]["targetResources"] = targets
    if initiated is not None:
        record["properties"]["initiatedBy"] = initiated
    return record


# ---------------------------------------------------------------------------- ARM


def test_storage_account_opened_by_an_update_but_not_by_a_new_accounts_defaults() -> None:
    write = "Microsoft.Storage/storageAccounts/write"
    assert findings(
        activity(write, ACCOUNT, body={"properties": {"allowSharedKeyAccess": True}}),
        activity(write, ACCOUNT, body={"properties": {"supportsHttpsTrafficOnly": False,
                                                      "publicNetworkAccess": "Enabled"}}),
        activity(write, ACCOUNT, body={"properties": {"networkAcls": {"defaultAction":
                                                                      "Allow"}}}),
        # benign: a new account (its body names the location) with the default rule set,
        # an update that closes the account, a pending record
        activity(write, ACCOUNT, body={"location": "westeurope", "properties": {
            "networkAcls": {"defaultAction": "Allow"}, "allowSharedKeyAccess": True}}),
        activity(write, ACCOUNT, body={"properties": {"allowSharedKeyAccess": False,
                                                      "networkAcls": {"defaultAction":
                                                                      "Deny"}}}),
        activity(write, ACCOUNT, result="Start",
                 body={"properties": {"allowSharedKeyAccess": True}})) == [
        ("azure.storage_protection_removed", "medium", ACCOUNT)] * 3


def test_keys_of_many_storage_accounts_in_minutes_is_harvesting_of_one_is_not() -> None:
    listing = "Microsoft.Storage/storageAccounts/listKeys/action"
    accounts = [f"{RG}/Microsoft.Storage/storageAccounts/acct{n}" for n in range(5)]
    harvest = [at(activity(listing, account), n * 30) for n, account in enumerate(accounts)]
    assert alerts_of(*harvest) == [("technique.azure.key_harvest", "high")]
    # a pipeline or the portal reading one account's keys again and again
    again = [at(activity(listing, ACCOUNT), n * 30) for n in range(30)]
    assert alerts_of(*again) == []
    # four accounts, or five spread over an hour, are no burst
    assert alerts_of(*harvest[:4]) == []
    assert alerts_of(*[at(activity(listing, account), n * 900)
                       for n, account in enumerate(accounts)]) == []


def test_keys_read_across_services_count_toward_one_harvest() -> None:
    reads = [("Microsoft.Storage/storageAccounts/listKeys/action", ACCOUNT),
             ("Microsoft.Web/sites/config/list/action", f"{RG}/Microsoft.Web/sites/api"),
             ("Microsoft.ContainerRegistry/registries/listCredentials/action",
              f"{RG}/Microsoft.ContainerRegistry/registries/acr1"),
             ("Microsoft.DocumentDB/databaseAccounts/listKeys/action",
              f"{RG}/Microsoft.DocumentDB/databaseAccounts/orders"),
             ("Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
              f"{RG}/Microsoft.ContainerService/managedClusters/aks1")]
    records = [at(activity(operation, resource), n * 30)
               for n, (operation, resource) in enumerate(reads)]
    assert alerts_of(*records) == [("technique.azure.key_harvest", "high")]
    # the same five reads refused: permission probing at most, no harvest
    refused = [at(activity(operation, resource, result="Failure", resultSignature="403"),
                  n * 30) for n, (operation, resource) in enumerate(reads)]
    assert ("technique.azure.key_harvest", "high") not in alerts_of(*refused)


def test_storage_key_regenerated_but_not_by_key_vault_rotation() -> None:
    regenerate = "Microsoft.Storage/storageAccounts/regenerateKey/action"
    key_vault = {"claims": {"appid": "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"}}
    assert findings(activity(regenerate, ACCOUNT, body={"keyName": "key1"}),
                    activity(regenerate, ACCOUNT, identity=key_vault),
                    activity(regenerate, ACCOUNT, result="Start")) == [
        ("azure.storage_key_regenerated", "low", ACCOUNT)]


def test_mass_deletion_is_a_burst_of_distinct_resources_one_teardown_is_not() -> None:
    groups = [f"{SUB}/resourceGroups/app{n}" for n in range(5)]
    delete = "Microsoft.Resources/subscriptions/resourceGroups/delete"
    assert alerts_of(*[at(activity(delete, group), n * 20)
                       for n, group in enumerate(groups)]) == [
        ("technique.azure.mass_deletion", "high")]
    # a test environment torn down: its group, a VM and a disk, each logged Start then
    # Succeeded
    teardown = [f"{SUB}/resourceGroups/pr-123",
                f"{SUB}/resourceGroups/pr-123/providers/Microsoft.Compute/virtualMachines/vm",
                f"{SUB}/resourceGroups/pr-123/providers/Microsoft.Compute/disks/os"]
    operations = [delete, "Microsoft.Compute/virtualMachines/delete",
                  "Microsoft.Compute/disks/delete"]
    records = []
    for n, (operation, resource) in enumerate(zip(operations, teardown)):
        records += [at(activity(operation, resource, result="Start"), n * 20),
                    at(activity(operation, resource, result="Succeeded"), n * 20 + 5)]
    assert alerts_of(*records) == []


def test_key_vault_deleted_and_immutability_policy_deleted() -> None:
    vault = f"{RG}/Microsoft.KeyVault/vaults/prod-kv"
    policy = f"{ACCOUNT}/blobServices/default/containers/audit/immutabilityPolicies/default"
    operation = "Microsoft.Storage/storageAccounts/blobServices/containers/" \
                "immutabilityPolicies/"
    assert findings(activity("Microsoft.KeyVault/vaults/delete", vault),
                    activity("Microsoft.KeyVault/vaults/delete", vault, result="Start"),
                    activity("Microsoft.KeyVault/vaults/write", vault),
                    activity(operation + "delete", policy),
                    activity(operation + "extend/action", policy),
                    activity(operation + "delete", policy, result="Failed")) == [
        ("azure.key_vault_deleted", "medium", vault), ("azure.recovery_disabled", "medium",
                                                       policy)]


def test_packet_capture_and_network_defenses_removed() -> None:
    watcher = f"{SUB}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/" \
              "networkWatchers/NetworkWatcher_westeurope"
    capture = f"{watcher}/packetCaptures/cap1"
    nsg = f"{RG}/Microsoft.Network/networkSecurityGroups/web-nsg"
    policy = f"{RG}/Microsoft.Network/firewallPolicies/edge"
    assert findings(activity("Microsoft.Network/networkWatchers/packetCaptures/write", capture),
                    activity("Microsoft.Network/networkWatchers/packetCaptures/read", capture),
                    activity("Microsoft.Network/networkWatchers/write", watcher),
                    activity("Microsoft.Network/networkWatchers/delete", watcher),
                    activity("Microsoft.Network/networkSecurityGroups/delete", nsg),
                    activity("Microsoft.Network/networkSecurityGroups/read", nsg),
                    activity("Microsoft.Network/firewallPolicies/delete", policy),
                    activity("Microsoft.Network/firewallPolicies/write", policy)) == [
        ("azure.packet_capture", "medium", capture),
        ("azure.diagnostic_settings_deleted", "medium", watcher),
        ("azure.network_defense_removed", "medium", nsg),
        ("azure.network_defense_removed", "medium", policy)]


def test_bastion_shareable_link_and_kubernetes_bindings_through_arm() -> None:
    bastion = f"{RG}/Microsoft.Network/bastionHosts/jump"
    cluster = f"{RG}/Microsoft.Kubernetes/connectedClusters/edge"
    binding = f"{cluster}/rbac.authorization.k8s.io/clusterrolebindings/ops"
    role_binding = f"{cluster}/rbac.authorization.k8s.io/rolebindings/dev"
    role = f"{cluster}/rbac.authorization.k8s.io/roles/viewer"
    base = "Microsoft.Kubernetes/connectedClusters/rbac.authorization.k8s.io"
    assert findings(activity("Microsoft.Network/bastionHosts/createShareableLinks/action",
                             bastion),
                    activity("Microsoft.Network/bastionHosts/getShareableLinks/action",
                             bastion),
                    activity(f"{base}/clusterrolebindings/write", binding),
                    activity(f"{base}/rolebindings/write", role_binding),
                    activity(f"{base}/roles/write", role)) == [
        ("azure.remote_access_link", "medium", bastion),
        ("azure.kubernetes_role_binding", "medium", binding),
        ("azure.kubernetes_role_binding", "low", role_binding)]


def test_automation_code_written_or_run_but_not_a_draft_or_an_account() -> None:
    account = f"{RG}/Microsoft.Automation/automationAccounts/ops"
    base = "Microsoft.Automation/automationAccounts"
    assert findings(activity(f"{base}/runbooks/write", f"{account}/runbooks/backdoor"),
                    activity(f"{base}/jobs/write", f"{account}/jobs/j1"),
                    activity(f"{base}/schedules/write", f"{account}/schedules/hourly"),
                    activity(f"{base}/runbooks/draft/write", f"{account}/runbooks/backdoor"),
                    activity(f"{base}/write", account),
                    activity(f"{base}/jobs/write", f"{account}/jobs/j2", result="Failed")) == [
        ("azure.automation_code", "low", f"{account}/runbooks/backdoor"),
        ("azure.automation_code", "low", f"{account}/jobs/j1"),
        ("azure.automation_code", "low", f"{account}/schedules/hourly")]


def test_federated_credential_on_a_managed_identity() -> None:
    identity = f"{RG}/Microsoft.ManagedIdentity/userAssignedIdentities/deployer"
    credential = f"{identity}/federatedIdentityCredentials/gh"
    body = {"properties": {"issuer": "https://token.actions.githubusercontent.com",
                           "subject": "repo:someone/else:ref:refs/heads/main",
                           "audiences": ["api://AzureADTokenExchange"]}}
    operation = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/"
    found = findings(activity(operation + "write", credential, body=body),
                     activity(operation + "write", credential, result="Start", body=body),
                     activity(operation + "read", credential))
    assert found == [("azure.federated_credential_added", "medium", credential)]


def test_data_owner_roles_are_privileged_a_reader_is_not() -> None:
    def grant(role: str) -> dict:
        content = {"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/"
                                                      f"roleDefinitions/{role}",
                                  "principalId": "p-2", "principalType": "ServicePrincipal"}}
        return activity("Microsoft.Authorization/roleAssignments/write",
                        f"{SUB}/providers/Microsoft.Authorization/roleAssignments/r", body=content)
    assert findings(grant("b7e6dc6d-f1e8-4753-8033-0f276bb0955b"),
                    grant("00482a5a-887f-4fb3-b363-3b7fe8e74483"),
                    grant("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1")) == [  # Blob Data Reader
        ("azure.privileged_role_assignment", "medium", "p-2")] * 2


def test_key_vault_secret_dump_is_a_burst_an_application_rereading_is_not() -> None:
    def read(secret: str, seconds: float) -> dict:
        return at({"category": "AuditEvent", "operationName": "SecretGet",
                   "resultType": "Success", "callerIpAddress": "10.1.2.3",
                   "resourceId": f"{RG}/Microsoft.KeyVault/vaults/kv1",
                   "identity": {"claim": {"appid": "app-1", "oid": "oid-1"}},
                   "properties": {"id": f"https://kv1.vault.azure.net/secrets/{secret}/v1"}},
                  seconds)
    assert alerts_of(*[read(f"s{n}", n * 10) for n in range(20)]) == [
        ("technique.azure.secrets_burst", "medium")]
    assert alerts_of(*[read("db-password", n * 10) for n in range(40)]) == []


# ---------------------------------------------------------------------------- Entra


def role_target(role: str, member_type: str = "User", name: str = "eve@example.org"
                ) -> list[dict]:
    """The direct "Add member to role" shape: the member, its role in a change."""
    return [{"id": "m-1", "type": member_type, "userPrincipalName": name,
             "displayName": name, "modifiedProperties": [
                 change("Role.DisplayName", None, role)]}]


def pim_targets(role: str) -> list[dict]:
    return [{"id": "r-1", "type": "Role", "displayName": role},
            {"id": "q-1", "type": "Request"},
            {"id": "m-1", "type": "User", "displayName": "Malenia"}]


def test_directory_roles_tier0_to_anyone_privileged_to_a_service_principal_or_pim() -> None:
    add = "Add member to role"
    permanent = "Add member to role in PIM completed (permanent)"
    pim = {"app": {"displayName": "MS-PIM"}}
    assert findings(
        audit(add, role_target("Global Administrator")),
        audit(add, role_target("Application Administrator", "ServicePrincipal", "ci-app")),
        audit(permanent, pim_targets("Privileged Role Administrator")),
        audit(permanent, pim_targets("Application Administrator")),
        # benign: a person made Application Administrator directly, a PIM activation
        # written again by MS-PIM, a reader role through PIM, a refused assignment
        audit(add, role_target("Application Administrator")),
        audit(add, role_target("Global Administrator"), initiated=pim),
        audit(permanent, pim_targets("Reports Reader")),
        audit(add, role_target("Global Administrator"), result="failure")) == [
        ("azure.directory_role_assigned", "high", "eve@example.org"),
        ("azure.directory_role_assigned", "medium", "ci-app"),
        ("azure.directory_role_assigned", "high", "Malenia"),
        ("azure.directory_role_assigned", "medium", "Malenia")]


def graph_target(*changes: dict) -> list[dict]:
    return [{"id": "graph-sp", "type": "ServicePrincipal", "displayName": "Microsoft Graph",
             "modifiedProperties": list(changes)}]


def test_high_privilege_graph_permissions_granted_or_consented() -> None:
    role = "Add app role assignment to service principal"
    consent = "Consent to application"
    grant = "Add delegated permission grant"
    app = change("ServicePrincipal.DisplayName", None, "sync-tool")
    assert findings(
        audit(role, graph_target(change("AppRole.Value", None,
                                        "RoleManagement.ReadWrite.Directory"), app)),
        audit(role, graph_target(change("AppRole.Value", None, "Mail.Read"), app)),
        audit(consent, graph_target(change(
            "ConsentAction.Permissions", None,
            "[] => [[Id: x, ClientId: c, ConsentType: AllPrincipals, "
            "Scope: Files.ReadWrite.All offline_access]]; "))),
        audit(grant, graph_target(change("DelegatedPermissionGrant.Scope", None,
                                         " Application.ReadWrite.All"))),
        # benign: an everyday sign-in consent, a read-only app role, a failed grant
        audit(consent, graph_target(change("ConsentAction.Permissions", None,
                                           "Scope: User.Read openid profile email"))),
        audit(role, graph_target(change("AppRole.Value", None, "User.Read.All"), app)),
        audit(role, graph_target(change("AppRole.Value", None,
                                        "RoleManagement.ReadWrite.Directory"), app),
              result="failure")) == [
        ("azure.high_privilege_permission_granted", "high",
         "rolemanagement.readwrite.directory"),
        ("azure.high_privilege_permission_granted", "medium", "mail.read"),
        ("azure.high_privilege_permission_granted", "medium", "files.readwrite.all"),
        ("azure.high_privilege_permission_granted", "high", "application.readwrite.all")]


def test_owner_added_to_an_application() -> None:
    owner = [{"id": "u-1", "type": "User", "userPrincipalName": "mallory@example.org",
              "modifiedProperties": [change("Application.DisplayName", None, "payments")]}]
    assert findings(audit("Add owner to application", owner),
                    audit("Add owner to service principal", owner),
                    audit("Remove owner from application", owner),
                    audit("Add owner to application", owner, result="failure")) == [
        ("azure.app_owner_added", "low", "mallory@example.org")] * 2


def test_federated_credential_added_to_an_application_but_not_other_updates() -> None:
    fic = [{"issuer": "https://token.actions.githubusercontent.com",
            "subject": "repo:org/app:environment:prod", "name": "gh"}]
    def updated(name: str, old: Any, new: Any) -> dict:
        return audit("Update application", [{"id": "app-1", "type": "Application",
                                             "displayName": "payments", "modifiedProperties":
                                                 [change(name, old, new)]}])
    assert findings(updated("FederatedIdentityCredentials", [], fic),
                    updated("FederatedIdentityCredentials", fic, []),
                    updated("DisplayName", "pay", "payments")) == [
        ("azure.federated_credential_added", "medium", "payments")]


def test_named_location_made_trusted_but_not_renamed() -> None:
    def location(old: Any, new: Any) -> dict:
        return audit("Update named location", [{"id": "loc-1", "type": "Policy",
                                                "displayName": "branch offices",
                                                "modifiedProperties": [
                                                    change("NamedLocation", old, new)]}])
    untrusted = {"displayName": "branch", "isTrusted": False, "ipRanges": ["203.0.113.0/24"]}
    trusted = dict(untrusted, isTrusted=True)
    assert findings(location(untrusted, trusted), location(trusted, dict(trusted, x=1)),
                    location(None, untrusted)) == [
        ("azure.conditional_access_weakened", "medium", "branch offices")]


def test_outside_openid_provider_trusted_but_not_other_method_settings() -> None:
    def policy(name: str, old: Any, new: Any) -> dict:
        return audit("Update authentication methods policy", [{
            "id": "p-1", "type": "Policy", "displayName": "Authentication Methods Policy",
            "modifiedProperties": [change(name, old, new)]}])
    evil = {"discoveryUrl": "https://idp.example.net/.well-known/openid-configuration"}
    assert findings(policy("OpenIdConnectConfiguration", {"discoveryUrl": "https://login."
                                                          "microsoftonline.com/t"}, evil),
                    policy("PasswordlessMFAEnabled", False, True)) == [
        ("azure.external_idp_trusted", "high", evil["discoveryUrl"])]


def test_elevate_access_written_to_the_entra_audit_log() -> None:
    record = entra("User has elevated their access to User Access Administrator for their "
                   "Azure Resources")
    assert findings(record) == [("azure.privileged_role_assignment", "high", "elevateAccess")]


# ---------------------------------------------------------------------------- sign-ins


def sign_in(category: str = "SignInLogs", result: str = "0", **props: Any) -> dict:
    base = {"userPrincipalName": "eve@example.org", "userId": "u-1", "appId": "app-1",
            "ipAddress": "198.51.100.4", "riskLevelDuringSignIn": "none",
            "riskLevelAggregated": "none", "riskState": "none",
            "status": {"errorCode": int(result)}}
    if category != "SignInLogs":
        base.update(servicePrincipalId="sp-1", userPrincipalName=None)
    base.update(props)
    return {"time": "2024-03-04T10:00:00Z", "category": category, "operationName":
            "Sign-in activity", "resultType": result, "correlationId": f"s{next(_IDS)}",
            "resourceId": "/tenants/t/providers/Microsoft.aadiam", "properties": base}


def test_risky_sign_ins_that_no_one_dismissed() -> None:
    assert findings(
        sign_in(riskLevelDuringSignIn="high", riskState="atRisk",
                riskEventTypes=["anonymizedIPAddress"]),
        sign_in("ServicePrincipalSignInLogs", riskLevelAggregated="medium",
                riskState="atRisk"),
        sign_in(result="50126", riskLevelDuringSignIn="high"),
        # benign: dismissed or remediated risk, low risk
        sign_in(riskLevelDuringSignIn="high", riskState="dismissed"),
        sign_in(riskLevelAggregated="high", riskState="remediated"),
        sign_in(riskLevelDuringSignIn="low", riskState="atRisk")) == [
        ("azure.risky_sign_in", "high", "atrisk"), ("azure.risky_sign_in", "medium", "atrisk"),
        ("azure.risky_sign_in", "medium", "none")]


def test_device_code_to_the_broker_and_password_only_ropc() -> None:
    broker = "29d9ed98-a469-4536-ade2-f981bc1d605e"
    cli = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
    assert findings(
        sign_in(authenticationProtocol="deviceCode", appId=broker),
        sign_in(authenticationProtocol="ropc", appDisplayName="legacy-app",
                authenticationRequirement="singleFactorAuthentication"),
        # benign: the Azure CLI's device code login, a refused ROPC, ROPC with MFA
        sign_in(authenticationProtocol="deviceCode", appId=cli),
        sign_in(result="50126", authenticationProtocol="ropc",
                authenticationRequirement="singleFactorAuthentication"),
        sign_in(authenticationProtocol="ropc",
                authenticationRequirement="multiFactorAuthentication")) == [
        ("azure.device_code_phishing", "medium", broker),
        ("azure.password_only_sign_in", "low", "legacy-app")]


def test_new_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    count = 0
    records = [
        audit("Add member to role", role_target("Global Administrator")),
        audit("Add app role assignment to service principal",
              graph_target(change("AppRole.Value", None, "Mail.Read"))),
        audit("Update application", [{"type": "Application", "modifiedProperties": [
            change("FederatedIdentityCredentials", [], [{"issuer": "x"}])]}]),
        audit("Update named location", [{"modifiedProperties": [
            change("NamedLocation", {}, {"isTrusted": True})]}]),
        audit("Update authentication methods policy", [{"modifiedProperties": [
            change("OpenIdConnectConfiguration", {}, {"discoveryUrl": "u"})]}]),
        audit("Add owner to application", role_target("x"))]
    for record in records:
        for changed in variants(record["properties"]):
            assert_no_internal_error({**record, "properties": changed})
            count += 1
    signin = sign_in(riskLevelDuringSignIn="high", authenticationProtocol="ropc")
    for changed in variants(signin["properties"]):
        assert_no_internal_error({**signin, "properties": changed})
        count += 1
    body = {"properties": {"allowSharedKeyAccess": True, "issuer": "i",
                           "networkAcls": {"defaultAction": "Allow"}}}
    for operation in ("Microsoft.Storage/storageAccounts/write",
                      "Microsoft.ManagedIdentity/userAssignedIdentities/"
                      "federatedIdentityCredentials/write"):
        for changed in variants(body):
            assert_no_internal_error(activity(operation, ACCOUNT, body=changed))
            count += 1
    assert count > 200


def test_blob_encrypted_with_a_key_its_reader_lacks_but_not_other_refusals() -> None:
    def read(status: int, text: str) -> dict:
        return {"time": "2024-03-04T10:00:00Z", "category": "StorageRead",
                "operationName": "GetBlob", "statusCode": status, "statusText": text,
                "callerIpAddress": "10.0.0.4:5100", "identity": {"type": "SAS",
                                                                 "tokenHash": "key1(H)"},
                "resourceId": f"{ACCOUNT}/blobServices/default",
                "properties": {"accountName": "custdata", "objectKey": "/custdata/c/a.docx",
                               "metricResponseType": "ClientOtherError"}}
    assert findings(read(409, "BlobUsesCustomerSpecifiedEncryption"),
                    read(403, "AuthorizationPermissionMismatch"),
                    read(404, "BlobNotFound")) == [
        ("azure.storage_foreign_encryption", "medium", "custdata")]
