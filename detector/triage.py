"""Next steps for the analyst who opens an alert: what to check first, how to contain.

An alert says what happened; the person on call also needs to know what to do about it.
The guidance is written once per family of its leading detector (the one its title leads
with): behavioural families by the detector's first name part (``novelty``, ``volume``,
``credential`` ...), technique rules by the kind of harm the rule names (backdoor
credentials, privilege escalation, defence evasion ...), since over 160 rules share a
handful of responses. Each family has a short summary, the checks to run first and the
containment steps. Native alerts carry it as ``triage``; OCSF as the finding's
``remediation`` object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Guidance:
    """One family's next steps (``family`` is also OCSF's ``analytic.category`` for a
    technique rule)."""

    family: str
    summary: str
    check_first: tuple[str, ...]
    contain: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "summary": self.summary,
                "check_first": list(self.check_first), "contain": list(self.contain)}


_OWNER = "Ask the identity's owner (identity.owner) whether a change or deploy explains it."
_SESSION = ("Find the session behind the calls: context.actors, source IPs and user agents "
            "in evidence.samples.")

BEHAVIOUR: dict[str, Guidance] = {
    "novelty": Guidance(
        "novelty", "the identity did something it never did within its history",
        ("Was the new call successful, and is it in a sensitive category (signals' "
         "category, context.sensitive_categories)?",
         "Does context.change_context name a deploy that explains it?", _OWNER),
        ("If nobody expected it, treat the credential as exposed: rotate it and review "
         "every call it made since the alert's window.first.",)),
    "volume": Guidance(
        "volume", "far more calls, resources or failures than the identity's usual window",
        ("Read evidence.window_activity: which actions and resources, how many failed?",
         "Enumeration (List/Describe) or collection (GetObject, GetSecretValue): how much "
         "data left, and to where?", _OWNER),
        ("If it is not a known job, rotate the credential and block its source network; "
         "review what the window's resources hold.",)),
    "credential": Guidance(
        "credential", "a credential used from a new network, from two networks at once, or "
        "outside the cloud it was issued to: the signs of a leaked key",
        ("Who else used the key: search the audit logs for its key id (the signal's "
         "value) across all identities and regions.",
         "Is the network the identity's usual egress (CI runners, NAT, VPN)?", _SESSION),
        ("Disable or delete the key (AWS: iam:UpdateAccessKey to Inactive; GCP: disable "
         "the service-account key), revoke active sessions, and review CloudTrail or the "
         "audit log for every call made with the key id since it was first used from the "
         "new network.",)),
    "schedule": Guidance(
        "schedule", "activity at an hour the identity never works",
        ("Was a job rescheduled or a region's clock changed?", _OWNER),
        ("If no schedule change explains it, treat the credential as exposed: rotate it "
         "and review the calls of that hour.",)),
    "dormancy": Guidance(
        "dormancy", "an identity or credential silent beyond the dormancy horizon is active "
        "again",
        ("Who still holds this credential, and is the identity still needed?",
         _SESSION),
        ("Decommission it if unused; otherwise rotate the credential before it is used "
         "again.",)),
    "multivariate": Guidance(
        "multivariate", "an unusual combination of features no single model flags",
        ("Read the other signals and evidence.samples: which feature is out of line?",
         _OWNER),
        ("Contain as the strongest other signal's family says.",)),
    "policy": Guidance(
        "policy", "an explicit policy was broken (for example, logging stopped)",
        ("Which call broke it, and was it refused (signals' refused)?", _SESSION),
        ("Restore the control first (logging, guard rail), then contain the caller's "
         "session.",)),
    "sweep": Guidance(
        "sweep", "one address (and client, for Kubernetes) acted as many identities within "
        "minutes, mostly failing or checking keys: a set of leaked credentials tried",
        ("Is the address yours (a scanner, a corporate egress)? Then add it to "
         "sweeps.known_sources.",
         "Which identities succeeded after failing (context.sweep."
         "succeeded_after_failing)? Those credentials were guessed or are valid.",
         "Where did the set of credentials come from (a repository, a CI log, a dump)?"),
        ("Treat every credential in context.sweep.identities as leaked: rotate the keys "
         "and secrets, those that succeeded first; block the address.",)),
}

_TECHNIQUE: dict[str, Guidance] = {
    "credential persistence": Guidance(
        "credential persistence", "a credential was created or changed for another "
        "identity: a backdoor that outlives the attacker's own session",
        ("Which credential was made, for whom (the signal's value), and was the request "
         "refused?", "Who else used the new key or token since it was created: search "
         "the audit logs for its id.", _SESSION),
        ("If the request went through, delete the new key, password, token or MFA device "
         "and search the audit log for its id; refused or not, disable the caller's "
         "credential and review what else it tried.",)),
    "privilege escalation": Guidance(
        "privilege escalation", "an identity granted itself or another principal wider "
        "permissions, or a trust to an outside party",
        ("Which grant or trust changed, on which resource, to whom?",
         "Was it a reviewed change (ticket, infrastructure-as-code run)?", _SESSION),
        ("Remove the grant or trust, then rotate the caller's credential and review what "
         "the granted principal did since.",)),
    "defence evasion": Guidance(
        "defence evasion", "logging, detection or a protective control was turned off or "
        "narrowed",
        ("Which control changed, and what happened while it was off?", _SESSION),
        ("Restore the control at once (re-enable logging, the detector, the guard rail), "
         "then treat the caller's credential as compromised.",)),
    "data exposure": Guidance(
        "data exposure", "data or a resource was made public, shared or copied outside "
        "the organisation",
        ("What was exposed, to whom (account, project, the internet), and was anything "
         "read from outside since?", _OWNER),
        ("Revoke the share or public access, block the outside destination, then rotate "
         "the caller's credential.",)),
    "credential access": Guidance(
        "credential access", "secrets, keys or instance credentials were read in bulk or "
        "from an unexpected place",
        ("Which secrets were read (evidence.sensitive_actions), and where were they used "
         "afterwards?", _SESSION),
        ("Rotate every secret read, revoke the caller's session and credential.",)),
    "discovery": Guidance(
        "discovery", "the identity mapped its permissions or the environment",
        ("Which calls were refused (evidence.samples, window_activity): what was the "
         "caller looking for?", _OWNER),
        ("Enumeration rarely stands alone: look for the identity's next alert, and "
         "rotate the credential if the owner does not recognise the activity.",)),
    "impact": Guidance(
        "impact", "data or resources were deleted, encrypted or hijacked",
        ("What was deleted or encrypted, and can it be recovered (backups, versions, key "
         "deletion windows)?", _SESSION),
        ("Stop the caller now (disable the credential, deny policy), cancel pending "
         "deletions, restore from backups.",)),
    "execution": Guidance(
        "execution", "code or commands were run on workloads, or workload code was "
        "replaced",
        ("What ran, where, and what can that workload reach?", _SESSION),
        ("Isolate the workload, revert the code or configuration, rotate credentials it "
         "held.",)),
    "initial access": Guidance(
        "initial access", "a sign-in or access path that bypasses the usual controls",
        ("Who signed in, from where, and what did the session do next?", _SESSION),
        ("Reset the account's credentials, require MFA, revoke its sessions.",)),
}
# The family of a technique rule, from the words of its name (first match wins).
_RULE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("impact", ("deletion", "destruction", "destroyed", "ransom", "recovery_disabled",
                "bulk_delete", "foreign_encryption", "kms_key_loss", "unusual_instances",
                "vault_deleted", "vault_purged", "recovery_deleted", "lock_deleted")),
    ("defence evasion", ("detection", "logging", "logs_", "selectors", "log_lifecycle",
                         "log_exclusion", "alerting", "diagnostic", "guardrail", "waf_",
                         "events_deleted", "webhook_deleted", "binary_authorization",
                         "conditional_access", "org_policy", "perimeter", "protection",
                         "imds_downgraded", "log_workspace", "defense", "tampering")),
    ("discovery", ("enumeration", "probing", "recon")),
    ("credential access", ("secrets", "credentials_read", "configmap_credentials",
                           "reads_credentials", "key_harvest", "user_data_burst",
                           "credentials_elsewhere", "key_exposed")),
    ("credential persistence", ("access_key", "login_profile", "mfa_", "credentials_added",
                                "federated_credential", "hmac_key", "service_account_key",
                                "storage_key", "client_certificate", "token_for_other",
                                "ssh_key", "windows_account", "app_owner",
                                "roles_anywhere", "password_reset")),
    ("privilege escalation", ("admin", "role", "permission_granted", "vault_access",
                              "instance_profile", "aws_auth", "account_grant", "trust",
                              "identity_provider", "federation", "impersonation",
                              "federated_session", "privileged_task", "external_idp",
                              "rbac")),
    ("execution", ("command", "exec", "pod", "cronjob", "lambda_code", "boot_script",
                   "user_data", "serial_console", "deployment_manager", "webhook",
                   "automation_code")),
    ("data exposure", ("public", "shared", "external", "snapshot_moved", "exported",
                       "exfiltration", "exposed", "open", "nodeport", "without_tls",
                       "domain_transfer", "project_moved", "leave_organization",
                       "mirroring", "packet_capture")),
    ("initial access", ("sign_in", "login", "root_activity", "spray", "device_code",
                        "anonymous", "password_burst", "remote_access")),
)
_ANY_TECHNIQUE = Guidance(
    "technique", "a request that itself shows an attack technique",
    ("Was the change intended (ticket, deploy)?", _SESSION),
    ("Undo the change first (remove the grant, revoke the share, restore logging), then "
     "contain the caller's credential.",))
_ANY = Guidance(
    "other", "an unusual request by this identity",
    ("Read the signals' sentences and evidence.samples.", _OWNER),
    ("If nobody can explain it, rotate the credential.",))


def technique_family(rule: str) -> str | None:
    """The family of a technique rule (``aws.access_key_for_other_user`` or
    ``technique.aws...``), or ``None`` when its name says none."""
    name = rule.rpartition(".")[2]
    for family, words in _RULE_WORDS:
        if any(word in name for word in words):
            return family
    return None


def guidance_for(detector: str) -> Guidance:
    """The next steps for an alert led by ``detector`` (``shadow.`` detectors as their
    own family)."""
    name = detector.removeprefix("shadow.")
    head = name.partition(".")[0]
    if head == "technique":
        family = technique_family(name)
        return _TECHNIQUE[family] if family else _ANY_TECHNIQUE
    return BEHAVIOUR.get(head, _ANY)
