"""The labelled attack scenarios of replay_data: each alert names the right identity, the
ATT&CK techniques an analyst expects for that attack, and the scenario's own events.

Only the scenario identities' events are run through the detector (the whole data set is
parsed, about ten seconds), which is enough for their own baselines; the full replay with
its false-positive figures is the replay harness's job.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from detector.engine import Detector
from detector.ocsf import to_ocsf
from detector.sources import NullDeadLetters, read_paths
from detector.stats import RunStats
from tests.detector.alert_schema import assert_valid_alert

# Techniques a SOC analyst would expect for each scenario (from its description, not from
# the detector): at least one of each set must be on the scenario's alert.
EXPECTED_TECHNIQUES = {
    "S01": {"T1552.005", "T1530"},
    "S02": {"T1098.001", "T1098.003"},
    "S03": {"T1098.003"},
    "S04": {"T1562.008"},
    "S05": {"T1555.006"},
    "S06": {"T1530"},
    "S07": {"T1078.004"},
    "S08": {"T1555.006", "T1098.003", "T1098.001"},
    "S09": {"T1552.007", "T1609"},
    "S10": {"T1098.001", "T1548.005"},
    "S11": {"T1552"},
}


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def scenario_run(repo_dir: Path):
    data = repo_dir / "replay_data"
    labels_file = data / "labels.json"
    if not labels_file.is_file():
        pytest.skip("replay_data/labels.json is absent")
    scenarios = json.loads(labels_file.read_text())["scenarios"]
    wanted = {key for scenario in scenarios for key in scenario["identities"]}
    events = [e for e in read_paths([data], stats=RunStats(), dead_letters=NullDeadLetters())
              if e.identity in wanted]
    events.sort(key=lambda e: e.ts)
    detector = Detector({}, stats=RunStats())
    alerts = []
    for event in events:
        alerts += detector.process(event)
    alerts += detector.finish()
    latest = {}
    for alert in alerts:
        assert_valid_alert(alert.to_native())
        latest[alert.alert_id] = alert
    return scenarios, list(latest.values())


def _scenario_alerts(scenario, alerts):
    """The alerts about the scenario: on one of its identities within its window, or, as
    the evaluation also counts them, citing one of its events (a sweep alert is keyed by
    the source address, and names the scenario's identities in its context)."""
    start, end = _epoch(scenario["start"]), _epoch(scenario["end"])
    labelled = set(scenario.get("event_ids") or ())
    return [a for a in alerts if not a.shadow and (
        (a.identity in scenario["identities"] and a.first_time <= end and a.last_time >= start)
        or labelled.intersection(a.evidence["event_ids"]))]


def test_every_scenario_has_an_explained_alert(scenario_run):
    scenarios, alerts = scenario_run
    assert len(scenarios) >= 8
    for scenario in scenarios:
        found = _scenario_alerts(scenario, alerts)
        assert found, f"{scenario['id']}: no alert"
        best = max(found, key=lambda a: (a.score, a.alert_id))
        assert_valid_alert(best.to_native())
        assert best.severity in ("high", "critical"), (scenario["id"], best.severity)
        assert best.signals and all(s["sentence"] for s in best.signals)


def test_scenario_alerts_carry_the_expected_techniques(scenario_run):
    scenarios, alerts = scenario_run
    for scenario in scenarios:
        expected = EXPECTED_TECHNIQUES.get(scenario["id"][:3])
        if expected is None:
            continue
        techniques = {t["id"] for a in _scenario_alerts(scenario, alerts) for t in a.techniques}
        assert techniques & expected, (scenario["id"], sorted(techniques))


def test_scenario_alerts_cite_the_scenario_events(scenario_run):
    scenarios, alerts = scenario_run
    for scenario in scenarios:
        labelled = set(scenario.get("event_ids") or ())
        if not labelled:
            continue
        cited = {e for a in _scenario_alerts(scenario, alerts) for e in a.evidence["event_ids"]}
        assert cited & labelled, scenario["id"]


def _leading_alert(scenario_id, scenarios, alerts):
    scenario = next(s for s in scenarios if s["id"].startswith(scenario_id))
    return max(_scenario_alerts(scenario, alerts), key=lambda a: (a.score, a.alert_id))


@pytest.mark.parametrize("scenario_id, rule", [
    ("S04", "technique.aws.detection_disabled"),
    ("S03", "technique.aws.admin_policy_granted"),
    ("S05", "technique.aws.secrets_burst"),
])
def test_a_technique_led_alert_is_a_rule_in_ocsf(scenario_run, scenario_id, rule):
    """The title, ``top_detector`` and the OCSF analytic name the same leading signal: a
    technique finding that joined a novelty alert still makes the analytic a Rule."""
    alert = _leading_alert(scenario_id, *scenario_run)
    assert alert.top_detector == rule
    assert alert.title.split(": ", 1)[1].startswith(alert.signals[0]["sentence"][:30])
    analytic = to_ocsf(alert)["finding_info"]["analytic"]
    assert (analytic["uid"], analytic["name"]) == (rule, rule)
    assert (analytic["type_id"], analytic["type"]) == (1, "Rule")


def test_a_baseline_led_alert_is_behavioral_in_ocsf(scenario_run):
    alert = _leading_alert("S06", *scenario_run)
    assert not alert.top_detector.startswith(("technique.", "policy."))
    analytic = to_ocsf(alert)["finding_info"]["analytic"]
    assert (analytic["uid"], analytic["type"]) == (alert.top_detector, "Behavioral")


def test_no_scenario_alert_keeps_a_note_below_its_severity(scenario_run):
    """A note saying the severity was held at (or raised to) a level stays only while the
    alert is at that level."""
    _, alerts = scenario_run
    for alert in alerts:
        for note in alert.context.get("notes", []):
            if "held at " in note or "raised to the category's level" in note:
                assert alert.severity in note, (alert.alert_id, alert.severity, note)
