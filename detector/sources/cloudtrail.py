"""AWS CloudTrail records -> Events.

One CloudTrail record (from an S3 ``{"Records": [...]}`` file, a JSON line, an EventBridge
``detail``, a CloudWatch Logs message or a CloudTrail Lake export row) becomes one Event.
Insight records are skipped with reason ``insight`` (they never teach baselines; the parser
turns them into context events with ``detector.sources.insight``); digest files are
recognised by the framing layer. Large blobs (``requestParameters``,
``responseElements``) never enter the Event: only allow-listed, type-checked values do.

This is the hot path of the product; see ``benchmarks/bench_parse.py``. Identity
resolution is cached per distinct ``userIdentity`` in ``detector.identity.Resolver``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any


from detector.event import Event
from detector.identity import (
    AI_FAMILY_NAMES,
    Resolver,
    aws_event_kind,
    federated_principal,
    split_arn,
)
from detector.sources.common import (
    MAX_CREDENTIAL,
    MAX_ERROR,
    MAX_EVENT_ID,
    MAX_IDENTITY,
    MAX_OPERATION,
    MAX_REGION,
    MAX_RESOURCE,
    MAX_SERVICE,
    MAX_TENANT,
    MAX_USER_AGENT,
    MAX_YEAR,
    MIN_YEAR,
    NETWORK_CACHE,
    USER_AGENT_CACHE,
    RecordError,
    record_digest,
    SkipRecord,
    as_bool,
    classify_network,
    cut,
    note_agent_cut,
    oversized,
    parse_time,
    user_agent,
)
from detector.techniques import ATTRIBUTE as FINDINGS
from detector.techniques.aws import CHECKS as _TECHNIQUES, findings as _findings
from detector.techniques.aws import instance_network as _instance_network

logger = logging.getLogger(__name__)

SOURCE = "aws.cloudtrail"
UTC = timezone.utc
_fromisoformat = datetime.fromisoformat
_KEY_TYPES = {"AKIA": "long_term", "ASIA": "temporary"}
OWN_INSTANCE = "{own-instance}"
"""Stands for the calling instance's own id in the resource of an instance role's call."""
_CONSOLE_EVENT_TYPES = ("AwsConsoleSignIn", "AwsConsoleAction")  # a tuple, as below
_TRUE = ("true", True)
_FEDERATED_TYPES = ("WebIdentityUser", "SAMLUser")  # a tuple: `in` never hashes odd values
_SERVICES: dict[str | None, str] = {}
_agent_hit = USER_AGENT_CACHE.get  # cache hits without a function call: the hot path
_network_hit = NETWORK_CACHE.get

# requestParameters keys whose string value names the primary resource, in order.
_RESOURCE_KEYS = ("roleArn", "bucketName", "userName", "roleName", "policyArn", "secretId",
                  "functionName", "keyId", "groupName", "instanceId", "trailName", "name",
                  "clusterName", "repositoryName", "tableName", "queueUrl", "topicArn",
                  "logGroupName", "stackName", "accessKeyId", "serviceAccountEmail")
# Most parameter objects hold none of those keys: one set test then replaces 21 lookups.
_RESOURCE_KEY_SET = frozenset(_RESOURCE_KEYS)


def looks_like(record: dict[str, Any]) -> bool:
    """True when the record has CloudTrail's shape (eventName plus eventSource or time)."""
    if "eventName" in record:
        return "eventSource" in record or "eventTime" in record or "userIdentity" in record
    return record.get("eventType") == "AwsCloudTrailInsight" or "insightDetails" in record


_CASE = {name.lower(): name for name in (
    "eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
    "sourceIPAddress", "userAgent", "requestParameters", "responseElements", "requestID",
    "eventID", "readOnly", "eventType", "managementEvent", "recipientAccountId",
    "eventCategory", "errorCode", "errorMessage", "resources", "sessionCredentialFromConsole",
    "vpcEndpointId", "sharedEventID", "additionalEventData", "apiVersion", "tlsDetails",
    "serviceEventDetails", "insightDetails")}
_IDENTITY_CASE = {name.lower(): name for name in (
    "type", "principalId", "arn", "accountId", "accessKeyId", "userName", "sessionContext",
    "invokedBy", "identityProvider", "onBehalfOf", "credentialId")}


def looks_like_lowercased(low: dict[str, Any]) -> bool:
    """Panther's lake normalisation lower-cases every key (``eventname``, ``useridentity``)."""
    return "eventname" in low and "eventsource" in low


def restore_case(low: dict[str, Any]) -> dict[str, Any]:
    """Give a lower-cased CloudTrail record its canonical key names back."""
    record = {_CASE.get(key, key): value for key, value in low.items()}
    identity = record.get("userIdentity")
    if isinstance(identity, dict):
        record["userIdentity"] = {_IDENTITY_CASE.get(k.lower(), k): v
                                  for k, v in identity.items() if isinstance(k, str)}
    return record


