"""The normalised audit event: the one contract between sources and everything else.

Every source module turns one raw audit record into one ``Event``. Nothing downstream
reads raw records. Field meanings (also rendered in ``docs/events.md``):

==================  ==========================================================================
field               meaning
==================  ==========================================================================
event_id            the source's own id (eventID, insertId, auditID, correlation id), or a
                    stable sha256 of the raw record when the source has none
time                event time, UTC, tz-aware ``datetime``
ts                  the same instant as float epoch seconds (what models use; cheap to compare)
source              ``aws.cloudtrail``, ``gcp.audit``, ``azure.activity``, ``azure.signin``,
                    ``k8s.audit``
identity            canonical identity key, stable across sessions: the role, not the session;
                    the service account, not the token. See ``detector.identity``.
identity_kind       one of ``IDENTITY_KINDS``
kind_reason         why that kind was chosen ("SSO permission-set role", "config rule …")
identity_resolution which path produced the key (e.g. ``session_issuer``, ``assumed_role_arn``,
                    ``arn``, ``invoked_by``, ``unknown``); counted, never a model feature
principal_type      the source's own type: IAMUser, AssumedRole, serviceAccount, …
tenant              AWS account, GCP project, Azure tenant/subscription, Kubernetes cluster
target_tenant       the tenant acted upon when it differs from ``tenant`` (cross-account)
credential_id       access key id, SA key name, token id, certificate thumbprint
credential_type     one of ``CREDENTIAL_TYPES``
session             session name or token id, normalised by pattern (``gh-run-*``)
actor               the person or upstream principal behind the identity when known (SSO
                    session e-mail, impersonator, ``invokedBy`` service)
action              ``service:operation`` (``iam:CreateAccessKey``, ``k8s:secrets.get``)
resource            primary resource name or ARN, when the record has one
region              region or location
source_ip           the caller address when it is an IP address, else None
network             class of the caller network: ``public``, ``private``, ``cloud_service``,
                    ``internal``, ``unknown``
network_prefix      /24 (IPv4) or /48 (IPv6) prefix, or the service name for cloud_service
user_agent          raw user agent (cut to 512 chars)
agent_family        short family: boto3, terraform, kubectl, aws-cli, console, gcloud, …
outcome             ``success`` or ``failure``
error_code          the error when outcome is failure
read_only           whether the action only reads, when known
partial             True for salvaged or incomplete records (a Kubernetes request whose final
                    stage never came; an audit message cut in transport, then with
                    ``attributes["salvaged"]``): scored, but they never teach baselines
attributes          small dict of extra facts (ec2_role_delivery, mfa, invoked_by,
                    delegation chain, impersonated_by, k8s namespace …); never large blobs.
                    ``cut``: the fields cut to their bound, with their length before
                    (``{"user_agent": 20480}``)
owner               owner from the ownership map, when configured
==================  ==========================================================================

Every string field has a length bound (``detector.sources.common``: identities, sessions
and actors 2,048 characters, operations and event ids 256, services, tenants and
credential ids 128; resource and user agent 512, region 64, error code 128), so an event's
size, and every model key's, is bounded. A record whose identifying field is longer is an
``oversized_field`` dead letter; free text is cut and the cut named in ``attributes["cut"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SOURCES = ("aws.cloudtrail", "gcp.audit", "azure.activity", "azure.signin", "k8s.audit")
IDENTITY_KINDS = ("human", "workload", "cloud_service", "ai_agent", "external", "unknown")
CREDENTIAL_TYPES = ("long_term", "temporary", "token", "certificate", "none", "unknown")
NETWORK_CLASSES = ("public", "private", "cloud_service", "internal", "unknown")
OUTCOMES = ("success", "failure")


@dataclass(slots=True)
class Event:
    """One normalised audit record. See the module docstring for every field."""

    event_id: str
    time: datetime
    ts: float
    source: str
    identity: str
    identity_kind: str = "unknown"
    kind_reason: str = ""
    identity_resolution: str = ""
    principal_type: str | None = None
    tenant: str | None = None
    target_tenant: str | None = None
    credential_id: str | None = None
    credential_type: str = "unknown"
    session: str | None = None
    actor: str | None = None
    action: str = ""
    resource: str | None = None
    region: str | None = None
    source_ip: str | None = None
    network: str = "unknown"
    network_prefix: str | None = None
    user_agent: str | None = None
    agent_family: str | None = None
    outcome: str = "success"
    error_code: str | None = None
    read_only: bool | None = None
    partial: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None

    @property
    def service(self) -> str:
        """The service part of ``action`` (``iam`` for ``iam:CreateAccessKey``)."""
        head, _, _ = self.action.partition(":")
        return head

    @property
    def failed(self) -> bool:
        return self.outcome == "failure"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (orjson serialises the datetime as RFC 3339)."""
        return {name: getattr(self, name) for name in EVENT_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Inverse of ``to_dict``; accepts ``time`` as ``datetime`` or ISO string."""
        values = {name: data[name] for name in EVENT_FIELDS if name in data}
        when = values.get("time")
        if isinstance(when, str):
            values["time"] = datetime.fromisoformat(when.replace("Z", "+00:00"))
        if "ts" not in values:
            values["ts"] = values["time"].timestamp()
        return cls(**values)


EVENT_FIELDS: tuple[str, ...] = tuple(Event.__dataclass_fields__)
