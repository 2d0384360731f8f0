"""GCP technique findings of the third round: grants to personal Google accounts, audit
logging removed, boot scripts and Windows accounts pushed through metadata, ransom notes,
Secret Manager bursts and VPC Service Controls perimeters deleted. Each rule on the attack
entry and on the near miss automation or an administrator sends every day."""

from __future__ import annotations

from typing import Any

import orjson

from detector.engine import Detector
from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, Tally
from tests.detector.test_techniques_gcp import delta, entry
from tests.detector.test_techniques_k8s import assert_no_internal_error, findings, variants

ADMIN = "ops@corp.example"
ATTACKER = "user:stratusredteam@gmail.com"
SA_RESOURCE = "projects/-/serviceAccounts/123456789"
TERRAFORM = {"callerIp": "198.51.100.7",
             "callerSuppliedUserAgent": "Terraform/1.7.0 (+https://www.terraform.io) "
                                        "terraform-provider-google/5.10.0"}


def iam(resource: str, *pairs: tuple[str, str], principal: str = ADMIN,
        action: str = "ADD", method: str = "SetIamPolicy") -> dict:
    return entry(method, "iam.googleapis.com", principal=principal, resource=resource,
                 **delta(*pairs, action=action))


def test_personal_account_granted_a_way_into_data_or_a_service_account_is_high() -> None:
    disk = "projects/p/zones/us-central1-a/disks/db"
    assert findings(
        iam(SA_RESOURCE, ("roles/iam.serviceAccountTokenCreator", ATTACKER),
            method="google.iam.admin.v1.SetIAMPolicy"),
        iam("projects/_/buckets/exports", ("roles/storage.objectAdmin", ATTACKER),
            method="storage.setIamPermissions"),
        iam(disk, ("roles/compute.storageAdmin", ATTACKER), method="v1.compute.disks.setIamPolicy"),
        iam("projects/corp-prod", ("roles/viewer", ATTACKER))) == [
        ("gcp.consumer_account_grant", "high", "stratusredteam@gmail.com")] * 3 + [
        ("gcp.consumer_account_grant", "medium", "stratusredteam@gmail.com")]


def test_owner_for_a_personal_account_stays_the_admin_grant_alone() -> None:
    assert findings(iam("projects/p/global/images/golden", ("roles/owner", ATTACKER))) == [
        ("gcp.admin_grant_external", "high", "stratusredteam@gmail.com")]


def test_colleagues_robots_removals_and_personal_account_estates_are_not() -> None:
    """A grant inside the organisation, to a service account, a removal, and a project
    whose own administrators use personal accounts."""
    assert findings(
        iam(SA_RESOURCE, ("roles/iam.serviceAccountTokenCreator", "user:bob@corp.example")),
        iam(SA_RESOURCE, ("roles/iam.serviceAccountUser",
                          "serviceAccount:ci@corp-ci.iam.gserviceaccount.com")),
        iam("projects/corp-prod", ("roles/viewer", ATTACKER), action="REMOVE"),
        iam("projects/corp-prod", ("roles/viewer", "user:friend@gmail.com"),
            principal="founder@gmail.com")) == []


def audit_configs(action: str, **extra: Any) -> dict:
    return entry("SetIamPolicy", "cloudresourcemanager.googleapis.com", principal=ADMIN,
                 serviceData={"policyDelta": {"auditConfigDeltas": [
                     {"action": action, "service": "storage.googleapis.com",
                      "logType": "DATA_READ"},
                     {"action": action, "service": "storage.googleapis.com",
                      "logType": "DATA_WRITE"}]}}, **extra)


def test_data_access_audit_logs_removed_is_high_added_or_as_code_is_not() -> None:
    assert findings(audit_configs("REMOVE"), audit_configs("ADD"),
                    audit_configs("REMOVE", requestMetadata=TERRAFORM)) == [
        ("gcp.audit_logs_disabled", "high", "storage.googleapis.com")]


