"""Every export shape of Azure Activity and Entra sign-in and audit logs parses to the same
event: the Event Hub / diagnostic-settings ``records`` document, the Log Analytics tables
(``AzureActivity``, ``SigninLogs``, ``AADServicePrincipalSignInLogs``,
``AADManagedIdentitySignInLogs``, ``AuditLogs``), the REST and Graph API shapes; and records
that name no caller get the identity they really have, or stay dead letters."""

from __future__ import annotations

import json

from detector.techniques import ATTRIBUTE, as_findings
from tests.detector.test_corpus_azure import OID, PORTAL, activity, parse

SUB = "/subscriptions/11111111-2222-3333-4444-555555555555"
ASSIGNMENT = f"{SUB}/providers/Microsoft.Authorization/roleAssignments/a1"
OWNER_BODY = {"properties": {
    "roleDefinitionId": f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
                        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "principalId": "p-9", "principalType": "ServicePrincipal", "scope": SUB}}
APP_CLAIMS = {OID: "0AB1-SP", "appid": "4567", "idtyp": "app"}


def rules(event) -> list[str]:
    return [f.rule for f in as_findings(event.attributes.get(ATTRIBUTE))]


def one_event(record: dict):
    events, dead = parse(record)
    assert len(events) == 1, dead.reasons()
    return events[0]


def azure_activity_row(**extra: object) -> dict:
    """A row of the Log Analytics AzureActivity table as a JSON export gives it."""
    row = {
        "TenantId": "t1", "SourceSystem": "Azure", "TimeGenerated": "2024-06-01T09:00:00Z",
        "OperationName": "Create role assignment",
        "OperationNameValue": "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE",
        "Level": "Informational", "ActivityStatusValue": "Success",
        "ActivitySubstatusValue": "Created", "CategoryValue": "Administrative",
        "Caller": "0ab1-sp", "CallerIpAddress": "203.0.113.5",
        "CorrelationId": "c-la-1", "EventDataId": "e-la-1",
        "Claims": json.dumps(APP_CLAIMS), "_ResourceId": ASSIGNMENT.lower(),
        "Properties_d": {"requestbody": json.dumps(OWNER_BODY), "statusCode": "Created"},
        "Type": "AzureActivity"}
    row.update(extra)
    return row


