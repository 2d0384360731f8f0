"""The alert's score (band of its severity, placed by the weight of evidence) and a window
alert's activity (what its windows held, not only the events that raised signals)."""

from __future__ import annotations

import math

import pytest

from detector.alerts import WINDOW_IDS, WINDOW_KEYS, AlertGroup
from detector.engine import Detector
from detector.errors import ConfigError
from detector.ocsf import to_ocsf
from detector.stats import RunStats
from detector.scoring import (
    EVIDENCE_CAP,
    ScoringSettings,
    alert_score,
    evidence_nats,
    evidence_weight,
)
from tests.detector.alert_schema import assert_valid_alert
from tests.detector.test_alerts import ROLE, make_event, make_verdict, open_group

SETTINGS = ScoringSettings()


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class TestEvidence:
    def test_a_reading_at_the_floor_is_no_evidence(self):
        assert evidence_nats(0.25, 0.25) == 0.0
        assert evidence_nats(0.1, 0.25) == 0.0  # damped below the floor by its peers

    def test_a_clipped_reading_counts_as_evidence_cap(self):
        expected = _logit(EVIDENCE_CAP) - _logit(0.25)
        assert evidence_nats(1.0, 0.25) == pytest.approx(expected)
        assert evidence_nats(1.0, 0.25) == evidence_nats(EVIDENCE_CAP, 0.25)

    def test_correlated_readings_of_one_line_count_less_and_less(self):
        one = evidence_nats(1.0, 0.25)
        line = {"novelty.action\x1fa": 1.0, "novelty.action\x1fb": 1.0,
                "novelty.service\x1fs3": 1.0}
        assert evidence_weight({"action": line}, 0.25) == pytest.approx(one * 1.75)

    def test_independent_lines_add_fully(self):
        one = evidence_weight({"action": {"novelty.action\x1fa": 0.8}}, 0.25)
        two = evidence_weight({"action": {"novelty.action\x1fa": 0.8},
                               "network": {"novelty.network\x1fn": 0.8}}, 0.25)
        assert two == pytest.approx(2 * one)


class TestAlertScore:
    @pytest.mark.parametrize("severity,low,high", [
        ("low", 0.4, 0.55), ("medium", 0.55, 0.75), ("high", 0.75, 0.9), ("critical", 0.9, 1.0),
    ])
    def test_lies_in_the_band_of_its_severity(self, severity, low, high):
        assert SETTINGS.band(severity) == (low, high)
        for weight in (0.0, 1.0, 5.7, 30.0, 1e6, 1e12):
            assert low <= alert_score(severity, weight, SETTINGS) < high

    def test_never_reaches_one(self):
        assert alert_score("critical", 1e15, SETTINGS) == 0.9999

    def test_more_evidence_ranks_higher_within_a_severity(self):
        scores = [alert_score("high", w, SETTINGS) for w in (0.5, 5.7, 11.4, 20.0, 90.0)]
        assert scores == sorted(scores) and len(set(scores)) == len(scores)

    def test_a_higher_severity_always_ranks_higher(self):
        assert alert_score("medium", 1e6, SETTINGS) < alert_score("high", 0.0, SETTINGS)

    @pytest.mark.parametrize("thresholds", [
        {"medium": 0.55004},  # off the four-decimal grid: rounding fell below the band
        {"medium": 0.55001, "high": 0.55005},  # a band narrower than the rounding step
        {"low": 0.54999, "medium": 0.55, "high": 0.55002},
    ])
    def test_stays_in_its_band_when_thresholds_are_close(self, thresholds):
        settings = ScoringSettings.from_config({"thresholds": thresholds})
        for severity in ("low", "medium", "high"):
            low, high = settings.band(severity)
            scores = [alert_score(severity, w, settings) for w in (0.0, 1e-9, 1.0, 30.0, 1e9)]
            assert all(low <= score < high for score in scores), (severity, scores)
            assert scores == sorted(scores)

    def test_configured_thresholds_move_the_bands(self):
        settings = ScoringSettings.from_config({"thresholds": {"high": 0.8}})
        assert settings.band("medium") == (0.55, 0.8) and settings.band("high") == (0.8, 0.9)

    def test_thresholds_must_rise_with_severity(self):
        with pytest.raises(ConfigError, match="must rise with severity"):
            ScoringSettings.from_config({"thresholds": {"medium": 0.8}})