def normalise(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any]) -> Event:
    """Turn one CloudTrail record into an Event; raises RecordError or SkipRecord.

    Kept as one function on purpose: it runs once per event and every extra Python call
    costs about 0.1 us of a ~16 us budget (``benchmarks/bench_parse.py``). Steps: skip
    insights, time, identity (cached per session), agent and network (cached per value),
    per-event attributes and kind, the technique checks of the few event names they know
    (and of the root user), then the Event with allow-listed resource fields.
    """
    get = record.get
    event_type, category = get("eventType"), get("eventCategory")
    if event_type == "AwsCloudTrailInsight" or category == "Insight":
        raise SkipRecord("insight")
    raw_time = get("eventTime")
    try:  # fast path: the ISO form CloudTrail itself writes
        when = _fromisoformat(raw_time)
    except (TypeError, ValueError):
        when = _event_time(record)
    else:  # naive, another offset or a year out of range: the general path decides
        if when.tzinfo is not UTC or not MIN_YEAR <= when.year <= MAX_YEAR:
            when = _event_time(record)
    event_source, event_name = get("eventSource"), get("eventName")
    if type(event_name) is not str or not event_name:
        raise RecordError("invalid_record", "eventName is missing or not a string")
    if len(event_name) > MAX_OPERATION:
        raise oversized("eventName", event_name, MAX_OPERATION)
    if type(event_source) is not str:
        event_source = None
    elif len(event_source) > MAX_SERVICE:
        raise oversized("eventSource", event_source, MAX_SERVICE)
    ui = get("userIdentity")
    if type(ui) is not dict:
        if ui is not None:
            raise RecordError("invalid_record", "userIdentity is not an object")
        ui = {}
    if "arn" not in ui and ui and "accountId" not in ui:
        recipient = get("recipientAccountId")
        if isinstance(recipient, str) and recipient:
            ui = dict(ui, accountId=recipient)  # thin identity: the account acted in
    if ui.get("type") in _FEDERATED_TYPES:
        principal, session_attributes = federated_principal(ui, get("requestParameters"),
                                                            resolver)
    else:
        principal, session_attributes = resolver.aws_principal(ui, event_source)
    if principal.resolution == "unknown":
        raise RecordError("missing_identity", "userIdentity names no principal, service or "
                                              "eventSource")
    if len(principal.identity) > MAX_IDENTITY:
        raise oversized("identity", principal.identity, MAX_IDENTITY)
    session, actor = principal.session_pattern, principal.actor
    if session is not None and len(session) > MAX_IDENTITY:
        raise oversized("session", session, MAX_IDENTITY)
    if actor is not None and len(actor) > MAX_IDENTITY:
        raise oversized("actor", actor, MAX_IDENTITY)
    raw_agent, raw_address = get("userAgent"), get("sourceIPAddress")
    hit = _agent_hit(raw_agent) if type(raw_agent) is str else None
    ua, family = hit or user_agent(raw_agent)
    hit = _network_hit(raw_address) if type(raw_address) is str else None
    source_ip, network, prefix = hit or classify_network(raw_address)
    key_id = ui.get("accessKeyId")
    if type(key_id) is not str or not key_id:
        key_id = None
    elif len(key_id) > MAX_CREDENTIAL:
        raise oversized("accessKeyId", key_id, MAX_CREDENTIAL)
    credential_type = (key_id and _KEY_TYPES.get(key_id[:4])) or _credential_type(
        principal.principal_type)
    attributes = session_attributes.copy()
    if ua is not None and len(raw_agent) > MAX_USER_AGENT:
        note_agent_cut(raw_agent, attributes)
    console = family == "console" or event_type in _CONSOLE_EVENT_TYPES or get(
        "sessionCredentialFromConsole") in _TRUE
    if console:
        attributes["console"] = True
    if event_type != "AwsApiCall" and type(event_type) is str:
        attributes["event_type"] = event_type[:64]
    if category != "Management" and type(category) is str:
        attributes["event_category"] = category[:32]
    if "vpcEndpointId" in record and isinstance(get("vpcEndpointId"), str):
        attributes["vpc_endpoint"] = record["vpcEndpointId"][:64]
    if principal.is_iam_user or console:
        kind, reason = aws_event_kind(principal, family, console, credential_type, resolver)
    else:
        kind, reason = principal.kind, principal.reason
    error, read_only, region = get("errorCode"), get("readOnly"), get("awsRegion")
    event_id = get("eventID")
    if type(event_id) is not str or not event_id:
        event_id = _event_id(record)
    elif len(event_id) > MAX_EVENT_ID:
        raise oversized("eventID", event_id, MAX_EVENT_ID)
    service = _SERVICES.get(event_source) or _service(event_source)
    tenant = principal.account or get("recipientAccountId")
    if type(tenant) is not str or not tenant:
        tenant = None
    elif len(tenant) > MAX_TENANT:
        raise oversized("account", tenant, MAX_TENANT)
    resource, target_tenant = _resource_and_target(record, tenant, attributes)
    if type(region) is not str or not region:
        region = None
    elif len(region) > MAX_REGION:
        region = cut(region, MAX_REGION, "region", attributes)
    if error:
        error = str(error)
        if len(error) > MAX_ERROR:
            error = cut(error, MAX_ERROR, "error_code", attributes)
    # technique checks: one look-up for the event names no check knows (nearly all), and
    # every failed request (a refused one may be an attempt, see detector.techniques)
    check = _TECHNIQUES.get(event_name)
    root = principal.principal_type == "Root"
    if check is not None or root or error:
        found = _findings(record, check, account=tenant, family=family, root=root)
        if found:
            attributes[FINDINGS] = found
    if "instance_id" in attributes:  # an EC2 instance's role session: where was it used
        tally = _instance_network(attributes, source_ip, network, prefix)
        if tally is not None:
            attributes[FINDINGS] = [*attributes.get(FINDINGS, ()), tally]
        if resource is not None and attributes["instance_id"] in resource:
            # the instance acting on itself (its SSM agent's UpdateInstanceInformation, its
            # own tags): one resource for every instance of the role, so a fleet replacing
            # its instances is not a stream of first accesses
            resource = _own_instance(resource, attributes["instance_id"])
    # Positional on purpose (see common.EVENT_POSITIONAL_ORDER): ~3 us cheaper per event.
    event = Event(
        event_id, when, when.timestamp(), SOURCE, principal.identity, kind, reason,
        principal.resolution, principal.principal_type, tenant, target_tenant, key_id,
        credential_type, session, actor, f"{service}:{event_name}", resource, region,
        source_ip, network, prefix, ua, family,
        "failure" if error else "success", error or None,
        read_only if read_only is True or read_only is False else as_bool(read_only),
        False, attributes,
    )
    if resolver.no_config and family not in AI_FAMILY_NAMES:
        return event
    return resolver.finish(event)