class TestActivityShapes:
    def test_log_analytics_row_reads_the_operation_value_not_its_display_name(self):
        event = one_event(azure_activity_row())
        assert event.action == "azure:microsoft.authorization/roleassignments/write"
        assert (event.identity, event.identity_kind) == ("0ab1-sp", "workload")
        assert (event.outcome, event.source_ip, event.event_id) == (
            "success", "203.0.113.5", "e-la-1")
        assert event.attributes["category"] == "Administrative"
        assert rules(event) == ["azure.privileged_role_assignment"]

    def test_log_analytics_failure_and_string_properties(self):
        row = azure_activity_row(ActivityStatusValue="Failure",
                                 ActivitySubstatusValue="Forbidden")
        row["Properties"] = json.dumps(row.pop("Properties_d"))
        event = one_event(row)
        assert (event.outcome, event.error_code) == ("failure", "Forbidden")
        assert rules(event) == []  # a refused grant grants nothing

    def test_rest_event_data_shape(self):
        record = {
            "authorization": {"action": "Microsoft.Compute/virtualMachines/runCommand/action",
                              "scope": f"{SUB}/resourceGroups/rg"},
            "caller": "ops@example.org",
            "category": {"value": "Administrative", "localizedValue": "Administrative"},
            "claims": {OID: "b", "appid": PORTAL, "name": "Ops"},
            "correlationId": "c-rest", "eventDataId": "e-rest",
            "eventTimestamp": "2024-06-01T10:00:00.1234567Z",
            "httpRequest": {"clientIpAddress": "198.51.100.20", "method": "POST"},
            "operationName": {"value": "Microsoft.Compute/virtualMachines/runCommand/action",
                              "localizedValue": "Run Command on Virtual Machine"},
            "resourceId": f"{SUB}/resourceGroups/rg/providers/Microsoft.Compute/"
                          "virtualMachines/web1",
            "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
            "subStatus": {"value": "", "localizedValue": ""},
            "submissionTimestamp": "2024-06-01T10:01:00Z", "properties": {}}
        event = one_event(record)
        assert (event.identity, event.identity_kind) == ("ops@example.org", "human")
        assert (event.source_ip, event.event_id, event.outcome) == (
            "198.51.100.20", "e-rest", "success")
        assert event.attributes["category"] == "Administrative"
        assert rules(event) == ["azure.vm_run_command"]
        record["status"] = {"value": "Failed"}
        record["subStatus"] = {"value": "Forbidden"}
        event = one_event(record)
        assert (event.outcome, event.error_code, rules(event)) == ("failure", "Forbidden", [])

    def test_diagnostic_records_document_with_app_only_claims(self):
        record = {"time": "2024-06-01T11:00:00Z", "resourceId": ASSIGNMENT,
                  "operationName": "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE",
                  "category": "Administrative", "resultType": "Success",
                  "callerIpAddress": "203.0.113.5", "correlationId": "c-diag",
                  "identity": {"claims": APP_CLAIMS},
                  "properties": {"requestbody": json.dumps(OWNER_BODY)}}
        events, _ = parse({"records": [record, dict(record, resultType="Start",
                                                    correlationId="c-diag-start")]})
        assert [(e.identity, e.principal_type) for e in events] == [
            ("0ab1-sp", "ServicePrincipal")] * 2
        assert [rules(e) for e in events] == [["azure.privileged_role_assignment"], []]

    def test_key_vault_data_plane_log_names_the_caller_in_claim(self):
        def read(when: str, secret: str) -> dict:
            return {"time": when, "category": "AuditEvent", "operationName": "SecretGet",
                    "resultType": "Success", "resultSignature": "OK",
                    "callerIpAddress": "10.1.2.3", "correlationId": "",
                    "resourceId": f"{SUB}/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/"
                                  "VAULTS/KV1",
                    "identity": {"claim": {OID: "AA11", "appid": "app-1"}},
                    "properties": {"id": f"https://kv1.vault.azure.net/secrets/{secret}/v1",
                                   "httpStatusCode": 200}}
        events, _ = parse({"records": [read("2024-06-01T12:00:00Z", "db"),
                                       read("2024-06-01T12:00:01Z", "db")]})
        assert [e.identity for e in events] == ["aa11", "aa11"]
        assert events[0].event_id != events[1].event_id  # the secret URL is no event id
        assert events[0].action == "azure:SecretGet"

    def test_platform_categories_without_a_caller_are_the_platform(self):
        policy = {"time": "2024-06-01T13:00:00Z", "category": "Policy",
                  "operationName": "MICROSOFT.AUTHORIZATION/POLICIES/AUDIT/ACTION",
                  "resultType": "Success", "resourceId": f"{SUB}/resourceGroups/rg"}
        assert one_event(policy).identity == "azure-service:Azure Policy"
        assert one_event(policy).identity_kind == "cloud_service"
        provider = "Microsoft.Insights/autoscaleSettings"
        autoscale = dict(policy, category="Autoscale", caller=provider,
                         operationName="Microsoft.Insights/AutoscaleSettings/Scaleup/Action")
        assert one_event(autoscale).identity == f"azure-service:{provider}"
        # an administrative call without a caller names nobody: no guess
        admin = dict(policy, category="Administrative")
        events, dead = parse(admin)
        assert events == [] and dead.reasons() == ["missing_identity"]
        # claims that name no one are not the platform either
        events, dead = parse(dict(policy, identity={"claims": {"aud": "x"}}))
        assert events == [] and dead.reasons() == ["missing_identity"]


def credentials_targets() -> list[dict]:
    return [{"id": "sp-1", "displayName": "payments-api", "type": "ServicePrincipal",
             "modifiedProperties": [{"displayName": "KeyType", "oldValue": None,
                                     "newValue": "\"Password\""}]}]


class TestEntraAuditShapes:
    def test_log_analytics_audit_row_is_its_own_properties(self):
        row = {"TenantId": "t1", "TimeGenerated": "2024-06-02T08:00:00Z",
               "ResourceId": "/tenants/t1/providers/Microsoft.aadiam",
               "OperationName": "Add service principal credentials",
               "Category": "ApplicationManagement", "Result": "success",
               "Identity": "deployer", "LoggedByService": "Core Directory",
               "ActivityDisplayName": "Add service principal credentials",
               "Id": "Directory_la_1", "Type": "AuditLogs",
               "InitiatedBy": json.dumps({"app": {"servicePrincipalId": "SP-DEPLOY",
                                                  "displayName": "deployer"}}),
               "TargetResources": json.dumps(credentials_targets())}
        event = one_event(row)
        assert (event.identity, event.identity_kind) == ("sp-deploy", "workload")
        assert (event.action, event.event_id) == (
            "entra:Add service principal credentials", "Directory_la_1")
        assert rules(event) == ["azure.credentials_added"]
        event = one_event(dict(row, Result="failure"))
        assert (event.outcome, rules(event)) == ("failure", [])

    def test_graph_directory_audit_shape(self):
        record = {"id": "Directory_g_1", "category": "ApplicationManagement",
                  "result": "success", "activityDisplayName": "Add service principal "
                                                              "credentials",
                  "activityDateTime": "2024-06-02T09:00:00Z",
                  "loggedByService": "Core Directory", "operationType": "Update",
                  "initiatedBy": {"user": {"userPrincipalName": "Admin@Example.org"}},
                  "targetResources": credentials_targets()}
        event = one_event(record)
        assert (event.identity, event.action) == (
            "admin@example.org", "entra:Add service principal credentials")
        assert rules(event) == ["azure.credentials_added"]


