"""GCP technique findings added for logging, key destruction, federation and credential
rules: each on the attack entry and on the near miss automation sends every day."""

from __future__ import annotations

import orjson

from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from tests.detector.test_techniques_gcp import entry
from tests.detector.test_techniques_k8s import assert_no_internal_error, findings, gke, variants

SUBNET = "projects/corp-prod/regions/europe-west1/subnetworks/payments"
KEY = "projects/corp-prod/locations/eu/keyRings/r/cryptoKeys/data/cryptoKeyVersions/3"


def test_flow_logs_turned_off_but_not_on() -> None:
    off = entry("v1.compute.subnetworks.patch", "compute.googleapis.com", resource=SUBNET,
                request={"enableFlowLogs": False, "fingerprint": "x"})
    config_off = entry("beta.compute.subnetworks.patch", "compute.googleapis.com",
                       resource=SUBNET, request={"logConfig": {"enable": False}})
    on = entry("v1.compute.subnetworks.patch", "compute.googleapis.com", resource=SUBNET,
               request={"logConfig": {"enable": True}})
    other = entry("v1.compute.subnetworks.patch", "compute.googleapis.com", resource=SUBNET,
                  request={"privateIpGoogleAccess": True})
    assert findings(off, config_off, on, other) == [
        ("gcp.flow_logs_disabled", "medium", "payments"),
        ("gcp.flow_logs_disabled", "medium", "payments")]


def test_key_version_destroyed_is_high_disabled_medium_enabled_nothing() -> None:
    destroy = entry("DestroyCryptoKeyVersion", "cloudkms.googleapis.com", resource=KEY,
                    request={"name": KEY})

    def update(state: str) -> dict:
        return entry("UpdateCryptoKeyVersion", "cloudkms.googleapis.com", resource=KEY,
                     request={"cryptoKeyVersion": {"name": KEY, "state": state},
                              "updateMask": "state"})

    assert findings(destroy, update("DISABLED"), update("ENABLED")) == [
        ("gcp.kms_key_destroyed", "high", KEY), ("gcp.kms_key_destroyed", "medium", KEY)]


def test_federation_provider_names_what_it_trusts() -> None:
    pool = "projects/corp-prod/locations/global/workloadIdentityPools/ci"
    aws = entry("google.iam.v1.WorkloadIdentityPools.CreateWorkloadIdentityPoolProvider",
                "iam.googleapis.com", resource=pool,
                request={"parent": pool, "workloadIdentityPoolProvider": {
                    "aws": {"accountId": "123456789012"}, "disabled": False}})
    oidc = entry("google.iam.admin.v1.WorkforcePools.UpdateWorkforcePoolProvider",
                 "iam.googleapis.com", resource="locations/global/workforcePools/staff",
                 request={"workforcePoolProvider": {
                     "name": "locations/global/workforcePools/staff/providers/idp",
                     "oidc": {"issuerUri": "https://idp.example.net"}}})
    disabled = entry("google.iam.v1.WorkloadIdentityPools.UpdateWorkloadIdentityPoolProvider",
                     "iam.googleapis.com", resource=pool,
                     request={"workloadIdentityPoolProvider": {"disabled": True}})
    deleted = entry("google.iam.v1.WorkloadIdentityPools.DeleteWorkloadIdentityPoolProvider",
                    "iam.googleapis.com", resource=pool)
    assert findings(aws, oidc, disabled, deleted) == [
        ("gcp.identity_federation_changed", "medium", "AWS account 123456789012"),
        ("gcp.identity_federation_changed", "medium", "https://idp.example.net")]


def test_hmac_key_for_another_service_account_is_high() -> None:
    target = "exporter@corp-prod.iam.gserviceaccount.com"
    other = entry("storage.hmacKeys.create", "storage.googleapis.com",
                  resource="projects/_/hmacKeys/", request={"serviceAccountEmail": target})
    own = entry("storage.hmacKeys.create", "storage.googleapis.com", principal=target,
                resource="projects/_/hmacKeys/", request={"serviceAccountEmail": target})
    listed = entry("storage.hmacKeys.list", "storage.googleapis.com",
                   resource="projects/_/hmacKeys/")
    assert findings(other, own, listed) == [("gcp.hmac_key_created", "high", target),
                                            ("gcp.hmac_key_created", "medium", target)]


def test_custom_role_with_an_escalation_permission_but_not_an_ordinary_one() -> None:
    role = "projects/corp-prod/roles/deployer"

    def custom(*permissions: str, method: str = "google.iam.admin.v1.CreateRole") -> dict:
        return entry(method, "iam.googleapis.com", resource=role,
                     serviceData={"permissionDelta": {"addedPermissions": list(permissions)}})

    assert findings(custom("compute.instances.get", "iam.serviceAccounts.getAccessToken"),
                    custom("apigee.apiproducts.get", "apigee.apiproducts.create"),
                    custom("run.services.create", "iam.serviceAccounts.actAs",
                           "cloudbuild.builds.create"),
                    custom("iam.serviceAccountKeys.create",
                           method="google.iam.admin.v1.UpdateRole")) == [
        ("gcp.custom_role_escalation", "medium", role),
        ("gcp.custom_role_escalation", "medium", role)]


def test_gke_exec_gets_the_pods_exec_action_of_the_audit_log() -> None:
    record = gke("io.k8s.core.v1.pods.exec.create", "core/v1/namespaces/web/pods/p/exec",
                 principal="alice@example.com")
    [event] = parse_payload(orjson.dumps(record), origin="t", stats=RunStats(),
                            dead_letters=ListDeadLetters())
    assert event.action == "k8s:pods/exec.create"


