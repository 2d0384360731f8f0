"""AWS CloudTrail technique checks: requests whose own parameters show the attack.

``CHECKS`` maps an ``eventName`` to its check; ``findings(record, check, ...)`` runs one
and never raises. The parser calls it only for the few event names listed here (one dict
look-up for all the others) and for every record made by the root user.

What counts as "outside": an account id other than the record's own account (the caller's
``accountId``, else ``recipientAccountId``). Organisation membership is not in the record,
so an account of the same organisation also counts as outside; a suppression rule on the
finding's value (the account id) silences a known partner.

Successful requests are judged, and requests refused for lack of permission: a refused
attempt exposed nothing but shows intent, so its findings come one severity lower and name
the refusal, a refused logging or detection change is a ``aws.tampering_attempt``, and each
refusal counts toward ``aws.permission_probing`` (a stolen key trying what it may do). Other
failures (not found, invalid, throttled) are judged only for the rules whose mere attempt
is rare enough to be evidence (``ATTEMPTS``, ``QUOTA_ATTEMPTS``). Every document a
check reads (policies, ACLs, selectors) may be a dict, a JSON string, a list or missing:
each reader below checks the type before use and gives up quietly on anything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from detector.techniques import (PROBING, Finding, Tally, attempted, ransom_note, refused,
                                 refused_tampering)

Check = Callable[[dict[str, Any], "Caller"], list[Any]]  # Finding and Tally items

# ATT&CK ids per rule family (each defined in detector/data/sensitive_actions.yaml)
_TRANSFER = ("T1537",)  # Transfer Data to Cloud Account
_EXPOSE_STORAGE = ("T1530", "T1537")
_FIREWALL = ("T1562.007",)  # Impair Defenses: Disable or Modify Cloud Firewall
_ROLES = ("T1098.003",)
_CREDENTIALS = ("T1098.001",)
_TOOLS = ("T1562.001",)
_LOGS = ("T1562.008",)
_HIERARCHY = ("T1666",)  # Modify Cloud Resource Hierarchy
_CLOUD_ACCOUNTS = ("T1078.004",)
_WORKLOAD_CODE = ("T1525", "T1648")  # Implant Internal Image, Serverless Execution
_STARTUP_SCRIPT = ("T1037", "T1578")  # Boot or Logon Initialization Scripts, Modify Compute
_HIJACK = ("T1496", "T1578.002")  # Resource Hijacking, Create Cloud Instance
_DESTRUCTION = ("T1485",)  # Data Destruction
_RECOVERY = ("T1490",)  # Inhibit System Recovery
_RANSOM = ("T1486",)  # Data Encrypted for Impact
_SNIFFING = ("T1040",)  # Network Sniffing
_TOKENS = ("T1550.001", "T1078.004")  # Use Alternate Authentication Material: tokens
_REMOTE = ("T1651", "T1021.007")  # Cloud Administration Command, Remote Services: Cloud

_ACCOUNT_RX = re.compile(r"^\d{12}$")
_ARN_ACCOUNT_RX = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:(\d{12}):")
# Condition keys that pin a wildcard principal to known callers or networks: a statement
# with ``Principal: *`` and one of these is scoped, not public.
_SCOPING_KEYS = frozenset({
    "aws:principalorgid", "aws:principalorgpaths", "aws:principalaccount", "aws:sourceaccount",
    "aws:sourcearn", "aws:sourceowner", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceip",
    "aws:principalarn", "aws:userid", "aws:username", "aws:principalservicename",
    "kms:calleraccount", "kms:viaservice", "aws:resourceorgid", "aws:resourceaccount",
    "lambda:eventsourcetoken", "aws:calledvia", "s3:dataaccesspointaccount",
})
_PUBLIC_GROUPS = ("http://acs.amazonaws.com/groups/global/AllUsers",
                  "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")
_PUBLIC_CANNED_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
# Remote administration and database ports: open to the whole internet they are an
# intrusion path, unlike 80/443 which web servers open on purpose.
_ADMIN_PORTS = {22: "SSH", 3389: "RDP", 23: "telnet", 5900: "VNC", 445: "SMB",
                3306: "MySQL", 5432: "PostgreSQL", 1433: "SQL Server", 1521: "Oracle",
                6379: "Redis", 9200: "Elasticsearch", 27017: "MongoDB", 2375: "Docker API"}
_OPEN_RANGES = ("0.0.0.0/0", "::/0")
# agent families of infrastructure-as-code tools: routine user management by them (keys
# and console passwords for the users they create) is not evidence of a backdoor
_DEPLOY_FAMILIES = frozenset({"terraform", "cloudformation", "pulumi"})
# Rules whose grant to one named account is how organisations wire accounts together
# (log archive buckets, audit roles, shared images and keys) when it is done as code: from
# an infrastructure-as-code client only a grant to everyone is alerted.
_ACCOUNT_GRANT_RULES = frozenset({
    "aws.ebs_snapshot_shared", "aws.ami_shared", "aws.rds_snapshot_shared",
    "aws.s3_bucket_shared", "aws.lambda_shared", "aws.role_trust_external",
    "aws.kms_key_shared", "aws.ecr_repository_shared", "aws.secret_shared",
    "aws.queue_topic_shared", "aws.search_domain_shared", "aws.s3_replication_external",
    "aws.dynamodb_export_external", "aws.vpc_peering_external",
})
# Rules about changing what runs (function code, boot scripts, new instances): deploying
# is what infrastructure-as-code tools do all day, so their requests are not judged.
_DEPLOY_RULES = frozenset({"aws.lambda_code_replaced", "aws.instance_user_data_modified",
                           "aws.unusual_instances", "aws.data_protection_removed",
                           "aws.kms_key_loss", "aws.traffic_mirroring",
                           "aws.db_snapshot_moved", "aws.logging_disabled",
                           "aws.guardrail_removed", "aws.waf_removed",
                           "aws.container_credentials_read", "aws.serial_console_enabled",
                           "aws.instance_exported", "aws.db_password_reset",
                           "aws.domain_transfer", "aws.privileged_task",
                           "aws.imds_downgraded"})
# Rules whose refused attempt is a finding: defense evasion and persistence (the attacker
# tried to blind the defenders or to stay), not exposure (a refused share exposed nothing).
_ATTEMPT_RULES = frozenset({
    "aws.trail_selectors_reduced", "aws.short_log_lifecycle", "aws.flow_logs_deleted",
    "aws.detection_disabled", "aws.dns_logs_deleted", "aws.leave_organization",
    "aws.mfa_removed_for_other_user",
    "aws.access_key_for_other_user", "aws.login_profile_for_other_user",
    "aws.admin_policy_granted", "aws.role_trust_external", "aws.roles_anywhere_trust_anchor",
    "aws.lambda_code_replaced", "aws.instance_user_data_modified", "aws.unusual_instances",
    "aws.security_group_open", "aws.logging_disabled", "aws.guardrail_removed",
    "aws.kms_key_loss", "aws.traffic_mirroring", "aws.federated_session",
    "aws.container_credentials_read", "aws.serial_console_enabled", "aws.db_password_reset",
    "aws.identity_provider_changed", "aws.instance_profile_swapped", "aws.domain_transfer",
    "aws.privileged_task", "aws.mfa_enabled_for_other_user", "aws.imds_downgraded",
})
_SHORT_LIFECYCLE_DAYS = 7
_MAX_ITEMS = 64  # items read from one list: a huge policy costs no more than this


class Caller:
    """What the checks need to know about the record's caller, read once per record."""

    __slots__ = ("account", "name", "family", "sso", "role")

    def __init__(self, account: str | None, name: str | None, family: str | None,
                 sso: bool = False, role: str = "") -> None:
        self.account = account or ""
        self.name = name or ""
        self.family = family or ""
        self.sso = sso  # a person's IAM Identity Center (SSO) permission-set session
        self.role = role  # the role of an assumed-role session ("" for anything else)

    @property
    def shown(self) -> str:
        """The caller as a sentence names it: a role session by its role, as the alert's
        identity reads (``role/ops-copilot-agent``), not by its session name, which is
        often an opaque hex id; an IAM user by its name."""
        return f"role/{self.role}" if self.role else self.name or "unnamed"

    def outside(self, account: str) -> bool:
        """Whether ``account`` is a 12-digit account id other than the caller's."""
        return account != self.account and _ACCOUNT_RX.match(account) is not None


# ---------------------------------------------------------------- readers of odd shapes


