"""Identity resolution and classification: one stable key and one kind per audit record.

Keys never contain ephemeral names. An assumed-role session keys to its role
(``arn:aws:iam::<acct>:role/<path/><name>``), an instance-profile session to its role with the
instance id kept as the session, a pod token to its service account. The formats are fixed
because labels and suppression rules are written against them:

================  ===========================================================================
AWS role          ``arn:aws:iam::<account>:role/<path/><name>`` (SSO, instance profile, web
                  identity and service-linked roles alike; the person of an SSO session is
                  ``actor``)
AWS IAM user      ``arn:aws:iam::<account>:user/<path/><name>``; root ``arn:aws:iam::<a>:root``
AWS service       ``aws-service:<invokedBy or eventSource>``
GCP               the principal e-mail as given, else ``principalSubject``, else ``gcp-system``
Kubernetes        the username as given, prefixed ``<cluster>/`` only when the record names
                  the cluster; EKS assumed-role usernames map to the AWS role key
Azure             the service principal / managed identity object id, else the app id,
                  lower-cased; a person's sign-in name (else object id); Entra's own
                  services ``azure-service:<name>``; Storage shared keys (SAS, account key)
                  ``azure-storage:<account>``
================  ===========================================================================

Kinds are ``human``, ``workload``, ``cloud_service``, ``ai_agent``, ``external`` and
``unknown``, always with a reason. Configuration always wins over the heuristics
(``IdentityRules.from_config``)::

    identities:
      kinds:                      # first match wins; glob on the identity key
        - {match: "arn:aws:iam::*:role/ci-*", kind: workload, reason: "CI deploy roles"}
      owners:                     # glob -> owner (team, person, service)
        - {match: "arn:aws:iam::123456789012:role/payments-*", owner: team-payments}
      ai_agents:
        user_agents: ["my-agent-framework/"]   # case-insensitive substrings
        identities: ["*:role/agent-*"]         # globs on the identity key

The mapping forms ``kinds: {glob: kind}`` and ``owners: {glob: owner}`` are accepted too.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from detector.config import check_known_keys
from detector.errors import ConfigError
from detector.event import IDENTITY_KINDS, Event

logger = logging.getLogger(__name__)

_CACHE_LIMIT = 100_000
SSO_ROLE_PREFIX = "AWSReservedSSO_"
SSO_ROLE_PATH = "aws-reserved/sso.amazonaws.com/"
SLR_PATH = "aws-service-role/"

# (needle, family), first match wins; needles are lower-case substrings.
AI_AGENT_FAMILIES: tuple[tuple[str, str], ...] = (
    ("langchain", "langchain"),
    ("langgraph", "langchain"),
    ("bedrock-agent", "bedrock-agent"),
    ("claude", "claude"),
    ("anthropic", "anthropic"),
    ("openai", "openai"),
    ("autogen", "autogen"),
    ("crewai", "crewai"),
    ("llamaindex", "llamaindex"),
    ("semantic-kernel", "semantic-kernel"),
    # SDK markers agent frameworks add to the AWS SDK user agent (user_agent_extra)
    ("strands-agents", "strands"),
    ("awslabs/mcp/", "mcp"),  # AWS Labs MCP servers driven by an AI assistant
    ("llama_index", "llamaindex"),
    ("llama-index", "llamaindex"),
    ("smolagents", "smolagents"),
    ("pydantic-ai", "pydantic-ai"),
)
# Families that only code uses: an IAM user seen only with these is a workload.
PROGRAMMATIC_FAMILIES = frozenset({
    "terraform", "pulumi", "cloudformation", "aws-cli", "aws-sdk-go", "aws-sdk-java",
    "aws-sdk-js", "aws-sdk-dotnet", "aws-sdk-ruby", "boto3", "aws-sdk", "stratus-red-team",
    "kubectl", "helm", "gcloud", "google-api-client", "grpc", "azure-cli", "azure-sdk",
    "python-requests", "go-http", "curl",
})
AI_FAMILY_NAMES = frozenset(family for _, family in AI_AGENT_FAMILIES)
# Why an IAM user is a person: it was seen in the console (this event, or earlier ones).
CONSOLE_SIGN_IN = "IAM user signed in to the console"
CONSOLE_SEEN = "IAM user seen using the console"
CONSOLE_USER_REASONS = frozenset({CONSOLE_SIGN_IN, CONSOLE_SEEN})
# Kinds an IAM user gets from one event's use alone: weaker than any console use seen before.
SDK_KEY_ONLY = "used only with long-term key from SDK user agents"
NOT_CONCLUSIVE = "IAM user, usage not yet conclusive"
USER_NAMED_LIKE_AUTOMATION = "IAM user named like automation"
IAM_USER_USAGE_REASONS = frozenset({SDK_KEY_ONLY, NOT_CONCLUSIVE, USER_NAMED_LIKE_AUTOMATION})
# Words that name automation, not a person, in a user name (see ``named_like_automation``).
AUTOMATION_WORDS = frozenset({"bot", "ci", "cd", "cicd", "deploy", "deployer", "deployment",
                              "jenkins", "gitlab", "github", "argocd", "flux", "terraform",
                              "automation", "pipeline", "svc", "robot", "runner", "service",
                              "sync", "backup", "etl", "cron", "batch", "integration",
                              "circleci", "buildkite", "ansible", "spinnaker", "api",
                              "scanner", "monitoring", "exporter"})
_NAME_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def named_like_automation(name: str) -> bool:
    """True when a word of ``name`` (split on punctuation and camelCase) names automation:
    ``svc-backup``, ``terraform``, ``DeployRole``, ``gitlab-runner``; not ``jane.doe``."""
    words = {word.lower() for word in _NAME_WORDS.findall(name)}
    return not AUTOMATION_WORDS.isdisjoint(words)


def normalise_session(session: str | None) -> str | None:
    """Collapse ephemeral session names to a pattern: ``gh-run-123`` -> ``gh-run-*``.

    Instance ids become ``ec2-instance``; a trailing run of digits or a long hex tail
    becomes ``*``; e-mail style and other names are kept as they are.
    """
    if not session:
        return session
    if session.startswith("i-") and _is_hex(session[2:]) and len(session) >= 10:
        return "ec2-instance"
    if "@" in session:
        return session
    head = session.rstrip("0123456789")
    digits = len(session) - len(head)
    if digits >= 3 or (digits and head.endswith(("-", "_", "."))):
        return head + "*"
    stem, sep, tail = session.rpartition("-")
    if sep and len(tail) >= 8 and _is_hex(tail):
        return stem + "-*"
    return session


def _is_hex(text: str) -> bool:
    return bool(text) and all(ch in "0123456789abcdef" for ch in text.lower())


# ============================================================================ configuration


@dataclass(frozen=True)
class IdentityRules:
    """Kind overrides, owner map and AI-agent patterns from the ``identities`` section."""

    kinds: tuple[tuple[str, str, str], ...] = ()  # (glob, kind, reason)
    owners: tuple[tuple[str, str], ...] = ()  # (glob, owner)
    ai_user_agents: tuple[str, ...] = ()  # lower-case substrings
    ai_identities: tuple[str, ...] = ()  # globs

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> IdentityRules:
        """Validate the ``identities`` config section; unknown kinds raise ConfigError."""
        section = section or {}
        if not isinstance(section, dict):
            raise ConfigError("identities: must be a mapping")
        check_known_keys("identities", section, ("kinds", "owners", "ai_agents"))
        ai = section.get("ai_agents") or {}
        if not isinstance(ai, dict):
            raise ConfigError("identities.ai_agents: must be a mapping with user_agents/identities")
        check_known_keys("identities.ai_agents", ai, ("user_agents", "identities"))
        return cls(
            kinds=tuple(_kind_rules(section.get("kinds"))),
            owners=tuple(_owner_rules(section.get("owners"))),
            ai_user_agents=tuple(s.lower() for s in _str_list(ai, "user_agents")),
            ai_identities=tuple(_str_list(ai, "identities")),
        )


def _str_list(section: dict[str, Any], key: str) -> list[str]:
    values = section.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"identities.ai_agents.{key}: must be a list of non-empty strings")
    return values


def _kind_rules(raw: Any) -> list[tuple[str, str, str]]:
    items = _rule_items(raw, "kinds", "kind")
    rules = []
    for index, item in enumerate(items):
        check_known_keys(f"identities.kinds[{index}]", item, ("match", "kind", "reason"))
        pattern, kind = item.get("match"), item.get("kind")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"identities.kinds[{index}]: 'match' must be a non-empty string")
        if kind not in IDENTITY_KINDS:
            raise ConfigError(
                f"identities.kinds[{index}]: kind {kind!r} is not one of {list(IDENTITY_KINDS)}"
            )
        reason = item.get("reason") or f"config rule {pattern}"
        rules.append((pattern, kind, str(reason)))
    return rules


def _owner_rules(raw: Any) -> list[tuple[str, str]]:
    rules = []
    for index, item in enumerate(_rule_items(raw, "owners", "owner")):
        check_known_keys(f"identities.owners[{index}]", item, ("match", "owner"))
        pattern, owner = item.get("match"), item.get("owner")
        if not isinstance(pattern, str) or not pattern or not isinstance(owner, str):
            raise ConfigError(f"identities.owners[{index}]: needs string 'match' and 'owner'")
        rules.append((pattern, owner))
    return rules


def _rule_items(raw: Any, name: str, value_key: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        return [{"match": key, value_key: value} for key, value in raw.items()]
    if isinstance(raw, list) and all(isinstance(item, dict) for item in raw):
        return raw
    raise ConfigError(f"identities.{name}: must be a list of mappings or a mapping")


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


# ============================================================================ resolver


class Resolver:
    """Applies ``IdentityRules`` to events, with per-key caches; one per parser.

    It also remembers facts learned across records: the full path of a role seen in a
    ``sessionIssuer`` (so a later record without one keys to the same role), and IAM users
    seen using the console (humans, not workloads).
    """

    def __init__(self, rules: IdentityRules | None = None) -> None:
        self.rules = rules or IdentityRules()
        self._kind_res = [(_glob(p), kind, reason) for p, kind, reason in self.rules.kinds]
        self._owner_res = [(_glob(p), owner) for p, owner in self.rules.owners]
        self._ai_res = [_glob(p) for p in self.rules.ai_identities]
        self.no_config = not (self.rules.kinds or self.rules.owners or self.rules.ai_identities
                               or self.rules.ai_user_agents)
        self._config_cache: dict[str, tuple[tuple[str, str] | None, str | None, bool]] = {}
        self.role_paths: dict[tuple[str, str], str] = {}  # (account, name) -> full role key
        self.console_users: set[str] = set()
        self.aws_cache: dict[tuple[Any, ...], tuple[AwsPrincipal, dict[str, Any]]] = {}

    def finish(self, event: Event) -> Event:
        """Apply AI-agent detection, config kind overrides and owners; config wins."""
        if self.no_config and event.agent_family not in AI_FAMILY_NAMES:
            return event
        override, owner, ai_identity = self._config_for(event.identity)
        if event.identity_kind != "cloud_service":
            if ai_identity:
                event.identity_kind, event.kind_reason = "ai_agent", "config ai_agents identity"
            elif event.agent_family in AI_FAMILY_NAMES:
                event.identity_kind = "ai_agent"
                event.kind_reason = f"AI-agent user agent ({event.agent_family})"
            elif self.rules.ai_user_agents and event.user_agent:
                lowered = event.user_agent.lower()
                if any(needle in lowered for needle in self.rules.ai_user_agents):
                    event.identity_kind = "ai_agent"
                    event.kind_reason = "config ai_agents user agent"
        if override is not None:
            event.identity_kind, event.kind_reason = override
        if owner is not None:
            event.owner = owner
        return event

    def owner_of(self, key: str) -> str | None:
        """The owner ``identities.owners`` gives the identity ``key``, if a rule matches."""
        return self._config_for(key)[1]

    def _config_for(self, key: str) -> tuple[tuple[str, str] | None, str | None, bool]:
        hit = self._config_cache.get(key)
        if hit is None:
            override = next(((k, r) for rx, k, r in self._kind_res if rx.match(key)), None)
            owner = next((o for rx, o in self._owner_res if rx.match(key)), None)
            ai = any(rx.match(key) for rx in self._ai_res)
            hit = (override, owner, ai)
            if len(self._config_cache) >= _CACHE_LIMIT:
                self._config_cache.clear()
            self._config_cache[key] = hit
        return hit

    # ------------------------------------------------------------------ AWS

    def aws_principal(self, ui: dict[str, Any], event_source: str | None
                      ) -> tuple[AwsPrincipal, dict[str, Any]]:
        """Resolve a CloudTrail ``userIdentity``: the principal and its session attributes.

        Cached on the fields that identify a session, so the work runs once per session,
        not once per event. The ARN embeds the session name, but a name is reused by every
        session issued under it (a CI job's fixed name, an IAM user's console sign-ins), so
        the key also holds the issue time and the fields ``session_attributes`` reads that
        are fixed at issue (source identity; MFA comes with the issue time).
        """
        context = ui.get("sessionContext")
        arn = ui.get("arn")
        invoked = ui.get("invokedBy")
        if arn:
            if type(context) is dict:
                issuer = context.get("sessionIssuer")
                issued = context.get("attributes")
                cache_key: tuple[Any, ...] = (
                    arn, ui.get("type"), invoked,
                    issuer.get("arn") if type(issuer) is dict else None,
                    context.get("ec2RoleDelivery"),  # flips when credentials are stolen
                    issued.get("creationDate") if type(issued) is dict else None,
                    issued.get("mfaAuthenticated") if type(issued) is dict else None,
                    context.get("sourceIdentity"))
            else:
                cache_key = (arn, ui.get("type"), invoked)
        else:
            behalf = ui.get("onBehalfOf")
            cache_key = (None, ui.get("type"), invoked, ui.get("accountId"), event_source,
                         ui.get("userName"),
                         behalf.get("userId") if isinstance(behalf, dict) else None)
        try:
            hit = self.aws_cache.get(cache_key)
        except TypeError:  # a field of an unexpected type (list, object): resolve uncached
            return self._resolve_aws(ui, context, event_source)
        if hit is None:
            hit = self._resolve_aws(ui, context, event_source)
            if len(self.aws_cache) >= _CACHE_LIMIT:
                self.aws_cache.clear()
            self.aws_cache[cache_key] = hit
        return hit

    def _resolve_aws(self, ui: dict[str, Any], context: Any, event_source: str | None
                     ) -> tuple[AwsPrincipal, dict[str, Any]]:
        issuer = context.get("sessionIssuer") if isinstance(context, dict) else None
        issuer_arn = issuer.get("arn") if isinstance(issuer, dict) else None
        principal = resolve_aws(ui, issuer_arn, event_source, self.role_paths)
        attributes: dict[str, Any] = {}
        if principal.session:
            pattern = normalise_session(principal.session)
            principal = principal._replace(session_pattern=pattern)
            if pattern != principal.session:
                attributes["session_name"] = principal.session[:128]
            if pattern == "ec2-instance":
                attributes["instance_id"] = principal.session[:32]
        invoked = ui.get("invokedBy")
        if isinstance(invoked, str) and invoked:
            attributes["invoked_by"] = invoked[:128]
        if isinstance(context, dict):
            session_attributes(context, attributes)
        if attributes.get("web_identity_provider") and principal.kind == "workload":
            principal = principal._replace(reason="web-identity federated role (CI)")
        return principal, attributes


# ============================================================================ AWS


class AwsPrincipal(NamedTuple):
    """What a CloudTrail ``userIdentity`` resolves to, before per-event adjustments."""

    identity: str
    resolution: str
    kind: str
    reason: str
    principal_type: str | None
    account: str | None
    session: str | None
    actor: str | None
    is_iam_user: bool = False
    session_pattern: str | None = None


def split_arn(arn: str) -> tuple[str, str, str, str] | None:
    """``(partition, service, account, resource)`` of an ARN, or None."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return parts[1], parts[2], parts[4], parts[5]


