"""Azure Activity Log callers as the Event Hub / storage export gives them, and Azure
resource logs that must not be read as Activity Log calls.

That export has no ``caller`` field: who called is only in the token claims and in the
role-assignment evidence. A user's token names an application too (the portal, the CLI),
so users must be told from service principals by the user claims, not by ``appid``.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats

OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
SCOPE = "http://schemas.microsoft.com/identity/claims/scope"
PORTAL = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"


def activity(identity: dict | None = None, **extra: object) -> dict:
    record = {
        "time": "2024-05-02T10:00:00.1234567Z",
        "resourceId": "/SUBSCRIPTIONS/11111111-2222-3333-4444-555555555555/RESOURCEGROUPS/RG"
                      "/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1",
        "operationName": "MICROSOFT.KEYVAULT/VAULTS/WRITE", "category": "Administrative",
        "resultType": "Success", "callerIpAddress": "203.0.113.9",
        "correlationId": "aaaaaaaa-0000-0000-0000-000000000001", "level": "Information",
    }
    if identity is not None:
        record["identity"] = identity
    record.update(extra)
    return record


def parse(record: dict) -> tuple[list, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(record), origin="test", stats=stats,
                           dead_letters=dead)
    assert stats.balanced()
    return events, dead


def one(record: dict) -> tuple[str, str, str | None, str]:
    [event], _ = parse(record)
    return event.identity, event.identity_kind, event.principal_type, event.kind_reason


class TestActivityCaller:
    def test_user_token_without_upn_is_a_person_not_the_portal_app(self):
        claims = {OID: "AAAA0000-0000-0000-0000-00000000000A", "appid": PORTAL,
                  "name": "Jane Doe", SCOPE: "user_impersonation"}
        assert one(activity({"claims": claims})) == (
            "aaaa0000-0000-0000-0000-00000000000a", "human", "User", "Entra user (object id)")

    def test_guest_unique_name_is_the_address(self):
        claims = {"unique_name": "live.com#Jane@Example.org", OID: "b", "appid": PORTAL}
        assert one(activity({"claims": claims}))[:2] == ("jane@example.org", "human")

    def test_name_claim_holding_an_address(self):
        assert one(activity({"claims": {"name": "ops@example.org"}}))[:2] == (
            "ops@example.org", "human")

    def test_app_only_token_is_a_service_principal(self):
        claims = {OID: "cccc0000-0000-0000-0000-00000000000c", "appid": "dddd", "idtyp": "app"}
        assert one(activity({"claims": claims})) == (
            "cccc0000-0000-0000-0000-00000000000c", "workload", "ServicePrincipal",
            "service principal")

    def test_managed_identity_token(self):
        claims = {OID: "eeee0000-0000-0000-0000-00000000000e", "appid": "ffff",
                  "xms_mirid": "/subscriptions/1/resourcegroups/rg/providers/"
                               "Microsoft.ManagedIdentity/userAssignedIdentities/deployer"}
        assert one(activity({"claims": claims})) == (
            "eeee0000-0000-0000-0000-00000000000e", "workload", "ManagedIdentity",
            "managed identity")

    def test_role_assignment_evidence_of_a_user(self):
        evidence = {"principalId": "1234ABCD-0000-0000-0000-000000000000",
                    "principalType": "User", "role": "Owner"}
        assert one(activity({"authorization": {"evidence": evidence}})) == (
            "1234abcd-0000-0000-0000-000000000000", "human", "User", "Entra user (object id)")

    def test_group_evidence_alone_names_no_caller(self):
        evidence = {"principalId": "9999", "principalType": "Group"}
        events, dead = parse(activity({"authorization": {"evidence": evidence}}))
        assert events == [] and dead.reasons() == ["missing_identity"]

    def test_identity_as_a_json_string(self):
        claims = {OID: "0123", "appid": "4567", "idtyp": "app"}
        record = activity(None, Identity=" " + json.dumps({"claims": claims}))
        assert one(record)[:2] == ("0123", "workload")

    def test_log_analytics_columns_claims_and_authorization(self):
        """The AzureActivity table: ``Claims`` and ``Authorization`` are top-level columns
        holding JSON strings, and the ``Caller`` of an app is its object id."""
        claims = {OID: "0AB1", "appid": "4567", "appidacr": "2"}
        evidence = {"evidence": {"principalId": "0ab1", "principalType": "ServicePrincipal"}}
        record = activity(None, Claims=json.dumps(claims), Authorization=json.dumps(evidence),
                          Caller="0ab1")
        assert one(record) == ("0ab1", "workload", "ServicePrincipal", "service principal")
        del record["Authorization"]
        assert one(record)[:3] == ("0ab1", "workload", "ServicePrincipal")
        record["Claims"] = json.dumps({OID: "0AB2", "appid": PORTAL, "name": "Jane Doe"})
        record["Caller"] = "jane@example.org"
        assert one(record)[:2] == ("jane@example.org", "human")


def storage(identity: dict | None = None, **extra: object) -> dict:
    record = {"time": "2024-12-19T19:15:07.295Z", "category": "StorageRead",
              "operationName": "GetBlob", "callerIpAddress": "198.51.100.7:57485",
              "statusCode": 200, "location": "westus2",
              "resourceId": "/subscriptions/1/resourceGroups/rg/providers/"
                            "Microsoft.Storage/storageAccounts/Acct/blobServices/default",
              "properties": {"accountName": "acct", "objectKey": "/acct/c/report.xlsx",
                             "userAgentHeader": "azsdk-python-storage-blob/12.16.0",
                             "metricResponseType": "Success"}}
    if identity is not None:
        record["identity"] = identity
    record.update(extra)
    return record


class TestStorageLogs:
    """Azure Storage resource logs: the caller is how the request authenticated."""

    def test_sas_request_keys_to_the_account_key(self):
        [event], _ = parse(storage({"type": "SAS", "tokenHash": "key1(ABC)"}))
        assert (event.identity, event.identity_kind, event.principal_type) == (
            "azure-storage:acct", "workload", "SAS")
        assert (event.credential_id, event.credential_type) == ("key1(ABC)", "token")
        assert (event.action, event.resource, event.read_only) == (
            "storage:GetBlob", "/acct/c/report.xlsx", True)
        assert (event.source_ip, event.network) == ("198.51.100.7", "public")

    def test_account_key_is_a_long_term_credential(self):
        [event], _ = parse(storage({"type": "AccountKey", "tokenHash": "key2(DEF)"},
                                   category="StorageWrite", operationName="PutBlob"))
        assert (event.identity, event.credential_id, event.credential_type) == (
            "azure-storage:acct", "key2", "long_term")
        assert event.read_only is False

    def test_oauth_caller_is_its_entra_principal(self):
        requester = {"objectId": "ABCD", "appId": "a", "tenantId": "t"}
        [event], _ = parse(storage({"type": "OAuth", "requester": requester}))
        assert (event.identity, event.identity_kind) == ("abcd", "workload")
        requester["upn"] = "Jane@Example.org"
        [event], _ = parse(storage({"type": "OAuth", "requester": requester}))
        assert (event.identity, event.identity_kind) == ("jane@example.org", "human")

    def test_sas_in_the_uri_and_a_failure(self):
        record = storage(None, uri="https://acct.blob.core.windows.net/c/k?sv=1&sig=X",
                         statusCode=403, statusText="AuthenticationFailed")
        [event], _ = parse(record)
        assert (event.principal_type, event.outcome, event.error_code) == (
            "SAS", "failure", "AuthenticationFailed")

    def test_anonymous_request(self):
        [event], _ = parse(storage({"type": "Anonymous"}))
        assert (event.identity, event.identity_kind) == ("azure-storage:acct/anonymous",
                                                         "external")

    def test_no_authentication_named_is_missing_identity(self):
        events, dead = parse(storage(None))
        assert events == [] and dead.reasons() == ["missing_identity"]
        assert "identity.type" in dead.items[0]["message"]


def test_managed_identity_sign_in_has_its_own_principal_type():
    record = {"time": "2022-01-24T04:59:49.2279838Z", "category": "ManagedIdentitySignInLogs",
              "resourceId": "/tenants/t/providers/Microsoft.aadiam", "resultType": "0",
              "operationName": "Sign-in activity",
              "properties": {"servicePrincipalId": "9D370547-CB61-4753-BE23-68534909AF90",
                             "appId": "a", "ipAddress": ""}}
    assert one(record) == ("9d370547-cb61-4753-be23-68534909af90", "workload",
                           "ManagedIdentity", "managed identity")


@pytest.mark.shared
def test_panther_azure_activity(real_logs: Path) -> None:
    """Callers named only by role-assignment evidence or a name claim become events, and so
    do Storage records that say how they authenticated; records naming nobody stay dead."""
    from detector.sources import read_paths

    path = real_logs / "panther-analysis-tests" / "azure_monitoractivity.panther_tests.jsonl"
    stats, dead = RunStats(), ListDeadLetters()
    events = list(read_paths([str(path)], stats=stats, dead_letters=dead))
    assert stats.balanced()
    by_key = {e.identity: (e.identity_kind, e.principal_type) for e in events}
    assert by_key["6b6d44f0-b13a-46a0-bfde-161324d4c34d"] == ("human", "User")
    assert by_key["denethor@lotr.com"] == ("human", "User")
    shared_key = {e.identity for e in events if e.principal_type in ("SAS", "AccountKey")}
    assert shared_key == {"azure-storage:mystorageaccount", "azure-storage:criticaldata001",
                          "azure-storage:proddata", "azure-storage:internaldata",
                          "azure-storage:publicdata", "azure-storage:securedata"}
    assert {d["reason"] for d in dead.items} == {"missing_identity", "missing_time"}


def sign_in(category: str = "ServicePrincipalSignInLogs", **props: object) -> dict:
    base = {"servicePrincipalId": "4B6986EC-C49C-40C0-89CE-B2AC51213E39", "appId": "a",
            "ipAddress": "198.51.100.4", "status": {"errorCode": 0}}
    base.update(props)
    return {"time": "2022-02-08T06:22:13.1610640Z", "category": category,
            "resourceId": "/tenants/t/providers/Microsoft.aadiam", "resultType": "0",
            "operationName": "Sign-in activity", "properties": base}


class TestSignInCredential:
    def test_key_id_alone_is_a_client_secret(self):
        [event], _ = parse(sign_in(servicePrincipalCredentialKeyId="2afc776a"))
        assert (event.credential_id, event.credential_type) == ("2afc776a", "long_term")

    def test_thumbprint_is_a_certificate(self):
        [event], _ = parse(sign_in(servicePrincipalCredentialKeyId="2afc776a",
                                   servicePrincipalCredentialThumbprint="AB12"))
        assert (event.credential_id, event.credential_type) == ("2afc776a", "certificate")

    def test_a_person_sign_in_does_not_take_the_client_app_credential(self):
        record = sign_in("SignInLogs", servicePrincipalId="", userPrincipalName="Eve@Example.org",
                         clientCredentialType="clientAssertion")
        [event], _ = parse(record)
        assert (event.identity, event.identity_kind) == ("eve@example.org", "human")
        assert (event.credential_id, event.credential_type) == (None, "unknown")


def entra_audit(initiated_by: dict) -> dict:
    return {"time": "2024-02-01T08:00:00.0000000Z", "category": "AuditLogs",
            "operationName": "Add member to role completed (PIM activation)",
            "resourceId": "/tenants/t/providers/Microsoft.aadiam", "resultType": "",
            "properties": {"id": "Directory_1", "activityDisplayName": "Add member to role",
                           "initiatedBy": initiated_by, "result": "success"}}


class TestEntraAuditInitiator:
    def test_first_party_service_named_only_by_display_name(self):
        app = {"app": {"appId": None, "displayName": "MS-PIM", "servicePrincipalId": None}}
        assert one(entra_audit(app)) == ("azure-service:MS-PIM", "cloud_service",
                                         "AzureService",
                                         "Entra service named only by display name")

    def test_service_principal_is_a_workload(self):
        app = {"app": {"appId": "A1", "displayName": "deployer", "servicePrincipalId": "S1"}}
        assert one(entra_audit(app))[:3] == ("s1", "workload", "ServicePrincipal")

    def test_nobody_named_stays_dead(self):
        events, dead = parse(entra_audit({"app": {"displayName": " "}, "user": {}}))
        assert events == [] and dead.reasons() == ["missing_identity"]
