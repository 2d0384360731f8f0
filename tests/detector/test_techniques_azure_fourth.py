"""Azure and Entra technique checks of the fourth round: workload sign-in failure bursts and
sign-ins spread over countries, Function and Logic App keys, secrets read through the
management plane, disks opened to every network, grants at management-group scope. Each on
a realistic attack record and on the benign lookalikes of its kind."""

from __future__ import annotations

from typing import Any

import orjson

from detector.engine import Detector
from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, Tally
from tests.detector.test_engine import run
from tests.detector.test_techniques_azure import CONTRIBUTOR, OWNER, SUB, activity, findings
from tests.detector.test_techniques_azure_third import RG, alerts_of, at, audit, change, sign_in
from tests.detector.test_techniques_k8s import assert_no_internal_error, variants

SP = "ServicePrincipalSignInLogs"
FAILURES = ("technique.azure.sign_in_failures", "medium")
SPREAD = ("technique.azure.sign_in_spread", "medium")


def sp_sign_in(seconds: float, result: str = "0", address: str = "203.0.113.9",
               country: str | None = "US", sp: str = "sp-1", **props: Any) -> dict:
    """A service principal's sign-in at T0 + seconds from ``address`` in ``country``."""
    location = {"countryOrRegion": country} if country is not None else {}
    return at(sign_in(SP, result, servicePrincipalId=sp, ipAddress=address,
                      location=location, **props), seconds)


# ---------------------------------------------------------------------------- sign-ins


def test_bad_secret_failures_of_one_service_principal_are_a_burst() -> None:
    # ten invalid-secret failures in five minutes from one address: someone trying it
    assert alerts_of(*[sp_sign_in(n * 30, "7000215") for n in range(10)]) == [FAILURES]
    # three addresses failing with bad credentials or a lockout within minutes
    assert alerts_of(sp_sign_in(0, "7000215", "198.51.100.1"),
                     sp_sign_in(40, "50126", "198.51.100.2"),
                     sp_sign_in(80, "50053", "192.0.2.3")) == [FAILURES]
    # the Log Analytics shape: the code in ResultType, no status object
    rows = [{"Category": SP, "TimeGenerated": f"2024-03-04T10:0{n}:00Z", "ResultType":
             "7000215", "ServicePrincipalId": "sp-9", "AppId": "app-9", "IPAddress":
             f"198.51.100.{n}", "OperationName": "Sign-in activity", "Id": f"la{n}"}
            for n in range(3)]
    assert alerts_of(*rows) == [FAILURES]


def test_failures_that_are_no_attack_on_one_identity_are_not_a_burst() -> None:
    # an application forgotten at rotation presenting its expired secret all day
    assert alerts_of(*[sp_sign_in(n * 20, "7000222") for n in range(60)]) == []
    # the expired secret presented from three hosts: the secret travelled
    assert alerts_of(*[sp_sign_in(n * 20, "7000222", f"198.51.100.{n}")
                       for n in range(3)]) == [FAILURES]
    # a few failures, or many spread over hours, or other errors (MFA, Conditional Access)
    assert alerts_of(*[sp_sign_in(n * 30, "7000215") for n in range(5)]) == []
    assert alerts_of(*[sp_sign_in(n * 900, "7000215") for n in range(12)]) == []
    assert alerts_of(*[sp_sign_in(n * 30, "53003", f"198.51.100.{n}")
                       for n in range(12)]) == []
    # never across identities: one address failing once as each of twelve principals
    assert alerts_of(*[sp_sign_in(n * 10, "7000215", sp=f"sp-{n}") for n in range(12)]) == []
    # a person mistyping a password is the behavioural models' business, not a workload's
    assert alerts_of(*[at(sign_in(result="50126", ipAddress=f"198.51.100.{n}"), n * 30)
                       for n in range(12)]) == []