def role_key_from_session_arn(arn: str, role_paths: dict[tuple[str, str], str] | None = None
                              ) -> tuple[str, str, str] | None:
    """``(role key, account, session)`` from an ``assumed-role/<role>/<session>`` ARN."""
    parts = split_arn(arn)
    if parts is None or not parts[3].startswith("assumed-role/"):
        return None
    partition, _, account, resource = parts
    _, name, session = (resource.split("/", 2) + ["", ""])[:3]
    if not name:
        return None
    known = role_paths.get((account, name)) if role_paths else None
    if known:
        return known, account, session
    path = SSO_ROLE_PATH if name.startswith(SSO_ROLE_PREFIX) else ""
    return f"arn:{partition}:iam::{account}:role/{path}{name}", account, session


def resolve_aws(ui: dict[str, Any], issuer_arn: Any, event_source: str | None,
                role_paths: dict[tuple[str, str], str]) -> AwsPrincipal:
    """Key order (edge case B02): sessionIssuer.arn, assumed-role ARN, arn, service, unknown."""
    ptype = ui.get("type") if isinstance(ui.get("type"), str) else None
    arn = ui.get("arn") if isinstance(ui.get("arn"), str) else ""
    account = ui.get("accountId") if isinstance(ui.get("accountId"), str) else None
    invoked = ui.get("invokedBy") if isinstance(ui.get("invokedBy"), str) else None
    session_arn = role_key_from_session_arn(arn, None) if arn else None
    if isinstance(issuer_arn, str) and issuer_arn.startswith("arn:"):
        session = session_arn[2] if session_arn else _session_from_principal(ui)
        issuer_parts = split_arn(issuer_arn)
        if issuer_parts and issuer_parts[3].startswith("role/"):
            name = issuer_parts[3].rsplit("/", 1)[-1]
            role_paths[(issuer_parts[2], name)] = issuer_arn
        acct = issuer_parts[2] if issuer_parts else account
        return _aws_role(issuer_arn, "session_issuer", ptype, acct, session, invoked)
    if session_arn is not None:
        key, acct, session = role_key_from_session_arn(arn, role_paths)  # type: ignore[misc]
        return _aws_role(key, "assumed_role_arn", ptype, acct, session, invoked)
    if arn.startswith("arn:"):
        return _aws_arn(arn, ptype, account, ui)
    user_name = ui.get("userName")
    if ptype in ("IAMUser", "Root") and account:
        resource = "root" if ptype == "Root" else f"user/{user_name}" if isinstance(
            user_name, str) and user_name else None
        if resource:
            rebuilt = _aws_arn(f"arn:aws:iam::{account}:{resource}", ptype, account, ui)
            return rebuilt._replace(resolution="user_name")
    if ptype == "IdentityCenterUser" or ui.get("onBehalfOf") is not None:
        return _identity_center(ui, ptype, account)
    if ptype == "AWSAccount" and account:
        return AwsPrincipal(f"aws-account:{account}", "account", "external",
                            "another AWS account (cross-account call)", ptype, account, None,
                            None)
    service = invoked or (event_source if ptype in ("AWSService", None) else None)
    if service:
        path = "invoked_by" if invoked else "event_source"
        return AwsPrincipal(f"aws-service:{service}", path, "cloud_service",
                            "AWS service principal", ptype or "AWSService", account, None,
                            None)
    return AwsPrincipal("unknown", "unknown", "unknown", "record has no identifying fields",
                        ptype, account, None, None)


