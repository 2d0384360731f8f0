"""AWS CloudTrail records -> Events.

One CloudTrail record (from an S3 ``{"Records": [...]}`` file, a JSON line, an EventBridge
``detail``, a CloudWatch Logs message or a CloudTrail Lake export row) becomes one Event.
Insight records are skipped with reason ``insight`` (they never teach baselines); digest
files are recognised by the framing layer. Large blobs (``requestParameters``,
``responseElements``) never enter the Event: only allow-listed, type-checked values do.

This is the hot path of the product; see ``benchmarks/bench_parse.py``. Identity
resolution is cached per distinct ``userIdentity`` in ``detector.identity.Resolver``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any


from detector.event import EVENT_FIELDS, Event
from detector.identity import Resolver, aws_event_kind, split_arn
from detector.sources.common import (
    NETWORK_CACHE,
    USER_AGENT_CACHE,
    RecordError,
    record_digest,
    SkipRecord,
    as_bool,
    classify_network,
    parse_time,
    short_str,
    user_agent,
)

logger = logging.getLogger(__name__)

SOURCE = "aws.cloudtrail"
_fromisoformat = datetime.fromisoformat
_agent_hit = USER_AGENT_CACHE.get  # cache hits without a function call: the hot path
_network_hit = NETWORK_CACHE.get

# requestParameters keys whose string value names the primary resource, in order.
_RESOURCE_KEYS = ("roleArn", "bucketName", "userName", "roleName", "policyArn", "secretId",
                  "functionName", "keyId", "groupName", "instanceId", "trailName", "name",
                  "clusterName", "repositoryName", "tableName", "queueUrl", "topicArn",
                  "logGroupName", "stackName", "accessKeyId", "serviceAccountEmail")


_FIELD_ORDER = (
    "event_id", "time", "ts", "source", "identity", "identity_kind", "kind_reason",
    "identity_resolution", "principal_type", "tenant", "target_tenant", "credential_id",
    "credential_type", "session", "actor", "action", "resource", "region", "source_ip",
    "network", "network_prefix", "user_agent", "agent_family", "outcome", "error_code",
    "read_only", "partial", "attributes")
if EVENT_FIELDS[: len(_FIELD_ORDER)] != _FIELD_ORDER:  # pragma: no cover - a contract change
    raise ImportError("detector.event.Event fields changed order; update cloudtrail.normalise")


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
    per-event attributes and kind, then the Event with allow-listed resource fields.
    """
    get = record.get
    event_type = get("eventType")
    if event_type == "AwsCloudTrailInsight" or get("eventCategory") == "Insight":
        raise SkipRecord("insight")
    raw_time = get("eventTime")
    try:  # fast path: the ISO form CloudTrail itself writes
        when = _fromisoformat(raw_time)
    except (TypeError, ValueError):
        when = _event_time(record)
    else:
        if when.tzinfo is None or when.utcoffset():
            when = _event_time(record)
    event_source = get("eventSource")
    event_name = get("eventName")
    if not isinstance(event_name, str) or not event_name:
        raise RecordError("invalid_record", "eventName is missing or not a string")
    if not isinstance(event_source, str):
        event_source = None
    ui = get("userIdentity")
    if ui is None:
        ui = {}
    elif not isinstance(ui, dict):
        raise RecordError("invalid_record", "userIdentity is not an object")
    if "arn" not in ui and "accountId" not in ui and ui:
        recipient = get("recipientAccountId")
        if isinstance(recipient, str) and recipient:
            ui = dict(ui, accountId=recipient)  # thin identity: the account acted in
    principal, session_attributes = resolver.aws_principal(ui, event_source)
    if principal.resolution == "unknown":
        raise RecordError("missing_identity", "userIdentity names no principal, service or "
                                              "eventSource")
    raw_agent, raw_address = get("userAgent"), get("sourceIPAddress")
    hit = _agent_hit(raw_agent) if type(raw_agent) is str else None
    ua, family = hit or user_agent(raw_agent)
    hit = _network_hit(raw_address) if type(raw_address) is str else None
    source_ip, network, prefix = hit or classify_network(raw_address)
    key_id = ui.get("accessKeyId")
    credential_type = _credential_type(key_id, principal.principal_type)
    attributes = dict(session_attributes)
    console = _is_console(record, family, event_type)
    if console:
        attributes["console"] = True
    if event_type != "AwsApiCall" and isinstance(event_type, str):
        attributes["event_type"] = event_type[:64]
    category = get("eventCategory")
    if category != "Management" and isinstance(category, str):
        attributes["event_category"] = category[:32]
    if "vpcEndpointId" in record and isinstance(get("vpcEndpointId"), str):
        attributes["vpc_endpoint"] = record["vpcEndpointId"][:64]
    if principal.is_iam_user or console:
        kind, reason = aws_event_kind(principal, family, console, credential_type, resolver)
    else:
        kind, reason = principal.kind, principal.reason
    error = get("errorCode")
    read_only = get("readOnly")
    region = get("awsRegion")
    event_id = get("eventID")
    if not isinstance(event_id, str) or not event_id:
        event_id = _event_id(record)
    # Positional on purpose: with 29 fields, keyword construction costs ~3 us more per event
    # (a fifth of the budget). _FIELD_ORDER below pins the order this call relies on.
    event = Event(
        event_id, when, when.timestamp(), SOURCE, principal.identity, kind, reason,
        principal.resolution, principal.principal_type,
        principal.account or short_str(get("recipientAccountId"), 64),  # tenant
        None,  # target_tenant, set below for cross-account calls
        key_id if isinstance(key_id, str) and key_id else None, credential_type,
        principal.session_pattern, principal.actor,
        f"{event_source.partition('.')[0] if event_source else 'unknown'}:{event_name}",
        None,  # resource, set below from allow-listed values
        region[:64] if isinstance(region, str) and region else None,
        source_ip, network, prefix, ua, family,
        "failure" if error else "success", str(error)[:128] if error else None,
        read_only if read_only is True or read_only is False else as_bool(read_only),
        False, attributes,
    )
    _resource_and_target(event, record)
    return resolver.finish(event)