def test_a_principal_exempted_from_audit_logging_but_not_an_exemption_removed() -> None:
    def exemption(action: str) -> dict:
        return entry("SetIamPolicy", "cloudresourcemanager.googleapis.com", principal=ADMIN,
                      serviceData={"policyDelta": {"auditConfigDeltas": [
                          {"action": action, "service": "allServices", "logType": "DATA_READ",
                           "exemptedMember": "serviceAccount:x@p.iam.gserviceaccount.com"}]}})
    assert findings(exemption("ADD"), exemption("REMOVE")) == [
        ("gcp.audit_logs_disabled", "high", "serviceAccount:x@p.iam.gserviceaccount.com")]


def metadata(*keys: str, principal: str = ADMIN, **extra: Any) -> dict:
    return entry("v1.compute.instances.setMetadata", "compute.googleapis.com",
                 principal=principal, resource="projects/p/zones/z/instances/vm",
                 request={"items": [{"key": key, "value": "x"} for key in keys]}, **extra)


def test_boot_script_and_windows_account_through_metadata() -> None:
    assert findings(metadata("startup-script-url"),
                    metadata("windows-keys", "enable-oslogin")) == [
        ("gcp.boot_script_metadata", "medium", "startup-script-url"),
        ("gcp.windows_account_metadata", "medium", "projects/p/zones/z/instances/vm")]


def test_other_keys_scripts_as_code_and_google_agents_are_not() -> None:
    agent = "service-123456789@compute-system.iam.gserviceaccount.com"
    assert findings(metadata("enable-oslogin", "serial-port-enable"),
                    metadata("startup-script", requestMetadata=TERRAFORM),
                    metadata("startup-script", principal=agent)) == []


def written(name: str) -> dict:
    return entry("storage.objects.create", "storage.googleapis.com", principal=ADMIN,
                 resource=f"projects/_/buckets/data-bucket/objects/{name}")


def test_ransom_note_uploaded_but_not_data_or_ordinary_notes() -> None:
    assert findings(written("HOW_TO_DECRYPT_FILES.txt"), written("exports/decrypted.parquet"),
                    written("docs/README.txt"), written("restore/backup-2024.tar")) == [
        ("gcp.gcs_ransom_note", "high", "HOW_TO_DECRYPT_FILES.txt")]


def secret(name: str, version: str = "latest", **extra: Any) -> dict:
    return entry("google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion",
                 "secretmanager.googleapis.com", principal=ADMIN,
                 resource=f"projects/1/secrets/{name}/versions/{version}", **extra)


def tallies(*records: dict) -> list[tuple[str, tuple[str, ...]]]:
    events = parse_payload(orjson.dumps(list(records)), origin="t", stats=RunStats(),
                           dead_letters=ListDeadLetters())
    return [(t.rule, t.values) for e in events for t in e.attributes.get(ATTRIBUTE, [])
            if type(t) is Tally]


def test_each_secret_read_counts_once_per_secret_but_not_as_code() -> None:
    assert tallies(secret("db", "3"), secret("db", requestMetadata=TERRAFORM)) == [
        ("gcp.secrets_burst", ("projects/1/secrets/db",))]


def test_twenty_distinct_secrets_read_in_minutes_is_a_burst() -> None:
    """The engine counts the tallies of one identity: one application re-reading its own
    secret never reaches the burst, a harvest of every secret does."""
    records = [secret(f"s{i:02d}") for i in range(20)]
    for index, record in enumerate(records):
        record["timestamp"] = f"2024-03-04T10:00:{index * 2:02d}Z"
    rereads = [secret("db") for _ in range(30)]
    for index, record in enumerate(rereads):
        record["timestamp"] = f"2024-03-05T10:{index:02d}:00Z"
    detector = Detector({}, stats=RunStats())
    events = parse_payload(orjson.dumps(records + rereads), origin="t", stats=RunStats(),
                           dead_letters=ListDeadLetters())
    alerts = [alert for event in events for alert in detector.process(event)]
    bursts = [s["sentence"] for a in alerts for s in a.signals
              if s["detector"] == "technique.gcp.secrets_burst"]
    assert bursts == ["20 distinct secrets within 10 minutes"]


