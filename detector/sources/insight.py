"""CloudTrail Insights records -> context events for the identities they name (edge case B03).

An Insights record (``eventType: AwsCloudTrailInsight``) says that an API's call or error
rate left its baseline: a ``Start`` record opens the insight, an ``End`` record with the
same ``sharedEventID`` closes it. It has no ``userIdentity`` and is no identity's own
action, so it never becomes an ordinary event and never reaches a baseline: the record is
counted as a skip (reason ``insight``) and in ``RunStats.insights``.

What it is good for is context. ``insightContext.attributions[attribute=userIdentityArn]``
lists the principals that drove the unusual rate (session ARNs, mapped to the role as in
edge case B26). For each one, ``context_events`` builds one *context event*: ``partial``
(never learned), no event id, keyed by that identity so the worker routes it to the
partition holding the identity's state, and carrying the insight in
``attributes["insight"]``. The engine keeps it with the identity and attaches it to that
identity's alerts raised inside the insight's window (``detector.engine``).
"""

from __future__ import annotations

import math
from typing import Any

from detector.event import Event
from detector.identity import Resolver
from detector.sources.common import MAX_IDENTITY, as_dict, parse_time, short_str

ATTRIBUTE = "insight"  # the key in Event.attributes
TYPES = ("ApiCallRateInsight", "ApiErrorRateInsight")  # AWS's insight types; others: "other"
STATES = {"Start": "start", "End": "end"}
MAX_ATTRIBUTED = 5  # CloudTrail lists at most the top five contributors per attribute


def labels(record: dict[str, Any]) -> tuple[str, str]:
    """(type, state) of an Insights record as bounded metric label values."""
    details = as_dict(record.get("insightDetails"))
    kind = details.get("insightType")
    return (kind if kind in TYPES else "other", _state(details) or "other")


def _state(details: dict[str, Any]) -> str | None:
    """``start`` or ``end``; None for anything else, an object or a list included (a
    look-up of one of those in ``STATES`` raised, and took the payload's other records)."""
    state = details.get("state")
    return STATES.get(state) if type(state) is str else None


def context_events(record: dict[str, Any], resolver: Resolver) -> list[Event]:
    """One context event per identity the insight attributes its unusual rate to."""
    details = as_dict(record.get("insightDetails"))
    when = parse_time(record.get("eventTime"))
    state = _state(details)
    if when is None or state is None:
        return []
    shared = short_str(record.get("sharedEventID"), 128) or short_str(
        record.get("eventID"), 128)
    if shared is None:
        return []
    context = as_dict(details.get("insightContext"))
    statistics = as_dict(context.get("statistics"))
    event_source = short_str(details.get("eventSource"), 128)
    event_name = short_str(details.get("eventName"), 128)
    insight = {
        "shared_event_id": shared,
        "state": state,
        "type": short_str(details.get("insightType"), 64) or "unknown",
        "event_source": event_source,
        "event_name": event_name,
        "baseline_average": _number(as_dict(statistics.get("baseline")).get("average")),
        "insight_average": _number(as_dict(statistics.get("insight")).get("average")),
        "duration_minutes": _number(statistics.get("insightDuration")),
    }
    service = event_source.partition(".")[0] if event_source else "unknown"
    action = f"{service}:{event_name or 'unknown'}"
    region = short_str(record.get("awsRegion"), 64)
    tenant = short_str(record.get("recipientAccountId"), 64)
    events = []
    for arn in _attributed(context):
        principal, _ = resolver.aws_principal({"arn": arn}, None)
        if principal.resolution == "unknown" or any(e.identity == principal.identity
                                                    for e in events):
            continue
        events.append(Event(
            event_id="", time=when, ts=when.timestamp(), source="aws.cloudtrail",
            identity=principal.identity, identity_kind=principal.kind,
            kind_reason=principal.reason, identity_resolution="insight_attribution",
            principal_type=principal.principal_type, tenant=principal.account or tenant,
            action=action, region=region, credential_type="none", partial=True,
            attributes={ATTRIBUTE: dict(insight, attributed_arn=arn[:512])},
        ))
    return events


def _attributed(context: dict[str, Any]) -> list[str]:
    """The ``userIdentityArn`` values of the insight period, at most ``MAX_ATTRIBUTED``."""
    attributions = context.get("attributions")
    if not isinstance(attributions, list):
        return []
    for item in attributions:
        item = as_dict(item)
        if item.get("attribute") != "userIdentityArn":
            continue
        values = item.get("insight")
        if not isinstance(values, list):
            return []
        arns = (as_dict(value).get("value") for value in values[:MAX_ATTRIBUTED])
        return [arn for arn in arns if isinstance(arn, str) and arn.startswith("arn:")
                and len(arn) <= MAX_IDENTITY]
    return []


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
