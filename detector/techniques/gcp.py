"""GCP Cloud Audit Log techniques whose own request carries the evidence.

``rule_for(method)`` picks the check for a ``methodName`` once; ``detector.sources.gcp``
caches the answer with the method's other facts, so entries of methods no check knows pay
nothing more. A rule takes a successful entry's ``protoPayload`` and the caller's e-mail. Keys are
read in both spellings (``serviceData`` and Panther's lower-cased ``servicedata``).

Deleting or updating a log sink is not checked here: the sensitivity catalogue already
alerts every ``DeleteSink`` and ``UpdateSink`` while the identity learns (its
``logging_tampering`` category), and a second alert for the same call would be noise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from detector.techniques import Finding, Tally, ransom_note

_PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
# Invoker roles exist to publish a service: allUsers there is the product, not exposure.
_PUBLISHING_ROLES = frozenset({"roles/run.invoker", "roles/cloudfunctions.invoker"})
_ADMIN_ROLES = frozenset({"roles/owner", "roles/editor"})
_CONSUMER_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_WORLD = frozenset({"0.0.0.0/0", "::/0"})
_ADMIN_PORTS = (22, 3389)
_SSH_KEYS = frozenset({"ssh-keys", "sshKeys"})
# Metadata keys the guest agent runs as root at every boot, and the one through which it
# creates or resets a Windows account (``gcloud compute reset-windows-password``).
_BOOT_SCRIPTS = frozenset({"startup-script", "startup-script-url", "windows-startup-script-ps1",
                           "windows-startup-script-cmd", "windows-startup-script-bat",
                           "windows-startup-script-url", "sysprep-specialize-script-ps1",
                           "sysprep-specialize-script-cmd", "sysprep-specialize-script-url"})
_WINDOWS_KEYS = "windows-keys"
# Roles that let their holder act as a service account (mint its tokens, sign as it, attach
# it, create its keys), and resources whose sharing hands over data: disks, snapshots and
# images copy whole machines into the holder's own project.
_IMPERSONATION_ROLES = frozenset({
    "roles/iam.serviceAccountTokenCreator", "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountKeyAdmin", "roles/iam.workloadIdentityUser",
    "roles/iam.serviceAccountOpenIdTokenCreator"})
# Machine families built around GPUs (A2, A3, A4 and G2 carry their accelerators; the
# shared-core g1-small is not one).
_GPU_MACHINES = re.compile(r"^(a[2-9]|g[2-9])\d*-[a-z0-9-]+$")
_MANY_INSTANCES = 10
# Organisation policy constraints that guard against the techniques above: sharing outside
# the organisation's domains, service-account keys, public buckets and databases, serial
# consoles, external addresses, federation from anywhere. Turning one off (or removing it)
# reopens the door it closed.
_GUARDRAILS = frozenset({
    "iam.allowedPolicyMemberDomains", "iam.disableServiceAccountKeyCreation",
    "iam.disableServiceAccountKeyUpload", "iam.automaticIamGrantsForDefaultServiceAccounts",
    "iam.workloadIdentityPoolProviders", "iam.workloadIdentityPoolAwsAccounts",
    "storage.publicAccessPrevention", "storage.uniformBucketLevelAccess",
    "compute.requireOsLogin", "compute.vmExternalIpAccess", "compute.disableSerialPortAccess",
    "compute.restrictVpcPeering", "sql.restrictPublicIp", "sql.restrictAuthorizedNetworks",
    "essentialcontacts.allowedContactDomains"})
_DATA_RESOURCES = ("/disks/", "/snapshots/", "/images/", "/machineImages/", "/buckets/",
                   "/serviceAccounts/", "/secrets/", "/datasets/")
# Permissions that reach beyond the role itself: credentials of a service account, keys,
# and the power to change IAM policies or roles. ``iam.serviceAccounts.actAs`` and
# ``cloudbuild.builds.create`` are left out: every custom deployer role holds them (a
# deploy attaches a service account to what it creates, a pipeline starts builds), so on
# their own they would name every CI role an organisation writes.
_ESCALATION_PERMISSIONS = frozenset({
    "iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.getOpenIdToken",
    "iam.serviceAccounts.signBlob", "iam.serviceAccounts.signJwt",
    "iam.serviceAccounts.implicitDelegation",
    "iam.serviceAccounts.setIamPolicy", "iam.serviceAccountKeys.create",
    "iam.roles.create", "iam.roles.update", "storage.hmacKeys.create",
    "resourcemanager.projects.setIamPolicy", "resourcemanager.folders.setIamPolicy",
    "resourcemanager.organizations.setIamPolicy", "deploymentmanager.deployments.create",
    "orgpolicy.policy.set",
})
# User agents of infrastructure-as-code clients (Terraform's Google provider sends
# ``Terraform/<v> (+https://www.terraform.io) terraform-provider-google/<v>``).
_DEPLOY_AGENTS = ("terraform", "hashicorp", "pulumi")
# BigQuery statements that remove a table or a dataset, or every row of a table; a DELETE
# counts when its WHERE is missing or always true (``WHERE true``, ``WHERE 1=1``).
_DESTRUCTIVE_STATEMENTS = frozenset({"DROP_TABLE", "DROP_SCHEMA", "TRUNCATE_TABLE",
                                     "DROP_SNAPSHOT_TABLE", "DROP_MATERIALIZED_VIEW"})
_DELETE_ALL = re.compile(
    r"^\s*delete\s+(from\s+)?[`\w.-]+\s*(;|$|where\s+(true|1\s*=\s*1)\s*(;|$))",
    re.IGNORECASE)
# The table a destructive statement names, when the job has no destination table.
_TARGET = re.compile(r"^\s*(drop\s+(snapshot\s+table|materialized\s+view|table|schema)"
                     r"(\s+if\s+exists)?|truncate\s+table|delete(\s+from)?)\s+([`\w.-]+)",
                     re.IGNORECASE)
# Export destinations outside Google Cloud (BigQuery Omni writes to S3 and Azure storage).
_OUTSIDE_URI = re.compile(r"(s3|azure|https?)://[^\s'\"]+", re.IGNORECASE)
# Names of scratch tables and objects: pipelines drop, empty and delete them by design
# (``tmp/``, ``_temporary/`` of Spark, ``staging``, dbt's ``__dbt_tmp`` suffix).
_SCRATCH = re.compile(r"(^|[/._-])(te?mp|temporary|staging|scratch)([/._-]|$)")
_BULK_DELETES = 50  # distinct objects one identity deletes in the burst window
_BULK_DROPS = 5  # distinct tables one identity drops or empties in the burst window
# Exclusion filters that drop the audit trail itself, or everything.
_AUDIT_MARKS = ("cloudaudit", "AuditLog", "activity", "data_access")


def as_dict(value: Any) -> dict[str, Any]:
    """The value when it is a dict, else an empty dict."""
    return value if isinstance(value, dict) else {}


def get(data: dict[str, Any], key: str) -> Any:
    """``data[key]`` or its lower-cased twin (Panther lake normalisation)."""
    value = data.get(key)
    return data.get(key.lower()) if value is None else value


Rule = Callable[[dict[str, Any], str], list[Finding]]


def rule_for(method: str) -> Rule | None:
    """The check for entries of ``method`` (``methodName``), or None for most methods."""
    last = method.rpartition(".")[2]
    if last in ("SetIamPolicy", "setIamPolicy", "setIamPermissions", "SetIAMPolicy"):
        return _iam_policy
    if last == "InsertProjectOwnershipInvite":
        return _ownership_invite
    if last == "CreateServiceAccountKey":
        return _service_account_key
    if last in ("GenerateAccessToken", "GenerateIdToken", "SignBlob", "SignJwt"):
        return _impersonation
    if last in ("CreateExclusion", "UpdateExclusion"):
        return _exclusion
    if ".firewalls." in method and last in ("insert", "patch", "update"):
        return _firewall
    if last in ("setMetadata", "setCommonInstanceMetadata"):
        return _metadata
    if method == "storage.objects.create":
        return _object_written
    if last == "AccessSecretVersion":
        return _secret_read
    if ".deploymentmanager.deployments." in method and last in ("insert", "update", "patch"):
        return _deployment_manager
    if ".instances." in method and last in ("insert", "bulkInsert"):
        return _instances
    if ".packetMirrorings." in method and last in ("insert", "patch"):
        return _packet_mirroring
    if method.startswith("dns.policies.") and last in ("delete", "patch", "update"):
        return _dns_policy
    if last in ("InsertJob", "jobcompleted"):
        return _bigquery_job
    if last == "MoveProject":
        return _project_moved
    if method == "storage.objects.delete":
        return _object_deleted
    return _RULES.get(last) or (_flow_logs if ".subnetworks." in method
                                and last in ("patch", "update") else
                                _hmac_key if ".hmacKeys." in method and last == "create"
                                else None)


def _iam_policy(payload: dict[str, Any], principal: str) -> list[Finding]:
    resource = _text(get(payload, "resourceName")) or "(unnamed resource)"
    storage = get(payload, "serviceName") == "storage.googleapis.com" or "/buckets/" in resource
    found: list[Finding] = []
    public = [(role, member) for role, member in _added(payload)
              if member in _PUBLIC_MEMBERS and role not in _PUBLISHING_ROLES]
    if public:
        role, member = public[0]
        found.append(Finding(
            "gcp.public_iam_binding", "critical" if storage else "high",
            ("T1098.003", "T1530") if storage else ("T1098.003",),
            f"{resource} grants {role} to {member}: anyone"
            + (" on the internet" if member == "allUsers" else " with a Google account"),
            member))
    for role, member in _added(payload):
        if role in _ADMIN_ROLES and _outsider(member, principal):
            found.append(_outsider_finding(resource, role, member))
            break
    else:
        found.extend(_consumer_grant(payload, resource, principal)
                     or _workload_admin_grant(payload, resource, principal))
    found.extend(_audit_logs_removed(payload, resource))
    return found


def _workload_admin_grant(payload: dict[str, Any], resource: str,
                          principal: str) -> list[Finding]:
    """Owner or editor granted by a service account: a workload widening access on its
    own (to itself: escalation; to another member: a foothold that outlives the caller's
    key). People grant these in the console as part of their work; a pipeline that
    manages IAM (a Terraform runner) does too, which is why it is medium, and high only
    when the service account grants it to itself. The finding names the role and the
    member, which the behavioural signals of the same call cannot."""
    if not principal.endswith(".gserviceaccount.com"):
        return []
    for role, member in _added(payload):
        if role not in _ADMIN_ROLES:
            continue
        own = member.partition(":")[2].lower() == principal.lower()
        return [Finding("gcp.admin_role_by_workload", "high" if own else "medium",
                        ("T1098.003",),
                        f"{resource} grants {role} to "
                        + ("the calling service account itself" if own else member)
                        + " (granted by a service account)",
                        member.partition(":")[2][:256] or member[:256])]
    return []


def _consumer_grant(payload: dict[str, Any], resource: str, principal: str) -> list[Finding]:
    """A role of any kind granted to a personal Google account (gmail.com) by a caller who
    is not one: the account answers to no one in the organisation, and a disk, snapshot,
    image, bucket or service account shared with it leaves with its owner (Stratus Red
    Team's disk, image and bucket sharing and its service-account backdoor all grant to
    such an account). Organisations that run on personal accounts are told apart by the
    caller's own address."""
    caller = principal.rpartition("@")[2].lower()
    if caller in _CONSUMER_DOMAINS:
        return []
    for role, member in _added(payload):
        kind, _, address = member.partition(":")
        if kind not in ("user", "group") or \
                address.rpartition("@")[2].lower() not in _CONSUMER_DOMAINS:
            continue
        data = any(mark in resource for mark in _DATA_RESOURCES)
        severe = data or role in _IMPERSONATION_ROLES
        what = "a personal Google account outside the organisation" + (
            ": what it can read leaves with it" if data else
            ": it can act as the service account" if severe else "")
        return [Finding("gcp.consumer_account_grant", "high" if severe else "medium",
                        ("T1098.003", "T1537") if data else ("T1098.003",),
                        f"{resource} grants {role} to {address[:128]}, {what}",
                        address[:256])]
    return []