def _event_time(record: dict[str, Any]) -> Any:
    raw = record.get("eventTime")
    if raw is None:
        raw = record.get("@timestamp") or record.get("p_event_time")
    if raw is None:
        raise RecordError("missing_time", "eventTime is missing")
    when = parse_time(raw)
    if when is None:
        raise RecordError("bad_time", f"eventTime {str(raw)[:64]!r} cannot be parsed")
    return when


def _event_id(record: dict[str, Any]) -> str:
    event_id = record.get("eventID")
    if isinstance(event_id, str) and event_id:
        return event_id
    return record_digest(record)


def _credential_type(key_id: Any, principal_type: str | None) -> str:
    if isinstance(key_id, str) and key_id:
        if key_id.startswith("AKIA"):
            return "long_term"
        if key_id.startswith("ASIA"):
            return "temporary"
    if principal_type in ("AssumedRole", "FederatedUser", "WebIdentityUser"):
        return "temporary"
    if principal_type == "AWSService" or principal_type is None:
        return "none"
    return "unknown"


def _is_console(record: dict[str, Any], family: str | None, event_type: Any) -> bool:
    if family == "console" or event_type in ("AwsConsoleSignIn", "AwsConsoleAction"):
        return True
    return record.get("sessionCredentialFromConsole") in ("true", True)


def _resource_and_target(event: Event, record: dict[str, Any]) -> None:
    params = record.get("requestParameters")
    resources = record.get("resources")
    if isinstance(resources, list) and resources and isinstance(resources[0], dict):
        arn = resources[0].get("ARN") or resources[0].get("arn")
        event.resource = short_str(arn)
    if not isinstance(params, dict):
        return
    if event.resource is None:
        for key in _RESOURCE_KEYS:
            value = params.get(key)
            if isinstance(value, str) and value:
                event.resource = value[:512]
                break
    role_arn = params.get("roleArn")
    if isinstance(role_arn, str):
        parts = split_arn(role_arn)
        if parts and parts[2] and parts[2] != event.tenant:
            event.target_tenant = parts[2]