def _session_from_principal(ui: dict[str, Any]) -> str | None:
    principal = ui.get("principalId")
    if isinstance(principal, str) and ":" in principal:
        return principal.split(":", 1)[1]
    return None


def _aws_role(key: str, resolution: str, ptype: str | None, account: str | None,
              session: str | None, invoked: str | None) -> AwsPrincipal:
    name_path = key.split(":role/", 1)[-1]
    name = name_path.rsplit("/", 1)[-1]
    actor = None
    if name_path.startswith(SLR_PATH) or name.startswith("AWSServiceRoleFor"):
        kind, reason = "cloud_service", "service-linked role"
    elif name.startswith(SSO_ROLE_PREFIX) or name_path.startswith(SSO_ROLE_PATH):
        # IAM Identity Center creates its roles, and only its roles, under this path
        kind, reason, actor = "human", "SSO permission-set role", session
    elif session and session.startswith("i-") and len(session) >= 10:
        kind, reason = "workload", "EC2 instance-profile role"
    elif session and "@" in session:
        kind, reason, actor = "human", "role session named after a person", session
    else:
        kind, reason = "workload", "assumed role used programmatically"
    if invoked:
        actor = invoked
    return AwsPrincipal(key, resolution, kind, reason, ptype or "AssumedRole", account, session,
                        actor)