def _audit_logs_removed(payload: dict[str, Any], resource: str) -> list[Finding]:
    """Data Access audit logging turned off for a service, or for one principal: the
    policy change removes one of its ``auditConfigs`` log types, or adds an exempted
    member, after which that service's (or that member's) reads leave no record. Removing
    an exemption logs more and is not judged; audit settings applied as code are left to
    the behavioural models, as flow logs are."""
    deltas = as_dict(as_dict(get(payload, "serviceData")).get("policyDelta")).get(
        "auditConfigDeltas")
    if not isinstance(deltas, list) or _as_code(payload):
        return []
    deltas = [as_dict(d) for d in deltas[:100]]
    removed = [d for d in deltas if d.get("action") == "REMOVE" and not d.get("exemptedMember")]
    exempted = [d for d in deltas if d.get("action") == "ADD" and d.get("exemptedMember")]
    if not removed and not exempted:
        return []
    changed = removed or exempted
    services = list(dict.fromkeys(_text(d.get("service")) or "a service" for d in changed))
    kinds = list(dict.fromkeys(_text(d.get("logType")) for d in changed if d.get("logType")))
    shown = ", ".join(services[:3]) + (f" ({', '.join(kinds[:3])})" if kinds else "")
    if removed:
        return [Finding("gcp.audit_logs_disabled", "high", ("T1562.008",),
                        f"{resource} stops audit logging of {shown}", services[0][:256])]
    member = _text(exempted[0].get("exemptedMember"))
    return [Finding("gcp.audit_logs_disabled", "high", ("T1562.008",),
                    f"{resource} exempts {member[:128]} from audit logging of {shown}",
                    member[:256])]