def _own_instance(resource: str, own: str) -> str:
    """``resource`` with the calling instance's id, where it stands as a whole id (the whole
    resource, or an ARN's ``instance/<id>``), as ``OWN_INSTANCE``; elsewhere (a name that
    contains it, ``backup-i-1234abcd``, a longer id that starts with it) unchanged."""
    if resource == own:
        return OWN_INSTANCE
    if resource.endswith("/" + own):
        return resource[: len(resource) - len(own)] + OWN_INSTANCE
    return resource


def _service(event_source: str | None) -> str:
    """``iam`` for ``iam.amazonaws.com`` (cached: a few hundred distinct sources exist)."""
    service = event_source.partition(".")[0] if event_source else "unknown"
    if len(_SERVICES) < 10_000 and event_source is not None:
        _SERVICES[event_source] = service
    return service or "unknown"


def _event_time(record: dict[str, Any]) -> Any:
    raw = record.get("eventTime")
    if raw is None:
        raw = record.get("@timestamp") or record.get("p_event_time")
    if raw is None:
        raise RecordError("missing_time", "eventTime is missing")
    when = parse_time(raw)
    if when is None:
        raise RecordError("bad_time", f"eventTime {str(raw)[:64]!r} cannot be parsed "
                                      "or is not in 2000-2100")
    return when


def _event_id(record: dict[str, Any]) -> str:
    event_id = record.get("eventID")
    if isinstance(event_id, str) and event_id:
        return event_id
    return record_digest(record)


def _credential_type(principal_type: str | None) -> str:
    """Credential type when the access key id does not tell (missing or anonymised)."""
    if principal_type in ("AssumedRole", "FederatedUser", "WebIdentityUser"):
        return "temporary"
    if principal_type == "AWSService" or principal_type is None:
        return "none"
    return "unknown"


def _resource_and_target(record: dict[str, Any], tenant: str | None,
                         attributes: dict[str, Any]) -> tuple[str | None, str | None]:
    """The primary resource (first ``resources[].ARN`` or an allow-listed string parameter,
    cut to ``MAX_RESOURCE``) and the account acted upon: another account's role assumed
    (none when the role ARN is longer than any ARN may be), or else the owner of a
    resource in another account (``resources[].accountId``: an object written to another
    account's bucket, which the bucket's ARN does not say)."""
    resource = foreign = None
    resources = record.get("resources")
    if type(resources) is list and resources and type(resources[0]) is dict:
        arn = resources[0].get("ARN") or resources[0].get("arn")
        if type(arn) is str and arn:
            resource = arn if len(arn) <= MAX_RESOURCE else cut(arn, MAX_RESOURCE, "resource",
                                                                attributes)
        for item in resources[:8]:
            owner = item.get("accountId") if type(item) is dict else None
            if type(owner) is str and len(owner) == 12 and owner.isdigit() and owner != tenant:
                foreign = owner
                break
    params = record.get("requestParameters")
    if type(params) is not dict:
        return resource, foreign
    if resource is None and not _RESOURCE_KEY_SET.isdisjoint(params):
        for key in _RESOURCE_KEYS:
            value = params.get(key)
            if type(value) is str and value:
                resource = cut(value, MAX_RESOURCE, "resource", attributes)
                break
    role_arn = params.get("roleArn")
    if type(role_arn) is str and len(role_arn) <= MAX_IDENTITY:
        parts = split_arn(role_arn)
        if parts and parts[2] and parts[2] != tenant and len(parts[2]) <= MAX_TENANT:
            return resource, parts[2]
    return resource, foreign
