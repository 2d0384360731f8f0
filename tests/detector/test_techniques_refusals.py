"""Refused requests in Kubernetes, GCP and Azure: a refused logging or detection change is
an attempt finding one level below the catalogue's level, every permission refusal counts
toward the source's probing burst, and failures that are not refusals give nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detector.engine import Detector
from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, as_findings, as_tallies, refused
from tests.detector.test_techniques_azure import activity
from tests.detector.test_techniques_gcp import entry
from tests.detector.test_techniques_k8s import request


def parsed(payload: Any) -> list:
    dead = ListDeadLetters()
    events = parse_payload(orjson.dumps(payload), origin="t", stats=RunStats(),
                           dead_letters=dead)
    assert len(dead) == 0
    return events


def outcome(payload: Any) -> tuple[list[tuple[str, str, str]], list[tuple[str, tuple]]]:
    """(findings as (rule, severity, value), tallies as (rule, values)) of one record."""
    events = parsed(payload)
    assert len(events) == 1
    value = events[0].attributes.get(ATTRIBUTE)
    return ([(f.rule, f.severity, f.value) for f in as_findings(value)],
            [(t.rule, t.values) for t in as_tallies(value)])


@pytest.mark.parametrize("error, expected", [
    ("AccessDenied", True), ("Client.UnauthorizedOperation", True), ("Forbidden", True),
    ("403", True), ("7", True), ("AuthorizationFailed", True),
    ("AccessDeniedException", True), ("TrailNotFoundException", False), ("404", False),
    ("ThrottlingException", False), ("5", False), ("", False), (None, False),
])
def test_refused_means_not_allowed(error: Any, expected: bool) -> None:
    assert refused(error) is expected


def test_k8s_refused_audit_sink_delete_is_an_attempt() -> None:
    found, tallies = outcome([request("delete", "auditsinks", name="s", namespace=None,
                                      code=403)])
    assert found == [("k8s.tampering_attempt", "high", "k8s:auditsinks.delete")]
    assert tallies == [("k8s.permission_probing", ("k8s:auditsinks.delete",))]


def test_k8s_refused_read_is_probing_only() -> None:
    assert outcome([request("list", "secrets", code=403)]) == (
        [], [("k8s.permission_probing", ("k8s:secrets.list",))])


def test_k8s_missing_object_and_anonymous_refusal_give_nothing() -> None:
    """A 404 is no refusal; the anonymous user is refused by every internet scanner of a
    public API server, which is no stolen credential."""
    assert outcome([request("delete", "auditsinks", name="s", code=404)]) == ([], [])
    assert outcome([request("list", "secrets", code=403, user="system:anonymous")]) == (
        [], [])


SINK = "google.logging.v2.ConfigServiceV2.DeleteSink"


def test_gcp_refused_sink_delete_is_an_attempt() -> None:
    found, tallies = outcome([entry(SINK, "logging.googleapis.com", code=7)])
    assert found == [("gcp.tampering_attempt", "high", f"logging:{SINK}")]
    assert tallies == [("gcp.permission_probing", (f"logging:{SINK}",))]


def test_gcp_other_failures_give_nothing() -> None:
    assert outcome([entry(SINK, "logging.googleapis.com", code=5)]) == ([], [])
    assert outcome([entry(SINK, "logging.googleapis.com")]) == ([], [])


DIAGNOSTICS = ("/subscriptions/11111111-2222-3333-4444-555555555555/providers/"
               "Microsoft.Insights/diagnosticSettings/audit")


def test_azure_refused_diagnostics_delete_is_an_attempt() -> None:
    record = activity("Microsoft.Insights/diagnosticSettings/delete", DIAGNOSTICS,
                      result="Failure", resultSignature="Forbidden")
    found, tallies = outcome({"records": [record]})
    action = "azure:microsoft.insights/diagnosticsettings/delete"
    assert found == [("azure.tampering_attempt", "high", action)]
    assert tallies == [("azure.permission_probing", (action,))]


def test_azure_failure_that_is_no_refusal_gives_nothing() -> None:
    record = activity("Microsoft.Insights/diagnosticSettings/delete", DIAGNOSTICS,
                      result="Failure", resultSignature="Conflict")
    assert outcome({"records": [record]}) == ([], [])


def test_twenty_distinct_refusals_in_minutes_are_one_probing_alert() -> None:
    """A credential trying what it may do: twenty distinct refused actions within the burst
    window raise one alert; a workload refused the same action again and again does not."""
    probing = [request("list", f"kind{n}", code=403) for n in range(20)]
    for n, record in enumerate(probing):
        record["requestReceivedTimestamp"] = f"2024-03-04T10:00:{n:02d}.000000Z"
        record["stageTimestamp"] = record["requestReceivedTimestamp"]
    repeated = [request("list", "secrets", code=403, user="system:serviceaccount:a:b")
                for _ in range(40)]
    detector = Detector({}, stats=RunStats())
    alerts = [a for e in parsed(probing + repeated) for a in detector.process(e)]
    assert {a.identity for a in alerts} == {"system:serviceaccount:ci:deployer"}
    assert {d for a in alerts for d in a.detectors} == {"technique.k8s.permission_probing"}
