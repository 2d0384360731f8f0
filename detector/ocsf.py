"""OCSF output: an ``Alert`` as a Detection Finding (class_uid 2004), OCSF schema 1.6.0.

1.6.0 is the version AWS Security Hub reads; it has ``is_alert`` and ``anomaly_analyses``
(observed vs baseline), which fit a behavioural detector. Mapping (see ``docs/alerts.md``):

- revision 1 is activity ``Create`` (type_uid 200401), later revisions ``Update`` (200402),
  with ``metadata.uid`` = alert id and revision, ``finding_info.uid`` = the stable alert id;
- ``time`` is the event time of the latest evidence (the detector runs in event time, so
  a replay of the same input yields the same document), ``start_time``/``end_time`` the
  alert window;
- the identity is ``actor.user`` (uid = identity key, account = tenant) and the affected
  resource; behavioural evidence goes to ``anomaly_analyses`` and ``evidences`` (the
  first with the samples and event ids, then one per catalogued sensitive action);
- ``risk_score`` (0-99) and ``risk_level_id`` follow the alert's score and severity (the
  score lies in its severity's band); ``confidence_id`` and ``confidence_score`` say how
  far up its band the weight of evidence placed it (corroboration, not severity), and
  ``risk_details`` says both in words;
- CloudTrail insights attached to the alert go to ``enrichments`` (one per insight);
- the next steps for the leading detector's family (``detector.triage``) are the
  finding's ``remediation`` (``desc`` in words; the steps as lists in ``unmapped``), and a
  technique rule's family is ``analytic.category``;
- fields OCSF has no place for (kind, kind reason, owner, context) go to ``unmapped``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import metadata
from typing import Any

from detector.alerts import NO_OWNER, Alert, is_rule, short_identity, signal_sentence
from detector.scoring import evidence_place
from detector.triage import guidance_for, technique_family

logger = logging.getLogger(__name__)

OCSF_VERSION = "1.6.0"
CLASS_UID = 2004
CATEGORY_UID = 2
SEVERITY_IDS = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
SEVERITY_NAMES = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
RISK_LEVELS = {"info": (0, "Info"), "low": (1, "Low"), "medium": (2, "Medium"),
               "high": (3, "High"), "critical": (4, "Critical")}
# confidence_id from the place in the band (scoring.evidence_place): a single
# clipped reading or technique finding (a third of the way up) is Medium, two or more
# independent lines of strong evidence (half way and more) High
CONFIDENCE_LEVELS = ((0.5, 3), (0.25, 2), (0.0, 1))
USER_TYPES = {  # identity kind -> (OCSF user type_id, caption)
    "human": (1, "User"),
    "workload": (4, "Service"),
    "cloud_service": (3, "System"),
    "ai_agent": (99, "AI agent"),
    "external": (99, "External"),
    "unknown": (0, "Unknown"),
}
ANALYTIC_BEHAVIORAL = 2
ANALYTIC_RULE = 1


@lru_cache(maxsize=1)
def _product() -> tuple[tuple[str, str], ...]:
    try:
        version = metadata.version("nhi-detector")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return (("name", "nhi-detector"), ("vendor_name", "nhi-detector project"),
            ("version", version))


def product() -> dict[str, str]:
    """``metadata.product``: name, vendor and the installed package version (read once)."""
    return dict(_product())


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


def _ms(ts: float) -> int:
    """Epoch milliseconds, cut exactly as the native alert's ``iso`` cuts them.

    Both go through the same ``datetime`` (rounded to the microsecond) and drop what is
    below the millisecond, so ``…33.560613Z`` is 560 in both; rounding here made OCSF one
    millisecond later than the native alert for sub-millisecond input."""
    return (datetime.fromtimestamp(ts, tz=UTC) - EPOCH) // ONE_MS


def to_ocsf(alert: Alert) -> dict[str, Any]:
    """The alert as an OCSF 1.6.0 Detection Finding document."""
    activity_id = 1 if alert.revision <= 1 else 2
    severity_id = SEVERITY_IDS.get(alert.severity, 0)
    finding: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": "Create" if activity_id == 1 else "Update",
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {'Create' if activity_id == 1 else 'Update'}",
        "severity_id": severity_id,
        "severity": SEVERITY_NAMES.get(severity_id, "Unknown"),
        "time": _ms(alert.last_time),
        "start_time": _ms(alert.first_time),
        "end_time": _ms(alert.last_time),
        "message": alert.title,
        "status_id": 1,
        "status": "New",
        "is_alert": not alert.shadow,
        **_risk(alert),
        "metadata": _metadata(alert),
        "finding_info": _finding_info(alert),
        "actor": {"user": _user(alert)},
        "resources": [_resource(alert)],
        "evidences": [_evidence(alert), *_sensitive_evidences(alert)],
        "anomaly_analyses": [_anomaly_analysis(alert)],
        "remediation": _remediation(alert),
        "unmapped": _unmapped(alert),
    }
    enrichments = _enrichments(alert)
    if enrichments:
        finding["enrichments"] = enrichments
    return finding


def _enrichments(alert: Alert) -> list[dict[str, Any]]:
    """CloudTrail insights attached to the alert (B03) as OCSF enrichment objects: context
    about the attribute ``actor.user.uid`` (the identity the insight names) from another
    analysis, which is what ``enrichments`` is for (``name``, ``value``, ``data`` are the
    required attributes)."""
    return [
        {
            "name": "actor.user.uid",
            "value": alert.identity,
            "type": "cloudtrail_insight",
            "provider": "AWS CloudTrail Insights",
            "data": dict(item),
        }
        for item in alert.context.get("insights") or []
    ]


def _risk(alert: Alert) -> dict[str, Any]:
    """Risk from the score and severity; confidence from the weight of evidence alone (a
    low alert can rest on strong corroboration, a critical one on one rule match)."""
    weight = float(alert.evidence.get("weight_of_evidence") or 0.0)
    place = evidence_place(weight)
    confidence = next(level for floor, level in CONFIDENCE_LEVELS if place >= floor)
    level_id, level = RISK_LEVELS.get(alert.severity, (99, "Other"))
    lines = int(alert.evidence.get("lines_of_evidence") or 0)
    return {
        "confidence_id": confidence,
        "confidence_score": int(place * 100),  # floored like the bands of confidence_id
        # floored, past the float error of the product (0.57 * 100 is 56.99999999999999)
        "risk_score": min(int(alert.score * 100 + 1e-9), 99),
        "risk_level_id": level_id,
        "risk_level": level,
        "risk_details": (f"score {alert.score:.4f} in the {alert.severity} band; "
                         f"{lines} independent line{'s' if lines != 1 else ''} of evidence "
                         f"weighing {weight:.1f} nats"),
    }


def _metadata(alert: Alert) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": product(),
        "uid": f"{alert.alert_id}-r{alert.revision}",
        "correlation_uid": alert.alert_id,
        "log_name": "nhi-detector alerts",
        "profiles": [],
    }
    if alert.tenant:
        data["tenant_uid"] = alert.tenant
    if alert.shadow:
        data["labels"] = ["shadow"]
    return data


def _finding_info(alert: Alert) -> dict[str, Any]:
    # The analytic is what the title leads with: a policy violation or technique finding
    # is a rule matched by the request itself, anything else a deviation from a baseline,
    # whatever group the alert opened in (a technique finding joins an open novelty alert).
    top = alert.top_detector or alert.group
    behavioural = not is_rule(top)
    info: dict[str, Any] = {
        "uid": alert.alert_id,
        "title": alert.title,
        "desc": "; ".join(signal_sentence(s) for s in alert.signals if s.get("sentence")),
        "types": list(alert.detectors) + list(alert.context.get("sensitive_categories", [])),
        "analytic": {
            "uid": top,
            "name": top,
            # a technique rule's kind of harm; the alert's group would say "novelty" for
            # a rule that joined a novelty alert
            "category": (technique_family(top) or alert.group)
            if top.startswith("technique.") else alert.group,
            "type_id": ANALYTIC_BEHAVIORAL if behavioural else ANALYTIC_RULE,
            "type": "Behavioral" if behavioural else "Rule",
        },
        "attacks": _attacks(alert),
        "first_seen_time": _ms(alert.first_time),
        "last_seen_time": _ms(alert.last_time),
        "related_events_count": int(alert.evidence.get("event_count", 0)),
        "related_events": [{"uid": str(eid)} for eid in alert.evidence.get("event_ids", [])],
    }
    return info


def _attacks(alert: Alert) -> list[dict[str, Any]]:
    attacks = []
    for tech in alert.techniques:
        parent_id, _, _ = tech["id"].partition(".")
        parent_name, _, sub_name = tech["name"].partition(": ")
        base: dict[str, Any] = {"technique": {"uid": parent_id, "name": parent_name}}
        if "." in tech["id"]:
            base["sub_technique"] = {"uid": tech["id"], "name": sub_name or tech["name"]}
        for tactic in tech["tactics"] or [None]:
            item = dict(base)
            if tactic:
                item["tactic"] = {"uid": tactic["id"], "name": tactic["name"]}
            attacks.append(item)
    return attacks


def _user(alert: Alert) -> dict[str, Any]:
    type_id, caption = USER_TYPES.get(alert.identity_kind, (0, "Unknown"))
    user: dict[str, Any] = {
        "uid": alert.identity,
        "name": short_identity(alert.identity),
        "type_id": type_id,
        "type": caption,
    }
    if alert.tenant:
        user["account"] = {"uid": alert.tenant}
    return user


def _resource(alert: Alert) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "uid": alert.identity,
        "name": short_identity(alert.identity),
        "type": f"identity/{alert.identity_kind}",
    }
    if alert.owner != NO_OWNER:
        resource["owner"] = {"name": alert.owner}
    return resource


def _evidence(alert: Alert) -> dict[str, Any]:
    samples = alert.evidence.get("samples", {})
    evidence: dict[str, Any] = {"actor": {"user": _user(alert)}}
    action = _lead_action(alert)
    if action:
        service, _, operation = action.partition(":")
        evidence["api"] = {"operation": operation or service, "service": {"name": service}}
    addresses = samples.get("source_ip") or []
    if addresses:
        evidence["src_endpoint"] = {"ip": addresses[0]}
    evidence["data"] = {
        "event_ids": list(alert.evidence.get("event_ids", [])),
        "samples": samples,
    }
    window = alert.evidence.get("window_activity")
    if window:  # what a volume or enumeration window held, not only its scored events
        evidence["data"]["window_activity"] = window
    return evidence


def _lead_action(alert: Alert) -> str:
    """The call of the leading signal, what the title is about: a rule's or a first
    call's own request (its ``observed``), a window's most frequent call; otherwise the
    first sampled action. The first sample is only the first call of the alert, which for
    a key made for another user was an ``iam:ListRoles`` read before it."""
    lead = alert.signals[0] if alert.signals else {}
    detector, observed = str(lead.get("detector", "")), str(lead.get("observed", ""))
    if (is_rule(detector) or detector == "novelty.action") and ":" in observed and \
            " " not in observed:
        return observed
    top = (alert.evidence.get("window_activity") or {}).get("top_actions") or []
    if detector.startswith(("volume.", "multivariate.")) and top:
        return str(top[0]["action"])
    actions = alert.evidence.get("samples", {}).get("action") or []
    return str(actions[0]) if actions else ""


def _remediation(alert: Alert) -> dict[str, Any]:
    """OCSF's remediation object (``desc`` is its one required attribute): the next
    steps for the leading detector's family, in words."""
    guide = guidance_for(alert.top_detector)
    checks = " ".join(f"({n}) {step}" for n, step in enumerate(guide.check_first, 1))
    return {"desc": f"{guide.family}: {guide.summary}. Check first: {checks} Contain: "
                    f"{' '.join(guide.contain)}",
            "references": ["docs/alerts.md#next-steps-per-detector-family"]}