class TestGroupScore:
    def test_corroboration_raises_the_score_not_the_severity(self):
        event = make_event()
        alone = open_group(event, make_verdict(score=1.0))
        both = open_group(event, make_verdict(score=1.0))
        both.fold(make_event(1), make_verdict("novelty.network", 0.9, "high", None, "net"),
                  20, 5)
        a, b = alone.to_alert(ROLE, []), both.to_alert(ROLE, [])
        assert a.severity == b.severity == "high"
        assert 0.75 <= a.score < b.score < 0.9
        assert (a.evidence["lines_of_evidence"], b.evidence["lines_of_evidence"]) == (1, 2)

    def test_the_same_value_read_again_is_not_more_evidence(self):
        group = open_group(make_event(), make_verdict(score=0.7))
        before = group.to_alert(ROLE, []).evidence["weight_of_evidence"]
        group.fold(make_event(1), make_verdict(score=0.6), 20, 5)
        assert group.to_alert(ROLE, []).evidence["weight_of_evidence"] == before

    def test_a_line_keeps_its_strongest_readings(self):
        group = open_group(make_event(), make_verdict(score=0.3, value="a"))
        for n, value in enumerate("bcd", 1):
            group.fold(make_event(n), make_verdict(score=0.5 + n / 10, value=value), 20, 5)
        assert sorted(group.lines["novelty.action"].values()) == [0.6, 0.7, 0.8]

    def test_ocsf_risk_follows_score_confidence_follows_evidence(self):
        group = open_group(make_event(), make_verdict(score=1.0))
        alert = group.to_alert(ROLE, [])
        doc = to_ocsf(alert)
        assert doc["risk_score"] == int(alert.score * 100) and doc["risk_level_id"] == 3
        assert (doc["confidence_id"], doc["confidence_score"]) == (2, 32)
        assert doc["risk_details"].startswith(f"score {alert.score:.4f} in the high band; 1 ")


def _volume(n: int, value: str = "2024-03-04T10:00Z"):
    return make_verdict("volume.rate", 0.9, "medium", None, value)


class TestWindowActivity:
    def test_a_window_alert_counts_every_call_of_the_identity(self):
        group = open_group(make_event(0, action="s3:GetObject"), _volume(0))
        for n in range(1, 30):
            group.observe(make_event(n, action="s3:GetObject" if n % 3 else "s3:ListBucket"))
        window = group.to_alert(ROLE, []).evidence["window_activity"]
        assert window["calls"] == 30
        assert window["top_actions"] == [{"action": "s3:GetObject", "count": 21},
                                         {"action": "s3:ListBucket", "count": 9}]
        assert window["top_resources"][0] == {"resource": "arn:aws:iam::111122223333:user/u0",
                                              "count": 5}
        assert len(window["event_ids"]) == WINDOW_IDS and window["event_ids_truncated"]
        assert window["since"] == "2024-03-04T10:00:00.000Z"

    def test_its_counts_are_bounded(self):
        group = open_group(make_event(0), _volume(0))
        for n in range(1, 100):
            group.observe(make_event(n, action=f"svc:Action{n}", resource=f"r{n}"))
        window = group.to_alert(ROLE, []).evidence["window_activity"]
        assert window["distinct_actions"] == WINDOW_KEYS
        assert window["calls_beyond_tracked"] == {"actions": 100 - WINDOW_KEYS,
                                                  "resources": 100 - WINDOW_KEYS}

    def test_an_alert_without_a_window_signal_does_not_show_it(self):
        group = open_group(make_event(0), make_verdict())
        group.mark_sent()
        group.observe(make_event(1))
        assert "window_activity" not in group.to_alert(ROLE, []).evidence
        assert not group.unsent  # a plain alert is not re-sent for calls alone

    def test_calls_after_a_revision_make_a_window_alert_unsent(self):
        group = open_group(make_event(0), _volume(0))
        group.mark_sent()
        assert not group.unsent
        group.observe(make_event(1))
        assert group.unsent

    def test_round_trips_and_a_damaged_one_is_refused(self):
        group = open_group(make_event(0), _volume(0))
        group.observe(make_event(1, outcome="failure"))
        copy = AlertGroup.from_dict(group.to_dict())
        assert copy.window == group.window and copy.lines == group.lines
        data = group.to_dict()
        data["window"] = {**data["window"], "calls": "many"}
        with pytest.raises(TypeError, match="alert window calls"):
            AlertGroup.from_dict(data)
        data = group.to_dict()
        data["lines"] = {"volume": {"volume.rate\x1fw": "high"}}
        with pytest.raises(TypeError, match="alert group line readings"):
            AlertGroup.from_dict(data)

    def test_a_window_group_saved_before_window_counts_closes_without_error(self):
        group = open_group(make_event(0), _volume(0))
        group.mark_sent()
        data = group.to_dict()
        del data["window"]  # an older build's snapshot: the group has no window counts
        old = AlertGroup.from_dict(data)
        assert old.windowed and old.window == {}
        assert not old.unsent
        old.count += 1
        assert old.unsent

    def test_schema_accepts_it(self):
        group = open_group(make_event(0), _volume(0))
        group.revision = 1
        assert_valid_alert(group.to_alert(ROLE, []).to_native())


def test_engine_feeds_calls_without_signals_to_the_open_window_alert():
    """The detector offers every event of an identity with an open group to the group:
    events that raised no signal of their own are counted in its activity."""
    detector = Detector({}, stats=RunStats())
    event = make_event(0, action="s3:GetObject")
    state = detector._new_state(event)
    group = open_group(event, _volume(0))
    state.alerts.groups["volume"] = group
    for n in range(1, 6):
        detector.process(make_event(n, action="s3:GetObject"))
    assert group.window["calls"] == 6
    assert group.window["actions"] == {"s3:GetObject": 6}