def test_gke_request_refused_by_rbac_is_not_judged_as_done() -> None:
    body = {"spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    granted = gke("io.k8s.core.v1.services.create", "core/v1/namespaces/web/services/s",
                  principal="alice@example.com", request=body,
                  authorizationInfo=[{"granted": True,
                                      "permission": "io.k8s.core.v1.services.create"}])
    denied = gke("io.k8s.core.v1.services.create", "core/v1/namespaces/web/services/s",
                 principal="alice@example.com", request=body,
                 authorizationInfo=[{"granted": False,
                                     "permission": "io.k8s.core.v1.services.create"}])
    assert findings(granted, denied) == [("k8s.nodeport_service", "low", "web/s")]


def test_inbound_sso_profile_created_names_the_profile() -> None:
    profile = "inboundSamlSsoProfiles/03vsz0843d02br4"
    created = entry("google.admin.AdminService.inboundSsoProfileCreated", "admin.googleapis.com",
                    resource="organizations/123/inboundSsoSettings",
                    metadata={"event": [{"eventName": "INBOUND_SSO_PROFILE_CREATED",
                                         "parameter": [{"name": "INBOUND_SSO_PROFILE_NAME",
                                                        "value": profile}]}]})
    deleted = entry("google.admin.AdminService.inboundSsoProfileDeleted", "admin.googleapis.com",
                    resource="organizations/123/inboundSsoSettings")
    assert findings(created, deleted) == [
        ("gcp.identity_federation_changed", "medium", profile)]


def test_new_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    """Each new rule's positive entry with every payload field replaced in turn."""
    positives = [
        entry("v1.compute.subnetworks.patch", "compute.googleapis.com", resource=SUBNET,
              request={"enableFlowLogs": False, "logConfig": {"enable": False}}),
        entry("UpdateCryptoKeyVersion", "cloudkms.googleapis.com", resource=KEY,
              request={"cryptoKeyVersion": {"state": "DISABLED"}}),
        entry("CreateWorkloadIdentityPoolProvider", "iam.googleapis.com", request={
            "workloadIdentityPoolProvider": {"oidc": {"issuerUri": "https://i"},
                                             "aws": {"accountId": "1"}}}),
        entry("storage.hmacKeys.create", "storage.googleapis.com",
              request={"serviceAccountEmail": "a@b.iam.gserviceaccount.com"},
              response={"metadata": {"serviceAccountEmail": "a"}}),
        entry("google.iam.admin.v1.CreateRole", "iam.googleapis.com",
              serviceData={"permissionDelta": {"addedPermissions": ["iam.roles.update"]}},
              request={"role": {"includedPermissions": ["iam.roles.update"]}}),
        entry("google.admin.AdminService.inboundSsoProfileCreated", "admin.googleapis.com",
              metadata={"event": [{"parameter": [{"name": "INBOUND_SSO_PROFILE_NAME",
                                                  "value": "p"}]}]})]
    count = 0
    for positive in positives:
        proto = positive["protoPayload"]
        for changed in variants({k: v for k, v in proto.items()
                                 if k in ("request", "response", "serviceData", "metadata")}):
            assert_no_internal_error({**positive, "protoPayload": {**proto, **changed},
                                      "insertId": f"v{count}"})
            count += 1
    assert count > 100


def test_configuration_applied_as_code_is_not_a_finding() -> None:
    """Terraform's flow-log, HMAC key, CI federation and custom-role changes; the same
    entries from the console or gcloud stay findings (the tests above)."""
    agent = {"callerIp": "198.51.100.7", "callerSuppliedUserAgent":
             "Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-google/5.21.0"}
    pool = "projects/corp-prod/locations/global/workloadIdentityPools/ci"
    entries = [
        entry("v1.compute.subnetworks.patch", "compute.googleapis.com", resource=SUBNET,
              request={"enableFlowLogs": False}, requestMetadata=agent),
        entry("storage.hmacKeys.create", "storage.googleapis.com", requestMetadata=agent,
              resource="projects/_/hmacKeys/",
              request={"serviceAccountEmail": "x@corp-prod.iam.gserviceaccount.com"}),
        entry("google.iam.v1.WorkloadIdentityPools.CreateWorkloadIdentityPoolProvider",
              "iam.googleapis.com", resource=pool, requestMetadata=agent,
              request={"workloadIdentityPoolProvider": {
                  "oidc": {"issuerUri": "https://token.actions.githubusercontent.com"}}}),
        entry("google.iam.admin.v1.CreateRole", "iam.googleapis.com", requestMetadata=agent,
              serviceData={"permissionDelta": {"addedPermissions": [
                  "iam.serviceAccountKeys.create"]}})]
    assert findings(*entries) == []
    for item in entries:
        item["protoPayload"]["requestMetadata"]["callerSuppliedUserAgent"] = "google-cloud-sdk"
    assert [rule for rule, _, _ in findings(*entries)] == [
        "gcp.flow_logs_disabled", "gcp.hmac_key_created", "gcp.identity_federation_changed",
        "gcp.custom_role_escalation"]


def test_deployment_manager_deployment_acts_with_editor() -> None:
    name = "projects/corp-prod/global/deployments/vm-stack"
    insert = entry("v2.deploymentmanager.deployments.insert", "deploymentmanager.googleapis.com",
                   resource=name)
    update = entry("v2.deploymentmanager.deployments.update", "deploymentmanager.googleapis.com",
                   resource=name)
    read = entry("v2.deploymentmanager.deployments.get", "deploymentmanager.googleapis.com",
                 resource=name)
    refused = entry("v2.deploymentmanager.deployments.insert",
                    "deploymentmanager.googleapis.com", resource=name, code=7)
    assert findings(insert, update, read, refused) == [
        ("gcp.deployment_manager_used", "medium", "vm-stack"),
        ("gcp.deployment_manager_used", "medium", "vm-stack")]