class TestSignInShapes:
    def test_log_analytics_service_principal_sign_in(self):
        row = {"TimeGenerated": "2024-06-03T08:00:00Z", "Type": "AADServicePrincipalSignInLogs",
               "Category": "ServicePrincipalSignInLogs", "OperationName": "Sign-in activity",
               "ResultType": "0", "ServicePrincipalId": "9D37-SP", "ServicePrincipalName": "etl",
               "AppId": "app-etl", "IPAddress": "203.0.113.7", "Location": "DE",
               "LocationDetails": json.dumps({"countryOrRegion": "DE"}),
               "ServicePrincipalCredentialKeyId": "key-1", "ClientCredentialType": "clientSecret",
               "Id": "si-1"}
        event = one_event(row)
        assert (event.source, event.identity, event.identity_kind) == (
            "azure.signin", "9d37-sp", "workload")
        assert (event.region, event.credential_type, event.outcome) == ("DE", "long_term",
                                                                        "success")
        failed = one_event(dict(row, ResultType="7000215", Id="si-2"))
        assert (failed.outcome, failed.error_code) == ("failure", "7000215")

    def test_log_analytics_managed_identity_and_type_without_category(self):
        row = {"TimeGenerated": "2024-06-03T09:00:00Z", "Type": "AADManagedIdentitySignInLogs",
               "ResultType": "0", "ServicePrincipalId": "MI-1", "AppId": "a", "Id": "mi-1",
               "OperationName": "Sign-in activity"}
        event = one_event(row)
        assert (event.identity, event.principal_type, event.identity_kind) == (
            "mi-1", "ManagedIdentity", "workload")

    def test_log_analytics_user_sign_in(self):
        row = {"TimeGenerated": "2024-06-03T10:00:00Z", "Type": "SigninLogs",
               "Category": "SignInLogs", "ResultType": "0", "OperationName": "Sign-in activity",
               "UserPrincipalName": "Eve@Example.org", "UserId": "u-1", "AppId": PORTAL,
               "IPAddress": "198.51.100.9", "Location": "FR", "Id": "u-si-1",
               "Status": json.dumps({"errorCode": 0})}
        event = one_event(row)
        assert (event.identity, event.identity_kind, event.region) == (
            "eve@example.org", "human", "FR")

    def test_graph_sign_in_shape(self):
        record = {"id": "g-si-1", "createdDateTime": "2024-06-03T11:00:00Z",
                  "userPrincipalName": "ops@example.org", "appId": PORTAL,
                  "ipAddress": "198.51.100.10", "status": {"errorCode": 50126},
                  "location": {"countryOrRegion": "US"}}
        event = one_event(record)
        assert (event.source, event.identity, event.outcome, event.region) == (
            "azure.signin", "ops@example.org", "failure", "US")


def test_an_array_of_mixed_shapes_parses_whole() -> None:
    """One ``records`` document holding a Log Analytics activity row and a managed identity
    sign-in row: two events, one of each source, nothing dead."""
    rows = [azure_activity_row(EventDataId="e-mixed"),
            {"TimeGenerated": "2024-06-03T09:00:00Z", "Type": "AADManagedIdentitySignInLogs",
             "ResultType": "0", "ServicePrincipalId": "MI-2", "AppId": "a", "Id": "mi-2",
             "OperationName": "Sign-in activity"}]
    events, dead = parse({"records": rows})
    assert len(dead) == 0 and sorted(e.source for e in events) == [
        "azure.activity", "azure.signin"]


