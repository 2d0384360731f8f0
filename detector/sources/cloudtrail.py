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

import hashlib
import logging
from typing import Any

import orjson

from detector.event import Event
from detector.identity import Resolver, aws_event_kind, split_arn
from detector.sources.common import (
    RecordError,
    SkipRecord,
    as_bool,
    classify_network,
    normalise_session,
    parse_time,
    short_str,
    user_agent,
)

logger = logging.getLogger(__name__)

SOURCE = "aws.cloudtrail"

# requestParameters keys whose string value names the primary resource, in order.
_RESOURCE_KEYS = ("roleArn", "bucketName", "userName", "roleName", "policyArn", "secretId",
                  "functionName", "keyId", "groupName", "instanceId", "trailName", "name",
                  "clusterName", "repositoryName", "tableName", "queueUrl", "topicArn",
                  "logGroupName", "stackName", "accessKeyId", "serviceAccountEmail")


def looks_like(record: dict[str, Any]) -> bool:
    """True when the record has CloudTrail's shape (eventName plus eventSource or time)."""
    return "eventName" in record and ("eventSource" in record or "eventTime" in record
                                      or "userIdentity" in record)


def normalise(record: dict[str, Any], resolver: Resolver, hints: dict[str, Any]) -> Event:
    """Turn one CloudTrail record into an Event; raises RecordError or SkipRecord."""
    if record.get("eventCategory") == "Insight" or record.get("eventType") == \
            "AwsCloudTrailInsight":
        raise SkipRecord("insight")
    when = _event_time(record)
    event_source = record.get("eventSource")
    event_name = record.get("eventName")
    if not isinstance(event_name, str) or not event_name:
        raise RecordError("invalid_record", "eventName is missing or not a string")
    if not isinstance(event_source, str):
        event_source = None
    ui = record.get("userIdentity")
    if ui is None:
        ui = {}
    elif not isinstance(ui, dict):
        raise RecordError("invalid_record", "userIdentity is not an object")
    principal = resolver.aws_principal(ui, event_source)
    service = event_source.partition(".")[0] if event_source else "unknown"

    ua, family = user_agent(record.get("userAgent"))
    source_ip, network, prefix = classify_network(record.get("sourceIPAddress"))
    key_id = ui.get("accessKeyId")
    credential_type = _credential_type(key_id, principal.principal_type)
    console = _is_console(record, family)
    kind, reason = aws_event_kind(principal, family, console, credential_type, resolver)
    error = record.get("errorCode")
    event = Event(
        event_id=_event_id(record),
        time=when,
        ts=when.timestamp(),
        source=SOURCE,
        identity=principal.identity,
        identity_kind=kind,
        kind_reason=reason,
        identity_resolution=principal.resolution,
        principal_type=principal.principal_type,
        tenant=principal.account or short_str(record.get("recipientAccountId"), 64),
        credential_id=key_id if isinstance(key_id, str) and key_id else None,
        credential_type=credential_type,
        session=normalise_session(principal.session),
        actor=principal.actor,
        action=f"{service}:{event_name}",
        resource=None,
        region=short_str(record.get("awsRegion"), 64),
        source_ip=source_ip,
        network=network,
        network_prefix=prefix,
        user_agent=ua,
        agent_family=family,
        outcome="failure" if error else "success",
        error_code=str(error)[:128] if error else None,
        read_only=as_bool(record.get("readOnly")),
        attributes=_attributes(record, ui, principal, console),
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
    digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS,
                                         default=str)).hexdigest()
    return f"sha256:{digest[:32]}"


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


def _is_console(record: dict[str, Any], family: str | None) -> bool:
    if record.get("sessionCredentialFromConsole") in ("true", True):
        return True
    if family == "console":
        return True
    return record.get("eventType") in ("AwsConsoleSignIn", "AwsConsoleAction")


def _attributes(record: dict[str, Any], ui: dict[str, Any], principal: Any,
                console: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    invoked = ui.get("invokedBy")
    if isinstance(invoked, str) and invoked:
        attributes["invoked_by"] = invoked
    if console:
        attributes["console"] = True
    if principal.session and principal.session != normalise_session(principal.session):
        attributes["session_name"] = principal.session[:128]
    context = ui.get("sessionContext")
    if isinstance(context, dict):
        _session_attributes(context, attributes)
    event_type = record.get("eventType")
    if isinstance(event_type, str) and event_type != "AwsApiCall":
        attributes["event_type"] = event_type
    category = record.get("eventCategory")
    if isinstance(category, str) and category != "Management":
        attributes["event_category"] = category
    vpce = record.get("vpcEndpointId")
    if isinstance(vpce, str):
        attributes["vpc_endpoint"] = vpce[:64]
    return attributes


def _session_attributes(context: dict[str, Any], attributes: dict[str, Any]) -> None:
    delivery = context.get("ec2RoleDelivery")
    if isinstance(delivery, str):
        attributes["ec2_role_delivery"] = delivery
    source_identity = context.get("sourceIdentity")
    if isinstance(source_identity, str):
        attributes["source_identity"] = source_identity[:128]
    web = context.get("webIdFederationData")
    if isinstance(web, dict) and isinstance(web.get("federatedProvider"), str):
        attributes["web_identity_provider"] = web["federatedProvider"][:256]
    context_attrs = context.get("attributes")
    if isinstance(context_attrs, dict):
        mfa = as_bool(context_attrs.get("mfaAuthenticated"))
        if mfa is not None:
            attributes["mfa"] = mfa


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