def _aws_arn(arn: str, ptype: str | None, account: str | None,
             ui: dict[str, Any]) -> AwsPrincipal:
    parts = split_arn(arn)
    acct = parts[2] if parts and parts[2] else account
    resource = parts[3] if parts else ""
    if ptype == "Root" or resource == "root":
        return AwsPrincipal(f"arn:{parts[0] if parts else 'aws'}:iam::{acct}:root", "arn",
                            "human", "root account", ptype or "Root", acct, None, None)
    if resource.startswith("user/"):
        return AwsPrincipal(arn, "arn", "unknown", "IAM user", ptype or "IAMUser", acct, None,
                            None, is_iam_user=True)
    if resource.startswith("role/"):
        return _aws_role(arn, "arn", ptype, acct, None, None)
    if resource.startswith("federated-user/"):
        return AwsPrincipal(arn, "arn", "unknown", "federated user (GetFederationToken)",
                            ptype or "FederatedUser", acct, resource.split("/", 1)[1], None)
    return AwsPrincipal(arn, "arn", "unknown", f"principal type {ptype}", ptype, acct, None, None)


def _identity_center(ui: dict[str, Any], ptype: str | None, account: str | None) -> AwsPrincipal:
    behalf = ui.get("onBehalfOf") if isinstance(ui.get("onBehalfOf"), dict) else {}
    user_id = behalf.get("userId") if isinstance(behalf.get("userId"), str) else None
    store = behalf.get("identityStoreArn") if isinstance(behalf.get("identityStoreArn"), str) \
        else None
    key = f"{store}/user/{user_id}" if store and user_id else (user_id or "identity-center-user")
    return AwsPrincipal(key, "on_behalf_of", "human", "IAM Identity Center user",
                        ptype or "IdentityCenterUser", account, None, user_id)


