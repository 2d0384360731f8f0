"""SOC-noise edge cases B26, B27 and B29 (../shared/edge_cases) through the real parsers.

Each case first warms the detector with a few days of the same routine records (so the
identities are past their learning period and the verdict is the baselines', not the
learning period's), then replays the case's records and checks the expected alerts.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.engine import Detector
from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from tests.detector.alert_schema import assert_valid_alert

pytestmark = pytest.mark.shared

WARM_START = datetime(2024, 2, 20, tzinfo=UTC)
CASE_TIME = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
WARM_DAYS = 6


def load_case(edge_cases: Path, case: str) -> dict[str, Any]:
    return json.loads((edge_cases / f"{case}.json").read_text())


def parse(records: Iterable[dict[str, Any]], stats: RunStats) -> list:
    dead = ListDeadLetters()
    events = []
    for n, record in enumerate(records):
        events += parse_payload(orjson.dumps(record), origin=f"case[{n}]", stats=stats,
                                dead_letters=dead)
    assert dead.items == [], dead.items
    return events


def run(detector: Detector, events: Iterable) -> list:
    """Process events; every alert produced must match the native schema."""
    alerts = []
    for event in events:
        alerts += detector.process(event)
    for alert in alerts:
        assert_valid_alert(alert.to_native())
    return alerts


# ---------------------------------------------------------------------- raw record shapes


def at_time(record: dict[str, Any], when: datetime, n: int) -> dict[str, Any]:
    """A CloudTrail record moved to ``when`` with its own event id."""
    moved = copy.deepcopy(record)
    moved["eventTime"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    moved["eventID"] = f"{record.get('eventName', 'x')}-{n}-{when.timestamp():.0f}"
    moved.setdefault("awsRegion", "us-east-1")
    moved.setdefault("recipientAccountId", "123456789012")
    return moved


def b29_raw(record: dict[str, Any], when: datetime, n: int) -> dict[str, Any]:
    """The scenario's abbreviated B29 record in its real log format."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    uid = f"b29-{n}-{when.timestamp():.0f}"
    if record["source"] == "k8s":
        ref = record["objectRef"]
        return {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": uid, "stage": "ResponseComplete", "verb": record["verb"],
            "requestURI": f"/apis/x/{ref['resource']}",
            "user": {"username": record["user.username"]}, "sourceIPs": ["10.0.0.5"],
            "userAgent": "kube-controller-manager/v1.29.0", "objectRef": ref,
            "responseStatus": record["responseStatus"], "requestReceivedTimestamp": stamp,
            "stageTimestamp": stamp,
        }
    if record["source"] == "gcp":
        method = record["methodName"]
        service = "compute.googleapis.com" if "compute" in method else (
            "cloudresourcemanager.googleapis.com")
        return {
            "insertId": uid, "timestamp": stamp,
            "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
            "resource": {"type": "project", "labels": {"project_id": "p1"}},
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                "serviceName": service, "methodName": method, "resourceName": "projects/p1",
                "authenticationInfo": {"principalEmail": record["principalEmail"]},
                "requestMetadata": {"callerIp": record["callerIp"]},
            },
        }
    raw = {k: v for k, v in record.items() if k != "source"}
    raw.update({"eventSource": "iam.amazonaws.com", "sourceIPAddress": "autoscaling.amazonaws.com",
                "userAgent": "autoscaling.amazonaws.com"})
    return at_time(raw, when, n)


def warm(records: list[dict[str, Any]], shape) -> Iterable[dict[str, Any]]:
    """The routine records every hour for ``WARM_DAYS`` days."""
    for hour in range(WARM_DAYS * 24):
        when = WARM_START + timedelta(hours=hour)
        for n, record in enumerate(records):
            yield shape(record, when, n)


# ---------------------------------------------------------------------- the cases


def test_b26__ci_sessions_key_to_the_role_and_raise_nothing(edge_cases):
    case = load_case(edge_cases, "B26")
    stats = RunStats()
    detector = Detector({}, stats=stats)
    events = parse(case["records"], stats)
    alerts = run(detector, events) + detector.finish()
    assert alerts == []
    keys = {entry["identity"] for entry in detector.inventory()}
    assert len(keys) == case["expected"]["distinct_models_created"]
    assert case["expected"]["baseline_key_for_ci_events"] in keys
    sso = [e for e in detector.inventory() if e["kind"] == "human"]
    assert [e["last_actor"] for e in sso] == ["user-4@example.com"]


def test_b27__aws_services_on_your_behalf_raise_nothing(edge_cases):
    case = load_case(edge_cases, "B27")
    records = case["records"]
    stats = RunStats()
    detector = Detector({}, stats=stats)
    assert run(detector, parse(warm(records, at_time), stats)) == []
    todays = [at_time(r, CASE_TIME + timedelta(seconds=n), 10_000 + n)
              for n, r in enumerate(records)]
    events = parse(todays, stats)
    assert run(detector, events) == []
    assert [e.identity_kind for e in events[:3]] == ["cloud_service"] * 3
    assert events[3].identity.endswith("role/app-worker-role")


def test_b27__service_linked_role_outside_its_action_set_alerts(edge_cases):
    case = load_case(edge_cases, "B27")
    records = case["records"]
    stats = RunStats()
    detector = Detector({}, stats=stats)
    run(detector, parse(warm(records, at_time), stats))
    outside = copy.deepcopy(records[2])
    outside["eventName"] = "AttachRolePolicy"
    events = parse([at_time(outside, CASE_TIME, 1)], stats)
    alerts = run(detector, events)
    assert len(alerts) == 1
    native = alerts[0].to_native()
    assert_valid_alert(native)
    assert native["identity"]["key"].endswith("role/AWSServiceRoleForConfig")
    assert native["identity"]["kind"] == "cloud_service"
    assert native["detectors"][0] == "novelty.action"
    assert native["techniques"][0]["id"] == "T1098.003"


def test_b29__platform_routine_is_quiet_and_the_escalation_alerts(edge_cases):
    case = load_case(edge_cases, "B29")
    routine, escalation = case["records"][:5], case["records"][5]
    stats = RunStats()
    detector = Detector({}, stats=stats)
    assert run(detector, parse(warm(routine, b29_raw), stats)) == []
    today = [b29_raw(r, CASE_TIME + timedelta(seconds=n), 10_000 + n)
             for n, r in enumerate(routine)]
    events = parse(today, stats)
    assert {e.identity_kind for e in events} == {"cloud_service"}
    assert run(detector, events) == []
    assert case["expected"]["alerts_for_records_0_to_4"] == 0
    alerts = run(detector, parse([b29_raw(escalation, CASE_TIME + timedelta(minutes=5), 99)],
                                 stats))
    assert case["expected"]["alert_for_record_5"] is True
    assert len(alerts) == 1
    native = alerts[0].to_native()
    assert_valid_alert(native)
    assert native["identity"]["key"] == "system:kube-controller-manager"
    assert native["severity"] == "high"
    assert native["techniques"][0]["id"] == "T1098.006"
    assert native["context"]["sensitive_categories"] == ["kubernetes_rbac"]