def _dict(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else {}


def _items(value: Any) -> list[Any]:
    """``{"items": [...]}`` (EC2's XML-shaped lists), a list, one dict, or nothing."""
    if type(value) is dict:
        value = value.get("items", [value] if value else [])
    if type(value) is list:
        return value[:_MAX_ITEMS]
    return []


def _list(value: Any) -> list[Any]:
    if type(value) is list:
        return value[:_MAX_ITEMS]
    return [] if value is None else [value]


def _document(value: Any) -> dict[str, Any]:
    """A policy document given as a dict or as JSON text (possibly URL-encoded)."""
    if type(value) is str:
        text = value.strip()
        if text.startswith("%7B") or text.startswith("%7b"):
            from urllib.parse import unquote

            text = unquote(text)
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return {}
    return value if type(value) is dict else {}


def _statements(document: Any) -> Iterator[dict[str, Any]]:
    for statement in _list(_document(document).get("Statement")):
        if type(statement) is dict and statement.get("Effect") == "Allow":
            yield statement


def _principals(statement: dict[str, Any]) -> list[str]:
    """Every principal string of a statement (``*``, ARNs, account ids); services and
    federated providers are left out: they never name another account."""
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    found: list[str] = []
    if type(principal) is dict:
        for key in ("AWS", "CanonicalUser"):
            found.extend(p for p in _list(principal.get(key)) if type(p) is str)
    return found


def _scoped(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition")
    if type(condition) is not dict:
        return False
    for operator in condition.values():
        if type(operator) is dict and any(
            type(k) is str and k.lower() in _SCOPING_KEYS for k in operator
        ):
            return True
    return False


def _account_of(principal: str) -> str:
    if _ACCOUNT_RX.match(principal):
        return principal
    match = _ARN_ACCOUNT_RX.match(principal)
    return match.group(1) if match else ""


def _grantees(document: Any, caller: Caller) -> tuple[bool, list[str]]:
    """(public, outside accounts) granted by the Allow statements of a policy document."""
    public, accounts = False, []
    for statement in _statements(document):
        for principal in _principals(statement):
            if principal == "*":
                public = public or not _scoped(statement)
                continue
            account = _account_of(principal)
            if caller.outside(account) and account not in accounts:
                accounts.append(account)
    return public, accounts


def _sharing(rule: str, thing: str, public: bool, accounts: list[str], *,
             attack: tuple[str, ...], public_severity: str = "critical",
             external_severity: str = "high") -> list[Finding]:
    """Findings for ``thing`` made public and/or shared with outside accounts."""
    out = []
    if public:
        out.append(Finding(rule, public_severity, attack,
                           f"{thing} made public: anyone can use it", "public"))
    for account in accounts[:5]:
        out.append(Finding(rule, external_severity, attack,
                           f"{thing} shared with account {account}, outside this account",
                           account))
    return out


def _params(record: dict[str, Any]) -> dict[str, Any]:
    return _document(record.get("requestParameters"))


def _str(value: Any, limit: int = 200) -> str:
    return value[:limit] if type(value) is str else ""


# ---------------------------------------------------------------- sharing outside


def _permission_adds(permissions: Any, caller: Caller) -> tuple[bool, list[str]]:
    """EC2 ``createVolumePermission``/``launchPermission``: ``add`` items of a group
    ``all`` (public) or a ``userId`` (an account)."""
    public, accounts = False, []
    for item in _items(_dict(permissions).get("add")):
        if type(item) is not dict:
            continue
        if item.get("group") == "all":
            public = True
        user = item.get("userId")
        if type(user) is str and caller.outside(user) and user not in accounts:
            accounts.append(user)
    return public, accounts


def snapshot_shared(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    public, accounts = _permission_adds(params.get("createVolumePermission"), caller)
    thing = f"EBS snapshot {_str(params.get('snapshotId')) or '(unnamed)'}"
    return _sharing("aws.ebs_snapshot_shared", thing, public, accounts,
                    attack=_TRANSFER)


def image_shared(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    public, accounts = _permission_adds(params.get("launchPermission"), caller)
    thing = f"machine image {_str(params.get('imageId')) or '(unnamed)'}"
    return _sharing("aws.ami_shared", thing, public, accounts, attack=_TRANSFER)


def db_snapshot_shared(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    if params.get("attributeName") != "restore":
        return []
    public, accounts = False, []
    for value in _list(params.get("valuesToAdd")):
        if value == "all":
            public = True
        elif type(value) is str and caller.outside(value) and value not in accounts:
            accounts.append(value)
    name = params.get("dBSnapshotIdentifier") or params.get("dBClusterSnapshotIdentifier")
    thing = f"RDS snapshot {_str(name) or '(unnamed)'}"
    return _sharing("aws.rds_snapshot_shared", thing, public, accounts, attack=_TRANSFER)


def _resource_policy(rule: str, policy_field: str, label: str, name_field: str,
                     attack: tuple[str, ...]) -> Check:
    """The check of an action that sets a resource policy document (``policy_field`` of
    the request): findings when the document grants everyone or another account."""
    def check(record: dict[str, Any], caller: Caller) -> list[Finding]:
        params = _params(record)
        public, accounts = _grantees(params.get(policy_field), caller)
        thing = f"{label} {_str(params.get(name_field)) or '(unnamed)'}"
        return _sharing(rule, thing, public, accounts, attack=attack)
    return check


bucket_policy = _resource_policy("aws.s3_bucket_shared", "bucketPolicy", "S3 bucket",
                                 "bucketName", _EXPOSE_STORAGE)


def bucket_acl(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """PutBucketAcl/PutObjectAcl: a canned public ACL, a grant header naming the AllUsers
    or AuthenticatedUsers group, or such a grant in the ACL document."""
    params = _params(record)
    public = False
    for canned in _list(params.get("x-amz-acl")):
        public = public or (type(canned) is str and canned in _PUBLIC_CANNED_ACLS)
    for key, value in params.items():
        if key.startswith("x-amz-grant-") and any(
            type(v) is str and any(g in v for g in _PUBLIC_GROUPS) for v in _list(value)
        ):
            public = True
    policy = _dict(params.get("AccessControlPolicy"))
    grants = _dict(policy.get("AccessControlList")).get("Grant")
    for grant in _list(grants):
        grantee = _dict(_dict(grant).get("Grantee"))
        if grantee.get("URI") in _PUBLIC_GROUPS:
            public = True
    bucket = _str(params.get("bucketName")) or "(unnamed)"
    key = _str(params.get("key"))
    thing = f"S3 object {bucket}/{key}" if key else f"S3 bucket {bucket}"
    return _sharing("aws.s3_bucket_shared", thing, public, [], attack=_EXPOSE_STORAGE)


def lambda_permission(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """AddPermission with principal ``*`` (anyone may invoke) or another account; a
    service principal scoped by ``sourceAccount``/``sourceArn`` is ordinary wiring."""
    params = _params(record)
    principal = params.get("principal")
    if type(principal) is not str:
        return []
    scoped = bool(params.get("sourceAccount") or params.get("sourceArn")
                  or params.get("principalOrgID"))
    public = principal == "*" and not scoped
    account = _account_of(principal)
    accounts = [account] if caller.outside(account) else []
    thing = f"Lambda function {_str(params.get('functionName')) or '(unnamed)'}"
    return _sharing("aws.lambda_shared", thing, public, accounts, attack=_ROLES + _TRANSFER,
                    public_severity="high")


def layer_permission(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """AddLayerVersionPermission for ``*`` (any account may use the layer's code, and
    whatever secrets were packed into it) or for another account; a grant scoped to an
    organisation id is how organisations share layers."""
    params = _params(record)
    principal = params.get("principal")
    if type(principal) is not str:
        return []
    public = principal == "*" and not params.get("organizationId")
    account = _account_of(principal)
    accounts = [account] if caller.outside(account) else []
    layer = _str(params.get("layerName")) or "(unnamed)"
    thing = f"Lambda layer {layer} version {_str(str(params.get('versionNumber') or '?'), 16)}"
    return _sharing("aws.lambda_shared", thing, public, accounts, attack=_TRANSFER,
                    public_severity="high")


def _function(params: dict[str, Any]) -> str:
    name = _str(params.get("functionName")) or "(unnamed)"
    return name.rpartition(":function:")[2] or name


def function_code(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A function's code replaced with an IAM user's long-term access key (or by the root
    user, or by a federated user: credentials minted from a user's key with
    GetFederationToken, which outlive the key), outside infrastructure-as-code. Pipelines
    deploy with role sessions (a CI role, a federated workflow token) or through a deploy
    tool; replacing what a function runs with a user's key is how a leaked key plants code
    that runs with the function's role. Console edits are a person at work and are left
    to the behavioural models."""
    identity = _dict(record.get("userIdentity"))
    key, kind = identity.get("accessKeyId"), identity.get("type")
    if kind not in ("IAMUser", "Root", "FederatedUser") or caller.family == "console":
        return []
    if kind != "FederatedUser" and type(key) is str and key.startswith("ASIA"):
        return []  # a user's session (console, MFA): not the long-term key
    function = _function(_params(record))
    how = (f"by federated user {caller.name or '(unnamed)'} (credentials minted from a "
           "user's key)" if kind == "FederatedUser"
           else f"with the long-term key of {caller.name or 'an IAM user'}")
    return [Finding("aws.lambda_code_replaced", "medium", _WORKLOAD_CODE,
                    f"code of Lambda function {function} replaced {how}, outside "
                    "infrastructure-as-code", function)]


def _layer_account(arn: str) -> str:
    match = _ARN_ACCOUNT_RX.match(arn)
    return match.group(1) if match else ""


def function_layers(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A function configured with layers outside infrastructure-as-code: a layer's code
    runs inside the function with its role (an extension sees every invocation). A layer
    published by another account is medium, the account's own layers low."""
    params = _params(record)
    layers = [arn for arn in _list(params.get("layers")) if type(arn) is str and arn]
    if not layers:
        return []
    foreign = [arn for arn in layers if caller.outside(_layer_account(arn))]
    shown = (foreign or layers)[0][:200]
    function = _function(params)
    if foreign:
        return [Finding("aws.lambda_code_replaced", "medium", _WORKLOAD_CODE,
                        f"Lambda function {function} given layer {shown} of account "
                        f"{_layer_account(shown)}, outside this account", function)]
    return [Finding("aws.lambda_code_replaced", "low", _WORKLOAD_CODE,
                    f"Lambda function {function} given {len(layers)} layer(s) ({shown}) "
                    "outside infrastructure-as-code", function)]


def instance_user_data(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """ModifyInstanceAttribute replacing an instance's user data: the script runs as root
    at the next start, a foothold that survives reboots."""
    params = _params(record)
    if "userData" not in params and params.get("attribute") != "userData":
        return []
    instance = _str(params.get("instanceId")) or "(unnamed)"
    return [Finding("aws.instance_user_data_modified", "medium", _STARTUP_SCRIPT,
                    f"user data (boot script) of instance {instance} replaced", instance)]


# Instance families built for accelerated compute (GPU, machine-learning and FPGA chips),
# the ones cryptominers ask for, and sizes far above ordinary workloads.
_ACCELERATED_RX = re.compile(r"^(p\d|g\d|gr\d|inf\d|trn\d|dl\d|f\d|vt\d)")
_HUGE_RX = re.compile(r"\.(metal|(1[6-9]|[2-9]\d|\d{3})xlarge)")
_MANY_INSTANCES = 10


def _instance_type(params: dict[str, Any]) -> str:
    value = params.get("instanceType")
    if type(value) is dict:
        value = value.get("value")
    return value[:40].lower() if type(value) is str else ""


def unusual_instances(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """RunInstances of accelerated or huge instance types, or of many instances in one
    request, outside infrastructure-as-code: how a stolen credential mines currency on
    the account's bill. A quota refusal (``VcpuLimitExceeded``) is the same attempt."""
    params = _params(record)
    kind = _instance_type(params)
    count = 0
    for item in _items(params.get("instancesSet")):
        try:
            count += int(_dict(item).get("maxCount") or 0)
        except (TypeError, ValueError):
            continue
    what = []
    if _ACCELERATED_RX.match(kind):
        what.append("accelerated (GPU or ML) type")
    elif _HUGE_RX.search(kind):
        what.append("very large type")
    source = record.get("sourceIPAddress")
    by_service = type(source) is str and source.endswith(".amazonaws.com")
    if count >= _MANY_INSTANCES and not by_service:  # fleets of a scaling service: routine
        what.append(f"{count} instances in one request")
    if not what:
        return []
    shown = kind or "(type in a launch template)"
    return [Finding("aws.unusual_instances", "medium", _HIJACK,
                    f"launch of {max(count, 1)} {shown} instance(s): {', '.join(what)}",
                    shown)]


def role_trust(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """CreateRole/UpdateAssumeRolePolicy: a trust policy that lets ``*`` or another
    account assume the role. A trust pinned by a condition (an ``sts:ExternalId`` of a
    vendor integration, an organisation id) is common admin work: medium. A trust of
    GitHub's OIDC provider that names no repository lets any GitHub user's workflow in,
    which is as public as ``*`` (value ``public``, alerted from infrastructure-as-code
    too, where such trusts are usually written)."""
    params = _params(record)
    document = params.get("assumeRolePolicyDocument") or params.get("policyDocument")
    role = _str(params.get("roleName")) or "(unnamed)"
    out = []
    for statement in _statements(document):
        conditioned = type(statement.get("Condition")) is dict and bool(statement["Condition"])
        for principal in _principals(statement):
            if principal == "*":
                severity, value = ("medium" if conditioned else "high"), "public"
                sentence = f"role {role} trusts any AWS principal ('*')"
            else:
                account = _account_of(principal)
                if not caller.outside(account):
                    continue
                severity, value = ("medium" if conditioned else "high"), account
                sentence = f"role {role} trusts account {account}, outside this account"
            if conditioned:
                sentence += " (with a condition)"
            if all(f.value != value for f in out):
                out.append(Finding("aws.role_trust_external", severity, _ROLES, sentence,
                                   value))
        if _any_workflow(statement) and all(f.value != "public" for f in out):
            out.append(Finding("aws.role_trust_external", "high", _ROLES,
                               f"role {role} trusts every GitHub Actions workflow: its trust "
                               "names no repository in a `sub` condition", "public"))
    return out[:5]


_GITHUB_OIDC = "token.actions.githubusercontent.com"


def _any_workflow(statement: dict[str, Any]) -> bool:
    """Whether a statement trusting GitHub's OIDC provider lets any repository in: no
    ``token.actions.githubusercontent.com:sub`` condition, or one of ``*`` or ``repo:*``.
    The audience condition alone is the same for every GitHub user."""
    federated = _dict(statement.get("Principal")).get("Federated")
    if not any(type(p) is str and p.endswith(_GITHUB_OIDC) for p in _list(federated)):
        return False
    subjects: list[Any] = []
    for operator in _dict(statement.get("Condition")).values():
        for key, value in _dict(operator).items():
            if type(key) is str and key.lower() == f"{_GITHUB_OIDC}:sub":
                subjects.extend(_list(value))
    return not subjects or any(v in ("*", "repo:*") for v in subjects)


def key_grant(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    grantee = params.get("granteePrincipal")
    account = _account_of(grantee) if type(grantee) is str else ""
    if not caller.outside(account):
        return []
    thing = f"KMS key {_str(params.get('keyId')) or '(unnamed)'} (grant)"
    return _sharing("aws.kms_key_shared", thing, False, [account], attack=_TRANSFER)


key_policy = _resource_policy("aws.kms_key_shared", "policy", "KMS key", "keyId", _TRANSFER)
repository_policy = _resource_policy("aws.ecr_repository_shared", "policyText",
                                     "ECR repository", "repositoryName", _EXPOSE_STORAGE)
secret_policy = _resource_policy("aws.secret_shared", "resourcePolicy", "secret", "secretId",
                                 ("T1555.006",) + _TRANSFER)
search_domain_policy = _resource_policy("aws.search_domain_shared", "accessPolicies",
                                        "OpenSearch domain", "domainName", _EXPOSE_STORAGE)


def queue_policy(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    attributes = _document(params.get("attributes"))
    public, accounts = _grantees(attributes.get("Policy"), caller)
    url = _str(params.get("queueUrl"), 300)
    thing = f"SQS queue {url.rpartition('/')[2] or '(unnamed)'}"
    return _sharing("aws.queue_topic_shared", thing, public, accounts,
                    attack=_TRANSFER, public_severity="high")


def topic_policy(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    if params.get("attributeName") != "Policy":
        return []
    public, accounts = _grantees(params.get("attributeValue"), caller)
    thing = f"SNS topic {_str(params.get('topicArn'), 300) or '(unnamed)'}"
    return _sharing("aws.queue_topic_shared", thing, public, accounts,
                    attack=_TRANSFER, public_severity="high")


# ---------------------------------------------------------------- network exposure


def _port_range(permission: dict[str, Any]) -> tuple[int, int] | None:
    """(from, to) of a permission; all ports for protocol -1; None when unreadable."""
    if str(permission.get("ipProtocol")) in ("-1", "all"):
        return 0, 65535
    try:
        low, high = int(permission.get("fromPort")), int(permission.get("toPort"))
    except (TypeError, ValueError):
        return None
    if low == -1 or high == -1:  # ICMP "all types": not a port
        return None
    return low, high


def _open_cidrs(permission: dict[str, Any]) -> list[str]:
    found = []
    for key, field in (("ipRanges", "cidrIp"), ("ipv6Ranges", "cidrIpv6")):
        for item in _items(permission.get(key)):
            cidr = _dict(item).get(field)
            if cidr in _OPEN_RANGES and cidr not in found:
                found.append(cidr)
    for key in ("cidrIp", "cidrIpv6"):  # the flat form of the older API
        if permission.get(key) in _OPEN_RANGES and permission[key] not in found:
            found.append(permission[key])
    return found


def security_group_ingress(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    permissions = [p for p in _items(params.get("ipPermissions")) if type(p) is dict]
    if "cidrIp" in params or "cidrIpv6" in params:
        permissions.append(params)
    group = _str(params.get("groupId") or params.get("groupName")) or "(unnamed)"
    out: list[Finding] = []
    for permission in permissions:
        cidrs = _open_cidrs(permission)
        ports = _port_range(permission) if cidrs else None
        if ports is None:
            continue
        low, high = ports
        if low <= 0 and high >= 65535:
            what = "every port"
        else:
            named = [f"{n} ({port})" for port, n in _ADMIN_PORTS.items() if low <= port <= high]
            if not named:
                continue
            what = ", ".join(named[:4])
        out.append(Finding(
            "aws.security_group_open", "high", _FIREWALL,
            f"security group {group} opened {what} to the whole internet ({cidrs[0]})",
            f"{group}:{low}-{high}",
        ))
    return out[:5]


_TRUE = (True, "true", "True")


def db_public(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A database made reachable from the internet. A restore copies the snapshot's
    setting unless the request says otherwise, so for a restore the response (what was
    built) is read too: a snapshot restored public is the way to read its data from
    outside."""
    params = _params(record)
    public = params.get("publiclyAccessible") in _TRUE
    if not public and str(record.get("eventName")).startswith("Restore"):
        public = _dict(record.get("responseElements")).get("publiclyAccessible") in _TRUE
    if not public:
        return []
    name = (params.get("dBInstanceIdentifier") or params.get("dBClusterIdentifier")
            or params.get("targetDBInstanceIdentifier"))
    thing = f"RDS database {_str(name) or '(unnamed)'}"
    return [Finding("aws.rds_public", "high", _FIREWALL + ("T1530",),
                    f"{thing} made reachable from the internet (publiclyAccessible true)",
                    _str(name) or "public")]


# ---------------------------------------------------------------- persistence, escalation


def _target_user(record: dict[str, Any], caller: Caller) -> str:
    """The IAM user a request acts on when it is not the caller itself ('' otherwise):
    a user changing their own key or password is ordinary, and so is an administrator
    signed in through IAM Identity Center, or an infrastructure-as-code tool, creating or
    rotating a service user's key. A backdoor key is made with programmatic credentials
    of an IAM user or a workload role, which this keeps."""
    user = _params(record).get("userName")
    if type(user) is not str or not user or user == caller.name:
        return ""
    if caller.family in _DEPLOY_FAMILIES or caller.sso:
        return ""
    return user[:128]


def access_key_for_other(record: dict[str, Any], caller: Caller) -> list[Finding]:
    user = _target_user(record, caller)
    if not user:
        return []
    return [Finding("aws.access_key_for_other_user", "medium", _CREDENTIALS,
                    f"access key created for IAM user {user} by another principal "
                    f"({caller.shown})", user)]


def login_profile_for_other(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A console password set for another user without forcing a reset at next sign-in:
    the caller knows a password the user never chose (an administrator's reset sets
    ``passwordResetRequired``)."""
    user = _target_user(record, caller)
    if not user or _params(record).get("passwordResetRequired") in (True, "true"):
        return []
    return [Finding("aws.login_profile_for_other_user", "medium", _CREDENTIALS,
                    f"console password set for IAM user {user} by another principal "
                    f"({caller.shown}), no reset required", user)]


def mfa_removed_for_other(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """Another user's MFA device deactivated with programmatic credentials: the account
    is then open to its password or keys alone, and the attacker can enrol their own
    device. A help desk resetting a lost device works in the console, through IAM
    Identity Center or as code, which are left out."""
    user = _target_user(record, caller)
    if not user or caller.family == "console":
        return []
    return [Finding("aws.mfa_removed_for_other_user", "medium", _CREDENTIALS + ("T1556.006",),
                    f"MFA device of IAM user {user} deactivated by another principal "
                    f"({caller.shown})", user)]


def _principal_name(params: dict[str, Any]) -> str:
    for key in ("userName", "roleName", "groupName"):
        value = params.get(key)
        if type(value) is str and value:
            return f"{key[:-4]} {value[:128]}"
    return "(unnamed)"


def admin_policy_attached(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    arn = params.get("policyArn")
    if type(arn) is not str or not arn.endswith(":policy/AdministratorAccess"):
        return []
    who = _principal_name(params)
    return [Finding("aws.admin_policy_granted", "high", _ROLES,
                    f"AdministratorAccess attached to {who}", who)]


def _full_admin(document: Any) -> bool:
    """An Allow statement of Action ``*`` on Resource ``*`` (no NotAction tricks read)."""
    for statement in _statements(document):
        actions = [a for a in _list(statement.get("Action")) if type(a) is str]
        resources = [r for r in _list(statement.get("Resource")) if type(r) is str]
        if "*" in actions and "*" in resources and not statement.get("Condition"):
            return True
    return False


def admin_inline_policy(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    if not _full_admin(params.get("policyDocument")):
        return []
    who = _principal_name(params)
    return [Finding("aws.admin_policy_granted", "high", _ROLES,
                    f"inline policy granting every action on every resource put on {who}",
                    who)]


def admin_policy_version(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    if params.get("setAsDefault") not in (True, "true") or not _full_admin(
            params.get("policyDocument")):
        return []
    arn = _str(params.get("policyArn")) or "(unnamed)"
    return [Finding("aws.admin_policy_granted", "high", _ROLES,
                    f"policy {arn} given a default version granting every action on every "
                    "resource", arn)]


def trust_anchor(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A Roles Anywhere trust anchor created, or an existing one given another certificate
    authority (an update that names no new source changes nothing that matters here)."""
    params = _params(record)
    source = _dict(params.get("source"))
    kind = _str(source.get("sourceType"), 40) or "certificate"
    if record.get("eventName") == "UpdateTrustAnchor":
        if not source:
            return []
        name = _str(params.get("trustAnchorId")) or "(unnamed)"
        verb = "given a new certificate authority"
    else:
        name = _str(params.get("name")) or "(unnamed)"
        verb = "created"
    return [Finding("aws.roles_anywhere_trust_anchor", "high", ("T1098.001", "T1556"),
                    f"IAM Roles Anywhere trust anchor {name} {verb}: roles can now be "
                    f"assumed with certificates of an outside authority ({kind})", name)]


# ---------------------------------------------------------------- defense evasion


def _selector_drops(params: dict[str, Any]) -> str:
    """Why a PutEventSelectors request stops management-event logging ('' when it does
    not): basic selectors none of which include management events (or all set to
    ReadWriteType None), or advanced selectors none of which select management events."""
    basic = [s for s in _list(params.get("eventSelectors")) if type(s) is dict]
    if basic:
        if all(s.get("readWriteType") == "None" for s in basic):
            return "every event selector set to ReadWriteType None"
        if not any(s.get("includeManagementEvents") in (True, "true", None) for s in basic):
            return "management events excluded from every event selector"
        return ""
    advanced = [s for s in _list(params.get("advancedEventSelectors")) if type(s) is dict]
    if not advanced:
        return ""
    for selector in advanced:
        for field in _list(selector.get("fieldSelectors")):
            field = _dict(field)
            if field.get("field") == "eventCategory" and "Management" in _list(
                    field.get("equals")):
                return ""
    return "no advanced event selector selects management events"


def event_selectors(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    why = _selector_drops(params)
    if not why:
        return []
    trail = _str(params.get("trailName")) or "(unnamed)"
    return [Finding("aws.trail_selectors_reduced", "critical", _LOGS,
                    f"trail {trail} stops recording management events: {why}", trail)]


def insight_selectors(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    if "insightSelectors" not in params or _list(params.get("insightSelectors")):
        return []
    trail = _str(params.get("trailName")) or "(unnamed)"
    return [Finding("aws.trail_selectors_reduced", "medium", _LOGS,
                    f"trail {trail}: every Insights selector removed", trail)]


def _expiry_days(rule: dict[str, Any]) -> int | None:
    if rule.get("Status") != "Enabled":
        return None
    for key, field in (("Expiration", "Days"), ("NoncurrentVersionExpiration",
                                                "NoncurrentDays")):
        try:
            days = int(_dict(rule.get(key)).get(field))
        except (TypeError, ValueError):
            continue
        if 0 <= days <= _SHORT_LIFECYCLE_DAYS:
            return days
    return None


def short_lifecycle(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An enabled lifecycle rule deleting objects within a week. High when the record
    itself names the bucket or rule as CloudTrail's; otherwise medium (scratch buckets
    with short expiry exist)."""
    params = _params(record)
    configuration = _dict(params.get("LifecycleConfiguration"))
    bucket = _str(params.get("bucketName")) or "(unnamed)"
    for rule in _list(configuration.get("Rule")):
        rule = _dict(rule)
        days = _expiry_days(rule)
        if days is None:
            continue
        named = f"{bucket} {_str(rule.get('ID'))}".lower()
        severity = "high" if "cloudtrail" in named or "trail-log" in named else "medium"
        return [Finding("aws.short_log_lifecycle", severity, ("T1485",) + _LOGS,
                        f"S3 bucket {bucket} set to delete objects after {days} day(s)",
                        bucket)]
    return []


def flow_logs_deleted(record: dict[str, Any], caller: Caller) -> list[Finding]:
    if caller.family in _DEPLOY_FAMILIES:
        return []
    params = _params(record)
    ids = params.get("flowLogIds") or _dict(params.get("DeleteFlowLogsRequest")).get(
        "FlowLogId")
    names = []
    for item in _items(ids):
        value = _dict(item).get("content") if type(item) is dict else item
        if type(value) is str:
            names.append(value[:64])
    shown = ", ".join(names[:3]) or "(unnamed)"
    return [Finding("aws.flow_logs_deleted", "medium", _LOGS,
                    f"VPC flow logs deleted: {shown}", shown)]


def _managed_role(record: dict[str, Any]) -> bool:
    """Whether an AWS service or a role of AWS's account management (Control Tower,
    StackSets, a service-linked role) made the request: Security Hub's central
    configuration and Control Tower's controls switch services off in member accounts."""
    return _by_service(record) or _role(record).startswith(_MANAGED_ROLE_PREFIXES)


def guardduty_detector(record: dict[str, Any], caller: Caller) -> list[Finding]:
    if _managed_role(record):
        return []
    params = _params(record)
    name = record.get("eventName")
    if name == "UpdateDetector" and params.get("enable") not in (False, "false"):
        return []
    detector = _str(params.get("detectorId")) or "(unnamed)"
    verb = "deleted" if name == "DeleteDetector" else "disabled"
    return [Finding("aws.detection_disabled", "critical", _TOOLS,
                    f"GuardDuty detector {detector} {verb}", detector)]


def config_recorder(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """AWS Config stopped or its recorder or delivery channel deleted. Control Tower and
    StackSets roles and AWS services manage the recorder of enrolled accounts (and delete
    it when an account leaves their care): their requests are not judged."""
    if _managed_role(record):
        return []
    params = _params(record)
    name = _str(params.get("configurationRecorderName")
                or params.get("deliveryChannelName")) or "(unnamed)"
    what = {"StopConfigurationRecorder": "configuration recorder stopped",
            "DeleteConfigurationRecorder": "configuration recorder deleted",
            "DeleteDeliveryChannel": "delivery channel deleted"}.get(
        str(record.get("eventName")), "changed")
    return [Finding("aws.detection_disabled", "critical", _TOOLS,
                    f"AWS Config {what} ({name})", name)]


def security_hub(record: dict[str, Any], caller: Caller) -> list[Finding]:
    if _managed_role(record):
        return []
    return [Finding("aws.detection_disabled", "critical", _TOOLS,
                    "Security Hub disabled in this account and region", "securityhub")]


def leave_organization(record: dict[str, Any], caller: Caller) -> list[Finding]:
    account = caller.account or "(unknown)"
    return [Finding("aws.leave_organization", "high", _HIERARCHY + _TOOLS,
                    f"account {account} asked to leave its organisation (its guardrails and "
                    "central logging would no longer apply)", account)]


# Services whose organisation-wide integration turns detection or logging on in every
# member account: detaching one stops it everywhere at once.
_ORG_SECURITY_SERVICES = {
    "guardduty.amazonaws.com": "GuardDuty", "securityhub.amazonaws.com": "Security Hub",
    "cloudtrail.amazonaws.com": "CloudTrail", "config.amazonaws.com": "AWS Config",
    "config-multiaccountsetup.amazonaws.com": "AWS Config rules",
    "macie.amazonaws.com": "Macie", "inspector2.amazonaws.com": "Inspector",
    "detective.amazonaws.com": "Detective", "access-analyzer.amazonaws.com": "Access Analyzer",
}


def organization_security(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """The organisation's management account detaching a security service from every
    member account (DisableAWSServiceAccess) or removing the account that administers it
    (DeregisterDelegatedAdministrator). Control Tower, StackSets, AWS services and
    infrastructure-as-code rewire these when landing zones change and are left out."""
    service = _ORG_SECURITY_SERVICES.get(str(_params(record).get("servicePrincipal")))
    if service is None or _managed(record, caller):
        return []
    if record.get("eventName") == "DisableAWSServiceAccess":
        what = f"{service} detached from every account of the organisation"
    else:
        admin = _str(_params(record).get("accountId"), 12) or "(unnamed)"
        what = f"delegated administrator {admin} of {service} removed for the organisation"
    return [Finding("aws.detection_disabled", "high", _TOOLS, what, service)]


def account_removed(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """The management account removing a member account from the organisation: the
    account leaves its guardrails and central logging, like LeaveOrganization asked from
    inside. Medium: closing an account starts the same way, but it is rare enough to
    check; Control Tower and infrastructure-as-code are left out."""
    if _managed(record, caller):
        return []
    account = _str(_params(record).get("accountId"), 12) or "(unknown)"
    return [Finding("aws.leave_organization", "medium", _HIERARCHY + _TOOLS,
                    f"account {account} removed from the organisation (its guardrails and "
                    "central logging no longer apply)", account)]


def dns_logs_deleted(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    config = _str(params.get("resolverQueryLogConfigId")) or "(unnamed)"
    verb = ("deleted" if record.get("eventName") == "DeleteResolverQueryLogConfig"
            else "detached from a VPC")
    return [Finding("aws.dns_logs_deleted", "medium", _LOGS,
                    f"Route 53 resolver query logging {config} {verb}", config)]


# ---------------------------------------------------------------- more defense evasion


def _source(record: dict[str, Any]) -> str:
    source = record.get("eventSource")
    return source.partition(".")[0] if type(source) is str else ""


def macie(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """Macie switched off, paused, or told to publish its findings hours late (the
    default is every 15 minutes: a six-hour delay lets an exfiltration finish first)."""
    if not _source(record).startswith("macie"):
        return []
    if record.get("eventName") == "DisableMacie":
        return [Finding("aws.detection_disabled", "critical", _TOOLS,
                        "Macie disabled in this account and region", "macie")]
    params = _params(record)
    if params.get("status") == "PAUSED":
        return [Finding("aws.detection_disabled", "critical", _TOOLS,
                        "Macie paused: sensitive-data discovery stops", "macie")]
    delay = {"SIX_HOURS": ("medium", "six hours"), "ONE_HOUR": ("low", "an hour")}.get(
        str(params.get("findingPublishingFrequency")))
    if delay is None:
        return []
    return [Finding("aws.detection_disabled", delay[0], _TOOLS,
                    f"Macie findings now published every {delay[1]}: alerts on sensitive "
                    "data reach responders late", "macie")]


# Roles AWS itself and its account-management services act through: service-linked roles,
# Control Tower's execution role and the roles CloudFormation StackSets deploy with.
_MANAGED_ROLE_PREFIXES = ("AWSServiceRoleFor", "AWSControlTowerExecution", "stacksets-exec-",
                          "AWSCloudFormationStackSetExecutionRole")


def _role(record: dict[str, Any]) -> str:
    """The role name of an assumed-role caller ('' for any other caller)."""
    identity = _dict(record.get("userIdentity"))
    issuer = _dict(_dict(identity.get("sessionContext")).get("sessionIssuer"))
    name = issuer.get("userName")
    if type(name) is str and name:
        return name
    arn = identity.get("arn")
    if type(arn) is str and ":assumed-role/" in arn:
        return arn.partition(":assumed-role/")[2].partition("/")[0]
    return ""


def _managed(record: dict[str, Any], caller: Caller) -> bool:
    """Whether an organisation's own machinery made the request: an AWS service on the
    caller's behalf, a managed role (Control Tower enrolling or removing an account,
    Security Hub's organisation configuration), or infrastructure-as-code."""
    return caller.family in _DEPLOY_FAMILIES or _managed_role(record)


def members_removed(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A GuardDuty, Security Hub or Macie administrator account that stops watching its
    member accounts: their findings no longer reach the central security team. The
    organisation's own machinery does this when accounts move or close (Control Tower,
    the services' organisation configuration, membership kept as code) and is left out."""
    service = {"guardduty": "GuardDuty", "securityhub": "Security Hub",
               "macie2": "Macie"}.get(_source(record))
    if service is None or _managed(record, caller):
        return []
    accounts = [a for a in _list(_params(record).get("accountIds")) if type(a) is str]
    shown = ", ".join(a[:12] for a in accounts[:3]) or "(unnamed)"
    return [Finding("aws.detection_disabled", "high", _TOOLS,
                    f"{service} stops watching member account(s) {shown} "
                    f"({record.get('eventName')})", shown)]


# Filter actions that hide matching findings as they are made, per service
_HIDING_FILTERS = {"guardduty": ("ARCHIVE", "GuardDuty"), "macie2": ("ARCHIVE", "Macie"),
                   "inspector2": ("SUPPRESS", "Inspector")}


def finding_filter(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A GuardDuty or Macie filter that archives, or an Inspector filter that suppresses,
    matching findings as they are made: a standing suppression rule nobody reviews (the
    attacker's own address, say). Suppression rules kept as code are reviewed like code and
    are left out."""
    if caller.family in _DEPLOY_FAMILIES:
        return []
    hiding = _HIDING_FILTERS.get(_source(record))
    params = _params(record)
    if hiding is None or params.get("action") != hiding[0]:
        return []
    name = _str(params.get("filterName") or params.get("name")) or "(unnamed)"
    return [Finding("aws.detection_disabled", "high", _TOOLS,
                    f"{hiding[1]} filter {name} hides matching findings as they are made "
                    f"({hiding[0]})", name)]


def security_hub_findings(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """Security Hub findings suppressed or archived through the API, or a product's
    findings no longer imported. Analysts triage in the console, so console sessions are
    left out; a script that silences findings is someone hiding what was found."""
    name = record.get("eventName")
    if name == "DisableImportFindingsForProduct":
        arn = _str(_params(record).get("productSubscriptionArn"), 200) or "(unnamed)"
        return [Finding("aws.detection_disabled", "high", _TOOLS,
                        f"Security Hub stops importing findings of {arn}", arn)]
    if caller.family == "console" or _by_service(record):  # analysts, automation rules
        return []
    params = _params(record)
    workflow = _dict(params.get("Workflow")).get("Status")
    state = params.get("RecordState")
    if workflow != "SUPPRESSED" and state != "ARCHIVED":
        return []
    count = len(_list(params.get("FindingIdentifiers"))) or 1
    verb = "suppressed" if workflow == "SUPPRESSED" else "archived"
    return [Finding("aws.detection_disabled", "medium", _TOOLS,
                    f"{count} Security Hub finding(s) {verb} by a script ({name})", verb)]


def bedrock_logging(record: dict[str, Any], caller: Caller) -> list[Finding]:
    return [Finding("aws.logging_disabled", "high", _LOGS,
                    "Bedrock model invocation logging deleted: prompts and responses are no "
                    "longer recorded", "bedrock")]


def guardrail_deleted(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A Bedrock guardrail deleted: what it filtered (prompt attacks, sensitive data in
    answers) now passes. Its update is not judged: CloudTrail hides the new content."""
    guardrail = _str(_params(record).get("guardrailIdentifier")) or "(unnamed)"
    return [Finding("aws.guardrail_removed", "medium", _TOOLS,
                    f"Bedrock guardrail {guardrail} deleted", guardrail)]


def waf_removed(record: dict[str, Any], caller: Caller) -> list[Finding]:
    resource = _str(_params(record).get("resourceArn"), 300)
    if not resource:
        return []
    return [Finding("aws.waf_removed", "medium", _FIREWALL,
                    f"web ACL removed from {resource}: its requests are no longer filtered",
                    resource)]


# ---------------------------------------------------------------- data protection removed


def _bucket(params: dict[str, Any]) -> str:
    return _str(params.get("bucketName")) or "(unnamed)"


def _block_off(config: dict[str, Any]) -> bool:
    """Whether a public access block configuration lets a public policy or a public ACL
    take effect again (both settings of a pair turned off)."""
    def off(key: str) -> bool:
        return config.get(key) in (False, "false")
    return (off("BlockPublicPolicy") and off("RestrictPublicBuckets")) or (
        off("BlockPublicAcls") and off("IgnorePublicAcls"))


def bucket_protection(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """S3 controls that keep data private and recoverable removed: default encryption,
    the public access block, replication (the off-site copy), versioning and MFA delete
    (what lets deleted or overwritten objects come back). Ransomware and exfiltration
    remove them first."""
    name = record.get("eventName")
    params = _params(record)
    bucket = _bucket(params)
    if name == "DeleteBucketEncryption":
        found = ("medium", _TOOLS, f"default encryption of S3 bucket {bucket} removed (new "
                 "objects fall back to S3-managed keys: no KMS key policy guards them)")
    elif name == "DeleteBucketReplication":
        found = ("medium", _RECOVERY, f"replication of S3 bucket {bucket} deleted")
    elif name == "DeleteAccountPublicAccessBlock":
        found = ("high", ("T1530", "T1562.007"),
                 "the account's S3 public access block deleted: public bucket policies and "
                 "ACLs take effect again")
        bucket = "account"
    elif name == "DeleteBucketPublicAccessBlock" or (
            name == "PutBucketPublicAccessBlock"
            and _block_off(_dict(params.get("PublicAccessBlockConfiguration")))):
        found = ("high", ("T1530", "T1562.007"),
                 f"public access block of S3 bucket {bucket} removed: a public policy or ACL "
                 "takes effect again")
    else:
        return _versioning(params, bucket)
    return [Finding("aws.data_protection_removed", found[0], found[1], found[2], bucket)]


def _versioning(params: dict[str, Any], bucket: str) -> list[Finding]:
    config = _dict(params.get("VersioningConfiguration"))
    what, severity = [], "medium"
    if config.get("Status") in ("Suspended", "Disabled"):
        what.append("versioning suspended")
        severity = "high"
    if config.get("MfaDelete") == "Disabled":
        what.append("MFA delete turned off")
    if not what:
        return []
    return [Finding("aws.data_protection_removed", severity, _RECOVERY,
                    f"S3 bucket {bucket}: {' and '.join(what)}: deleted or overwritten "
                    "objects can no longer be recovered", bucket)]


def bucket_logging(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """PutBucketLogging that turns server access logging off (a status without a target);
    a request that names no status at all says nothing and is left alone."""
    params = _params(record)
    if "BucketLoggingStatus" not in params or _turns_logging_on(record):
        return []
    bucket = _bucket(params)
    return [Finding("aws.logging_disabled", "high", _LOGS,
                    f"server access logging of S3 bucket {bucket} turned off", bucket)]


def ebs_default_encryption(record: dict[str, Any], caller: Caller) -> list[Finding]:
    region = _str(record.get("awsRegion"), 32) or "this region"
    return [Finding("aws.data_protection_removed", "medium", _TOOLS,
                    f"EBS encryption by default turned off in {region}: new volumes and "
                    "snapshot copies are stored unencrypted", region)]


def db_protection(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """ModifyDBInstance/ModifyDBCluster turning deletion protection off or automated
    backups off (retention 0): what an attacker does before deleting a database."""
    params = _params(record)
    what, severity, attack = [], "low", _DESTRUCTION
    if params.get("deletionProtection") in (False, "false"):
        what.append("deletion protection turned off")
    if str(params.get("backupRetentionPeriod")) == "0":
        what.append("automated backups turned off")
        severity, attack = "medium", _RECOVERY + _DESTRUCTION
    if not what:
        return []
    name = _str(params.get("dBInstanceIdentifier") or params.get("dBClusterIdentifier"))
    return [Finding("aws.data_protection_removed", severity, attack,
                    f"RDS database {name or '(unnamed)'}: {' and '.join(what)}",
                    name or "(unnamed)")]


def db_modified(record: dict[str, Any], caller: Caller) -> list[Finding]:
    return db_public(record, caller) + db_protection(record, caller)


def kms_key_loss(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A KMS key disabled, scheduled for deletion, or its imported material deleted:
    everything encrypted under it becomes unreadable (deletion cannot be undone once the
    waiting period ends). A service deleting a stack's key (CloudFormation, Service Catalog)
    is a teardown, like infrastructure-as-code's own requests."""
    if _by_service(record):
        return []
    name = record.get("eventName")
    params = _params(record)
    key = _str(params.get("keyId")) or "(unnamed)"
    if name == "ScheduleKeyDeletion":
        days = params.get("pendingWindowInDays")
        when = f" in {days} days" if type(days) is int else ""
        return [Finding("aws.kms_key_loss", "high", _DESTRUCTION,
                        f"KMS key {key} scheduled for deletion{when}: data encrypted under "
                        "it becomes unreadable", key)]
    if name == "DeleteImportedKeyMaterial":
        return [Finding("aws.kms_key_loss", "high", _DESTRUCTION,
                        f"imported material of KMS key {key} deleted: the key is unusable "
                        "at once", key)]
    return [Finding("aws.kms_key_loss", "medium", _DESTRUCTION,
                    f"KMS key {key} disabled: data encrypted under it cannot be decrypted",
                    key)]


# ---------------------------------------------------------------- exfiltration, impact


def _request(record: dict[str, Any]) -> dict[str, Any]:
    """EC2's newer actions wrap their parameters in ``<EventName>Request``."""
    params = _params(record)
    return _dict(params.get(f"{record.get('eventName')}Request")) or params


def _field(params: dict[str, Any], name: str) -> str:
    """A field in EC2's two spellings (``NetworkInterfaceId``, ``networkInterfaceId``)."""
    return _str(params.get(name) or params.get(name[0].lower() + name[1:]), 64)


def traffic_mirror(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """Traffic mirroring: a copy of every packet of a network interface sent to another
    interface or load balancer, where credentials and data in clear text can be read."""
    name = record.get("eventName")
    params = _request(record)
    if name == "CreateTrafficMirrorSession":
        source = _field(params, "NetworkInterfaceId")
        target = _field(params, "TrafficMirrorTargetId") or "(unnamed)"
        return [Finding("aws.traffic_mirroring", "high", _SNIFFING + _TRANSFER,
                        f"traffic of network interface {source} mirrored to target {target}",
                        source)] if source else []
    if name == "ModifyTrafficMirrorSession":
        session = _field(params, "TrafficMirrorSessionId")
        return [Finding("aws.traffic_mirroring", "medium", _SNIFFING + _TRANSFER,
                        f"traffic mirror session {session} changed", session)] if session else []
    target = _field(params, "NetworkInterfaceId") or _field(params, "NetworkLoadBalancerArn")
    if not target:
        return []
    return [Finding("aws.traffic_mirroring", "medium", _SNIFFING,
                    f"traffic mirror target created on {target}: packets can be copied to "
                    "it", target)]


def _outside_key(params: dict[str, Any], caller: Caller) -> str:
    """The account of a KMS key of another account that a write encrypts with ('')."""
    key = params.get("x-amz-server-side-encryption-aws-kms-key-id")
    account = _account_of(key) if type(key) is str else ""
    return account if caller.outside(account) else ""


def _bucket_accounts(record: dict[str, Any], caller: Caller) -> list[str]:
    """Outside accounts owning a bucket a request touched (CloudTrail's ``resources``)."""
    found = []
    for item in _list(record.get("resources")):
        item = _dict(item)
        account = item.get("accountId")
        if item.get("type") == "AWS::S3::Bucket" and type(account) is str \
                and caller.outside(account) and account not in found:
            found.append(account)
    return found


def object_write(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An S3 write that shows ransomware or exfiltration: objects encrypted with another
    account's KMS key or with a customer-provided key AWS does not keep (only the holder
    can decrypt them), a ransom note, or a copy between this account and another's
    bucket. Writes a service makes for the caller (S3 Batch Operations, DataSync) follow a
    job someone configured ahead and are left out."""
    if _by_service(record):
        return []
    name = record.get("eventName")
    params = _params(record)
    bucket, key = _bucket(params), _str(params.get("key"), 300)
    out = []
    account = _outside_key(params, caller)
    if account:
        out.append(Finding("aws.s3_ransom_encryption", "high", _RANSOM,
                           f"object {bucket}/{key} encrypted with a KMS key of account "
                           f"{account}: only that account can decrypt it", account))
    elif name == "CopyObject" and "x-amz-server-side-encryption-customer-algorithm" in params:
        out.append(Finding("aws.s3_ransom_encryption", "medium", _RANSOM,
                           f"object {bucket}/{key} rewritten with a customer-provided key "
                           "(SSE-C) that AWS does not keep: without it the copy is unreadable",
                           bucket))
    if name == "PutObject" and key and ransom_note(key):
        out.append(Finding("aws.s3_ransom_note", "high", _RANSOM + _DESTRUCTION,
                           f"object {bucket}/{key} named like a ransom note", key))
    if name == "CopyObject":
        for other in _bucket_accounts(record, caller)[:2]:
            source = _str(params.get("x-amz-copy-source"), 300) or "(unnamed)"
            out.append(Finding("aws.s3_copy_external", "medium", _TRANSFER,
                               f"object copied between this account and a bucket of account "
                               f"{other} ({source} to {bucket}/{key})", other))
    return out


def batch_delete(record: dict[str, Any], caller: Caller) -> list[Any]:
    """One DeleteObjects request (up to 1,000 objects) toward ``aws.mass_deletion``:
    many in minutes empty buckets faster than any clean-up job needs. Deletions by
    infrastructure-as-code or by a service for the caller (a Batch Operations job) are
    left out."""
    if caller.family in _DEPLOY_FAMILIES or _by_service(record):
        return []
    return [Tally("aws.mass_deletion", "high", _DESTRUCTION, "batch deletions of objects",
                  (_bucket(_params(record)),), calls=True)]


def db_snapshot_export(record: dict[str, Any], caller: Caller) -> list[Finding]:
    params = _params(record)
    source = _str(params.get("sourceArn"), 300).rpartition(":")[2] or "(unnamed)"
    bucket = _str(params.get("s3BucketName")) or "(unnamed)"
    return [Finding("aws.db_snapshot_moved", "medium", _TRANSFER,
                    f"RDS snapshot {source} exported to S3 bucket {bucket}: its tables leave "
                    "the database as files", bucket)]


def _by_service(record: dict[str, Any]) -> bool:
    """Whether an AWS service made the request on the caller's behalf."""
    source = record.get("sourceIPAddress")
    return (type(source) is str and source.endswith(".amazonaws.com")) or (
        "invokedBy" in _dict(record.get("userIdentity")))


_REGION_RX = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:([a-z0-9-]+):")


def snapshot_copy(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A snapshot copied (RDS or EBS) with a KMS key of another account (high: only that
    account can restore it) or into another region (low: disaster recovery copies look
    the same, but the copy is out of the watched region; copies AWS Backup or a lifecycle
    policy makes on the caller's behalf are not judged, with another account's key too:
    AWS Backup copies into the organisation's backup account that way)."""
    if _by_service(record):
        return []
    params = _params(record)
    source = _str(params.get("sourceDBSnapshotIdentifier")
                  or params.get("sourceDBClusterSnapshotIdentifier")
                  or params.get("sourceSnapshotId"), 300) or "(unnamed)"
    key = params.get("kmsKeyId")
    account = _account_of(key) if type(key) is str else ""
    if caller.outside(account):
        return [Finding("aws.db_snapshot_moved", "high", _TRANSFER + _RANSOM,
                        f"snapshot {source} copied with a KMS key of account {account}",
                        account)]
    here = record.get("awsRegion")
    match = _REGION_RX.match(source)
    origin = params.get("sourceRegion") or (match.group(1) if match else None)
    if type(origin) is not str or type(here) is not str or origin == here:
        return []
    return [Finding("aws.db_snapshot_moved", "low", _TRANSFER,
                    f"snapshot {source} copied from {origin[:32]} to {here[:32]}", here[:32])]


def function_url(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A Lambda function URL with no authentication: anyone on the internet can invoke
    the function. Webhooks made as code are a design choice, hence the value
    ``public-url`` (not ``public``): infrastructure-as-code requests are not alerted."""
    params = _params(record)
    if params.get("authType") != "NONE":
        return []
    function = _function(params)
    return [Finding("aws.lambda_shared", "medium", _ROLES + _TRANSFER,
                    f"Lambda function {function} given a URL without authentication "
                    "(AuthType NONE): anyone can invoke it", "public-url")]


# ---------------------------------------------------------------- credentials, lateral


def secret_batch(record: dict[str, Any], caller: Caller) -> list[Any]:
    """BatchGetSecretValue: by names, each toward ``aws.secrets_burst``; by filters whose
    every value is negated (``!tag-that-does-not-exist``), every secret the caller can
    read at once, which an application that knows its secrets never asks for."""
    params = _params(record)
    if "secretIdList" in params or caller.family in _DEPLOY_FAMILIES:
        return secret_read(record, caller)
    values = [v for f in _list(params.get("filters")) for v in _list(_dict(f).get("values"))]
    if not values or not all(type(v) is str for v in values):
        return []
    shown = ", ".join(v[:40] for v in values[:3])
    if all(v.startswith("!") for v in values):
        return [Finding("aws.secrets_burst", "high", ("T1555.006",),
                        f"every readable secret requested at once: BatchGetSecretValue with "
                        f"only negated filters ({shown})", "catch-all")]
    return [Tally("aws.secrets_burst", "medium", ("T1555.006",), "secrets",
                  (f"filter {shown}",))]


# SSM documents that run whatever script the caller passes
_SHELL_DOCUMENTS = ("runshellscript", "runpowershellscript", "runremotescript")


def remote_command(record: dict[str, Any], caller: Caller) -> list[Any]:
    """One SSM shell command or EC2 Instance Connect key push toward
    ``aws.remote_command_spread``: a stolen credential moving across instances reaches
    many in minutes, an engineer one or two. Commands of SSM itself (State Manager) and
    of infrastructure-as-code are left out."""
    if caller.family in _DEPLOY_FAMILIES or "invokedBy" in _dict(record.get("userIdentity")):
        return []
    params = _params(record)
    if record.get("eventName") == "SendCommand":
        document = _str(params.get("documentName")).lower()
        if not document.endswith(_SHELL_DOCUMENTS):
            return []
        ids = [i for i in _list(params.get("instanceIds")) if type(i) is str]
        for target in _list(params.get("targets")):
            target = _dict(target)
            values = [v for v in _list(target.get("values")) if type(v) is str]
            if target.get("key") == "InstanceIds":
                ids += values
            elif values:
                ids.append(f"{_str(target.get('key'), 64)}={values[0][:64]}")
    else:
        ids = [_str(params.get("instanceId"), 64)] if params.get("instanceId") else []
    if not ids:
        return []
    return [Tally("aws.remote_command_spread", "medium", _REMOTE,
                  "instances reached by shell commands or pushed SSH keys",
                  tuple(i[:64] for i in ids), limit=5)]


# families of clients that are code, not a browser or the AWS sign-in pages
_SCRIPT_FAMILIES = frozenset({"python-requests", "curl", "go-http", "boto3", "aws-cli",
                              "aws-sdk", "aws-sdk-go", "aws-sdk-java", "aws-sdk-js",
                              "aws-sdk-dotnet", "aws-sdk-ruby", "stratus-red-team"})


def federation_token(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """GetFederationToken with an IAM user's long-term key: the federated credentials it
    returns stay valid (up to 36 hours) after the key is deleted, so a responder who
    deletes the leaked key has not locked the attacker out."""
    identity = _dict(record.get("userIdentity"))
    key = identity.get("accessKeyId")
    if identity.get("type") != "IAMUser" or caller.family in _DEPLOY_FAMILIES or (
            type(key) is str and key.startswith("ASIA")):
        return []
    name = _str(_params(record).get("name"), 64) or "(unnamed)"
    return [Finding("aws.federated_session", "medium", _TOKENS,
                    f"IAM user {caller.name or '(unnamed)'} minted federated credentials "
                    f"({name}) with its long-term key: they outlive the key", name)]


def signin_token(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A console sign-in token asked for by code: programmatic credentials (a federated
    user's, or a role session's from a script) turned into a console session, which
    tools that abuse stolen keys do. IAM Identity Center and browser flows are left out."""
    identity = _dict(record.get("userIdentity"))
    kind = identity.get("type")
    if caller.sso or not (kind == "FederatedUser" or (
            kind == "AssumedRole" and caller.family in _SCRIPT_FAMILIES)):
        return []
    who = caller.name or "(unnamed)"
    how = "a federated user" if kind == "FederatedUser" else f"a script ({caller.family})"
    return [Finding("aws.federated_session", "medium", _TOKENS,
                    f"console sign-in token requested for {who} by {how}: programmatic "
                    "credentials turned into a console session", who)]


# ---------------------------------------------------------------- initial access


def console_login(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An IAM user's successful console sign-in without MFA (SAML and role sessions
    carry MFA elsewhere, so only IAMUser records are judged)."""
    identity = _dict(record.get("userIdentity"))
    if identity.get("type") != "IAMUser":
        return []
    extra = _dict(record.get("additionalEventData"))
    outcome = _dict(record.get("responseElements")).get("ConsoleLogin")
    if extra.get("MFAUsed") != "No" or extra.get("SamlProviderArn") or outcome != "Success":
        return []
    user = _str(identity.get("userName")) or caller.name or "(unnamed)"
    return [Finding("aws.console_login_without_mfa", "low", _CLOUD_ACCOUNTS,
                    f"IAM user {user} signed in to the console without MFA", user)]


def root_activity(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """The root user acting: its own sign-in, or any change it makes (reads are left to
    the behavioural models). Service events are AWS's own doing, and a sign-in event
    that failed (``responseElements`` says ``Failure``) changed nothing."""
    if record.get("eventType") == "AwsServiceEvent":
        return []
    name = _str(record.get("eventName"), 128)
    if record.get("readOnly") in (True, "true") and name != "ConsoleLogin":
        return []
    if name.startswith(("Get", "List", "Describe", "Head")):
        return []
    if name == "CreateServiceLinkedRole":  # AWS's side effect of a service being turned on
        return []
    if "Failure" in _dict(record.get("responseElements")).values():
        return []
    return [Finding("aws.root_activity", "medium", _CLOUD_ACCOUNTS,
                    f"the account's root user called {name}", "root")]


# ---------------------------------------------------------------- credential access bursts


def secret_read(record: dict[str, Any], caller: Caller) -> list[Any]:
    """One secret read toward ``aws.secrets_burst``. An infrastructure-as-code refresh
    reads every secret it manages and is left out."""
    if caller.family in _DEPLOY_FAMILIES:
        return []
    params = _params(record)
    name = params.get("secretId")
    values = (_str(name),) if type(name) is str else ()
    if record.get("eventName") == "BatchGetSecretValue":
        values = tuple(_str(v) for v in _list(params.get("secretIdList")) if type(v) is str)
    if not values:
        return []
    return [Tally("aws.secrets_burst", "medium", ("T1555.006",), "secrets", values)]


def parameter_read(record: dict[str, Any], caller: Caller) -> list[Any]:
    """A SecureString parameter read with decryption toward ``aws.secrets_burst``."""
    params = _params(record)
    if caller.family in _DEPLOY_FAMILIES or params.get("withDecryption") not in (True, "true"):
        return []
    names = params.get("names") if "names" in params else [params.get("name")]
    values = tuple(_str(n) for n in _list(names) if type(n) is str and n)
    if not values:
        return []
    return [Tally("aws.secrets_burst", "medium", ("T1555.006",), "secrets", values)]


def password_data(record: dict[str, Any], caller: Caller) -> list[Any]:
    instance = _str(_params(record).get("instanceId")) or "(unnamed)"
    return [Tally("aws.instance_password_burst", "high", ("T1552.001",),
                  "instance password reads", (instance,), calls=True)]


def user_data(record: dict[str, Any], caller: Caller) -> list[Any]:
    params = _params(record)
    if params.get("attribute") != "userData" or caller.family in _DEPLOY_FAMILIES:
        return []
    instance = _str(params.get("instanceId")) or "(unnamed)"
    return [Tally("aws.user_data_burst", "high", ("T1552.001",), "instance user-data reads",
                  (instance,), calls=True)]


# ---------------------------------------------------------------- exposed keys, hidden paths


# Policies AWS itself puts on an IAM user whose access key it found published (a public
# repository, a paste site): the managed quarantine policies and the older inline one.
_QUARANTINE_PREFIXES = ("AWSCompromisedKeyQuarantine", "AWSExposedCredentialPolicy")


def key_quarantined(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """AWS quarantining a user whose access key it found in public: whoever found it may
    already have used it, so everything the key did since it leaked needs review."""
    params = _params(record)
    policy = _str(params.get("policyArn")).rpartition("/")[2] or _str(params.get("policyName"))
    if not policy.startswith(_QUARANTINE_PREFIXES):
        return []
    user = _str(params.get("userName"), 128) or "(unnamed)"
    return [Finding("aws.key_exposed", "high", _CLOUD_ACCOUNTS + ("T1552.001",),
                    f"AWS quarantined IAM user {user} ({policy[:64]}): its access key was "
                    "found published", user)]


def key_checked_by_scanner(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """GetCallerIdentity by TruffleHog: the secret scanner checks each key it finds in code
    or logs this way, so the key was found where others can find it too. GetCallerIdentity
    by any other client is not judged here (every tool calls it)."""
    agent = record.get("userAgent")
    if type(agent) is not str or "trufflehog" not in agent.lower():
        return []
    key = _str(_dict(record.get("userIdentity")).get("accessKeyId"), 32)
    who = caller.name or key or "(unnamed)"
    return [Finding("aws.key_exposed", "medium", _CLOUD_ACCOUNTS + ("T1552.001",),
                    f"credentials of {who} checked by the TruffleHog secret scanner: the key "
                    "was found in code or logs", key or who)]


def policy_attached(record: dict[str, Any], caller: Caller) -> list[Finding]:
    return admin_policy_attached(record, caller) + key_quarantined(record, caller)


def inline_policy(record: dict[str, Any], caller: Caller) -> list[Finding]:
    return admin_inline_policy(record, caller) + key_quarantined(record, caller)


# What a container command reads to steal its task's (or the host's) role credentials: the
# ECS credentials endpoint, its environment variable, the instance metadata service.
_CREDENTIAL_ENDPOINTS = ("169.254.170.2", "aws_container_credentials_", "169.254.169.254",
                         "fd00:ec2::254")


def _commands(definition: dict[str, Any]) -> Iterator[str]:
    health = _dict(definition.get("healthCheck"))
    for field in (definition.get("command"), definition.get("entryPoint"),
                  health.get("command")):
        for part in _list(field):
            if type(part) is str:
                yield part[:2000].lower()


def task_definition(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A task definition whose container command reads the credentials endpoint (the task
    runs, fetches its role's or the instance's credentials and sends them out: workloads
    get credentials through the SDK, never by a command line naming the endpoint), or
    whose container is given the host (``privileged_task``)."""
    params = _params(record)
    return _credential_command(params) + privileged_task(params)


def _credential_command(params: dict[str, Any]) -> list[Finding]:
    for definition in _list(params.get("containerDefinitions")):
        definition = _dict(definition)
        for command in _commands(definition):
            hit = next((mark for mark in _CREDENTIAL_ENDPOINTS if mark in command), "")
            if hit:
                family = _str(params.get("family"), 128) or "(unnamed)"
                return [Finding("aws.container_credentials_read", "high", ("T1552.005",),
                                f"task definition {family}: container "
                                f"{_str(definition.get('name'), 64) or '(unnamed)'} reads the "
                                f"credentials endpoint ({hit}) in its command", family)]
    return []


def bucket_replication(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """Replication to a bucket of another account: every new object is copied out as it is
    written, an exfiltration that keeps going after the attacker leaves."""
    params = _params(record)
    configuration = _dict(params.get("ReplicationConfiguration"))
    accounts: list[str] = []
    for rule in _list(configuration.get("Rule")):
        destination = _dict(_dict(rule).get("Destination"))
        account = destination.get("Account")
        if type(account) is str and caller.outside(account) and account not in accounts:
            accounts.append(account)
    bucket = _bucket(params)
    out = []
    for other in accounts[:3]:
        out.append(Finding("aws.s3_replication_external", "high", _TRANSFER,
                           f"S3 bucket {bucket} replicated to a bucket of account {other}, "
                           "outside this account: each new object is copied there", other))
    return out


def table_export(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A DynamoDB table exported to a bucket owned by another account."""
    params = _params(record)
    owner = params.get("s3BucketOwner")
    if type(owner) is not str or not caller.outside(owner):
        return []
    table = _str(params.get("tableArn"), 300).rpartition("/")[2] or "(unnamed)"
    bucket = _str(params.get("s3Bucket")) or "(unnamed)"
    return [Finding("aws.dynamodb_export_external", "high", _TRANSFER,
                    f"DynamoDB table {table} exported to S3 bucket {bucket} of account "
                    f"{owner}, outside this account", owner)]


def notebook_lifecycle(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A SageMaker notebook given a lifecycle configuration, or a configuration's scripts
    replaced: the script runs as root at the notebook's next start, with its execution
    role's credentials at hand (the notebook's boot script, like EC2 user data)."""
    params = _params(record)
    if record.get("eventName") == "UpdateNotebookInstance":
        config = _str(params.get("lifecycleConfigName"), 128)
        notebook = _str(params.get("notebookInstanceName"), 128) or "(unnamed)"
        if not config:
            return []
        sentence = f"SageMaker notebook {notebook} given lifecycle configuration {config}"
    else:
        notebook = _str(params.get("notebookInstanceLifecycleConfigName"), 128)
        if not notebook:
            return []
        sentence = f"scripts of SageMaker lifecycle configuration {notebook} replaced"
    return [Finding("aws.instance_user_data_modified", "medium", _STARTUP_SCRIPT,
                    f"{sentence}: it runs as root at the next start", notebook)]


def registry_replication(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """ECR replication to a registry of another account: every image pushed (and the
    secrets baked into images) is copied there."""
    configuration = _dict(_params(record).get("replicationConfiguration"))
    accounts: list[str] = []
    for rule in _list(configuration.get("rules")):
        for destination in _list(_dict(rule).get("destinations")):
            account = _dict(destination).get("registryId")
            if type(account) is str and caller.outside(account) and account not in accounts:
                accounts.append(account)
    return _sharing("aws.ecr_repository_shared", "ECR registry (replication)", False,
                    accounts, attack=_EXPOSE_STORAGE)


def block_public_sharing_off(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """The region's block on public EBS snapshots or public AMIs turned off: sharing one
    with everyone works again, the step before making a snapshot or an image public."""
    region = _str(record.get("awsRegion"), 32) or "this region"
    what = "EBS snapshots" if "Snapshot" in str(record.get("eventName")) else "machine images"
    return [Finding("aws.data_protection_removed", "high", ("T1530", "T1562.007"),
                    f"block public access for {what} turned off in {region}: they can be "
                    "made public again", region)]


def domain_transfer(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A registered domain moved to another AWS account (high) or its transfer lock
    removed (medium, the step before moving it to another registrar): whoever holds the
    domain receives its mail and serves its sites."""
    params = _params(record)
    domain = _str(params.get("domainName"), 253)
    if not domain:
        return []
    if record.get("eventName") == "TransferDomainToAnotherAwsAccount":
        account = _str(params.get("accountId"), 12) or "(unnamed)"
        return [Finding("aws.domain_transfer", "high", ("T1098",),
                        f"domain {domain} being transferred to AWS account {account}", domain)]
    return [Finding("aws.domain_transfer", "medium", ("T1098",),
                    f"transfer lock of domain {domain} removed: it can be moved to another "
                    "registrar", domain)]


def vpc_peering(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A VPC peered with a VPC of another account: a network path out of the account that
    no security group of the other side is bound to respect (grants to one account as code
    are organisation wiring and not alerted)."""
    params = _request(record)
    account = _field(params, "PeerOwnerId")
    if not caller.outside(account):
        return []
    vpc = _field(params, "VpcId") or "(unnamed)"
    return [Finding("aws.vpc_peering_external", "medium", _TRANSFER,
                    f"VPC {vpc} peered with a VPC of account {account}, outside this account",
                    account)]


_BACKUP_DELETIONS = {"DeleteRecoveryPoint": "recovery point", "DeleteBackupVault": "vault",
                     "DeleteBackupPlan": "plan", "DeleteBackup": "backup"}


def backup_deleted(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An AWS Backup recovery point, vault or plan, or a DynamoDB backup, deleted: what a
    restore after ransomware or deletion would start from. Lifecycle expiry by AWS Backup
    itself (a service for the caller) and teardown as code are left out."""
    if _by_service(record):
        return []
    params = _params(record)
    name = _str(params.get("recoveryPointArn") or params.get("backupVaultName")
                or params.get("backupPlanId") or params.get("backupArn"), 300)
    if not name:
        return []
    what = _BACKUP_DELETIONS.get(str(record.get("eventName")), "backup")
    return [Finding("aws.data_protection_removed", "medium", _RECOVERY,
                    f"backup {what} {name} deleted", name)]


# ---------------------------------------------------------------- service abuse bursts


_SES_PROBES = frozenset({
    "GetAccountSendingEnabled", "GetSendQuota", "GetSendStatistics", "ListIdentities",
    "GetIdentityVerificationAttributes", "ListVerifiedEmailAddresses", "GetAccount",
    "ListEmailIdentities", "VerifyEmailIdentity", "VerifyEmailAddress",
    "VerifyDomainIdentity", "CreateEmailIdentity", "UpdateAccountSendingEnabled",
    "PutAccountDetails",
})
_SMS_PROBES = frozenset({
    "GetSMSAttributes", "SetSMSAttributes", "GetSMSSandboxAccountStatus",
    "ListSMSSandboxPhoneNumbers", "CreateSMSSandboxPhoneNumber", "VerifySMSSandboxPhoneNumber",
    "ListOriginationNumbers", "ListPhoneNumbersOptedOut",
})
_BEDROCK_PROBES = frozenset({
    "ListFoundationModels", "GetFoundationModelAvailability", "GetUseCaseForModelAccess",
    "PutUseCaseForModelAccess", "CreateFoundationModelAgreement",
    "PutFoundationModelEntitlement", "ListFoundationModelAgreementOffers",
    "GetModelInvocationLoggingConfiguration",
})


def service_probe(record: dict[str, Any], caller: Caller) -> list[Any]:
    """One SES, SNS text-message or Bedrock reconnaissance call toward
    ``aws.ses_probing``, ``aws.sms_probing`` or ``aws.llm_probing``: a stolen key is first
    checked for what it can sell, mail or text-message sending (quota, sending enabled,
    verified senders, the SMS sandbox) or language models (which are offered, whether
    invocations are logged, access to them requested). Distinct calls per region
    count: an application sending mail asks for its quota, a tool sweeps every question,
    often across regions. Console pages and infrastructure-as-code are not counted."""
    if caller.family in _DEPLOY_FAMILIES or caller.family == "console" or _by_service(record):
        return []
    name = str(record.get("eventName"))
    source = _source(record)
    if source == "ses" and name in _SES_PROBES:
        rule, noun = "aws.ses_probing", "SES reconnaissance calls (mail sending abuse)"
    elif source == "sns" and name in _SMS_PROBES:
        rule, noun = "aws.sms_probing", "SNS text-message reconnaissance calls (SMS abuse)"
    elif source == "bedrock" and name in _BEDROCK_PROBES:
        rule, noun = "aws.llm_probing", "Bedrock model reconnaissance calls (model hijacking)"
    else:
        return []
    region = _str(record.get("awsRegion"), 32)
    return [Tally(rule, "medium", _HIJACK[:1] + ("T1526",), noun,
                  (f"{name} in {region}" if region else name,), limit=3)]


def start_session(record: dict[str, Any], caller: Caller) -> list[Any]:
    """An SSM Session Manager session toward ``aws.remote_command_spread`` (a shell on the
    instance, like a pushed SSH key)."""
    if caller.family in _DEPLOY_FAMILIES or "invokedBy" in _dict(record.get("userIdentity")):
        return []
    target = _str(_params(record).get("target"), 64)
    if not target.startswith(("i-", "mi-")):
        return []
    return [Tally("aws.remote_command_spread", "medium", _REMOTE,
                  "instances reached by shell commands or pushed SSH keys", (target,),
                  limit=5)]


# ---------------------------------------------------------------- databases


def db_password(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A database's master password reset with programmatic credentials: whoever set it can
    sign in to the database and read every table, past any IAM control. Rotation by RDS or
    Secrets Manager (a service for the caller) and as code is left out, and so is the
    console, where a database administrator resets a forgotten password."""
    params = _params(record)
    if "masterUserPassword" not in params or caller.family == "console" or _by_service(record):
        return []
    name = _str(params.get("dBInstanceIdentifier") or params.get("dBClusterIdentifier"))
    return [Finding("aws.db_password_reset", "medium", ("T1098",) + _CLOUD_ACCOUNTS,
                    f"master password of RDS database {name or '(unnamed)'} reset: the caller "
                    "can now sign in to the database itself", name or "(unnamed)")]


def db_modify(record: dict[str, Any], caller: Caller) -> list[Finding]:
    return db_modified(record, caller) + db_password(record, caller)


def activity_stream(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A database activity stream stopped: the audit record of every query ends. A refused
    stop left the stream running and counts toward ``aws.permission_probing`` only."""
    if _managed_role(record) or record.get("errorCode"):
        return []
    name = _str(_params(record).get("resourceArn"), 300).rpartition(":")[2]
    if not name:
        return []
    return [Finding("aws.logging_disabled", "high", _LOGS,
                    f"database activity stream of {name} stopped: queries are no longer "
                    "audited", name)]


def automated_backup(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """Retained automated backups of a database deleted (what a restore after a deletion
    would start from)."""
    if _by_service(record):
        return []
    params = _params(record)
    name = _str(params.get("dbiResourceId") or params.get("dbClusterResourceId")
                or params.get("dBInstanceAutomatedBackupsArn"), 200)
    if not name:
        return []
    return [Finding("aws.data_protection_removed", "medium", _RECOVERY,
                    f"automated backups of RDS database {name} deleted", name)]


def db_security_group(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """AuthorizeDBSecurityGroupIngress (EC2-Classic database firewall) from anywhere; a
    refused one opened nothing and counts toward ``aws.permission_probing`` only."""
    if record.get("errorCode"):
        return []
    params = _params(record)
    cidr = params.get("cIDRIP") or params.get("cidrip")
    if cidr not in _OPEN_RANGES:
        return []
    group = _str(params.get("dBSecurityGroupName")) or "(unnamed)"
    return [Finding("aws.security_group_open", "high", _FIREWALL,
                    f"database security group {group} opened to the whole internet ({cidr})",
                    f"{group}:db")]


# ---------------------------------------------------------------- exposure, access paths


def build_project_public(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A CodeBuild project made public: anyone can read its build logs and artifacts, where
    keys and tokens printed by a build end up."""
    params = _params(record)
    if params.get("projectVisibility") != "PUBLIC_READ":
        return []
    project = _str(params.get("projectArn"), 300).rpartition("/")[2] or "(unnamed)"
    return [Finding("aws.codebuild_public", "high", ("T1530", "T1552.001"),
                    f"CodeBuild project {project} made public: its build logs and artifacts "
                    "can be read by anyone", "public")]


def serial_console(record: dict[str, Any], caller: Caller) -> list[Finding]:
    region = _str(record.get("awsRegion"), 32) or "this region"
    return [Finding("aws.serial_console_enabled", "medium", ("T1021.007",),
                    f"EC2 serial console access enabled in {region}: instances can be reached "
                    "below their network controls", region)]


def instance_export(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An instance or image exported to S3 as a disk file (VMDK, VHD, raw): the whole disk
    leaves EC2 and can be copied anywhere. Exports a service makes for the caller are not
    judged."""
    if _by_service(record):
        return []
    params = _params(record)
    thing = _str(params.get("instanceId") or params.get("imageId") or params.get("ImageId"),
                 64)
    if not thing:
        return []
    spec = _dict(params.get("exportToS3") or params.get("S3ExportLocation"))
    bucket = _str(spec.get("s3Bucket") or spec.get("S3Bucket")) or "(unnamed)"
    return [Finding("aws.instance_exported", "medium", _TRANSFER,
                    f"{thing} exported to S3 bucket {bucket} as a disk image", thing)]


def _interactive_admin(record: dict[str, Any], caller: Caller) -> bool:
    """A person in the console, infrastructure-as-code, or AWS's own machinery."""
    return caller.family == "console" or caller.sso or _managed(record, caller)


def identity_provider(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A SAML or OpenID Connect identity provider added or changed by a script: whoever
    controls the provider signs in as any role that trusts it, without a key of the
    account. IAM Identity Center (its service-linked role), infrastructure-as-code and
    administrators in the console are left out."""
    if _interactive_admin(record, caller):
        return []
    params = _params(record)
    name = _str(params.get("name") or params.get("sAMLProviderArn") or params.get("url")
                or params.get("openIDConnectProviderArn"), 200)
    if not name:
        return []
    action = _str(record.get("eventName"), 64)
    return [Finding("aws.identity_provider_changed", "medium", ("T1484.002",),
                    f"identity provider {name} changed by a script ({action}): it can sign "
                    "in as the roles that trust it", name)]


def profile_swap(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An instance given another role (its instance profile replaced, or one associated):
    code on the instance, which the caller may control, now runs with that role. Consoles,
    infrastructure-as-code and AWS's own machinery are left out."""
    if _interactive_admin(record, caller):
        return []
    params = _request(record)
    profile = _dict(params.get("IamInstanceProfile") or params.get("iamInstanceProfile"))
    name = _str(profile.get("Arn") or profile.get("arn") or profile.get("Name")
                or profile.get("name"), 200).rpartition("/")[2]
    if not name:
        return []
    instance = _field(params, "InstanceId")
    replaced = record.get("eventName") == "ReplaceIamInstanceProfileAssociation"
    where = f"instance {instance}" if instance else "an instance"
    verb = "replaced with" if replaced else "given"
    return [Finding("aws.instance_profile_swapped", "medium" if replaced else "low",
                    _ROLES, f"role of {where} {verb} instance profile {name} by a script",
                    name)]


# IAM writes that create or widen access; made by an EC2 instance's own role session they
# are code on the instance (or its stolen credentials) building a way back in.
_IAM_WRITES = frozenset({
    "CreateUser", "CreateAccessKey", "CreateLoginProfile", "UpdateLoginProfile",
    "AttachUserPolicy", "PutUserPolicy", "AttachRolePolicy", "PutRolePolicy",
    "AttachGroupPolicy", "PutGroupPolicy", "AddUserToGroup", "CreateRole",
    "UpdateAssumeRolePolicy", "CreatePolicyVersion", "SetDefaultPolicyVersion",
})
_INSTANCE_SESSION_RX = re.compile(r":assumed-role/[^/]+/i-[0-9a-f]{8,17}$")


def instance_iam(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An IAM identity or permission created by an EC2 instance's role session: instances
    run applications, which do not make users, keys or policies; an attacker with a shell
    on the instance (or its credentials) does. Infrastructure-as-code run from a build
    instance is left out."""
    arn = _dict(record.get("userIdentity")).get("arn")
    if type(arn) is not str or _INSTANCE_SESSION_RX.search(arn) is None:
        return []
    if caller.family in _DEPLOY_FAMILIES or str(record.get("eventSource")) != \
            "iam.amazonaws.com":
        return []
    instance = arn.rpartition("/")[2][:32]
    target = _principal_name(_params(record))
    action = _str(record.get("eventName"), 64)
    return [Finding("aws.instance_role_iam_change", "medium", _ROLES + _CLOUD_ACCOUNTS,
                    f"instance {instance} changed IAM with its role ({action} on {target})",
                    instance)]


def _none(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """The check of an event name read only by the checks every record of its kind gets
    (an IAM write by an instance session)."""
    return []


# ---------------------------------------------------------------- fourth round: ransom keys,
# unrecoverable deletions, containers given the host, MFA backdoors, audit log retention


def bucket_encryption(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A bucket's default encryption set to a KMS key of another account: every object
    written from now on is readable only while that account allows it, the bucket-wide
    form of ransomware by encryption. Organisations that keep their keys in a security
    account set this as code (left out, like services acting for the caller)."""
    if caller.family in _DEPLOY_FAMILIES or _by_service(record):
        return []
    params = _params(record)
    configuration = _dict(params.get("ServerSideEncryptionConfiguration"))
    for rule in _list(configuration.get("Rule")):
        default = _dict(_dict(rule).get("ApplyServerSideEncryptionByDefault"))
        key = default.get("KMSMasterKeyID")
        account = _account_of(key) if type(key) is str else ""
        if caller.outside(account):
            bucket = _bucket(params)
            return [Finding("aws.s3_ransom_encryption", "high", _RANSOM,
                            f"default encryption of S3 bucket {bucket} set to a KMS key of "
                            f"account {account}: new objects are readable only while that "
                            "account allows it", account)]
    return []


def database_deleted(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A database deleted with no final snapshot while its automated backups go with it
    (the default unless the request keeps them): nothing is left to restore from. Teardown
    as code, AWS services and a person in the console (a developer dropping a test
    database) are left out; a script doing it with a workload's or a user's key is how an
    attacker destroys data."""
    if _interactive_admin(record, caller):
        return []
    params = _params(record)
    if params.get("skipFinalSnapshot") not in _TRUE or params.get(
            "deleteAutomatedBackups") in (False, "false"):
        return []
    name = _str(params.get("dBInstanceIdentifier") or params.get("dBClusterIdentifier"))
    return [Finding("aws.unrecoverable_deletion", "medium", _DESTRUCTION + _RECOVERY,
                    f"RDS database {name or '(unnamed)'} deleted without a final snapshot "
                    "and with its automated backups: it cannot be restored",
                    name or "(unnamed)")]


def secret_destroyed(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A secret deleted with ``forceDeleteWithoutRecovery``: gone at once, without the
    recovery window (7 to 30 days) an ordinary deletion keeps, so whatever used it breaks
    for good. Teardown as code (a recovery window of 0), AWS services, the console and IAM
    Identity Center sessions are left out, like database deletions."""
    params = _params(record)
    if params.get("forceDeleteWithoutRecovery") not in _TRUE or _interactive_admin(
            record, caller):
        return []
    secret = _str(params.get("secretId"), 300).rpartition(":secret:")[2] or _str(
        params.get("secretId")) or "(unnamed)"
    return [Finding("aws.unrecoverable_deletion", "medium", _DESTRUCTION + _RECOVERY,
                    f"secret {secret} deleted without a recovery window: it cannot be "
                    "restored", secret)]


def metadata_downgraded(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An instance's metadata service (or the region's default for new instances) set to
    accept IMDSv1 again (``HttpTokens`` optional): a server-side request forgery in any
    application on it can then read the role's credentials with one GET, which IMDSv2's
    session token prevents. Legacy software that needs v1 is configured as code or in the
    console, which are left out with AWS's own machinery."""
    if _interactive_admin(record, caller):
        return []
    params = _request(record)
    if _field(params, "HttpTokens").lower() != "optional":
        return []
    instance = _field(params, "InstanceId")
    region = _str(record.get("awsRegion"), 32) or "this region"
    where = (f"instance {instance}" if instance
             else f"every new instance in {region} (account default)")
    return [Finding("aws.imds_downgraded", "medium", ("T1552.005", "T1562"),
                    f"metadata service of {where} set to accept IMDSv1 (HttpTokens optional): "
                    "its role credentials can be read without a session token",
                    instance or region)]


def key_lockout(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """A key policy written with ``bypassPolicyLockoutSafetyCheck``: KMS no longer checks
    that the caller can still manage the key, the switch a ransomware actor flips to set
    a policy that locks the account out of its own key (and out of everything encrypted
    under it). Kept apart from sharing so a grant to another account in the same request
    is still named."""
    params = _params(record)
    if params.get("bypassPolicyLockoutSafetyCheck") not in _TRUE:
        return []
    key = _str(params.get("keyId")) or "(new key)"
    return [Finding("aws.kms_key_loss", "medium", _DESTRUCTION + _RANSOM,
                    f"policy of KMS key {key} set with the lockout safety check bypassed: the "
                    "account may no longer be able to use or manage the key", key)]


def key_policy_set(record: dict[str, Any], caller: Caller) -> list[Finding]:
    return key_policy(record, caller) + key_lockout(record, caller)


def organization_joined(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """The account accepting an invitation to an organisation: after LeaveOrganization
    this is how an attacker moves a stolen account under an organisation they run (whose
    management account then sets its guardrails and can read it). Accounts join once in
    their life, through their administrators' consoles or account vending as code, which
    are left out."""
    if _interactive_admin(record, caller):
        return []
    handshake = _str(_params(record).get("handshakeId"), 64) or "(unnamed)"
    return [Finding("aws.leave_organization", "medium", _HIERARCHY,
                    f"account {caller.account or '(unknown)'} accepted handshake {handshake} "
                    "to join an organisation, by a script", handshake)]


def inspector_disabled(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """Amazon Inspector switched off for some resource types (EC2, ECR, Lambda): their
    vulnerabilities are no longer found. Security Hub's central configuration and Control
    Tower switch scanning in member accounts (managed roles) and are left out, with
    infrastructure-as-code."""
    if _managed(record, caller):
        return []
    kinds = [k for k in _list(_params(record).get("resourceTypes")) if type(k) is str]
    what = ", ".join(k[:16] for k in kinds[:4]) or "every resource type"
    return [Finding("aws.detection_disabled", "high", _TOOLS,
                    f"Inspector scanning disabled for {what}", "inspector")]


def archive_rule(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An IAM Access Analyzer archive rule: findings that match it (a bucket or role shared
    with an outside account) are archived as they are made, so the share an attacker opened
    never shows. Security teams write these in the console or as code after reviewing a
    known partner; a script writing one is hiding a finding."""
    if _interactive_admin(record, caller):
        return []
    params = _params(record)
    name = _str(params.get("ruleName"), 128) or "(unnamed)"
    analyzer = _str(params.get("analyzerName"), 128) or "(unnamed)"
    return [Finding("aws.detection_disabled", "medium", _TOOLS,
                    f"Access Analyzer {analyzer}: archive rule {name} hides matching external "
                    "access findings as they are made", name)]


# Linux capabilities that give a container the host: every capability, or administration
_HOST_CAPABILITIES = frozenset({"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE"})


def _host_access(definition: dict[str, Any], roots: set[str]) -> str:
    """What gives one container definition the host ('' for nothing): privileged mode,
    a capability of host administration, or a volume of the host's root directory."""
    if definition.get("privileged") in _TRUE:
        return "privileged mode"
    linux = _dict(definition.get("linuxParameters"))
    added = _list(_dict(linux.get("capabilities")).get("add"))
    capabilities = sorted({str(c).upper().removeprefix("CAP_") for c in added
                           if type(c) is str} & _HOST_CAPABILITIES)
    if capabilities:
        return f"capability {capabilities[0]}"
    for mount in _list(definition.get("mountPoints")):
        if _dict(mount).get("sourceVolume") in roots:
            return "the host's root directory mounted"
    return ""


def privileged_task(params: dict[str, Any]) -> list[Finding]:
    """An ECS task definition whose container is given the host: privileged mode, a host
    administration capability (SYS_ADMIN, SYS_MODULE, SYS_PTRACE, ALL) or the host's root
    directory as a volume. A process in it escapes to the instance and reads the
    credentials of every task there. Monitoring agents that mount the Docker socket or
    share the host's process list are not judged; agents given the host are deployed as
    code (left out with the rest of infrastructure-as-code)."""
    roots = {str(v.get("name")) for v in _list(params.get("volumes"))
             if type(v) is dict and _dict(v.get("host")).get("sourcePath") == "/"}
    for definition in _list(params.get("containerDefinitions")):
        definition = _dict(definition)
        how = _host_access(definition, roots)
        if how:
            family = _str(params.get("family"), 128) or "(unnamed)"
            container = _str(definition.get("name"), 64) or "(unnamed)"
            return [Finding("aws.privileged_task", "medium", ("T1610", "T1611"),
                            f"task definition {family}: container {container} given the "
                            f"host ({how}): it can escape to the instance", family)]
    return []


def mfa_enabled_for_other(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """An MFA device enrolled for another user with programmatic credentials: whoever
    holds the device passes that user's MFA checks (sign-in, MFA-guarded roles), a backdoor
    that survives a password reset. An administrator enrolling a device works in the
    console, through IAM Identity Center or as code, which are left out."""
    user = _target_user(record, caller)
    if not user or caller.family == "console":
        return []
    device = _str(_params(record).get("serialNumber"), 200).rpartition("/")[2] or "(unnamed)"
    return [Finding("aws.mfa_enabled_for_other_user", "medium", ("T1098.005", "T1556.006"),
                    f"MFA device {device} enrolled for IAM user {user} by another principal "
                    f"({caller.shown})", user)]


# Log groups that hold audit and detection records, by the names AWS and its users give
# them: CloudTrail, VPC flow logs, EKS control-plane (Kubernetes audit) logs, Route 53
# resolver query logs, WAF, GuardDuty and Security Hub exports.
_AUDIT_LOG_GROUP_RX = re.compile(
    r"cloudtrail|audit|flow[-_]?log|vpc[-_]?flow|^/aws/eks/|resolver|dns[-_]?quer"
    r"|aws-waf-logs|guardduty|securityhub", re.IGNORECASE)


def log_retention(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """CloudWatch Logs retention of an audit log group cut to a week or less: the records
    of what happened are deleted before anyone looks (the CloudWatch form of an S3
    lifecycle that expires logs). Application log groups are not judged (short retention
    saves money there), nor retention set as code or by a service."""
    if caller.family in _DEPLOY_FAMILIES or _by_service(record):
        return []
    params = _params(record)
    group = _str(params.get("logGroupName"), 512)
    value = params.get("retentionInDays")
    try:
        days = int(value) if type(value) in (int, str) else 0
    except ValueError:
        return []
    if not 0 < days <= _SHORT_LIFECYCLE_DAYS or not _AUDIT_LOG_GROUP_RX.search(group):
        return []
    return [Finding("aws.short_log_lifecycle", "high", _LOGS + ("T1070",),
                    f"log group {group[:200]} set to delete its records after {days} day(s)",
                    group[:200])]


def guardduty_lists(record: dict[str, Any], caller: Caller) -> list[Finding]:
    """GuardDuty trusted IP list changed and active (no findings for the addresses in it:
    an attacker lists their own), or the destination its findings are exported to deleted.
    A trusted list deactivated changes nothing that hides activity. AWS's account
    management and infrastructure-as-code are left out."""
    if _managed(record, caller):
        return []
    params = _params(record)
    if record.get("eventName") == "DeletePublishingDestination":
        detector = _str(params.get("detectorId")) or "(unnamed)"
        return [Finding("aws.detection_disabled", "medium", _TOOLS,
                        f"export of GuardDuty findings of detector {detector} deleted: they "
                        "no longer reach the archive or the SIEM", detector)]
    if params.get("activate") not in _TRUE:
        return []
    name = _str(params.get("name") or params.get("ipSetId")) or "(unnamed)"
    return [Finding("aws.detection_disabled", "high", _TOOLS,
                    f"GuardDuty trusted IP list {name} changed and active: addresses in it "
                    "raise no findings", name)]


# ---------------------------------------------------------------- stolen instance credentials


def instance_network(attributes: dict[str, Any], address: str | None, network: str,
                     prefix: str | None) -> Tally | None:
    """One call of an EC2 instance's role session (``instance_id`` in the session facts)
    toward ``aws.instance_credentials_elsewhere``: the engine counts the networks of each
    instance session apart, and two within the burst window is the finding. An instance
    reaches public endpoints from one address (its own public address or its subnet's NAT
    gateway) and private ones through VPC endpoints, which CloudTrail marks; the same
    session from a second network is its credentials copied off the instance (read from
    the metadata service by an attacker and used from their own host). Calls through a VPC
    endpoint, by an AWS service on the instance's behalf, or from a service name or
    ``AWS Internal`` are not counted. Addresses are compared per family (an instance that
    reaches dual-stack endpoints over IPv6 has a second address of its own)."""
    if network not in ("public", "private") or not address or "vpc_endpoint" in attributes \
            or "invoked_by" in attributes:
        return None
    instance = attributes.get("instance_id")
    if type(instance) is not str:
        return None
    if network == "private" and "." in address:
        first, second = address.split(".")[:2]
        label = f"private {first}.{second}.0.0/16"
    else:
        label = f"{network} {prefix or address}"
    family = "6" if ":" in address else "4"
    return Tally("aws.instance_credentials_elsewhere", "high", ("T1552.005", "T1078.004"),
                 f"networks for the credentials of instance {instance[:32]}", (label,),
                 scope=f"{instance[:32]}/{family}", limit=2)


CHECKS: dict[str, Check] = {
    "ModifySnapshotAttribute": snapshot_shared,
    "ModifyImageAttribute": image_shared,
    "ModifyDBSnapshotAttribute": db_snapshot_shared,
    "ModifyDBClusterSnapshotAttribute": db_snapshot_shared,
    "PutBucketPolicy": bucket_policy,
    "PutBucketAcl": bucket_acl,
    "PutObjectAcl": bucket_acl,
    "AddPermission": lambda_permission,
    "AddPermission20150331": lambda_permission,
    "AddPermission20150331v2": lambda_permission,
    "AddLayerVersionPermission": layer_permission,
    "AddLayerVersionPermission20181031": layer_permission,
    "UpdateFunctionCode": function_code,
    "UpdateFunctionCode20150331": function_code,
    "UpdateFunctionCode20150331v2": function_code,
    "UpdateFunctionConfiguration": function_layers,
    "UpdateFunctionConfiguration20150331": function_layers,
    "UpdateFunctionConfiguration20150331v2": function_layers,
    "CreateFunction": function_layers,
    "CreateFunction20150331": function_layers,
    "ModifyInstanceAttribute": instance_user_data,
    "RunInstances": unusual_instances,
    "CreateRole": role_trust,
    "UpdateAssumeRolePolicy": role_trust,
    "PutKeyPolicy": key_policy_set,
    "CreateGrant": key_grant,
    "SetRepositoryPolicy": repository_policy,
    "PutResourcePolicy": secret_policy,
    "SetQueueAttributes": queue_policy,
    "SetTopicAttributes": topic_policy,
    "CreateElasticsearchDomain": search_domain_policy,
    "UpdateElasticsearchDomainConfig": search_domain_policy,
    "CreateDomain": search_domain_policy,
    "UpdateDomainConfig": search_domain_policy,
    "AuthorizeSecurityGroupIngress": security_group_ingress,
    "ModifyDBInstance": db_modify,
    "ModifyDBCluster": db_modify,
    "RestoreDBInstanceFromDBSnapshot": db_public,
    "RestoreDBClusterFromSnapshot": db_public,
    "CreateAccessKey": access_key_for_other,
    "CreateLoginProfile": login_profile_for_other,
    "UpdateLoginProfile": login_profile_for_other,
    "AttachUserPolicy": policy_attached,
    "AttachRolePolicy": admin_policy_attached,
    "AttachGroupPolicy": admin_policy_attached,
    "PutUserPolicy": inline_policy,
    "PutRolePolicy": admin_inline_policy,
    "PutGroupPolicy": admin_inline_policy,
    "CreatePolicyVersion": admin_policy_version,
    "CreateTrustAnchor": trust_anchor,
    "PutEventSelectors": event_selectors,
    "PutInsightSelectors": insight_selectors,
    "PutBucketLifecycle": short_lifecycle,
    "PutBucketLifecycleConfiguration": short_lifecycle,
    "DeleteFlowLogs": flow_logs_deleted,
    "DeleteDetector": guardduty_detector,
    "UpdateDetector": guardduty_detector,
    "StopConfigurationRecorder": config_recorder,
    "DeleteConfigurationRecorder": config_recorder,
    "DeleteDeliveryChannel": config_recorder,
    "DisableSecurityHub": security_hub,
    "LeaveOrganization": leave_organization,
    "RemoveAccountFromOrganization": account_removed,
    "DisableAWSServiceAccess": organization_security,
    "DeregisterDelegatedAdministrator": organization_security,
    "DeactivateMFADevice": mfa_removed_for_other,
    "DeleteResolverQueryLogConfig": dns_logs_deleted,
    "DisassociateResolverQueryLogConfig": dns_logs_deleted,
    "ConsoleLogin": console_login,
    "GetSecretValue": secret_read,
    "BatchGetSecretValue": secret_batch,
    "GetParameter": parameter_read,
    "GetParameters": parameter_read,
    "GetPasswordData": password_data,
    "DescribeInstanceAttribute": user_data,
    # defense evasion beyond CloudTrail: Macie, GuardDuty, Security Hub, Bedrock, WAF
    "DisableMacie": macie,
    "UpdateMacieSession": macie,
    "DisassociateMembers": members_removed,
    "DeleteMembers": members_removed,
    "StopMonitoringMembers": members_removed,
    "CreateFilter": finding_filter,
    "UpdateFilter": finding_filter,
    "CreateFindingsFilter": finding_filter,
    "UpdateFindingsFilter": finding_filter,
    "BatchUpdateFindings": security_hub_findings,
    "UpdateFindings": security_hub_findings,
    "DisableImportFindingsForProduct": security_hub_findings,
    "DeleteModelInvocationLoggingConfiguration": bedrock_logging,
    "DeleteGuardrail": guardrail_deleted,
    "DisassociateWebACL": waf_removed,
    # data protection removed, keys lost
    "DeleteBucketEncryption": bucket_protection,
    "DeleteBucketReplication": bucket_protection,
    "DeleteBucketPublicAccessBlock": bucket_protection,
    "PutBucketPublicAccessBlock": bucket_protection,
    "DeleteAccountPublicAccessBlock": bucket_protection,
    "PutBucketVersioning": bucket_protection,
    "PutBucketLogging": bucket_logging,
    "DisableEbsEncryptionByDefault": ebs_default_encryption,
    "ScheduleKeyDeletion": kms_key_loss,
    "DisableKey": kms_key_loss,
    "DeleteImportedKeyMaterial": kms_key_loss,
    # exfiltration and impact
    "CreateTrafficMirrorSession": traffic_mirror,
    "ModifyTrafficMirrorSession": traffic_mirror,
    "CreateTrafficMirrorTarget": traffic_mirror,
    "PutObject": object_write,
    "CopyObject": object_write,
    "CreateMultipartUpload": object_write,
    "DeleteObjects": batch_delete,
    "StartExportTask": db_snapshot_export,
    "CopyDBSnapshot": snapshot_copy,
    "CopyDBClusterSnapshot": snapshot_copy,
    "CopySnapshot": snapshot_copy,
    "CreateFunctionUrlConfig": function_url,
    "CreateFunctionUrlConfig20211031": function_url,
    "UpdateFunctionUrlConfig": function_url,
    "UpdateFunctionUrlConfig20211031": function_url,
    # credential access, lateral movement
    "SendCommand": remote_command,
    "SendSSHPublicKey": remote_command,
    "SendSerialConsoleSSHPublicKey": remote_command,
    "GetFederationToken": federation_token,
    "GetSigninToken": signin_token,
    # exposed keys, hidden access paths, exfiltration that keeps going
    "GetCallerIdentity": key_checked_by_scanner,
    "RegisterTaskDefinition": task_definition,
    "PutBucketReplication": bucket_replication,
    "ExportTableToPointInTime": table_export,
    "UpdateNotebookInstance": notebook_lifecycle,
    "UpdateNotebookInstanceLifecycleConfig": notebook_lifecycle,
    "StartSession": start_session,
    "StopActivityStream": activity_stream,
    "DeleteDBInstanceAutomatedBackup": automated_backup,
    "DeleteDBClusterAutomatedBackup": automated_backup,
    "AuthorizeDBSecurityGroupIngress": db_security_group,
    "UpdateProjectVisibility": build_project_public,
    "EnableSerialConsoleAccess": serial_console,
    "CreateInstanceExportTask": instance_export,
    "ExportImage": instance_export,
    "CreateSAMLProvider": identity_provider,
    "UpdateSAMLProvider": identity_provider,
    "CreateOpenIDConnectProvider": identity_provider,
    "UpdateOpenIDConnectProviderThumbprint": identity_provider,
    "AddClientIDToOpenIDConnectProvider": identity_provider,
    "AssociateIamInstanceProfile": profile_swap,
    "ReplaceIamInstanceProfileAssociation": profile_swap,
    "CreateUser": _none,
    "AddUserToGroup": _none,
    "SetDefaultPolicyVersion": _none,
    "UpdateTrustAnchor": trust_anchor,
    "PutReplicationConfiguration": registry_replication,
    "DisableSnapshotBlockPublicAccess": block_public_sharing_off,
    "DisableImageBlockPublicAccess": block_public_sharing_off,
    "TransferDomainToAnotherAwsAccount": domain_transfer,
    "CreateVpcPeeringConnection": vpc_peering,
    "DeleteRecoveryPoint": backup_deleted,
    "DeleteBackupVault": backup_deleted,
    "DeleteBackupPlan": backup_deleted,
    "DeleteBackup": backup_deleted,
    "DisableDomainTransferLock": domain_transfer,
    "PutBucketEncryption": bucket_encryption,
    "DeleteDBInstance": database_deleted,
    "DeleteDBCluster": database_deleted,
    "EnableMFADevice": mfa_enabled_for_other,
    "PutRetentionPolicy": log_retention,
    "UpdateIPSet": guardduty_lists,
    "DeletePublishingDestination": guardduty_lists,
    "DeleteSecret": secret_destroyed,
    "ModifyInstanceMetadataOptions": metadata_downgraded,
    "ModifyInstanceMetadataDefaults": metadata_downgraded,
    "CreateKey": key_lockout,
    "AcceptHandshake": organization_joined,
    "Disable": inspector_disabled,
    "CreateArchiveRule": archive_rule,
    "UpdateArchiveRule": archive_rule,
    **{name: service_probe for name in sorted(_SES_PROBES | _SMS_PROBES | _BEDROCK_PROBES)},
}
# Event sources a check name must come from: the same operation name in another service
# (``DeleteDetector`` of Detective, ``CreateGrant`` of License Manager) is something else.
SOURCES: dict[str, str] = {
    "DeleteDetector": "guardduty.amazonaws.com",
    "RemoveAccountFromOrganization": "organizations.amazonaws.com",
    "DisableAWSServiceAccess": "organizations.amazonaws.com",
    "DeregisterDelegatedAdministrator": "organizations.amazonaws.com",
    "DeactivateMFADevice": "iam.amazonaws.com",
    "UpdateDetector": "guardduty.amazonaws.com",
    "CreateGrant": "kms.amazonaws.com",
    "PutResourcePolicy": "secretsmanager.amazonaws.com",
    "AddPermission": "lambda.amazonaws.com",
    "CreateTrustAnchor": "rolesanywhere.amazonaws.com",
    "GetSecretValue": "secretsmanager.amazonaws.com",
    "GetParameter": "ssm.amazonaws.com",
    "GetParameters": "ssm.amazonaws.com",
    "CreateDomain": "es.amazonaws.com",
    "UpdateDomainConfig": "es.amazonaws.com",
    "BatchGetSecretValue": "secretsmanager.amazonaws.com",
    "BatchUpdateFindings": "securityhub.amazonaws.com",
    "UpdateFindings": "securityhub.amazonaws.com",
    "DisableImportFindingsForProduct": "securityhub.amazonaws.com",
    "DeleteModelInvocationLoggingConfiguration": "bedrock.amazonaws.com",
    "DeleteGuardrail": "bedrock.amazonaws.com",
    "DeleteBucketEncryption": "s3.amazonaws.com",
    "DeleteBucketReplication": "s3.amazonaws.com",
    "DeleteBucketPublicAccessBlock": "s3.amazonaws.com",
    "PutBucketPublicAccessBlock": "s3.amazonaws.com",
    "DeleteAccountPublicAccessBlock": "s3.amazonaws.com",
    "PutBucketVersioning": "s3.amazonaws.com",
    "PutBucketLogging": "s3.amazonaws.com",
    "ScheduleKeyDeletion": "kms.amazonaws.com",
    "DisableKey": "kms.amazonaws.com",
    "DeleteImportedKeyMaterial": "kms.amazonaws.com",
    "PutObject": "s3.amazonaws.com",
    "CopyObject": "s3.amazonaws.com",
    "CreateMultipartUpload": "s3.amazonaws.com",
    "DeleteObjects": "s3.amazonaws.com",
    "StartExportTask": "rds.amazonaws.com",
    "SendCommand": "ssm.amazonaws.com",
    "GetFederationToken": "sts.amazonaws.com",
    "GetSigninToken": "signin.amazonaws.com",
    "GetCallerIdentity": "sts.amazonaws.com",
    "RegisterTaskDefinition": "ecs.amazonaws.com",
    "PutBucketReplication": "s3.amazonaws.com",
    "ExportTableToPointInTime": "dynamodb.amazonaws.com",
    "UpdateNotebookInstance": "sagemaker.amazonaws.com",
    "UpdateNotebookInstanceLifecycleConfig": "sagemaker.amazonaws.com",
    "StartSession": "ssm.amazonaws.com",
    "StopActivityStream": "rds.amazonaws.com",
    "DeleteDBInstanceAutomatedBackup": "rds.amazonaws.com",
    "DeleteDBClusterAutomatedBackup": "rds.amazonaws.com",
    "AuthorizeDBSecurityGroupIngress": "rds.amazonaws.com",
    "UpdateProjectVisibility": "codebuild.amazonaws.com",
    "EnableSerialConsoleAccess": "ec2.amazonaws.com",
    "CreateInstanceExportTask": "ec2.amazonaws.com",
    "ExportImage": "ec2.amazonaws.com",
    "AssociateIamInstanceProfile": "ec2.amazonaws.com",
    "ReplaceIamInstanceProfileAssociation": "ec2.amazonaws.com",
    "UpdateTrustAnchor": "rolesanywhere.amazonaws.com",
    "PutReplicationConfiguration": "ecr.amazonaws.com",
    "DisableSnapshotBlockPublicAccess": "ec2.amazonaws.com",
    "DisableImageBlockPublicAccess": "ec2.amazonaws.com",
    "TransferDomainToAnotherAwsAccount": "route53domains.amazonaws.com",
    "CreateVpcPeeringConnection": "ec2.amazonaws.com",
    "DeleteRecoveryPoint": "backup.amazonaws.com",
    "DeleteBackupVault": "backup.amazonaws.com",
    "DeleteBackupPlan": "backup.amazonaws.com",
    "DeleteBackup": "dynamodb.amazonaws.com",
    "DisableDomainTransferLock": "route53domains.amazonaws.com",
    "PutBucketEncryption": "s3.amazonaws.com",
    "DeleteDBInstance": "rds.amazonaws.com",
    "DeleteDBCluster": "rds.amazonaws.com",
    "EnableMFADevice": "iam.amazonaws.com",
    "PutRetentionPolicy": "logs.amazonaws.com",
    "UpdateIPSet": "guardduty.amazonaws.com",
    "DeletePublishingDestination": "guardduty.amazonaws.com",
    "DeleteSecret": "secretsmanager.amazonaws.com",
    "ModifyInstanceMetadataOptions": "ec2.amazonaws.com",
    "ModifyInstanceMetadataDefaults": "ec2.amazonaws.com",
    "CreateKey": "kms.amazonaws.com",
    "PutKeyPolicy": "kms.amazonaws.com",
    "AcceptHandshake": "organizations.amazonaws.com",
    "Disable": "inspector2.amazonaws.com",
    "CreateArchiveRule": "access-analyzer.amazonaws.com",
    "UpdateArchiveRule": "access-analyzer.amazonaws.com",
}
# Rules whose failed attempt is evidence too: nobody tries these by accident, and a stolen
# credential probing for instance passwords or user data fails many times before it works.
ATTEMPTS = frozenset({"LeaveOrganization", "GetPasswordData", "DescribeInstanceAttribute",
                      "CreateTrafficMirrorSession"})
# Requests whose refusal by a quota (``VcpuLimitExceeded``) is an attempt as well: the
# request shows what was asked for.
QUOTA_ATTEMPTS = frozenset({"RunInstances"})


def findings(record: dict[str, Any], check: Check | None, *, account: str | None,
             family: str | None, root: bool = False) -> list[Any]:
    """Run ``check`` (and the root-user check when ``root``) on one record; never raises.

    A failed request is judged only for ``ATTEMPTS`` and then says so in its sentence.
    """
    try:
        return _run(record, check, account, family, root)
    except Exception:  # noqa: BLE001 - a check must never stop the parser
        return []


def _run(record: dict[str, Any], check: Check | None, account: str | None,
         family: str | None, root: bool) -> list[Any]:
    name = record.get("eventName")
    error = record.get("errorCode")
    if error:
        error = str(error)
        if name not in ATTEMPTS and not refused(error) and not (
                name in QUOTA_ATTEMPTS and "LimitExceeded" in error):
            return []  # not found, invalid, throttled: nothing was attempted on purpose
    source = SOURCES.get(name)  # type: ignore[arg-type]
    if source is not None and record.get("eventSource") != source:
        check = None
    caller = _caller(record, account, family)
    if error and name not in ATTEMPTS:
        return _refused(record, check, caller, str(name), error)
    out = check(record, caller) if check is not None else []
    if name in _IAM_WRITES:
        out += instance_iam(record, caller)
    if out and caller.family in _DEPLOY_FAMILIES:
        out = [f for f in out if type(f) is not Finding or f.rule not in _DEPLOY_RULES and (
            f.value == "public" or f.rule not in _ACCOUNT_GRANT_RULES)]
    if root and name != "ConsoleLogin":
        out += root_activity(record, caller)
    elif root:
        out = root_activity(record, caller)
    return attempted(out, error) if error else out


def _refused(record: dict[str, Any], check: Check | None, caller: Caller, name: str,
             error: str) -> list[Any]:
    """A request refused for lack of permission: the check's findings as attempts, else a
    refused logging or detection change (``refused_tampering``), and one count toward
    ``aws.permission_probing``. Infrastructure-as-code runs that lack a permission and
    console pages that probe what their user may see are left out: both are routine."""
    if caller.family in _DEPLOY_FAMILIES:
        return []
    found = check(record, caller) if check is not None else []
    # a refused read counts as probing below, not toward its own burst; a refused share
    # exposed nothing and is left to the probing count too
    out = attempted([f for f in found if type(f) is Finding and f.rule in _ATTEMPT_RULES],
                    error)
    source = record.get("eventSource")
    service = source.partition(".")[0] if type(source) is str and source else "unknown"
    action = f"{service}:{name[:128]}"
    if check is None:
        tampering = refused_tampering("aws", action, error)
        if tampering is not None:
            out.append(tampering)
    if caller.family != "console" and refused(error):
        out.append(Tally("aws.permission_probing", "medium", PROBING, "refused actions",
                         (action,)))
    return out


def _turns_logging_on(record: dict[str, Any]) -> bool:
    """Whether a ``PutBucketLogging`` enables access logging (a target in its status)."""
    params = _params(record)
    if _dict(params.get("BucketLoggingStatus")).get("LoggingEnabled"):
        return True
    logging = params.get("logging")  # Panther's flattened form: a list of targets
    return type(logging) is list and bool(logging)


def _caller(record: dict[str, Any], account: str | None, family: str | None) -> Caller:
    identity = _dict(record.get("userIdentity"))
    name, arn = identity.get("userName"), identity.get("arn")
    if type(arn) is not str:
        arn = ""
    if type(name) is not str or not name:
        name = arn.rpartition("/")[2] if "/" in arn else ""
    own = identity.get("accountId")
    if type(own) is not str or not own:
        own = record.get("recipientAccountId")
    # arn:aws:sts::<account>:assumed-role/<role>/<session>
    role = arn.split("/")[1] if ":assumed-role/" in arn and arn.count("/") >= 2 else ""
    return Caller(own if type(own) is str else account, name, family,
                  ":assumed-role/AWSReservedSSO_" in arn, role)
