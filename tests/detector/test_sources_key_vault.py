"""Key Vault data-plane records (``AuditEvent``): the secret each one names, its HTTP
status, its client, the Log Analytics row, and the token-less challenge every client
makes first."""

from __future__ import annotations

import orjson

from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats

VAULT = ("/SUBSCRIPTIONS/A3B4C5D6-E7F8-4A9B-8C0D-1E2F3A4B5C6D/RESOURCEGROUPS/RG-SEC"
         "/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-ORDERS")
OID = "0f087b92-026b-418f-a39d-f3596ce324e0"
MI = ("/subscriptions/x/resourcegroups/y/providers/Microsoft.ManagedIdentity/"
      "userAssignedIdentities/mi-orders")
SDK = "azsdk-net-Security.KeyVault.Secrets/4.6.0 (.NET 8.0.11; Linux)"


def audit(secret: str = "sql-conn", status: int = 200, signature: str = "OK",
          identity: object = "default") -> dict:
    if identity == "default":
        identity = {"claim": {"http://schemas.microsoft.com/identity/claims/objectidentifier":
                              OID, "appid": "40b314e6-0177-43e1-acdc-14d91b89c1e4",
                              "xms_mirid": MI}}
    return {"time": "2026-11-25T10:12:30.9Z", "category": "AuditEvent",
            "operationName": "SecretGet", "resultType": "Success",
            "resultSignature": signature, "callerIpAddress": "52.186.40.117",
            "correlationId": f"c-{secret}-{status}", "identity": identity,
            "properties": {"id": f"https://kv-orders.vault.azure.net/secrets/{secret}/"
                                 "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                           "clientInfo": SDK, "httpStatusCode": status},
            "resourceId": VAULT, "location": "eastus"}


def parse(*records: dict) -> tuple[list, ListDeadLetters, RunStats]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps({"records": list(records)}), origin="t", stats=stats,
                           dead_letters=dead)
    assert stats.balanced()
    return events, dead, stats


def test_each_secret_is_a_resource_of_its_own():
    events, dead, _ = parse(audit("sql-conn"), audit("vpn-psk"))
    assert len(dead) == 0
    assert [e.resource for e in events] == [
        f"{VAULT.lower()}/secrets/sql-conn", f"{VAULT.lower()}/secrets/vpn-psk"]
    assert {e.identity for e in events} == {OID}
    assert {e.agent_family for e in events} == {"azure-sdk"}


def test_a_refused_read_is_a_failure_whatever_the_result_type():
    [event], _, _ = parse(audit(status=403, signature="Forbidden"))
    assert (event.outcome, event.error_code) == ("failure", "Forbidden")
    [event], _, _ = parse(audit())
    assert (event.outcome, event.error_code) == ("success", None)


def test_the_token_less_challenge_is_skipped_not_a_dead_letter():
    events, dead, stats = parse(audit(status=401, signature="Unauthorized", identity=None),
                                audit(status=401, signature="Unauthorized", identity="{}"),
                                audit())
    assert len(events) == 1 and len(dead) == 0
    # the second: an AZKVAuditLogs Identity column holding an empty object as text
    assert stats.skipped[("azure.activity", "key_vault_challenge")] == 2


def test_a_log_analytics_row_reads_its_flattened_claims():
    row = {"TenantId": "t", "TimeGenerated": "2026-11-25T10:12:30.1234567Z",
           "ResourceId": VAULT, "Category": "AuditEvent", "OperationName": "SecretGet",
           "ResultType": "Success", "ResultSignature": "OK", "CorrelationId": "c-1",
           "CallerIPAddress": "52.186.40.117",
           "id_s": "https://kv-orders.vault.azure.net/secrets/sql-conn/0a1b2c",
           "identity_claim_appid_g": "40b314e6-0177-43e1-acdc-14d91b89c1e4",
           "identity_claim_http_schemas_microsoft_com_identity_claims_objectidentifier_g":
               OID,
           "identity_claim_xms_mirid_s": MI, "clientInfo_s": SDK, "httpStatusCode_d": 200,
           "Type": "AzureDiagnostics"}
    stats, dead = RunStats(), ListDeadLetters()
    [event] = parse_payload(orjson.dumps([row]), origin="t", stats=stats, dead_letters=dead)
    assert (event.identity, event.principal_type) == (OID, "ManagedIdentity")
    assert event.resource == f"{VAULT.lower()}/secrets/sql-conn"
    assert event.agent_family == "azure-sdk"


def test_the_resource_specific_table_reads_its_own_columns():
    """AZKVAuditLogs: ``HttpStatusCode``, ``Id`` and ``ClientInfo`` are top-level columns."""
    row = {"TenantId": "t", "TimeGenerated": "2026-11-25T10:12:30.1Z", "_ResourceId": VAULT,
           "OperationName": "SecretGet", "ResultType": "Success",
           "ResultSignature": "Forbidden", "CorrelationId": "c-2",
           "CallerIpAddress": "52.186.40.117", "HttpStatusCode": 403,
           "Id": "https://kv-orders.vault.azure.net/secrets/vpn-psk/0a1b",
           "ClientInfo": SDK, "Identity": audit()["identity"], "Type": "AZKVAuditLogs"}
    [event], dead, _ = parse_rows(row)
    assert (event.outcome, event.error_code) == ("failure", "Forbidden")
    assert event.resource == f"{VAULT.lower()}/secrets/vpn-psk"
    assert (event.identity, event.agent_family) == (OID, "azure-sdk")


def test_a_refused_row_that_names_its_caller_is_kept():
    row = {"TenantId": "t", "TimeGenerated": "2026-11-25T10:12:30.1Z", "ResourceId": VAULT,
           "Category": "AuditEvent", "OperationName": "SecretGet", "ResultType": "Success",
           "ResultSignature": "Unauthorized", "CorrelationId": "c-3",
           "id_s": "https://kv-orders.vault.azure.net/secrets/sql-conn",
           "identity_claim_http_schemas_microsoft_com_identity_claims_objectidentifier_g":
               OID, "identity_claim_xms_mirid_s": MI, "httpStatusCode_d": 401,
           "Type": "AzureDiagnostics"}
    [event], dead, stats = parse_rows(row)
    assert (event.identity, event.outcome) == (OID, "failure")
    assert not stats.skipped


def parse_rows(*rows: dict) -> tuple[list, ListDeadLetters, RunStats]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(list(rows)), origin="t", stats=stats,
                           dead_letters=dead)
    assert stats.balanced() and len(dead) == 0, dead.items
    return events, dead, stats


def test_an_http_status_as_text_is_read_and_odd_digits_are_no_status():
    """``"403.0"`` is a refusal; ``"²"`` (a digit to ``str.isdigit``, not to ``int``) and
    5,000 digits were internal errors ("a bug; please report it")."""
    def status_of(status: object) -> tuple[str, str | None]:
        record = audit(status=200)
        record["properties"]["httpStatusCode"] = status
        [event], dead, _ = parse(record)
        assert len(dead) == 0
        return event.outcome, event.error_code

    assert status_of("403.0") == ("failure", "OK")
    assert status_of(" 403 ") == ("failure", "OK")
    for odd in ("\u00b2", "9" * 5000, "NaN", "inf", "", "4O3"):
        assert status_of(odd) == ("success", None)


def test_an_over_long_correlation_id_is_not_the_event_id():
    record = audit()
    record["correlationId"] = "c" * 100_000
    [event], dead, _ = parse(record)
    assert len(dead) == 0 and event.event_id.startswith("sha256:")
