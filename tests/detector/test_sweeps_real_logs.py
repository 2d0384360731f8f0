"""Sweeps on the real audit logs of ../shared/real_logs (skipped when absent).

None of the published sets holds a spray across identities: the Invictus set is one
Stratus attacker host acting as at most four identities in 55 minutes, and Panther's
spraying and brute-force tests are single records or one service principal failing
again and again. So: no sweep alert on any set at the default settings, and a spray
built from Panther's own failed service-principal sign-in record, sent as eight
service principals from its address within minutes, is one alert."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detector.engine import Detector
from detector.sources import ListDeadLetters, parse_payload, read_paths
from detector.stats import RunStats

pytestmark = pytest.mark.shared

SETS = ("invictus-aws-dataset", "panther-analysis-tests", "elastic-azure-signinlogs",
        "elastic-aws-cloudtrail", "elastic-k8s-audit", "falco-k8s-audit",
        "elastic-gcp-audit", "trailscraper-cloudtrail", "cloud-custodian-gcp-events")
ENTRA = "panther-analysis-tests/azure_entra_audit_signin.panther_tests.jsonl"


def sweep_alerts(events: list[Any]) -> list[Any]:
    detector = Detector({}, stats=RunStats())
    alerts = [a for e in sorted(events, key=lambda e: e.ts) for a in detector.process(e)]
    return [a for a in alerts + detector.finish() if a.group == "sweep"]


@pytest.mark.parametrize("name", SETS)
def test_no_sweep_alert_on_real_sets(real_logs: Path, name: str) -> None:
    path = real_logs / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    events = list(read_paths([path], stats=RunStats(), dead_letters=ListDeadLetters(),
                             archive=True))
    assert events, name
    assert sweep_alerts(events) == []


def test_spray_built_from_panthers_failed_sign_in(real_logs: Path) -> None:
    lines = (real_logs / ENTRA).read_text().splitlines()
    record = json.loads(lines[11])  # Azure.Audit.ManyFailedSignIns: 7000215 from 12.12.12.12
    assert record["properties"]["status"]["errorCode"] == 7000215
    events = []
    for n in range(8):
        sprayed = json.loads(json.dumps(record))
        sprayed["properties"]["servicePrincipalId"] = f"00000000-0000-4000-8000-{n:012d}"
        sprayed["properties"]["id"] = sprayed["correlationid"] = f"spray-{n}"
        sprayed["time"] = f"2023-07-26T23:0{n}:20.889Z"
        events += parse_payload(json.dumps(sprayed).encode(), origin=f"spray-{n}",
                                stats=RunStats(), dead_letters=ListDeadLetters())
    assert len({e.identity for e in events}) == 8
    alerts = sweep_alerts(events)
    assert [a.revision for a in alerts] == [1]
    assert alerts[0].identity == "source:12.12.12.12"
    assert alerts[0].detectors == ("sweep.bad_credential",)
    assert alerts[0].context["sweep"]["distinct_identities"] == 5
    assert [t["id"] for t in alerts[0].techniques] == ["T1110.003", "T1552"]