def federated_principal(ui: dict[str, Any], params: Any, resolver: Resolver
                        ) -> tuple[AwsPrincipal, dict[str, Any]]:
    """``WebIdentityUser`` / ``SAMLUser`` callers of AssumeRoleWith*: the role they become.

    The OIDC or SAML subject has no AWS identity of its own; the call belongs to the role
    named in ``requestParameters.roleArn`` (the same key as that role's later sessions),
    with the subject as ``actor``. Without a role ARN the key is ``<provider>:<subject>``.
    """
    ptype = ui.get("type")
    provider = ui.get("identityProvider") if isinstance(ui.get("identityProvider"), str) \
        else "unknown-provider"
    subject = ui.get("userName") if isinstance(ui.get("userName"), str) else None
    params = params if isinstance(params, dict) else {}
    role_arn, session = params.get("roleArn"), params.get("roleSessionName")
    saml = ptype == "SAMLUser"
    kind, reason = ("human", "SAML federated role") if saml else (
        "workload", "web-identity federated role (CI)")
    attributes = {"web_identity_provider": provider[:256]}
    if isinstance(role_arn, str) and ":role/" in role_arn:
        base, _ = resolver.aws_principal({"arn": role_arn}, None)
        session = session if isinstance(session, str) else None
        pattern = normalise_session(session)
        if session and pattern != session:
            attributes["session_name"] = session[:128]
        principal = base._replace(resolution="web_identity_role", principal_type=ptype,
                                  kind=kind if base.kind == "workload" else base.kind,
                                  reason=reason if base.kind == "workload" else base.reason,
                                  session=session, session_pattern=pattern,
                                  actor=(subject or "")[:256] or None)
        return principal, attributes
    key = f"{provider}:{subject}" if subject else provider
    principal = AwsPrincipal(key[:512], "web_identity_subject", "external",
                             "federated subject without a role", ptype, None, None, subject)
    return principal, attributes