def _sensitive_evidences(alert: Alert) -> list[dict[str, Any]]:
    """One evidence artifact per catalogued sensitive action of the alert
    (``evidence.sensitive_actions``): the call, the resource it touched, its event, time and
    category, so a SIEM shows ``iam:CreateUser`` on ``backdoor`` rather than only the
    category name."""
    out = []
    for record in alert.evidence.get("sensitive_actions") or []:
        service, _, operation = str(record["action"]).partition(":")
        item: dict[str, Any] = {
            "actor": {"user": _user(alert)},
            "api": {"operation": operation or service, "service": {"name": service}},
            "data": {
                "event_id": record["event_id"],
                "time": record["time"],
                "category": record["category"],
                "level": record["level"],
            },
        }
        if record["resource"]:
            item["resources"] = [{"name": record["resource"]}]
        out.append(item)
    return out


def _anomaly_analysis(alert: Alert) -> dict[str, Any]:
    anomalies = []
    baselines = []
    for signal in alert.signals:
        anomalies.append({
            "observation_parameter": signal["detector"],
            "observation_type": signal["detector"].partition(".")[0],
            "observations": [{"value": str(signal.get("observed") or signal.get("value"))}],
        })
        baselines.append({
            "observation_parameter": signal["detector"],
            "observations": [{"value": str(signal.get("baseline") or "")}],
        })
    return {
        "analysis_targets": [{"name": alert.identity, "type": "Identity"}],
        "anomalies": anomalies,
        "baselines": baselines,
    }


def _unmapped(alert: Alert) -> dict[str, Any]:
    return {
        "nhi_revision": alert.revision,
        "nhi_identity_kind": alert.identity_kind,
        "nhi_kind_reason": alert.kind_reason,
        "nhi_owner": alert.owner,
        "nhi_group": alert.group,
        "nhi_context": alert.context,
        "nhi_shadow": alert.shadow,
        "nhi_triage": guidance_for(alert.top_detector).to_dict(),
        # the raw (detector, value) pairs, what ``nhi-detector feedback`` marks expected
        "nhi_signal_values": [dict(pair) for pair in alert.evidence.get("signal_values", [])],
    }