def test_a_service_principal_in_three_countries_within_minutes() -> None:
    assert alerts_of(sp_sign_in(0, country="US"), sp_sign_in(60, country="NL"),
                     sp_sign_in(120, country="SG")) == [SPREAD]
    # its own region all day, two regions (a paired-region failover), three over a day
    assert alerts_of(*[sp_sign_in(n * 30, country="US") for n in range(40)]) == []
    assert alerts_of(*[sp_sign_in(n * 30, country=("US", "CA")[n % 2])
                       for n in range(40)]) == []
    assert alerts_of(*[sp_sign_in(n * 4 * 3600, country=c)
                       for n, c in enumerate(("US", "NL", "SG"))]) == []
    # managed identities sign in inside Azure with no address or country; failures and
    # people count for nothing here
    assert alerts_of(*[at(sign_in("ManagedIdentitySignInLogs", servicePrincipalId="mi-1",
                                  ipAddress="", location={}), n * 30)
                       for n in range(10)]) == []
    assert alerts_of(*[at(sign_in(location={"countryOrRegion": c}), n * 60)
                       for n, c in enumerate(("US", "NL", "SG"))]) == []
    # a vendor's multi-tenant application (its owner another tenant) runs where it likes
    vendor = {"tenantId": "11111111-1111-1111-1111-111111111111",
              "appOwnerTenantId": "99999999-9999-9999-9999-999999999999"}
    assert alerts_of(*[sp_sign_in(n * 60, country=c, **vendor)
                       for n, c in enumerate(("US", "NL", "SG"))]) == []
    own = dict(vendor, appOwnerTenantId=vendor["tenantId"])
    assert alerts_of(*[sp_sign_in(n * 60, country=c, **own)
                       for n, c in enumerate(("US", "NL", "SG"))]) == [SPREAD]