def test_service_perimeter_deleted_is_high_as_code_or_refused_is_not() -> None:
    method = "google.identity.accesscontextmanager.v1.AccessContextManager."
    name = "accessPolicies/1/servicePerimeters/prod"
    deleted = entry(method + "DeleteServicePerimeter", "accesscontextmanager.googleapis.com",
                    principal=ADMIN, resource=name)
    policy = entry(method + "DeleteAccessPolicy", "accesscontextmanager.googleapis.com",
                   principal=ADMIN, resource="accessPolicies/1")
    as_code = entry(method + "DeleteServicePerimeter", "accesscontextmanager.googleapis.com",
                    principal=ADMIN, resource=name, requestMetadata=TERRAFORM)
    refused = entry(method + "DeleteServicePerimeter", "accesscontextmanager.googleapis.com",
                    principal=ADMIN, resource=name, code=7)
    assert findings(deleted, policy, as_code, refused) == [
        ("gcp.service_perimeter_removed", "high", name),
        ("gcp.service_perimeter_removed", "high", "accessPolicies/1")]


def instance(method: str = "v1.compute.instances.insert", *, principal: str = ADMIN,
             **request: Any) -> dict:
    return entry(method, "compute.googleapis.com", principal=principal,
                 resource="projects/p/zones/us-central1-a/instances/worker", request=request,
                 **({"requestMetadata": TERRAFORM} if principal == "terraform" else {}))


def test_gpu_instances_and_large_bulk_launches_are_unusual() -> None:
    accelerator = [{"acceleratorType": "projects/p/zones/us-central1-a/acceleratorTypes/"
                                       "nvidia-tesla-t4", "acceleratorCount": 1}]
    assert findings(
        instance(machineType="zones/us-central1-a/machineTypes/n1-standard-4",
                 guestAccelerators=accelerator),
        instance("beta.compute.instances.insert",
                 machineType="zones/us-central1-a/machineTypes/a2-highgpu-1g"),
        instance("v1.compute.instances.bulkInsert", count="25",
                 instanceProperties={"machineType": "e2-micro"})) == [
        ("gcp.unusual_instances", "medium", "nvidia-tesla-t4"),
        ("gcp.unusual_instances", "medium", "a2-highgpu-1g"),
        ("gcp.unusual_instances", "medium", "e2-micro")]


def test_ordinary_instances_group_managers_and_fleets_as_code_are_not() -> None:
    gpu = "zones/us-central1-a/machineTypes/a2-highgpu-1g"
    assert findings(instance(machineType="zones/us-central1-a/machineTypes/g1-small"),
                    instance("v1.compute.instances.bulkInsert", count=3),
                    # digits to ``str.isdigit``, not to ``int``: no count, no internal error
                    instance("v1.compute.instances.bulkInsert", count="\u00b2"),
                    instance("v1.compute.instances.bulkInsert", count="9" * 5000),
                    instance(machineType=gpu, principal="123@cloudservices.gserviceaccount.com"),
                    instance(machineType=gpu, principal="terraform")) == []


def test_packet_mirroring_created_is_high_changed_medium_as_code_nothing() -> None:
    name = "projects/p/regions/us-central1/packetMirrorings/tap"
    created = entry("v1.compute.packetMirrorings.insert", "compute.googleapis.com",
                    principal=ADMIN, resource=name)
    changed = entry("beta.compute.packetMirrorings.patch", "compute.googleapis.com",
                    principal=ADMIN, resource=name)
    as_code = entry("v1.compute.packetMirrorings.insert", "compute.googleapis.com",
                    principal=ADMIN, resource=name, requestMetadata=TERRAFORM)
    assert findings(created, changed, as_code) == [("gcp.packet_mirroring", "high", name),
                                                   ("gcp.packet_mirroring", "medium", name)]


