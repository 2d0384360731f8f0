"""Azure Activity Log and Entra audit technique findings, read off parsed events: each rule
on an attack record and on its near miss."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.attack import AttackMap
from detector.scoring import SensitivityCatalogue
from detector.sources import ListDeadLetters, parse_payload, read_paths
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, as_findings, as_tallies
from tests.detector.test_techniques_gcp import panther_counts
from tests.detector.test_techniques_k8s import assert_no_internal_error, variants

_IDS = itertools.count()
DEFINED = set(AttackMap(SensitivityCatalogue.load()).techniques)  # ATT&CK ids with a name
SUB = "/subscriptions/11111111-2222-3333-4444-555555555555"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def activity(operation: str, resource: str, *, result: str = "Success",
             body: dict | None = None, response: dict | None = None, **extra: Any) -> dict:
    properties: dict[str, Any] = {}
    if body is not None:
        properties["requestbody"] = orjson.dumps(body).decode()
    if response is not None:
        properties["responseBody"] = orjson.dumps(response).decode()
    record = {"time": "2024-03-04T10:00:00Z", "resourceId": resource,
              "operationName": operation, "category": "Administrative",
              "resultType": result, "callerIpAddress": "198.51.100.7",
              "correlationId": f"c{next(_IDS)}", "caller": "9f0c1a2b-0000-4000-8000-00000000abcd",
              "properties": properties}
    record.update(extra)
    return record


def findings(*records: dict) -> list[tuple[str, str, str]]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps({"records": list(records)}), origin="t", stats=stats,
                           dead_letters=dead)
    assert len(dead) == 0 and len(events) == len(records)
    found = [f for e in events for f in as_findings(e.attributes.get(ATTRIBUTE))]
    assert all(f.attack and set(f.attack) <= DEFINED and f.sentence for f in found)
    return [(f.rule, f.severity, f.value) for f in found]


def assignment(role: str, result: str = "Success", key: str = "body") -> dict:
    content = {"properties": {"roleDefinitionId": f"{SUB}/providers/Microsoft.Authorization/"
                                                  f"roleDefinitions/{role}",
                              "principalId": "p-1", "principalType": "ServicePrincipal",
                              "scope": SUB}}
    return activity("Microsoft.Authorization/roleAssignments/write",
                    f"{SUB}/providers/Microsoft.Authorization/roleAssignments/a", result=result,
                    **{key: content})


def test_owner_and_contributor_assignments() -> None:
    assert findings(assignment(OWNER), assignment(CONTRIBUTOR.upper(), key="response")) == [
        ("azure.privileged_role_assignment", "high", "p-1"),
        ("azure.privileged_role_assignment", "medium", "p-1")]


def test_any_role_assigned_by_a_workload__named() -> None:
    # a detection trial's managed identity assigned Virtual Machine Contributor: no
    # finding, and the alert named neither the role nor the assignee
    vm_contributor = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
    by_identity = {"authorization": {"evidence": {"principalType": "ServicePrincipal",
                                                  "role": "Contributor"}}}
    custom = dict(assignment("0f0e0d0c-0000-4000-8000-000000000001"), **by_identity)
    by_person = dict(assignment("0f0e0d0c-0000-4000-8000-000000000001"), authorization={
        "evidence": {"principalType": "User"}})
    # the same evidence under ``identity`` (Event Hub) and as Log Analytics' JSON column
    under_identity = dict(assignment("0f0e0d0c-0000-4000-8000-000000000001"),
                          identity=by_identity)
    column = dict(assignment("0f0e0d0c-0000-4000-8000-000000000001"),
                  Authorization=orjson.dumps(by_identity["authorization"]).decode())
    assert findings(assignment(vm_contributor), custom, by_person, under_identity,
                    column) == [
        ("azure.privileged_role_assignment", "medium", "p-1"),
        ("azure.role_assignment_by_workload", "medium", "p-1"),
        ("azure.role_assignment_by_workload", "medium", "p-1"),
        ("azure.role_assignment_by_workload", "medium", "p-1")]
    [event_finding] = [f for e in parsed(custom) for f in as_findings(e.attributes[ATTRIBUTE])]
    assert event_finding.sentence == (
        "role definition 0f0e0d0c-0000-4000-8000-000000000001 assigned to ServicePrincipal p-1 "
        f"at {SUB} by a ServicePrincipal")


def parsed(*records: dict) -> list:
    stats, dead = RunStats(), ListDeadLetters()
    return parse_payload(orjson.dumps({"records": list(records)}), origin="t", stats=stats,
                         dead_letters=dead)


def test_reader_start_and_failed_assignments_are_not_findings() -> None:
    """The Start record of a grant carries its body too: only the final record counts."""
    assert findings(assignment(READER), assignment(OWNER, result="Start"),
                    assignment(OWNER, result="Failure")) == []


def test_the_callers_own_authorization_evidence_is_not_the_granted_role() -> None:
    record = assignment(READER)
    record["identity"] = {"authorization": {"evidence": {"roleDefinitionId": OWNER,
                                                         "principalType": "User",
                                                         "principalId": "u-1"}}}
    assert findings(record) == []


def entra(operation: str, result: str = "success") -> dict:
    return {"time": "2024-03-04T10:00:00Z", "operationName": operation,
            "category": "ApplicationManagement", "correlationId": f"c{next(_IDS)}",
            "resourceId": "/tenants/t/providers/Microsoft.aadiam", "tenantId": "t",
            "properties": {"result": result, "activityDisplayName": operation,
                           "initiatedBy": {"app": {"servicePrincipalId": "sp-automation"}},
                           "targetResources": [{"id": "sp-9", "displayName": "payments",
                                                "type": "ServicePrincipal"}]}}


def test_credentials_added_to_a_service_principal() -> None:
    assert findings(entra("Add service principal credentials"),
                    entra("Update application \u2013 Certificates and secrets management"),
                    entra("Add service principal"),
                    entra("Add service principal credentials", result="failure")) == [
        ("azure.credentials_added", "high", "sp-9"), ("azure.credentials_added", "high", "sp-9")]


VM = f"{SUB}/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm"


def test_run_command_and_script_extensions() -> None:
    run = activity("MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION", VM)
    started = activity("MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION", VM,
                       result="Start")
    script = activity("Microsoft.Compute/virtualMachines/extensions/write",
                      f"{VM}/extensions/ext1", body={"properties": {"type": "CustomScript"}})
    monitor = activity("Microsoft.Compute/virtualMachines/extensions/write",
                       f"{VM}/extensions/AzureMonitorLinuxAgent",
                       body={"properties": {"type": "AzureMonitorLinuxAgent"}})
    assert findings(run, started, script, monitor) == [
        ("azure.vm_run_command", "medium", VM),
        ("azure.vm_run_command", "medium", f"{VM}/extensions/ext1")]


def test_diagnostic_setting_deleted_but_not_written() -> None:
    setting = f"{VM}/providers/Microsoft.Insights/diagnosticSettings/audit"
    assert findings(activity("microsoft.insights/diagnosticsettings/delete", setting),
                    activity("Microsoft.Insights/diagnosticSettings/write", setting)) == [
        ("azure.diagnostic_settings_deleted", "high", setting)]


def test_storage_public_access() -> None:
    account = f"{SUB}/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/data"
    container = f"{account}/blobServices/default/containers/exports"
    assert findings(
        activity("Microsoft.Storage/storageAccounts/write", account,
                 body={"properties": {"allowBlobPublicAccess": True}}),
        activity("Microsoft.Storage/storageAccounts/write", account,
                 body={"properties": {"allowBlobPublicAccess": False}}),
        activity("Microsoft.Storage/storageAccounts/blobServices/containers/write", container,
                 body={"properties": {"publicAccess": "Container"}}),
        activity("Microsoft.Storage/storageAccounts/blobServices/containers/write", container,
                 body={"properties": {"publicAccess": "None"}})) == [
        ("azure.storage_public_access", "medium", account),
        ("azure.storage_public_access", "high", container)]


def test_odd_bodies_never_raise() -> None:
    account = f"{SUB}/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/data"
    records = [activity("Microsoft.Storage/storageAccounts/write", account,
                        properties={"requestbody": "{not json"}),
               activity("Microsoft.Authorization/roleAssignments/write", account,
                        properties={"requestbody": '{"properties": {"roleDefinitionId": 5}}'}),
               activity("Microsoft.Compute/virtualMachines/extensions/write", account,
                        properties={"requestbody": '["a"]'})]
    assert findings(*records) == []


def test_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    """Every field of every positive example's body and properties replaced in turn by an
    odd type (bodies re-encoded as the JSON strings Azure sends)."""
    content = {"properties": {"roleDefinitionId": OWNER, "principalId": "p", "scope": SUB,
                              "allowBlobPublicAccess": True, "publicAccess": "Blob",
                              "type": "CustomScript"}}
    operations = ["Microsoft.Authorization/roleAssignments/write",
                  "Microsoft.Compute/virtualMachines/extensions/write",
                  "Microsoft.Storage/storageAccounts/write",
                  "Microsoft.Storage/storageAccounts/blobServices/containers/write"]
    count = 0
    for operation in operations:
        for changed in variants(content):
            assert_no_internal_error(activity(operation, f"{VM}/extensions/x", body=changed,
                                              response=changed))
            count += 1
    for changed in variants(entra("Add service principal credentials")["properties"]):
        assert_no_internal_error({**entra("Add service principal credentials"),
                                  "properties": changed})
        count += 1
    assert count > 150


@pytest.mark.shared
def test_real_sign_in_logs_give_nothing(real_logs: Path) -> None:
    stats, dead = RunStats(), ListDeadLetters()
    events = list(read_paths([str(real_logs / "elastic-azure-signinlogs")], stats=stats,
                             dead_letters=dead))
    assert len(events) == 7
    assert [e for e in events if as_findings(e.attributes.get(ATTRIBUTE))] == []
    # the service principals' sign-ins only count toward the per-identity bursts (their
    # countries, an expired secret's addresses), which seven sign-ins never reach
    tallies = {t.rule for e in events for t in as_tallies(e.attributes.get(ATTRIBUTE))}
    assert tallies == {"azure.sign_in_spread", "azure.sign_in_failures"}


@pytest.mark.shared
def test_panther_labelled_azure_events(real_logs: Path) -> None:
    """Most of Panther's Activity Log test events name no caller and are dead letters
    (missing_identity); of those that parse (callers read from token claims too), the
    findings fall on expected-true events only, and so do those of the Entra sign-in and
    audit events."""
    folder = real_logs / "panther-analysis-tests"
    assert panther_counts(folder, "azure_monitoractivity") == {
        ("azure.privileged_role_assignment", True): 3, ("azure.recovery_deleted", True): 1,
        ("azure.recovery_disabled", True): 2, ("azure.resource_lock_deleted", True): 1,
        ("azure.storage_protection_removed", True): 2,
        ("azure.storage_foreign_encryption", True): 1,
        # AKS kube-audit rows that keep only p_event_time are read too
        ("k8s.anonymous_access", True): 1, ("k8s.privileged_pod", True): 1}
    assert panther_counts(folder, "azure_entra_audit_signin") == {
        ("azure.credentials_added", True): 1, ("azure.conditional_access_weakened", True): 2,
        ("azure.domain_federation_changed", True): 1, ("azure.external_idp_trusted", True): 1,
        ("azure.device_code_phishing", True): 1, ("azure.risky_sign_in", True): 3,
        ("azure.privileged_role_assignment", True): 1,  # elevateAccess in the Entra log
        ("azure.directory_role_assigned", True): 1, ("azure.password_only_sign_in", True): 1}


@pytest.mark.parametrize(("record", "category"), [
    (activity("Microsoft.Insights/diagnosticSettings/delete",
              f"{SUB}/providers/microsoft.insights/diagnosticSettings/audit"),
     "logging_tampering"),
    (assignment(READER), "privilege_change"),
    (activity("Microsoft.KeyVault/vaults/secrets/getSecret/action",
              f"{SUB}/providers/Microsoft.KeyVault/vaults/v/secrets/s"), "secret_read"),
    (entra("Add service principal credentials"), "credential_creation"),
    (entra("Add member to role"), "privilege_change"),
])
def test_the_catalogue_knows_the_action_names_the_azure_parser_gives(
        record: dict, category: str) -> None:
    """Catalogue patterns are matched against ``Event.action`` (``azure:<operation>``,
    ``entra:<activity>``): a pattern without that prefix never matches anything."""
    events = parse_payload(orjson.dumps({"records": [record]}), origin="t", stats=RunStats(),
                           dead_letters=ListDeadLetters())
    sens = SensitivityCatalogue.load().lookup(events[0].action)
    assert sens is not None and sens.category == category, events[0].action