def test_azurehound_sign_in_but_not_other_tools_or_a_refused_one() -> None:
    hound = "azurehound/v2.1.7"
    assert findings(
        sp_sign_in(0, userAgent=hound),
        at(sign_in(userAgent=f"Mozilla/5.0 {hound}"), 10),
        # benign: the Azure CLI and PowerShell, a browser; AzureHound refused
        sp_sign_in(20, userAgent="python/3.11 (Linux) AZURECLI/2.61.0"),
        at(sign_in(userAgent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/126.0"), 30),
        sp_sign_in(40, "7000215", userAgent=hound)) == [
        ("azure.recon_tool_sign_in", "medium", "azurehound")] * 2


def test_sign_in_tallies_are_counts_only_never_findings_on_their_own() -> None:
    events = parse_payload(
        orjson.dumps({"records": [sp_sign_in(0, "7000215"), sp_sign_in(5)]}),
        origin="t", stats=RunStats(), dead_letters=ListDeadLetters())
    kinds = [[type(item) for item in e.attributes.get(ATTRIBUTE, [])] for e in events]
    assert kinds == [[Tally], [Tally]]
    assert findings(sp_sign_in(0, "7000215"), sp_sign_in(5)) == []


def test_odd_sign_in_fields_never_raise() -> None:
    count = 0
    for record in (sp_sign_in(0, "7000215"), sp_sign_in(0)):
        for changed in variants(record["properties"]):
            assert_no_internal_error({**record, "properties": changed})
            count += 1
    assert count > 20


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


# ---------------------------------------------------------------------------- new credential


def test_a_service_principal_signing_in_with_a_credential_it_never_used() -> None:
    """Not a technique check: the parser's credential ids let the novelty model's
    credential-with-network pair flag a certificate (or another secret) the service
    principal never signed in with, the credential an attacker added."""
    def hours_of_sign_ins(hours: range, **credential: Any) -> list[dict]:
        return [sp_sign_in(hour * 3600 + minute * 60, appId="app-1", **credential)
                for hour in hours for minute in (5, 35)]

    secret = {"clientCredentialType": "clientSecret", "servicePrincipalCredentialKeyId": "k-1"}
    certificate = {"clientCredentialType": "certificate",
                   "servicePrincipalCredentialThumbprint": "AB12CD"}
    learned = hours_of_sign_ins(range(0, 24 * 6), **secret)  # six days with its secret
    later = range(24 * 6, 24 * 6 + 1)

    def detectors(records: list[dict]) -> list[str]:
        parsed = parse_payload(orjson.dumps({"records": records}), origin="t",
                               stats=RunStats(), dead_letters=ListDeadLetters())
        out = run(Detector({}, stats=RunStats()), parsed)
        return [d for a in out for d in a.detectors]

    assert detectors(learned + hours_of_sign_ins(later, **secret)) == []
    assert "novelty.credential_network" in detectors(
        learned + hours_of_sign_ins(later, **certificate))


# ---------------------------------------------------------------------------- catalogues


def test_web_application_firewall_policies_and_kubernetes_events_deleted() -> None:
    waf = f"{RG}/Microsoft.Network/frontDoorWebApplicationFirewallPolicies/edge"
    gateway = f"{RG}/Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies/gw"
    events = f"{RG}/Microsoft.Kubernetes/connectedClusters/arc1/events.k8s.io/events/e1"
    assert findings(
        activity("Microsoft.Network/frontDoorWebApplicationFirewallPolicies/delete", waf),
        activity("Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies/delete",
                 gateway),
        activity("MICROSOFT.KUBERNETES/CONNECTEDCLUSTERS/EVENTS.K8S.IO/EVENTS/DELETE", events),
        # benign: policy writes (tuning rules), reading events, the delete's Start record
        activity("Microsoft.Network/frontDoorWebApplicationFirewallPolicies/write", waf),
        activity("Microsoft.Kubernetes/connectedClusters/events.k8s.io/events/read", events),
        activity("Microsoft.Network/frontDoorWebApplicationFirewallPolicies/delete", waf,
                 result="Start")) == [
        ("azure.network_defense_removed", "medium", waf),
        ("azure.network_defense_removed", "medium", gateway),
        ("azure.kubernetes_events_deleted", "medium", events)]


def test_root_certificate_authority_trusted_for_certificate_sign_in() -> None:
    ca = [{"CertificateAuthorityInformation": {"IsRootAuthority": True,
                                               "TrustedCertificate": "MIIB..."}}]
    added = audit("Set Company Information", [{"type": "Company", "modifiedProperties": [
        change("TrustedCAsForPasswordlessAuth", [], ca)]}])
    whole = audit("Set Company Information", [{"type": "Company", "modifiedProperties": [
        change("CompanyInformation", {"TechnicalContact": "a@example.org"},
               {"TechnicalContact": "a@example.org", "TrustedCAsForPasswordlessAuth": ca})]}])
    # benign: another company setting, a CA removed, the same list written again
    contact = audit("Set Company Information", [{"type": "Company", "modifiedProperties": [
        change("TechnicalNotificationMails", ["a@example.org"], ["soc@example.org"])]}])
    removed = audit("Set Company Information", [{"type": "Company", "modifiedProperties": [
        change("TrustedCAsForPasswordlessAuth", ca, [])]}])
    again = audit("Set Company Information", [{"type": "Company", "modifiedProperties": [
        change("CompanyInformation",
               {"TechnicalContact": "a@example.org", "TrustedCAsForPasswordlessAuth": ca},
               {"TechnicalContact": "soc@example.org", "TrustedCAsForPasswordlessAuth": ca})]}])
    assert findings(added, whole, contact, removed, again,
                    audit("Set Company Information", added["properties"]["targetResources"],
                          result="failure")) == [
        ("azure.external_idp_trusted", "high", "TrustedCAsForPasswordlessAuth")] * 2
    for changed in variants(added["properties"]):
        assert_no_internal_error({**added, "properties": changed})


def test_password_refused_the_way_spraying_tools_send_it() -> None:
    powershell = "1b730954-1685-4b74-9bfd-dac224a7b894"
    cli = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

    def attempt(result: str, app: str, agent: str, address: str = "203.0.113.50") -> dict:
        return sign_in(result=result, appId=app, userAgent=agent, ipAddress=address)

    assert findings(
        attempt("50126", powershell, "Mozilla/5.0"),
        attempt("50053", cli, "Mozilla/5.0", "198.51.100.60"),
        # benign: the real module and CLI mistyped, a browser's full agent, a success,
        # Conditional Access refusing the tool
        attempt("50126", powershell, "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) "
                                     "WindowsPowerShell/5.1.22621.2506"),
        attempt("50126", cli, "python/3.11.8 (Linux) AZURECLI/2.61.0"),
        attempt("0", powershell, "Mozilla/5.0"),
        attempt("53003", cli, "Mozilla/5.0")) == [
        ("azure.password_spray_tool", "medium", "203.0.113.50"),
        ("azure.password_spray_tool", "medium", "198.51.100.60")]