def org_policy(method: str, constraint: str, **policy: Any) -> dict:
    resource = f"projects/corp-prod/policies/{constraint}"
    if method == "SetOrgPolicy":
        request = {"policy": {"constraint": f"constraints/{constraint}", **policy}}
    else:
        request = {"policy": {"name": resource, **policy}} if policy else {"name": resource}
    return entry(method, "orgpolicy.googleapis.com", principal=ADMIN, resource=resource,
                 request=request)


def test_guardrail_policies_turned_off_or_removed() -> None:
    v2 = "google.cloud.orgpolicy.v2.OrgPolicy."
    assert findings(
        org_policy("SetOrgPolicy", "iam.allowedPolicyMemberDomains",
                   listPolicy={"allValues": "ALLOW"}),
        org_policy(v2 + "UpdatePolicy", "storage.publicAccessPrevention",
                   spec={"rules": [{"enforce": False}]}),
        org_policy(v2 + "DeletePolicy", "iam.disableServiceAccountKeyCreation")) == [
        ("gcp.org_policy_relaxed", "high", "iam.allowedPolicyMemberDomains"),
        ("gcp.org_policy_relaxed", "medium", "storage.publicAccessPrevention"),
        ("gcp.org_policy_relaxed", "high", "iam.disableServiceAccountKeyCreation")]


def test_guardrails_enforced_other_constraints_and_policies_as_code_are_not() -> None:
    as_code = org_policy("SetOrgPolicy", "compute.requireOsLogin",
                         booleanPolicy={"enforced": False})
    as_code["protoPayload"]["requestMetadata"] = TERRAFORM
    assert findings(
        org_policy("SetOrgPolicy", "compute.requireOsLogin", booleanPolicy={"enforced": True}),
        org_policy("SetOrgPolicy", "gcp.resourceLocations", listPolicy={"allValues": "ALLOW"}),
        as_code) == []


def dns(method: str, **request: Any) -> dict:
    return entry(f"dns.policies.{method}", "dns.googleapis.com", principal=ADMIN,
                 resource="policies/dns-logging", request={"policy": "dns-logging", **request})


def test_dns_query_logging_policy_deleted_or_turned_off() -> None:
    assert findings(dns("delete"), dns("patch", policyResource={"enableLogging": False})) == [
        ("gcp.dns_logging_disabled", "medium", "dns-logging")] * 2


def test_dns_logging_turned_on_other_changes_and_as_code_are_not() -> None:
    as_code = dns("delete")
    as_code["protoPayload"]["requestMetadata"] = TERRAFORM
    assert findings(dns("patch", policyResource={"enableLogging": True}),
                    dns("update", policyResource={"description": "forwarders"}), as_code) == []


def test_new_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    positives = [
        iam(SA_RESOURCE, ("roles/iam.serviceAccountTokenCreator", ATTACKER)),
        audit_configs("REMOVE"), metadata("startup-script", "windows-keys", "ssh-keys"),
        written("HOW_TO_DECRYPT_FILES.txt"), secret("db"),
        dns("patch", policyResource={"enableLogging": False}),
        org_policy("google.cloud.orgpolicy.v2.OrgPolicy.UpdatePolicy", "sql.restrictPublicIp",
                   spec={"rules": [{"enforce": False}, {"allowAll": True}]}),
        instance("v1.compute.instances.bulkInsert", count=12, instanceProperties={
            "machineType": "a2-highgpu-1g", "guestAccelerators": [{"acceleratorType": "t4"}]})]
    count = 0
    for positive in positives:
        proto = positive["protoPayload"]
        fields = ("request", "serviceData", "resourceName", "requestMetadata")
        for changed in variants({k: v for k, v in proto.items() if k in fields}):
            assert_no_internal_error({**positive, "protoPayload": {**proto, **changed},
                                      "insertId": f"v{count}"})
            count += 1
    assert count > 100