def session_attributes(context: dict[str, Any], attributes: dict[str, Any]) -> None:
    """Facts about an AWS session: IMDS version, MFA, source identity, web identity."""
    delivery = context.get("ec2RoleDelivery")
    if isinstance(delivery, str):
        attributes["ec2_role_delivery"] = delivery[:8]
    source_identity = context.get("sourceIdentity")
    if isinstance(source_identity, str):
        attributes["source_identity"] = source_identity[:128]
    web = context.get("webIdFederationData")
    if isinstance(web, dict) and isinstance(web.get("federatedProvider"), str):
        attributes["web_identity_provider"] = web["federatedProvider"][:256]
    context_attrs = context.get("attributes")
    if isinstance(context_attrs, dict):
        mfa = context_attrs.get("mfaAuthenticated")
        if mfa in ("true", "false", True, False):
            attributes["mfa"] = mfa in ("true", True)


def aws_event_kind(principal: AwsPrincipal, family: str | None, console: bool,
                   credential_type: str, resolver: Resolver) -> tuple[str, str]:
    """Per-event kind: IAM users depend on how they are used (console vs SDK keys).

    For an IAM user a browser user agent also counts as console use; for roles only the
    console flags do (a browser string alone is easy to fake and roles are shared).
    """
    if principal.is_iam_user and (console or family == "browser"):
        resolver.console_users.add(principal.identity)
        return "human", CONSOLE_SIGN_IN
    if principal.is_iam_user:
        if principal.identity in resolver.console_users:
            return "human", CONSOLE_SEEN
        if credential_type == "long_term" and family in PROGRAMMATIC_FAMILIES:
            return "workload", SDK_KEY_ONLY
        if named_like_automation(principal.identity.rsplit("/", 1)[-1]):
            return "workload", USER_NAMED_LIKE_AUTOMATION
        return "unknown", NOT_CONCLUSIVE
    if console and principal.kind == "workload":
        return "human", "console session"
    return principal.kind, principal.reason


