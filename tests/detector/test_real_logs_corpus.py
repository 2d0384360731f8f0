"""Every record of every real log ends as an event, a skip or a dead letter a user can act
on, and no identity is left without a kind when the record says what it is.

Figures are per file (the Panther test files) or per folder; the Panther files hold
hand-trimmed test events, so many of their records are dead letters for a missing time
or caller, which is right: a record that names nobody, or no time, cannot be an event.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.sources import ListDeadLetters, read_paths
from detector.stats import RunStats

pytestmark = pytest.mark.shared

PANTHER = "panther-analysis-tests"
UNSUPPORTED = ("anthropic_activity", "github_audit", "okta_systemlog", "openai_audit")
# Reasons a record of the real logs may be refused for; anything else is a regression.
ACCEPTED_REASONS = {"missing_time", "missing_identity", "bad_time", "unknown_format"}


def run(path: Path) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = list(read_paths([str(path)], stats=stats, dead_letters=dead))
    assert stats.balanced(), path
    return events, stats, dead


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_sources_never_become_events(real_logs: Path, name: str) -> None:
    events, stats, dead = run(real_logs / PANTHER / f"{name}.panther_tests.jsonl")
    assert events == []
    assert set(stats.skipped) <= {("unknown", "unsupported_format")}
    assert {d["reason"] for d in dead.items} <= {"unknown_format"}
    assert stats.skipped[("unknown", "unsupported_format")] > len(dead.items)


# Panther's test files are collections of test cases dated anywhere from 2018 to 2026, not
# streams: a case dated weeks after the cases around it, which the next 16 cases do not
# follow, is judged as a stream's would be (a ``time_outlier`` dead letter).
@pytest.mark.parametrize(("name", "events_at_least", "outliers"), [
    ("aws_cloudtrail", 326, 2), ("gcp_auditlog", 146, 1), ("azure_entra_audit_signin", 47, 1),
    ("azure_monitoractivity", 24, 0), ("eks_k8s_audit", 13, 0),
])
def test_supported_panther_files(real_logs: Path, name: str, events_at_least: int,
                                 outliers: int) -> None:
    events, stats, dead = run(real_logs / PANTHER / f"{name}.panther_tests.jsonl")
    assert len(events) >= events_at_least
    assert sum(d["reason"] == "time_outlier" for d in dead.items) == outliers
    assert {d["reason"] for d in dead.items} <= ACCEPTED_REASONS | {"time_outlier"}
    assert all(d["message"] for d in dead.items)
    assert all(e.kind_reason for e in events)


@pytest.mark.parametrize(("folder", "events", "kinds"), [
    ("invictus-aws-dataset", 2900, {"human", "workload", "cloud_service", "unknown"}),
    ("falco-k8s-audit", 50, {"human", "cloud_service", "external"}),
    ("elastic-azure-signinlogs", 7, {"workload"}),
    ("elastic-k8s-audit", 4, {"workload", "cloud_service"}),
    ("trailscraper-cloudtrail", 3, {"workload", "cloud_service", "human"}),
])
def test_folders(real_logs: Path, folder: str, events: int, kinds: set[str]) -> None:
    found, stats, dead = run(real_logs / folder)
    assert len(found) == events
    assert {e.identity_kind for e in found} == kinds
    assert {d["reason"] for d in dead.items} <= {"unknown_format"}  # fuzz input, label file


def test_only_iam_users_and_odd_principals_stay_unknown(real_logs: Path) -> None:
    """Unknown is kept for what the record cannot tell: an IAM user not yet seen in the
    console nor with an SDK key, a GetFederationToken user, a malformed principal."""
    events, _, _ = run(real_logs)
    unknown = {e.principal_type for e in events if e.identity_kind == "unknown"}
    assert unknown <= {"IAMUser", "FederatedUser", None, "user"}
    gcp_unknown = {e.identity for e in events
                   if e.identity_kind == "unknown" and e.source == "gcp.audit"}
    assert gcp_unknown <= {"example_principal_subject"}