def _added(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, member) pairs the call adds: the audit delta when logged, else every binding
    of the policy the request sets."""
    deltas = as_dict(as_dict(get(payload, "serviceData")).get("policyDelta")).get(
        "bindingDeltas")
    if not isinstance(deltas, list):
        deltas = as_dict(as_dict(get(payload, "metadata")).get("policyDelta")).get(
            "bindingDeltas")
    pairs: list[tuple[str, str]] = []
    if isinstance(deltas, list):
        for delta in deltas[:200]:
            delta = as_dict(delta)
            role, member = delta.get("role"), delta.get("member")
            if delta.get("action") == "ADD" and isinstance(role, str) \
                    and isinstance(member, str):
                pairs.append((role, member))
        return pairs
    bindings = as_dict(as_dict(get(payload, "request")).get("policy")).get("bindings")
    for binding in bindings[:200] if isinstance(bindings, list) else ():
        binding = as_dict(binding)
        role, members = binding.get("role"), binding.get("members")
        if isinstance(role, str) and isinstance(members, list):
            pairs.extend((role, m) for m in members[:200] if isinstance(m, str))
    return pairs


def _outsider(member: str, principal: str) -> bool:
    """A person or group from a consumer domain, or from another domain than the caller's
    when the caller is a person (a service account's own domain says nothing)."""
    kind, _, address = member.partition(":")
    if kind not in ("user", "group") or "@" not in address:
        return False
    domain = address.rpartition("@")[2].lower()
    if domain in _CONSUMER_DOMAINS:
        return True
    caller = principal.rpartition("@")[2].lower() if "@" in principal else ""
    return bool(caller) and not caller.endswith("gserviceaccount.com") and domain != caller


def _outsider_finding(resource: str, role: str, member: str) -> Finding:
    return Finding("gcp.admin_grant_external", "high", ("T1098.003",),
                   f"{resource} grants {role} to {member}, outside the organisation's domain",
                   member.partition(":")[2][:256])


def _ownership_invite(payload: dict[str, Any], principal: str) -> list[Finding]:
    member = as_dict(get(payload, "request")).get("member")
    if not isinstance(member, str) or not _outsider(member, principal):
        return []
    resource = _text(get(payload, "resourceName")) or "(project)"
    return [_outsider_finding(resource, "roles/owner (invitation)", member)]


def _service_account_key(payload: dict[str, Any], principal: str) -> list[Finding]:
    target = _account_email(payload)
    other = principal.endswith("gserviceaccount.com") and target is not None \
        and target != principal
    shown = target or _text(get(payload, "resourceName")) or "a service account"
    if other:
        return [Finding("gcp.service_account_key", "high", ("T1098.001",),
                        f"service account {principal} created a key for another service "
                        f"account, {shown}", shown)]
    return [Finding("gcp.service_account_key", "medium", ("T1098.001",),
                    f"user-managed key created for {shown}: a long-lived credential",
                    shown)]


def _account_email(payload: dict[str, Any]) -> str | None:
    """The service account acted on, by e-mail, from the response, request or resource
    name (``projects/p/serviceAccounts/<email>[/keys/...]``); None when only a numeric id."""
    for name in (as_dict(get(payload, "response")).get("name"),
                 as_dict(get(payload, "request")).get("name"), get(payload, "resourceName")):
        if isinstance(name, str) and "/serviceAccounts/" in name:
            email = name.split("/serviceAccounts/", 1)[1].partition("/")[0]
            if "@" in email:
                return email[:256]
    return None


def _impersonation(payload: dict[str, Any], principal: str) -> list[Finding]:
    target = _account_email(payload)
    if target is None or target == principal or principal == "gcp-system" \
            or principal.startswith("principal") or ".svc.id.goog[" in principal:
        return []  # federation and GKE workload identity reach Google only this way
    method = _text(get(payload, "methodName")).rpartition(".")[2]
    return [Finding("gcp.service_account_impersonation", "medium", ("T1548.005",),
                    f"{principal} called {method} as service account {target}", target)]


def _exclusion(payload: dict[str, Any], principal: str) -> list[Finding]:
    exclusion = as_dict(as_dict(get(payload, "request")).get("exclusion"))
    if exclusion.get("disabled") is True:
        return []
    text = exclusion.get("filter")
    if not isinstance(text, str):
        return []
    blanket = text.strip() in ("", "*")
    if not blanket and not any(mark.lower() in text.lower() for mark in _AUDIT_MARKS):
        return []
    name = _text(exclusion.get("name")) or _text(get(payload, "resourceName")) or "(unnamed)"
    what = "every log entry" if blanket else "audit log entries"
    return [Finding("gcp.log_exclusion", "high", ("T1562.008",),
                    f"log exclusion {name} drops {what} (filter {text[:120]!r})", name)]


def _firewall(payload: dict[str, Any], principal: str) -> list[Finding]:
    request = as_dict(get(payload, "request"))
    if request.get("disabled") is True or request.get("direction") == "EGRESS":
        return []
    sources = request.get("sourceRanges")
    if not isinstance(sources, list) or not _WORLD.intersection(
            s for s in sources if isinstance(s, str)):
        return []
    allowed = request.get("alloweds", request.get("allowed"))
    name = _text(get(payload, "resourceName")).rpartition("/")[2] or "(unnamed)"
    if not isinstance(allowed, list):
        if "alloweds" in request or "allowed" in request or "denieds" in request \
                or "denied" in request:
            return []  # a deny rule, or an allow list we cannot read
        return [Finding("gcp.firewall_open_to_world", "medium", ("T1562.007",),
                        f"firewall rule {name} now admits 0.0.0.0/0 to its ports", name)]
    exposed = _exposed(allowed)
    if exposed is None:
        return []
    severity = "high" if exposed == "all ports" else "medium"
    return [Finding("gcp.firewall_open_to_world", severity, ("T1562.007",),
                    f"firewall rule {name} admits 0.0.0.0/0 to {exposed}", name)]


def _exposed(allowed: list[Any]) -> str | None:
    """``all ports``, ``port 22`` / ``port 3389``, or None when no admin port is opened."""
    hit: str | None = None
    for item in allowed[:100]:
        item = as_dict(item)
        protocol = str(item.get("IPProtocol", item.get("ipProtocol", ""))).lower()
        ports = item.get("ports")
        if protocol == "all" or (protocol in ("tcp", "udp", "6", "17")
                                 and not ports):
            return "all ports"
        if protocol not in ("tcp", "6") or not isinstance(ports, list):
            continue
        for port in ports[:100]:
            low, _, high = str(port).partition("-")
            try:
                first, last = int(low), int(high or low)
            except ValueError:
                continue
            if first <= 1 and last >= 65535:
                return "all ports"
            for admin in _ADMIN_PORTS:
                if first <= admin <= last:
                    hit = hit or f"port {admin}"
    return hit


def _metadata(payload: dict[str, Any], principal: str) -> list[Finding]:
    """Instance or project metadata set with a key the guest agent acts on: SSH keys (a
    login for whoever holds the private key), a boot script (code run as root at the next
    start, under the instance's service account), or ``windows-keys`` (a Windows account
    created or its password reset). Scripts and keys applied as code, and Google's own
    service agents, are not judged."""
    keys: set[str] = set()
    metadata = as_dict(get(payload, "metadata"))
    for delta in ("instanceMetadataDelta", "projectMetadataDelta"):
        change = as_dict(metadata.get(delta))
        for field in ("addedMetadataKeys", "modifiedMetadataKeys"):
            names = change.get(field)
            if isinstance(names, list):
                keys.update(n for n in names[:200] if isinstance(n, str))
    request = as_dict(get(payload, "request"))
    items = request.get("items")
    if not isinstance(items, list):
        items = as_dict(request.get("metadata")).get("items")
    for item in items[:200] if isinstance(items, list) else ():
        key = as_dict(item).get("key")
        if isinstance(key, str):
            keys.add(key)
    target = _text(get(payload, "resourceName")) or "(instance)"
    scope = "every instance of the project" if "CommonInstance" in _text(
        get(payload, "methodName")) else target
    found: list[Finding] = []
    if keys & _SSH_KEYS:
        found.append(Finding("gcp.ssh_key_metadata", "medium", ("T1098.004",),
                             f"SSH keys added through metadata for {scope}", target))
    if _google_agent(principal) or _as_code(payload):
        return found
    scripts = sorted(keys & _BOOT_SCRIPTS)
    if scripts:
        found.append(Finding("gcp.boot_script_metadata", "medium", ("T1037", "T1098"),
                             f"boot script {', '.join(scripts[:3])} set through metadata for "
                             f"{scope}: it runs as root at the next start", scripts[0]))
    if _WINDOWS_KEYS in keys:
        found.append(Finding("gcp.windows_account_metadata", "medium", ("T1098",),
                             f"Windows account created or its password reset through "
                             f"metadata on {scope}", target))
    return found


def _google_agent(principal: str) -> bool:
    """Google-managed service agents (``service-<number>@...``, the Google APIs agent
    ``<number>@cloudservices``): Google's own machinery acting on the project."""
    return principal.endswith("gserviceaccount.com") and (
        principal.startswith("service-") or "@cloudservices." in principal)


def _object_written(payload: dict[str, Any], principal: str) -> list[Finding]:
    """An object written with a ransom note's name (HOW_TO_DECRYPT_FILES.txt): the last
    step of an extortion that emptied or encrypted the bucket (Data Access log)."""
    resource = _text(get(payload, "resourceName"))
    bucket, _, name = resource.partition("/buckets/")[2].partition("/objects/")
    if not name or not ransom_note(name):
        return []
    return [Finding("gcp.gcs_ransom_note", "high", ("T1486", "T1485"),
                    f"object {bucket}/{name[:160]} named like a ransom note", name[:256])]


def _secret_read(payload: dict[str, Any], principal: str) -> list[Any]:
    """One Secret Manager secret read toward ``gcp.secrets_burst``: an application reads
    its few secrets, a stolen credential reads all it can. A refresh applied as code reads
    every secret it manages and is left out."""
    name = _text(get(payload, "resourceName")) or _text(
        as_dict(get(payload, "request")).get("name"))
    if "/secrets/" not in name or _as_code(payload):
        return []
    secret = name.partition("/versions/")[0]
    return [Tally("gcp.secrets_burst", "medium", ("T1555.006",), "secrets", (secret[:256],))]


def _object_deleted(payload: dict[str, Any], principal: str) -> list[Any]:
    """One object deleted toward ``gcp.gcs_bulk_delete``: the engine counts each
    identity's distinct deleted objects apart, so a bucket emptied by one credential shows
    however many other identities also delete. Scratch space (temporary and staging
    prefixes of pipelines, Spark's ``_temporary``) is emptied by design and does not
    count, nor do deletions as code (a Terraform destroy) or by Google's service agents.
    Lifecycle rules delete without an audit entry of a principal."""
    resource = _text(get(payload, "resourceName"))
    bucket, _, name = resource.partition("/buckets/")[2].partition("/objects/")
    if not name or _SCRATCH.search(name.lower()) or _google_agent(principal) \
            or _as_code(payload):
        return []
    return [Tally("gcp.gcs_bulk_delete", "medium", ("T1485",), "objects deleted",
                  (f"{bucket}/{name}"[:256],), limit=_BULK_DELETES)]


def _bigquery_job(payload: dict[str, Any], principal: str) -> list[Any]:
    """A finished BigQuery job judged by what it did (the completion entry only, so one job
    is judged once): a statement that drops or empties a table counts toward
    ``gcp.bigquery_destruction`` (DROP TABLE or SCHEMA, TRUNCATE, DELETE without a WHERE
    or with an always-true one); a copy whose destination lies in another project than its
    sources, or an export to a store outside Google Cloud, is ``gcp.bigquery_exfiltration``.
    Read from both the BigQueryAuditMetadata (``InsertJob`` with ``jobChange``) and the
    legacy AuditData (``jobservice.jobcompleted``) forms. Scratch tables (dbt's
    ``__dbt_tmp``, staging and temporary names) are dropped and emptied by every pipeline
    and do not count; Google's service agents (Data Transfer Service) and jobs run as code
    are not judged."""
    job = _finished_job(payload)
    if job is None or _google_agent(principal) or _as_code(payload):
        return []
    kind, config, project = job
    if kind == "query":
        statement = _text(config.get("statementType")).upper()
        query = _text(config.get("query"))[:4096]
        target = _TARGET.search(query)
        table = _table_name(config.get("destinationTable")) or (
            target.group(5).strip("`") if target else "")
        if not statement and target:  # legacy entries may lack the statement type
            statement = "DELETE" if target.group(1).lower().startswith("delete") \
                else "DROP_TABLE"
        if statement in _DESTRUCTIVE_STATEMENTS or (
                statement == "DELETE" and _DELETE_ALL.search(query)):
            if not table or _SCRATCH.search(table.lower()):
                return []
            return [Tally("gcp.bigquery_destruction", "high", ("T1485",),
                          "tables dropped or emptied", (table[:256],), limit=_BULK_DROPS)]
        outside = _OUTSIDE_URI.search(query) if statement == "EXPORT_DATA" else None
        if outside:
            return [_exfiltration(f"query {statement} exports to {outside.group(0)[:160]}, "
                                  "outside Google Cloud", outside.group(0))]
        return []
    if kind == "extract":
        uris = config.get("destinationUris")
        for uri in uris[:50] if isinstance(uris, list) else ():
            if isinstance(uri, str) and _OUTSIDE_URI.match(uri):
                return [_exfiltration(f"table {_table_name(config.get('sourceTable'))[:160]} "
                                      f"extracted to {uri[:160]}, outside Google Cloud", uri)]
        return []
    destination = _table_name(config.get("destinationTable"))
    sources = config.get("sourceTables")
    names = [_table_name(t) for t in (sources[:50] if isinstance(sources, list) else ())]
    target = _project_of(destination)
    foreign = [n for n in names if n and target and _project_of(n) != target]
    if not foreign:
        return []
    return [_exfiltration(f"table {foreign[0][:160]} copied to {destination[:160]}, in "
                          f"another project than its source (job of {project or 'a project'})",
                          target)]


def _project_moved(payload: dict[str, Any], principal: str) -> list[Finding]:
    """A project moved straight under an organisation node (``MoveProject`` with a
    ``destinationParent`` of ``organizations/<id>``): when that is another organisation
    than its own, the old one's policies, aggregated log sinks and IAM stop applying and
    the new owner's start (Stratus Red Team's project removal). Moves between folders
    are the organisation reorganising itself and are not judged; moves as code are
    reviewed."""
    request = as_dict(get(payload, "request"))
    target = _text(request.get("destinationParent")) or _text(request.get("destination_parent"))
    if not target.startswith("organizations/") or _as_code(payload):
        return []
    project = _text(request.get("name")) or _text(get(payload, "resourceName")) or "(project)"
    return [Finding("gcp.project_moved", "high", ("T1666", "T1562.001"),
                    f"{project[:160]} moved under {target[:64]}: if that is not its own "
                    "organisation, the guardrails, log sinks and IAM of its own stop applying",
                    target[:256])]


def _exfiltration(sentence: str, value: str) -> Finding:
    return Finding("gcp.bigquery_exfiltration", "medium", ("T1537", "T1530"),
                   sentence, value[:256])


def _finished_job(payload: dict[str, Any]) -> tuple[str, dict[str, Any], str] | None:
    """``(kind, config, project)`` of a job that completed without error, kind one of
    query, extract, copy; None for any other entry (an insertion, a running job, a job
    that failed, a load)."""
    change = as_dict(as_dict(get(payload, "metadata")).get("jobChange"))
    if change:
        job = as_dict(change.get("job"))
        status = as_dict(job.get("jobStatus"))
        if change.get("after") != "DONE" or status.get("errorResult") \
                or status.get("jobState", "DONE") != "DONE":
            return None
        config = as_dict(job.get("jobConfig"))
        project = _text(job.get("jobName")).partition("projects/")[2].partition("/")[0]
        for key, kind in (("queryConfig", "query"), ("extractConfig", "extract"),
                          ("tableCopyConfig", "copy"), ("copyConfig", "copy")):
            if isinstance(config.get(key), dict):
                return kind, config[key], project
        return None
    event = as_dict(as_dict(get(payload, "serviceData")).get("jobCompletedEvent"))
    job = as_dict(event.get("job"))
    error = as_dict(as_dict(job.get("jobStatus")).get("error"))
    if not job or error.get("code") or error.get("message"):
        return None
    config = as_dict(job.get("jobConfiguration"))
    project = _text(as_dict(job.get("jobName")).get("projectId"))
    for key, kind in (("query", "query"), ("extract", "extract"), ("tableCopy", "copy")):
        if isinstance(config.get(key), dict):
            return kind, config[key], project
    return None


def _table_name(value: Any) -> str:
    """``projects/<p>/datasets/<d>/tables/<t>`` from the path form or the legacy
    ``{projectId, datasetId, tableId}`` form; "" when neither."""
    if isinstance(value, str):
        return value[:512]
    table = as_dict(value)
    parts = [_text(table.get(key)) for key in ("projectId", "datasetId", "tableId")]
    return f"projects/{parts[0]}/datasets/{parts[1]}/tables/{parts[2]}" if all(parts) else ""


def _project_of(table: str) -> str:
    return table.partition("projects/")[2].partition("/")[0]


def _as_code(payload: dict[str, Any]) -> bool:
    """Whether an infrastructure-as-code client sent the entry. Flow-log settings, HMAC
    keys for pipelines, federation providers for CI and custom roles are configuration
    that teams apply as code, reviewed before it runs; the rules for them skip such
    entries, as the AWS rules skip account wiring done as code."""
    agent = get(as_dict(get(payload, "requestMetadata")), "callerSuppliedUserAgent")
    return isinstance(agent, str) and any(mark in agent[:512].lower()
                                          for mark in _DEPLOY_AGENTS)


def _flow_logs(payload: dict[str, Any], principal: str) -> list[Finding]:
    """A subnetwork patched with its VPC flow logs off (``enableFlowLogs`` false or
    ``logConfig.enable`` false): the network's connection record stops."""
    request = as_dict(get(payload, "request"))
    if (request.get("enableFlowLogs") is not False
            and as_dict(request.get("logConfig")).get("enable") is not False) \
            or _as_code(payload):
        return []
    name = _text(get(payload, "resourceName")).rpartition("/")[2] or "(subnetwork)"
    return [Finding("gcp.flow_logs_disabled", "medium", ("T1562.008",),
                    f"VPC flow logs turned off on subnetwork {name}", name)]


def _dns_policy(payload: dict[str, Any], principal: str) -> list[Finding]:
    """A Cloud DNS server policy deleted, or changed with its query logging off: the
    networks it covered stop recording which names their machines resolve, which is how
    command-and-control and exfiltration domains show. Changes applied as code are left
    out, as flow-log changes are."""
    if _as_code(payload):
        return []
    request = as_dict(get(payload, "request"))
    name = _text(request.get("policy")) or _text(get(payload, "resourceName")) or "(policy)"
    if _text(get(payload, "methodName")).endswith("delete"):
        return [Finding("gcp.dns_logging_disabled", "medium", ("T1562.008",),
                        f"Cloud DNS policy {name[:160]} deleted: the query logging it "
                        "enabled, if any, stops", name[:256])]
    body = as_dict(request.get("policyResource")) or as_dict(request.get("policy"))
    if body.get("enableLogging") is not False:
        return []
    return [Finding("gcp.dns_logging_disabled", "medium", ("T1562.008",),
                    f"Cloud DNS query logging turned off in policy {name[:160]}", name[:256])]


def _kms_key_version(payload: dict[str, Any], principal: str) -> list[Finding]:
    """A key version destroyed (after the scheduled delay, what it encrypted is unreadable
    for good: destruction, or ransom when the data was re-encrypted elsewhere) or disabled
    (unreadable until re-enabled)."""
    name = _text(get(payload, "resourceName")) or "(key version)"
    method = _text(get(payload, "methodName")).rpartition(".")[2]
    if method == "DestroyCryptoKeyVersion":
        return [Finding("gcp.kms_key_destroyed", "high", ("T1485",),
                        f"KMS key version {name} scheduled for destruction: data encrypted "
                        "with it becomes unreadable", name)]
    version = as_dict(as_dict(get(payload, "request")).get("cryptoKeyVersion"))
    if version.get("state") != "DISABLED":
        return []
    return [Finding("gcp.kms_key_destroyed", "medium", ("T1485",),
                    f"KMS key version {name} disabled: data encrypted with it is unreadable "
                    "until it is enabled again", name)]


def _federation(payload: dict[str, Any], principal: str) -> list[Finding]:
    """A workload or workforce identity provider created or changed: tokens of an outside
    issuer (an OIDC or SAML provider, an AWS account) now sign in to Google Cloud as the
    pool's principals. What it trusts is named when the request shows it."""
    request = as_dict(get(payload, "request"))
    provider = as_dict(request.get("workloadIdentityPoolProvider")
                       or request.get("workforcePoolProvider"))
    if provider.get("disabled") is True or _as_code(payload):
        return []
    oidc, saml = as_dict(provider.get("oidc")), as_dict(provider.get("saml"))
    aws = as_dict(provider.get("aws"))
    trusted = _text(oidc.get("issuerUri")) or (
        f"AWS account {_text(aws.get('accountId'))}" if aws.get("accountId") else "") or (
        "a SAML identity provider" if saml else "")
    name = _text(provider.get("name")) or _text(request.get("parent")) \
        or _text(get(payload, "resourceName")) or "(provider)"
    method = _text(get(payload, "methodName")).rpartition(".")[2]
    verb = "created" if method.startswith("Create") else "changed"
    shown = f", trusting {trusted[:160]}" if trusted else ""
    return [Finding("gcp.identity_federation_changed", "medium", ("T1484.002", "T1098.001"),
                    f"identity federation provider {name[:200]} {verb}{shown}",
                    trusted[:256] or name[:256])]


def _hmac_key(payload: dict[str, Any], principal: str) -> list[Finding]:
    """An HMAC key for a service account: a long-lived secret for Cloud Storage's
    S3-compatible API, outside the service-account key inventory."""
    if _as_code(payload):
        return []
    request, response = as_dict(get(payload, "request")), as_dict(get(payload, "response"))
    target = _text(request.get("serviceAccountEmail")) or _text(
        as_dict(response.get("metadata")).get("serviceAccountEmail")) or _text(
        response.get("serviceAccountEmail")) or "a service account"
    other = principal.endswith("gserviceaccount.com") and "@" in target and target != principal
    return [Finding("gcp.hmac_key_created", "high" if other else "medium", ("T1098.001",),
                    f"HMAC key created for {target}: a long-lived key for the storage API"
                    + (f", by another service account, {principal}" if other else ""),
                    target)]


def _custom_role(payload: dict[str, Any], principal: str) -> list[Finding]:
    """A custom role created or updated with a permission that leads to more: minting
    credentials of, or acting as, a service account, or changing who may do what."""
    added = as_dict(as_dict(get(payload, "serviceData")).get("permissionDelta")).get(
        "addedPermissions")
    if not isinstance(added, list):
        role = as_dict(as_dict(get(payload, "request")).get("role"))
        added = role.get("includedPermissions", role.get("included_permissions"))
    if not isinstance(added, list):
        return []
    risky = [p for p in added[:3000] if isinstance(p, str) and p in _ESCALATION_PERMISSIONS]
    if not risky or _as_code(payload):
        return []
    name = _text(get(payload, "resourceName")) or "(custom role)"
    return [Finding("gcp.custom_role_escalation", "medium", ("T1098.003",),
                    f"custom role {name} now grants {', '.join(risky[:4])}"
                    + (f" and {len(risky) - 4} more" if len(risky) > 4 else ""), name)]


def _sso_profile(payload: dict[str, Any], principal: str) -> list[Finding]:
    """An inbound SAML SSO profile created or changed for the organisation: the identity
    provider it names now signs people in (the Admin audit event, in Cloud Audit form)."""
    name = ""
    events = as_dict(get(payload, "metadata")).get("event")
    for event in events[:10] if isinstance(events, list) else ():
        parameters = as_dict(event).get("parameter")
        for parameter in parameters[:20] if isinstance(parameters, list) else ():
            parameter = as_dict(parameter)
            if parameter.get("name") == "INBOUND_SSO_PROFILE_NAME":
                name = _text(parameter.get("value"))
    name = name or _text(get(payload, "resourceName")) or "(SSO profile)"
    method = _text(get(payload, "methodName"))
    verb = "created" if method.endswith("Created") else "changed"
    return [Finding("gcp.identity_federation_changed", "medium", ("T1484.002",),
                    f"inbound SSO profile {name[:200]} {verb}: its identity provider signs "
                    "the organisation's users in", name[:256])]


def _deployment_manager(payload: dict[str, Any], principal: str) -> list[Finding]:
    """A Deployment Manager deployment created or changed: Deployment Manager creates its
    resources as the project's Google APIs service agent, which holds Editor, so whoever
    may create a deployment acts with Editor's permissions whatever their own role. Google
    has deprecated it for Infrastructure Manager, so a deployment today is an old pipeline
    (its owner can suppress it) or someone who knows the path."""
    checks = get(payload, "authorizationInfo")
    if isinstance(checks, list) and any(as_dict(item).get("granted") is not True
                                        for item in checks[:50]):
        return []  # a permission check refused (some exports say so only here)
    name = _text(get(payload, "resourceName")).rpartition("/")[2] or "(deployment)"
    method = _text(get(payload, "methodName")).rpartition(".")[2]
    verb = "created" if method == "insert" else "changed"
    return [Finding("gcp.deployment_manager_used", "medium", ("T1548", "T1098.003"),
                    f"Deployment Manager deployment {name} {verb} by {principal[:128]}: its "
                    "resources are made by the Google APIs service agent, with Editor on the "
                    "project", name)]


def _perimeter_removed(payload: dict[str, Any], principal: str) -> list[Finding]:
    """A VPC Service Controls perimeter, or the access policy that holds perimeters,
    deleted: the projects inside may again send data to any project, and calls from
    outside the perimeter are no longer refused. Tearing down as code is left out."""
    if _as_code(payload):
        return []
    name = _text(get(payload, "resourceName")) or _text(
        as_dict(get(payload, "request")).get("name")) or "(perimeter)"
    what = "access policy" if "AccessPolicy" in _text(get(payload, "methodName")) \
        else "service perimeter"
    return [Finding("gcp.service_perimeter_removed", "high", ("T1562.007", "T1537"),
                    f"VPC Service Controls {what} {name[:200]} deleted: the data it fenced "
                    "can leave for any project", name[:256])]


def _instances(payload: dict[str, Any], principal: str) -> list[Finding]:
    """Instances with GPUs (accelerators attached, or a GPU machine family), or ten and more
    in one bulk request: how a stolen credential mines currency on the project's bill
    (Stratus Red Team's GPU instance). Managed instance groups, GKE node pools and other
    Google services launch as their service agents, and fleets applied as code are
    reviewed; neither is judged."""
    if _google_agent(principal) or _as_code(payload):
        return []
    request = as_dict(get(payload, "request"))
    properties = as_dict(request.get("instanceProperties")) or request
    what: list[str] = []
    machine = _text(properties.get("machineType")).rpartition("/")[2][:64]
    value = machine
    accelerators = properties.get("guestAccelerators")
    for item in accelerators[:8] if isinstance(accelerators, list) else ():
        kind = _text(as_dict(item).get("acceleratorType")).rpartition("/")[2][:64]
        if kind:
            what.append(f"accelerator {kind}")
            value = kind
            break
    if not what and _GPU_MACHINES.match(machine):
        what.append(f"GPU machine type {machine}")
    count = request.get("count")
    if type(count) is str and count.isascii() and count.isdigit() and len(count) <= 9:
        count = int(count)
    if type(count) is int and count >= _MANY_INSTANCES:
        what.append(f"{count} instances in one request")
    if not what:
        return []
    name = _text(get(payload, "resourceName")) or "(instance)"
    return [Finding("gcp.unusual_instances", "medium", ("T1496",),
                    f"{name[:200]} launched with {', '.join(what)}", value or what[0])]


def _packet_mirroring(payload: dict[str, Any], principal: str) -> list[Finding]:
    """Packet mirroring created or changed: a copy of the traffic of the instances it
    names goes to a collector, where credentials and data in clear text can be read. A
    security team's collector is set up as code."""
    if _as_code(payload):
        return []
    name = _text(get(payload, "resourceName")) or "(packet mirroring)"
    created = _text(get(payload, "methodName")).endswith("insert")
    return [Finding("gcp.packet_mirroring", "high" if created else "medium", ("T1040",),
                    f"packet mirroring {name[:200]} {'created' if created else 'changed'}: "
                    "the traffic it names is copied to a collector", name[:256])]


def _org_policy(payload: dict[str, Any], principal: str) -> list[Finding]:
    """An organisation policy that guards against an attack technique turned off: a
    boolean constraint no longer enforced, a list constraint allowing every value, a rule
    that stops enforcing, or the policy removed or reset to Google's default (which for
    these constraints is off). Read from the v1 (``SetOrgPolicy``, ``ClearOrgPolicy``) and
    v2 (``CreatePolicy``, ``UpdatePolicy``, ``DeletePolicy``) requests; policies applied as
    code are reviewed and left out."""
    if _as_code(payload):
        return []
    request = as_dict(get(payload, "request"))
    policy = as_dict(request.get("policy"))
    method = _text(get(payload, "methodName")).rpartition(".")[2]
    name = _text(policy.get("constraint")) or _text(policy.get("name")) or _text(
        request.get("constraint")) or _text(request.get("name")) or _text(
        get(payload, "resourceName"))
    constraint = name.rpartition("/")[2]
    if constraint not in _GUARDRAILS:
        return []
    removed = method in ("ClearOrgPolicy", "DeletePolicy") or "restoreDefault" in policy
    rules = as_dict(policy.get("spec")).get("rules")
    relaxed = removed or as_dict(policy.get("booleanPolicy")).get("enforced") is False \
        or as_dict(policy.get("listPolicy")).get("allValues") == "ALLOW" or any(
            as_dict(rule).get("enforce") is False or as_dict(rule).get("allowAll") is True
            for rule in (rules[:50] if isinstance(rules, list) else ()))
    if not relaxed:
        return []
    resource = _text(get(payload, "resourceName")) or "(resource)"
    how = "removed" if removed else "turned off"
    severe = constraint in ("iam.allowedPolicyMemberDomains",
                            "iam.disableServiceAccountKeyCreation")
    return [Finding("gcp.org_policy_relaxed", "high" if severe else "medium", ("T1562",),
                    f"organisation policy {constraint} {how} on {resource[:160]}: the "
                    "technique it blocked is allowed again", constraint)]


_RULES: dict[str, Rule] = {
    **{method: _org_policy for method in ("SetOrgPolicy", "ClearOrgPolicy", "CreatePolicy",
                                          "UpdatePolicy", "DeletePolicy")},
    "DeleteServicePerimeter": _perimeter_removed,
    "DeleteAccessPolicy": _perimeter_removed,
    "inboundSsoProfileCreated": _sso_profile,
    "inboundSsoProfileUpdated": _sso_profile,
    "DestroyCryptoKeyVersion": _kms_key_version,
    "UpdateCryptoKeyVersion": _kms_key_version,
    **{f"{verb}{kind}Provider": _federation for verb in ("Create", "Update")
       for kind in ("WorkloadIdentityPool", "WorkforcePool")},
    "CreateRole": _custom_role,
    "UpdateRole": _custom_role,
}


def _text(value: Any) -> str:
    return value[:512] if isinstance(value, str) else ""