# ============================================================================ GCP

_GOOGLE_AGENT_DOMAINS = ("@cloudservices.gserviceaccount.com",
                         "@container-engine-robot.iam.gserviceaccount.com",
                         "@gcp-sa-", "@cloudbuild.gserviceaccount.com",
                         "@cloudcomposer-accounts.iam.gserviceaccount.com",
                         "@dataflow-service-producer-prod.iam.gserviceaccount.com",
                         "@serverless-robot-prod.iam.gserviceaccount.com",
                         "@compute-system.iam.gserviceaccount.com",
                         "@system.gserviceaccount.com")  # Google's own control-plane robots


def classify_gcp(principal: str) -> tuple[str, str]:
    """Kind and reason for a GCP principal e-mail, subject or ``gcp-system``."""
    if principal == "gcp-system":
        return "cloud_service", "GCP system event (no authenticated principal)"
    if principal.startswith("system:"):
        return classify_k8s(principal)
    if principal.startswith("principal://") or principal.startswith("principalSet://"):
        if "/workforcePools/" in principal:  # workforce pools federate people (an IdP's users)
            return "human", "workforce identity federation subject"
        return "workload", "workload identity federation subject"
    if principal.endswith("gserviceaccount.com"):
        if principal.startswith("service-") or any(d in principal for d in _GOOGLE_AGENT_DOMAINS):
            return "cloud_service", "Google-managed service agent"
        return "workload", "GCP service account"
    if "@" in principal:
        return "human", "Google user account"
    return "unknown", "unrecognised GCP principal"


