"""Azure technique checks of the fourth round: Function and Logic App keys, secrets read
through the management plane, disks opened to every network, grants at management-group
scope. Each on a realistic attack record and on the benign lookalikes of its kind."""

from __future__ import annotations

from tests.detector.test_techniques_azure import CONTRIBUTOR, OWNER, SUB, activity, findings
from tests.detector.test_techniques_azure_third import RG, alerts_of, at
from tests.detector.test_techniques_k8s import assert_no_internal_error, variants


# ---------------------------------------------------------------------------- ARM


def test_function_and_logic_app_keys_count_toward_a_harvest() -> None:
    sites = f"{RG}/Microsoft.Web/sites"
    reads = [("Microsoft.Web/sites/host/listKeys/action", f"{sites}/orders-fn"),
             ("Microsoft.Web/sites/functions/listKeys/action", f"{sites}/billing-fn/"
                                                            "functions/charge"),
             ("Microsoft.Web/sites/functions/listSecrets/action", f"{sites}/mail-fn/"
                                                               "functions/send"),
             ("Microsoft.Logic/workflows/triggers/listCallbackUrl/action",
              f"{RG}/Microsoft.Logic/workflows/approve/triggers/manual"),
             ("Microsoft.Storage/storageAccounts/listKeys/action",
              f"{RG}/Microsoft.Storage/storageAccounts/custdata")]
    assert alerts_of(*[at(activity(op, res), n * 30)
                       for n, (op, res) in enumerate(reads)]) == [
        ("technique.azure.key_harvest", "high")]
    # a deployment wiring up every function of one app reads one app's keys
    functions = [at(activity("Microsoft.Web/sites/functions/listKeys/action",
                             f"{sites}/orders-fn/functions/f{n}"), n * 10) for n in range(8)]
    assert alerts_of(*functions) == []


def test_secrets_read_through_the_management_plane_count_toward_a_dump() -> None:
    vault = f"{RG}/Microsoft.KeyVault/vaults/kv1"
    dump = [at(activity("Microsoft.KeyVault/vaults/secrets/getSecret/action",
                        f"{vault}/secrets/s{n}"), n * 10) for n in range(20)]
    assert alerts_of(*dump) == [("technique.azure.secrets_burst", "medium")]
    again = [at(activity("Microsoft.KeyVault/vaults/secrets/getSecret/action",
                         f"{vault}/secrets/db-password"), n * 10) for n in range(30)]
    assert alerts_of(*again) == []


def test_disk_or_snapshot_opened_to_every_network_by_an_update() -> None:
    disk = f"{RG}/Microsoft.Compute/disks/db-data"
    snapshot = f"{RG}/Microsoft.Compute/snapshots/db-snap"
    assert findings(
        activity("Microsoft.Compute/disks/write", disk,
                 body={"properties": {"networkAccessPolicy": "AllowAll"}}),
        activity("Microsoft.Compute/snapshots/write", snapshot,
                 body={"properties": {"publicNetworkAccess": "Enabled"}}),
        # benign: a new disk or snapshot with the defaults (Azure Backup, a pipeline),
        # updates that close access, resizing, a pending record
        activity("Microsoft.Compute/snapshots/write", snapshot, body={
            "location": "westeurope", "properties": {"networkAccessPolicy": "AllowAll"}}),
        activity("Microsoft.Compute/disks/write", disk,
                 body={"properties": {"networkAccessPolicy": "DenyAll",
                                      "publicNetworkAccess": "Disabled"}}),
        activity("Microsoft.Compute/disks/write", disk, body={"properties": {
            "networkAccessPolicy": "AllowPrivate", "diskAccessId": "da-1"}}),
        activity("Microsoft.Compute/disks/write", disk,
                 body={"properties": {"diskSizeGB": 256}}),
        activity("Microsoft.Compute/disks/write", disk, result="Start",
                 body={"properties": {"networkAccessPolicy": "AllowAll"}})) == [
        ("azure.disk_exposed", "medium", disk), ("azure.disk_exposed", "medium", snapshot)]


def test_a_grant_at_management_group_scope_is_one_level_higher() -> None:
    group = "/providers/Microsoft.Management/managementGroups/corp"

    def grant(role: str, scope: str) -> dict:
        body = {"properties": {
            "roleDefinitionId": f"{scope}/providers/Microsoft.Authorization/"
                                f"roleDefinitions/{role}",
            "principalId": "p-7", "principalType": "ServicePrincipal", "scope": scope}}
        return activity("Microsoft.Authorization/roleAssignments/write",
                        f"{scope}/providers/Microsoft.Authorization/roleAssignments/a",
                        body=body)

    assert findings(grant(OWNER, group), grant(CONTRIBUTOR, group), grant(OWNER, SUB),
                    grant(CONTRIBUTOR, f"{SUB}/resourceGroups/app")) == [
        ("azure.privileged_role_assignment", "critical", "p-7"),
        ("azure.privileged_role_assignment", "high", "p-7"),
        ("azure.privileged_role_assignment", "high", "p-7"),
        ("azure.privileged_role_assignment", "medium", "p-7")]


def test_odd_bodies_of_the_new_checks_never_raise() -> None:
    count = 0
    body = {"properties": {"networkAccessPolicy": "AllowAll", "publicNetworkAccess": "x"}}
    for operation in ("Microsoft.Compute/disks/write", "Microsoft.Compute/snapshots/write"):
        for changed in variants(body):
            assert_no_internal_error(activity(operation, f"{RG}/Microsoft.Compute/disks/d",
                                              body=changed))
            count += 1
    assert count > 10