class TestOneGuidOneIdentity:
    """Azure writes one object id with dashes (claims), as 32 bare hex digits (the
    role-assignment evidence) or in braces; each spelling must key the same identity."""

    DASHED = "9a9b9c9d-2222-3333-4444-55555555abcd"

    def evidence_record(self, principal_id: str) -> dict:
        return activity({"authorization": {"evidence": {
            "principalId": principal_id, "principalType": "ServicePrincipal"}}})

    def test_every_spelling_of_the_evidence_id_is_the_claims_identity(self):
        from_claims = one_event(activity({"claims": {OID: self.DASHED, "idtyp": "app",
                                                     "appid": "4567"}})).identity
        assert from_claims == self.DASHED
        bare = self.DASHED.replace("-", "")
        for spelling in (bare, bare.upper(), "{" + self.DASHED.upper() + "}", self.DASHED):
            assert one_event(self.evidence_record(spelling)).identity == from_claims, spelling

    def test_a_non_guid_value_is_kept_as_written(self):
        # 32 characters that are not all hex digits are some other id: not reshaped
        odd = "9a9b9c9d22223333444455555555abcz"
        assert one_event(self.evidence_record(odd)).identity == odd


class TestArmCase:
    """ARM names one operation and one resource in any case; the exports disagree."""

    def test_one_call_in_two_exports__one_action_and_one_resource(self):
        rest = azure_activity_row(OperationNameValue="Microsoft.Compute/snapshots/write",
                                  _ResourceId="/subscriptions/sub-1/resourceGroups/Ops/"
                                              "providers/Microsoft.Compute/snapshots/Nightly")
        diagnostic = azure_activity_row(OperationNameValue="MICROSOFT.COMPUTE/SNAPSHOTS/WRITE",
                                        _ResourceId="/SUBSCRIPTIONS/SUB-1/RESOURCEGROUPS/OPS/"
                                                    "PROVIDERS/MICROSOFT.COMPUTE/SNAPSHOTS/"
                                                    "NIGHTLY")
        first, second = one_event(rest), one_event(diagnostic)
        assert first.action == second.action == "azure:microsoft.compute/snapshots/write"
        assert first.resource == second.resource == (
            "/subscriptions/sub-1/resourcegroups/ops/providers/microsoft.compute/snapshots/"
            "nightly")
        assert first.tenant == second.tenant == "sub-1"


class TestListPages:
    """One page of the Azure REST Activity Log list or of a Microsoft Graph list: the
    records are its ``value`` (was one unknown_format dead letter for the whole page)."""

    def test_rest_page__every_record_of_value(self):
        page = {"value": [activity({"claims": APP_CLAIMS}, correlationId=f"c-{n}")
                          for n in range(3)],
                "nextLink": "https://management.azure.com/...&$skiptoken=x"}
        events, dead = parse(page)
        assert len(dead) == 0
        assert [e.identity for e in events] == ["0ab1-sp"] * 3
        assert {e.action for e in events} == {"azure:microsoft.keyvault/vaults/write"}

    def test_graph_sign_in_page__sign_in_events(self):
        sign_in = {"id": "s-1", "createdDateTime": "2024-05-02T10:00:00Z",
                   "userPrincipalName": "deploy-bot@contoso.com", "userId": "u-1",
                   "appId": "app-1", "ipAddress": "131.107.159.37", "isInteractive": False,
                   "resourceDisplayName": "Microsoft Graph",
                   "status": {"errorCode": 0}}
        page = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/"
                                  "signIns", "value": [sign_in],
                "@odata.nextLink": "https://graph.microsoft.com/v1.0/auditLogs/signIns?x"}
        events, dead = parse(page)
        assert len(dead) == 0
        assert [(e.source, e.identity, e.action) for e in events] == [
            ("azure.signin", "deploy-bot@contoso.com", "entra:SignIn")]

    def test_pages_with_odata_annotations_old_and_new__read(self):
        record = activity({"claims": APP_CLAIMS})
        for page in ({"@odata.context": "c", "@odata.type": "#x.collection", "value": [record]},
                     {"odata.metadata": "https://graph.windows.net/x", "value": [record]}):
            events, dead = parse(page)
            assert (len(events), len(dead)) == (1, 0)

    def test_page_larger_than_one_record_may_be__read_record_by_record(self):
        # a Graph page of 1,000 sign-ins ($top=1000) is over the 4 MiB a record may have:
        # it was one oversized_record dead letter
        pad = "x" * 6000
        page = {"value": [activity({"claims": APP_CLAIMS}, correlationId=f"c-{n}", pad=pad)
                          for n in range(1000)]}
        assert len(json.dumps(page)) > 4 * 2**20
        events, dead = parse(page)
        assert (len(events), len(dead)) == (1000, 0)

    def test_record_with_a_value_field_of_its_own__stays_one_record(self):
        # only a page has nothing but ``value`` and its paging keys
        record = activity({"claims": APP_CLAIMS}, value=[1, 2])
        events, dead = parse(record)
        assert len(dead) == 0 and len(events) == 1