# ============================================================================ Kubernetes

_K8S_PLATFORM_USERS = ("system:kube-", "system:node:", "system:apiserver", "system:gke-",
                       "system:addon-manager", "system:volume-scheduler", "system:konnectivity",
                       "eks:", "aksService", "system:serviceaccount:kube-system:generic-",
                       "system:certificates")


# Certificate or token users of the control plane itself (kubelet bootstrap tokens, the API
# server's client certificate to kubelets), named without the ``system:`` prefix.
_K8S_COMPONENT_PARTS = ("kubelet", "kube-apiserver", "bootstrap", "kube-proxy",
                        "kube-scheduler", "controller-manager")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def classify_k8s(username: str) -> tuple[str, str]:
    """Kind and reason for a Kubernetes username (platform identities are cloud_service)."""
    if username.startswith(("system:serviceaccount:", "system:serviceaccounts:")):
        namespace, _, name = username.split(":", 2)[2].partition(":")
        if namespace == "kube-system" and name.endswith("-controller"):
            return "cloud_service", "Kubernetes control-plane controller"
        return "workload", "Kubernetes service account"
    if username.startswith("system:node:"):
        return "cloud_service", "kubelet node identity"
    if username.startswith(_K8S_PLATFORM_USERS):
        return "cloud_service", "Kubernetes platform component"
    if username == "system:anonymous":
        return "external", "unauthenticated request (system:anonymous)"
    if username.startswith("system:"):
        return "cloud_service", "Kubernetes system user"
    if username.endswith("gserviceaccount.com"):
        return classify_gcp(username)
    if "@" in username:
        return "human", "Kubernetes user (e-mail)"
    lowered = username.lower()
    if any(part in lowered for part in _K8S_COMPONENT_PARTS):
        return "cloud_service", "Kubernetes platform component"
    if _GUID.fullmatch(lowered):
        return "unknown", "Entra object id (a user or a service principal)"
    if named_like_automation(username):
        return "workload", "Kubernetes normal user named like automation"
    # Kubernetes has two kinds of users: service accounts, which it manages for workloads,
    # and "normal users" (client certificates, OIDC, cloud IAM mappings) that it assumes an
    # outside service manages for people: kubernetes-admin, minikube-user, masterclient.
    return "human", "Kubernetes normal user (not a service account)"


# ============================================================================ Azure


def classify_azure(category: str, principal_type: str | None) -> tuple[str, str]:
    """Kind and reason for an Entra sign-in category or Activity Log principal type."""
    lowered = category.lower()
    if "managedidentity" in lowered or principal_type == "ManagedIdentity":
        return "workload", "managed identity"
    if "serviceprincipal" in lowered or principal_type == "ServicePrincipal":
        return "workload", "service principal"
    if principal_type in ("User",) or "signin" in lowered:
        return "human", "Entra user"
    return "unknown", "Azure principal of unknown type"
